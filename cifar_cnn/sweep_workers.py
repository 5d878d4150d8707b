"""How many notebooks a sweep executes side by side, and the environment each one gets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # The cores this process may use (containers).
    except AttributeError:
        return os.cpu_count() or 1


def _gpu_present() -> bool:
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return Path("/dev/nvidia0").exists() or Path("/proc/driver/nvidia/gpus").is_dir()


def default_workers(cpu_count: int | None = None, gpu_present: bool | None = None) -> int:
    """How many notebooks to execute side by side when the sweep does not say.

    One per two usable cores (each TensorFlow kernel then keeps two threads; on a 2-core
    machine that is 1), and 1 when an NVIDIA GPU is present, because each kernel would
    try to take the whole GPU's memory.

    Args:
        cpu_count: Usable cores (default: this process's CPU affinity).
        gpu_present: Whether a GPU is present (default: look for /dev/nvidia0).

    Returns:
        At least 1.
    """
    cpu_count = _usable_cpus() if cpu_count is None else cpu_count
    gpu_present = _gpu_present() if gpu_present is None else gpu_present
    return 1 if gpu_present else max(1, cpu_count // 2)


def worker_environment(workers: int, cpu_count: int | None = None,
                       base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of each execution: threads shared out when several run at once.

    Each TensorFlow kernel otherwise sizes its thread pools to the whole machine, and
    ``workers`` of them would fight over the cores. Variables already set are kept.

    Args:
        workers: Executions running side by side.
        cpu_count: Usable cores (default: this process's CPU affinity).
        base: The environment to start from (default: ``os.environ``).

    Returns:
        The environment for the execution's process.
    """
    environment = dict(os.environ if base is None else base)
    environment["PYTHONUNBUFFERED"] = "1"  # Epoch lines arrive as they are printed.
    if workers > 1:
        threads = max(1, (_usable_cpus() if cpu_count is None else cpu_count) // workers)
        environment.setdefault("TF_NUM_INTRAOP_THREADS", str(threads))
        environment.setdefault("TF_NUM_INTEROP_THREADS", str(min(2, threads)))
        environment.setdefault("OMP_NUM_THREADS", str(threads))
        environment.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    return environment
