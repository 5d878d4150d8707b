"""Run folders: what they record, when they resume, and that completed runs are not overwritten."""

import json

import pytest

from cifar_cnn import runs
from cifar_cnn.config import RunConfig


def _config(tmp_path, **overrides):
    parameters = {"output_dir": str(tmp_path), "run_name": "r1", **overrides}
    return RunConfig.from_parameters(parameters, environ={})


def test_start_run_records_config_versions_and_commit(tmp_path):
    run = runs.start_run(_config(tmp_path))
    assert run.path == tmp_path / "r1" and not run.resumed
    assert json.loads((run.path / "config.json").read_text())["recipe"] == "seed"
    record = json.loads((run.path / "run.json").read_text())
    assert record["status"] == "running"
    environment = record["environment"]
    for key in ("tensorflow", "keras", "numpy", "python", "cifar_cnn", "processor", "git"):
        assert environment[key] is not None
    assert set(environment["git"]) == {"commit", "dirty"}
    assert not run.is_complete()


def test_default_run_names_are_new_folders(tmp_path):
    config = RunConfig.from_parameters({"output_dir": str(tmp_path)}, environ={})
    assert runs.default_run_name(config).endswith("-seed")


def test_finish_marks_complete_and_removes_resume_state(tmp_path):
    run = runs.start_run(_config(tmp_path))
    (run.path / "training_state").mkdir()
    (run.path / "training_state" / "epoch-0001.weights.h5").write_bytes(b"x")
    with pytest.raises(ValueError, match="test_accuracy"):
        run.finish({"accuracy": 1})
    assert not run.is_complete()
    run.finish({"test_accuracy": 0.5})
    assert run.is_complete()
    assert json.loads((run.path / "run.json").read_text())["status"] == "complete"
    assert not (run.path / "training_state").exists()


def test_completed_run_is_not_overwritten_unless_asked(tmp_path):
    run = runs.start_run(_config(tmp_path))
    run.finish({"test_accuracy": 0.5})
    with pytest.raises(ValueError, match="already holds a completed run.*overwrite=True"):
        runs.start_run(_config(tmp_path))
    assert json.loads((run.path / "metrics.json").read_text())["test_accuracy"] == 0.5
    replaced = runs.start_run(_config(tmp_path, overwrite=True))
    assert not replaced.is_complete()


def test_interrupted_run_resumes_only_with_the_same_config(tmp_path):
    runs.start_run(_config(tmp_path, epochs=5))
    with pytest.raises(ValueError, match="different config \\(epochs differ\\)"):
        runs.start_run(_config(tmp_path, epochs=6))
    again = runs.start_run(_config(tmp_path, epochs=5))
    assert again.resumed
    assert "first_started_at" in json.loads((again.path / "run.json").read_text())


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
