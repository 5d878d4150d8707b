"""The run configuration: one frozen dataclass whose fields are exactly the notebook's parameters.

Build it with :meth:`RunConfig.from_parameters` (or, in a notebook, :func:`notebook_parameters`),
which rejects unknown names and bad values with a ``ValueError`` that names the valid choices,
before any data is loaded.

This module is a leaf: it owns the valid names of every choice a run makes, and imports
nothing from the package but the recipe registry (plain data). The modules that act on a
choice (``data.pipeline``, ``precision``, ``distribute``) import the names from here.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any, Mapping

from cifar_cnn.recipes import RECIPES, get_recipe

# The valid values of the choices a run makes; one home, imported by the modules that act.
PREPROCESSING_MODES = ("scale", "standardize")
PRECISION_CHOICES = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
STRATEGY_CHOICES = ("auto", "default", "mirrored", "multiworker", "tpu")
# Test-time augmentation: no extra views, each image with its mirror, or airbench's six views
# (the image and its mirror, each also shifted one pixel up-left and down-right).
TEST_TIME_AUGMENTATIONS = ("none", "flip", "flip_translate")
TEST_TIME_AUGMENTATION_DESCRIPTIONS = {
    "none": "one view (no test-time augmentation)",
    "flip": "two views averaged: each image and its mirror",
    "flip_translate": "six views averaged: each image and its mirror, each also shifted one "
                      "pixel up-left and down-right",
}

MAX_RUN_NAME_LENGTH = 100  # Far below any file system's limit, with room for suffixes.
QUICK_ENVIRONMENT_VARIABLE = "CIFAR_CNN_QUICK"
# What quick mode (CI, nbval) shrinks a run to: a stratified subset and one epoch. The config
# records quick=True, so a run folder says why its epochs are not the recipe's.
QUICK_OVERRIDES = {"epochs": 1, "max_train_examples": 512, "max_test_examples": 256}


@dataclass(frozen=True)
class RunConfig:
    """All parameters of one training run.

    Attributes:
        recipe: A ``cifar_cnn.recipes.RECIPES`` key (``"seed"`` reproduces the seed notebook).
        epochs: Training epochs; None takes the recipe's default.
        batch_size: Global batch size; None takes the recipe's default.
        learning_rate: Peak learning rate; None takes the recipe's default.
        seed: Seed for weights, data order, splits and augmentation.
        data_source: ``"keras"``, a local archive or folder, or None for
            ``$CIFAR10_SOURCE`` falling back to ``"keras"``.
        validation_split: Fraction of the training set held out for validation, in [0, 1).
            0 trains on all 50,000 images and, like the seed notebook, shows the test set's
            curve as the validation curve (no model selection is done on it).
        preprocessing: ``"scale"`` (x/255) or ``"standardize"``; None takes the recipe's.
        mixed_precision: ``"auto"``, ``"float32"``, ``"mixed_bfloat16"`` or
            ``"mixed_float16"``; None takes the recipe's (the seed: float32).
        xla: Compile training steps with XLA; None lets Keras decide (on with a GPU).
        tta: Test-time augmentation: True averages each test image's prediction over the
            recipe's views (``Recipe.test_time_augmentation``; "flip" for a recipe without
            any), False predicts once; None: on when the recipe has views.
        tensorboard: Write TensorBoard logs to ``<run folder>/tensorboard``.
        strategy: ``tf.distribute`` strategy: ``"auto"``, ``"default"``, ``"mirrored"``,
            ``"multiworker"`` (from ``TF_CONFIG``) or ``"tpu"`` (``cifar_cnn.distribute``);
            batch_size stays the global batch and learning_rate is not rescaled.
        max_train_examples: Train on a stratified subset of this size (None: all).
        max_test_examples: Evaluate on a stratified subset of this size (None: all).
        output_dir: Folder that receives one run folder per run; None: the project's
            ``runs/`` folder (``cifar_cnn.runs.runs_folder``), whatever the working folder.
        run_name: The run folder's name; None makes one from the time and the recipe.
        overwrite: Replace an existing completed run folder of the same name.
        quick: Shrink the run to ``QUICK_OVERRIDES`` (a small subset, one epoch), as CI
            does; None reads ``$CIFAR_CNN_QUICK`` (1: on).
    """

    recipe: str = "seed"
    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    seed: int = 42
    data_source: str | None = None
    validation_split: float = 0.0
    preprocessing: str | None = None
    mixed_precision: str | None = None
    xla: bool | None = None
    tta: bool | None = None
    tensorboard: bool = False
    strategy: str = "auto"
    max_train_examples: int | None = None
    max_test_examples: int | None = None
    output_dir: str | None = None
    run_name: str | None = None
    overwrite: bool = False
    quick: bool | None = None

    def __post_init__(self):
        recipe = get_recipe(self.recipe)
        # Fill recipe defaults so the frozen config always holds the values actually used.
        recipe_defaults = {"epochs": recipe.epochs, "batch_size": recipe.batch_size,
                           "learning_rate": recipe.learning_rate,
                           "preprocessing": recipe.preprocessing,
                           "mixed_precision": recipe.precision,
                           "tta": recipe.test_time_augmentation != "none"}
        for name, default in recipe_defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, default)
        if self.quick is None:
            object.__setattr__(self, "quick", False)  # from_parameters reads the environment.
        if self.quick is True:
            for name, quick_value in QUICK_OVERRIDES.items():
                current = getattr(self, name)
                if isinstance(current, int) and not isinstance(current, bool):
                    object.__setattr__(self, name, min(current, quick_value))
                elif current is None:
                    object.__setattr__(self, name, quick_value)
        _require_int(self, "epochs", minimum=1)
        _require_int(self, "batch_size", minimum=1)
        _require_int(self, "seed", minimum=0)
        _require_int(self, "max_train_examples", minimum=10, optional=True)
        _require_int(self, "max_test_examples", minimum=10, optional=True)
        if isinstance(self.learning_rate, bool) or not isinstance(self.learning_rate, (int, float)) \
                or not math.isfinite(self.learning_rate) or self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be a positive number, got {self.learning_rate!r}.")
        if isinstance(self.validation_split, bool) \
                or not isinstance(self.validation_split, (int, float)) \
                or not 0.0 <= self.validation_split < 1.0:
            raise ValueError("validation_split must be a number in [0, 1) (0: no validation "
                             f"split, as the seed), got {self.validation_split!r}.")
        if self.preprocessing not in PREPROCESSING_MODES:
            raise ValueError(f"Unknown preprocessing {self.preprocessing!r}; valid choices: "
                             f"{', '.join(PREPROCESSING_MODES)}.")
        if self.mixed_precision not in PRECISION_CHOICES:
            raise ValueError(f"Unknown mixed_precision {self.mixed_precision!r}; valid choices: "
                             f"{', '.join(PRECISION_CHOICES)}.")
        if self.strategy not in STRATEGY_CHOICES:
            raise ValueError(f"Unknown strategy {self.strategy!r}; valid choices: "
                             f"{', '.join(STRATEGY_CHOICES)}.")
        for name in ("xla", "tta", "tensorboard", "overwrite", "quick"):
            value = getattr(self, name)
            if not (isinstance(value, bool) or (value is None and name == "xla")):
                raise ValueError(f"{name} must be True or False"
                                 f"{' or None' if name == 'xla' else ''}, got {value!r}.")
        for name in ("data_source", "run_name"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ValueError(f"{name} must be a non-empty string or None, got {value!r}.")
        if self.run_name is not None and (os.sep in self.run_name or "/" in self.run_name
                                          or self.run_name.startswith(".")
                                          or len(self.run_name) > MAX_RUN_NAME_LENGTH):
            raise ValueError("run_name must be a plain folder name (no '/', not starting with "
                             f"'.', at most {MAX_RUN_NAME_LENGTH} characters), got "
                             f"{self.run_name!r}.")
        if self.output_dir is not None and (not isinstance(self.output_dir, str)
                                            or not self.output_dir.strip()):
            raise ValueError("output_dir must be a non-empty path or None (the project's runs "
                             f"folder), got {self.output_dir!r}.")

    @classmethod
    def parameter_names(cls) -> tuple[str, ...]:
        """Return the field names, which are exactly the notebook's parameter names."""
        return tuple(field.name for field in dataclasses.fields(cls))

    @classmethod
    def from_parameters(cls, parameters: Mapping[str, Any],
                        environ: Mapping[str, str] | None = None) -> "RunConfig":
        """Build a validated config from notebook or command-line parameters.

        Args:
            parameters: Parameter names and values; every name must be a field.
            environ: Environment to read quick mode from (default ``os.environ``) when the
                ``quick`` parameter is None: ``CIFAR_CNN_QUICK=1`` turns it on.

        Returns:
            The frozen :class:`RunConfig`.
        """
        unknown = sorted(set(parameters) - set(cls.parameter_names()))
        if unknown:
            raise ValueError(f"Unknown parameter(s) {', '.join(unknown)}; valid parameters: "
                             f"{', '.join(cls.parameter_names())}.")
        values = dict(parameters)
        environ = os.environ if environ is None else environ
        if values.get("quick") is None:
            values["quick"] = environ.get(QUICK_ENVIRONMENT_VARIABLE, "") not in ("", "0")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a plain JSON-ready dictionary."""
        return dataclasses.asdict(self)

    def describe(self, resolved: Mapping[str, str] | None = None) -> str:
        """The parameters as aligned ``name  value`` lines, for people to read.

        Args:
            resolved: What a ``None`` stands for, by parameter name (for example the data
                source that ``data_source=None`` reads), shown after the value.

        Returns:
            One line per parameter, recipe defaults already filled in.
        """
        resolved = resolved or {}
        width = max(len(name) for name in self.parameter_names())
        lines = []
        for name in self.parameter_names():
            value = getattr(self, name)
            meaning = f"  -> {resolved[name]}" if value is None and name in resolved else ""
            lines.append(f"{name.ljust(width)}  {value!r}{meaning}")
        return "\n".join(lines)


# papermill's injected-parameters cell starts with this comment line.
_PAPERMILL_HEADER = "# Parameters"


def _papermill_injected_names(cell_sources) -> set[str]:
    """The names assigned in papermill's injected-parameters cells, among executed cells."""
    import ast

    names: set[str] = set()
    for source in cell_sources or ():
        if not isinstance(source, str) or not source.startswith(_PAPERMILL_HEADER):
            continue
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.Assign):
                names.update(target.id for target in node.targets
                             if isinstance(target, ast.Name))
    return names


def notebook_parameters(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """Collect a notebook's parameters from its namespace, by their names.

    Exactly the ``RunConfig`` field names are read, so the notebook's own variables
    (``config``, ``model``, ...) never count: editing a parameter and running the config
    cell again works, and so does a second "Run All" in the same kernel. A name that
    papermill injected but that is no parameter (``papermill -p epoch 5``) is still an
    error: the kernel's input history (``In``) holds papermill's injected cell.

    Args:
        namespace: The notebook's ``globals()``.

    Returns:
        Parameter names and values, for :meth:`RunConfig.from_parameters`.

    Raises:
        ValueError: papermill injected an unknown name.
    """
    names = RunConfig.parameter_names()
    unknown = sorted(_papermill_injected_names(namespace.get("In")) - set(names))
    if unknown:
        raise ValueError(f"Unknown parameter(s) {', '.join(unknown)}; valid parameters: "
                         f"{', '.join(names)}.")
    return {name: namespace[name] for name in names if name in namespace}


def _require_int(config: RunConfig, name: str, minimum: int, optional: bool = False) -> None:
    value = getattr(config, name)
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}"
                         f"{' or None' if optional else ''}, got {value!r}.")


__all__ = ["MAX_RUN_NAME_LENGTH", "PRECISION_CHOICES", "PREPROCESSING_MODES",
           "QUICK_ENVIRONMENT_VARIABLE", "QUICK_OVERRIDES", "RECIPES", "RunConfig",
           "STRATEGY_CHOICES", "TEST_TIME_AUGMENTATIONS", "TEST_TIME_AUGMENTATION_DESCRIPTIONS",
           "notebook_parameters"]
