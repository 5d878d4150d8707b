"""Figures of a training run: loss and accuracy per epoch."""

from __future__ import annotations

from typing import Sequence

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def training_curves(history: Sequence[dict], validation_label: str = "validation") -> Figure:
    """Loss and accuracy per epoch, training against validation: overfitting shows as a gap.

    Args:
        history: One dict per epoch with ``epoch``, ``loss``, ``accuracy`` and optionally
            ``val_loss`` and ``val_accuracy`` (``TrainingResult.history``).
        validation_label: What the validation data was ("validation" or "test").

    Returns:
        The Figure.
    """
    figure = Figure(figsize=(10, 3.8), layout="constrained")
    loss_axis, accuracy_axis = figure.subplots(1, 2)
    epochs = [row["epoch"] for row in history]
    for axis, metric in ((loss_axis, "loss"), (accuracy_axis, "accuracy")):
        axis.plot(epochs, [row[metric] for row in history], "o-", label="train")
        if history and f"val_{metric}" in history[0]:
            axis.plot(epochs, [row[f"val_{metric}"] for row in history], "o-",
                      label=validation_label)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
        axis.legend()
    loss_axis.set_title("Loss")
    accuracy_axis.set_title("Accuracy")
    return figure
