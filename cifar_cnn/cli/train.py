"""``cifar-cnn train``: train a recipe and write a run folder."""

from __future__ import annotations

import argparse

from cifar_cnn.cli.common import EXIT_OK, add_config_options, config_parameters


def add_parser(commands) -> None:
    """Add the ``train`` command.

    Args:
        commands: The subparsers of the ``cifar-cnn`` parser.
    """
    parser = commands.add_parser("train", help="train a recipe and write a run folder",
                                 description="Train a recipe (default: the seed notebook's) "
                                             "and write a run folder with config, history, "
                                             "metrics and model.")
    add_config_options(parser)
    parser.add_argument("--dry-run", action="store_true",
                        help="print the training plan (the recipe with every override applied, "
                             "data, precision, strategy) and exit without training")
    parser.set_defaults(handler=run)


def run(arguments: argparse.Namespace) -> int:
    """Print the training plan; then (unless ``--dry-run``) train, and print the results.

    Args:
        arguments: Parsed by the ``train`` parser.

    Returns:
        0 (bad input raises ``ValueError``).
    """
    from cifar_cnn.config import RunConfig
    from cifar_cnn.experiment import run_experiment
    from cifar_cnn.resolved_run import resolve_run

    config = RunConfig.from_parameters(config_parameters(arguments))
    plan = resolve_run(config)
    print(plan.describe(), flush=True)
    if arguments.dry_run:
        return EXIT_OK
    run_folder, metrics = run_experiment(plan)
    print(f"run folder: {run_folder.path}")
    print(f"test accuracy: {metrics['test_accuracy']:.4f}")
    if config.tensorboard:
        from cifar_cnn.tensorboard_logging import tensorboard_log_dir

        print(f"tensorboard logs: {tensorboard_log_dir(run_folder.path)} (view with: "
              f"tensorboard --logdir {run_folder.path.parent})")
    return EXIT_OK
