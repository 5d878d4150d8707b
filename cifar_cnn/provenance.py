"""Where a number came from: the code's git commit, the library versions, the machine.

Written into every run's ``run.json`` (:func:`cifar_cnn.runs.record_environment`) and every
benchmark's results (``benchmarks/common.py``), so a reader can trust or repeat a number.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

from cifar_cnn import __version__


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


__all__ = ["cpu_model", "environment_record", "git_commit"]
