"""Executing the main notebook with papermill, one run folder per execution."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Mapping

from cifar_cnn.config import RunConfig

MAIN_NOTEBOOK_NAME = "cifar10_cnn.ipynb"


def main_notebook_path() -> Path:
    """Return the main notebook of this checkout (``notebooks/cifar10_cnn.ipynb``).

    Returns:
        Its path; raises ``FileNotFoundError`` when the package runs outside a checkout.
    """
    path = Path(__file__).resolve().parents[1] / "notebooks" / MAIN_NOTEBOOK_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"The main notebook is not at {path}: run from a clone of the repository "
            "(pip install -e .), or pass the notebook's path explicitly.")
    return path


def execute_notebook(parameters: Mapping[str, Any], notebook: Path | None = None,
                     log_output: bool = True, progress_bar: bool = False) -> Path:
    """Run the notebook through papermill, writing the executed copy into its run folder.

    The parameters are validated first (a bad value fails here, before a kernel starts),
    and the run name is fixed before execution so the executed notebook can be written
    straight into ``<output_dir>/<run_name>/notebook.ipynb``.

    Args:
        parameters: Notebook parameters; names are ``RunConfig`` fields.
        notebook: The notebook to run (default: :func:`main_notebook_path`).
        log_output: Stream the notebook's output (one line per epoch) to the terminal.
        progress_bar: Show papermill's cell progress bar.

    Returns:
        The run folder.
    """
    import papermill
    from cifar_cnn import runs

    config = RunConfig.from_parameters(parameters)
    parameters = dict(parameters)
    parameters.setdefault("run_name", config.run_name or runs.default_run_name(config))
    run_folder = Path(config.output_dir).expanduser() / parameters["run_name"]
    run_folder.mkdir(parents=True, exist_ok=True)
    notebook = Path(notebook) if notebook else main_notebook_path()
    # stdout_file copies the kernel's output (one line per epoch) to the terminal as it comes;
    # papermill's log_output would send it to a logger that nothing prints by default.
    streams = {"stdout_file": sys.stdout, "stderr_file": sys.stderr} if log_output else {}
    papermill.execute_notebook(
        str(notebook), str(run_folder / "notebook.ipynb"), parameters=parameters,
        cwd=str(Path.cwd()), progress_bar=progress_bar, **streams)
    return run_folder
