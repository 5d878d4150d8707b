"""The ``cifar-cnn`` command line (also ``python -m cifar_cnn``).

The options of ``train`` and ``notebook`` are the notebook's parameters spelled with
dashes (``--batch-size`` for ``batch_size``), generated from ``RunConfig`` so that
nothing has two names.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import typing

from cifar_cnn.config import RunConfig

EXIT_BAD_INPUT = 2


def _converter(annotation: str):
    """Turn a dataclass field's annotation into an argparse type."""
    if annotation.startswith("int"):
        return int
    if annotation.startswith("float"):
        return float
    return str


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """Add one ``--option`` per ``RunConfig`` field; unset options keep the config default.

    Args:
        parser: The subcommand's parser.
    """
    hints = {field.name: str(field.type) for field in dataclasses.fields(RunConfig)}
    docs = _field_help()
    for field in dataclasses.fields(RunConfig):
        option = "--" + field.name.replace("_", "-")
        help_text = docs.get(field.name, "")
        if hints[field.name] == "bool":
            parser.add_argument(option, dest=field.name, action="store_true",
                                default=argparse.SUPPRESS, help=help_text)
        else:
            default = field.default
            parser.add_argument(option, dest=field.name, type=_converter(hints[field.name]),
                                default=argparse.SUPPRESS, metavar=field.name.upper(),
                                help=f"{help_text} (default: {default})")


def _field_help() -> dict[str, str]:
    """Read each field's description from the RunConfig docstring's Attributes section."""
    helps, current = {}, None
    lines = (RunConfig.__doc__ or "").split("Attributes:", 1)[-1].splitlines()
    for line in lines:
        stripped = line.strip()
        name, separator, text = stripped.partition(": ")
        if separator and name.isidentifier() and len(line) - len(line.lstrip()) <= 8:
            current = name
            helps[name] = text
        elif current and stripped:
            helps[current] += " " + stripped
    return {name: text.replace("``", "").replace("%", "%%") for name, text in helps.items()}


def config_parameters(arguments: argparse.Namespace) -> dict:
    """The RunConfig parameters given on the command line."""
    names = set(RunConfig.parameter_names())
    return {name: value for name, value in vars(arguments).items() if name in names}


def _command_train(arguments) -> int:
    from cifar_cnn.experiment import run_experiment

    config = RunConfig.from_parameters(config_parameters(arguments))
    run_folder, metrics = run_experiment(config)
    print(f"run folder: {run_folder.path}")
    print(f"test accuracy: {metrics['test_accuracy']:.4f}")
    return 0


def _command_notebook(arguments) -> int:
    from cifar_cnn.notebook_runner import execute_notebook

    run_folder = execute_notebook(config_parameters(arguments), notebook=arguments.notebook,
                                  progress_bar=False)
    print(f"executed notebook: {run_folder / 'notebook.ipynb'}")
    print(f"run folder: {run_folder}")
    metrics_path = run_folder / "metrics.json"
    if metrics_path.is_file():
        import json

        print(f"test accuracy: {json.loads(metrics_path.read_text())['test_accuracy']:.4f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, one subparser per command."""
    parser = argparse.ArgumentParser(
        prog="cifar-cnn",
        description="Train, evaluate and use CNNs on CIFAR-10. Offline, point --data-source "
                    "(or $CIFAR10_SOURCE) at a local copy such as cifar10-jpeg.tar.gz.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a recipe and write a run folder",
                                description="Train a recipe (default: the seed notebook's) "
                                            "and write a run folder with config, history, "
                                            "metrics and model.")
    add_config_options(train)
    train.set_defaults(handler=_command_train)

    notebook = commands.add_parser(
        "notebook", help="execute the main notebook with papermill",
        description="Execute notebooks/cifar10_cnn.ipynb through papermill with these "
                    "parameters; the executed notebook is saved in the run folder.")
    add_config_options(notebook)
    notebook.add_argument("--notebook", default=None,
                          help="notebook to execute (default: the main notebook)")
    notebook.set_defaults(handler=_command_notebook)
    return parser


def main(argv: typing.Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code.

    Args:
        argv: Arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        0 on success, 2 on bad input (with a one-line reason on stderr).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # Hide TensorFlow's start-up chatter.
    arguments = build_parser().parse_args(argv)
    try:
        return arguments.handler(arguments)
    except (ValueError, FileNotFoundError) as error:
        print(f"cifar-cnn {arguments.command}: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
