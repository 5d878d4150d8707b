"""One writer per run folder: an exclusive operating-system lock, held while a run writes.

Whoever trains into a run folder (a notebook kernel, ``cifar-cnn train``, the notebook
runner, a sweep worker, a benchmark) holds ``<runs folder>/.<run name>.lock`` with
``flock``. The operating system drops the lock when the process dies, however it dies, so:

- a second start of a held run is refused at once, naming the holder (process, host,
  start time, command) that the lock file records;
- a run whose ``run.json`` says "running" while its lock is free was, for certain,
  interrupted (``run_catalog.read_run`` tells the two apart).

The lock file lies beside the run folder, not inside it, because a run replaced under
``overwrite`` is moved aside while its replacement starts: a lock inside would move with it.
It is deleted when its holder releases it; a lock file left by a killed process is stale
and harmless (its lock is free).

A notebook runner holds the lock itself and lets the kernel it starts write under it: the
kernel inherits ``CIFAR_CNN_RUN_LOCK`` (the lock's token) and :func:`acquire` recognises its
parent's lock. The kernel exits with its runner (ipykernel watches its parent process).

File systems: local disks, and network file systems with working ``flock`` (NFS v4, or
NFS v3 with its lock daemon, which Linux maps ``flock`` onto). Where locks are not
supported at all, :func:`acquire` warns and the run goes on unguarded.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import time
import uuid
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

# The variable through which a notebook runner hands its lock to the kernel it starts.
DELEGATE_VARIABLE = "CIFAR_CNN_RUN_LOCK"
# A holder record is a few hundred bytes: never read more than this from a lock file.
_MAX_RECORD_BYTES = 4096
# How long a start keeps trying before it calls a lock held: a reader probing the lock
# (``cifar-cnn runs``) holds it for microseconds and must not make a start fail.
_ACQUIRE_PATIENCE_SECONDS = 0.5

# Locks this process holds, by lock-file path. A second start in the same process (a
# notebook's open-run cell run again) takes the lock over instead of locking itself out;
# the file is never opened twice here, since closing a second descriptor would drop the
# lock where the file system emulates flock with POSIX locks (NFS).
_HELD: dict[str, "RunLock"] = {}


class RunInUseError(ValueError):
    """The run folder (or another locked file) is held by another process.

    Attributes:
        record: The holder's record ({} when it has not written one yet).
    """

    def __init__(self, message: str, record: dict | None = None):
        super().__init__(message)
        self.record = record or {}


@dataclass
class RunLock:
    """The lock on one run folder, held by this process (or by the runner that started it).

    Attributes:
        path: The lock file.
        record: Who holds it: ``pid``, ``host``, ``started_at``, ``command``, ``token``.
        delegated: True when the runner that started this process holds the lock.
        owner: The object that writes under the lock (a ``runs.RunFolder``); a later start
            of the same folder in this process takes the lock over from it.
    """

    path: Path
    record: dict = field(default_factory=dict)
    delegated: bool = False
    owner: object = None
    _descriptor: int | None = None

    def release(self) -> None:
        """Give the lock up (delete the lock file, then unlock); a no-op when not held here."""
        if self._descriptor is None:
            return
        _HELD.pop(str(self.path), None)
        try:
            # Deleted while still locked, so nobody can lock the old file after it is gone;
            # acquire() checks that the file it locked is still the one at the path.
            self.path.unlink(missing_ok=True)
        except OSError:
            pass  # A read-only folder: the stale file is harmless once unlocked.
        os.close(self._descriptor)  # Closing the descriptor releases the lock.
        self._descriptor = None


def lock_path(run_folder: Path) -> Path:
    """The lock file of a run folder: ``<runs folder>/.<run name>.lock``.

    Args:
        run_folder: The run folder (it need not exist).

    Returns:
        The lock file's path.
    """
    run_folder = Path(run_folder)
    return run_folder.parent / f".{run_folder.name}.lock"


def _read_record(path: Path) -> dict:
    """The holder record in a lock file, or {} when it is missing, empty or not ours."""
    try:
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb") as file:
            content = file.read(_MAX_RECORD_BYTES)
        record = json.loads(content.decode("utf-8"))
        return record if isinstance(record, dict) else {}
    except (OSError, ValueError):
        return {}


def describe_holder(record: dict) -> str:
    """The holder of a lock in words: ``process 123 on host-a since ... (cifar-cnn train)``.

    Args:
        record: A holder record (possibly empty: a holder that has not written it yet).

    Returns:
        One phrase.
    """
    if not record.get("pid"):
        return "another process (it has not said which yet)"
    command = f" ({record['command']})" if record.get("command") else ""
    return (f"process {record['pid']} on {record.get('host', 'an unknown host')} since "
            f"{record.get('started_at', 'an unknown time')}{command}")


def _command_line() -> str:
    """What this process is, in a few words, for the holder record."""
    arguments = list(sys.argv or [])
    if not arguments or arguments[0] in ("", "-c"):
        return "python -c"
    if "ipykernel" in " ".join(arguments[:2]):
        return "a notebook kernel"
    words = [Path(arguments[0]).name] + [word for word in arguments[1:3]
                                          if not word.startswith("-")]
    return " ".join(words)[:120]


def _unsupported(error: OSError) -> bool:
    return error.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)


def acquire(run_folder: Path, command: str | None = None, take_over: bool = True) -> RunLock:
    """Take the run folder's lock, or refuse at once when another process holds it.

    Args:
        run_folder: The run folder (its parent must exist or be creatable).
        command: What holds it, for the record (default: this process's command line).
        take_over: Return the lock when this process holds it already (a run opened again
            in the same kernel); False refuses then too.

    Returns:
        A held :class:`RunLock` (taken over when this process already held it; delegated
        when this process's notebook runner holds it; unguarded, with a warning, where the
        file system has no locks).

    Raises:
        RunInUseError: Another process holds the lock; the message names it.
    """
    path = lock_path(run_folder)
    if str(path) in _HELD:
        if take_over:
            return _HELD[str(path)]
        raise RunInUseError(f"run folder {Path(run_folder)} is in use by this process "
                            f"({describe_holder(_HELD[str(path)].record)}).")
    try:
        return lock_file(path, command)
    except RunInUseError as busy:
        token = os.environ.get(DELEGATE_VARIABLE)
        if token and busy.record.get("token") == token:
            return RunLock(path=path, record=busy.record, delegated=True)
        raise RunInUseError(
            f"run folder {Path(run_folder)} is in use by {describe_holder(busy.record)}. "
            "One run folder has one writer: wait for that run to end or stop it (its next "
            "start resumes it), or choose another run_name.", busy.record) from None


def lock_file(path: Path, command: str | None = None) -> RunLock:
    """Lock a file exclusively for this process and write who holds it into it.

    The one locking primitive of the package: run folders (:func:`acquire`) and sweep
    output folders (``cifar_cnn.sweep_lock``) both use it.

    Args:
        path: The lock file (created, with its folder, if needed).
        command: What holds it, for the record (default: this process's command line).

    Returns:
        A held :class:`RunLock` (unguarded, with a warning, where the file system has no
        locks).

    Raises:
        RunInUseError: Another process holds it; ``error.record`` says who.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + _ACQUIRE_PATIENCE_SECONDS
    while True:
        try:
            # Never through a link: a link planted in a shared runs folder must not make
            # this process truncate and write the file it points to.
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as error:
            raise ValueError(f"cannot create the lock file {path}: "
                             f"{error.strerror or error} (a link, a folder or an unwritable "
                             "place; lock files must be plain files).") from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            if time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            record = _read_record(path)
            raise RunInUseError(f"{path} is held by {describe_holder(record)}.",
                                record) from None
        except OSError as error:
            os.close(descriptor)
            if not _unsupported(error):
                raise
            warnings.warn(f"the file system of {path.parent} does not support file locks "
                          f"({error.strerror}); nothing stops a second process from writing "
                          "there at the same time.", stacklevel=3)
            return RunLock(path=path)  # Unguarded: nothing to release.
        try:
            same_file = os.path.samestat(os.fstat(descriptor), os.stat(path))
        except FileNotFoundError:
            same_file = False
        if same_file:
            break
        # Its holder released it (deleting the file) between our open and our lock.
        os.close(descriptor)
    from cifar_cnn.runs import utc_now  # runs imports this module: import at call time.

    record = {"pid": os.getpid(), "host": socket.gethostname(), "started_at": utc_now(),
              "command": command or _command_line(), "token": uuid.uuid4().hex}
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, json.dumps(record).encode("utf-8"), 0)
    lock = RunLock(path=path, record=record, _descriptor=descriptor)
    _HELD[str(path)] = lock
    return lock


def holder(run_folder: Path) -> dict | None:
    """Who holds a run folder's lock now, without taking it.

    Args:
        run_folder: The run folder.

    Returns:
        The holder record ({} when the holder has not written it yet), or None when the
        lock is free (or cannot be checked: no lock file, an unreadable folder).
    """
    path = lock_path(run_folder)
    if str(path) in _HELD:
        return _HELD[str(path)].record
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_record(path)
    except OSError:
        return None
    finally:
        os.close(descriptor)  # Also drops the shared lock, if it was taken.
    return None


@contextmanager
def delegated_to_children(lock: RunLock):
    """Let the processes started inside this block (a notebook's kernel) write under ``lock``.

    Args:
        lock: A lock this process holds.
    """
    previous = os.environ.get(DELEGATE_VARIABLE)
    os.environ[DELEGATE_VARIABLE] = lock.record["token"]
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(DELEGATE_VARIABLE, None)
        else:
            os.environ[DELEGATE_VARIABLE] = previous
