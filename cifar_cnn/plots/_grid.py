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
TITLE_GAP_INCHES = 0.03


def image_grid(images: np.ndarray, titles: Sequence[str], columns: int,
               title: str | None = None, title_colors: Sequence[str] | None = None) -> Figure:
    """Images in rows of ``columns``, each with its title.

    Every image and title is drawn on one axes that spans the figure, in inch coordinates:
    one axes per image (as before) cost 0.74 s of CPU to build and save a 25-image grid on a
    2-core AVX2 machine, one axes for all costs 0.16 s, and every run saves two such grids.

    Args:
        images: uint8 images (N, 32, 32, 3).
        titles: One title per image (may span lines).
        columns: Images per row.
        title: Optional title over the grid.
        title_colors: Optional colour of each image's title (default black).

    Returns:
        The Figure: one axes holding every image and its title (``axis.texts``).
    """
    rows = max(1, math.ceil(len(images) / columns))
    title_lines = max((str(text).count("\n") + 1 for text in titles), default=1)
    row_inches = CELL_INCHES + title_lines * TITLE_LINE_INCHES + GAP_INCHES
    top_inches = SUPTITLE_INCHES if title else GAP_INCHES
    width = columns * (CELL_INCHES + GAP_INCHES) + GAP_INCHES
    height = top_inches + rows * row_inches
    figure = Figure(figsize=(width, height))
    axis = figure.add_axes((0, 0, 1, 1))
    axis.set_axis_off()
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        left = GAP_INCHES + column * (CELL_INCHES + GAP_INCHES)
        bottom = height - top_inches - (row + 1) * row_inches + GAP_INCHES
        axis.imshow(np.asarray(image, dtype=np.uint8),
                    extent=(left, left + CELL_INCHES, bottom, bottom + CELL_INCHES))
        axis.text(left + CELL_INCHES / 2, bottom + CELL_INCHES + TITLE_GAP_INCHES, titles[index],
                  fontsize=8, ha="center", va="bottom",
                  color=title_colors[index] if title_colors else "black")
    # imshow fits the limits to the last image and fixes square pixels: the axes is the page.
    axis.set_xlim(0, width)
    axis.set_ylim(0, height)
    axis.set_aspect("auto")
    if title:
        figure.suptitle(title, y=1 - GAP_INCHES / height, va="top")
    return figure
