"""May a run folder take this run? The one rule, and setting a replaced run aside.

:func:`existing_run_state` decides whether a run folder is new, resumes, is done, is
replaced or conflicts; :func:`cifar_cnn.runs.start_run`, the notebook runner and the sweep
planner all follow it. A run replaced under ``overwrite`` is set aside (:func:`set_aside`)
until its replacement completes (:func:`discard`) or fails (:func:`restore`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cifar_cnn.config import RunConfig

# What existing_run_state finds in a run folder.
NEW, RESUME, DONE, REPLACE, CONFLICT = "new", "resume", "done", "replace", "conflict"

# Fields that may differ between a run and its restart: where the folder is and how it is
# named or replaced change nothing that was trained, and the saved training state does not
# depend on the strategy (a run started on one GPU may resume on two).
RESTART_INSENSITIVE_FIELDS = ("output_dir", "run_name", "overwrite", "strategy")


@dataclass(frozen=True)
class ExistingRun:
    """What a run folder already holds, for a given config (see :func:`existing_run_state`).

    Attributes:
        state: ``NEW`` (nothing there), ``RESUME`` (an interrupted run of the same config),
            ``DONE`` (a completed run of the same config), ``REPLACE`` (a run to be replaced:
            ``overwrite`` is set) or ``CONFLICT`` (a different run, or a damaged one).
        reason: For ``DONE`` and ``CONFLICT``, the one-line error to show.
    """

    state: str
    reason: str | None = None


def existing_run_state(path: Path, config: RunConfig,
                       given_parameters: set[str] | None = None) -> ExistingRun:
    """The one rule for reusing a run folder.

    - No ``config.json``: ``NEW``.
    - A run its search pruned: ``REPLACE`` under ``overwrite``, else ``CONFLICT``.
    - An interrupted run (no ``metrics.json``) with the same config: ``RESUME``, also
      under ``overwrite`` (the work done is kept).
    - ``overwrite`` set and anything else there: ``REPLACE``.
    - A completed run with the same config: ``DONE`` (start_run refuses it, a sweep skips it).
    - Otherwise (another config, a damaged folder): ``CONFLICT``.

    Configs are the same when every field but ``RESTART_INSENSITIVE_FIELDS`` is equal. A
    field the earlier config lacks did not exist when it ran: it only counts when it is in
    ``given_parameters``, so adding a RunConfig field does not orphan every earlier run.

    Args:
        path: The run folder.
        config: The config of the run that wants the folder.
        given_parameters: The names the caller set explicitly (default: none, so only the
            fields the earlier config records are compared).

    Returns:
        An :class:`ExistingRun`.
    """
    # runs imports this module.
    from cifar_cnn.runs import CONFIG_FILE, METRICS_FILE, PRUNED, read_json

    config_path = path / CONFIG_FILE
    if not config_path.is_file():
        return ExistingRun(NEW)
    try:
        previous = read_json(config_path)
        if not isinstance(previous, dict):
            raise ValueError(f"{config_path} does not hold a config")
    except (OSError, ValueError) as error:
        if config.overwrite:
            return ExistingRun(REPLACE)
        return ExistingRun(CONFLICT, f"run folder {path} is damaged ({error}). Use another "
                                     "run_name, or set overwrite=True to replace it.")
    current = config.to_dict()
    given = set(given_parameters or ())
    differing = sorted(name for name in current
                       if name not in RESTART_INSENSITIVE_FIELDS
                       and previous.get(name) != current[name]
                       and (name in previous or name in given))
    complete = (path / METRICS_FILE).is_file()
    record = _read_record(path)
    if record.get("status") == PRUNED:
        # Its search stopped it on purpose, and its training state is gone: never resumed.
        if config.overwrite:
            return ExistingRun(REPLACE)
        return ExistingRun(CONFLICT, f"run folder {path} holds a run that its search pruned "
                                     f"after epoch {record.get('pruned_after_epoch')}. Use "
                                     "another run_name, or set overwrite=True to replace it.")
    if not complete and not differing:
        return ExistingRun(RESUME)
    if config.overwrite:
        return ExistingRun(REPLACE)
    held = "a completed run" if complete else "an interrupted run"
    if differing:
        return ExistingRun(CONFLICT, f"run folder {path} holds {held} with a different config "
                                     f"({', '.join(differing)} differ). Use another run_name, "
                                     "set overwrite=True to replace it, or the same "
                                     "parameters to resume it.")
    return ExistingRun(DONE, f"run folder {path} already holds a completed run. Choose another "
                             "run_name, or set overwrite=True to replace it.")


def _read_record(path: Path) -> dict:
    from cifar_cnn.runs import RUN_RECORD_FILE, read_json

    try:
        record = read_json(path / RUN_RECORD_FILE, default={})
    except (OSError, ValueError):
        return {}  # A damaged run.json says nothing of pruning; the config decides.
    return record if isinstance(record, dict) else {}


def set_aside(path: Path) -> Path:
    """Move a run folder out of the way (to a hidden sibling) before it is replaced.

    The replaced run is deleted only when its replacement completes (:func:`discard`), and
    put back when the replacement fails (:func:`restore`): a failed retry loses nothing.

    Args:
        path: The run folder.

    Returns:
        Where it now is.
    """
    aside = Path(tempfile.mkdtemp(prefix=f".{path.name}.replaced-", dir=path.parent))
    aside.rmdir()
    os.replace(path, aside)
    return aside


def set_aside_run(path: Path) -> Path | None:
    """The completed run set aside for ``path``'s replacement, if one still waits.

    A replacement that died without :meth:`RunFolder.fail` (a killed process, a notebook
    cell that raised) leaves its replaced run hidden; the next start of the same run name
    picks it up again, so it is always deleted or put back in the end, never orphaned.

    Args:
        path: A run folder.

    Returns:
        The hidden folder, or None.
    """
    asides = sorted(path.parent.glob(f".{path.name}.replaced-*")) if path.parent.is_dir() else []
    return asides[0] if asides else None


def restore(aside: Path, path: Path) -> None:
    """Put a set-aside run folder back, removing the failed replacement at ``path``."""
    remove(path)
    os.replace(aside, path)


def remove(path: Path) -> None:
    """Delete a file, a link or a folder tree; links are unlinked, never followed.

    Args:
        path: What to delete (nothing happens when it does not exist).
    """
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        # rmtree unlinks the links it meets inside the tree; it never follows them.
        shutil.rmtree(path)


def discard(aside: Path | None) -> None:
    """Delete a set-aside run folder once its replacement is complete."""
    if aside is not None:
        remove(aside)


__all__ = [
    "CONFLICT", "DONE", "ExistingRun", "NEW", "REPLACE", "RESTART_INSENSITIVE_FIELDS", "RESUME",
    "discard", "existing_run_state", "remove", "restore", "set_aside", "set_aside_run",
]
