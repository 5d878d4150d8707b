"""Shared pieces of the benchmark scripts: where the data is, what machine ran them."""

from __future__ import annotations

import datetime
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

from cifar_cnn.provenance import environment_record

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
# The shared offline copy beside the checkout (see README); override with --data-source.
DEFAULT_DATA_SOURCE = os.environ.get(
    "CIFAR10_SOURCE", str(REPOSITORY_ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"))


def machine_record() -> dict:
    """CPU model, core count, memory, accelerators and library versions, with the date.

    Returns:
        A JSON-ready dictionary.
    """
    record = environment_record()
    try:
        memory_kib = next(int(line.split()[1]) for line in
                          Path("/proc/meminfo").read_text().splitlines()
                          if line.startswith("MemTotal"))
        record["memory_gib"] = round(memory_kib / 2**20, 1)
    except (OSError, StopIteration):
        record["memory_gib"] = None
    record["measured_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds")
    return record


def cpu_kind() -> str:
    """The CPU's class for speed, from its instruction sets: results files are kept per class.

    Returns:
        ``"amx"`` (Intel with AMX), ``"avx512bf16"``, ``"avx512"``, ``"avx2"`` or ``"cpu"``
        (anything else, or no /proc/cpuinfo).
    """
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        flags = set()
    for kind, flag in (("amx", "amx_bf16"), ("avx512bf16", "avx512_bf16"),
                       ("avx512", "avx512f"), ("avx2", "avx2")):
        if flag in flags:
            return kind
    return "cpu"


def machine_slug() -> str:
    """A results file's name for this machine: ``gpu-<model>`` with a GPU, else
    ``cpu-<cores>core-<cpu kind>``, so that runs on different kinds of machine never share a
    file. Imports TensorFlow (to see the GPUs).
    """
    import re

    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "gpu")
        return "gpu-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return f"cpu-{os.cpu_count()}core-{cpu_kind()}"


RESULT_PREFIX = "RESULT "  # How a benchmark's child process hands its JSON record back.


def print_result(record: dict) -> None:
    """Print a child process's record on the line its parent reads (:func:`run_child`)."""
    print(RESULT_PREFIX + json.dumps(record), flush=True)


def run_child(command: list[str], what: str) -> tuple[dict, list[str]]:
    """Run a benchmark's child process and read the record it printed with :func:`print_result`.

    Args:
        command: The child's command line.
        what: Named in the error when the child fails.

    Returns:
        ``(record, other_lines)``: the record, and the child's other standard-output lines.

    Raises:
        SystemExit: The child failed or printed no record (the tails of its output are
            printed first).
    """
    completed = subprocess.run(command, capture_output=True, text=True)
    lines = completed.stdout.splitlines()
    records = [line for line in lines if line.startswith(RESULT_PREFIX)]
    if completed.returncode != 0 or not records:
        print(completed.stdout[-2000:] + completed.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"{what} failed (exit {completed.returncode})")
    return (json.loads(records[-1][len(RESULT_PREFIX):]),
            [line for line in lines if not line.startswith(RESULT_PREFIX)])


def peak_memory_mib() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
