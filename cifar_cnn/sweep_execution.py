"""Executing one notebook of a sweep: the request, the child process, the error it shows.

Each execution is a separate ``python`` process driving papermill (and papermill its own
kernel), so runs are isolated, their output can be streamed line by line, and each gets its
own environment. An executor is any callable taking an :class:`ExecutionRequest` and
returning an exit status; tests pass their own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable


@dataclass(frozen=True)
class ExecutionRequest:
    """One notebook execution, as handed to an executor.

    Attributes:
        notebook: The notebook to run.
        output_notebook: Where papermill writes the executed copy.
        parameters: The parameters papermill injects.
        cwd: The kernel's working folder.
        environment: The process environment.
        on_output: Called with every line the execution prints, without its newline.
    """

    notebook: Path
    output_notebook: Path
    parameters: dict[str, Any]
    cwd: Path
    environment: dict[str, str]
    on_output: Callable[[str], None]


def papermill_subprocess_executor(request: ExecutionRequest) -> int:
    """Execute the notebook in a child ``python`` process, streaming its output.

    The child runs ``cifar_cnn.notebook_runner`` (the same path as ``cifar-cnn notebook``):
    papermill with the notebook's standard output on the child's, its standard error in the
    run folder's log.

    Args:
        request: What to execute.

    Returns:
        The child's exit status (0: the notebook ran to the end).
    """
    payload = json.dumps({"notebook": str(request.notebook), "parameters": request.parameters,
                          "parent_pid": os.getpid()})  # The child dies with this process.
    with subprocess.Popen([sys.executable, "-m", "cifar_cnn.notebook_runner", payload],
                          cwd=request.cwd,
                          env=request.environment, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                          errors="replace", bufsize=1) as process:
        for line in process.stdout:
            request.on_output(line.rstrip("\n"))
        return process.wait()


Executor = Callable[[ExecutionRequest], int]


def notebook_error(path: Path) -> str | None:
    """The first error an executed notebook shows, as ``ExceptionName: message``.

    Args:
        path: An executed notebook.

    Returns:
        The error, or None when it has none (or cannot be read).
    """
    try:
        notebook = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                message = output.get("evalue")
                return f"{output.get('ename')}: {message}" if message else output.get("ename")
    return None
