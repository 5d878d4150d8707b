"""The run folder: its file names, its one writer and one reader, its status words, its rules.

Every way to start a run (notebook, ``cifar-cnn train``, ``cifar-cnn notebook``, a sweep, a
benchmark) writes the same folder through :func:`start_run` and :class:`RunFolder`, and every
reader (``cifar-cnn runs``, ``compare``, ``evaluate``, ``predict``, the sweep planner) reads it
through :func:`read_run`. Layout of ``<output_dir>/<run_name>/``::

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

When may a run folder be reused? :func:`existing_run_state` is the one rule, used by
:func:`start_run`, the notebook runner and the sweep planner alike. Who may write it? Only
the holder of its lock (``cifar_cnn.run_lock``), taken by :func:`start_run` before it looks
at the folder and released when the run finishes or fails; a finished :class:`RunFolder`
refuses every further write.

Nothing here imports TensorFlow or matplotlib at import time: listing runs is instant.
"""

from __future__ import annotations

import datetime
import fnmatch
import json
import os
import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cifar_cnn import __version__, run_lock
from cifar_cnn.config import RunConfig
from cifar_cnn.files import atomic_output, write_figure, write_json

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
UNREADABLE = "unreadable"  # read back: a damaged file
PENDING = "pending"        # a sweep's run not started yet
SKIPPED = "skipped"        # a sweep's run that was complete before the sweep started
RUN_STATUSES = (COMPLETE, RUNNING, INTERRUPTED, FAILED, UNREADABLE)
SWEEP_STATUSES = (PENDING, RUNNING, COMPLETE, SKIPPED, FAILED)

# What existing_run_state finds in a run folder.
NEW, RESUME, DONE, REPLACE, CONFLICT = "new", "resume", "done", "replace", "conflict"

# Fields that may differ between a run and its restart: where the folder is and how it is
# named or replaced change nothing that was trained, and the saved training state does not
# depend on the strategy (a run started on one GPU may resume on two).
RESTART_INSENSITIVE_FIELDS = ("output_dir", "run_name", "overwrite", "strategy")


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
# Reading


def _read_json(path: Path, default=None):
    """A JSON file's content, ``default`` when it does not exist; ValueError when damaged."""
    if not path.is_file():
        return default
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}); the run folder is damaged.") \
            from error


@dataclass
class RunSummary:
    """What a run folder holds, read back from its small JSON files (never its model).

    Attributes:
        name: The run's name (its folder's name).
        path: The run folder, or None for a sweep's run that never got one.
        status: One of ``RUN_STATUSES``: ``"complete"``, ``"running"`` (its writer holds
            the run's lock), ``"interrupted"`` (not finished and nobody writing it: killed),
            ``"failed"`` or ``"unreadable"``.
        config: ``config.json`` (or, for a sweep's run that never ran, its parameters).
        metrics: ``metrics.json``, or None before the run completed.
        history: ``history.json``: one row per completed epoch.
        record: ``run.json``: status, times, environment.
        error: Why the run failed, or why the folder is unreadable; else None.
    """

    name: str
    path: Path | None = None
    status: str = INTERRUPTED
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def recipe(self) -> str | None:
        """The training recipe, if recorded."""
        return (self.metrics or {}).get("recipe") or self.config.get("recipe")

    @property
    def epochs_planned(self) -> int | None:
        """Epochs the config asked for."""
        return self.config.get("epochs")

    @property
    def epochs_done(self) -> int | None:
        """Epochs trained: from the metrics, else the per-epoch history."""
        if self.metrics and self.metrics.get("epochs") is not None:
            return self.metrics["epochs"]
        return len(self.history) if self.history else None

    @property
    def test_accuracy(self) -> float | None:
        """Final test accuracy, or None before the run completed."""
        return (self.metrics or {}).get("test_accuracy")

    @property
    def train_seconds(self) -> float | None:
        """Seconds spent training (of the completed epochs, for an incomplete run)."""
        if self.metrics and self.metrics.get("train_seconds") is not None:
            return self.metrics["train_seconds"]
        seconds = [row["seconds"] for row in self.history if "seconds" in row]
        return float(sum(seconds)) if seconds else None

    @property
    def monitored_curve(self) -> list[float]:
        """The per-epoch ``val_accuracy`` values, in epoch order."""
        return [row["val_accuracy"] for row in self.history if "val_accuracy" in row]

    @property
    def best_monitored_accuracy(self) -> float | None:
        """Best per-epoch validation (or, without a split, test) accuracy so far."""
        if self.metrics and self.metrics.get("best_monitored_accuracy") is not None:
            return self.metrics["best_monitored_accuracy"]
        monitored = self.monitored_curve
        return max(monitored) if monitored else None

    @property
    def best_epoch(self) -> int | None:
        """The 1-based epoch of :attr:`best_monitored_accuracy`."""
        if self.metrics and self.metrics.get("best_epoch") is not None:
            return self.metrics["best_epoch"]
        monitored = self.monitored_curve
        # An interrupted run still has a history worth comparing: read the best from it.
        return monitored.index(max(monitored)) + 1 if monitored else None

    @property
    def monitored_on(self) -> str | None:
        """``"validation"`` or ``"test"``: what the per-epoch ``val_accuracy`` measured."""
        if self.metrics and self.metrics.get("monitored_on"):
            return self.metrics["monitored_on"]
        split = self.config.get("validation_split")
        if isinstance(split, (int, float)) and not isinstance(split, bool):
            return "validation" if split > 0 else "test"
        return None


def read_run(path: str | os.PathLike) -> RunSummary:
    """Read one run folder from its JSON files.

    Args:
        path: The run folder.

    Returns:
        Its :class:`RunSummary`. A damaged file gives status ``"unreadable"`` with the
        reason in ``error``, never an exception, so one bad folder cannot hide the rest.
    """
    path = Path(path)
    summary = RunSummary(name=path.name, path=path)
    try:
        config = _read_json(path / CONFIG_FILE, default={})
        metrics = _read_json(path / METRICS_FILE)
        history = _read_json(path / HISTORY_FILE, default=[])
        record = _read_json(path / RUN_RECORD_FILE, default={})
    except (OSError, ValueError) as error:
        summary.status, summary.error = UNREADABLE, " ".join(str(error).split())
        return summary
    if not isinstance(config, dict) or not isinstance(history, list) \
            or not isinstance(metrics, (dict, type(None))) or not isinstance(record, dict):
        summary.status, summary.error = UNREADABLE, "unexpected JSON structure"
        return summary
    summary.config, summary.metrics, summary.record = config, metrics, record
    summary.history = [row for row in history if isinstance(row, dict)]
    if metrics is not None:
        summary.status = COMPLETE
    elif record.get("status") == FAILED:
        summary.status, summary.error = FAILED, record.get("error")
    else:
        # The lock, not run.json, tells a run being written from one that was killed.
        summary.status = RUNNING if run_lock.holder(path) is not None else INTERRUPTED
    return summary


def is_run_folder(path: Path) -> bool:
    """True for a folder holding a run's config, or the executed notebook of a run that
    failed before its config cell. Hidden folders (a replaced run set aside) are not runs."""
    return path.is_dir() and not path.name.startswith(".") and any(
        (path / marker).is_file() for marker in (CONFIG_FILE, NOTEBOOK_FILE))


def find_runs(location: str | os.PathLike | None = None, pattern: str = "*") -> list[Path]:
    """The run folders at a location: the location itself, or its matching sub-folders.

    Args:
        location: A run folder, or a folder of run folders (default: :func:`runs_folder`).
        pattern: Shell-style glob on the run folders' names (``"lr*"``); ignored when
            ``location`` is itself a run folder.

    Returns:
        Run folders, sorted by name.

    Raises:
        FileNotFoundError: ``location`` is not an existing folder.
    """
    location = runs_folder(location)
    if not location.is_dir():
        raise FileNotFoundError(f"{location} is not a folder of runs (it does not exist"
                                f"{' as a folder' if location.exists() else ''}). Give a run "
                                "folder or the output_dir that training wrote to.")
    if is_run_folder(location) and (location / CONFIG_FILE).is_file():
        return [location]
    return sorted((child for child in location.iterdir()
                   if fnmatch.fnmatch(child.name, pattern) and is_run_folder(child)),
                  key=lambda child: child.name)


def list_runs(location: str | os.PathLike | None = None, pattern: str = "*") -> list[RunSummary]:
    """Summaries of every run folder at a location, sorted by name (see :func:`find_runs`).

    Args:
        location: A run folder or a folder of run folders (default: :func:`runs_folder`).
        pattern: Shell-style glob on run folder names.

    Returns:
        One :class:`RunSummary` per run folder.
    """
    return [read_run(path) for path in find_runs(location, pattern)]


# ---------------------------------------------------------------------------------------------
# The rule: may this folder take this run?


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
    config_path = path / CONFIG_FILE
    if not config_path.is_file():
        return ExistingRun(NEW)
    try:
        previous = _read_json(config_path)
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


# ---------------------------------------------------------------------------------------------
# Writing


def git_commit(directory: Path | None = None) -> dict:
    """Describe the git commit of the code, if it runs from a git checkout.

    Args:
        directory: A folder inside the checkout (default: this package's folder).

    Returns:
        ``{"commit": sha or None, "dirty": bool or None}``.
    """
    directory = directory or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                cwd=directory, capture_output=True, text=True, timeout=10,
                                check=True).stdout
        return {"commit": commit, "dirty": bool(status.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def cpu_model() -> str:
    """Return the CPU model name (from /proc/cpuinfo on Linux), or ``platform.processor()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment_record() -> dict:
    """Versions, machine and accelerators: what a reader needs to trust or repeat a number.

    Imports TensorFlow (to name its version and the GPUs it sees).

    Returns:
        A JSON-ready dictionary.
    """
    import keras
    import numpy
    import tensorflow as tf

    from cifar_cnn.cpu_kernels import kernel_settings

    return {
        "cifar_cnn": __version__,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "processor": cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpus": [device.name for device in tf.config.list_physical_devices("GPU")],
        "git": git_commit(),
        # oneDNN or Eigen kernels, and threads: on an AMD CPU they changed the speed 1.8-fold.
        "cpu_kernels": kernel_settings(),
    }


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
        record = _read_json(self.path / RUN_RECORD_FILE, default={}) or {}
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
    earlier = _read_json(path / RUN_RECORD_FILE, default={}) if resumed else {}
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


__all__ = [
    "BEST_MODEL_FILE", "COMPLETE", "CONFIG_FILE", "CONFLICT", "DONE", "EVALUATION_FOLDER",
    "ExistingRun", "FAILED", "FIGURES_FOLDER", "HISTORY_FILE", "INTERRUPTED", "LOG_FILE",
    "METRICS_FILE", "MODEL_FILE", "NEW", "NOTEBOOK_FILE", "PENDING", "REPLACE", "RESUME",
    "RUNNING", "RUN_RECORD_FILE", "RUN_STATUSES", "RunClosedError", "RunFolder", "RunSummary",
    "SKIPPED",
    "SWEEP_STATUSES", "TENSORBOARD_FOLDER", "TRAINING_STATE_FOLDER", "UNREADABLE",
    "cpu_model", "default_run_name", "discard", "environment_record", "existing_run_state",
    "find_runs", "git_commit", "is_run_folder", "list_runs", "read_run", "record_environment",
    "remove", "restore", "run_folder_path", "set_aside_run", "runs_folder", "set_aside", "start_run", "utc_now",
]
