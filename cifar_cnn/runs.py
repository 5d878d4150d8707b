"""Run folders: every run keeps its recipe, environment, history, metrics, figures and model.

Layout of ``<output_dir>/<run_name>/``::

    config.json         the full RunConfig
    run.json            status, start/end times, versions, git commit, machine
    history.json        one row per epoch (written after every epoch)
    training_state/     the latest epoch's weights and optimizer, for resuming; removed
                        once the run is complete
    figures/*.png       every figure the run showed
    model.keras         the trained model (takes raw 0-255 pixels)
    metrics.json        final metrics; written last, so its presence means "complete"
    notebook.ipynb      the executed notebook, for papermill runs

A run folder that exists with a different config is never reused, and a completed one is
never replaced unless ``overwrite`` is set.
"""

from __future__ import annotations

import datetime as _datetime
import json
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cifar_cnn import __version__
from cifar_cnn.checkpoints import clear_training_state
from cifar_cnn.config import RunConfig
from cifar_cnn.records import utc_now, write_json

METRICS_FILE = "metrics.json"
# Fields that may differ between an interrupted run and its restart (the saved training
# state does not depend on them: a run started on one GPU may resume on two).
_RESTART_INSENSITIVE_FIELDS = ("overwrite", "strategy")


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


def environment_record() -> dict:
    """Versions, machine and accelerators: what a reader needs to trust or repeat a number.

    Returns:
        A JSON-ready dictionary.
    """
    import keras
    import numpy
    import tensorflow as tf

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
    }


def cpu_model() -> str:
    """Return the CPU model name (from /proc/cpuinfo on Linux), or ``platform.processor()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@dataclass
class RunFolder:
    """One run's folder. Create it with :func:`start_run`.

    Attributes:
        path: The folder.
        config: The run's configuration.
        resumed: True when the folder held an interrupted run of the same config.
    """

    path: Path
    config: RunConfig
    resumed: bool = False

    @property
    def figures_path(self) -> Path:
        return self.path / "figures"

    @property
    def model_path(self) -> Path:
        return self.path / "model.keras"

    def is_complete(self) -> bool:
        """True once :meth:`finish` has written the final metrics."""
        return (self.path / METRICS_FILE).is_file()

    def save_figure(self, figure, name: str) -> Path:
        """Save a matplotlib Figure as ``figures/<name>.png`` and return its path.

        Args:
            figure: A ``matplotlib.figure.Figure``.
            name: File name without extension.

        Returns:
            The PNG's path.
        """
        self.figures_path.mkdir(exist_ok=True)
        path = self.figures_path / f"{name}.png"
        temporary = self.figures_path / f"{name}.partial.png"
        figure.savefig(temporary, dpi=110)
        os.replace(temporary, path)
        return path

    def save_model(self, model) -> Path:
        """Save the model as ``model.keras`` atomically and return its path."""
        temporary = self.path / "model.partial.keras"
        model.save(temporary)
        os.replace(temporary, self.model_path)
        return self.model_path

    def finish(self, metrics: dict) -> Path:
        """Mark the run complete: write ``metrics.json`` last and drop the resume state.

        Args:
            metrics: Final results; must hold ``test_accuracy``.

        Returns:
            The path of ``metrics.json``.
        """
        if "test_accuracy" not in metrics:
            raise ValueError("metrics must include test_accuracy")
        run_record = json.loads((self.path / "run.json").read_text())
        run_record.update(status="complete", finished_at=utc_now())
        write_json(self.path / METRICS_FILE, metrics)
        write_json(self.path / "run.json", run_record)
        clear_training_state(self.path / "training_state")
        return self.path / METRICS_FILE


def default_run_name(config: RunConfig) -> str:
    """A new, sortable run name: UTC time to the second, then the recipe."""
    stamp = _datetime.datetime.now(_datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{config.recipe}"


def start_run(config: RunConfig) -> RunFolder:
    """Create the run folder, or reopen an interrupted run of the same config to resume it.

    Args:
        config: The validated run configuration.

    Returns:
        The :class:`RunFolder`, with ``config.json`` and ``run.json`` written.
    """
    name = config.run_name or default_run_name(config)
    path = Path(config.output_dir).expanduser() / name
    resumed = False
    config_path = path / "config.json"
    if config_path.is_file():
        if (path / METRICS_FILE).is_file():
            if not config.overwrite:
                raise ValueError(f"Run folder {path} already holds a completed run. Choose "
                                 "another run_name, or set overwrite=True to replace it.")
            _remove_run_contents(path)
        else:
            previous = json.loads(config_path.read_text())
            current = config.to_dict()
            differing = sorted(key for key in set(previous) | set(current)
                               if key not in _RESTART_INSENSITIVE_FIELDS
                               and previous.get(key) != current.get(key))
            if differing:
                raise ValueError(f"Run folder {path} holds an interrupted run with a different "
                                 f"config ({', '.join(differing)} differ). Use another run_name, "
                                 "or the same parameters to resume it.")
            resumed = True
    path.mkdir(parents=True, exist_ok=True)
    write_json(config_path, config.to_dict())
    run_record = {"status": "running", "started_at": utc_now(), "resumed": resumed,
                  "environment": environment_record()}
    if resumed and (path / "run.json").is_file():
        earlier = json.loads((path / "run.json").read_text())
        run_record["first_started_at"] = earlier.get("first_started_at", earlier.get("started_at"))
    write_json(path / "run.json", run_record)
    return RunFolder(path=path, config=config, resumed=resumed)


def _remove_run_contents(path: Path) -> None:
    """Empty a completed run folder that the user asked to overwrite (keeps a papermill output)."""
    # The completion marker goes first: if this is interrupted, the folder no longer claims
    # to hold a finished run.
    (path / METRICS_FILE).unlink()
    for child in path.iterdir():
        if child.name == "notebook.ipynb":
            continue  # papermill is writing the new executed notebook here right now.
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()
