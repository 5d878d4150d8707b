"""The image grid shared by the data and evaluation figures."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure


def image_grid(images: np.ndarray, titles: Sequence[str], columns: int,
               title: str | None = None, title_colors: Sequence[str] | None = None) -> Figure:
    """Images in rows of ``columns``, each with its title; unused cells stay blank.

    Args:
        images: uint8 images (N, 32, 32, 3).
        titles: One title per image.
        columns: Images per row.
        title: Optional title over the grid.
        title_colors: Optional colour of each image's title (default black).

    Returns:
        The Figure.
    """
    rows = max(1, math.ceil(len(images) / columns))
    figure = Figure(figsize=(1.6 * columns, 1.75 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.set_axis_off()
        if index < len(images):
            axis.imshow(np.asarray(images[index], dtype=np.uint8))
            axis.set_title(titles[index], fontsize=8,
                           color=title_colors[index] if title_colors else "black")
    if title:
        figure.suptitle(title)
    return figure
