"""The resolved run: overrides applied once, the source resolved once, the plan a reader sees."""

import ast
import inspect

import pytest

from cifar_cnn import experiment, resolved_run
from cifar_cnn.config import RunConfig
from cifar_cnn.data import DataSourceError
from cifar_cnn.resolved_run import resolve_run


def _plan(**parameters):
    return resolve_run(RunConfig.from_parameters(parameters, environ={}))


def test_the_recipe_carries_the_runs_overrides():
    plan = _plan(recipe="airbench", epochs=3, learning_rate=0.5, tta=False, data_source="keras")
    recipe = plan.recipe
    assert (recipe.name, recipe.epochs, recipe.learning_rate) == ("airbench", 3, 0.5)
    assert recipe.batch_size == plan.config.batch_size and recipe.test_time_augmentation == "none"
    assert _plan(recipe="airbench", data_source="keras").recipe.test_time_augmentation \
        == "flip_translate"
    assert _plan(tta=True, data_source="keras").recipe.test_time_augmentation == "flip"


def test_auto_choices_are_decided_for_this_machine():
    plan = _plan(recipe="airbench", data_source="keras")
    assert plan.precision in ("float32", "mixed_bfloat16", "mixed_float16")
    assert plan.strategy in ("default", "mirrored", "tpu") and plan.chief
    assert plan.jit_compile == "auto"
    assert _plan(xla=False, data_source="keras").jit_compile is False


def test_a_missing_local_source_fails_at_resolution(tmp_path):
    with pytest.raises(DataSourceError, match="does not exist"):
        _plan(data_source=str(tmp_path / "missing.tar.gz"))


def test_steps_per_epoch_drop_the_partial_batch_only_when_the_recipe_asks():
    airbench = _plan(recipe="airbench", data_source="keras")
    assert airbench.steps_per_epoch(50_000) == 25 and airbench.steps_per_epoch(4_999) == 2
    assert airbench.steps_per_epoch(1_500) == 1  # Not one whole batch: the partial one trains.
    assert _plan(data_source="keras").steps_per_epoch(50_000) == 1563
    assert _plan(validation_split=0.1, data_source="keras").expected_train_examples == 45_000
    assert _plan(max_train_examples=1000, data_source="keras").expected_train_examples == 1000


def test_the_airbench_plan_names_every_choice_that_trains():
    text = _plan(recipe="airbench", data_source="keras").describe()
    for expected in ("Muon on the conv filters, learning rate 0.24",
                     "biases at 0.053", "head at 0.67", "Nesterov SGD",
                     "linear decay", "2000 (25 steps per epoch", "alternating flip",
                     "translate by up to 2 pixels", "six views averaged",
                     "label smoothing 0.2", "precision"):
        assert expected in text, expected
    seed = _plan(data_source="keras", learning_rate=0.002).describe()
    assert "Adam, learning rate 0.002" in seed and "constant" in seed and "one view" in seed


def test_every_step_takes_the_resolved_run_first():
    steps = (experiment.open_run, experiment.prepare_data, experiment.data_figures,
             experiment.build_model, experiment.make_datasets, experiment.train_model,
             experiment.training_figures, experiment.evaluate_model,
             experiment.evaluation_figures, experiment.final_metrics, experiment.finish_run,
             experiment.close_run)
    order = ["plan", "run", "data", "model", "training", "evaluation"]
    for step in steps:
        names = [name for name in inspect.signature(step).parameters if name in order]
        assert names[0] == "plan", step.__name__
        assert names == sorted(names, key=order.index), step.__name__


def test_no_step_looks_the_recipe_or_the_source_up_again():
    # The recipe registry and the source resolver are read in one place: resolve_run.
    for module in (experiment,):
        tree = ast.parse(inspect.getsource(module))
        called = {node.func.attr if isinstance(node.func, ast.Attribute) else
                  getattr(node.func, "id", None)
                  for node in ast.walk(tree) if isinstance(node, ast.Call)}
        assert not called & {"get_recipe", "resolve_source", "training_recipe"}, module
    source = inspect.getsource(resolved_run.resolve_run)
    assert "get_recipe(" in source and "resolve_source(" in source
