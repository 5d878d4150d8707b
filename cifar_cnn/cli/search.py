"""``cifar-cnn search``: an Optuna study whose trials are runs of the main notebook (see
:mod:`cifar_cnn.search` for what a search does and :mod:`cifar_cnn.search_spec` for its file)."""

from __future__ import annotations

import argparse

from cifar_cnn.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SOME_FAILED,
    HelpFormatter,
    add_execution_options,
    message,
    positive_int,
)
from cifar_cnn.runs import RUNS_FOLDER_NAME, RUNS_FOLDER_VARIABLE


def add_parser(commands) -> None:
    """Add the ``search`` command.

    Args:
        commands: The subparsers of the ``cifar-cnn`` parser.
    """
    parser = commands.add_parser(
        "search", help="hyperparameter search: an Optuna study of notebook runs, with pruning",
        formatter_class=HelpFormatter,
        description="Run, join or continue an Optuna study whose trials are executions of the "
                    "main notebook (one run folder each), pruned after any epoch that the "
                    "study's pruner judges hopeless, until the study holds its number of "
                    "finished trials; ends with a comparison and the study's view.",
        epilog="storage: a journal file path (default: <output dir>/<name>.optuna-journal),\n"
               "sqlite:///PATH, or postgresql://USER:PASSWORD@HOST:PORT/DATABASE for\n"
               "workers on machines that share no folder; every worker runs the same\n"
               "command with the same --storage.\n\n"
               "example:\n"
               "  cifar-cnn search examples/search_example.yaml\n"
               "  cifar-cnn search examples/search_example.yaml --set epochs=2 --workers 2\n\n"
               "exit codes: 0 the study is finished; 1 some trials here failed (the study\n"
               "replaced them); 2 bad spec, storage or option, before any trial ran;\n"
               "130 interrupted (the same command continues).")
    parser.add_argument("search_file", metavar="SEARCH.yaml",
                        help="search file: name, base, space, trials, objective, sampler, pruner")
    parser.add_argument("--set", dest="set_values", action="append", default=[],
                        metavar="NAME=VALUE",
                        help="a parameter for every trial (added to or replacing base); "
                             "repeatable; values are YAML scalars: 1, 1e-3, null, true")
    parser.add_argument("--output-dir", default=None,
                        help=f"folder of the run folders (default: the file's, else "
                             f"${RUNS_FOLDER_VARIABLE}, else the project's {RUNS_FOLDER_NAME}/)")
    parser.add_argument("--storage", default=None,
                        help="the study's storage URL or journal file (default: the file's, "
                             "else <output dir>/<name>.optuna-journal)")
    parser.add_argument("--trials", type=positive_int, default=None,
                        help="finished trials the study needs (default: the file's)")
    add_execution_options(parser, "trials of this process",
                          "the comparison and the study's view")
    parser.set_defaults(handler=run)


def spec_from_arguments(arguments: argparse.Namespace):
    """Read the search file and apply the command line on top of it.

    Args:
        arguments: Parsed by the ``search`` parser.

    Returns:
        The validated ``cifar_cnn.search_spec.SearchSpec``.
    """
    from cifar_cnn.search_spec import load_search_file
    from cifar_cnn.sweep_spec import check_workers, parse_assignment

    spec = load_search_file(arguments.search_file)
    spec.base.update(parse_assignment(text) for text in arguments.set_values)
    if arguments.output_dir is not None:
        spec.output_dir = arguments.output_dir
    if arguments.storage is not None:
        spec.storage = arguments.storage
    if arguments.trials is not None:
        spec.trials = arguments.trials
    if arguments.workers is not None:
        spec.workers = check_workers(arguments.workers, where="--workers")
    spec.validate()
    return spec


def run(arguments: argparse.Namespace) -> int:
    """Run the search.

    Args:
        arguments: Parsed by the ``search`` parser.

    Returns:
        0 when the study is finished, 1 when some trials executed here failed, 130 when
        interrupted; bad input raises ``ValueError``.
    """
    from cifar_cnn.search import run_search

    spec = spec_from_arguments(arguments)
    try:
        result = run_search(spec, notebook=arguments.notebook, compare=arguments.compare,
                            verbose=arguments.verbose)
    except KeyboardInterrupt:
        message("search", "interrupted", "the same command continues the study")
        return EXIT_INTERRUPTED
    if result.gave_up:
        message("search", "error", result.gave_up)
    return EXIT_SOME_FAILED if result.failed else EXIT_OK
