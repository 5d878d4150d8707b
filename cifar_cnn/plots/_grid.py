"""The image grid shared by the data and evaluation figures."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure


# The grid's geometry in inches. Fixed, not "constrained": matplotlib's layout solver took
# 0.7 s of the 1.2 s that saving a 25-image grid cost, in every run and every notebook.
CELL_INCHES = 1.4
GAP_INCHES = 0.12
TITLE_LINE_INCHES = 0.17
SUPTITLE_INCHES = 0.4


def image_grid(images: np.ndarray, titles: Sequence[str], columns: int,
               title: str | None = None, title_colors: Sequence[str] | None = None) -> Figure:
    """Images in rows of ``columns``, each with its title.

    Args:
        images: uint8 images (N, 32, 32, 3).
        titles: One title per image (may span lines).
        columns: Images per row.
        title: Optional title over the grid.
        title_colors: Optional colour of each image's title (default black).

    Returns:
        The Figure: one axes per image, laid out on a fixed grid.
    """
    rows = max(1, math.ceil(len(images) / columns))
    title_lines = max((str(text).count("\n") + 1 for text in titles), default=1)
    row_inches = CELL_INCHES + title_lines * TITLE_LINE_INCHES + GAP_INCHES
    top_inches = SUPTITLE_INCHES if title else GAP_INCHES
    width = columns * (CELL_INCHES + GAP_INCHES) + GAP_INCHES
    height = top_inches + rows * row_inches
    figure = Figure(figsize=(width, height))
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        left = GAP_INCHES + column * (CELL_INCHES + GAP_INCHES)
        bottom = height - top_inches - (row + 1) * row_inches + GAP_INCHES
        axis = figure.add_axes((left / width, bottom / height, CELL_INCHES / width,
                                CELL_INCHES / height))
        axis.set_axis_off()
        axis.imshow(np.asarray(image, dtype=np.uint8))
        axis.set_title(titles[index], fontsize=8,
                       color=title_colors[index] if title_colors else "black")
    if title:
        figure.suptitle(title, y=1 - GAP_INCHES / height, va="top")
    return figure
