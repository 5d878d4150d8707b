"""Test accuracy during training, measured outside the training time, for the recipe benchmark.

A Keras callback scores the whole test set with ``cifar_cnn.evaluate.predict_probabilities``
(the function behind a run's final evaluation) after every epoch and, when asked, a few times
within each epoch, so that the time to an accuracy is known at a finer step than whole epochs
(a short-budget recipe's one or two epochs would otherwise give one or two points). Every
point scores the network as it stands (``test_accuracy_no_tta``). For the short-budget
recipes (``--fine-recipes``) with a test-time augmentation, every point also scores it as the
run reports its accuracy, with the recipe's views (``test_accuracy``), which is how the
airbench record measures its time to an accuracy (evaluation left out of the time); for every
other recipe, six views at every epoch would cost more than the epoch, so ``test_accuracy``
is the plain score there and the recipe's views are scored once, by the run's own final
evaluation.

Evaluation time is no part of training time. Epoch ends: the run's history already leaves out
its own monitoring pass, and the callback runs after the history recorder. Within an epoch:
the callback keeps the seconds it spent evaluating per epoch, and the benchmark subtracts them
from that epoch's recorded training seconds (:func:`training_clock`).
"""

from __future__ import annotations

import time

# Written into every benchmark record, so a reader of the JSON knows what the curve is.
METHOD = {
    "method": "Keras callback: cifar_cnn.evaluate.predict_probabilities on the whole test set "
              "after every epoch and, for recipes given to --fine-recipes, also "
              "--evaluations-per-epoch - 1 times within each epoch (evenly spaced in steps); "
              "test_accuracy_no_tta without test-time augmentation, test_accuracy with the "
              "views named by curve_test_time_augmentation (the recipe's own for "
              "--fine-recipes, none otherwise); seconds_to uses test_accuracy",
    "counted_in_train_seconds": False,
}


def make_test_curve(images, labels, label: str, steps_per_epoch: int,
                    evaluations_per_epoch: int = 1, test_time_augmentation: str = "none"):
    """A callback that records test accuracy during training, and the list it fills.

    Args:
        images: Test images (N, 32, 32, 3), 0-255.
        labels: Test labels (N,).
        label: Printed before each point's line.
        steps_per_epoch: Optimizer steps in one epoch (to space the points within it).
        evaluations_per_epoch: Points per epoch, the epoch's end included (1: epoch ends only).
        test_time_augmentation: The views of ``test_accuracy`` (``predict_probabilities``'s
            choices); ``"none"`` makes it the plain score.

    Returns:
        ``(callback, points)``: ``points`` gets one dict per evaluation: ``epoch`` (1-based),
        ``step`` (steps done in that epoch), ``epoch_end`` (bool), ``test_accuracy`` (with
        ``test_time_augmentation``), ``test_accuracy_no_tta``, ``seconds_into_epoch``
        (training seconds within the epoch, evaluations excluded; None at epoch ends, whose
        time the run's history gives) and
        ``evaluation_seconds``. ``callback.evaluation_seconds_within`` maps an epoch to the
        seconds its within-epoch evaluations took.
    """
    import keras
    import numpy as np

    from cifar_cnn.evaluate import predict_probabilities

    labels = np.asarray(labels)
    points = []

    def accuracy(probabilities) -> float:
        return float((probabilities.argmax(axis=1) == labels).mean())

    within = sorted({round(steps_per_epoch * index / evaluations_per_epoch)
                     for index in range(1, evaluations_per_epoch)} - {0, steps_per_epoch})

    class TestCurve(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.evaluation_seconds_within = {}

        def _score(self, epoch: int, step: int, epoch_end: bool, seconds_into_epoch):
            started = time.perf_counter()
            plain = accuracy(predict_probabilities(self.model, images, batch_size=2000))
            scored = plain if test_time_augmentation == "none" else accuracy(
                predict_probabilities(self.model, images, batch_size=2000,
                                      test_time_augmentation=test_time_augmentation))
            point = {"epoch": epoch + 1, "step": step, "epoch_end": epoch_end,
                     "test_accuracy": scored, "test_accuracy_no_tta": plain,
                     "seconds_into_epoch": seconds_into_epoch,
                     "evaluation_seconds": time.perf_counter() - started}
            points.append(point)
            where = "" if epoch_end else f" step {step}/{steps_per_epoch}"
            views = "" if test_time_augmentation == "none" else \
                f" ({plain:.4f} without {test_time_augmentation} TTA)"
            print(f"  {label} epoch {epoch + 1}{where}: test accuracy {scored:.4f}{views}",
                  flush=True)
            return point["evaluation_seconds"]

        def on_epoch_begin(self, epoch, logs=None):
            self._epoch, self._started, self._step = epoch, time.perf_counter(), 0
            self.evaluation_seconds_within[epoch + 1] = 0.0

        def on_train_batch_end(self, batch, logs=None):
            self._step += 1
            if self._step in within:
                spent = self.evaluation_seconds_within[self._epoch + 1]
                seconds = time.perf_counter() - self._started - spent
                self.evaluation_seconds_within[self._epoch + 1] += self._score(
                    self._epoch, self._step, False, seconds)

        def on_epoch_end(self, epoch, logs=None):
            self._score(epoch, self._step, True, None)

    callback = TestCurve()
    return callback, points


def training_clock(points: list[dict], history: list[dict],
                   evaluation_seconds_within: dict[int, float]) -> list[dict]:
    """The curve's points with their training seconds since the start of training.

    Args:
        points: The callback's points.
        history: The run's history rows (``train_seconds`` per epoch, which include the
            within-epoch evaluations, since the run cannot tell them from training).
        evaluation_seconds_within: The callback's seconds of within-epoch evaluation, by epoch.

    Returns:
        The points, each with ``train_seconds`` (training alone, evaluations excluded) and,
        at epoch ends, the epoch's ``train_accuracy``.
    """
    epoch_seconds = [row["train_seconds"] - evaluation_seconds_within.get(row["epoch"], 0.0)
                     for row in history]
    timed = []
    for point in points:
        before = sum(epoch_seconds[:point["epoch"] - 1])
        if point["epoch_end"]:
            row = history[point["epoch"] - 1]
            seconds = before + epoch_seconds[point["epoch"] - 1]
            timed.append({**point, "train_seconds": seconds, "train_accuracy": row["accuracy"]})
        else:
            timed.append({**point, "train_seconds": before + point["seconds_into_epoch"]})
    return timed
