"""The ``cifar-cnn`` command line (also ``python -m cifar_cnn``).

Commands: ``train`` and ``notebook`` write a run folder; ``evaluate`` scores a saved model
on a test split; ``predict`` classifies your own images; ``runs`` lists run folders;
``sweep`` executes the main notebook once per parameter set; ``search`` runs an Optuna
study of notebook runs; ``compare`` compares run folders. Each command is a module here
with ``add_parser(commands)`` and
``run(arguments)``; a command imports TensorFlow, matplotlib, PyYAML or papermill only in
``run``, so ``--help`` and ``runs`` answer at once.

Exit codes: 0 all went well; 1 some inputs (``predict``) or runs (``sweep``) failed but the
others were processed; 2 bad usage or unusable input (unknown option, bad value, a model
that cannot be loaded, a missing data source or folder), with a one-line reason on
standard error; 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
from typing import Sequence

from cifar_cnn.cli import compare, evaluate, notebook, predict, runs, search, sweep, train
from cifar_cnn.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SOME_FAILED,
    HelpFormatter,
    message,
)

# In the order `cifar-cnn --help` lists them.
COMMANDS = (train, notebook, evaluate, predict, runs, sweep, search, compare)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, one subparser per command.

    Returns:
        The ``argparse.ArgumentParser`` of ``cifar-cnn``.
    """
    parser = argparse.ArgumentParser(
        prog="cifar-cnn",
        description="Train, evaluate and use CNNs on CIFAR-10. Offline, point --data-source "
                    "(or $CIFAR10_SOURCE) at a local copy such as cifar10-jpeg.tar.gz.",
        formatter_class=HelpFormatter,
        epilog="Run 'cifar-cnn COMMAND --help' for a command's options and examples.\n"
               "Exit codes: 0 done; 1 some inputs or runs failed, the others were\n"
               "processed (predict, sweep); 2 bad usage or unusable input, with a reason\n"
               "on stderr; 130 interrupted.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code.

    Args:
        argv: Arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        0 on success; 1 when some inputs or runs failed and the others were processed
        (``predict``, ``sweep``); 2 on bad usage or unusable input (with a one-line reason
        on stderr); 130 when interrupted.
    """
    arguments = build_parser().parse_args(argv)
    try:
        return arguments.handler(arguments)
    # ValueError covers bad values, unloadable models and data sources (DataSourceError,
    # ModelLoadError); OSError a missing, unreadable or unwritable file or folder. Both are
    # the user's to fix, so they get one line rather than a traceback.
    except (ValueError, OSError) as error:
        message(arguments.command, "error", str(error))
        return EXIT_BAD_INPUT
    except MemoryError:
        message(arguments.command, "error", "out of memory: the input is larger than this "
                                            "machine can hold (a damaged or hostile file?)")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        message(arguments.command, "interrupted", "stopped by Ctrl-C")
        return EXIT_INTERRUPTED


__all__ = ["COMMANDS", "EXIT_BAD_INPUT", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_SOME_FAILED",
           "build_parser", "main"]
