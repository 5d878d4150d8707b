"""Careless input never loses a run: refusals before work, put-back on failure, one-line errors."""

from __future__ import annotations

import json
import os

import papermill
import pytest

from cifar_cnn import cli, run_catalog, runs
from cifar_cnn.config import RunConfig
from cifar_cnn.notebook_runner import execute_notebook
from cifar_cnn.sweep_lock import SWEEP_LOCK_FILE, output_folder_lock


def _completed_run(output, name="done", **parameters):
    """A completed run folder made by hand: config, metrics, an executed notebook, a model."""
    config = RunConfig.from_parameters({"output_dir": str(output), "run_name": name,
                                        **parameters}, environ={})
    run = runs.start_run(config)
    (run.path / runs.NOTEBOOK_FILE).write_text("the executed notebook of the completed run")
    run.model_path.write_bytes(b"the completed run's model")
    run.finish({"test_accuracy": 0.5})
    return run.path


def _snapshot(folder):
    return {path.relative_to(folder).as_posix(): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.mark.slow
def test_the_notebook_runner_never_writes_into_a_completed_run(tmp_path):
    folder = _completed_run(tmp_path)
    before = _snapshot(folder)
    with pytest.raises(ValueError, match="already holds a completed run"):
        execute_notebook({"output_dir": str(tmp_path), "run_name": "done"})
    with pytest.raises(ValueError, match="different config \\(epochs differ\\)"):
        execute_notebook({"output_dir": str(tmp_path), "run_name": "done", "epochs": 3})
    assert _snapshot(folder) == before


@pytest.mark.slow
def test_a_failed_overwrite_through_the_notebook_puts_the_completed_run_back(tmp_path):
    folder = _completed_run(tmp_path)
    before = _snapshot(folder)
    with pytest.raises(papermill.PapermillExecutionError, match="does not exist"):
        execute_notebook({"output_dir": str(tmp_path), "run_name": "done", "overwrite": True,
                          "data_source": str(tmp_path / "no-such-archive.tar.gz")},
                         log_output=False)
    assert _snapshot(folder) == before
    assert [path.name for path in tmp_path.iterdir()] == ["done"]  # Nothing left aside.


def test_overwriting_unlinks_links_inside_the_run_and_never_follows_them(tmp_path):
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "data.txt").write_text("keep me")
    output = tmp_path / "runs"
    folder = _completed_run(output)
    (folder / "linked-folder").symlink_to(outside, target_is_directory=True)
    (folder / "linked-file").symlink_to(outside / "data.txt")
    config = RunConfig.from_parameters({"output_dir": str(output), "run_name": "done",
                                        "overwrite": True}, environ={})
    replacement = runs.start_run(config)
    replacement.finish({"test_accuracy": 0.6})
    assert (outside / "data.txt").read_text() == "keep me"
    assert not (folder / "linked-folder").exists()
    assert run_catalog.read_run(folder).test_accuracy == 0.6


def test_a_second_sweep_in_the_same_folder_is_refused_with_its_holder(tmp_path, capsys):
    output = tmp_path / "runs"
    with output_folder_lock(output):
        holder = (output / SWEEP_LOCK_FILE).read_text()
        assert f"\"pid\": {os.getpid()}" in holder
        exit_code = cli.main(["sweep", "--set", "epochs=1", "--output-dir", str(output)])
    assert exit_code == cli.EXIT_BAD_INPUT
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "in use by another sweep" in error
    assert f"process {os.getpid()}" in error
    # The refused sweep wrote nothing, and the released lock took its file with it.
    assert sorted(path.name for path in output.iterdir()) == []
    with output_folder_lock(output):  # Released: the next sweep gets it.
        pass


@pytest.mark.parametrize("argv, message", [
    (["train", "--output-dir", "{file}"], "cannot create run folder"),
    (["train", "--run-name", "x" * 300], "at most 100 characters"),
    (["notebook", "--run-name", "../escape"], "plain folder name"),
    (["sweep", "{spec}"], "a key must be a name, got a list"),
    (["runs", "{file}"], "is not a folder of runs"),
])
def test_careless_input_gets_one_line_and_exit_2(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("")
    (tmp_path / "spec.yaml").write_text("base: {[1, 2]: 3}\n")
    argv = [argument.format(file=tmp_path / "a-file", spec=tmp_path / "spec.yaml")
            for argument in argv]
    assert cli.main(argv) == cli.EXIT_BAD_INPUT
    captured = capsys.readouterr()
    assert len(captured.err.strip().splitlines()) == 1 and message in captured.err
    assert "Traceback" not in captured.err + captured.out
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a-file", "spec.yaml"]


def test_metrics_record_the_strategy_auto_chose(image_folder_archive, tmp_path):
    from cifar_cnn.experiment import run_experiment

    config = RunConfig.from_parameters({"epochs": 1, "data_source": str(image_folder_archive),
                                        "max_train_examples": 50, "max_test_examples": 20,
                                        "output_dir": str(tmp_path), "run_name": "auto"},
                                       environ={})
    _, metrics = run_experiment(config, print_epochs=False)
    recorded = json.loads((tmp_path / "auto" / runs.METRICS_FILE).read_text())
    assert recorded["strategy"] in ("default", "mirrored", "tpu") and recorded["replicas"] >= 1
    assert recorded == json.loads(json.dumps(metrics))
