"""Re-evaluating a saved model (``cifar-cnn evaluate``) through the run's own steps.

A run folder's model is scored with the run's recipe, seed, test-time views and data source
(each may be overridden), by ``experiment.prepare_data`` and ``experiment.evaluate_model``,
the very steps training measured with; the confusion matrix and ``evaluation.json`` go beside
the model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from cifar_cnn.evaluate import Evaluation, check_test_time_augmentation

# What evaluate_saved_model writes: the figure (its format follows its suffix, so only
# suffixes matplotlib writes are accepted) and, in the same folder, the results.
FIGURE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")
CONFUSION_MATRIX_FIGURE = "confusion_matrix.png"
EVALUATION_FILE = "evaluation.json"


@dataclass
class EvaluationReport:
    """What :func:`evaluate_saved_model` did and found.

    Attributes:
        evaluation: The scores.
        class_names: Name of each label, in label order.
        model_path: The model file evaluated.
        run_folder: The run folder holding it, or None for a bare model file.
        data_source: Where the test split was read (the source's description).
        test_examples: Images evaluated.
        split_size: Images in the whole test split (more than ``test_examples`` when a
            subset was drawn).
        subset_seed: The seed of the stratified subset (the run's, else the default).
        test_time_augmentation: The views each prediction averaged (``"none"``: one).
        seconds: Time spent loading the data, predicting and scoring.
        figure_path: The confusion-matrix figure written.
        results_path: The ``evaluation.json`` written beside it.
        notes: Things the user should know about the model (see ``LoadedModel.notes``).
    """

    evaluation: Evaluation
    class_names: tuple[str, ...]
    model_path: Path
    run_folder: Path | None
    data_source: str
    test_examples: int
    split_size: int
    subset_seed: int
    test_time_augmentation: str
    seconds: float
    figure_path: Path
    results_path: Path
    notes: list[str] = field(default_factory=list)

    @property
    def is_subset(self) -> bool:
        """True when only a stratified subset of the test split was evaluated."""
        return self.test_examples < self.split_size


def evaluation_figure_path(model_path: str | Path, output: str | Path | None = None) -> Path:
    """Where the confusion-matrix figure goes: ``output``, else a folder beside the model.

    ``model.keras`` gets ``evaluation/``; another file such as ``best.keras`` gets
    ``evaluation-best/``, so evaluating two models of a run folder keeps both results.

    Args:
        model_path: The model file.
        output: The requested figure path, if any.

    Returns:
        The figure's path (``evaluation.json`` goes in the same folder).

    Raises:
        ValueError: The path does not end in one of ``FIGURE_SUFFIXES``.
    """
    from cifar_cnn.runs import EVALUATION_FOLDER, MODEL_FILE

    if output:
        figure_path = Path(output).expanduser()
    else:
        model_path = Path(model_path)
        folder = EVALUATION_FOLDER if model_path.stem == Path(MODEL_FILE).stem \
            else f"{EVALUATION_FOLDER}-{model_path.stem}"
        figure_path = model_path.parent / folder / CONFUSION_MATRIX_FIGURE
    if figure_path.suffix.lower() not in FIGURE_SUFFIXES:
        raise ValueError(f"output {figure_path} must end in one of {', '.join(FIGURE_SUFFIXES)}: "
                         "the figure's format follows its suffix.")
    return figure_path


def evaluate_saved_model(model_or_run_folder: str | Path, *, data_source: str | None = None,
                         max_test_examples: int | None = None,
                         test_time_augmentation: str | None = None,
                         output: str | Path | None = None,
                         progress: Callable[[str], None] | None = None) -> EvaluationReport:
    """Score a saved model on a test split; write a confusion matrix and ``evaluation.json``.

    A run folder knows its recipe, data, the seed of its test subset and its test-time
    augmentation: each is reused unless given, so evaluating a run with its own
    ``max_test_examples`` reproduces its ``metrics.json`` exactly. The work goes through
    the run's own steps (``resolve_run``, ``experiment.prepare_data``,
    ``experiment.evaluate_model``), so it cannot drift from what training measured.

    Args:
        model_or_run_folder: A ``.keras`` file, or a run folder holding ``model.keras``.
        data_source: The CIFAR-10 source (default: the run's recorded source, else
            ``$CIFAR10_SOURCE``, else the Keras download).
        max_test_examples: Evaluate a stratified subset of this many test images, drawn
            with the run's seed (default: the whole test split).
        test_time_augmentation: The views each prediction averages, one of
            ``cifar_cnn.config.TEST_TIME_AUGMENTATIONS`` (default: the run's; ``"none"``
            for a bare model file).
        output: The confusion-matrix figure's path (default: see
            :func:`evaluation_figure_path`); ``evaluation.json`` goes in its folder.
        progress: Called with a line before each slow step (loading the model, the data).

    Returns:
        An :class:`EvaluationReport`.

    Raises:
        ValueError: A bad ``output`` suffix, or a model that cannot be loaded or used
            (``ModelLoadError``).
        DataSourceError: The data source cannot be read.
    """
    from cifar_cnn import data as data_module
    from cifar_cnn import experiment
    from cifar_cnn.files import write_figure, write_json
    from cifar_cnn.plots import confusion_matrix_figure
    from cifar_cnn.predict import load_model, resolve_model_path
    from cifar_cnn.runs import CONFIG_FILE, utc_now

    say = progress or (lambda message: None)
    if test_time_augmentation is not None:
        check_test_time_augmentation(test_time_augmentation)  # Before the slow work.
    model_path = resolve_model_path(model_or_run_folder)
    # Checked before the slow work, so a typo costs nothing.
    figure_path = evaluation_figure_path(model_path, output)
    say(f"model: {model_path}")
    loaded = load_model(model_path, num_classes=len(data_module.CLASS_NAMES))
    _refuse_a_run_in_use(loaded.run_folder, figure_path)
    run_config = loaded.run_config or {}
    try:
        plan = _evaluation_plan(run_config, data_source, max_test_examples,
                                test_time_augmentation)
    except data_module.DataSourceError as error:
        if data_source or not run_config.get("data_source"):
            raise
        # A relative path recorded at training time may not hold from here: say where it
        # came from and how to override it.
        raise data_module.DataSourceError(
            f"{error} (This is the data_source recorded in {loaded.run_folder}/{CONFIG_FILE}; "
            "give another data_source (--data-source) to evaluate on another copy.)") \
            from error
    say(f"loading the test split of {plan.source.description} ...")
    started = time.perf_counter()
    data = experiment.prepare_data(plan)
    evaluation = experiment.evaluate_model(plan, data, loaded.model, progress_label="predicting")
    seconds = time.perf_counter() - started

    views, seed = plan.recipe.test_time_augmentation, plan.config.seed
    test_examples = int(len(data.test[1]))
    write_figure(figure_path, confusion_matrix_figure(evaluation.confusion, data.class_names))
    results_path = figure_path.parent / EVALUATION_FILE
    write_json(results_path, {
        "model": str(loaded.path),
        "run_folder": str(loaded.run_folder) if loaded.run_folder else None,
        "data_source": data.source,
        "test_examples": test_examples,
        "max_test_examples": max_test_examples,
        "subset_seed": seed,
        "test_time_augmentation": views,
        **evaluation.summary(data.class_names),
        "confusion_matrix_figure": str(figure_path),
        "seconds": seconds,
        "evaluated_at": utc_now(),
    })
    return EvaluationReport(
        evaluation=evaluation, class_names=tuple(data.class_names),
        model_path=loaded.path, run_folder=loaded.run_folder, data_source=data.source,
        test_examples=test_examples, split_size=data.test_split_size, subset_seed=seed,
        test_time_augmentation=views, seconds=seconds, figure_path=figure_path,
        results_path=results_path, notes=list(loaded.notes))


def _refuse_a_run_in_use(run_folder: Path | None, figure_path: Path) -> None:
    """A run folder has one writer: while its training holds it, write nothing inside it.

    Raises:
        RunInUseError: ``figure_path`` lies in a run folder whose lock another writer holds
            (a ``best.keras`` evaluated while its run still trains, for instance).
    """
    from cifar_cnn import run_lock

    if run_folder is None or not figure_path.resolve().is_relative_to(run_folder.resolve()):
        return
    record = run_lock.holder(run_folder)
    if record is not None:
        raise run_lock.RunInUseError(
            f"run folder {run_folder} is in use by {run_lock.describe_holder(record)}: one run "
            "folder has one writer. Evaluate again when it has finished, or write the results "
            "elsewhere with output (--output).", record)


def _evaluation_plan(run_config: dict, data_source: str | None, max_test_examples: int | None,
                     test_time_augmentation: str | None):
    """The resolved run that re-evaluates a saved model: the run's own choices, overridden.

    Only what evaluation reads is taken from the run's ``config.json``: its recipe (for its
    test-time views), seed (for the test subset), ``tta`` and data source. A recipe no longer
    registered evaluates as the seed's, whose views with ``tta`` are the mirror, as every
    recipe's were before.

    Returns:
        A ``ResolvedRun`` (no run folder is opened for it).
    """
    import dataclasses

    from cifar_cnn.config import RunConfig
    from cifar_cnn.recipes import RECIPES
    from cifar_cnn.resolved_run import resolve_run

    parameters = {"recipe": run_config.get("recipe") if run_config.get("recipe") in RECIPES
                  else RunConfig.recipe,
                  "seed": run_config.get("seed", RunConfig.seed),
                  "tta": bool(run_config.get("tta", False)),
                  "data_source": data_source or run_config.get("data_source"),
                  "max_test_examples": max_test_examples,
                  "max_train_examples": None, "validation_split": 0.0}
    plan = resolve_run(RunConfig.from_parameters(parameters, environ={}))
    if test_time_augmentation is None:
        return plan
    return dataclasses.replace(plan, recipe=dataclasses.replace(
        plan.recipe, test_time_augmentation=test_time_augmentation))
