"""Figures of a trained model's results: confusion matrix, per-class accuracy, mistakes.

Also one image beside its class probabilities, as the seed notebook ends.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from cifar_cnn.plots._grid import image_grid


def confusion_matrix_figure(matrix: np.ndarray, class_names: Sequence[str],
                            normalize: bool = True) -> Figure:
    """A confusion matrix heat map, rows true classes, columns predicted classes.

    Args:
        matrix: Counts (classes, classes).
        class_names: Name of each label.
        normalize: Show each row as fractions of its true class.

    Returns:
        The Figure.
    """
    values = matrix.astype(np.float64)
    if normalize:
        values = values / np.maximum(values.sum(axis=1, keepdims=True), 1)
    figure = Figure(figsize=(7, 6), layout="constrained")
    axis = figure.subplots()
    image = axis.imshow(values, cmap="Blues", vmin=0)
    figure.colorbar(image, ax=axis, shrink=0.8)
    ticks = np.arange(len(class_names))
    axis.set_xticks(ticks, class_names, rotation=45, ha="right")
    axis.set_yticks(ticks, class_names)
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    threshold = values.max() / 2 if values.size else 0
    for row in range(values.shape[0]):
        for column in range(values.shape[1]):
            text = f"{values[row, column]:.2f}" if normalize else str(matrix[row, column])
            axis.text(column, row, text, ha="center", va="center", fontsize=7,
                      color="white" if values[row, column] > threshold else "black")
    axis.set_title("Confusion matrix" + (" (fraction of each true class)" if normalize else ""))
    return figure


def per_class_accuracy_figure(per_class_accuracy: Sequence[float],
                              class_names: Sequence[str]) -> Figure:
    """Horizontal bars of each class's accuracy.

    Args:
        per_class_accuracy: Accuracy of each class, in label order.
        class_names: Name of each label.

    Returns:
        The Figure.
    """
    figure = Figure(figsize=(6, 3.8), layout="constrained")
    axis = figure.subplots()
    axis.barh(class_names, per_class_accuracy)
    axis.invert_yaxis()
    axis.set_xlim(0, 1)
    axis.set_xlabel("accuracy")
    axis.set_title("Test accuracy per class")
    for position, value in enumerate(per_class_accuracy):
        axis.text(min(value + 0.01, 0.9), position, f"{value:.2f}", va="center", fontsize=8)
    return figure


def misclassified_gallery(images: np.ndarray, labels: np.ndarray, predictions: np.ndarray,
                          indices: Sequence[int], class_names: Sequence[str],
                          columns: int = 6) -> Figure:
    """Misclassified images titled "true -> predicted".

    Args:
        images: uint8 images (N, 32, 32, 3).
        labels: True labels (N,).
        predictions: Predicted labels (N,).
        indices: Which images to show (e.g. ``evaluate.misclassified_indices``).
        class_names: Name of each label.
        columns: Images per row.

    Returns:
        The Figure.
    """
    indices = list(indices)
    titles = [f"{class_names[labels[i]]}\n-> {class_names[predictions[i]]}" for i in indices]
    return image_grid(images[indices], titles, columns, title="Misclassified test images",
                      title_colors=["firebrick"] * len(indices))


def prediction_figure(image: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str],
                      true_label: int | None = None) -> Figure:
    """One image beside a bar chart of its class probabilities (the seed's last step).

    Args:
        image: uint8 image (32, 32, 3).
        probabilities: Probability of each class.
        class_names: Name of each label.
        true_label: The true class, if known: its bar is outlined and named in the title.

    Returns:
        The Figure.
    """
    figure = Figure(figsize=(8, 3.2), layout="constrained")
    image_axis, bar_axis = figure.subplots(1, 2, width_ratios=[1, 1.6])
    image_axis.imshow(np.asarray(image, dtype=np.uint8))
    image_axis.set_axis_off()
    predicted = int(np.argmax(probabilities))
    title = f"predicted: {class_names[predicted]} ({probabilities[predicted]:.0%})"
    if true_label is not None:
        title += f"\ntrue: {class_names[true_label]}"
    image_axis.set_title(title, fontsize=9)
    colors = ["tab:green" if index == predicted else "tab:gray"
              for index in range(len(class_names))]
    bars = bar_axis.barh(class_names, probabilities, color=colors)
    if true_label is not None:
        bars[true_label].set_edgecolor("black")
        bars[true_label].set_linewidth(1.5)
    bar_axis.invert_yaxis()
    bar_axis.set_xlim(0, 1)
    bar_axis.set_xlabel("probability")
    return figure
