"""The PyTorch reference (``../shared/anchors``), measured in the same run as our recipes.

Two measurements, each in a torch environment given by its python: the reference network's
training throughput (``reference_throughput.py``: float32 and, where the CPU has native bf16,
bf16 autocast) and a whole training run of ``airbench94_muon_cpu.py`` with its printed curve.
The reference is a yardstick, never a dependency: it runs in its own process and only its
printed numbers are read.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile

from common import REPOSITORY_ROOT

ANCHORS = REPOSITORY_ROOT.parent / "shared" / "anchors"
REFERENCE_SCRIPT = ANCHORS / "reference_throughput.py"
REFERENCE_TRAINING_SCRIPT = ANCHORS / "airbench94_muon_cpu.py"
REFERENCE_NETWORK = ("airbench94 reference network (KellerJordan/cifar10-airbench), PyTorch, "
                     "channels_last, eager, batch 500, random data, forward and backward passes "
                     "alone (no optimizer step, no input pipeline), in float32 and, where the "
                     "CPU has native bf16, in bf16 autocast; the faster of the two is the peer "
                     "the airbench recipe is judged against")
# The reference script's lines: "reference airbench94 net torch float32: 131 img/s" and
# "reference airbench94 net torch bf16 autocast (AMX): 402 img/s".
_THROUGHPUT_LINE = re.compile(r"torch (?P<precision>float32|bf16 autocast)[^:]*: "
                              r"(?P<rate>[0-9.]+) img/s")


def reference_throughput(reference_python: str | None, timeout_seconds: float = 900) -> dict:
    """Training images/s of the reference airbench94 network, in each precision it has.

    Runs ``../shared/anchors/reference_throughput.py`` in a scratch folder (it may write
    there) and reads its float32 line and, where present, its bf16 autocast line.

    Args:
        reference_python: The python executable of a virtual environment with torch, or
            None to skip the measurement.
        timeout_seconds: Give up after this long.

    Returns:
        ``{"network", "python", "images_per_second_float32", "images_per_second_bfloat16",
        "images_per_second" (the faster: the strongest peer), "peer_precision", "note"}``;
        the rates are None when not measured, and the note says why.
    """
    record = {"network": REFERENCE_NETWORK, "python": reference_python,
              "images_per_second_float32": None, "images_per_second_bfloat16": None,
              "images_per_second": None, "peer_precision": None}
    if reference_python is None:
        record["note"] = "not measured: no --reference-python given"
        return record
    with tempfile.TemporaryDirectory() as scratch:
        completed = subprocess.run([reference_python, str(REFERENCE_SCRIPT)], cwd=scratch,
                                   capture_output=True, text=True, timeout=timeout_seconds)
    rates = {("bfloat16" if found["precision"].startswith("bf16") else "float32"):
             float(found["rate"]) for found in _THROUGHPUT_LINE.finditer(completed.stdout)}
    if completed.returncode != 0 or "float32" not in rates:
        raise SystemExit(f"the reference throughput script failed (exit "
                         f"{completed.returncode}):\n{completed.stderr[-3000:]}")
    record["images_per_second_float32"] = rates["float32"]
    record["images_per_second_bfloat16"] = rates.get("bfloat16")
    record["peer_precision"] = max(rates, key=rates.get)
    record["images_per_second"] = rates[record["peer_precision"]]
    record["note"] = " / ".join(completed.stdout.strip().splitlines())
    return record


def reference_run(reference_python: str, epochs: int, seed: int = 0) -> dict:
    """Train the reference itself (``airbench94_muon_cpu.py``) and read its printed curve.

    Args:
        reference_python: The python of a torch environment.
        epochs: Its ``EPOCHS`` (the whole schedule is fitted to them, as ours is).
        seed: Its ``SEED``.

    Returns:
        ``{"epochs", "seed", "per_epoch": [{"epoch", "test_accuracy", "train_seconds"}],
        "final_test_accuracy" (six-view TTA), "train_seconds", "command"}``.
    """
    environment = {**os.environ, "EPOCHS": str(epochs), "SEED": str(seed)}
    with tempfile.TemporaryDirectory() as scratch:
        completed = subprocess.run([reference_python, str(REFERENCE_TRAINING_SCRIPT)],
                                   cwd=scratch, env=environment, capture_output=True, text=True)
    if completed.returncode != 0:
        raise SystemExit(f"the reference training failed (exit {completed.returncode}):\n"
                         f"{completed.stderr[-3000:]}")
    per_epoch, final = [], None
    for line in completed.stdout.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 6:
            continue
        epoch, val_acc, tta_val_acc, seconds = cells[1], cells[3], cells[4], cells[5]
        if epoch.isdigit():
            per_epoch.append({"epoch": int(epoch) + 1, "test_accuracy": float(val_acc),
                              "train_seconds": float(seconds)})
        elif epoch == "eval" and tta_val_acc:
            final = {"final_test_accuracy": float(tta_val_acc), "train_seconds": float(seconds)}
    if not per_epoch or final is None:
        raise SystemExit(f"could not read the reference's curve from:\n{completed.stdout[-3000:]}")
    return {"epochs": epochs, "seed": seed, "per_epoch": per_epoch, **final,
            "command": f"EPOCHS={epochs} SEED={seed} {reference_python} "
                       f"{REFERENCE_TRAINING_SCRIPT}"}
