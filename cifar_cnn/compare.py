"""Comparing run folders: a table of what differs and how each run did, and two figures.

Any set of run folders can be compared (a sweep compares its own runs when it ends)::

    cifar-cnn compare runs/ --pattern "lr*" --output-dir runs/

The table has one row per run and, as columns, only the parameters that differ across the
runs (the rest are the same for all and say nothing), then the results: status, test
accuracy, best epoch, best monitored accuracy and training seconds. It is written as CSV
(raw values) and Markdown (rounded). The figures live in :mod:`cifar_cnn.plots.comparison`.
"""

from __future__ import annotations

import csv
import json
import io
from pathlib import Path
from typing import Any, Iterable, Sequence

from cifar_cnn.config import RunConfig
from cifar_cnn.files import write_figure, write_text
from cifar_cnn.plots.comparison import comparison_figure
from cifar_cnn.run_catalog import RunSummary, find_runs, read_run
from cifar_cnn.runs import runs_folder

# Config fields that name or place a run rather than change what it trains: they always
# differ (run_name) or say nothing about the result, so they never become table columns.
NOT_COMPARED_FIELDS = ("run_name", "output_dir", "overwrite")
RESULT_COLUMNS = ("status", "test_accuracy", "best_epoch", "best_monitored_accuracy",
                  "train_seconds")


def nominal_config(parameters: dict[str, Any]) -> dict[str, Any]:
    """The config a run would have had, for a parameter set that never got a run folder.

    Starts from the valid config of the same recipe (so the recipe's defaults are filled in
    as in a real run's ``config.json``, and the rows compare fairly), then applies every
    value given, the bad ones and unknown names included, so the table shows what failed.

    Args:
        parameters: The parameter set as given.

    Returns:
        A dictionary shaped like ``config.json``.
    """
    try:
        config = RunConfig.from_parameters({"recipe": parameters.get("recipe", "seed")}).to_dict()
    except (ValueError, TypeError):  # An unknown recipe: fall back to the default one's.
        config = RunConfig.from_parameters({}).to_dict()
    # None means "the recipe's default" and the config above already holds that default.
    config.update({name: value for name, value in parameters.items() if value is not None})
    return config


def load_runs(locations: str | Path | Iterable[str | Path] | None = None,
              pattern: str = "*") -> list[RunSummary]:
    """Read every run folder found at one or more locations (see ``run_catalog.find_runs``).

    Args:
        locations: A path or several: run folders or folders of run folders (default: the
            project's runs folder, ``runs.runs_folder()``).
        pattern: Shell-style glob on run folder names.

    Returns:
        One ``run_catalog.RunSummary`` per run folder, each folder once, in the order found. A
        damaged folder comes back ``unreadable`` with the reason as its error.

    Raises:
        ValueError: No run folder matches.
        FileNotFoundError: A location is not a folder.
    """
    if locations is None or isinstance(locations, (str, Path)):
        locations = [locations]
    folders: list[Path] = []
    for location in locations:
        for folder in find_runs(location, pattern):
            if folder.resolve() not in {seen.resolve() for seen in folders}:
                folders.append(folder)
    if not folders:
        where = ", ".join(str(runs_folder(location)) for location in locations)
        raise ValueError(f"No run folders match {pattern!r} in {where}.")
    return [read_run(folder) for folder in folders]


def differing_parameters(runs: Sequence[RunSummary]) -> list[str]:
    """The parameters whose values are not the same in every run.

    Args:
        runs: The runs to compare.

    Returns:
        Parameter names, in config order (names only some runs have come last).
    """
    names: list[str] = []
    for run in runs:
        names.extend(name for name in run.config if name not in names)
    missing = object()  # A parameter one run lacks differs from any value another run has.
    return [name for name in names if name not in NOT_COMPARED_FIELDS
            and len({json.dumps(run.config.get(name, missing), sort_keys=True, default=repr)
                     for run in runs}) > 1]


# The most parameters a run's label names; more are summed up as "+N more".
MAX_LABEL_PARAMETERS = 3


def _label_value(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def run_labels(runs: Sequence[RunSummary],
               max_parameters: int = MAX_LABEL_PARAMETERS) -> list[str]:
    """What to call each run in a figure: the parameters that differ between the runs.

    Run names are often timestamps, which say nothing about the run; a label such as
    ``"seed=7"`` or ``"recipe=airbench, epochs=2"`` says what sets it apart. Between runs
    of different recipes, a parameter that every run leaves at its recipe's default is
    left out (the recipe's name says it). A run without a readable config, or runs that
    differ in nothing, keep their names; two runs that would get the same label get their
    names in brackets too.

    Args:
        runs: The runs compared.
        max_parameters: The most parameters one label names.

    Returns:
        One label per run, in order.
    """
    with_config = [run for run in runs if run.config]
    parameters = differing_parameters(with_config) if len(with_config) > 1 else []
    if "recipe" in parameters:
        # A recipe brings its own batch size, learning rate...: "recipe=airbench" says them.
        # A parameter stays when some run sets it to other than its recipe's default.
        defaults = {}
        for run in with_config:
            recipe = run.config.get("recipe")
            if recipe not in defaults:
                defaults[recipe] = nominal_config({"recipe": recipe})
        parameters = [name for name in parameters if name == "recipe" or any(
            run.config.get(name) != defaults[run.config.get("recipe")].get(name)
            for run in with_config)]
    shown, hidden = parameters[:max_parameters], len(parameters) - max_parameters
    labels = []
    for run in runs:
        if not run.config or not parameters:
            labels.append(run.name)
            continue
        parts = [f"{name}={_label_value(run.config[name]) if name in run.config else '-'}"
                 for name in shown]
        labels.append(", ".join(parts) + (f", +{hidden} more" if hidden > 0 else ""))
    repeated = {label for label in labels if labels.count(label) > 1}
    return [f"{label} ({run.name})" if label in repeated and label != run.name else label
            for label, run in zip(labels, runs)]


def comparison_rows(runs: Sequence[RunSummary],
                    parameters: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """One row per run: its name, the differing parameters, then its results.

    Args:
        runs: The runs to compare.
        parameters: The parameter columns (default: :func:`differing_parameters`).

    Returns:
        Rows as dictionaries with the same keys in the same order: ``run``, the
        parameters, ``RESULT_COLUMNS``, and ``error`` when any run failed.
    """
    parameters = differing_parameters(runs) if parameters is None else list(parameters)
    with_error = any(run.error for run in runs)
    rows = []
    for run in runs:
        row = {"run": run.name}
        row.update({name: run.config.get(name) for name in parameters})
        row.update(status=run.status, test_accuracy=run.test_accuracy, best_epoch=run.best_epoch,
                   best_monitored_accuracy=run.best_monitored_accuracy,
                   train_seconds=run.train_seconds)
        if with_error:
            row["error"] = run.error
        rows.append(row)
    return rows


def _csv_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def csv_table(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as CSV text with a header line; values unrounded, None as an empty cell.

    Args:
        rows: From :func:`comparison_rows`.

    Returns:
        The CSV text.
    """
    buffer = io.StringIO()
    if rows:
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(rows[0].keys())
        for row in rows:
            writer.writerow(_csv_value(value) for value in row.values())
    return buffer.getvalue()


# How the Markdown table rounds each result column (parameters are shown as they are).
_MARKDOWN_FORMATS = {"test_accuracy": "{:.4f}", "best_monitored_accuracy": "{:.4f}",
                     "train_seconds": "{:.1f}"}
_MARKDOWN_ERROR_LENGTH = 120


def _markdown_value(column: str, value) -> str:
    if value is None:
        return ""
    if column in _MARKDOWN_FORMATS and isinstance(value, (int, float)):
        text = _MARKDOWN_FORMATS[column].format(value)
    else:
        text = _csv_value(value)
    if column == "error" and len(text) > _MARKDOWN_ERROR_LENGTH:
        text = text[:_MARKDOWN_ERROR_LENGTH - 3] + "..."  # The CSV keeps the whole message.
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as a Markdown table, accuracies to 4 decimals and seconds to 1.

    Args:
        rows: From :func:`comparison_rows`.

    Returns:
        The Markdown text (empty when there are no rows).
    """
    if not rows:
        return ""
    columns = list(rows[0].keys())
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_markdown_value(column, row[column])
                                        for column in columns) + " |")
    return "\n".join(lines) + "\n"


def write_comparison(runs: Sequence[RunSummary], directory: str | Path,
                     name: str = "comparison") -> dict[str, Path]:
    """Write the table as ``<name>.csv`` and ``<name>.md`` and the figure as ``<name>.png``.

    Args:
        runs: The runs to compare.
        directory: Where the three files go (created if needed).
        name: Their common file name.

    Returns:
        ``{"csv": path, "markdown": path, "figure": path}``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rows = comparison_rows(runs)
    paths = {"csv": directory / f"{name}.csv", "markdown": directory / f"{name}.md",
             "figure": directory / f"{name}.png"}
    write_text(paths["csv"], csv_table(rows))
    write_text(paths["markdown"], markdown_table(rows))
    write_figure(paths["figure"], comparison_figure(runs), dpi=100)
    return paths
