"""A table of the run folders under an output folder (the ``runs`` command).

Reads only the small JSON files of each run folder (``config.json``, ``metrics.json``,
``history.json``, ``run.json``), never a model, so listing is instant and needs no
TensorFlow. A damaged file makes that one run show as ``unreadable`` instead of failing
the whole listing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

# A folder with any of these is a run folder (a papermill run that failed before its
# config cell still leaves its executed notebook).
_RUN_MARKERS = ("config.json", "run.json", "metrics.json", "notebook.ipynb")
STATUSES = ("complete", "incomplete", "unreadable")


@dataclass
class RunSummary:
    """The key facts of one run folder.

    Attributes:
        name: The run folder's name.
        path: The run folder.
        status: ``"complete"`` (``metrics.json`` written), ``"incomplete"`` (running,
            interrupted or failed) or ``"unreadable"`` (a JSON file is damaged).
        recipe: The training recipe, if recorded.
        epochs_done: Epochs trained (from the metrics, else the per-epoch history).
        epochs_planned: Epochs the config asked for.
        test_accuracy: Final test accuracy, for complete runs.
        train_seconds: Training time (of the completed epochs, for incomplete runs).
        problem: Why the run is unreadable, else None.
    """

    name: str
    path: Path
    status: str
    recipe: str | None = None
    epochs_done: int | None = None
    epochs_planned: int | None = None
    test_accuracy: float | None = None
    train_seconds: float | None = None
    problem: str | None = None


def _read_json(path: Path):
    """A JSON file's content, or None when the file does not exist."""
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def summarize_run(path: Path) -> RunSummary:
    """Summarise one run folder from its JSON files.

    Args:
        path: The run folder.

    Returns:
        A :class:`RunSummary`; damaged files give status ``"unreadable"``, not an error.
    """
    path = Path(path)
    summary = RunSummary(name=path.name, path=path, status="incomplete")
    try:
        config = _read_json(path / "config.json") or {}
        metrics = _read_json(path / "metrics.json")
        history = _read_json(path / "history.json") or []
    except (OSError, ValueError) as error:
        summary.status, summary.problem = "unreadable", " ".join(str(error).split())
        return summary
    if not isinstance(config, dict) or not isinstance(history, list) \
            or not isinstance(metrics, (dict, type(None))):
        summary.status, summary.problem = "unreadable", "unexpected JSON structure"
        return summary
    summary.recipe = config.get("recipe")
    summary.epochs_planned = config.get("epochs")
    epoch_seconds = [row.get("seconds", 0.0) for row in history if isinstance(row, dict)]
    summary.epochs_done = len(epoch_seconds) if history else None
    summary.train_seconds = float(sum(epoch_seconds)) if epoch_seconds else None
    if metrics is not None:
        summary.status = "complete"
        summary.recipe = metrics.get("recipe", summary.recipe)
        summary.epochs_done = metrics.get("epochs", summary.epochs_done)
        summary.test_accuracy = metrics.get("test_accuracy")
        summary.train_seconds = metrics.get("train_seconds", summary.train_seconds)
    return summary


def find_run_folders(output_dir: str | Path) -> list[Path]:
    """The run folders directly inside an output folder, sorted by name.

    Args:
        output_dir: The folder that runs were written to (``RunConfig.output_dir``).

    Returns:
        Paths of the subfolders that hold a run's files.

    Raises:
        FileNotFoundError: ``output_dir`` is not an existing folder.
    """
    output_dir = Path(output_dir).expanduser()
    if not output_dir.is_dir():
        raise FileNotFoundError(f"{output_dir} is not a folder of runs (it does not exist"
                                f"{' as a folder' if output_dir.exists() else ''}). Give the "
                                "output_dir that training wrote to (default: runs).")
    return sorted((child for child in output_dir.iterdir() if child.is_dir()
                   and any((child / marker).is_file() for marker in _RUN_MARKERS)),
                  key=lambda child: child.name)


def list_runs(output_dir: str | Path) -> list[RunSummary]:
    """Summaries of every run folder in an output folder, sorted by name.

    Args:
        output_dir: The folder that runs were written to.

    Returns:
        One :class:`RunSummary` per run folder.
    """
    return [summarize_run(path) for path in find_run_folders(output_dir)]


def _epochs_cell(summary: RunSummary) -> str:
    if summary.status == "incomplete" and summary.epochs_planned:
        return f"{summary.epochs_done or 0}/{summary.epochs_planned}"
    return "-" if summary.epochs_done is None else str(summary.epochs_done)


def format_run_table(summaries: Sequence[RunSummary]) -> str:
    """A plain-text table: name, recipe, epochs, test accuracy, status, training seconds.

    Incomplete runs show epochs as ``done/planned``; missing values show as ``-``.

    Args:
        summaries: The runs, in the order to show them.

    Returns:
        The table, one line per run after a header line, without a final newline.
    """
    header = ("name", "recipe", "epochs", "test accuracy", "status", "train seconds")
    rows = [header]
    for summary in summaries:
        rows.append((
            summary.name,
            summary.recipe or "-",
            _epochs_cell(summary),
            "-" if summary.test_accuracy is None else f"{summary.test_accuracy:.4f}",
            summary.status,
            "-" if summary.train_seconds is None else f"{summary.train_seconds:.1f}",
        ))
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    # Text columns align left, numbers right, as a reader scans them.
    numeric = {2, 3, 5}
    lines = []
    for row in rows:
        cells = [cell.rjust(width) if column in numeric else cell.ljust(width)
                 for column, (cell, width) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


__all__ = ["RunSummary", "STATUSES", "find_run_folders", "format_run_table", "list_runs",
           "summarize_run"]
