"""``cifar-cnn notebook``: execute the main notebook with papermill, one run folder."""

from __future__ import annotations

import argparse

from cifar_cnn.cli.common import EXIT_OK, add_config_options, config_parameters


def add_parser(commands) -> None:
    """Add the ``notebook`` command.

    Args:
        commands: The subparsers of the ``cifar-cnn`` parser.
    """
    parser = commands.add_parser(
        "notebook", help="execute the main notebook with papermill",
        description="Execute notebooks/cifar10_cnn.ipynb through papermill with these "
                    "parameters; the executed notebook is saved in the run folder.")
    add_config_options(parser)
    parser.add_argument("--notebook", default=None,
                        help="notebook to execute (default: the main notebook)")
    parser.set_defaults(handler=run)


def run(arguments: argparse.Namespace) -> int:
    """Execute the notebook, then print where it went and the test accuracy.

    Args:
        arguments: Parsed by the ``notebook`` parser.

    Returns:
        0 (bad input raises ``ValueError``).
    """
    from cifar_cnn.notebook_runner import execute_notebook
    from cifar_cnn.run_catalog import read_run
    from cifar_cnn.runs import NOTEBOOK_FILE

    run_folder = execute_notebook(config_parameters(arguments), notebook=arguments.notebook,
                                  progress_bar=False)
    print(f"executed notebook: {run_folder / NOTEBOOK_FILE}")
    print(f"run folder: {run_folder}")
    test_accuracy = read_run(run_folder).test_accuracy
    if test_accuracy is not None:
        print(f"test accuracy: {test_accuracy:.4f}")
    return EXIT_OK
