"""What every ``cifar-cnn`` command shares: exit codes, the one-line message, the help
formatter, argument types, and the options generated from ``RunConfig``.

Imports nothing heavy: every command's parser is built from here on each invocation,
``--help`` included.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from cifar_cnn.config import RunConfig
from cifar_cnn.runs import MODEL_FILE

EXIT_OK = 0
# Some inputs (predict) or runs (sweep) failed; the others were processed.
EXIT_SOME_FAILED = 1
# Bad usage or unusable input: unknown option, bad value, a model that cannot be loaded, a
# missing data source or folder.
EXIT_BAD_INPUT = 2
# Stopped with Ctrl-C (128 + SIGINT, as a shell reports it).
EXIT_INTERRUPTED = 130

MODEL_ARGUMENT_HELP = (f"a saved model file ({MODEL_FILE}) or a run folder that holds one, "
                       "e.g. runs/20250101-120000-seed")


class HelpFormatter(argparse.HelpFormatter):
    """Wrap one-paragraph texts as usual, but keep the line breaks of a text that has them.

    Epilogs hold lists and examples whose lines must stay as written; descriptions are
    single paragraphs that should follow the terminal's width.
    """

    def _fill_text(self, text, width, indent):
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def quiet_tensorflow() -> None:
    """Keep TensorFlow's C++ start-up notes and warnings off the terminal.

    For commands that load a model outside any run folder (``evaluate``, ``predict``): a run
    keeps these messages in its ``run.log`` instead. Must run before TensorFlow is imported.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def message(command: str, kind: str, text: str) -> None:
    """Print one ``cifar-cnn COMMAND: KIND: text`` line on standard error.

    Args:
        command: The command that speaks (``"predict"``).
        kind: ``"error"``, ``"note"``, ``"interrupted"``...
        text: The message; line breaks and runs of spaces become single spaces, so every
            message stays one line that a script can grep.
    """
    print(f"cifar-cnn {command}: {kind}: {' '.join(text.split())}", file=sys.stderr, flush=True)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1.

    Args:
        text: The option's value as typed.

    Returns:
        The integer.
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _converter(annotation: str):
    """Turn a dataclass field's annotation into an argparse type."""
    if annotation.startswith("int"):
        return int
    if annotation.startswith("float"):
        return float
    return str


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


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """Add one ``--option`` per ``RunConfig`` field; unset options keep the config default.

    The options are the notebook's parameters spelled with dashes (``--batch-size`` for
    ``batch_size``), so that nothing has two names.

    Args:
        parser: The command's parser.
    """
    hints = {field.name: str(field.type) for field in dataclasses.fields(RunConfig)}
    docs = _field_help()
    for field in dataclasses.fields(RunConfig):
        option = "--" + field.name.replace("_", "-")
        help_text = docs.get(field.name, "")
        if hints[field.name] == "bool":
            parser.add_argument(option, dest=field.name, action="store_true",
                                default=argparse.SUPPRESS, help=help_text)
        elif hints[field.name] == "bool | None":
            # On, off (--no-...), or unset: the recipe or Keras decides.
            parser.add_argument(option, dest=field.name, action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=f"{help_text} (default: unset)")
        else:
            parser.add_argument(option, dest=field.name, type=_converter(hints[field.name]),
                                default=argparse.SUPPRESS, metavar=field.name.upper(),
                                help=f"{help_text} (default: {field.default})")


def config_parameters(arguments: argparse.Namespace) -> dict:
    """The RunConfig parameters given on the command line.

    Args:
        arguments: Parsed by a parser set up with :func:`add_config_options`.

    Returns:
        Parameter name -> value, for the options given (unset ones are absent).
    """
    names = set(RunConfig.parameter_names())
    return {name: value for name, value in vars(arguments).items() if name in names}


def add_execution_options(parser, what: str, compared: str) -> None:
    """The options of commands that execute the main notebook many times (sweep, search).

    The machine's default worker count is not computed here: building the parser must stay
    instant.

    Args:
        parser: The command's parser.
        what: What runs side by side, for the help (``"notebooks executed"``).
        compared: What ``--no-compare`` leaves out, for the help.
    """
    # A plain int: the spec checks it, with the same one-line message as the file's value.
    parser.add_argument("--workers", type=int, default=None,
                        help=f"{what} side by side (default: the file's, else 1 with a GPU, "
                             "else one per two CPU cores)")
    parser.add_argument("--notebook", default=None,
                        help="notebook to execute (default: the main notebook)")
    parser.add_argument("--no-compare", dest="compare", action="store_false",
                        help=f"do not write {compared} at the end")
    parser.add_argument("--verbose", action="store_true",
                        help="stream everything the notebooks print, not only epoch lines")
