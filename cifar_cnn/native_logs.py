"""Keeping TensorFlow's own start-up and device messages in the run's log file.

Importing TensorFlow and creating its devices prints dozens of lines straight to the
process's standard error from C++ ("oneDNN custom operations are on", "Unable to register
cuDNN factory", "failed call to cuInit: UNKNOWN ERROR (303)" on a machine without a GPU...).
In Jupyter they appear as red boxes that a newcomer on a CPU reads as errors, and in a
terminal they bury the run's own lines. They are written below the Python level, to file
descriptor 2, so the only way to keep them is to point that descriptor at a file for a
while. :func:`native_stderr_to` does that, appending to the run folder's ``run.log``;
Python's own ``sys.stderr`` (tracebacks, warnings in Jupyter) is left alone where it is
not file descriptor 2. Messages printed before any run folder exists (resolving a run
imports TensorFlow) are held by :func:`hold_native_stderr` and written to the first
run log opened afterwards.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Iterator

# Bytes written to descriptor 2 while held, waiting for the next run log. Bounded: start-up
# messages are a few kilobytes; anything past the bound is dropped, not kept in memory.
_HELD_LIMIT_BYTES = 1_000_000
_held = bytearray()


def _flush_python_stderr() -> None:
    try:
        sys.stderr.flush()
    except (AttributeError, ValueError):
        pass


@contextlib.contextmanager
def _descriptor_2_into(file) -> Iterator[None]:
    """Point file descriptor 2 at an open binary file while the block runs, then restore it."""
    _flush_python_stderr()
    saved = os.dup(2)
    try:
        os.dup2(file.fileno(), 2)
        try:
            yield
        finally:
            _flush_python_stderr()
            os.dup2(saved, 2)
    finally:
        os.close(saved)


@contextlib.contextmanager
def native_stderr_to(path: str | os.PathLike | None) -> Iterator[None]:
    """Send everything written to file descriptor 2 into ``path`` while the block runs.

    Messages held by :func:`hold_native_stderr` are written first.

    Args:
        path: The log file (appended to; its folder is created), or None to change nothing.

    Yields:
        Nothing; descriptor 2 is restored afterwards, also on an exception.
    """
    if path is None:
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(Path(path), "ab") as log:
        if _held:
            log.write(bytes(_held))
            log.flush()
            _held.clear()
        with _descriptor_2_into(log):
            yield


@contextlib.contextmanager
def hold_native_stderr() -> Iterator[None]:
    """Keep what is written to file descriptor 2 during the block for the next run log.

    Yields:
        Nothing; descriptor 2 is restored afterwards, also on an exception, and what was
        written waits in memory (at most ``_HELD_LIMIT_BYTES``) for :func:`native_stderr_to`.
    """
    with tempfile.TemporaryFile() as held:
        try:
            with _descriptor_2_into(held):
                yield
        finally:
            held.seek(0)
            _held.extend(held.read(max(0, _HELD_LIMIT_BYTES - len(_held))))


__all__ = ["hold_native_stderr", "native_stderr_to"]
