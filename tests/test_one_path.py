"""Every way to start a run goes through the same steps and writes the same run folder."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from cifar_cnn import cli, experiment, run_catalog, runs
from cifar_cnn.data import CLASS_NAMES
from cifar_cnn.notebook_runner import main_notebook_path
from run_files import files_in


@pytest.mark.slow
def test_notebook_and_train_write_the_same_run_folder(image_folder_archive, tmp_path,
                                                      monkeypatch, capsys):
    # A sweep's runs are papermill runs too (notebook_runner.execute_notebook, in a child
    # process): test_sweep_executes_the_notebook_per_set_... sets them against a train run.
    monkeypatch.chdir(tmp_path)
    output = tmp_path / "runs"
    # Two epochs and a validation split, so that the per-epoch lines, the history and the
    # best model by validation accuracy are all exercised on every path.
    options = ["--epochs", "2", "--data-source", str(image_folder_archive),
               "--max-train-examples", "100", "--max-test-examples", "50",
               "--validation-split", "0.2", "--output-dir", str(output)]
    assert cli.main(["train", *options, "--run-name", "from-train"]) == 0
    assert cli.main(["notebook", *options, "--run-name", "from-notebook"]) == 0
    trained = files_in(output / "from-train")
    # Only papermill runs keep their executed notebook; everything else is the same.
    assert files_in(output / "from-notebook") == trained | {runs.NOTEBOOK_FILE}
    for name in ("from-train", "from-notebook"):
        summary = run_catalog.read_run(output / name)
        assert summary.status == runs.COMPLETE and summary.metrics["test_examples"] == 50
        assert summary.record["environment"]["tensorflow"]
    figures = {path for path in trained if path.startswith(runs.FIGURES_FOLDER + "/")}
    assert figures == {f"{runs.FIGURES_FOLDER}/{name}.png" for name in experiment.DATA_FIGURES
                       + experiment.TRAINING_FIGURES + experiment.EVALUATION_FIGURES}
    for figure in figures:
        assert (output / "from-notebook" / figure).read_bytes()[:4] == b"\x89PNG", figure
    # The CLI shows the run's own lines; TensorFlow's start-up messages are in run.log.
    printed = capsys.readouterr()
    assert "cuda" not in (printed.out + printed.err).lower()
    assert "epoch 1/2" in printed.out and "epoch 2/2" in printed.out
    _check_papermill_run(output / "from-notebook")


def _check_papermill_run(run_folder: Path) -> None:
    """What a papermill run of the notebook leaves: a complete run folder and its notebook."""
    metrics = json.loads((run_folder / runs.METRICS_FILE).read_text())
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert metrics["test_examples"] == 50 and metrics["train_examples"] == 80
    assert metrics["epochs"] == 2 and len(metrics["seconds_per_epoch"]) == 2
    assert tuple(metrics["per_class_accuracy"]) == CLASS_NAMES
    assert sum(map(sum, metrics["confusion_matrix"])) == 50
    assert metrics["monitored_on"] == "validation" and metrics["best_epoch"] in (1, 2)
    history = json.loads((run_folder / runs.HISTORY_FILE).read_text())
    assert [row["epoch"] for row in history] == [1, 2] and "val_accuracy" in history[0]
    assert (run_folder / runs.MODEL_FILE).is_file() and (run_folder / runs.BEST_MODEL_FILE).is_file()
    assert json.loads((run_folder / runs.RUN_RECORD_FILE).read_text())["status"] == runs.COMPLETE
    executed = nbformat.read(run_folder / runs.NOTEBOOK_FILE, as_version=4)
    assert executed.metadata.papermill.parameters["run_name"] == run_folder.name
    outputs = "".join(output.get("text", "") for cell in executed.cells
                      for output in cell.get("outputs", []))
    assert "epoch 1/2" in outputs and "epoch 2/2" in outputs  # One line per epoch.
    assert not (run_folder / runs.TRAINING_STATE_FOLDER).exists()


@pytest.mark.slow
def test_editing_a_parameter_and_running_again_in_the_same_kernel(image_folder_archive,
                                                                  tmp_path, monkeypatch):
    monkeypatch.setenv("CIFAR_CNN_QUICK", "1")
    monkeypatch.setenv("CIFAR10_SOURCE", str(image_folder_archive))
    monkeypatch.setenv(runs.RUNS_FOLDER_VARIABLE, str(tmp_path / "runs"))
    notebook = nbformat.read(main_notebook_path(), as_version=4)
    client = NotebookClient(notebook, kernel_name="python3", timeout=300,
                            resources={"metadata": {"path": str(tmp_path)}})
    parameters_index = next(index for index, cell in enumerate(notebook.cells)
                            if "parameters" in cell.metadata.get("tags", []))
    config_index = next(index for index, cell in enumerate(notebook.cells)
                        if "notebook_parameters(globals())" in cell.source)

    def config_output() -> str:
        return "".join(output.get("text", "") for output in notebook.cells[config_index].outputs)

    with client.setup_kernel():
        for index, cell in enumerate(notebook.cells):  # "Run All".
            client.execute_cell(cell, index)
        _check_training_and_save_cells_refuse_a_completed_run(client, notebook, tmp_path / "runs")
        assert re.search(r"^seed +42$", config_output(), re.M)
        # The plan shows what data_source=None resolved to.
        assert re.search(rf"^data +{re.escape(str(image_folder_archive))}", config_output(), re.M)
        # The interactive loop: edit a parameter, run the parameters and config cells again.
        notebook.cells[parameters_index].source = \
            notebook.cells[parameters_index].source.replace("seed = 42", "seed = 7")
        client.execute_cell(notebook.cells[parameters_index], parameters_index)
        client.execute_cell(notebook.cells[config_index], config_index)
        assert re.search(r"^seed +7$", config_output(), re.M)
        for index, cell in enumerate(notebook.cells):  # A second "Run All", same kernel.
            client.execute_cell(cell, index)
    errors = [output for cell in notebook.cells for output in cell.get("outputs", [])
              if output.get("output_type") == "error"]
    assert errors == []
    completed = [summary for summary in run_catalog.list_runs(tmp_path / "runs")
                 if summary.status == runs.COMPLETE]
    assert sorted(summary.config["seed"] for summary in completed) == [7, 42]
    # No TensorFlow start-up message reaches the notebook as a red stderr box.
    stderr = [output for cell in notebook.cells for output in cell.get("outputs", [])
              if output.get("name") == "stderr"]
    assert stderr == [], stderr[:1]


def _cell_running(notebook, code: str) -> int:
    matches = [index for index, cell in enumerate(notebook.cells)
               if cell.cell_type == "code" and code in cell.source]
    assert len(matches) == 1, f"{code!r} should be in exactly one cell"
    return matches[0]


def _check_training_and_save_cells_refuse_a_completed_run(client, notebook, runs_dir: Path):
    """After Run All, the training and save cells run again are refused; no file changes."""
    [run_folder] = [summary.path for summary in run_catalog.list_runs(runs_dir)
                    if summary.status == runs.COMPLETE]
    before = {path: path.read_bytes() for path in sorted(run_folder.rglob("*")) if path.is_file()}
    for code in ("experiment.train_model(", "experiment.finish_run("):
        index = _cell_running(notebook, code)
        with pytest.raises(CellExecutionError) as refused:
            client.execute_cell(notebook.cells[index], index)
        assert "RunClosedError" in str(refused.value)
        assert f"run {run_folder.name} is complete; its files are final" in str(refused.value)
        assert "run the config and open-run cells again" in str(refused.value)
        notebook.cells[index].outputs = []  # The refusal is expected: not an error of the run.
    after = {path: path.read_bytes() for path in sorted(run_folder.rglob("*")) if path.is_file()}
    assert after == before, "the completed run folder is byte-identical"
