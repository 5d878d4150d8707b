"""A search's results read back: the comparison of its runs plus the study's own view.

The study's view is what Optuna knows and the run folders do not: each trial's state and
objective value, the best trial, the parameter importances and the optimisation history.
:func:`load_study_report` reads it from the storage and each trial's run folder;
:func:`write_study_report` writes the usual comparison (``<study>-comparison.csv/.md/.png``,
:mod:`cifar_cnn.compare`) and the study's view (``<study>-study.md`` and ``.png``). The
search writes them when it ends, ``cifar-cnn compare --study NAME`` on demand, and the
comparison notebook shows the same.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cifar_cnn import compare, run_catalog
from cifar_cnn.files import write_figure, write_text
from cifar_cnn.runs import COMPLETE, FAILED, PRUNED, runs_folder
from cifar_cnn.search_storage import (
    default_storage,
    display_name,
    is_database_url,
    open_storage,
)

# The fewest complete trials from which parameter importances say anything.
MIN_TRIALS_FOR_IMPORTANCE = 3


@dataclass
class TrialRow:
    """One trial of the study and its run.

    Attributes:
        number: The trial's number in the study.
        state: ``complete``, ``pruned``, ``failed``, ``running``, ``running (worker
            silent)`` (its worker stopped beating: killed) or ``waiting``.
        value: The objective's value (a pruned trial's: its last reported accuracy).
        parameters: The searched parameters' values.
        run_name: Its run folder's name, or None (a trial that never ran).
        steps: ``{epoch: monitored accuracy}`` as the trial reported them.
        error: Why it failed, or None.
        surplus: Asked at the same moment as another worker's last trial and not run.
    """

    number: int
    state: str
    value: float | None
    parameters: dict[str, Any]
    run_name: str | None = None
    steps: dict[int, float] = field(default_factory=dict)
    error: str | None = None
    surplus: bool = False


@dataclass
class StudyReport:
    """A study and its runs, ready to print, save or plot.

    Attributes:
        name: The study's name.
        storage: Where it lives (password hidden).
        objective: What the trials' values measure.
        trials: Every trial, by number.
        runs: The run folders of the trials that have one, read back (named by run).
        importances: Parameter -> importance (summing to 1), or None.
        importances_note: Why there are no importances, when there are none.
    """

    name: str
    storage: str
    objective: str
    trials: list[TrialRow]
    runs: list[run_catalog.RunSummary]
    importances: dict[str, float] | None = None
    importances_note: str | None = None

    @property
    def best(self) -> TrialRow | None:
        """The complete trial with the highest value, or None."""
        complete = [trial for trial in self.trials if trial.state == COMPLETE
                    and trial.value is not None]
        return max(complete, key=lambda trial: trial.value) if complete else None

    def counts(self) -> dict[str, int]:
        """Trials per state (surplus trials, which never ran, left out)."""
        counts: dict[str, int] = {}
        for trial in self.trials:
            if not trial.surplus:
                counts[trial.state] = counts.get(trial.state, 0) + 1
        return counts

    def markdown(self) -> str:
        """The study's view as Markdown: counts, best trial, importances, every trial."""
        counts = ", ".join(f"{count} {state}" for state, count in self.counts().items())
        lines = [f"## Study {self.name}", "", f"Storage: `{self.storage}`; objective: "
                 f"{self.objective} (maximised); trials: {counts or 'none'}.", ""]
        best = self.best
        if best is None:
            lines += ["No trial has completed yet.", ""]
        else:
            shown = ", ".join(f"{name}={_format(value)}" for name, value in best.parameters.items())
            lines += [f"Best trial: {best.number} (run {best.run_name}), {self.objective} "
                      f"{best.value:.4f}, with {shown}.", ""]
        if self.importances:
            lines += ["| parameter | importance |", "|---|---|"]
            lines += [f"| {name} | {value:.3f} |" for name, value in self.importances.items()]
            lines.append("")
        elif self.importances_note:
            lines += [f"Parameter importances: {self.importances_note}", ""]
        names = list(dict.fromkeys(name for trial in self.trials for name in trial.parameters))
        lines += ["| trial | run | state | value | " + " | ".join(names) + " | epochs reported |",
                  "|---|---|---|---|" + "---|" * len(names) + "---|"]
        for trial in self.trials:
            if trial.surplus:
                continue
            value = "" if trial.value is None else f"{trial.value:.4f}"
            cells = [str(trial.number), trial.run_name or "", trial.state, value]
            cells += [_format(trial.parameters.get(name)) for name in names]
            cells.append(str(len(trial.steps)))
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"


def _format(value) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _importances(study, complete: int) -> tuple[dict[str, float] | None, str | None]:
    if complete < MIN_TRIALS_FOR_IMPORTANCE:
        return None, (f"need {MIN_TRIALS_FOR_IMPORTANCE} complete trials, the study has "
                      f"{complete}.")
    import optuna

    try:
        return dict(optuna.importance.get_param_importances(study)), None
    except (ValueError, RuntimeError, ZeroDivisionError) as error:
        # E.g. every complete trial has the same value: nothing to attribute.
        return None, f"not computable here ({' '.join(str(error).split())[:200]})."


def load_study_report(study_name: str, storage: str | None = None,
                      runs_dir: str | Path | None = None) -> StudyReport:
    """Read a study from its storage and its trials' run folders.

    Args:
        study_name: The study's name.
        storage: Its storage (default: the journal file ``<runs_dir>/<study>.optuna-journal``).
        runs_dir: Where its run folders are (default: the project's runs folder); a trial
            whose recorded run folder is gone is looked for here by name.

    Returns:
        The :class:`StudyReport`.

    Raises:
        ValueError: No such study in the storage (the message lists the ones there).
    """
    import optuna

    from cifar_cnn.search import (
        ERROR_ATTRIBUTE,
        HEARTBEAT_ATTRIBUTE,
        RUN_NAME_ATTRIBUTE,
        SPEC_ATTRIBUTE,
        STALE_HEARTBEATS,
        SURPLUS_ATTRIBUTE,
    )

    runs_dir = runs_folder(runs_dir)
    storage = storage or default_storage(runs_dir, study_name)
    if not is_database_url(storage) and not Path(storage).is_file():
        raise ValueError(f"no study storage at {storage}: give the study's --storage, or "
                         "the runs folder the search wrote to.")
    opened = open_storage(storage)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=study_name, storage=opened)
    except KeyError:
        names = [summary.study_name for summary in optuna.get_all_study_summaries(opened)]
        raise ValueError(f"no study named {study_name!r} in {display_name(storage)}; it holds: "
                         f"{', '.join(names) or 'no study'}.") from None
    import json

    settings = json.loads(study.user_attrs.get(SPEC_ATTRIBUTE, "{}"))
    objective = settings.get("objective", "value")
    heartbeat = settings.get("heartbeat_seconds")
    states = {optuna.trial.TrialState.COMPLETE: COMPLETE,
              optuna.trial.TrialState.PRUNED: PRUNED, optuna.trial.TrialState.FAIL: FAILED}
    rows, summaries = [], []
    for trial in study.get_trials(deepcopy=False):
        row = TrialRow(number=trial.number, state=states.get(trial.state, trial.state.name.lower()),
                       value=trial.value if trial.state != optuna.trial.TrialState.PRUNED
                       else (trial.intermediate_values.get(trial.last_step)
                             if trial.last_step is not None else None),
                       parameters=dict(trial.params),
                       run_name=trial.user_attrs.get(RUN_NAME_ATTRIBUTE),
                       steps=dict(trial.intermediate_values),
                       error=trial.user_attrs.get(ERROR_ATTRIBUTE),
                       surplus=bool(trial.user_attrs.get(SURPLUS_ATTRIBUTE)))
        if row.state == "running" and heartbeat:
            beat = trial.system_attrs.get(HEARTBEAT_ATTRIBUTE)
            silent = time.time() - beat if beat is not None else None
            if silent is not None and silent > STALE_HEARTBEATS * heartbeat:
                # Marked failed when a worker of the study next starts (cifar_cnn.search).
                row.state = "running (worker silent)"
                row.error = (f"no heartbeat for {silent:.0f} s: its worker is gone; the "
                             "study's next worker marks it failed")
        rows.append(row)
        if row.run_name and (runs_dir / row.run_name).is_dir():
            summaries.append(run_catalog.read_run(runs_dir / row.run_name))
    complete = sum(row.state == COMPLETE for row in rows)
    importances, note = _importances(study, complete)
    return StudyReport(name=study_name, storage=display_name(storage), objective=objective,
                       trials=rows, runs=summaries, importances=importances,
                       importances_note=note)


def write_study_report(report: StudyReport, directory: str | Path) -> dict[str, Path]:
    """Write the comparison of the study's runs and the study's view.

    Args:
        report: From :func:`load_study_report`.
        directory: Where the files go.

    Returns:
        ``{"csv", "markdown", "figure"}`` of the comparison (when the study has run folders)
        and ``{"study_markdown", "study_figure"}`` of the study's view.
    """
    from cifar_cnn.plots.study import study_figure

    directory = Path(directory)
    paths: dict[str, Path] = {}
    if report.runs:
        paths.update(compare.write_comparison(report.runs, directory,
                                              f"{report.name}-comparison"))
    paths["study_markdown"] = write_text(directory / f"{report.name}-study.md", report.markdown())
    paths["study_figure"] = write_figure(directory / f"{report.name}-study.png",
                                         study_figure(report), dpi=100)
    return paths
