"""The run configuration: one frozen dataclass whose fields are exactly the notebook's parameters.

Build it with :meth:`RunConfig.from_parameters`, which rejects unknown names and bad values
with a ``ValueError`` that names the valid choices, before any data is loaded.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any, Mapping

from cifar_cnn.data.pipeline import PREPROCESSING_MODES
from cifar_cnn.distribute import STRATEGY_CHOICES
from cifar_cnn.precision import PRECISION_CHOICES
from cifar_cnn.recipes import RECIPES, get_recipe

QUICK_ENVIRONMENT_VARIABLE = "CIFAR_CNN_QUICK"
# What quick mode (CI, nbval) shrinks a run to: a stratified subset and one epoch.
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
        tta: Test-time augmentation (average with the mirrored image); None: the recipe's.
        tensorboard: Write TensorBoard logs to ``<run folder>/tensorboard``.
        strategy: ``tf.distribute`` strategy: ``"auto"``, ``"default"``, ``"mirrored"``,
            ``"multiworker"`` (from ``TF_CONFIG``) or ``"tpu"`` (``cifar_cnn.distribute``);
            batch_size stays the global batch and learning_rate is not rescaled.
        max_train_examples: Train on a stratified subset of this size (None: all).
        max_test_examples: Evaluate on a stratified subset of this size (None: all).
        output_dir: Folder that receives one run folder per run.
        run_name: The run folder's name; None makes one from the time and the recipe.
        overwrite: Replace an existing completed run folder of the same name.
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
    output_dir: str = "runs"
    run_name: str | None = None
    overwrite: bool = False

    def __post_init__(self):
        recipe = get_recipe(self.recipe)
        # Fill recipe defaults so the frozen config always holds the values actually used.
        recipe_defaults = {"epochs": recipe.epochs, "batch_size": recipe.batch_size,
                           "learning_rate": recipe.learning_rate,
                           "preprocessing": recipe.preprocessing,
                           "mixed_precision": recipe.precision,
                           "tta": recipe.flip_test_time_augmentation}
        for name, default in recipe_defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, default)
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
        for name in ("xla", "tta", "tensorboard", "overwrite"):
            value = getattr(self, name)
            if not (isinstance(value, bool) or (value is None and name == "xla")):
                raise ValueError(f"{name} must be True or False"
                                 f"{' or None' if name == 'xla' else ''}, got {value!r}.")
        for name in ("data_source", "run_name"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ValueError(f"{name} must be a non-empty string or None, got {value!r}.")
        if self.run_name is not None and (os.sep in self.run_name or self.run_name in (".", "..")):
            raise ValueError(f"run_name must be a plain folder name, got {self.run_name!r}.")
        if self.tensorboard:
            from cifar_cnn.tensorboard_logging import require_tensorboard

            require_tensorboard()  # Fail now, not after the first epoch.
        if not isinstance(self.output_dir, str) or not self.output_dir.strip():
            raise ValueError(f"output_dir must be a non-empty path, got {self.output_dir!r}.")

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
            environ: Environment to read quick mode from (default ``os.environ``). When
                ``CIFAR_CNN_QUICK`` is set to 1, ``QUICK_OVERRIDES`` shrink the run.

        Returns:
            The frozen :class:`RunConfig`.
        """
        unknown = sorted(set(parameters) - set(cls.parameter_names()))
        if unknown:
            raise ValueError(f"Unknown parameter(s) {', '.join(unknown)}; valid parameters: "
                             f"{', '.join(cls.parameter_names())}.")
        values = dict(parameters)
        environ = os.environ if environ is None else environ
        if environ.get(QUICK_ENVIRONMENT_VARIABLE, "") not in ("", "0"):
            for name, quick_value in QUICK_OVERRIDES.items():
                current = values.get(name)
                values[name] = quick_value if current is None else min(current, quick_value)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a plain JSON-ready dictionary."""
        return dataclasses.asdict(self)


# Names an IPython namespace holds that are not parameters.
_INTERACTIVE_NAMES = {"In", "Out", "exit", "quit", "get_ipython"}


def notebook_parameters(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """Collect the parameters a notebook defined, papermill's injected ones included.

    Everything in the namespace that is not private (``_name``), a module, a function or a
    class, nor one of IPython's own names, counts as a parameter. Unknown names are thus
    passed on to :meth:`RunConfig.from_parameters`, which rejects them: a mistyped
    ``papermill -p epoch 5`` fails loudly instead of silently training 20 epochs.

    Args:
        namespace: The notebook's ``globals()``.

    Returns:
        Parameter names and values.
    """
    import types

    return {
        name: value for name, value in namespace.items()
        if not name.startswith("_") and name not in _INTERACTIVE_NAMES
        and not isinstance(value, (types.ModuleType, types.FunctionType, types.BuiltinFunctionType,
                                   type))
    }


def _require_int(config: RunConfig, name: str, minimum: int, optional: bool = False) -> None:
    value = getattr(config, name)
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}"
                         f"{' or None' if optional else ''}, got {value!r}.")


__all__ = ["QUICK_ENVIRONMENT_VARIABLE", "QUICK_OVERRIDES", "RECIPES", "RunConfig",
           "notebook_parameters"]
