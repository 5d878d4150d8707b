"""Planning a sweep: every parameter set named, validated and checked against its run folder.

Nothing is executed here. :func:`plan_sweep` says of every run of a sweep whether it is to be
executed, resumed, skipped (complete already) or is invalid; ``cifar-cnn sweep --dry-run``
prints that plan and :func:`cifar_cnn.sweep.run_sweep` executes it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cifar_cnn import run_catalog, run_reuse
from cifar_cnn import runs as run_folders
from cifar_cnn.config import RunConfig
from cifar_cnn.runs import FAILED, PENDING, SKIPPED
from cifar_cnn.sweep_spec import SweepSpec, expand_parameter_sets, run_names, sanitize


@dataclass
class SweepRun:
    """One run of a sweep and what happened to it (a row of ``sweep.json``).

    Attributes:
        index: 1-based position in the sweep.
        run_name: The run folder's name.
        parameters: The parameter set as the sweep gave it (no output_dir, no run_name).
        run_folder: ``<output_dir>/<run_name>``.
        status: One of ``runs.SWEEP_STATUSES``.
        error: Why it failed (``ExceptionName: message``), or None.
        failed_at: ``"validation"`` (never executed) or ``"execution"``, or None.
        resumed: Its folder held an interrupted run, which this execution continues.
        started_at: When its execution started (UTC, ISO 8601).
        finished_at: When its execution ended.
        seconds: Wall-clock seconds of the execution.
        notebook: The executed notebook, once one exists.
        test_accuracy: From ``metrics.json`` once complete.
    """

    index: int
    run_name: str
    parameters: dict[str, Any]
    run_folder: Path
    status: str = PENDING
    error: str | None = None
    failed_at: str | None = None
    resumed: bool = False
    started_at: str | None = None
    finished_at: str | None = None
    seconds: float | None = None
    notebook: Path | None = None
    test_accuracy: float | None = None

    def notebook_parameters(self) -> dict[str, Any]:
        """The parameters papermill injects: the set plus the folder it must write to."""
        return {**self.parameters, "output_dir": str(self.run_folder.parent),
                "run_name": self.run_name}

    def to_record(self) -> dict[str, Any]:
        """The JSON-ready row of ``sweep.json``."""
        record = dataclasses.asdict(self)
        record["run_folder"] = str(self.run_folder)
        record["notebook"] = str(self.notebook) if self.notebook else None
        return record


def read_test_accuracy(run_folder: Path) -> float | None:
    """The test accuracy a run folder records, or None before the run completed."""
    return run_catalog.read_run(run_folder).test_accuracy


def sweep_output_dir(spec: SweepSpec) -> Path:
    """The folder of a sweep's run folders: its output_dir, else base's, else the runs folder."""
    return run_folders.runs_folder(spec.output_dir or spec.base.get("output_dir"))


def plan_sweep(spec: SweepSpec) -> tuple[Path, list[SweepRun]]:
    """Expand, name and validate every parameter set, and see which are already done.

    Nothing is executed. Invalid sets come back ``failed`` (``failed_at="validation"``),
    runs whose folder holds a completed run of the same config come back ``skipped``, a
    folder holding a different config is ``failed``; the rest are ``pending``.

    Args:
        spec: The sweep.

    Returns:
        ``(output_dir, runs)``.
    """
    # Where run folders go and what they are called is the sweep's business, not a value
    # that may vary from run to run (an explicit run_name in a runs entry is the exception).
    for key, place in (("output_dir", spec.grid), ("run_name", spec.grid),
                       ("run_name", spec.base)):
        if key in place:
            where = "grid" if place is spec.grid else "base"
            raise ValueError(f"{key} cannot be set in the sweep's {where}: run folders are "
                             "named from the parameters (use name for a prefix, output_dir "
                             "for their folder, or run_name in a runs entry).")
    if any("output_dir" in run for run in spec.runs):
        raise ValueError("output_dir cannot be set in a runs entry: all of a sweep's run "
                         "folders go under the sweep's output_dir.")
    for index, run in enumerate(spec.runs):
        if "run_name" in run and (not isinstance(run["run_name"], str)
                                  or sanitize(run["run_name"]) != run["run_name"]):
            raise ValueError(f"runs[{index}]: run_name must be a plain folder name of letters, "
                             f"digits, '.', '_' and '-', got {run['run_name']!r}.")
    base = dict(spec.base)
    base.pop("output_dir", None)
    output_dir = sweep_output_dir(spec)
    parameter_sets = expand_parameter_sets(base, spec.grid, spec.runs)
    names = run_names(parameter_sets, prefix=spec.name)
    runs = []
    for index, (parameters, name) in enumerate(zip(parameter_sets, names), start=1):
        parameters = {key: value for key, value in parameters.items() if key != "run_name"}
        run = SweepRun(index=index, run_name=name, parameters=parameters,
                       run_folder=output_dir / name)
        try:
            config = RunConfig.from_parameters(run.notebook_parameters())
        except (ValueError, TypeError) as error:
            run.status, run.failed_at = FAILED, "validation"
            run.error = f"{type(error).__name__}: {error}"
            runs.append(run)
            continue
        # The one rule of run folders (run_reuse.existing_run_state), as start_run applies it.
        existing = run_reuse.existing_run_state(run.run_folder, config,
                                                given_parameters=set(run.parameters))
        if existing.state == run_reuse.DONE:
            run.status, run.test_accuracy = SKIPPED, read_test_accuracy(run.run_folder)
            notebook = run.run_folder / run_folders.NOTEBOOK_FILE
            run.notebook = notebook if notebook.is_file() else None
        elif existing.state == run_reuse.CONFLICT:
            # Caught here rather than in the notebook, so nothing is executed to find it out.
            run.status, run.failed_at = FAILED, "validation"
            run.error = f"ValueError: {existing.reason}"
        run.resumed = existing.state == run_reuse.RESUME
        runs.append(run)
    return output_dir, runs
