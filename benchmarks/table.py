"""Print the README's results table from a benchmark results file.

Usage:
    python benchmarks/table.py [benchmarks/results/cpu-2core.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]


def _seconds(value) -> str:
    return "never" if value is None else f"{value:.0f} s"


def _optional(record: dict, key: str, format_spec: str) -> str:
    """A field of the record, formatted, or "-" where it is missing or None.

    Results files written before the benchmark measured FLOPs lack the field; a precision
    with no measured peak has it as None.
    """
    value = record.get(key)
    return "-" if value is None else format(value, format_spec)


def markdown_table(results: dict) -> str:
    """One row per recipe: accuracy, training time, time to each target, throughput.

    With the FLOP fields of newer results files, also the GFLOP/s the training achieved and
    its fraction of the matmul peak of the precision it trained in ("-" in older files).

    Args:
        results: The JSON written by ``benchmarks/recipes.py``.

    Returns:
        A Markdown table.
    """
    machine = results["machine"]
    hardware = f"{machine['processor']}, {machine['cpu_count']} cores"
    thresholds = list(results["recipes"][0]["seconds_to"])
    header = ["recipe", "epochs", "test accuracy", "training time",
              *[f"to {threshold}" for threshold in thresholds], "images/s", "GFLOP/s",
              "of peak", "hardware"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for record in results["recipes"]:
        tta = " (flip TTA)" if record.get("test_time_augmentation") else ""
        row = [f"`{record['recipe']}`", str(record["epochs"]),
               f"{record['final_test_accuracy']:.4f}{tta}", _seconds(record["train_seconds"]),
               *[_seconds(record["seconds_to"][threshold]) for threshold in thresholds],
               f"{record['train_images_per_second']:.0f}",
               _optional(record, "achieved_gflops_per_second", ".1f"),
               _optional(record, "fraction_of_peak", ".1%"), hardware]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else \
        REPOSITORY_ROOT / "benchmarks" / "results" / "cpu-2core.json"
    print(markdown_table(json.loads(path.read_text())))
