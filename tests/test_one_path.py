"""Every way to start a run goes through the same steps and writes the same run folder."""

from __future__ import annotations

import re

from pathlib import Path

import nbformat
from nbclient import NotebookClient

from cifar_cnn import cli, run_catalog, runs
from cifar_cnn.notebook_runner import main_notebook_path
from cifar_cnn.sweep import run_sweep


def _files(folder: Path) -> set[str]:
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()}


def test_notebook_train_and_sweep_write_the_same_run_folder(image_folder_archive, tmp_path,
                                                            monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    output = tmp_path / "runs"
    options = ["--epochs", "1", "--data-source", str(image_folder_archive),
               "--max-train-examples", "100", "--max-test-examples", "50",
               "--output-dir", str(output)]
    assert cli.main(["train", *options, "--run-name", "from-train"]) == 0
    assert cli.main(["notebook", *options, "--run-name", "from-notebook"]) == 0
    result = run_sweep({"output_dir": str(output),
                        "base": {"epochs": 1, "data_source": str(image_folder_archive),
                                 "max_train_examples": 100, "max_test_examples": 50},
                        "runs": [{"run_name": "from-sweep"}]}, workers=1, compare=False)
    assert [run.status for run in result.runs] == [runs.COMPLETE], result.runs
    trained = _files(output / "from-train")
    # Only papermill runs keep their executed notebook; everything else is the same.
    assert _files(output / "from-notebook") == trained | {runs.NOTEBOOK_FILE}
    assert _files(output / "from-sweep") == trained | {runs.NOTEBOOK_FILE}
    for name in ("from-train", "from-notebook", "from-sweep"):
        summary = run_catalog.read_run(output / name)
        assert summary.status == runs.COMPLETE and summary.metrics["test_examples"] == 50
        assert summary.record["environment"]["tensorflow"]
    figures = {path for path in trained if path.startswith(runs.FIGURES_FOLDER + "/")}
    assert len(figures) == 6
    # The CLI shows the run's own lines; TensorFlow's start-up messages are in run.log.
    printed = capsys.readouterr()
    assert "cuda" not in (printed.out + printed.err).lower()
    assert "epoch 1/1" in printed.out


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
