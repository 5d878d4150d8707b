"""Sweeps: parameter sets, names, validation, skip and resume, failures, workers, papermill."""

import csv
import io
import json
import re
import threading
import time
from pathlib import Path

import pytest

from cifar_cnn import cli, sweep, sweep_execution, sweep_plan, sweep_spec, sweep_workers
from cifar_cnn import runs as run_folders
from cifar_cnn.cli import sweep as cli_sweep
from cifar_cnn.config import RunConfig
from run_files import files_in

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
RESULTS = ["status", "test_accuracy", "best_epoch", "best_monitored_accuracy", "train_seconds"]


class FakeExecutor:
    """Stands in for papermill: writes what a completed run writes, or fails on request.

    ``fail`` maps a run name to ``"error"`` (the notebook shows an error, exit status 1),
    ``"raise"`` (the executor itself raises) or ``"silent"`` (exit 1, no notebook).
    """

    def __init__(self, fail=None, delay=0.0):
        self.fail = fail or {}
        self.delay = delay
        self.calls = []
        self.active = 0
        self.most_active = 0
        self.lock = threading.Lock()

    def __call__(self, request: sweep_execution.ExecutionRequest) -> int:
        name = request.parameters["run_name"]
        with self.lock:
            self.calls.append(name)
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        try:
            time.sleep(self.delay)
            return self._execute(request, name)
        finally:
            with self.lock:
                self.active -= 1

    def _execute(self, request, name):
        folder = request.output_notebook.parent
        failure = self.fail.get(name)
        if failure == "raise":
            raise OSError("kernel could not start")
        request.on_output("epoch 1/1 - 0.1s - accuracy 0.5000")
        request.on_output("some other notebook output")
        if failure == "silent":
            request.on_output("Traceback: the kernel died")
            return 1
        config = RunConfig.from_parameters(request.parameters)
        (folder / "config.json").write_text(json.dumps(config.to_dict()))
        error_output = {"output_type": "error", "ename": "DataSourceError",
                        "evalue": "no such file", "traceback": []}
        notebook = {"cells": [{"cell_type": "code", "source": "",
                               "outputs": [error_output] if failure == "error" else []}]}
        request.output_notebook.write_text(json.dumps(notebook))
        if failure == "error":
            return 1
        (folder / "history.json").write_text(json.dumps(
            [{"epoch": 1, "accuracy": 0.5, "val_accuracy": 0.4, "seconds": 0.1}]))
        (folder / "metrics.json").write_text(json.dumps(
            {"test_accuracy": 0.4, "best_epoch": 1, "best_monitored_accuracy": 0.4,
             "train_seconds": 0.1}))
        return 0


@pytest.fixture(autouse=True)
def default_runs_folder(tmp_path, monkeypatch) -> Path:
    """The default runs folder ($CIFAR_CNN_RUNS_DIR) of every test here: its own, never the
    checkout's ``runs/``. Not created: a test that writes nothing leaves tmp_path empty."""
    folder = tmp_path / "default-runs"
    monkeypatch.setenv(run_folders.RUNS_FOLDER_VARIABLE, str(folder))
    return folder


def _must_not_execute(request):
    raise AssertionError(f"executed {request.parameters['run_name']} although it was complete")


def _status(path: Path) -> dict:
    document = json.loads(path.read_text())
    return {run["run_name"]: run for run in document["runs"]} | {"_sweep": document}


# --- parameter sets and names -------------------------------------------------------------------

def test_grid_is_the_cartesian_product_then_the_explicit_runs():
    sets = sweep_spec.expand_parameter_sets(
        {"epochs": 2, "batch_size": 16},
        {"learning_rate": [0.001, 0.003], "batch_size": [32, 64]},
        [{"learning_rate": 0.01}, {"seed": 7, "epochs": 3}])
    assert sets == [
        {"epochs": 2, "batch_size": 32, "learning_rate": 0.001},
        {"epochs": 2, "batch_size": 64, "learning_rate": 0.001},
        {"epochs": 2, "batch_size": 32, "learning_rate": 0.003},
        {"epochs": 2, "batch_size": 64, "learning_rate": 0.003},
        {"epochs": 2, "batch_size": 16, "learning_rate": 0.01},
        {"epochs": 3, "batch_size": 16, "seed": 7},
    ]
    assert sweep_spec.expand_parameter_sets({"epochs": 1}, {}, []) == [{"epochs": 1}]


def test_run_names_come_from_the_varying_parameters_and_are_deterministic():
    sets = sweep_spec.expand_parameter_sets(
        {"epochs": 2, "data_source": "/data/cifar.tar.gz"},
        {"learning_rate": [0.001, 1e-05], "batch_size": [32, 64]}, [])
    names = sweep_spec.run_names(sets)
    assert names == ["lr0.001-bs32", "lr0.001-bs64", "lr1e-05-bs32", "lr1e-05-bs64"]
    assert sweep_spec.run_names(sets) == names  # Same sets, same names.
    assert sweep_spec.run_names(sets, prefix="my sweep") == [f"my_sweep-{name}" for name in names]
    # One set: nothing varies, so all its parameters name it.
    assert sweep_spec.run_names([{"epochs": 1, "preprocessing": "standardize"}]) == \
        ["ep1-prep_standardize"]
    assert sweep_spec.run_names([{}]) == ["run"]
    # An explicit run_name in a runs entry is kept.
    assert sweep_spec.run_names([{"epochs": 1}, {"epochs": 2, "run_name": "mine"}]) == ["ep1", "mine"]


@pytest.mark.parametrize("values", [
    ["/data/a b/cifar 10 (copy).tar.gz", "../x/ünïcode:*?.tar", "C:\\data\\cifar.tar"],
    [None, True, False],
    [-0.5, 0.5, 1e20],
    ["..", ".hidden", "-rf"],
    [{"nested": [1, 2]}, "x" * 300],
])
def test_run_names_are_filesystem_safe_and_distinct(values):
    sets = [{"data_source": value, "epochs": 1} for value in values]
    names = sweep_spec.run_names(sets, prefix="../../etc/")
    assert len(set(names)) == len(names)
    for name in names:
        assert SAFE_NAME.match(name) and "/" not in name and name not in (".", ".."), name
        assert len(name) <= sweep_spec.MAX_RUN_NAME_LENGTH
    assert names == sweep_spec.run_names(sets, prefix="../../etc/")


def test_colliding_names_get_a_hash_and_duplicate_sets_are_refused():
    sets = [{"data_source": "/a/cifar.tar.gz"}, {"data_source": "/b/cifar.tar.gz"}]
    first, second = sweep_spec.run_names(sets)
    assert first.startswith("data_cifar.tar.gz-") and second.startswith("data_cifar.tar.gz-")
    assert first != second
    with pytest.raises(ValueError, match="share the run folder.*lr0.001"):
        sweep_spec.run_names([{"learning_rate": 0.001}, {"learning_rate": 1e-3}, {"seed": 1}])


# --- values, files, command line ---------------------------------------------------------------

@pytest.mark.parametrize("text, value", [
    ("1", 1), ("0.001", 0.001), ("1e-3", 0.001), ("3E4", 30000.0), ("-2.5e-1", -0.25),
    ("null", None), ("None", None), ("", None), ("true", True), ("False", False),
    ("scale", "scale"), ("../data/cifar10-jpeg.tar.gz", "../data/cifar10-jpeg.tar.gz"),
    ("'32'", "32"),
])
def test_command_line_values_are_yaml_scalars(text, value):
    parsed = sweep_spec.parse_value(text)
    assert parsed == value and type(parsed) is type(value)


def _arguments(argv):
    return cli.build_parser().parse_args(["sweep", *argv])


def test_command_line_builds_the_same_sweep_as_a_file(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("name: s1\nbase: {epochs: 1}\ngrid:\n  learning_rate: [1e-3, 0.003]\n"
                    "  batch_size: [32]\nruns:\n  - {seed: 7}\n")
    from_file = sweep_spec.load_sweep_file(path)
    from_arguments = cli_sweep.spec_from_arguments(_arguments(
        ["--name", "s1", "--set", "epochs=1", "--grid", "learning_rate=1e-3,0.003",
         "--grid", "batch_size=[32]", "--run", "seed=7"]))
    assert from_file == from_arguments
    assert from_file.grid == {"learning_rate": [0.001, 0.003], "batch_size": [32]}
    # The command line adds to a file: --set replaces base values, --run appends.
    combined = cli_sweep.spec_from_arguments(_arguments(
        [str(path), "--set", "epochs=3", "--run", "{learning_rate: 0.01, seed: 8}",
         "--workers", "2", "--output-dir", "elsewhere"]))
    assert combined.base == {"epochs": 3}
    assert combined.runs == [{"seed": 7}, {"learning_rate": 0.01, "seed": 8}]
    assert (combined.workers, combined.output_dir, combined.name) == (2, "elsewhere", "s1")


@pytest.mark.parametrize("text, message", [
    ("base: {epochs: 1\n", r"is not valid YAML: .*\(line \d+, column \d+\)"),
    ("base:\n  epochs: 1\n  epochs: 2\n", r"not valid YAML: duplicate key 'epochs' \(line 3"),
    ("", r"is empty; a sweep needs base, grid and/or runs"),
    ("- epochs: 1\n", r"a sweep must be a mapping with keys name, output_dir, workers, base"),
    ("epochs: 1\n", r"unknown key\(s\) epochs; valid keys: name, output_dir, workers, base, "
                    r"grid, runs\. Parameters go under base, grid or runs"),
    ("grid: {learning_rate: 0.001}\n", r"grid values of 'learning_rate' must be a list"),
    ("grid: {learning_rate: []}\n", r"grid values of 'learning_rate' are an empty list"),
    ("base: [epochs, 1]\n", r"base must be a mapping of parameter names to values"),
    ("runs: {epochs: 1}\n", r"runs must be a list of parameter mappings"),
    ("runs: [{epochs: 1}, 5]\n", r"runs\[1\] must be a mapping of parameter names"),
    ("workers: 0\nbase: {}\n", r"workers must be an integer >= 1, got 0"),
    ("name: 7\n", r"name must be a non-empty string, got 7"),
])
def test_sweep_file_errors_name_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as raised:
        sweep_spec.load_sweep_file(path)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize("argv, message", [
    ([], "Nothing to sweep: give a sweep file, or --set/--grid/--run values"),
    (["missing.yaml"], "Sweep file missing.yaml does not exist"),
    (["--set", "epochs"], "Expected NAME=VALUE (e.g. epochs=1), got 'epochs'"),
    (["--set", "epochs=[1, 2]"], "Expected a single value, got '[1, 2]'"),
    (["--grid", "learning_rate"], "Expected NAME=V1,V2,..."),
    (["--grid", "batch_size=[32, 64"], "Cannot read the list in 'batch_size=[32, 64'"),
    (["--set", "epochs=1", "--workers", "0"], "--workers must be an integer >= 1, got 0"),
    (["--grid", "output_dir=a,b"], "output_dir cannot be set in the sweep's grid"),
])
def test_bad_command_line_input_exits_2_with_a_clear_message(argv, message, tmp_path,
                                                             monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["sweep", *argv]) == cli.EXIT_BAD_INPUT
    error = capsys.readouterr().err
    assert error.startswith("cifar-cnn sweep: error: ") and message in error
    assert error.count("\n") == 1  # One line.
    assert list(tmp_path.iterdir()) == []  # Nothing was created, default runs folder included.


def test_dry_run_prints_the_plan_and_executes_nothing(tmp_path, monkeypatch, capsys,
                                                     default_runs_folder):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["sweep", "--set", "epochs=1", "--grid", "learning_rate=1e-3,0.003",
                     "--run", "learning_rate=0.01,validation_split=2", "--dry-run"]) == \
        cli.EXIT_SOME_FAILED
    # Without --output-dir the runs go to the project's runs folder, whatever the working folder.
    assert capsys.readouterr().out.splitlines() == [
        f"3 run(s) in {default_runs_folder}:",
        "  lr0.001: execute (epochs=1, learning_rate=0.001)",
        "  lr0.003: execute (epochs=1, learning_rate=0.003)",
        "  lr0.01-val2: invalid (epochs=1, learning_rate=0.01, validation_split=2) - ValueError: "
        "validation_split must be a number in [0, 1) (0: no validation split, as the seed), "
        "got 2.",
    ]
    assert list(tmp_path.iterdir()) == []


def test_the_example_sweep_file_plans_five_valid_runs(tmp_path):
    spec = sweep_spec.load_sweep_file(REPOSITORY_ROOT / "examples" / "sweep_example.yaml")
    spec.output_dir = str(tmp_path)
    output_dir, runs = sweep_plan.plan_sweep(spec)
    assert [run.run_name for run in runs] == [
        "example-lr0.001-bs32", "example-lr0.001-bs128", "example-lr0.0003-bs32",
        "example-lr0.0003-bs128", "example-lr0.003-bs128"]
    assert {run.status for run in runs} == {run_folders.PENDING}


# --- validation, skipping, resuming, failures (no papermill) -----------------------------------

def test_invalid_sets_are_recorded_failed_and_never_executed(tmp_path):
    executor = FakeExecutor()
    stream = io.StringIO()
    result = sweep.run_sweep(
        {"output_dir": str(tmp_path), "base": {"epochs": 1},
         "runs": [{"learning_rate": 0.001}, {"validation_split": 1.5}, {"epoch": 3},
                  {"learning_rate": 0.003}]},
        workers=1, executor=executor, stream=stream)
    assert executor.calls == ["lr0.001", "lr0.003"]
    by_name = {run.run_name: run for run in result.runs}
    assert by_name["val1.5"].status == "failed" and by_name["val1.5"].failed_at == "validation"
    assert by_name["val1.5"].error.startswith("ValueError: validation_split must be a number "
                                              "in [0, 1)")
    assert by_name["epoch3"].error.startswith("ValueError: Unknown parameter(s) epoch; valid "
                                              "parameters: recipe, epochs")
    assert not (tmp_path / "val1.5").exists() and not (tmp_path / "epoch3").exists()
    status = _status(tmp_path / "sweep.json")
    assert status["_sweep"]["status"] == "finished"
    assert status["_sweep"]["counts"] == {"pending": 0, "running": 0, "complete": 2,
                                          "skipped": 0, "failed": 2}
    assert status["val1.5"]["parameters"] == {"epochs": 1, "validation_split": 1.5}
    assert status["lr0.003"]["status"] == "complete" and status["lr0.003"]["seconds"] >= 0
    assert status["lr0.003"]["notebook"] == str(tmp_path / "lr0.003" / "notebook.ipynb")
    progress = stream.getvalue()
    assert "[val1.5] FAILED before execution: ValueError: validation_split" in progress
    assert "[lr0.001] epoch 1/1 - 0.1s" in progress
    assert "some other notebook output" not in progress  # Only epoch lines unless verbose.
    assert "sweep finished: 2 complete, 2 failed" in progress


def test_failed_executions_are_recorded_and_the_others_go_on(tmp_path):
    executor = FakeExecutor(fail={"s-seed2": "error", "s-seed3": "raise", "s-seed4": "silent"},
                            delay=0.2)
    stream = io.StringIO()
    result = sweep.run_sweep(
        {"output_dir": str(tmp_path), "name": "s", "grid": {"seed": [1, 2, 3, 4, 5]}},
        workers=2, executor=executor, stream=stream, verbose=True)
    assert sorted(executor.calls) == ["s-seed1", "s-seed2", "s-seed3", "s-seed4", "s-seed5"]
    assert executor.most_active == 2  # Two workers ran side by side.
    assert [run.status for run in result.runs] == \
        ["complete", "failed", "failed", "failed", "complete"]
    status = _status(tmp_path / "s-sweep.json")
    assert status["s-seed2"]["error"] == "DataSourceError: no such file"
    assert status["s-seed2"]["failed_at"] == "execution"
    assert status["s-seed2"]["notebook"] == str(tmp_path / "s-seed2" / "notebook.ipynb")
    assert status["s-seed3"]["error"] == "OSError: kernel could not start"
    assert status["s-seed4"]["error"] == ("execution ended with exit status 1 without writing "
                                          "metrics.json: epoch 1/1 - 0.1s - accuracy 0.5000 | "
                                          "some other notebook output | Traceback: the kernel "
                                          "died")
    assert status["s-seed4"]["notebook"] is None
    assert "[s-seed1] some other notebook output" in stream.getvalue()  # Verbose streams all.
    with (tmp_path / "s-comparison.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["run"], row["status"]) for row in rows] == [
        ("s-seed1", "complete"), ("s-seed2", "failed"), ("s-seed3", "failed"),
        ("s-seed4", "failed"), ("s-seed5", "complete")]
    assert list(rows[0]) == ["run", "seed", *RESULTS, "error"]


def test_completed_runs_are_skipped_interrupted_ones_resumed_conflicts_reported(tmp_path):
    base = {"epochs": 1, "output_dir": str(tmp_path)}
    spec = {"output_dir": str(tmp_path), "base": {"epochs": 1},
            "grid": {"learning_rate": [0.001, 0.002, 0.003, 0.004]}}
    # A completed run, an interrupted one, and a completed run of a different config.
    for name, learning_rate, epochs, complete in (("lr0.001", 0.001, 1, True),
                                                  ("lr0.002", 0.002, 1, False),
                                                  ("lr0.003", 0.003, 5, True)):
        folder = tmp_path / name
        folder.mkdir()
        config = RunConfig.from_parameters({**base, "learning_rate": learning_rate,
                                            "epochs": epochs, "run_name": name})
        recorded = config.to_dict()
        if name == "lr0.001":
            # Written before the library had this parameter: not a difference, as the
            # sweep does not set it.
            del recorded["seed"]
        (folder / "config.json").write_text(json.dumps(recorded))
        if complete:
            (folder / "metrics.json").write_text(json.dumps({"test_accuracy": 0.3}))
    executor = FakeExecutor()
    stream = io.StringIO()
    result = sweep.run_sweep(spec, workers=1, executor=executor, stream=stream, compare=False)
    assert executor.calls == ["lr0.002", "lr0.004"]
    by_name = {run.run_name: run for run in result.runs}
    assert by_name["lr0.001"].status == "skipped" and by_name["lr0.001"].test_accuracy == 0.3
    assert by_name["lr0.002"].status == "complete" and by_name["lr0.002"].resumed
    assert by_name["lr0.003"].status == "failed"
    assert re.match(r"ValueError: run folder .*lr0.003 holds a completed run with a different "
                    r"config \(epochs differ\)", by_name["lr0.003"].error)
    assert "[lr0.002] started (resuming an interrupted run), run 1 of 2 to execute" in \
        stream.getvalue()
    assert json.loads((tmp_path / "lr0.003" / "metrics.json").read_text()) == \
        {"test_accuracy": 0.3}  # Left alone.
    # Everything that can complete has: a second sweep executes nothing.
    again = sweep.run_sweep(spec, workers=1, executor=_must_not_execute, stream=io.StringIO(),
                            compare=False)
    assert [run.status for run in again.runs] == ["skipped", "skipped", "failed", "skipped"]


def test_where_run_folders_go_is_not_a_parameter_that_varies(tmp_path, monkeypatch,
                                                             default_runs_folder):
    for spec, message in (
            ({"grid": {"output_dir": ["a", "b"]}}, "output_dir cannot be set in the sweep's grid"),
            ({"base": {"run_name": "x"}}, "run_name cannot be set in the sweep's base"),
            ({"runs": [{"output_dir": "a"}]}, "output_dir cannot be set in a runs entry"),
            ({"runs": [{"run_name": "../up"}]}, r"runs\[0\]: run_name must be a plain folder")):
        with pytest.raises(ValueError, match=message):
            sweep.run_sweep(spec, executor=_must_not_execute, stream=io.StringIO())
    # base's output_dir is the sweep's output_dir.
    output_dir, runs = sweep_plan.plan_sweep(
        sweep_spec.SweepSpec(base={"output_dir": str(tmp_path)}))
    assert output_dir == tmp_path and runs[0].notebook_parameters()["output_dir"] == str(tmp_path)
    # Without one, the project's runs folder, whatever the working folder.
    monkeypatch.chdir(tmp_path)
    output_dir, runs = sweep_plan.plan_sweep(sweep_spec.SweepSpec(base={"epochs": 1}))
    assert output_dir == default_runs_folder
    assert runs[0].run_folder == default_runs_folder / runs[0].run_name


def test_default_workers_and_per_worker_threads():
    assert sweep_workers.default_workers(cpu_count=2, gpu_present=False) == 1
    assert sweep_workers.default_workers(cpu_count=1, gpu_present=False) == 1
    assert sweep_workers.default_workers(cpu_count=16, gpu_present=False) == 8
    assert sweep_workers.default_workers(cpu_count=16, gpu_present=True) == 1
    alone = sweep_workers.worker_environment(1, cpu_count=16, base={"PATH": "/bin"})
    assert "TF_NUM_INTRAOP_THREADS" not in alone and alone["PATH"] == "/bin"
    # TensorFlow's own messages are kept, in each run's run.log, not hidden.
    assert "TF_CPP_MIN_LOG_LEVEL" not in alone
    shared = sweep_workers.worker_environment(4, cpu_count=16, base={"OMP_NUM_THREADS": "1"})
    assert shared["TF_NUM_INTRAOP_THREADS"] == "4" and shared["TF_NUM_INTEROP_THREADS"] == "2"
    assert shared["OMP_NUM_THREADS"] == "1"  # Set by the user: kept.
    assert shared["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"


# --- real papermill executions -----------------------------------------------------------------

TINY = {"epochs": 1, "max_train_examples": 100, "max_test_examples": 50}


@pytest.mark.slow
def test_sweep_executes_the_notebook_per_set_then_skips_every_completed_run(
        image_folder_archive, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    output_dir = tmp_path / "runs"
    spec = {"output_dir": str(output_dir),
            "base": {**TINY, "data_source": str(image_folder_archive)},
            "grid": {"learning_rate": [0.003]},
            "runs": [{"learning_rate": 0.001, "batch_size": 16}]}
    stream = io.StringIO()
    result = sweep.run_sweep(spec, workers=2, stream=stream)
    names = ["lr0.003", "lr0.001-bs16"]
    assert [run.run_name for run in result.runs] == names
    assert [run.status for run in result.runs] == ["complete"] * 2, stream.getvalue()
    for name in names:
        folder = output_dir / name
        assert json.loads((folder / "metrics.json").read_text())["test_examples"] == 50
        notebook = json.loads((folder / "notebook.ipynb").read_text())
        assert notebook["metadata"]["papermill"]["parameters"]["run_name"] == name
    assert json.loads((output_dir / "lr0.001-bs16" / "config.json").read_text())["batch_size"] \
        == 16
    progress = stream.getvalue()
    for name in names:
        assert f"[{name}] epoch 1/1 - " in progress and f"[{name}] complete in " in progress
    assert "sweep finished: 2 complete" in progress
    # The comparison: one row per run, parameter columns only for what differs.
    with (output_dir / "comparison.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["run", "batch_size", "learning_rate", *RESULTS]
    assert [(row["run"], row["batch_size"], row["learning_rate"], row["status"])
            for row in rows] == [("lr0.003", "32", "0.003", "complete"),
                                 ("lr0.001-bs16", "16", "0.001", "complete")]
    for row in rows:
        assert 0.0 <= float(row["test_accuracy"]) <= 1.0 and row["best_epoch"] == "1"
    markdown = (output_dir / "comparison.md").read_text().splitlines()
    assert markdown[0] == ("| run | batch_size | learning_rate | status | test_accuracy | "
                           "best_epoch | best_monitored_accuracy | train_seconds |")
    assert len(markdown) == 4
    assert (output_dir / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    status = json.loads((output_dir / "sweep.json").read_text())
    assert status["varying"] == ["learning_rate", "batch_size"] and status["workers"] == 2
    # A sweep's run folder is the one `cifar-cnn train` writes for the same parameters, plus
    # its executed notebook (test_notebook_and_train_write_the_same_run_folder: the notebook's).
    assert cli.main(["train", "--epochs", "1", "--max-train-examples", "100",
                     "--max-test-examples", "50", "--data-source", str(image_folder_archive),
                     "--learning-rate", "0.001", "--batch-size", "16",
                     "--output-dir", str(tmp_path / "trained"), "--run-name", "lr0.001-bs16"]) == 0
    assert files_in(output_dir / "lr0.001-bs16") == \
        files_in(tmp_path / "trained" / "lr0.001-bs16") | {run_folders.NOTEBOOK_FILE}

    # Running the sweep again executes nothing and changes no run folder.
    modified = {path: path.stat().st_mtime_ns for path in output_dir.rglob("*")
                if path.parent != output_dir}
    again = sweep.run_sweep(spec, workers=2, executor=_must_not_execute, stream=io.StringIO())
    assert [run.status for run in again.runs] == ["skipped"] * 2
    assert {path: path.stat().st_mtime_ns for path in modified} == modified
    assert json.loads((output_dir / "sweep.json").read_text())["counts"]["skipped"] == 2


@pytest.mark.slow
def test_command_line_sweep_with_bad_sets_finishes_the_others_and_reports_them(
        image_folder_archive, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(
        "name: bad\n"
        "base: {epochs: 1, max_train_examples: 100, max_test_examples: 50}\n"
        "runs:\n"
        # A run that completes beside failing ones: test_sweep_executes_the_notebook_per_set_...
        # executes real ones, test_failed_executions_are_recorded_and_the_others_go_on mixes
        # both; here the command line's own reporting of failures is the point.
        "  - {data_source: missing.tar.gz}\n"  # Valid config; fails inside the notebook.
        f"  - {{data_source: '{image_folder_archive}', validation_split: 1.5}}\n")
    exit_code = cli.main(["sweep", str(sweep_file), "--output-dir", "out", "--workers", "2"])
    printed = capsys.readouterr().out
    assert exit_code == cli.EXIT_SOME_FAILED, printed
    status = _status(tmp_path / "out" / "bad-sweep.json")
    missing, invalid = (status[name] for name in (
        "bad-data_missing.tar.gz", "bad-data_tiny-image-folder.tar.gz-val1.5"))
    assert missing["status"] == "failed" and missing["failed_at"] == "execution"
    assert missing["error"].startswith("DataSourceError: CIFAR-10 source 'missing.tar.gz' does "
                                       "not exist")
    executed = json.loads((tmp_path / missing["notebook"]).read_text())
    assert any(output.get("ename") == "DataSourceError" for cell in executed["cells"]
               for output in cell.get("outputs", []))
    assert invalid["status"] == "failed" and invalid["failed_at"] == "validation"
    assert invalid["notebook"] is None and invalid["started_at"] is None
    assert invalid["error"].startswith("ValueError: validation_split must be a number in [0, 1)")
    assert "[bad-data_missing.tar.gz] FAILED after" in printed
    assert "sweep finished: 2 failed" in printed
    markdown = (tmp_path / "out" / "bad-comparison.md").read_text()
    assert "| failed |" in markdown and "DataSourceError" in markdown
