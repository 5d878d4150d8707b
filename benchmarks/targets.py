"""The project's speed and accuracy targets, each judged against figures of one benchmark run.

Every target compares numbers measured in the same run of ``benchmarks/recipes.py`` (the
same machine, the same hour): our recipes against each other, against the machine's matmul
peak measured at the run's start, and against the reference network measured beside them.
The thresholds are the open targets of the project's issues (issue 15 for speed).
"""

from __future__ import annotations

# airbench's training images/s against the reference network's in its faster precision.
PEER_SPEED_RATIO = 1.2
# airbench's achieved FLOP/s against the matmul peak of the precision it trained in.
PEAK_FRACTION = 0.60
AIRBENCH_ACCURACY = 0.9034      # 8 epochs, with its TTA (the reference's 0.9064, less 0.3).
AIRBENCH_2_ACCURACY = 0.8345    # 2 epochs, with its TTA.
SHORT_BUDGET_FRACTION_TO_068 = 0.2   # Of the seed's own seconds to 0.68.
SHORT_BUDGET_SEED_EPOCHS_TO_080 = 4  # Seed epoch-times within which 0.80 is reached.
# The short-budget recipes: each threshold is judged on whichever reached it first, by the
# accuracy the run reports (with the recipe's test-time augmentation; accuracy_curve.py).
SHORT_BUDGET_RECIPES = ("airbench_tiny", "airbench_small")


def fastest_to(records: list[dict], threshold: str) -> tuple[str | None, float | None]:
    """The short-budget record that reached ``threshold`` first (mean over its seeds).

    Args:
        records: Benchmark records (``seconds_to`` or, with several seeds, ``seconds_to_mean``).
        threshold: A key of ``seconds_to``, such as ``"0.68"``.

    Returns:
        ``(entry, seconds)``, or ``(None, None)`` when none reached it.
    """
    reached = [(record.get("seconds_to_mean", record["seconds_to"])[threshold],
                record.get("entry", record["recipe"])) for record in records]
    reached = [(seconds, entry) for seconds, entry in reached if seconds is not None]
    if not reached:
        return None, None
    seconds, entry = min(reached)
    return entry, seconds


def find(results: dict, recipe: str, epochs: int | None = None) -> dict | None:
    """The first record of ``recipe`` (with ``epochs`` epochs when given), or None."""
    return next((record for record in results.get("recipes", []) if record["recipe"] == recipe
                 and (epochs is None or record["epochs"] == epochs)), None)


def check_targets(results: dict) -> list[dict]:
    """The targets, each against figures measured in this same run.

    Args:
        results: The results so far (targets whose entries were not run are left out, or
            reported with ``met`` None when only the peer is missing).

    Returns:
        One dict per target: ``target``, ``value``, ``required``, ``met`` (None when a
        figure it needs was not measured).
    """
    checks = []

    def add(target, value, required, met):
        checks.append({"target": target, "value": value, "required": required,
                       "met": None if value is None else bool(met)})

    airbench = find(results, "airbench", 8)
    if airbench:
        accuracy = airbench["final_test_accuracy"]
        add("airbench (8 epochs) test accuracy with its TTA", accuracy,
            f">= {AIRBENCH_ACCURACY}", accuracy >= AIRBENCH_ACCURACY)
        curve = [row["test_accuracy"] for row in airbench["per_epoch"]]
        drops = [curve[index - 1] - curve[index] for index in range(2, len(curve))]
        add("airbench: largest drop from one epoch to the next, from epoch 3 on",
            max(drops, default=0.0), "<= 0.03", max(drops, default=0.0) <= 0.03)
    fastest = airbench or find(results, "airbench")
    if fastest:
        peer = results.get("reference_network", {})
        reference = peer.get("images_per_second")
        ratio = None if reference is None else fastest["train_images_per_second"] / reference
        add(f"airbench ({fastest['epochs']} epochs) training images/s against the reference "
            f"network's in its faster precision ({peer.get('peer_precision')}) (ratio)",
            ratio, f">= {PEER_SPEED_RATIO}", ratio is not None and ratio >= PEER_SPEED_RATIO)
        fraction = fastest.get("fraction_of_peak")
        add(f"airbench ({fastest['epochs']} epochs) achieved fraction of the "
            f"{fastest.get('peak_precision')} matmul peak", fraction, f">= {PEAK_FRACTION}",
            (fraction or 0) >= PEAK_FRACTION)
    two = find(results, "airbench", 2)
    if two:
        add("airbench:2 test accuracy with its TTA", two["final_test_accuracy"],
            f">= {AIRBENCH_2_ACCURACY}", two["final_test_accuracy"] >= AIRBENCH_2_ACCURACY)
    seed = find(results, "seed")
    short = [record for name in SHORT_BUDGET_RECIPES if (record := find(results, name))]
    if seed and short:
        seed_epoch = seed.get("train_seconds_mean", seed["train_seconds"]) / seed["epochs"]
        seed_to = seed.get("seconds_to_mean", seed["seconds_to"])
        budget = SHORT_BUDGET_SEED_EPOCHS_TO_080
        name, value = fastest_to(short, "0.80")
        add(f"short budget: seconds to 0.80 against {budget} seed epoch-times (ratio; "
            f"fastest: {name})", None if value is None else value / (budget * seed_epoch),
            "<= 1.0", value is not None and value <= budget * seed_epoch)
        name, value = fastest_to(short, "0.68")
        add(f"short budget: seconds to 0.68 against the seed's own (ratio; fastest: {name})",
            None if value is None or seed_to["0.68"] is None else value / seed_to["0.68"],
            f"<= {SHORT_BUDGET_FRACTION_TO_068}", value is not None and
            seed_to["0.68"] is not None and value <= seed_to["0.68"] * SHORT_BUDGET_FRACTION_TO_068)
    if seed:
        value = seed.get("final_test_accuracy_mean", seed["final_test_accuracy"])
        add(f"seed ({seed['epochs']} epochs) test accuracy", value, ">= 0.67", value >= 0.67)
    regularized = find(results, "seed_regularized")
    if regularized:
        value = regularized["final_test_accuracy"]
        add(f"seed_regularized ({regularized['epochs']} epochs) test accuracy", value,
            ">= 0.78", value >= 0.78)
    return checks
