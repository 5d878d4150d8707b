"""The run config: recipe defaults, validation of every field, quick mode, notebook namespaces."""

import math
import types

import pytest

from cifar_cnn.config import QUICK_OVERRIDES, RunConfig, notebook_parameters


def test_defaults_reproduce_the_seed_recipe():
    config = RunConfig()
    assert (config.recipe, config.epochs, config.batch_size, config.learning_rate) == \
        ("seed", 20, 32, 1e-3)
    assert config.preprocessing == "scale"
    assert config.validation_split == 0.0


def test_explicit_values_override_recipe_defaults():
    config = RunConfig.from_parameters({"epochs": 3, "batch_size": 64, "learning_rate": 0.01},
                                       environ={})
    assert (config.epochs, config.batch_size, config.learning_rate) == (3, 64, 0.01)


def test_config_is_frozen():
    with pytest.raises(Exception):
        RunConfig().epochs = 5


def test_unknown_parameter_is_rejected_with_valid_names():
    with pytest.raises(ValueError, match=r"Unknown parameter\(s\) epoch;.*epochs"):
        RunConfig.from_parameters({"epoch": 5}, environ={})


@pytest.mark.parametrize("name, value, message", [
    ("epochs", 0, "epochs must be an integer >= 1"),
    ("epochs", -3, "epochs must be an integer >= 1"),
    ("epochs", 2.5, "epochs must be an integer"),
    ("epochs", True, "epochs must be an integer"),
    ("batch_size", 0, "batch_size must be an integer >= 1"),
    ("batch_size", "32", "batch_size must be an integer"),
    ("learning_rate", 0, "learning_rate must be a positive number"),
    ("learning_rate", math.nan, "learning_rate must be a positive number"),
    ("validation_split", 1.0, r"validation_split must be a number in \[0, 1\)"),
    ("validation_split", -0.1, r"validation_split must be a number in \[0, 1\)"),
    ("recipe", "resnet-1000", "Unknown recipe .resnet-1000.; valid choices: seed, "
                               "seed_regularized, airbench"),
    ("preprocessing", "whiten", "Unknown preprocessing 'whiten'; valid choices: scale, standardize"),
    ("seed", -1, "seed must be an integer >= 0"),
    ("max_train_examples", 5, "max_train_examples must be an integer >= 10 or None"),
    ("run_name", "a/b", "run_name must be a plain folder name"),
    ("run_name", "", "run_name must be a non-empty string"),
    ("output_dir", "", "output_dir must be a non-empty path"),
    ("overwrite", "yes", "overwrite must be True or False"),
])
def test_bad_values_raise_before_any_work(name, value, message):
    with pytest.raises(ValueError, match=message):
        RunConfig.from_parameters({name: value}, environ={})


def test_quick_mode_shrinks_the_run_from_the_environment():
    config = RunConfig.from_parameters({}, environ={"CIFAR_CNN_QUICK": "1"})
    assert config.epochs == QUICK_OVERRIDES["epochs"] == 1
    assert config.max_train_examples == QUICK_OVERRIDES["max_train_examples"]
    assert config.max_test_examples == QUICK_OVERRIDES["max_test_examples"]
    # Smaller explicit values are kept; quick mode only ever shrinks.
    small = RunConfig.from_parameters({"max_train_examples": 100}, environ={"CIFAR_CNN_QUICK": "1"})
    assert small.max_train_examples == 100
    assert RunConfig.from_parameters({}, environ={"CIFAR_CNN_QUICK": "0"}).epochs == 20


def test_notebook_parameters_read_exactly_the_parameter_names():
    # After a first "Run All" the namespace also holds the notebook's own variables: they
    # are not parameters and must not stop a second run of the config cell.
    namespace = {
        "recipe": "seed", "epochs": 2, "data_source": None, "config": object(),
        "model": object(), "figures": {}, "index": 7, "sys": types, "RunConfig": RunConfig,
        "In": ["", 'recipe = "seed"\nepochs = None', "config = ..."], "Out": {},
    }
    assert notebook_parameters(namespace) == {"recipe": "seed", "epochs": 2,
                                              "data_source": None}


def test_notebook_parameters_refuse_a_name_papermill_injected_by_mistake():
    injected = "# Parameters\nepoch = 5\nrecipe = \"airbench\"\n"
    namespace = {"recipe": "airbench", "epoch": 5, "In": ["", "recipe = 'seed'", injected]}
    with pytest.raises(ValueError, match=r"Unknown parameter\(s\) epoch; valid parameters"):
        notebook_parameters(namespace)


def test_quick_mode_is_recorded_in_the_config():
    quick = RunConfig.from_parameters({"recipe": "airbench"}, environ={"CIFAR_CNN_QUICK": "1"})
    assert quick.quick is True and quick.epochs == 1
    assert "quick" in quick.to_dict() and quick.to_dict()["quick"] is True
    # The parameter wins over the environment, both ways.
    assert RunConfig.from_parameters({"quick": False}, environ={"CIFAR_CNN_QUICK": "1"}).epochs == 20
    forced = RunConfig.from_parameters({"quick": True, "epochs": 5}, environ={})
    assert (forced.quick, forced.epochs, forced.max_train_examples) == (True, 1, 512)
    with pytest.raises(ValueError, match="quick must be True or False"):
        RunConfig.from_parameters({"quick": "yes"}, environ={})


def test_config_is_a_leaf_that_imports_nothing_heavy():
    import subprocess
    import sys

    code = ("import sys, cifar_cnn.config, cifar_cnn.runs; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'matplotlib', 'yaml', 'papermill') "
            "if m in sys.modules))")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout
    assert output.strip() == "[]"


def test_describe_lists_every_parameter_on_its_own_line():
    lines = RunConfig.from_parameters({"epochs": 3}, environ={}).describe().splitlines()
    assert [line.split()[0] for line in lines] == list(RunConfig.parameter_names())
    assert "epochs              3" in lines


def test_parameter_names_are_the_fields_in_order():
    names = RunConfig.parameter_names()
    assert names[:4] == ("recipe", "epochs", "batch_size", "learning_rate")
    assert set(RunConfig().to_dict()) == set(names)
