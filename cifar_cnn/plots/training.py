"""Figures of a training run: loss and accuracy per epoch."""

from __future__ import annotations

import math
from typing import Sequence

from matplotlib.figure import Figure

from cifar_cnn.plots._axes import epoch_axis


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
        series = [("train", [row[metric] for row in history])]
        if history and f"val_{metric}" in history[0]:
            series.append((validation_label, [row[f"val_{metric}"] for row in history]))
        # The higher of the first values (one epoch: it decides which label goes above).
        highest = max(values[0] for _, values in series) if epochs else 0.0
        for label, values in series:
            line, = axis.plot(epochs, values, "o-", markersize=6 if len(epochs) <= 3 else 4,
                              label=label)
            if len(epochs) == 1:  # A lone dot says little: write its value beside it.
                # Two close values: the higher one's text above its dot, the other's below.
                above = len(series) == 1 or values[0] == highest
                axis.annotate(f"{values[0]:.3f}", (epochs[0], values[0]),
                              xytext=(8, 3 if above else -3), textcoords="offset points",
                              va="bottom" if above else "top", fontsize=9,
                              color=line.get_color())
        epoch_axis(axis, epochs)
        if metric == "accuracy" and len(epochs) <= 2:
            axis.set_ylim(0, 1)  # Matplotlib would zoom a few points to a hair's breadth.
        elif len(epochs) == 1 and math.isfinite(highest) and highest > 0:
            axis.set_ylim(0, highest * 1.25)
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
        axis.legend()
    loss_axis.set_title("Loss")
    accuracy_axis.set_title("Accuracy")
    return figure

