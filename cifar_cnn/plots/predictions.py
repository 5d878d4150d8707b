"""Figures of predictions on the user's own images (the ``predict`` command's contact sheet)."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

# Longer file names are shortened in the middle so every tile's title stays one line.
_MAXIMUM_NAME_LENGTH = 22


def _shorten(name: str, limit: int = _MAXIMUM_NAME_LENGTH) -> str:
    if len(name) <= limit:
        return name
    keep = limit - 1
    return name[:keep - keep // 2] + "…" + name[-(keep // 2):]


def prediction_contact_sheet(images: np.ndarray, names: Sequence[str],
                             rankings: Sequence[Sequence[tuple[str, float]]],
                             columns: int = 5, title: str | None = None) -> Figure:
    """A grid of images as the model saw them, each titled with its name and top classes.

    Args:
        images: uint8 images (N, 32, 32, 3): the resized model inputs, so the sheet shows
            exactly what was classified.
        names: A label per image, usually its file name.
        rankings: Per image, ``[(class name, probability), ...]`` most probable first
            (``cifar_cnn.predict.top_k``); at most the first three are shown.
        columns: Images per row (fewer when there are fewer images).
        title: Optional title over the sheet.

    Returns:
        The Figure.
    """
    if len(images) == 0:
        raise ValueError("A contact sheet needs at least one image.")
    if not len(images) == len(names) == len(rankings):
        raise ValueError(f"images, names and rankings must have one entry per image; got "
                         f"{len(images)}, {len(names)} and {len(rankings)}.")
    columns = max(1, min(columns, len(images)))
    rows = math.ceil(len(images) / columns)
    lines = 1 + min(3, max(len(ranking) for ranking in rankings))
    figure = Figure(figsize=(2.1 * columns, (1.8 + 0.18 * lines) * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    for index, axis in enumerate(axes.flat):
        if index >= len(images):
            axis.set_axis_off()
            continue
        # Nearest-neighbour display: 32x32 pixels drawn as crisp blocks, not smoothed.
        axis.imshow(np.asarray(images[index], dtype=np.uint8), interpolation="nearest")
        # A thin frame instead of axes: white areas (e.g. former transparency) stay visible.
        axis.set_xticks([])
        axis.set_yticks([])
        for spine in axis.spines.values():
            spine.set_edgecolor("0.6")
        ranking = list(rankings[index])[:3]
        text = [_shorten(str(names[index]))]
        text += [f"{name} {probability:.0%}" for name, probability in ranking]
        axis.set_title("\n".join(text), fontsize=8, loc="center")
    if title:
        figure.suptitle(title)
    return figure

