"""Figures of the data set itself: sample images and how many images each class has."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from cifar_cnn.plots._grid import image_grid


def sample_grid(images: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                count: int = 25, columns: int = 5, seed: int = 0) -> Figure:
    """A grid of randomly chosen images titled with their class, like the seed's first plot.

    Args:
        images: uint8 images (N, 32, 32, 3).
        labels: Integer labels (N,).
        class_names: Name of each label.
        count: How many images to show.
        columns: Images per row.
        seed: Which images are picked.

    Returns:
        The Figure.
    """
    chosen = np.random.default_rng(seed).choice(len(images), size=min(count, len(images)),
                                                replace=False)
    return image_grid(images[chosen], [class_names[labels[i]] for i in chosen], columns)


def class_balance(labels_by_split: dict[str, np.ndarray], class_names: Sequence[str]) -> Figure:
    """Grouped bars of how many images each class has in each split.

    Args:
        labels_by_split: Split name -> integer labels, e.g. ``{"train": y_train, "test": y_test}``.
        class_names: Name of each label.

    Returns:
        The Figure.
    """
    figure = Figure(figsize=(9, 3.5), layout="constrained")
    axis = figure.subplots()
    positions = np.arange(len(class_names))
    width = 0.8 / max(1, len(labels_by_split))
    for offset, (split, labels) in enumerate(labels_by_split.items()):
        counts = np.bincount(labels, minlength=len(class_names))
        axis.bar(positions + offset * width, counts, width, label=f"{split} ({len(labels):,})")
    axis.set_xticks(positions + width * (len(labels_by_split) - 1) / 2, class_names,
                    rotation=30)
    axis.set_ylabel("images")
    axis.set_title("Images per class")
    # Beside the axes, not over them: inside, it covered a bar whatever corner it chose.
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    return figure
