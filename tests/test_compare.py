"""Comparing run folders: table of differing parameters and results, figures, command, notebook."""

import csv
import io
import json
import re
from pathlib import Path

import nbformat
import papermill
import pytest
from matplotlib.figure import Figure

from cifar_cnn import cli, compare, plots, run_catalog
from cifar_cnn import runs as run_folders
from cifar_cnn.config import RunConfig

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
COMPARE_NOTEBOOK = REPOSITORY_ROOT / "notebooks" / "compare_runs.ipynb"
RESULTS = ["status", "test_accuracy", "best_epoch", "best_monitored_accuracy", "train_seconds"]


def make_run_folder(root: Path, name: str, val_accuracy=(0.3, 0.5, 0.4), complete=True,
                    test_accuracy=0.45, **parameters) -> Path:
    """Write a run folder by hand: config.json, history.json and (if complete) metrics.json."""
    folder = root / name
    folder.mkdir(parents=True)
    config = RunConfig.from_parameters({"output_dir": str(root), "run_name": name, **parameters},
                                       environ={})
    (folder / "config.json").write_text(json.dumps(config.to_dict()))
    history = [{"epoch": epoch, "loss": 1.0 / epoch, "accuracy": 0.1 * epoch,
                "val_loss": 1.5 / epoch, "val_accuracy": value, "seconds": 2.5}
               for epoch, value in enumerate(val_accuracy, start=1)]
    (folder / "history.json").write_text(json.dumps(history))
    if complete:
        best = max(val_accuracy)
        metrics = {"test_accuracy": test_accuracy, "best_epoch": val_accuracy.index(best) + 1,
                   "best_monitored_accuracy": best, "train_seconds": 2.5 * len(val_accuracy),
                   "monitored_on": "validation" if config.validation_split else "test"}
        (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


@pytest.fixture
def runs_dir(tmp_path):
    root = tmp_path / "runs"
    make_run_folder(root, "lr0.001-bs32", learning_rate=0.001, batch_size=32, epochs=3,
                    test_accuracy=0.41)
    make_run_folder(root, "lr0.003-bs32", (0.35, 0.6, 0.55), learning_rate=0.003,
                    batch_size=32, epochs=3, test_accuracy=0.52)
    make_run_folder(root, "lr0.003-bs64", (0.2, 0.25), complete=False, learning_rate=0.003,
                    batch_size=64, epochs=3)
    (root / "not-a-run").mkdir()  # No config.json: ignored.
    (root / "sweep.json").write_text("{}")  # Files beside run folders are ignored too.
    return root


def test_table_has_only_the_differing_parameters_then_the_results(runs_dir):
    runs = compare.load_runs(runs_dir)
    assert [run.name for run in runs] == ["lr0.001-bs32", "lr0.003-bs32", "lr0.003-bs64"]
    assert compare.differing_parameters(runs) == ["batch_size", "learning_rate"]
    rows = compare.comparison_rows(runs)
    assert list(rows[0]) == ["run", "batch_size", "learning_rate", *RESULTS]
    assert rows[0] == {"run": "lr0.001-bs32", "batch_size": 32, "learning_rate": 0.001,
                       "status": "complete", "test_accuracy": 0.41, "best_epoch": 2,
                       "best_monitored_accuracy": 0.5, "train_seconds": 7.5}
    # The interrupted run has no test accuracy but its history still gives the best epoch.
    assert rows[2] == {"run": "lr0.003-bs64", "batch_size": 64, "learning_rate": 0.003,
                       "status": "interrupted", "test_accuracy": None, "best_epoch": 2,
                       "best_monitored_accuracy": 0.25, "train_seconds": 5.0}


def test_identical_runs_have_no_parameter_columns_and_errors_get_a_column(tmp_path):
    runs = [run_catalog.read_run(make_run_folder(tmp_path, name, epochs=3))
            for name in ("a", "b")]
    assert list(compare.comparison_rows(runs)[0]) == ["run", *RESULTS]
    runs.append(run_catalog.RunSummary(name="c", config=compare.nominal_config({"epochs": 0}),
                                       status="failed", error="ValueError: epochs must be >= 1"))
    rows = compare.comparison_rows(runs)
    assert list(rows[0]) == ["run", "epochs", *RESULTS, "error"]
    assert [row["epochs"] for row in rows] == [3, 3, 0]
    assert rows[2]["error"] == "ValueError: epochs must be >= 1" and rows[0]["error"] is None


def test_nominal_config_fills_the_recipe_defaults_and_keeps_bad_values():
    config = compare.nominal_config({"validation_split": 1.5, "epoch": 3, "batch_size": None})
    real = RunConfig.from_parameters({}).to_dict()
    assert config["validation_split"] == 1.5 and config["epoch"] == 3  # As given.
    assert config["batch_size"] == real["batch_size"] == 32  # None: the recipe's default.
    assert {name: config[name] for name in real if name != "validation_split"} == \
        {name: value for name, value in real.items() if name != "validation_split"}


def test_csv_is_unrounded_and_markdown_is_rounded_and_escaped(runs_dir):
    runs = compare.load_runs(runs_dir)
    runs[0].error = "ValueError: a | b\nsecond line " + "x" * 200
    rows = compare.comparison_rows(runs)
    parsed = list(csv.DictReader(io.StringIO(compare.csv_table(rows))))
    assert [row["run"] for row in parsed] == ["lr0.001-bs32", "lr0.003-bs32", "lr0.003-bs64"]
    assert parsed[1]["test_accuracy"] == "0.52" and parsed[2]["test_accuracy"] == ""
    assert parsed[0]["error"].startswith("ValueError: a | b\nsecond line x")  # Whole message.
    lines = compare.markdown_table(rows).splitlines()
    assert lines[0] == ("| run | batch_size | learning_rate | status | test_accuracy | best_epoch"
                        " | best_monitored_accuracy | train_seconds | error |")
    assert lines[1] == "|" + "---|" * 9
    assert lines[3] == "| lr0.003-bs32 | 32 | 0.003 | complete | 0.5200 | 2 | 0.6000 | 7.5 |  |"
    assert lines[4].startswith("| lr0.003-bs64 | 64 | 0.003 | interrupted |  | 2 | 0.2500 | 5.0 |")
    assert "a \\| b second line" in lines[2] and lines[2].endswith("... |")
    assert len(lines) == 5


def test_finding_run_folders_by_glob_and_location(runs_dir, tmp_path, monkeypatch):
    assert [path.name for path in run_catalog.find_runs(runs_dir, "lr0.003*")] == \
        ["lr0.003-bs32", "lr0.003-bs64"]
    single = runs_dir / "lr0.001-bs32"
    assert run_catalog.find_runs(single, "ignored*") == [single]
    # A run folder named twice (itself and through its parent) is read once.
    assert len(compare.load_runs([single, runs_dir])) == 3
    # Without a location: the project's runs folder, whatever the working folder.
    monkeypatch.setenv(run_folders.RUNS_FOLDER_VARIABLE, str(runs_dir))
    monkeypatch.chdir(tmp_path)
    assert run_catalog.find_runs(pattern="lr0.003*") == \
        [runs_dir / "lr0.003-bs32", runs_dir / "lr0.003-bs64"]
    assert [run.name for run in compare.load_runs(pattern="lr0.003*")] == \
        ["lr0.003-bs32", "lr0.003-bs64"]


@pytest.mark.parametrize("problem, error, message", [
    # A folder without config.json is not a run, and holds none.
    ("no_config", ValueError, r"No run folders match '\*' in .*not-a-run\."),
    ("no_match", ValueError, r"No run folders match 'zz\*' in .*runs\."),
    ("missing", FileNotFoundError, r"nowhere is not a folder of runs \(it does not exist\)"),
    ("a_file", FileNotFoundError,
     r"sweep\.json is not a folder of runs \(it does not exist as a folder\)"),
])
def test_load_errors_name_the_problem(runs_dir, problem, error, message):
    with pytest.raises(error, match=message):
        if problem == "no_config":
            compare.load_runs(runs_dir / "not-a-run")
        elif problem == "no_match":
            compare.load_runs(runs_dir, "zz*")
        elif problem == "missing":
            compare.load_runs(runs_dir / "nowhere")
        else:
            compare.load_runs(runs_dir / "sweep.json")


def test_a_damaged_run_folder_is_unreadable_and_does_not_hide_the_others(runs_dir):
    (runs_dir / "lr0.001-bs32" / "metrics.json").write_text("{not json")
    damaged = run_catalog.read_run(runs_dir / "lr0.001-bs32")  # Never raises.
    assert damaged.status == run_folders.UNREADABLE == "unreadable"
    assert re.search(r"metrics\.json is not valid JSON .*damaged", damaged.error)
    assert "\n" not in damaged.error
    runs = compare.load_runs(runs_dir)
    assert [(run.name, run.status) for run in runs] == [
        ("lr0.001-bs32", "unreadable"), ("lr0.003-bs32", "complete"),
        ("lr0.003-bs64", "interrupted")]
    assert runs[0].error == damaged.error and runs[1].error is None
    rows = compare.comparison_rows(runs)
    assert rows[0]["status"] == "unreadable" and rows[0]["error"] == damaged.error


def test_figures_draw_every_curve_and_every_bar(runs_dir):
    runs = compare.load_runs(runs_dir)
    curves = plots.validation_curves_figure(runs)
    assert isinstance(curves, Figure)
    axis = curves.axes[0]
    # Each run is called by what sets it apart, not by its folder's name.
    labels = ["batch_size=32, learning_rate=0.001", "batch_size=32, learning_rate=0.003",
              "batch_size=64, learning_rate=0.003"]
    assert compare.differing_parameters(runs) == ["batch_size", "learning_rate"]
    assert [line.get_label() for line in axis.get_lines()] == labels
    assert list(axis.get_lines()[1].get_ydata()) == [0.35, 0.6, 0.55]
    assert axis.get_ylabel() == "test accuracy per epoch (no validation split)"
    bars = plots.accuracy_bars_figure(runs).axes[0]
    assert [patch.get_width() for patch in bars.patches] == [0.41, 0.52, 0.0]
    assert [text.get_text() for text in bars.texts] == ["0.4100", "0.5200", "interrupted"]
    assert [label.get_text() for label in bars.get_yticklabels()] == labels
    combined = plots.comparison_figure(runs, labels=["a", "b", "c"])
    assert len(combined.axes) == 2 and len(combined.axes[0].get_lines()) == 3
    assert [line.get_label() for line in combined.axes[0].get_lines()] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="one label per run"):
        plots.comparison_figure(runs, labels=["a"])


def test_runs_named_by_timestamps_are_labelled_by_what_differs(tmp_path):
    def run(name, **parameters):
        return run_catalog.read_run(make_run_folder(tmp_path, name, **parameters))

    seeds = [run("20240101-120000", seed=7), run("20240101-120500", seed=42)]
    assert compare.run_labels(seeds) == ["seed=7", "seed=42"]
    recipes = [run("r1", recipe="airbench", epochs=2), run("r2", recipe="seed", epochs=20)]
    assert compare.run_labels(recipes) == ["recipe=airbench, epochs=2", "recipe=seed, epochs=20"]
    # Nothing differs: the names are all there is.
    same = [run("same-a", seed=3), run("same-b", seed=3)]
    assert compare.run_labels(same) == ["same-a", "same-b"]
    # Two runs that would share a label keep their names beside it.
    twins = [*seeds, run("20240101-121000", seed=7)]
    assert compare.run_labels(twins) == ["seed=7 (20240101-120000)", "seed=42",
                                         "seed=7 (20240101-121000)"]
    # Many differences: the first few, then how many more.
    many = [run("m1", seed=1, epochs=2, batch_size=32, learning_rate=0.1),
            run("m2", seed=2, epochs=3, batch_size=64, learning_rate=0.2)]
    first, _ = compare.run_labels(many)
    assert first.count("=") == compare.MAX_LABEL_PARAMETERS and first.endswith(", +1 more")
    # A run without a readable config keeps its name and does not make every parameter differ.
    unreadable = run_catalog.RunSummary(name="broken", status="unreadable", error="bad json")
    assert compare.run_labels([*seeds, unreadable]) == ["seed=7", "seed=42", "broken"]


def test_command_writes_csv_markdown_and_png_and_prints_the_table(runs_dir, tmp_path, capsys):
    output = tmp_path / "report"
    assert cli.main(["compare", str(runs_dir), "--pattern", "lr0.003*", "--output-dir",
                     str(output), "--name", "lr3"]) == 0
    printed = capsys.readouterr().out
    assert "| lr0.003-bs32 | 32 | complete | 0.5200 |" in printed
    assert (output / "lr3.png").read_bytes()[:4] == b"\x89PNG"
    assert (output / "lr3.md").read_text() in printed
    with (output / "lr3.csv").open() as handle:
        assert [row["batch_size"] for row in csv.DictReader(handle)] == ["32", "64"]
    # By default the files go into the runs folder given.
    assert cli.main(["compare", str(runs_dir)]) == 0
    assert {"comparison.csv", "comparison.md", "comparison.png"} <= \
        {path.name for path in runs_dir.iterdir()}
    assert cli.main(["compare", str(runs_dir / "nowhere")]) == cli.EXIT_BAD_INPUT
    assert "is not a folder" in capsys.readouterr().err


def test_command_cannot_write_where_a_file_stands_exits_2_with_one_line(runs_dir, tmp_path,
                                                                         capsys):
    blocking_file = tmp_path / "report"
    blocking_file.write_text("a file, not a folder")
    assert cli.main(["compare", str(runs_dir), "--output-dir", str(blocking_file)]) == \
        cli.EXIT_BAD_INPUT
    error = capsys.readouterr().err.strip()
    assert error.startswith("cifar-cnn compare: error: ") and "\n" not in error


def test_compare_notebook_parameters():
    # Cleanliness, kernelspec and the single parameters cell: test_notebook.py, for every notebook.
    assert set(papermill.inspect_notebook(str(COMPARE_NOTEBOOK))) == {"runs_dir", "pattern", "study",
                                                                      "storage"}


@pytest.mark.parametrize("given", [True, False], ids=["runs_dir", "default_runs_folder"])
@pytest.mark.slow
def test_compare_notebook_executes_against_run_folders(runs_dir, tmp_path, monkeypatch, given):
    output = tmp_path / "compare.ipynb"
    parameters = {"pattern": "lr*"}
    if given:
        parameters["runs_dir"] = str(runs_dir)
    else:
        # runs_dir = None: the project's runs folder, whatever the kernel's working folder.
        monkeypatch.setenv(run_folders.RUNS_FOLDER_VARIABLE, str(runs_dir))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    papermill.execute_notebook(str(COMPARE_NOTEBOOK), str(output), cwd=str(elsewhere),
                               parameters=parameters, log_output=False, progress_bar=False)
    outputs = [output for cell in nbformat.read(output, as_version=4).cells
               for output in cell.get("outputs", [])]
    markdown = [output.data["text/markdown"] for output in outputs
                if "text/markdown" in output.get("data", {})]
    assert len(markdown) == 1 and "| lr0.003-bs64 | 64 | 0.003 | interrupted |" in markdown[0]
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(images) == 2  # The validation curves and the test accuracy bars.
    assert not any(output.output_type == "error" for output in outputs)
