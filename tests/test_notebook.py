"""The main notebook: papermill and nbval execute it, its parameters match the config, it is clean."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest

from cifar_cnn.config import RunConfig
from cifar_cnn.notebook_runner import execute_notebook, main_notebook_path

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = main_notebook_path()
COLAB_URL = re.compile(r"https://colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)/blob/"
                       r"([\w.-]+)/([\w./-]+\.ipynb)")


# A papermill run's complete run folder is checked in test_one_path.py, on the run that
# `cifar-cnn notebook` writes (the same execute_notebook).


@pytest.mark.parametrize("parameters, message", [
    ({"epoch": 1}, r"Unknown parameter\(s\) epoch; valid parameters: recipe, epochs"),
    ({"validation_split": 1.5}, r"validation_split must be a number in \[0, 1\)"),
])
def test_bad_parameters_stop_the_notebook_at_the_config_cell(parameters, message, tmp_path):
    output = tmp_path / "out.ipynb"
    with pytest.raises(papermill.PapermillExecutionError) as raised:
        papermill.execute_notebook(str(NOTEBOOK), str(output), cwd=str(tmp_path),
                                   parameters={**parameters, "output_dir": str(tmp_path / "runs")},
                                   log_output=False, progress_bar=False)
    assert raised.value.ename == "ValueError"
    assert re.search(message, raised.value.evalue)
    executed = nbformat.read(output, as_version=4)
    failed = [cell for cell in executed.cells
              if any(out.get("output_type") == "error" for out in cell.get("outputs", []))]
    assert len(failed) == 1 and "RunConfig.from_parameters" in failed[0].source
    assert not (tmp_path / "runs").exists()  # Nothing was created before the config check.


def test_command_line_runner_validates_before_starting_a_kernel(tmp_path):
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        execute_notebook({"epochs": 0, "output_dir": str(tmp_path)})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_nbval_executes_the_committed_notebook_in_quick_mode(image_folder_archive, tmp_path):
    # nbval runs the kernel in the notebook's folder: a copy keeps run folders out of the repo.
    notebook_copy = tmp_path / NOTEBOOK.name
    shutil.copy(NOTEBOOK, notebook_copy)
    environment = dict(os.environ, CIFAR_CNN_QUICK="1", CIFAR10_SOURCE=str(image_folder_archive),
                       CIFAR_CNN_RUNS_DIR=str(tmp_path / "runs"))
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q",
         notebook_copy.name], cwd=tmp_path, env=environment, capture_output=True, text=True,
        timeout=600)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    code_cells = sum(cell.cell_type == "code" for cell in nbformat.read(NOTEBOOK, as_version=4).cells)
    assert f"{code_cells} passed" in completed.stdout
    metrics = json.loads(next((tmp_path / "runs").glob("*/metrics.json")).read_text())
    assert metrics["epochs"] == 1  # Quick mode reached the notebook through the environment.


def test_notebook_parameters_match_the_config_fields_one_to_one():
    inspected = papermill.inspect_notebook(str(NOTEBOOK))
    assert tuple(inspected) == RunConfig.parameter_names()
    defaults = RunConfig.__dataclass_fields__
    for name, parameter in inspected.items():
        assert eval(parameter["default"]) == defaults[name].default, name  # noqa: S307


@pytest.mark.parametrize("path", sorted((REPOSITORY_ROOT / "notebooks").glob("*.ipynb")),
                         ids=lambda path: path.name)
def test_every_notebook_is_committed_clean_with_kernelspec_and_one_parameters_cell(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]
    assert notebook.metadata.kernelspec.name == "python3"
    tagged = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1


def test_main_notebook_asks_colab_for_a_gpu():
    assert nbformat.read(NOTEBOOK, as_version=4).metadata.accelerator == "GPU"


def _colab_links(text):
    return COLAB_URL.findall(text)


def test_colab_badges_name_the_real_notebook_and_one_repository():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    readme = (REPOSITORY_ROOT / "README.md").read_text()
    links = _colab_links(notebook.cells[0].source) + _colab_links(readme)
    assert len(links) >= 2
    pyproject = (REPOSITORY_ROOT / "pyproject.toml").read_text()
    repository = re.search(r'Repository = "https://github\.com/([\w.-]+/[\w.-]+)"', pyproject)[1]
    for slug, _branch, path in links:
        assert slug == repository
        assert (REPOSITORY_ROOT / path).is_file(), path
    setup_source = next(cell.source for cell in notebook.cells if "google.colab" in cell.source)
    assert f"git+https://github.com/{repository}.git" in setup_source
