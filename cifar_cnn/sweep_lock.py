"""One sweep at a time per output folder: the lock a sweep holds while it runs."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from cifar_cnn import run_lock

SWEEP_LOCK_FILE = ".sweep.lock"


class SweepLockedError(ValueError):
    """Another sweep is running in the same output folder."""


@contextlib.contextmanager
def output_folder_lock(output_dir: Path) -> Iterator[None]:
    """Hold the output folder for one sweep at a time.

    Two sweeps in one folder would execute the same pending runs side by side and write one
    status file. The lock is an ``flock`` on ``<output_dir>/.sweep.lock``: the system
    releases it when the process ends, however it ends, so a killed sweep never leaves a
    stale lock. The file names the holder, for the message the second sweep prints.

    Args:
        output_dir: The sweep's output folder (created if needed).

    Raises:
        SweepLockedError: Another sweep holds the folder.
    """
    try:
        lock = run_lock.lock_file(output_dir / SWEEP_LOCK_FILE, command="cifar-cnn sweep")
    except run_lock.RunInUseError as busy:
        raise SweepLockedError(
            f"{output_dir} is in use by another sweep ({run_lock.describe_holder(busy.record)})."
            " Wait for it to finish, or give this sweep another output_dir.") from None
    try:
        yield
    finally:
        lock.release()
