"""Figures comparing runs: validation curves and test accuracies, one line or bar per run.

They take run summaries (:class:`cifar_cnn.run_catalog.RunSummary`, as :mod:`cifar_cnn.compare`
reads them). Each run is labelled by the parameters that set it apart from the others
(``"seed=7"``; :func:`cifar_cnn.compare.run_labels`), not by its name, which is often a
timestamp.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from matplotlib.figure import Figure

from cifar_cnn.plots._axes import epoch_axis

if TYPE_CHECKING:  # Only for annotations.
    from cifar_cnn.run_catalog import RunSummary


def _use_distinct_colors(axis, count: int) -> None:
    # The default cycle repeats after 10 colours; more runs than that need a longer palette.
    if count > 10:
        from matplotlib import colormaps

        palette = colormaps["tab20"]
        axis.set_prop_cycle(color=[palette(index % 20) for index in range(count)])


def _labels(runs: Sequence[RunSummary], labels: Sequence[str] | None) -> list[str]:
    if labels is None:
        from cifar_cnn.compare import run_labels  # Deferred: compare imports this module.

        return run_labels(runs)
    if len(labels) != len(runs):
        raise ValueError(f"Give one label per run: {len(labels)} labels for {len(runs)} runs.")
    return list(labels)


def _monitored_label(runs: Sequence[RunSummary]) -> str:
    kinds = {run.monitored_on for run in runs if run.history} - {None}
    if kinds == {"test"}:
        return "test accuracy per epoch (no validation split)"
    if kinds == {"validation"}:
        return "validation accuracy"
    return "val_accuracy (validation split, or test set without one)"


def _draw_validation_curves(axis, runs: Sequence[RunSummary], labels: Sequence[str]) -> None:
    with_curves = [(run, label) for run, label in zip(runs, labels) if run.monitored_curve]
    _use_distinct_colors(axis, len(with_curves))
    for run, label in with_curves:
        epochs = [row["epoch"] for row in run.history if "val_accuracy" in row]
        axis.plot(epochs, run.monitored_curve, "o-", markersize=3, label=label)
    if not with_curves:
        axis.text(0.5, 0.5, "no run has a per-epoch history yet", ha="center", va="center",
                  transform=axis.transAxes)
    else:
        axis.legend(fontsize=7)
    epoch_axis(axis, sorted({row["epoch"] for run, _ in with_curves for row in run.history
                             if "val_accuracy" in row}))
    axis.set_ylabel(_monitored_label(runs))
    axis.grid(alpha=0.3)
    axis.set_title("Validation curves")


def _draw_test_accuracies(axis, runs: Sequence[RunSummary], labels: Sequence[str]) -> None:
    values = [run.test_accuracy or 0.0 for run in runs]
    # By position, labelled after: two runs with the same label keep a bar each.
    bars = axis.barh(range(len(runs)), values, color="tab:blue")
    axis.set_yticks(range(len(runs)), labels)
    for bar, run in zip(bars, runs):
        # Runs without a test accuracy keep their row, labelled with why it is empty.
        label = f"{run.test_accuracy:.4f}" if run.test_accuracy is not None else run.status
        axis.text(bar.get_width() + 0.01, bar.get_y() + bar.get_height() / 2, label,
                  va="center", fontsize=8)
    axis.invert_yaxis()  # First run on top, as in the table.
    axis.set_xlim(0, 1.12)
    axis.set_xlabel("test accuracy")
    axis.tick_params(axis="y", labelsize=8)
    axis.set_title("Test accuracy")


def _height(runs: Sequence[RunSummary]) -> float:
    return max(3.5, 1.5 + 0.3 * len(runs))


def validation_curves_figure(runs: Sequence[RunSummary],
                             labels: Sequence[str] | None = None) -> Figure:
    """Every run's per-epoch ``val_accuracy`` on one axis, one line per run.

    Args:
        runs: The runs; those without a history are left out.
        labels: One legend label per run (default: what differs between the runs,
            :func:`cifar_cnn.compare.run_labels`).

    Returns:
        The Figure.
    """
    figure = Figure(figsize=(7, 4.2), layout="constrained")
    _draw_validation_curves(figure.subplots(), runs, _labels(runs, labels))
    return figure


def accuracy_bars_figure(runs: Sequence[RunSummary],
                         labels: Sequence[str] | None = None) -> Figure:
    """Horizontal bars of each run's test accuracy, in the table's order.

    Args:
        runs: The runs; one without a test accuracy keeps an empty row with its status.
        labels: One label per run (default: what differs between the runs,
            :func:`cifar_cnn.compare.run_labels`).

    Returns:
        The Figure.
    """
    figure = Figure(figsize=(7, _height(runs)), layout="constrained")
    _draw_test_accuracies(figure.subplots(), runs, _labels(runs, labels))
    return figure


def comparison_figure(runs: Sequence[RunSummary],
                      labels: Sequence[str] | None = None) -> Figure:
    """The validation curves and the test accuracy bars side by side.

    Args:
        runs: The runs.
        labels: One label per run (default: what differs between the runs,
            :func:`cifar_cnn.compare.run_labels`).

    Returns:
        The Figure.
    """
    labels = _labels(runs, labels)
    figure = Figure(figsize=(13, max(4.2, _height(runs))), layout="constrained")
    curves_axis, bars_axis = figure.subplots(1, 2)
    _draw_validation_curves(curves_axis, runs, labels)
    _draw_test_accuracies(bars_axis, runs, labels)
    return figure
