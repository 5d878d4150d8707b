"""Keeping TensorFlow's own start-up and device messages in the run's log file.

Importing TensorFlow and creating its devices prints dozens of lines straight to the
process's standard error from C++ ("oneDNN custom operations are on", "Unable to register
cuDNN factory", "failed call to cuInit: UNKNOWN ERROR (303)" on a machine without a GPU...).
In Jupyter they appear as red boxes that a newcomer on a CPU reads as errors, and in a
terminal they bury the run's own lines. They are written below the Python level, to file
descriptor 2, so the only way to keep them is to point that descriptor at a file for a
while. :func:`native_stderr_to` does that, appending to the run folder's ``run.log``;
Python's own ``sys.stderr`` (tracebacks, warnings in Jupyter) is left alone where it is
not file descriptor 2.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def native_stderr_to(path: str | os.PathLike | None) -> Iterator[None]:
    """Send everything written to file descriptor 2 into ``path`` while the block runs.

    Args:
        path: The log file (appended to; its folder is created), or None to change nothing.

    Yields:
        Nothing; descriptor 2 is restored afterwards, also on an exception.
    """
    if path is None:
        yield
        return
    try:
        sys.stderr.flush()
    except (AttributeError, ValueError):
        pass
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    saved = os.dup(2)
    try:
        with open(Path(path), "ab") as log:
            os.dup2(log.fileno(), 2)
            try:
                yield
            finally:
                try:
                    sys.stderr.flush()
                except (AttributeError, ValueError):
                    pass
                os.dup2(saved, 2)
    finally:
        os.close(saved)


__all__ = ["native_stderr_to"]
