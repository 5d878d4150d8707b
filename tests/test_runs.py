"""Run folders: what they record, the one reuse rule, reading them back, and one home for names."""

import json
import re
from pathlib import Path

import pytest

from cifar_cnn import run_catalog, run_reuse, runs
from cifar_cnn.config import RunConfig

PACKAGE = Path(runs.__file__).resolve().parent


def _config(tmp_path, **overrides):
    parameters = {"output_dir": str(tmp_path), "run_name": "r1", **overrides}
    return RunConfig.from_parameters(parameters, environ={})


def test_start_run_records_config_and_status_without_tensorflow(tmp_path):
    run = runs.start_run(_config(tmp_path))
    assert run.path == tmp_path / "r1" and not run.resumed
    assert json.loads((run.path / runs.CONFIG_FILE).read_text())["recipe"] == "seed"
    record = json.loads((run.path / runs.RUN_RECORD_FILE).read_text())
    assert record["status"] == runs.RUNNING and record["first_started_at"] == record["started_at"]
    assert not run.is_complete()


def test_record_environment_adds_versions_machine_and_commit(tmp_path):
    run = runs.start_run(_config(tmp_path))
    runs.record_environment(run)
    environment = json.loads((run.path / runs.RUN_RECORD_FILE).read_text())["environment"]
    for key in ("tensorflow", "keras", "numpy", "python", "cifar_cnn", "processor", "git"):
        assert environment[key] is not None
    assert set(environment["git"]) == {"commit", "dirty"}


def test_default_run_names_are_new_folders(tmp_path):
    config = RunConfig.from_parameters({"output_dir": str(tmp_path)}, environ={})
    assert runs.default_run_name(config).endswith("-seed")


def test_finish_marks_complete_and_removes_resume_state(tmp_path):
    run = runs.start_run(_config(tmp_path))
    (run.training_state_path).mkdir()
    (run.training_state_path / "epoch-0001.weights.h5").write_bytes(b"x")
    with pytest.raises(ValueError, match="test_accuracy"):
        run.finish({"accuracy": 1})
    assert not run.is_complete()
    run.finish({"test_accuracy": 0.5})
    assert run.is_complete()
    assert run_catalog.read_run(run.path).status == runs.COMPLETE
    assert json.loads((run.path / runs.RUN_RECORD_FILE).read_text())["status"] == runs.COMPLETE
    assert not run.training_state_path.exists()


def test_completed_run_is_not_overwritten_unless_asked(tmp_path):
    run = runs.start_run(_config(tmp_path))
    run.finish({"test_accuracy": 0.5})
    with pytest.raises(ValueError, match="already holds a completed run.*overwrite=True"):
        runs.start_run(_config(tmp_path))
    assert json.loads((run.path / runs.METRICS_FILE).read_text())["test_accuracy"] == 0.5
    replaced = runs.start_run(_config(tmp_path, overwrite=True))
    assert not replaced.is_complete() and replaced.replaced is not None
    # The replaced run waits, hidden, until its replacement completes.
    assert replaced.replaced.name.startswith(".") and replaced.replaced.is_dir()
    assert run_catalog.find_runs(tmp_path) == [replaced.path]
    replaced.finish({"test_accuracy": 0.7})
    assert [path.name for path in tmp_path.iterdir()] == ["r1"]
    assert run_catalog.read_run(tmp_path / "r1").test_accuracy == 0.7


def test_a_failed_replacement_puts_the_completed_run_back(tmp_path):
    original = runs.start_run(_config(tmp_path))
    (original.path / "model.keras").write_bytes(b"the original model")
    original.finish({"test_accuracy": 0.5})
    replacement = runs.start_run(_config(tmp_path, overwrite=True, epochs=3))
    replacement.fail(RuntimeError("data source vanished"))
    assert [path.name for path in tmp_path.iterdir()] == ["r1"]
    restored = run_catalog.read_run(tmp_path / "r1")
    assert restored.status == runs.COMPLETE and restored.test_accuracy == 0.5
    assert (tmp_path / "r1" / "model.keras").read_bytes() == b"the original model"


def test_a_replacement_that_died_unrecorded_still_ends_in_one_run(tmp_path):
    original = runs.start_run(_config(tmp_path))
    original.finish({"test_accuracy": 0.5})
    runs.start_run(_config(tmp_path, overwrite=True, epochs=3))  # Then the process dies.
    assert run_catalog.find_runs(tmp_path) == [tmp_path / "r1"]
    # Started again with other parameters, then failing: the completed run comes back.
    retry = runs.start_run(_config(tmp_path, overwrite=True, epochs=4))
    retry.fail(RuntimeError("out of patience"))
    assert [path.name for path in tmp_path.iterdir()] == ["r1"]
    assert run_catalog.read_run(tmp_path / "r1").test_accuracy == 0.5
    # Died again, then resumed with the same parameters and completed: one run is left.
    runs.start_run(_config(tmp_path, overwrite=True, epochs=3))
    resumed = runs.start_run(_config(tmp_path, overwrite=True, epochs=3))
    assert resumed.resumed and resumed.replaced is not None
    resumed.finish({"test_accuracy": 0.8})
    assert [path.name for path in tmp_path.iterdir()] == ["r1"]
    assert run_catalog.read_run(tmp_path / "r1").test_accuracy == 0.8


def test_a_failure_is_recorded_and_the_run_can_resume(tmp_path):
    run = runs.start_run(_config(tmp_path, epochs=5))
    run.fail(ValueError("bad\nthing"))
    summary = run_catalog.read_run(run.path)
    assert summary.status == runs.FAILED and summary.error == "ValueError: bad thing"
    assert runs.start_run(_config(tmp_path, epochs=5)).resumed


def test_interrupted_run_resumes_only_with_the_same_config(tmp_path):
    runs.start_run(_config(tmp_path, epochs=5))
    with pytest.raises(ValueError, match="different config \\(epochs differ\\)"):
        runs.start_run(_config(tmp_path, epochs=6))
    again = runs.start_run(_config(tmp_path, epochs=5, strategy="default"))
    assert again.resumed  # The strategy may change between a run and its restart.
    assert json.loads((again.path / runs.RUN_RECORD_FILE).read_text())["first_started_at"]


@pytest.mark.parametrize("setup, overrides, state", [
    ("nothing", {}, run_reuse.NEW),
    ("interrupted", {}, run_reuse.RESUME),
    ("interrupted", {"overwrite": True}, run_reuse.RESUME),
    ("interrupted", {"epochs": 7}, run_reuse.CONFLICT),
    ("interrupted", {"epochs": 7, "overwrite": True}, run_reuse.REPLACE),
    ("complete", {}, run_reuse.DONE),
    ("complete", {"overwrite": True}, run_reuse.REPLACE),
    ("complete", {"seed": 1}, run_reuse.CONFLICT),
    ("damaged", {}, run_reuse.CONFLICT),
    ("complete", {"output_dir": "elsewhere", "strategy": "mirrored"}, run_reuse.DONE),
])
def test_one_rule_decides_what_a_folder_may_hold(tmp_path, setup, overrides, state):
    path = tmp_path / "r1"
    if setup != "nothing":
        run = runs.start_run(_config(tmp_path, epochs=5))
        if setup == "complete":
            run.finish({"test_accuracy": 0.5})
        if setup == "damaged":
            (path / runs.CONFIG_FILE).write_text("{half")
    config = _config(tmp_path, **{"epochs": 5, **overrides})
    assert run_reuse.existing_run_state(path, config).state == state


def test_a_field_the_earlier_config_lacks_counts_only_when_given(tmp_path):
    run = runs.start_run(_config(tmp_path))
    run.finish({"test_accuracy": 0.5})
    recorded = json.loads((run.path / runs.CONFIG_FILE).read_text())
    del recorded["tensorboard"]  # As if written before the field existed.
    (run.path / runs.CONFIG_FILE).write_text(json.dumps(recorded))
    assert run_reuse.existing_run_state(run.path, _config(tmp_path)).state == run_reuse.DONE
    assert run_reuse.existing_run_state(
        run.path, _config(tmp_path), given_parameters={"tensorboard"}).state == run_reuse.CONFLICT


def test_read_run_never_raises_and_find_runs_skips_non_runs(tmp_path):
    good = runs.start_run(_config(tmp_path, run_name="good"))
    good.finish({"test_accuracy": 0.25, "epochs": 2, "recipe": "seed"})
    runs.start_run(_config(tmp_path, run_name="damaged"))
    (tmp_path / "damaged" / runs.HISTORY_FILE).write_text("[{")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("not a run")
    (tmp_path / "failed-early").mkdir()
    (tmp_path / "failed-early" / runs.NOTEBOOK_FILE).write_text("{}")
    summaries = {summary.name: summary for summary in run_catalog.list_runs(tmp_path)}
    assert sorted(summaries) == ["damaged", "failed-early", "good"]
    assert summaries["good"].status == runs.COMPLETE and summaries["good"].epochs_done == 2
    assert summaries["damaged"].status == runs.UNREADABLE
    assert "not valid JSON" in summaries["damaged"].error
    assert summaries["failed-early"].status == runs.INTERRUPTED
    assert run_catalog.find_runs(tmp_path, "go*") == [tmp_path / "good"]
    assert run_catalog.find_runs(tmp_path / "good") == [tmp_path / "good"]
    with pytest.raises(FileNotFoundError, match="is not a folder of runs"):
        run_catalog.find_runs(tmp_path / "missing")


def test_runs_land_in_one_folder_whatever_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(runs.RUNS_FOLDER_VARIABLE, raising=False)
    monkeypatch.chdir(tmp_path)
    checkout = PACKAGE.parent
    assert runs.runs_folder() == checkout / "runs"
    monkeypatch.chdir(checkout / "notebooks")
    assert runs.runs_folder() == checkout / "runs"
    monkeypatch.setenv(runs.RUNS_FOLDER_VARIABLE, str(tmp_path / "mine"))
    assert runs.runs_folder() == tmp_path / "mine"
    assert runs.runs_folder("given") == Path("given")


def test_bad_run_names_and_output_dirs_are_refused_up_front(tmp_path):
    with pytest.raises(ValueError, match="at most 100 characters"):
        _config(tmp_path, run_name="x" * 300)
    with pytest.raises(ValueError, match="plain folder name"):
        _config(tmp_path, run_name=".hidden")
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ValueError, match="cannot create run folder"):
        runs.start_run(_config(tmp_path / "a-file"))


def test_save_figure_and_model_leave_no_partial_files(tmp_path):
    from matplotlib.figure import Figure

    from cifar_cnn.models import build_model

    run = runs.start_run(_config(tmp_path))
    figure = Figure()
    figure.subplots().plot([0, 1])
    path = run.save_figure(figure, "curve")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    run.save_model(build_model("seed_cnn"))
    assert run.model_path.is_file()
    leftovers = [p.name for p in run.path.rglob("*") if "partial" in p.name]
    assert leftovers == []


# The run folder's file names live in cifar_cnn/runs.py; every other module imports them.
RUN_FILE_NAMES = ("config.json", "run.json", "history.json", "metrics.json", "model.keras",
                  "best.keras", "notebook.ipynb", "run.log", "training_state")


# The same spelling for another thing: a member of Keras' .keras archive, not a run file.
OTHER_MEANINGS = {("model_files.py", "config.json")}


def test_run_folder_file_names_are_defined_in_one_module_only():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "runs.py" and path.parent == PACKAGE:
            continue
        text = path.read_text()
        for name in RUN_FILE_NAMES:
            if (path.name, name) in OTHER_MEANINGS:
                continue
            if re.search(rf"[\"']{re.escape(name)}[\"']", text):
                offenders.append(f"{path.relative_to(PACKAGE)}: {name}")
    assert offenders == []


def _modules_matching(pattern: str) -> list[str]:
    return [path.relative_to(PACKAGE).as_posix() for path in sorted(PACKAGE.rglob("*.py"))
            if re.search(pattern, path.read_text(), re.MULTILINE)]


def test_status_words_atomic_writes_and_timestamps_have_one_home():
    assert _modules_matching(r"^def utc_now\(") == ["runs.py"]
    assert _modules_matching(r"^[A-Z_, ]*= \"(complete|failed|pending)\"") == ["runs.py"]
    # Files are written atomically by files.atomic_output alone; run_reuse.py renames whole run
    # folders (setting a replaced run aside), which is not writing a file.
    assert _modules_matching(r"mkstemp\(") == ["files.py"]
    assert _modules_matching(r"os\.replace\(") == ["files.py", "run_reuse.py"]
