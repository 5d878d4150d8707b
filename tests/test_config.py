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


def test_notebook_parameters_keep_values_and_drop_modules_functions_and_ipython_names():
    namespace = {
        "recipe": "seed", "epochs": 2, "data_source": None, "misspelt": 3,
        "sys": types, "print_it": lambda: None, "RunConfig": RunConfig,
        "In": [], "Out": {}, "_": None, "_private": 1, "get_ipython": print,
    }
    assert notebook_parameters(namespace) == {"recipe": "seed", "epochs": 2,
                                              "data_source": None, "misspelt": 3}


def test_parameter_names_are_the_fields_in_order():
    names = RunConfig.parameter_names()
    assert names[:4] == ("recipe", "epochs", "batch_size", "learning_rate")
    assert set(RunConfig().to_dict()) == set(names)
