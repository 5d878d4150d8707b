"""Executing the main notebook with papermill, one run folder per execution.

``cifar-cnn notebook`` (and so ``scripts/main.sh``) and every run of a sweep go through
:func:`execute_notebook`; a sweep runs it in a child process (``python -m
cifar_cnn.notebook_runner REQUEST_JSON``) so that its runs are isolated from each other.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Mapping

from cifar_cnn import notebook_imports, progress, run_lock, run_reuse, runs
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

    The parameters are validated and the run folder checked with the run-folder rule
    (``run_reuse.existing_run_state``) before a kernel starts, so a bad value or a completed run
    fails here and nothing in the folder is touched. The run name is fixed before execution
    so that the executed notebook goes straight into ``<run folder>/notebook.ipynb``. A
    completed run replaced under ``overwrite`` is set aside, deleted once the new run
    completes and put back if it fails.

    The notebook's standard output (one line per epoch, the results) is streamed to this
    process's standard output; its standard error (TensorFlow's messages, warnings) goes to
    the run folder's ``run.log``.

    Args:
        parameters: Notebook parameters; names are ``RunConfig`` fields.
        notebook: The notebook to run (default: :func:`main_notebook_path`).
        log_output: Stream the notebook's standard output to this process's.
        progress_bar: Show papermill's cell progress bar.

    Returns:
        The run folder.

    Raises:
        ValueError: Bad parameters, or a run folder that holds a completed or different run.
        papermill.PapermillExecutionError: A cell failed (its error is in the notebook).
    """
    papermill = notebook_imports.import_papermill()
    config = RunConfig.from_parameters(parameters)
    notebook = Path(notebook) if notebook else main_notebook_path()
    if not notebook.is_file():
        raise FileNotFoundError(f"notebook {notebook} does not exist.")
    config = dataclasses.replace(config, run_name=config.run_name or runs.default_run_name(config))
    parameters = {**parameters, "run_name": config.run_name}
    run_folder = runs.run_folder_path(config)
    # The runner holds the folder's lock for the whole execution, and the kernel it starts
    # writes under it (run_lock.delegated_to_children): a second start is refused here,
    # before a kernel starts.
    lock = run_lock.acquire(run_folder, command="cifar-cnn notebook runner", take_over=False)
    try:
        existing = run_reuse.existing_run_state(run_folder, config, given_parameters=set(parameters))
        if existing.state in (run_reuse.DONE, run_reuse.CONFLICT):
            raise ValueError(existing.reason)
        replaced = run_reuse.set_aside(run_folder) if existing.state == run_reuse.REPLACE else None
        completed = False
        try:
            run_folder.mkdir(parents=True, exist_ok=True)
            with open(run_folder / runs.LOG_FILE, "a") as log, \
                    run_lock.delegated_to_children(lock), \
                    progress.quiet_in_child_processes():  # A log keeps lines, never redraws.
                papermill.execute_notebook(
                    str(notebook), str(run_folder / runs.NOTEBOOK_FILE), parameters=parameters,
                    cwd=str(Path.cwd()), progress_bar=progress_bar, log_output=False,
                    # stdout_file copies the kernel's output (one line per epoch) as it comes.
                    stdout_file=sys.stdout if log_output else None, stderr_file=log)
            completed = (run_folder / runs.METRICS_FILE).is_file()
        finally:
            if replaced is not None:
                if completed:
                    run_reuse.discard(replaced)
                else:
                    run_reuse.restore(replaced, run_folder)
    finally:
        lock.release()
    return run_folder


def _end_with_parent(parent_pid: int | None) -> None:
    """Die with the sweep or search that started this child, however that one ends.

    A worker killed with ``kill -9`` cannot stop its children; without this, its notebook
    would train on unseen and unrecorded (its kernel already ends with this process:
    ipykernel watches its parent). Linux only (``prctl``); elsewhere a no-op.

    Args:
        parent_pid: The process that started this one, or None when run by hand.
    """
    if parent_pid is None or not sys.platform.startswith("linux"):
        return
    import ctypes
    import os
    import signal

    set_parent_death_signal = 1  # PR_SET_PDEATHSIG, from <linux/prctl.h>.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(set_parent_death_signal, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # The parent died before the signal was armed.
        os._exit(1)


def main(argv: list[str] | None = None) -> int:
    """Execute one notebook from a JSON request (a sweep's child process).

    Args:
        argv: ``[REQUEST_JSON]``, a JSON object with ``parameters`` and ``notebook``.

    Returns:
        0 when the notebook ran to its end, 1 when it failed (the error is in the executed
        notebook and on standard output), 2 when it could not start.
    """
    request = json.loads((sys.argv[1:] if argv is None else argv)[0])
    _end_with_parent(request.get("parent_pid"))
    try:
        execute_notebook(request["parameters"], notebook=request.get("notebook"))
    except (ValueError, FileNotFoundError, OSError) as error:
        print(f"error: {' '.join(str(error).split())}", flush=True)
        return 2
    except Exception as error:  # noqa: BLE001 - reported, and the exit status says it failed.
        last_line = (str(error).strip().splitlines() or [""])[-1]
        print(f"error: {type(error).__name__}: {last_line}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
