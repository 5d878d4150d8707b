"""``cifar-cnn runs``: a table of the run folders in an output folder.

Reads only each run folder's small JSON files (:func:`cifar_cnn.run_catalog.list_runs`), never a
model, so listing is instant and needs no TensorFlow. A damaged file makes that one run
show as ``unreadable`` instead of failing the whole listing.
"""

from __future__ import annotations

import argparse
from typing import Sequence

from cifar_cnn.cli.common import EXIT_OK, HelpFormatter, message
from cifar_cnn.run_catalog import RunSummary, list_runs
from cifar_cnn.runs import (
    INTERRUPTED,
    METRICS_FILE,
    PRUNED,
    RUNS_FOLDER_NAME,
    RUNNING,
    RUNS_FOLDER_VARIABLE,
    UNREADABLE,
    runs_folder,
)

EXIT_CODES_HELP = "exit codes: 0 done (also when there are no runs); 2 no such folder."
_HEADER = ("name", "recipe", "epochs", "test accuracy", "status", "train seconds")
# Text columns align left, numbers right, as a reader scans them.
_NUMERIC_COLUMNS = {2, 3, 5}


def add_parser(commands) -> None:
    """Add the ``runs`` command.

    Args:
        commands: The subparsers of the ``cifar-cnn`` parser.
    """
    parser = commands.add_parser(
        "runs", help="list run folders with their results",
        formatter_class=HelpFormatter,
        description="List the run folders in an output folder, sorted by name, with recipe, "
                    "epochs, test accuracy, status and training time.",
        epilog=f"status: complete ({METRICS_FILE} written), running (a process holds\n"
               "the run's lock and is writing it), interrupted (not finished and nobody\n"
               "writing it: killed; its next start resumes it), pruned (stopped early by\n"
               "its search: its epochs so far are its result), failed (stopped by an\n"
               "error) or unreadable (a damaged file). Running, interrupted and pruned\n"
               "runs show epochs as done/planned.\n\n"
               "example:\n"
               "  cifar-cnn runs\n"
               "  cifar-cnn runs /data/my-runs\n\n" + EXIT_CODES_HELP)
    parser.add_argument("output_dir", metavar="OUTPUT_DIR", nargs="?", default=None,
                        help=f"the folder runs were written to (default: ${RUNS_FOLDER_VARIABLE}"
                             f", else {RUNS_FOLDER_NAME}/ of this checkout, else of the "
                             "working folder)")
    parser.set_defaults(handler=run)


def _epochs_cell(summary: RunSummary) -> str:
    if summary.status in (INTERRUPTED, RUNNING, PRUNED) and summary.epochs_planned:
        return f"{summary.epochs_done or 0}/{summary.epochs_planned}"
    return "-" if summary.epochs_done is None else str(summary.epochs_done)


def format_run_table(summaries: Sequence[RunSummary]) -> str:
    """A plain-text table: name, recipe, epochs, test accuracy, status, training seconds.

    Running, interrupted and pruned runs show epochs as ``done/planned``; missing values show
    as ``-``.

    Args:
        summaries: The runs, in the order to show them.

    Returns:
        The table, one line per run after a header line, without a final newline.
    """
    rows = [_HEADER]
    for summary in summaries:
        rows.append((
            summary.name,
            summary.recipe or "-",
            _epochs_cell(summary),
            "-" if summary.test_accuracy is None else f"{summary.test_accuracy:.4f}",
            summary.status,
            "-" if summary.train_seconds is None else f"{summary.train_seconds:.1f}",
        ))
    widths = [max(len(row[column]) for row in rows) for column in range(len(_HEADER))]
    lines = []
    for row in rows:
        cells = [cell.rjust(width) if column in _NUMERIC_COLUMNS else cell.ljust(width)
                 for column, (cell, width) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def run(arguments: argparse.Namespace) -> int:
    """Print the table, and a note for each unreadable run folder.

    Args:
        arguments: Parsed by the ``runs`` parser.

    Returns:
        0 (a missing folder raises ``FileNotFoundError``).
    """
    summaries = list_runs(arguments.output_dir)
    if not summaries:
        print(f"no run folders in {runs_folder(arguments.output_dir)}")
        return EXIT_OK
    print(format_run_table(summaries))
    for summary in summaries:
        if summary.status == UNREADABLE:
            message("runs", "note", f"{summary.path} is unreadable: {summary.error}")
    return EXIT_OK
