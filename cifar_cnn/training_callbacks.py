"""The callbacks of every training loop here: history on disk, the epoch line, live progress.

``cifar_cnn.train.run_callbacks`` puts them in the order they must run. They record and
show; they change nothing about what trains.
"""

from __future__ import annotations

import json
import numbers
import sys
import threading
import time
from pathlib import Path

import keras

from cifar_cnn.files import write_json

class HistoryRecorder(keras.callbacks.Callback):
    """Keep every epoch's metrics and wall-clock seconds, on disk after each epoch.

    ``seconds`` is the whole epoch as the user waits for it; ``train_seconds`` leaves out
    the per-epoch validation pass, for speed comparisons.

    On a resumed run it starts from the rows already recorded for the restored epochs, so
    the history covers the whole run, not just the part after the restart.

    Args:
        path: The run's ``history.json``.
        completed_epochs: Epochs already done (restored) when this fit starts.
    """

    def __init__(self, path: Path, completed_epochs: int = 0):
        super().__init__()
        self.path = Path(path)
        previous = json.loads(self.path.read_text()) if self.path.is_file() else []
        # Rows beyond the restored state belong to an epoch whose checkpoint never landed.
        self.rows = [row for row in previous if row["epoch"] <= completed_epochs]
        self._epoch_started = 0.0
        self._validation_started = 0.0
        self._validation_seconds = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_started = time.perf_counter()
        self._validation_seconds = 0.0

    def on_test_begin(self, logs=None):
        self._validation_started = time.perf_counter()

    def on_test_end(self, logs=None):
        self._validation_seconds += time.perf_counter() - self._validation_started

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._epoch_started
        row = {"epoch": epoch + 1, "seconds": seconds,
               "train_seconds": seconds - self._validation_seconds}
        row.update({name: float(value) for name, value in (logs or {}).items()})
        self.rows.append(row)
        write_json(self.path, self.rows)


class EpochLine(keras.callbacks.Callback):
    """Print one short line per epoch: readable live and in an executed notebook.

    Args:
        total_epochs: The run's epoch count, for the "3/20" display.
        stream: Where to print (default standard output).
    """

    def __init__(self, total_epochs: int, stream=None):
        super().__init__()
        self.total_epochs = total_epochs
        self.stream = stream or sys.stdout
        self._started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        print(f"epoch {epoch + 1}/{self.total_epochs} - {time.perf_counter() - self._started:.1f}s"
              f"{_metrics_text(logs or {})}", file=self.stream, flush=True)


class EpochProgress(keras.callbacks.Callback):
    """Progress within each epoch where a person watches; nothing in logs.

    In a notebook, a bar updated in place; in a terminal, a ``\\r``-redrawn line; elsewhere
    (papermill, sweeps, CI, a log file) nothing: :mod:`cifar_cnn.progress` decides. The line
    says the epoch, steps done of the total, the time, the rate and an estimate of what is
    left, and the running loss and accuracy; "starting (compiling)" from the first moment of
    the epoch, before a first step that may take a while to trace; "validating" during
    the validation pass. At the end of each epoch a terminal's line is wiped, so that
    :class:`EpochLine` prints the epoch's one line where it stood; a notebook keeps one
    display for the whole fit (above the epoch lines: one display per epoch would soon pass
    JupyterLab's 50 outputs per cell, beyond which it shows no more), emptied at the end.

    Batch-end hooks only record (Keras may run them on a worker thread: ``async_safe``);
    drawing happens on the training thread, before the next step or at the epoch's end.

    Args:
        total_epochs: The run's epoch count, for the "3/20" display.
        line: Where to draw (default: a :class:`cifar_cnn.progress.ProgressLine` chosen
            automatically when training starts).
        clock: Seconds, monotonic (tests pass fakes).
    """

    async_safe = True  # Batch-end hooks only store numbers under a lock.

    def __init__(self, total_epochs: int, line=None, clock=time.perf_counter):
        super().__init__()
        self.total_epochs = total_epochs
        self.line, self.clock = line, clock
        self._owns_line = line is None
        self._lock = threading.Lock()
        self._epoch = 0
        self._epoch_started = 0.0
        self._steps_done = 0
        self._first_step_ended: float | None = None  # The rate leaves the first step out.
        self._logs: dict = {}
        self._known_steps: int | None = None  # Learnt from a finished epoch when unknown.
        self._validating = False
        self._validation_started = 0.0
        self._validation_done = 0
        self._validation_steps: int | None = None
        self._traced = False  # Whether a training step has run in this process.
        self._validation_traced = False

    # Hooks -------------------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        if self._owns_line:
            from cifar_cnn.progress import ProgressLine

            self.line = ProgressLine()

    def on_epoch_begin(self, epoch, logs=None):
        with self._lock:
            self._epoch, self._steps_done, self._logs = epoch, 0, {}
            self._validating, self._first_step_ended = False, None
        self._epoch_started = self.clock()
        self._draw(force=True)

    def on_train_batch_begin(self, batch, logs=None):
        self._draw()

    def on_train_batch_end(self, batch, logs=None):
        with self._lock:
            self._steps_done = max(self._steps_done, int(batch) + 1)
            if self._first_step_ended is None:
                self._first_step_ended = self.clock()
            if logs:
                self._logs = dict(logs)
        self._traced = True

    def on_test_begin(self, logs=None):
        with self._lock:
            self._validating, self._validation_done = True, 0
        self._validation_started = self.clock()
        self._draw(force=True)

    def on_test_batch_begin(self, batch, logs=None):
        self._draw()

    def on_test_batch_end(self, batch, logs=None):
        with self._lock:
            self._validation_done = max(self._validation_done, int(batch) + 1)
        self._validation_traced = True

    def on_test_end(self, logs=None):
        with self._lock:
            self._validating = False
            if self._validation_done:
                self._validation_steps = self._validation_done
        self._validation_traced = True

    def on_epoch_end(self, epoch, logs=None):
        with self._lock:
            if self._steps_done and not self._steps_total():
                self._known_steps = self._steps_done
        if self.line is not None:
            self.line.clear()  # A terminal's line is wiped: the epoch line comes next.

    def on_train_end(self, logs=None):
        if self.line is not None:
            self.line.close()

    # Drawing -----------------------------------------------------------------------------
    def _steps_total(self) -> int | None:
        steps = (self.params or {}).get("steps")
        return int(steps) if steps else self._known_steps

    def _draw(self, force: bool = False) -> None:
        if self.line is None or not self.line.due(force):
            return
        text, fraction = self.describe()
        self.line.show(text, fraction)

    def describe(self) -> tuple[str, float | None]:
        """The current line and the fraction of the epoch done (None when not known)."""
        from cifar_cnn.progress import format_seconds

        with self._lock:
            done, logs, validating = self._steps_done, dict(self._logs), self._validating
            validation_done, first_step_ended = self._validation_done, self._first_step_ended
        total = self._steps_total()
        now = self.clock()
        elapsed = now - self._epoch_started
        head = f"epoch {self._epoch + 1}/{self.total_epochs}"
        if validating:
            trained = format_seconds(self._validation_started - self._epoch_started)
            text = f"{head}: trained {_count(done, 'step')} in {trained}; validating"
            if validation_done:
                of_total = f"/{self._validation_steps}" if self._validation_steps else ""
                text += f" {validation_done}{of_total} batches"
            elif not self._validation_traced:
                text += " (compiling)"
            text += f" - {format_seconds(now - self._validation_started)}"
            return text + _metrics_text(logs), 1.0 if total else None
        if not done:
            text = f"{head}: starting" + ("" if self._traced else " (compiling)") + "..."
            if elapsed >= 1:
                text += f" {format_seconds(elapsed)}"
            return text, 0.0 if total else None
        text = f"{head}: {done}/{total} steps" if total else f"{head}: {_count(done, 'step')}"
        text += f" - {format_seconds(elapsed)}"
        # Seconds per step, the first one (which traces, or waits for the pipeline) left
        # out once there are others; 0 on a clock too coarse to tell.
        rate = elapsed / done
        if done > 1 and first_step_ended is not None and now > first_step_ended:
            rate = (now - first_step_ended) / (done - 1)
        if rate >= 1:
            text += f", {rate:.2f} s/step"
        elif rate > 0:
            text += f", {1 / rate:.1f} steps/s"
        if total and done < total and rate > 0:
            text += f", ~{format_seconds(rate * (total - done))} left"
        return text + _metrics_text(logs), min(1.0, done / total) if total else None


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _metrics_text(logs: dict) -> str:
    """`` - loss 1.2345 - accuracy 0.5678`` from Keras logs (the learning rate left out), for
    the epoch line and the progress line alike."""
    parts = [f"{name} {float(value):.4f}" for name, value in logs.items()
             if name != "learning_rate" and isinstance(value, numbers.Real)]
    return "".join(f" - {part}" for part in parts)


class TrialReporter(keras.callbacks.Callback):
    """Report the monitored accuracy to a search's trial after every epoch; stop if pruned.

    Runs after the history and training-state callbacks (``train.run_callbacks`` puts extra
    callbacks there), so a pruned epoch is on disk like any other. It only asks training to
    stop (``model.stop_training``); the caller sees :attr:`pruned_after_epoch` and records
    the run as pruned (``experiment.train_model``).

    Args:
        trial: The ``optuna.trial.Trial`` (``search_trial.TrialConnection.open_trial``).
        monitor: The logged metric reported (the per-epoch ``val_accuracy``).
    """

    def __init__(self, trial, monitor: str = "val_accuracy"):
        super().__init__()
        self.trial = trial
        self.monitor = monitor
        self.pruned_after_epoch: int | None = None
        self.reason: str | None = None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            return  # Nothing monitored this epoch: nothing to judge it by.
        self.trial.report(float(value), step=epoch + 1)
        if self.trial.should_prune():
            self.pruned_after_epoch = epoch + 1
            self.reason = (f"{self.monitor} {float(value):.4f} after epoch {epoch + 1} judged "
                           f"not promising by the study's pruner")
            self.model.stop_training = True
