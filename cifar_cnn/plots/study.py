"""The figure of a search's study: its optimisation history, its trials' curves, importances.

Takes a :class:`cifar_cnn.study_report.StudyReport`; drawn from its numbers with matplotlib
alone (Optuna's own matplotlib plots are experimental and draw one figure each).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from matplotlib.figure import Figure

from cifar_cnn.plots._axes import epoch_axis

if TYPE_CHECKING:  # Only for annotations.
    from cifar_cnn.study_report import StudyReport

_STATE_STYLE = {"complete": ("tab:blue", "o"), "pruned": ("tab:orange", "v"),
                "failed": ("tab:red", "x")}


def _history(axis, report: StudyReport) -> None:
    best_so_far, best_numbers, best_values = None, [], []
    for state, (color, marker) in _STATE_STYLE.items():
        trials = [trial for trial in report.trials if trial.state == state
                  and trial.value is not None and not trial.surplus]
        if trials:
            axis.scatter([trial.number for trial in trials], [trial.value for trial in trials],
                         color=color, marker=marker, label=state, zorder=3)
    for trial in report.trials:
        if trial.state == "complete" and trial.value is not None:
            best_so_far = trial.value if best_so_far is None else max(best_so_far, trial.value)
        if best_so_far is not None:
            best_numbers.append(trial.number)
            best_values.append(best_so_far)
    if best_numbers:
        axis.step(best_numbers, best_values, where="post", color="tab:green", label="best so far")
    axis.set_xlabel("trial")
    axis.set_ylabel(report.objective)
    axis.grid(alpha=0.3)
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize=8, loc="lower right")
    axis.set_title("Optimisation history")


def _curves(axis, report: StudyReport) -> None:
    epochs = set()
    for trial in report.trials:
        if not trial.steps:
            continue
        color = _STATE_STYLE.get(trial.state, ("tab:gray", None))[0]
        steps = sorted(trial.steps)
        epochs.update(steps)
        axis.plot(steps, [trial.steps[step] for step in steps], color=color, alpha=0.7,
                  marker=".")
    if epochs:
        epoch_axis(axis, sorted(epochs))
    axis.set_ylabel("monitored accuracy reported")
    axis.grid(alpha=0.3)
    axis.set_title("Trials by epoch (orange: pruned)")


def _importances(axis, report: StudyReport) -> None:
    if not report.importances:
        axis.text(0.5, 0.5, "parameter importances:\n" + (report.importances_note or "none"),
                  ha="center", va="center", wrap=True, fontsize=9, transform=axis.transAxes)
        axis.set_axis_off()
        return
    names = list(report.importances)
    axis.barh(range(len(names)), [report.importances[name] for name in names],
              color="tab:purple")
    axis.set_yticks(range(len(names)), names)
    axis.invert_yaxis()
    axis.set_xlim(0, 1)
    axis.set_xlabel("importance")
    axis.set_title("Parameter importances")


def study_figure(report: StudyReport) -> Figure:
    """Three panels: each trial's value and the best so far, every trial's reported curve,
    and the parameters' importances.

    Args:
        report: The study's report.

    Returns:
        The Figure.
    """
    figure = Figure(figsize=(14, 4.2), layout="constrained")
    history, curves, importances = figure.subplots(1, 3)
    _history(history, report)
    _curves(curves, report)
    _importances(importances, report)
    figure.suptitle(f"Study {report.name}")
    return figure
