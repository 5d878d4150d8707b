"""The resolved run: every choice of one run decided once, where the config is made.

A :class:`~cifar_cnn.config.RunConfig` holds the parameters as the user gave them (recipe
defaults filled in). :func:`resolve_run` turns it, once, into a frozen
:class:`ResolvedRun`: the recipe with every override applied, the data source, the runs
folder, the precision policy and the strategy this machine will use. Every step of
``cifar_cnn.experiment`` takes that one object first; nothing downstream looks the recipe
or the source up again, so what the notebook prints as the training plan is what trains.
"""

from __future__ import annotations

import dataclasses
import textwrap
from dataclasses import dataclass
from pathlib import Path

from cifar_cnn.config import (
    QUICK_ENVIRONMENT_VARIABLE,
    QUICK_OVERRIDES,
    TEST_TIME_AUGMENTATION_DESCRIPTIONS,
    RunConfig,
)
from cifar_cnn.recipes import Recipe, get_recipe

# The official training split's size: the plan's step count assumes a complete CIFAR-10.
CIFAR10_TRAIN_IMAGES = 50_000
PLAN_WIDTH = 100  # Characters per line of the printed plan: a notebook cell's width.



@dataclass(frozen=True)
class ResolvedRun:
    """One run with every choice decided: what the steps of ``cifar_cnn.experiment`` take.

    Attributes:
        config: The validated parameters, as the run folder records them.
        recipe: The recipe the run trains with: the named recipe with the run's epochs,
            batch size, learning rate, preprocessing, precision and test-time views.
        source: The data source (``cifar_cnn.data.sources.ResolvedSource``); a local path
            was checked to exist.
        runs_folder: The folder that receives the run folder.
        precision: The Keras dtype policy the model is built with (``"auto"`` decided).
        strategy: The ``tf.distribute`` strategy choice (``"auto"`` decided).
        jit_compile: ``model.compile``'s ``jit_compile`` (``"auto"``: Keras decides).
        chief: Whether this process writes the real run folder (False only on a
            multi-worker worker that is not the chief).
    """

    config: RunConfig
    recipe: Recipe
    source: object
    runs_folder: Path
    precision: str
    strategy: str
    jit_compile: bool | str
    chief: bool

    @property
    def expected_train_examples(self) -> int:
        """Training images of a complete CIFAR-10 after the subset and the validation split."""
        from cifar_cnn.data import validation_count

        count = CIFAR10_TRAIN_IMAGES
        if self.config.max_train_examples is not None:
            count = min(count, self.config.max_train_examples)
        return count - validation_count(count, self.config.validation_split)

    def drops_last_batch(self, train_examples: int) -> bool:
        """Whether each epoch's partial batch is dropped: if the recipe asks and a whole fits.

        Args:
            train_examples: Images in the training split.

        Returns:
            True when training runs on whole batches only.
        """
        return self.recipe.drop_remainder and train_examples >= self.recipe.batch_size

    def steps_per_epoch(self, train_examples: int) -> int:
        """Optimizer steps in one epoch (a last partial batch counts unless it is dropped).

        Args:
            train_examples: Images in the training split.

        Returns:
            The step count, at least 1 for a non-empty split.
        """
        batch_size = self.recipe.batch_size
        if self.drops_last_batch(train_examples):
            return train_examples // batch_size
        return -(-train_examples // batch_size)

    def describe(self) -> str:
        """The training plan in a few lines for people to read.

        Returns:
            Network, optimizer with the learning rate of each parameter group, schedule,
            batch and steps, epochs, augmentation, loss, test-time views, precision,
            strategy, data and output folder.
        """
        recipe, config = self.recipe, self.config
        train_examples = self.expected_train_examples
        steps = self.steps_per_epoch(train_examples)
        dropped = ", last partial batch dropped" if self.drops_last_batch(train_examples) \
            and train_examples % recipe.batch_size else ""
        augmentations = ", ".join(_augmentation_words(name) for name in recipe.augmentations)
        lines = [
            ("recipe", recipe.name + (" (quick mode)" if config.quick else "")),
            ("network", f"{recipe.model} (cifar_cnn.models), input {recipe.preprocessing}d "
                        "inside the model"),
            ("optimizer", _optimizer_words(recipe)),
            ("schedule", _schedule_words(recipe, steps)),
            ("batch", f"{recipe.batch_size} ({steps} step{'' if steps == 1 else 's'} per epoch on "
                      f"{train_examples:,} training images{dropped})"),
            ("epochs", str(recipe.epochs)),
            ("augmentation", augmentations or "none"),
            ("loss", "cross-entropy" + (f", label smoothing {recipe.label_smoothing:g}"
                                        if recipe.label_smoothing else "")),
            ("test time", TEST_TIME_AUGMENTATION_DESCRIPTIONS[recipe.test_time_augmentation]),
            ("precision", self.precision + (" (auto, for this machine)"
                                            if config.mixed_precision == "auto" else "")),
            ("strategy", self.strategy + (" (auto)" if config.strategy == "auto" else "")
             + ("" if self.jit_compile == "auto" else f", XLA {'on' if self.jit_compile else 'off'}")),
            ("data", f"{self.source.description}; training on {train_examples:,} images"
                     + (f" ({config.validation_split:g} held out for validation)"
                        if config.validation_split else "")
                     + (f", testing on a subset of {config.max_test_examples:,}"
                        if config.max_test_examples else "")),
            ("output", str(self.runs_folder / (config.run_name or "<time>-<recipe>"))),
            ("seed", str(config.seed)),
        ]
        if config.quick:
            lines.append(("quick mode", "on: " + ", ".join(
                f"{name} {value}" for name, value in QUICK_OVERRIDES.items())
                + f" at most (${QUICK_ENVIRONMENT_VARIABLE} or quick=True)"))
        width = max(len(name) for name, _ in lines)
        indent = " " * (width + 2)
        return "\n".join(
            textwrap.fill(" ".join(text.split()), PLAN_WIDTH, initial_indent=name.ljust(width + 2),
                          subsequent_indent=indent, break_on_hyphens=False,
                          break_long_words=False)
            for name, text in lines)


def resolve_run(config: RunConfig) -> ResolvedRun:
    """Decide everything a run depends on, once, before any data is loaded.

    Checks what can fail cheaply: the data source exists, TensorBoard is installed when
    asked for. Deciding ``"auto"`` precision and strategy imports TensorFlow; its start-up
    messages are held and written to the run's ``run.log`` when the run folder opens
    (``cifar_cnn.native_logs``), not shown in the notebook.

    Args:
        config: The validated parameters.

    Returns:
        The frozen :class:`ResolvedRun`.

    Raises:
        DataSourceError: A local data source does not exist.
        ValueError: TensorBoard logging was asked for and is not installed.
    """
    from cifar_cnn import data, distribute, precision, runs
    from cifar_cnn.native_logs import hold_native_stderr

    if config.tensorboard:
        from cifar_cnn.tensorboard_logging import require_tensorboard

        require_tensorboard()  # Fail now, not after the first epoch.
    named = get_recipe(config.recipe)
    recipe = dataclasses.replace(
        named, epochs=config.epochs, batch_size=config.batch_size,
        learning_rate=config.learning_rate, preprocessing=config.preprocessing,
        precision=config.mixed_precision,
        test_time_augmentation=_test_time_augmentation(named, config.tta))
    source = data.resolve_source(config.data_source)
    with hold_native_stderr():
        policy = precision.resolve_precision(recipe.precision)
        strategy = distribute.resolve_strategy_name(config.strategy)
    return ResolvedRun(
        config=config, recipe=recipe, source=source,
        runs_folder=runs.runs_folder(config.output_dir), precision=policy, strategy=strategy,
        jit_compile="auto" if config.xla is None else config.xla,
        chief=strategy != "multiworker" or distribute.is_chief())


def _test_time_augmentation(recipe: Recipe, tta: bool) -> str:
    """The test-time augmentation a run uses: the recipe's views when ``tta`` is on.

    Args:
        recipe: The named recipe.
        tta: The run's ``tta`` parameter.

    Returns:
        One of ``cifar_cnn.config.TEST_TIME_AUGMENTATIONS``: ``"none"`` when off, else the
        recipe's views, or ``"flip"`` for a recipe that has none of its own.
    """
    if not tta:
        return "none"
    return recipe.test_time_augmentation if recipe.test_time_augmentation != "none" else "flip"


def _augmentation_words(name: str) -> str:
    from cifar_cnn.augment import TRANSLATE_PIXELS

    if name == "translate":
        return f"translate by up to {TRANSLATE_PIXELS} pixels (reflected edges)"
    if name == "alternating_flip":
        return "alternating flip (each image mirrored every other epoch)"
    return "random flip" if name == "flip" else name


def _optimizer_words(recipe: Recipe) -> str:
    decay = f", decoupled weight decay {recipe.weight_decay:g}" if recipe.weight_decay else ""
    if recipe.optimizer == "adam":
        return f"Adam, learning rate {recipe.learning_rate:g}{decay}"
    if recipe.optimizer == "sgd_nesterov":
        return (f"SGD with Nesterov momentum {recipe.momentum:g}, learning rate "
                f"{recipe.learning_rate:g}{decay}")
    muon = recipe.muon
    if recipe.optimizer != "muon" or muon is None:
        return recipe.optimizer
    return (f"Muon on the conv filters, learning rate {recipe.learning_rate:g} (momentum "
            f"{muon.filter_momentum:g}, {muon.newton_schulz_steps} Newton-Schulz steps); "
            f"Nesterov SGD (momentum {muon.sgd_momentum:g}, per-example rates on the "
            f"summed loss) on the BatchNorm and whitening biases at "
            f"{muon.bias_learning_rate:g} and the head at {muon.head_learning_rate:g}, "
            f"L2 {muon.weight_decay:g}")


def _schedule_words(recipe: Recipe, steps_per_epoch: int) -> str:
    total = recipe.epochs * steps_per_epoch
    if recipe.schedule == "constant":
        return "constant"
    if recipe.schedule == "linear_decay":
        rates = "every rate" if recipe.optimizer == "muon" else "the rate"
        text = f"linear decay: {rates} from its peak at step 1 to 0 after step {total}"
        if recipe.muon is not None:
            text += (f"; the whitening bias trains for {recipe.muon.whitening_bias_epochs:g} "
                     "epochs, then stays frozen")
        return text
    if recipe.schedule == "warmup_linear_decay":
        warmup = max(1, int(recipe.warmup_fraction * total))
        return (f"linear warm-up over {warmup} steps from {recipe.warmup_start:g} x the peak, "
                f"then linear decay to 0 after step {total}")
    return recipe.schedule


__all__ = ["CIFAR10_TRAIN_IMAGES", "ResolvedRun", "resolve_run"]
