"""Axis helpers shared by the figures of several modules."""

from __future__ import annotations

from typing import Sequence

from matplotlib.ticker import MaxNLocator


def epoch_axis(axis, epochs: Sequence[int]) -> None:
    """Whole epochs on the x axis; few epochs get a tick each and half an epoch of margin,
    so one epoch sits mid-axis at "1" (not on a 0.945-1.050 axis) and two are not at its
    edges. The training curves and the comparison's validation curves share it.

    Args:
        axis: A matplotlib Axes.
        epochs: The epochs plotted (any order, repeats allowed).
    """
    axis.set_xlabel("epoch")
    if 0 < len(epochs) <= 15:
        axis.set_xticks(sorted(set(epochs)))
        axis.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
    else:
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
