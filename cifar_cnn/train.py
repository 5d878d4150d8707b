"""Compiling and fitting a model with callbacks that record, checkpoint and resume. Draws nothing."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras

from cifar_cnn import runs
from cifar_cnn.checkpoints import TrainingStateCheckpoint, restore_training_state
# Imported here (not only where it is built) so that a model saved with it loads with its
# optimizer wherever this module, like the custom loss below, has been imported.
from cifar_cnn.muon import AirbenchMuon
from cifar_cnn.recipes import Recipe
from cifar_cnn.training_callbacks import EpochLine, EpochProgress, HistoryRecorder

OPTIMIZERS = ("adam", "sgd_nesterov", "muon")
SCHEDULES = ("constant", "warmup_linear_decay", "linear_decay")


def set_seeds(seed: int) -> None:
    """Seed Python, NumPy and the backend so weights and data order are reproducible.

    Args:
        seed: Any non-negative integer.
    """
    keras.utils.set_random_seed(seed)


def learning_rate_schedule(recipe: Recipe, steps_per_epoch: int):
    """The recipe's learning rate as a constant or a Keras schedule.

    Args:
        recipe: The resolved run's recipe (``ResolvedRun.recipe``): names the schedule
            and gives the peak learning rate and the epochs.
        steps_per_epoch: Optimizer steps per epoch.

    Returns:
        A float or a ``keras.optimizers.schedules.LearningRateSchedule``.
    """
    learning_rate, epochs = recipe.learning_rate, recipe.epochs
    if recipe.schedule == "constant":
        return learning_rate
    if recipe.schedule == "linear_decay":
        # peak * (1 - step / total_steps): the peak at the first step, as airbench.
        return keras.optimizers.schedules.PolynomialDecay(
            learning_rate, max(1, epochs * steps_per_epoch), end_learning_rate=0.0, power=1.0)
    if recipe.schedule == "warmup_linear_decay":
        total_steps = max(1, epochs * steps_per_epoch)
        warmup_steps = max(1, int(recipe.warmup_fraction * total_steps))
        # At least one decay step, so a one-step run (a tiny quick-mode set) still works.
        decay = keras.optimizers.schedules.PolynomialDecay(
            learning_rate, max(1, total_steps - warmup_steps), end_learning_rate=0.0, power=1.0)
        return _WarmupThen(decay, learning_rate, warmup_steps, start=recipe.warmup_start)
    raise ValueError(f"Unknown schedule {recipe.schedule!r}; valid choices: {', '.join(SCHEDULES)}.")


@keras.saving.register_keras_serializable(package="cifar_cnn")
class _WarmupThen(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from ``start * peak`` to ``peak`` over ``warmup_steps``, then ``after``."""

    def __init__(self, after, peak, warmup_steps, start=0.0):
        self.after, self.peak, self.warmup_steps = after, float(peak), int(warmup_steps)
        self.start = float(start)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        fraction = self.start + (1.0 - self.start) * step / self.warmup_steps
        warmup = self.peak * fraction
        return keras.ops.where(step < self.warmup_steps, warmup,
                               self.after(step - self.warmup_steps))

    def get_config(self):
        return {"after": keras.saving.serialize_keras_object(self.after), "peak": self.peak,
                "warmup_steps": self.warmup_steps, "start": self.start}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["after"] = keras.saving.deserialize_keras_object(config["after"])
        return cls(**config)


def make_optimizer(recipe: Recipe, steps_per_epoch: int):
    """Build the recipe's optimizer.

    Args:
        recipe: The run's recipe: optimizer, schedule, learning rate, epochs, weight decay.
        steps_per_epoch: Optimizer steps per epoch.

    Returns:
        A ``keras.optimizers.Optimizer``.
    """
    schedule = learning_rate_schedule(recipe, steps_per_epoch)
    decay = recipe.weight_decay or None
    if recipe.optimizer == "adam":
        return keras.optimizers.Adam(schedule, weight_decay=decay)
    if recipe.optimizer == "sgd_nesterov":
        return keras.optimizers.SGD(schedule, momentum=recipe.momentum, nesterov=True,
                                    weight_decay=decay)
    if recipe.optimizer == "muon":
        if recipe.muon is None:
            raise ValueError(f"Recipe {recipe.name!r} uses the muon optimizer but has no "
                             "muon settings (cifar_cnn.recipes.MuonSettings).")
        return AirbenchMuon(
            schedule, peak_learning_rate=recipe.learning_rate, batch_size=recipe.batch_size,
            whitening_bias_steps=math.ceil(recipe.muon.whitening_bias_epochs * steps_per_epoch),
            settings=recipe.muon)
    raise ValueError(f"Unknown optimizer {recipe.optimizer!r}; valid choices: {', '.join(OPTIMIZERS)}.")


@keras.saving.register_keras_serializable(package="cifar_cnn")
class SparseCrossentropyWithSmoothing(keras.losses.Loss):
    """Cross-entropy on integer labels with label smoothing.

    Keras' ``SparseCategoricalCrossentropy`` has no label smoothing, and one-hot labels in
    the pipeline would change what every other part of the library sees; this loss
    one-hot encodes inside.

    Args:
        label_smoothing: Weight moved from the true class to a uniform distribution.
    """

    def __init__(self, label_smoothing: float = 0.0, name: str = "crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        one_hot = keras.ops.one_hot(keras.ops.reshape(keras.ops.cast(y_true, "int32"), [-1]),
                                    keras.ops.shape(y_pred)[-1])
        return keras.losses.categorical_crossentropy(one_hot, y_pred,
                                                     label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def make_loss(recipe: Recipe) -> keras.losses.Loss:
    """The seed's sparse cross-entropy, or its label-smoothed form when the recipe asks.

    Args:
        recipe: Gives ``label_smoothing``.

    Returns:
        A Keras loss taking integer labels and probabilities.
    """
    if recipe.label_smoothing:
        return SparseCrossentropyWithSmoothing(recipe.label_smoothing)
    return keras.losses.SparseCategoricalCrossentropy()


def compile_model(model: keras.Model, optimizer, loss, jit_compile: bool | str = "auto"
                  ) -> keras.Model:
    """Compile with the given optimizer and loss, and accuracy as the metric.

    Args:
        model: An uncompiled model ending in softmax probabilities.
        optimizer: From :func:`make_optimizer`.
        loss: From :func:`make_loss`.
        jit_compile: Passed to ``model.compile`` (XLA).

    Returns:
        The same model, compiled.
    """
    model.compile(optimizer=optimizer, loss=loss,
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                  jit_compile=jit_compile)
    return model


@dataclass
class TrainingResult:
    """What :func:`fit` returns.

    Attributes:
        history: One dict per epoch of the whole run (resumed epochs included), with
            ``epoch``, ``seconds``, ``loss``, ``accuracy`` and, with validation data,
            ``val_loss`` and ``val_accuracy``.
        resumed_from_epoch: Epochs restored from an interrupted run (0 for a fresh run).
        train_seconds: Wall-clock seconds of this process's ``model.fit`` call.
        strategy: The concrete strategy choice trained with (what ``"auto"`` chose).
        replicas: How many replicas trained in sync.
    """

    history: list[dict] = field(default_factory=list)
    resumed_from_epoch: int = 0
    train_seconds: float = 0.0
    strategy: str | None = None
    replicas: int = 1

    def series(self, name: str) -> list[float]:
        """Return one metric over the epochs (e.g. ``"val_accuracy"``)."""
        return [row[name] for row in self.history if name in row]


def run_callbacks(run_directory: Path, epochs: int, resumed_from: int, *, extra_callbacks=(),
                  monitor_best: bool = False, print_epochs: bool = True):
    """The callbacks every training loop here uses, in the order they must run.

    History first (so an epoch's row is on disk before its state), then the atomic training
    state, the caller's callbacks, the best model by ``val_accuracy``, the progress within
    each epoch (wiped at its end) and the epoch line.

    Args:
        run_directory: Where ``history.json``, ``training_state/`` and ``best.keras`` go.
        epochs: Total epochs of the run, for the epoch line.
        resumed_from: Epochs restored from an interrupted run.
        extra_callbacks: More Keras callbacks.
        monitor_best: Keep ``best.keras`` by ``val_accuracy`` (needs validation data).
        print_epochs: Print one line per epoch, and show progress within each epoch where
            a person watches (``training_callbacks.EpochProgress``; nothing in logs).

    Returns:
        ``(history_recorder, callbacks)``.
    """
    run_directory = Path(run_directory)
    recorder = HistoryRecorder(run_directory / runs.HISTORY_FILE, completed_epochs=resumed_from)
    callbacks = [recorder, TrainingStateCheckpoint(run_directory / runs.TRAINING_STATE_FOLDER),
                 *extra_callbacks]
    if monitor_best:
        best_so_far = max((row.get("val_accuracy", -math.inf) for row in recorder.rows),
                          default=None)
        callbacks.append(keras.callbacks.ModelCheckpoint(
            run_directory / runs.BEST_MODEL_FILE, monitor="val_accuracy", mode="max",
            save_best_only=True, initial_value_threshold=best_so_far))
    if print_epochs:
        callbacks += [EpochProgress(epochs), EpochLine(epochs)]
    return recorder, callbacks


def fit(model: keras.Model, train_dataset, epochs: int, run_directory: Path, *,
        validation_dataset=None, monitor_best: bool = False, extra_callbacks=(),
        print_epochs: bool = True) -> TrainingResult:
    """Train a compiled model with ``model.fit``, resuming from the run folder if it can.

    Callbacks: per-epoch history on disk, atomic per-epoch training state (weights and
    optimizer) for resuming a killed run, a one-line-per-epoch display, and, when
    ``monitor_best``, the best model by validation accuracy.

    Args:
        model: A compiled model.
        train_dataset: A ``tf.data.Dataset`` of training batches.
        epochs: Total epochs of the run (a resumed run trains only the rest).
        run_directory: The run folder: receives ``history.json``, ``training_state/`` (kept
            for resuming until the run is finalised) and,
            with ``monitor_best``, ``best.keras``.
        validation_dataset: Optional dataset evaluated after each epoch.
        monitor_best: Keep ``best.keras`` by ``val_accuracy`` (only meaningful on a real
            validation split, never on the test set).
        extra_callbacks: More Keras callbacks (e.g. TensorBoard).
        print_epochs: Print one line per epoch, and show progress within each epoch where
            a person watches (a notebook or a terminal; nothing in logs).

    Returns:
        A :class:`TrainingResult`.
    """
    run_directory = Path(run_directory)
    run_directory.mkdir(parents=True, exist_ok=True)
    state_directory = run_directory / runs.TRAINING_STATE_FOLDER
    resumed_from = restore_training_state(model, state_directory)
    recorder, callbacks = run_callbacks(
        run_directory, epochs, resumed_from, extra_callbacks=extra_callbacks,
        monitor_best=monitor_best and validation_dataset is not None, print_epochs=print_epochs)
    if print_epochs and resumed_from:
        print(f"resuming after epoch {resumed_from} from {state_directory}", flush=True)
    started = time.perf_counter()
    model.fit(train_dataset, epochs=epochs, initial_epoch=resumed_from,
              validation_data=validation_dataset, callbacks=callbacks, verbose=0,
              shuffle=False)  # The tf.data pipeline already shuffles.
    train_seconds = time.perf_counter() - started
    # The training state stays until the run folder is finished (RunFolder.finish): a kill
    # between here and there must still find every epoch done, not start again.
    return TrainingResult(history=recorder.rows, resumed_from_epoch=resumed_from,
                          train_seconds=train_seconds)
