"""Reading run folders back: what each run holds, and finding the runs at a place.

Every reader (``cifar-cnn runs``, ``compare``, ``predict``, the sweep planner) reads a run
folder through :func:`read_run`, from its small JSON files and never its model, so listing
runs is instant. The folder's file names and status words are :mod:`cifar_cnn.runs`'.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cifar_cnn import run_lock
from cifar_cnn.runs import (
    COMPLETE,
    CONFIG_FILE,
    FAILED,
    HISTORY_FILE,
    INTERRUPTED,
    METRICS_FILE,
    NOTEBOOK_FILE,
    PRUNED,
    RUN_RECORD_FILE,
    RUNNING,
    UNREADABLE,
    read_json,
    runs_folder,
)


@dataclass
class RunSummary:
    """What a run folder holds, read back from its small JSON files (never its model).

    Attributes:
        name: The run's name (its folder's name).
        path: The run folder, or None for a sweep's run that never got one.
        status: One of ``RUN_STATUSES``: ``"complete"``, ``"running"`` (its writer holds
            the run's lock), ``"interrupted"`` (not finished and nobody writing it: killed),
            ``"pruned"`` (stopped early by its search: its history is its result),
            ``"failed"`` or ``"unreadable"``.
        config: ``config.json`` (or, for a sweep's run that never ran, its parameters).
        metrics: ``metrics.json``, or None before the run completed.
        history: ``history.json``: one row per completed epoch.
        record: ``run.json``: status, times, environment.
        error: Why the run failed, or why the folder is unreadable; else None.
    """

    name: str
    path: Path | None = None
    status: str = INTERRUPTED
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def recipe(self) -> str | None:
        """The training recipe, if recorded."""
        return (self.metrics or {}).get("recipe") or self.config.get("recipe")

    @property
    def epochs_planned(self) -> int | None:
        """Epochs the config asked for."""
        return self.config.get("epochs")

    @property
    def epochs_done(self) -> int | None:
        """Epochs trained: from the metrics, else the per-epoch history."""
        if self.metrics and self.metrics.get("epochs") is not None:
            return self.metrics["epochs"]
        return len(self.history) if self.history else None

    @property
    def test_accuracy(self) -> float | None:
        """Final test accuracy, or None before the run completed."""
        return (self.metrics or {}).get("test_accuracy")

    @property
    def train_seconds(self) -> float | None:
        """Seconds spent training (of the completed epochs, for an incomplete run)."""
        if self.metrics and self.metrics.get("train_seconds") is not None:
            return self.metrics["train_seconds"]
        seconds = [row["seconds"] for row in self.history if "seconds" in row]
        return float(sum(seconds)) if seconds else None

    @property
    def monitored_curve(self) -> list[float]:
        """The per-epoch ``val_accuracy`` values, in epoch order."""
        return [row["val_accuracy"] for row in self.history if "val_accuracy" in row]

    @property
    def best_monitored_accuracy(self) -> float | None:
        """Best per-epoch validation (or, without a split, test) accuracy so far."""
        if self.metrics and self.metrics.get("best_monitored_accuracy") is not None:
            return self.metrics["best_monitored_accuracy"]
        monitored = self.monitored_curve
        return max(monitored) if monitored else None

    @property
    def best_epoch(self) -> int | None:
        """The 1-based epoch of :attr:`best_monitored_accuracy`."""
        if self.metrics and self.metrics.get("best_epoch") is not None:
            return self.metrics["best_epoch"]
        monitored = self.monitored_curve
        # An interrupted run still has a history worth comparing: read the best from it.
        return monitored.index(max(monitored)) + 1 if monitored else None

    @property
    def monitored_on(self) -> str | None:
        """``"validation"`` or ``"test"``: what the per-epoch ``val_accuracy`` measured."""
        if self.metrics and self.metrics.get("monitored_on"):
            return self.metrics["monitored_on"]
        split = self.config.get("validation_split")
        if isinstance(split, (int, float)) and not isinstance(split, bool):
            return "validation" if split > 0 else "test"
        return None


def read_run(path: str | os.PathLike) -> RunSummary:
    """Read one run folder from its JSON files.

    Args:
        path: The run folder.

    Returns:
        Its :class:`RunSummary`. A damaged file gives status ``"unreadable"`` with the
        reason in ``error``, never an exception, so one bad folder cannot hide the rest.
    """
    path = Path(path)
    summary = RunSummary(name=path.name, path=path)
    try:
        config = read_json(path / CONFIG_FILE, default={})
        metrics = read_json(path / METRICS_FILE)
        history = read_json(path / HISTORY_FILE, default=[])
        record = read_json(path / RUN_RECORD_FILE, default={})
    except (OSError, ValueError) as error:
        summary.status, summary.error = UNREADABLE, " ".join(str(error).split())
        return summary
    if not isinstance(config, dict) or not isinstance(history, list) \
            or not isinstance(metrics, (dict, type(None))) or not isinstance(record, dict):
        summary.status, summary.error = UNREADABLE, "unexpected JSON structure"
        return summary
    summary.config, summary.metrics, summary.record = config, metrics, record
    summary.history = [row for row in history if isinstance(row, dict)]
    if metrics is not None:
        summary.status = COMPLETE
    elif record.get("status") == PRUNED:
        summary.status = PRUNED
    elif record.get("status") == FAILED:
        summary.status, summary.error = FAILED, record.get("error")
    else:
        # The lock, not run.json, tells a run being written from one that was killed.
        summary.status = RUNNING if run_lock.holder(path) is not None else INTERRUPTED
    return summary


def is_run_folder(path: Path) -> bool:
    """True for a folder holding a run's config, or the executed notebook of a run that
    failed before its config cell. Hidden folders (a replaced run set aside) are not runs."""
    return path.is_dir() and not path.name.startswith(".") and any(
        (path / marker).is_file() for marker in (CONFIG_FILE, NOTEBOOK_FILE))


def find_runs(location: str | os.PathLike | None = None, pattern: str = "*") -> list[Path]:
    """The run folders at a location: the location itself, or its matching sub-folders.

    Args:
        location: A run folder, or a folder of run folders (default: :func:`runs_folder`).
        pattern: Shell-style glob on the run folders' names (``"lr*"``); ignored when
            ``location`` is itself a run folder.

    Returns:
        Run folders, sorted by name.

    Raises:
        FileNotFoundError: ``location`` is not an existing folder.
    """
    location = runs_folder(location)
    if not location.is_dir():
        raise FileNotFoundError(f"{location} is not a folder of runs (it does not exist"
                                f"{' as a folder' if location.exists() else ''}). Give a run "
                                "folder or the output_dir that training wrote to.")
    if is_run_folder(location) and (location / CONFIG_FILE).is_file():
        return [location]
    return sorted((child for child in location.iterdir()
                   if fnmatch.fnmatch(child.name, pattern) and is_run_folder(child)),
                  key=lambda child: child.name)


def list_runs(location: str | os.PathLike | None = None, pattern: str = "*") -> list[RunSummary]:
    """Summaries of every run folder at a location, sorted by name (see :func:`find_runs`).

    Args:
        location: A run folder or a folder of run folders (default: :func:`runs_folder`).
        pattern: Shell-style glob on run folder names.

    Returns:
        One :class:`RunSummary` per run folder.
    """
    return [read_run(path) for path in find_runs(location, pattern)]


__all__ = ["RunSummary", "find_runs", "is_run_folder", "list_runs", "read_run"]
