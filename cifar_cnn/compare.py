"""Comparing run folders: a table of what differs and how each run did, and two figures.

Any set of run folders can be compared (a sweep compares its own runs when it ends)::

    python -m cifar_cnn.compare runs/ --pattern "lr*" --output-dir runs/

The table has one row per run and, as columns, only the parameters that differ across the
runs (the rest are the same for all and say nothing), then the results: status, test
accuracy, best epoch, best monitored accuracy and training seconds. It is written as CSV
(raw values) and Markdown (rounded). The figures follow ``cifar_cnn.plots``: functions that
return a ``matplotlib.figure.Figure`` and never touch pyplot.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from cifar_cnn.config import RunConfig

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.json"
RUN_RECORD_FILE = "run.json"

# Config fields that name or place a run rather than change what it trains: they always
# differ (run_name) or say nothing about the result, so they never become table columns.
NOT_COMPARED_FIELDS = ("run_name", "output_dir", "overwrite")
RESULT_COLUMNS = ("status", "test_accuracy", "best_epoch", "best_monitored_accuracy",
                  "train_seconds")


@dataclass
class RunSummary:
    """What the comparison needs from one run.

    Attributes:
        name: The run's name (its folder's name).
        config: Parameter names and values (``config.json``, or the parameters a sweep
            gave a run that failed before it had a folder).
        metrics: ``metrics.json``, or None when the run did not complete.
        history: ``history.json``: one row per completed epoch.
        status: ``"complete"``, ``"incomplete"`` (interrupted or still running) or
            ``"failed"``.
        path: The run folder, or None for a run that never got one.
        error: Why the run failed, when it did.
    """

    name: str
    config: dict[str, Any]
    metrics: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    status: str = "incomplete"
    path: Path | None = None
    error: str | None = None

    @property
    def monitored_curve(self) -> list[float]:
        """The per-epoch ``val_accuracy`` values, in epoch order."""
        return [row["val_accuracy"] for row in self.history if "val_accuracy" in row]

    @property
    def test_accuracy(self) -> float | None:
        """Final test accuracy, or None before the run completed."""
        return (self.metrics or {}).get("test_accuracy")

    @property
    def best_monitored_accuracy(self) -> float | None:
        """Best per-epoch validation (or, without a split, test) accuracy so far."""
        if self.metrics and self.metrics.get("best_monitored_accuracy") is not None:
            return self.metrics["best_monitored_accuracy"]
        monitored = self.monitored_curve
        return max(monitored) if monitored else None

    @property
    def best_epoch(self) -> int | None:
        """The 1-based epoch of :attr:`best_monitored_accuracy`."""
        if self.metrics and self.metrics.get("best_epoch") is not None:
            return self.metrics["best_epoch"]
        monitored = self.monitored_curve
        # An interrupted run still has a history worth comparing: read the best from it.
        return monitored.index(max(monitored)) + 1 if monitored else None

    @property
    def train_seconds(self) -> float | None:
        """Seconds spent training (sum over epochs)."""
        if self.metrics and self.metrics.get("train_seconds") is not None:
            return self.metrics["train_seconds"]
        seconds = [row["seconds"] for row in self.history if "seconds" in row]
        return float(sum(seconds)) if seconds else None

    @property
    def monitored_on(self) -> str | None:
        """``"validation"`` or ``"test"``: what the per-epoch ``val_accuracy`` measured."""
        if self.metrics and self.metrics.get("monitored_on"):
            return self.metrics["monitored_on"]
        split = self.config.get("validation_split")
        if isinstance(split, (int, float)) and not isinstance(split, bool):
            return "validation" if split > 0 else "test"
        return None


def _read_json(path: Path, default=None):
    if not path.is_file():
        return default
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}); the run folder is damaged.") \
            from error


def load_run(path: str | Path) -> RunSummary:
    """Read one run folder.

    Args:
        path: A run folder (it holds ``config.json``).

    Returns:
        Its :class:`RunSummary`; ``metrics.json`` present means complete, else incomplete.
    """
    path = Path(path)
    config = _read_json(path / CONFIG_FILE)
    if config is None:
        raise ValueError(f"{path} is not a run folder: it has no {CONFIG_FILE}.")
    metrics = _read_json(path / METRICS_FILE)
    history = _read_json(path / HISTORY_FILE, default=[])
    return RunSummary(name=path.name, config=config, metrics=metrics, history=history,
                      status="complete" if metrics is not None else "incomplete", path=path)


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


def find_run_folders(location: str | Path, pattern: str = "*") -> list[Path]:
    """The run folders at a location: the location itself, or its matching sub-folders.

    Args:
        location: A run folder, or a folder of run folders (such as ``runs``).
        pattern: Shell-style glob on the run folders' names (``"lr*"``); ignored when
            ``location`` is itself a run folder.

    Returns:
        Run folders (those holding ``config.json``), sorted by name.
    """
    location = Path(location)
    if not location.is_dir():
        raise ValueError(f"{location} is not a folder: give a run folder or a folder of run "
                         "folders (such as runs/).")
    if (location / CONFIG_FILE).is_file():
        return [location]
    return sorted(child for child in location.iterdir()
                  if child.is_dir() and fnmatch.fnmatch(child.name, pattern)
                  and (child / CONFIG_FILE).is_file())


def load_runs(locations: str | Path | Iterable[str | Path], pattern: str = "*") -> list[RunSummary]:
    """Read every run folder found at one or more locations (see :func:`find_run_folders`).

    Args:
        locations: A path or several: run folders or folders of run folders.
        pattern: Shell-style glob on run folder names.

    Returns:
        One :class:`RunSummary` per run folder, each folder once, in the order found.
    """
    if isinstance(locations, (str, Path)):
        locations = [locations]
    folders: list[Path] = []
    for location in locations:
        for folder in find_run_folders(location, pattern):
            if folder.resolve() not in {seen.resolve() for seen in folders}:
                folders.append(folder)
    if not folders:
        raise ValueError(f"No run folders (folders holding {CONFIG_FILE}) match {pattern!r} in "
                         f"{', '.join(str(location) for location in locations)}.")
    return [load_run(folder) for folder in folders]


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


def _use_distinct_colors(axis, count: int) -> None:
    # The default cycle repeats after 10 colours; more runs than that need a longer palette.
    if count > 10:
        from matplotlib import colormaps

        palette = colormaps["tab20"]
        axis.set_prop_cycle(color=[palette(index % 20) for index in range(count)])


def _monitored_label(runs: Sequence[RunSummary]) -> str:
    kinds = {run.monitored_on for run in runs if run.history} - {None}
    if kinds == {"test"}:
        return "test accuracy per epoch (no validation split)"
    if kinds == {"validation"}:
        return "validation accuracy"
    return "val_accuracy (validation split, or test set without one)"


def _draw_validation_curves(axis, runs: Sequence[RunSummary]) -> None:
    with_curves = [run for run in runs if run.monitored_curve]
    _use_distinct_colors(axis, len(with_curves))
    for run in with_curves:
        epochs = [row["epoch"] for row in run.history if "val_accuracy" in row]
        axis.plot(epochs, run.monitored_curve, "o-", markersize=3, label=run.name)
    if not with_curves:
        axis.text(0.5, 0.5, "no run has a per-epoch history yet", ha="center", va="center",
                  transform=axis.transAxes)
    else:
        axis.legend(fontsize=7)
    axis.set_xlabel("epoch")
    epochs = sorted({row["epoch"] for run in with_curves for row in run.history
                     if "val_accuracy" in row})
    if 0 < len(epochs) <= 15:
        axis.set_xticks(epochs)  # Few epochs: one tick each (a locator would add fractions).
    else:
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_ylabel(_monitored_label(runs))
    axis.grid(alpha=0.3)
    axis.set_title("Validation curves")


def _draw_test_accuracies(axis, runs: Sequence[RunSummary]) -> None:
    names = [run.name for run in runs]
    values = [run.test_accuracy or 0.0 for run in runs]
    bars = axis.barh(names, values, color="tab:blue")
    for bar, run in zip(bars, runs):
        # Runs without a test accuracy keep their row, labelled with why it is empty.
        label = f"{run.test_accuracy:.4f}" if run.test_accuracy is not None else run.status
        axis.text(bar.get_width() + 0.01, bar.get_y() + bar.get_height() / 2, label,
                  va="center", fontsize=8)
    axis.invert_yaxis()  # First run on top, as in the table.
    axis.set_xlim(0, 1.12)
    axis.set_xlabel("test accuracy")
    axis.tick_params(axis="y", labelsize=8)
    axis.set_title("Test accuracy")


def _height(runs: Sequence[RunSummary]) -> float:
    return max(3.5, 1.5 + 0.3 * len(runs))


def validation_curves_figure(runs: Sequence[RunSummary]) -> Figure:
    """Every run's per-epoch ``val_accuracy`` on one axis, one line per run.

    Args:
        runs: The runs; those without a history are left out.

    Returns:
        The Figure.
    """
    figure = Figure(figsize=(7, 4.2), layout="constrained")
    _draw_validation_curves(figure.subplots(), runs)
    return figure


def accuracy_bars_figure(runs: Sequence[RunSummary]) -> Figure:
    """Horizontal bars of each run's test accuracy, in the table's order.

    Args:
        runs: The runs; one without a test accuracy keeps an empty row with its status.

    Returns:
        The Figure.
    """
    figure = Figure(figsize=(7, _height(runs)), layout="constrained")
    _draw_test_accuracies(figure.subplots(), runs)
    return figure


def comparison_figure(runs: Sequence[RunSummary]) -> Figure:
    """The validation curves and the test accuracy bars side by side.

    Args:
        runs: The runs.

    Returns:
        The Figure.
    """
    figure = Figure(figsize=(13, max(4.2, _height(runs))), layout="constrained")
    curves_axis, bars_axis = figure.subplots(1, 2)
    _draw_validation_curves(curves_axis, runs)
    _draw_test_accuracies(bars_axis, runs)
    return figure


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
    write_text_atomically(paths["csv"], csv_table(rows))
    write_text_atomically(paths["markdown"], markdown_table(rows))
    figure = comparison_figure(runs)
    temporary = directory / f"{name}.partial.png"
    figure.savefig(temporary, dpi=100)
    temporary.replace(paths["figure"])
    return paths


def write_text_atomically(path: Path, text: str) -> None:
    """Write text through a temporary file and a rename, so no reader sees half a table.

    Args:
        path: Destination file.
        text: Its content.
    """
    temporary = path.with_name(path.name + ".partial")
    temporary.write_text(text)
    temporary.replace(path)


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``compare`` command's arguments (for ``cifar-cnn compare``).

    Args:
        parser: The command's parser; set its handler to :func:`command_compare`.
    """
    parser.add_argument("locations", nargs="+", metavar="RUNS",
                        help="run folders, or folders of run folders such as runs/")
    parser.add_argument("--pattern", default="*",
                        help="glob on run folder names, e.g. 'lr*' (default: every run folder)")
    parser.add_argument("--output-dir", default=None,
                        help="where comparison.csv/.md/.png go (default: the first RUNS "
                             "folder, or the parent of a single run folder)")
    parser.add_argument("--name", default="comparison",
                        help="file name of the three outputs, without extension "
                             "(default: comparison)")


def command_compare(arguments: argparse.Namespace) -> int:
    """Run ``compare``: write the table and figure, print the Markdown table and the paths.

    Args:
        arguments: Parsed by a parser set up with :func:`add_compare_arguments`.

    Returns:
        0 (bad input raises ``ValueError``).
    """
    runs = load_runs(arguments.locations, arguments.pattern)
    output_dir = arguments.output_dir
    if output_dir is None:
        first = Path(arguments.locations[0])
        output_dir = first.parent if (first / CONFIG_FILE).is_file() else first
    paths = write_comparison(runs, output_dir, arguments.name)
    print(markdown_table(comparison_rows(runs)), end="")
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cifar_cnn.compare``: compare run folders.

    Args:
        argv: Arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        0 on success, 2 on bad input (with the reason on stderr).
    """
    parser = argparse.ArgumentParser(
        prog="python -m cifar_cnn.compare",
        description="Compare run folders: a table (CSV and Markdown) of the parameters that "
                    "differ and the results, and a figure of validation curves and test "
                    "accuracies.")
    add_compare_arguments(parser)
    arguments = parser.parse_args(argv)
    try:
        return command_compare(arguments)
    except ValueError as error:
        print(f"compare: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
