"""The run folder: its file names, status words and place, and its one writer.

Every way to start a run (notebook, ``cifar-cnn train``, ``cifar-cnn notebook``, a sweep, a
benchmark) writes the same folder through :func:`start_run` and :class:`RunFolder`, and every
reader (``cifar-cnn runs``, ``compare``, ``evaluate``, ``predict``, the sweep planner) reads it
back through :func:`cifar_cnn.run_catalog.read_run`. Layout of ``<output_dir>/<run_name>/``::

    config.json         the full RunConfig
    run.json            status, start/end times, versions, git commit, machine
    history.json        one row per epoch (written after every epoch)
    training_state/     the latest epoch's weights and optimizer, for resuming; removed
                        once the run is complete
    figures/*.png       every figure the run made
    model.keras         the trained model (takes raw 0-255 pixels)
    best.keras          the best epoch's model by validation accuracy (with a validation split)
    run.log             TensorFlow's own start-up and device messages, kept out of sight
    tensorboard/        TensorBoard logs, when asked for
    notebook.ipynb      the executed notebook, for papermill runs
    metrics.json        final metrics; written last, so its presence means "complete"

When may a run folder be reused? :func:`cifar_cnn.run_reuse.existing_run_state` is the one
rule, used by :func:`start_run`, the notebook runner and the sweep planner alike. Who may write
it? Only the holder of its lock (``cifar_cnn.run_lock``), taken by :func:`start_run` before it
looks at the folder and released when the run finishes or fails; a finished
:class:`RunFolder` refuses every further write. The versions and machine written to
``run.json`` come from :mod:`cifar_cnn.provenance`.

Nothing here imports TensorFlow or matplotlib at import time.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cifar_cnn import run_lock
from cifar_cnn.config import RunConfig
from cifar_cnn.files import atomic_output, write_figure, write_json
from cifar_cnn.provenance import environment_record
from cifar_cnn.run_reuse import (
    CONFLICT,
    DONE,
    NEW,
    REPLACE,
    RESUME,
    ExistingRun,
    discard,
    existing_run_state,
    remove,
    restore,
    set_aside,
    set_aside_run,
)

# ---------------------------------------------------------------------------------------------
# The files of a run folder. Every other module takes these names from here.

CONFIG_FILE = "config.json"
RUN_RECORD_FILE = "run.json"
HISTORY_FILE = "history.json"
METRICS_FILE = "metrics.json"
MODEL_FILE = "model.keras"
BEST_MODEL_FILE = "best.keras"
NOTEBOOK_FILE = "notebook.ipynb"
LOG_FILE = "run.log"
FIGURES_FOLDER = "figures"
TRAINING_STATE_FOLDER = "training_state"
TENSORBOARD_FOLDER = "tensorboard"
EVALUATION_FOLDER = "evaluation"

# Where runs go when no output_dir is given, and the variable that moves that place.
RUNS_FOLDER_NAME = "runs"
RUNS_FOLDER_VARIABLE = "CIFAR_CNN_RUNS_DIR"

# ---------------------------------------------------------------------------------------------
# Status words: of a run (run.json, read_run) and of a run within a sweep (sweep.json).

RUNNING = "running"        # started, not finished; read back: its writer holds the lock
COMPLETE = "complete"      # metrics.json written
FAILED = "failed"          # stopped by an error (recorded), or refused before it ran
INTERRUPTED = "interrupted"  # read back: not finished, and nobody holds its lock (killed)
PRUNED = "pruned"          # stopped early by its search's pruner (run.json); final, not resumed
UNREADABLE = "unreadable"  # read back: a damaged file
PENDING = "pending"        # a sweep's run not started yet
SKIPPED = "skipped"        # a sweep's run that was complete before the sweep started
RUN_STATUSES = (COMPLETE, RUNNING, INTERRUPTED, PRUNED, FAILED, UNREADABLE)
SWEEP_STATUSES = (PENDING, RUNNING, COMPLETE, SKIPPED, FAILED)


def utc_now() -> str:
    """The current UTC time as an ISO 8601 string, to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def runs_folder(output_dir: str | os.PathLike | None = None) -> Path:
    """The folder that receives run folders: one place, whatever the working folder.

    Args:
        output_dir: An explicit folder (relative to the working folder), or None for the
            default: ``$CIFAR_CNN_RUNS_DIR`` if set, else ``runs/`` at the root of the
            checkout this package runs from (so the notebook in ``notebooks/``, the command
            line and ``scripts/main.sh`` share it), else ``runs/`` in the working folder
            (a package installed from PyPI or git, as on Colab).

    Returns:
        The folder's path (not created).
    """
    if output_dir is not None:
        return Path(output_dir).expanduser()
    if os.environ.get(RUNS_FOLDER_VARIABLE):
        return Path(os.environ[RUNS_FOLDER_VARIABLE]).expanduser()
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file() and (checkout / "notebooks").is_dir():
        return checkout / RUNS_FOLDER_NAME
    return Path.cwd() / RUNS_FOLDER_NAME


def run_folder_path(config: RunConfig) -> Path:
    """The folder of a run with a given ``run_name`` (see :func:`runs_folder`).

    Args:
        config: A config whose ``run_name`` is set.

    Returns:
        ``<output_dir>/<run_name>``.
    """
    if config.run_name is None:
        raise ValueError("run_folder_path needs a run_name; start_run names new runs.")
    return runs_folder(config.output_dir) / config.run_name


def default_run_name(config: RunConfig) -> str:
    """A new, sortable run name: UTC time to the second, then the recipe."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{config.recipe}"


# ---------------------------------------------------------------------------------------------
# The one writer (read_json also serves run_catalog and run_reuse)


def read_json(path: Path, default=None):
    """A JSON file's content, ``default`` when it does not exist; ValueError when damaged."""
    if not path.is_file():
        return default
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}); the run folder is damaged.") \
            from error


class RunClosedError(RuntimeError):
    """A write to a run folder whose run has finished, failed or been opened again."""


@dataclass
class RunFolder:
    """One run's folder, open for writing. Create it with :func:`start_run`.

    It writes only while it is open: :meth:`finish` and :meth:`fail` close it (and release
    the folder's lock), and so does a later :func:`start_run` of the same folder in this
    process; every write after that raises :class:`RunClosedError`, so re-running a
    notebook's training or save cell can never alter a finished run.

    Attributes:
        path: The folder.
        config: The run's configuration.
        resumed: True when the folder held an interrupted run of the same config.
        replaced: Where the completed run this one replaces was set aside, or None.
        scratch: True for a multi-worker non-chief's temporary folder (deleted by
            :meth:`close`).
        lock: The folder's lock (None for a scratch folder, which nobody else knows of).
        closed_because: Why the run takes no more writes, or None while it is open.
    """

    path: Path
    config: RunConfig
    resumed: bool = False
    replaced: Path | None = None
    scratch: bool = False
    lock: run_lock.RunLock | None = None
    closed_because: str | None = None

    def check_open(self) -> None:
        """Raise :class:`RunClosedError` unless this run may still write its folder."""
        if self.closed_because is not None:
            raise RunClosedError(
                f"{self.closed_because}; its files are final and nothing more is written "
                f"to {self.path}. To train again, run the config and open-run cells again "
                "(cifar_cnn.experiment.open_run) for a new run object: a new run_name, the "
                "same one to resume an unfinished run, or overwrite=True to replace it.")

    def _close(self, because: str) -> None:
        """Take no more writes, and let another process have the folder."""
        self.closed_because = because
        if self.lock is not None and self.lock.owner is self:
            self.lock.owner = None
            self.lock.release()

    @property
    def figures_path(self) -> Path:
        return self.path / FIGURES_FOLDER

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def log_path(self) -> Path:
        return self.path / LOG_FILE


    @property
    def training_state_path(self) -> Path:
        return self.path / TRAINING_STATE_FOLDER



    def is_complete(self) -> bool:
        """True once :meth:`finish` has written the final metrics."""
        return (self.path / METRICS_FILE).is_file()

    def save_figure(self, figure, name: str) -> Path:
        """Save a matplotlib Figure as ``figures/<name>.png`` atomically.

        Args:
            figure: A ``matplotlib.figure.Figure``.
            name: File name without extension.

        Returns:
            The PNG's path.
        """
        self.check_open()
        return write_figure(self.figures_path / f"{name}.png", figure)

    def save_model(self, model) -> Path:
        """Save a Keras model as ``model.keras`` atomically and return its path."""
        self.check_open()
        with atomic_output(self.model_path) as temporary:
            temporary.unlink()  # Keras refuses to write over a file without asking.
            model.save(temporary)
        return self.model_path

    def _update_record(self, **changes) -> None:
        self.check_open()
        record = read_json(self.path / RUN_RECORD_FILE, default={}) or {}
        record.update(changes)
        write_json(self.path / RUN_RECORD_FILE, record)

    def finish(self, metrics: dict) -> Path:
        """Mark the run complete: write ``metrics.json`` last and drop the resume state.

        Args:
            metrics: Final results; must hold ``test_accuracy``.

        Returns:
            The path of ``metrics.json``.
        """
        if "test_accuracy" not in metrics:
            raise ValueError("metrics must include test_accuracy")
        self._update_record(status=COMPLETE, finished_at=utc_now())
        write_json(self.path / METRICS_FILE, metrics)
        remove(self.training_state_path)
        discard(self.replaced)
        self.replaced = None
        self._close(f"run {self.path.name} is complete")
        return self.path / METRICS_FILE

    def fail(self, error: BaseException) -> None:
        """Record that the run stopped with an error; put back the run it was replacing.

        The training state stays, so the same command resumes after the last epoch.

        Does nothing on a run that is already closed (finished, or opened again).

        Args:
            error: The exception that stopped the run.
        """
        if self.closed_because is not None:
            return
        message = f"{type(error).__name__}: {' '.join(str(error).split())}"
        if self.replaced is not None:
            restore(self.replaced, self.path)
            self.replaced = None
        elif self.path.is_dir() and not self.scratch:
            self._update_record(status=FAILED, error=message, finished_at=utc_now())
        self._close(f"run {self.path.name} stopped with an error ({message})")

    def prune(self, epochs_done: int, reason: str) -> None:
        """Record that the run's search stopped it early: its history so far is its result.

        A pruned run is final: its training state is removed (nothing resumes it) and a
        completed run it was replacing is put back, as when it fails.

        Args:
            epochs_done: Epochs trained (and in ``history.json``) when it was stopped.
            reason: Why, in one line (the value reported and the pruner's verdict).
        """
        self.check_open()
        if self.replaced is not None:
            restore(self.replaced, self.path)
            self.replaced = None
        elif not self.scratch:
            self._update_record(status=PRUNED, pruned_after_epoch=epochs_done, reason=reason,
                                finished_at=utc_now())
            remove(self.training_state_path)
        self._close(f"run {self.path.name} was pruned by its search after epoch {epochs_done}")

    def close(self) -> None:
        """Delete a non-chief worker's scratch folder (a real run folder stays).

        The lock is released by :meth:`finish` or :meth:`fail`; a run closed without either
        (a multi-worker non-chief) keeps no lock.
        """
        if self.scratch:  # The run folder and the temporary folder made to hold it.
            shutil.rmtree(self.path.parent, ignore_errors=True)


def start_run(config: RunConfig, scratch: bool = False) -> RunFolder:
    """Create the run folder, or reopen an interrupted run of the same config to resume it.

    Takes the folder's lock first (``cifar_cnn.run_lock``): a folder another process is
    writing is refused at once, naming that process. Then follows
    :func:`existing_run_state`: a completed run is refused (or, with ``overwrite``, set
    aside until this one completes), a different run is refused, an interrupted run of the
    same config is resumed. A run folder this process had open already (a notebook's
    open-run cell run again) is taken over: the earlier :class:`RunFolder` writes no more.

    Args:
        config: The validated run configuration.
        scratch: Write into a new temporary folder instead (a multi-worker non-chief, whose
            files must not land in the chief's folder); :meth:`RunFolder.close` deletes it.

    Returns:
        The :class:`RunFolder`, with ``config.json`` and ``run.json`` written.

    Raises:
        run_lock.RunInUseError: Another process is writing the folder (a ValueError).
        ValueError: The folder holds a completed or different run.
    """
    if scratch:
        path = Path(tempfile.mkdtemp(prefix="cifar_cnn-worker-")) / (config.run_name or "run")
        return _open_folder(path, config, ExistingRun(NEW), lock=None, scratch=True)
    path, lock = _claim_folder(config)
    try:
        if path.exists() and not path.is_dir():
            raise ValueError(f"run folder {path} exists and is not a folder.")
        existing = existing_run_state(path, config)
        if existing.state in (DONE, CONFLICT):
            raise ValueError(existing.reason)
        earlier_owner = lock.owner
        run = _open_folder(path, config, existing, lock=lock, scratch=False)
    except BaseException:
        if lock.owner is None:
            lock.release()
        raise
    if isinstance(earlier_owner, RunFolder):
        earlier_owner.closed_because = (f"run {path.name} was opened again in this process "
                                        "(its open-run cell ran again)")
    lock.owner = run
    return run


def _claim_folder(config: RunConfig) -> tuple[Path, run_lock.RunLock]:
    """The run's folder path and its lock; a new default name skips names already taken."""
    folder = runs_folder(config.output_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)  # The lock file lies here.
    except OSError as error:
        name = config.run_name or "the run"
        raise ValueError(f"cannot create run folder {folder / name}: "
                         f"{error.strerror or error} ({folder}).") from error
    if config.run_name is not None:
        path = folder / config.run_name
        return path, run_lock.acquire(path)
    base = folder / default_run_name(config)
    for number in range(1, 1000):
        # A new name must not meet an earlier run started in the same second.
        path = base if number == 1 else base.with_name(f"{base.name}-{number}")
        if path.exists():
            continue
        try:
            lock = run_lock.acquire(path)
        except run_lock.RunInUseError:
            continue  # Another process is starting a run of the same name this second.
        if not path.exists():
            return path, lock
        lock.release()
    raise ValueError(f"no free run name under {folder} for {base.name}; give a run_name.")


def _open_folder(path: Path, config: RunConfig, existing: ExistingRun,
                 lock: run_lock.RunLock | None, scratch: bool) -> RunFolder:
    """Set a replaced run aside, create the folder and write its config and record."""
    replaced = None if scratch else set_aside_run(path)
    if existing.state == REPLACE:
        if replaced is not None:
            # Here lies an unfinished replacement of the run already set aside: that
            # completed run stays aside, the unfinished attempt goes.
            remove(path)
        else:
            replaced = set_aside(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        if replaced is not None:
            restore(replaced, path)
        raise ValueError(f"cannot create run folder {path}: {error.strerror or error}.") \
            from error
    resumed = existing.state == RESUME
    earlier = read_json(path / RUN_RECORD_FILE, default={}) if resumed else {}
    write_json(path / CONFIG_FILE, config.to_dict())
    started_at = utc_now()
    write_json(path / RUN_RECORD_FILE, {
        "status": RUNNING, "started_at": started_at,
        "first_started_at": earlier.get("first_started_at") or earlier.get("started_at")
        or started_at,
        "resumed": resumed, "output_dir": str(path.parent.resolve())})
    return RunFolder(path=path, config=config, resumed=resumed, replaced=replaced,
                     scratch=scratch, lock=lock)


def record_environment(run: RunFolder) -> None:
    """Add the versions, machine and git commit to ``run.json`` (imports TensorFlow).

    Args:
        run: The open run folder.
    """
    run._update_record(environment=environment_record())


# ---------------------------------------------------------------------------------------------
__all__ = [
    "BEST_MODEL_FILE", "COMPLETE", "CONFIG_FILE", "EVALUATION_FOLDER", "FAILED",
    "FIGURES_FOLDER", "HISTORY_FILE", "INTERRUPTED", "LOG_FILE", "METRICS_FILE", "MODEL_FILE",
    "NOTEBOOK_FILE", "PENDING", "PRUNED", "RUNNING", "RUNS_FOLDER_NAME", "RUNS_FOLDER_VARIABLE",
    "RUN_RECORD_FILE", "RUN_STATUSES", "RunClosedError", "RunFolder", "SKIPPED",
    "SWEEP_STATUSES", "TENSORBOARD_FOLDER", "TRAINING_STATE_FOLDER", "UNREADABLE",
    "default_run_name", "read_json", "record_environment", "run_folder_path", "runs_folder",
    "start_run", "utc_now",
]
