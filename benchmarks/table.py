"""Print the README's results table from a benchmark results file.

Usage:
    python benchmarks/table.py benchmarks/results/cpu-2core-<cpu kind>.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path



def _seconds(value) -> str:
    return "never" if value is None else f"{value:.0f} s"


def _optional(record: dict, key: str, format_spec: str) -> str:
    """A field of the record, formatted, or "-" where it is missing or None.

    Results files written before the benchmark measured FLOPs lack the field; a precision
    with no measured peak has it as None.
    """
    value = record.get(key)
    return "-" if value is None else format(value, format_spec)


def _accuracy(record: dict) -> str:
    """Final accuracy, as mean +- std over seeds when there were several, and its TTA."""
    seeds = record.get("seeds") or []
    if len(seeds) > 1:
        text = (f"{record['final_test_accuracy_mean']:.4f} ± "
                f"{record['final_test_accuracy_std']:.4f} ({len(seeds)} seeds)")
    else:
        text = f"{record['final_test_accuracy']:.4f}"
    views = record.get("test_time_augmentation")
    # Older files held True/"flip" for flip TTA and None for none.
    if views and views != "none":
        text += f" ({'flip' if views is True else views} TTA)"
    return text


def markdown_table(results: dict) -> str:
    """One row per benchmark entry, and one per reference run: accuracy, time, throughput.

    With the FLOP fields of newer results files, also the GFLOP/s the training achieved and
    its fraction of the matmul peak of the precision it trained in ("-" in older files).
    Entries run with several seeds show their mean and standard deviation; times are the
    first seed's. Reference runs (``--reference-epochs``) show their own curve's times.

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
        row = [f"`{record.get('entry', record['recipe'])}`", str(record["epochs"]),
               _accuracy(record), _seconds(record["train_seconds"]),
               *[_seconds(record["seconds_to"][threshold]) for threshold in thresholds],
               f"{record['train_images_per_second']:.0f}",
               _optional(record, "achieved_gflops_per_second", ".1f"),
               _optional(record, "fraction_of_peak", ".1%"), hardware]
        lines.append("| " + " | ".join(row) + " |")
    for run in results.get("reference_runs") or []:
        reached = {threshold: next((row["train_seconds"] for row in run["per_epoch"]
                                    if row["test_accuracy"] >= float(threshold)), None)
                   for threshold in thresholds}
        row = ["reference airbench94_muon (torch float32)", str(run["epochs"]),
               f"{run['final_test_accuracy']:.4f} (flip_translate TTA)",
               _seconds(run["per_epoch"][-1]["train_seconds"]),
               *[_seconds(reached[threshold]) for threshold in thresholds],
               f"{50000 * run['epochs'] / run['per_epoch'][-1]['train_seconds']:.0f}", "-", "-",
               hardware]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def targets_table(results: dict) -> str:
    """The run's targets (``benchmarks/recipes.py`` ``check_targets``) as a Markdown table."""
    lines = ["| target | measured | required | met |", "|---|---|---|---|"]
    for check in results.get("targets") or []:
        value = "not measured" if check["value"] is None else f"{check['value']:.4f}"
        met = {True: "yes", False: "**no**", None: "-"}[check["met"]]
        lines.append(f"| {check['target']} | {value} | {check['required']} | {met} |")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit("usage: python benchmarks/table.py benchmarks/results/cpu-2core-KIND.json")
    path = Path(sys.argv[1])
    loaded = json.loads(path.read_text())
    print(markdown_table(loaded))
    if loaded.get("targets"):
        print()
        print(targets_table(loaded))
