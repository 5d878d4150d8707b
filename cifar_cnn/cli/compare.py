"""``cifar-cnn compare``: compare run folders (see :mod:`cifar_cnn.compare`)."""

from __future__ import annotations

import argparse

from cifar_cnn.cli.common import EXIT_OK
from cifar_cnn.runs import CONFIG_FILE


def add_parser(commands) -> None:
    """Add the ``compare`` command.

    Args:
        commands: The subparsers of the ``cifar-cnn`` parser.
    """
    parser = commands.add_parser(
        "compare", help="compare run folders: table (CSV, Markdown) and figure",
        description="Compare run folders: the parameters that differ, test accuracy, best "
                    "epoch and time, as CSV and Markdown tables and a figure; with --study, "
                    "a search's trials and the study's view.")
    parser.add_argument("locations", nargs="*", metavar="RUNS",
                        help="run folders, or folders of run folders (default: the project's "
                             "runs folder)")
    parser.add_argument("--pattern", default="*",
                        help="glob on run folder names, e.g. 'lr*' (default: every run folder)")
    parser.add_argument("--output-dir", default=None,
                        help="where comparison.csv/.md/.png go (default: the first RUNS "
                             "folder, or the parent of a single run folder)")
    parser.add_argument("--name", default="comparison",
                        help="file name of the three outputs, without extension "
                             "(default: comparison)")
    parser.add_argument("--study", default=None, metavar="NAME",
                        help="compare a search's trials (cifar-cnn search) and add the "
                             "study's view: best trial, parameter importances, history")
    parser.add_argument("--storage", default=None,
                        help="the study's storage (default: <RUNS>/<NAME>.optuna-journal)")
    parser.set_defaults(handler=run)


def run(arguments: argparse.Namespace) -> int:
    """Write the table and figure, print the Markdown table and the paths.

    Args:
        arguments: Parsed by the ``compare`` parser.

    Returns:
        0 (bad input raises ``ValueError``).
    """
    from cifar_cnn import compare

    from cifar_cnn.runs import runs_folder

    locations = arguments.locations or [None]  # None: the project's runs folder.
    if arguments.study is not None:
        return _compare_study(arguments, locations)
    if arguments.storage is not None:
        raise ValueError("--storage names a study's storage: give --study NAME with it.")
    runs = compare.load_runs(locations, arguments.pattern)
    output_dir = arguments.output_dir
    if output_dir is None:
        first = runs_folder(locations[0])
        output_dir = first.parent if (first / CONFIG_FILE).is_file() else first
    paths = compare.write_comparison(runs, output_dir, arguments.name)
    print(compare.markdown_table(compare.comparison_rows(runs)), end="")
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return EXIT_OK


def _compare_study(arguments: argparse.Namespace, locations) -> int:
    """Write a study's comparison and view; print the view and the paths."""
    from cifar_cnn import study_report
    from cifar_cnn.runs import runs_folder

    if len(locations) > 1 or arguments.pattern != "*":
        raise ValueError("--study compares the study's own trials: give at most one RUNS "
                         "folder (where its run folders are) and no --pattern.")
    runs_dir = runs_folder(locations[0])
    report = study_report.load_study_report(arguments.study, arguments.storage, runs_dir)
    paths = study_report.write_study_report(report, arguments.output_dir or runs_dir)
    print(report.markdown(), end="")
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return EXIT_OK
