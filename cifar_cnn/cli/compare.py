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
                    "epoch and time, as CSV and Markdown tables and a figure.")
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
