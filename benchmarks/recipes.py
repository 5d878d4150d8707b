"""Recipe benchmark: per-epoch time and test accuracy, time to accuracy targets, throughput.

Each recipe trains in its own process (so peak memory is its own) on the shared CIFAR-10
copy with its default parameters, through ``cifar_cnn.experiment.run_experiment``: the very
chain the notebook and ``cifar-cnn train`` run (run folder, strategy scope, figures, final
evaluation), so a benchmark number is a number the notebook would get. A Keras callback
(``accuracy_curve.py``) scores the whole test set without test-time augmentation after every
epoch and, for the short-budget recipes (``--fine-recipes``), also within each epoch; the
recipe's test-time augmentation is scored once, by the run's own final evaluation. Every
evaluation, like the run's own per-epoch monitoring pass, runs outside training time:
training seconds are the wall-clock seconds of the training steps alone, first-epoch graph
tracing included.

Throughput is set against the machine: before any recipe, with nothing else running, the run
measures this machine's float32 and bfloat16 matmul peaks (``machine_peak.py``), and every
recipe's record carries its network's FLOPs per training image, counted from the layers
(``flops.py``), the GFLOP/s its training achieved and the fraction of the peak of the
precision it trained in. With ``--reference-python`` (the python of a torch environment) the
reference airbench94 network's training images/s (``reference.py``), in float32 and, where
the CPU has native bf16, in bf16 autocast, is measured in the same run and recorded beside
ours; the faster precision is the peer the targets judge ours against (``targets.py``).

Usage:
    python benchmarks/recipes.py [--recipes airbench airbench:2 airbench_tiny@3
                                  airbench_small@3 seed@3 seed_regularized] [--data-source PATH]
                                 [--reference-python PATH [--reference-epochs 2 8]]
                                 [--peak-sizes 1024 2048] [--peak-repeats 5]
                                 [--peak-minimum-seconds 0.5]
                                 [--fine-recipes airbench_tiny airbench_small seed]
                                 [--evaluations-per-epoch 4] [--output PATH]
A recipe written NAME:EPOCHS runs with that many epochs instead of its default (its schedule
is then fitted to that budget); NAME@SEEDS runs it with that many seeds (42, 43, ...) and
records their mean and standard deviation. The JSON's ``targets`` compares the run's figures
with the project's targets (``targets.py``), each against numbers measured in the same run.
Writes benchmarks/results/<machine>.json (``cpu-2core-avx2.json``, ``gpu-nvidia-h100...``:
machine, matmul peaks, FLOP convention, reference network, recipes with their test curves,
targets) and a PNG plot.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

from accuracy_curve import METHOD as CURVE_METHOD
from accuracy_curve import make_test_curve, training_clock
from common import (DEFAULT_DATA_SOURCE, REPOSITORY_ROOT, machine_record, machine_slug,
                    peak_memory_mib, print_result, run_child)
from flops import FLOP_CONVENTION, count_model_flops
from machine_peak import (DEFAULT_MINIMUM_SECONDS, DEFAULT_REPEATS, DEFAULT_SIZES,
                          POLICY_PRECISION, measure_peaks)
from reference import reference_run, reference_throughput
from targets import check_targets

THRESHOLDS = ("0.68", "0.70", "0.80", "0.90", "0.94")
# The long airbench rows first, so that they land even if a session ends during the rest.
DEFAULT_RECIPES = ("airbench", "airbench:2", "airbench_tiny@3", "airbench_small@3", "seed@3",
                   "seed_regularized")
# The short-budget comparison's recipes are also scored within epochs (accuracy_curve.py).
DEFAULT_FINE_RECIPES = ("airbench_tiny", "airbench_small", "seed")
DEFAULT_EVALUATIONS_PER_EPOCH = 4


def pipeline_images_per_second(dataset, limit_images: int = 20_000) -> float:
    """How fast the input pipeline alone delivers training batches (augmentation included).

    Args:
        dataset: A ``tf.data.Dataset`` of ``(images, labels)`` batches.
        limit_images: Stop after about this many images.

    Returns:
        Images per second.
    """
    started, images = time.perf_counter(), 0
    for batch_images, _ in dataset:
        images += int(batch_images.shape[0])
        if images >= limit_images:
            break
    return images / (time.perf_counter() - started)


def benchmark_one(recipe: str, epochs: int | None, data_source: str,
                  print_epochs: bool = True, seed: int | None = None,
                  evaluations_per_epoch: int = 1, curve_with_tta: bool = False) -> dict:
    """Run one recipe through ``experiment.run_experiment`` and build its benchmark record.

    Args:
        recipe: A ``cifar_cnn.recipes.RECIPES`` key.
        epochs: Epochs to train, or None for the recipe's default.
        data_source: The CIFAR-10 source.
        print_epochs: Print the run's one line per epoch.
        seed: The run's seed (None: the config's default).
        evaluations_per_epoch: Test-set evaluations per epoch, its end included
            (``accuracy_curve.make_test_curve``).
        curve_with_tta: Score every point of the curve with the run's test-time
            augmentation too (the short-budget recipes), not only the final evaluation.

    Returns:
        A JSON-ready dictionary: settings, the seed, training seconds, final and best test accuracy,
        seconds to each of ``THRESHOLDS`` (the first evaluation that reached it, within an
        epoch or at its end), throughputs, the network's FLOPs per image
        (``flops.FLOP_CONVENTION``), peak memory, ``per_epoch`` rows (epoch ends) and
        ``test_curve`` (every evaluation).
    """
    from cifar_cnn import experiment, run_catalog
    from cifar_cnn.config import RunConfig

    with tempfile.TemporaryDirectory() as output_dir:
        parameters = {"recipe": recipe, "epochs": epochs, "data_source": data_source,
                      "output_dir": output_dir, "run_name": recipe}
        if seed is not None:
            parameters["seed"] = seed
        plan = experiment.resolve_run(RunConfig.from_parameters(parameters))
        # The callback needs the run's test arrays: the same config prepares the same
        # subset, and the data cache makes run_experiment's own load cheap. Only the test
        # split is kept, so the peak memory stays the run's.
        prepared = experiment.prepare_data(plan)
        test_images, test_labels = prepared.test
        curve_views = plan.recipe.test_time_augmentation if curve_with_tta else "none"
        callback, points = make_test_curve(test_images, test_labels, recipe,
                                           plan.steps_per_epoch(len(prepared.train[1])),
                                           evaluations_per_epoch, curve_views)
        del prepared
        started = time.perf_counter()
        run, metrics = experiment.run_experiment(plan, print_epochs=print_epochs,
                                                 extra_callbacks=[callback])
        wall_seconds = time.perf_counter() - started
        history = run_catalog.read_run(run.path).history
        # Read before the pipeline measurement below, which is no part of the run.
        peak_memory = peak_memory_mib()
        # Measured after the run, not before: nothing may run on TensorFlow before the
        # run creates its strategy (build_model's rule).
        prepared = experiment.prepare_data(plan)
        train_dataset, _, _ = experiment.make_datasets(plan, prepared)
        pipeline_speed = pipeline_images_per_second(train_dataset)

    curve = training_clock(points, history, callback.evaluation_seconds_within)
    per_epoch = [{key: point[key] for key in ("epoch", "test_accuracy", "test_accuracy_no_tta",
                                              "evaluation_seconds", "train_seconds",
                                              "train_accuracy")}
                 for point in curve if point["epoch_end"]]

    def seconds_to_each_threshold(score: str) -> dict:
        seconds_to = {}
        for threshold in THRESHOLDS:
            reached = [point["train_seconds"] for point in curve
                       if point[score] >= float(threshold)]
            seconds_to[threshold] = reached[0] if reached else None
        return seconds_to

    train_seconds = float(per_epoch[-1]["train_seconds"])
    # The trained model itself (the callback holds it), so the count is of the very network
    # whose throughput is measured.
    flops = count_model_flops(callback.model)
    return {
        "recipe": recipe,
        "seed": plan.config.seed,
        "model": plan.recipe.model,
        "epochs": plan.recipe.epochs,
        "batch_size": plan.recipe.batch_size,
        "precision_policy": metrics["precision_policy"],
        "strategy": metrics["strategy"],
        "test_time_augmentation": metrics["test_time_augmentation"],
        # Per-epoch history's train_seconds: the run's monitoring pass and the evaluation
        # callback are left out.
        "train_seconds": train_seconds,
        # The whole run_experiment call: run folder, figures, per-epoch evaluations, final
        # evaluation and model saving included.
        "wall_seconds_including_evaluation": wall_seconds,
        # The run's own final evaluation (metrics.json), the same function as the callback's.
        "final_test_accuracy": metrics["test_accuracy"],
        "final_test_accuracy_no_tta": per_epoch[-1]["test_accuracy_no_tta"],
        "best_test_accuracy": max(row["test_accuracy"] for row in per_epoch),
        "final_train_accuracy": per_epoch[-1]["train_accuracy"],
        "seconds_to": seconds_to_each_threshold("test_accuracy"),
        "seconds_to_no_tta": seconds_to_each_threshold("test_accuracy_no_tta"),
        "train_images_per_second": metrics["train_examples"] * len(history) / train_seconds,
        "pipeline_images_per_second": pipeline_speed,
        "forward_flops_per_image": flops["forward_flops_per_image"],
        "elementwise_flops_per_image": flops["elementwise_flops_per_image"],
        "training_flops_per_image": flops["training_flops_per_image"],
        "peak_memory_mib": peak_memory,
        "per_epoch_evaluation": {**CURVE_METHOD,
                                 "evaluations_per_epoch": evaluations_per_epoch,
                                 "curve_test_time_augmentation": curve_views},
        "per_epoch": per_epoch,
        "test_curve": curve,
    }


def add_efficiency(record: dict, peaks: dict) -> dict:
    """Add the achieved GFLOP/s and the fraction of the matching measured peak to a record.

    Args:
        record: A :func:`benchmark_one` record (``training_flops_per_image``,
            ``train_images_per_second``, ``precision_policy``).
        peaks: ``peak_gflops_per_second`` of ``machine_peak.measure_peaks``.

    Returns:
        The same record, with ``achieved_gflops_per_second``, ``peak_precision``,
        ``peak_gflops_per_second`` and ``fraction_of_peak`` (the last three None for a
        policy with no measured peak, such as the GPU's ``mixed_float16``).
    """
    record["achieved_gflops_per_second"] = \
        record["training_flops_per_image"] * record["train_images_per_second"] / 1e9
    precision = POLICY_PRECISION.get(record["precision_policy"])
    peak = None if precision is None else peaks[precision]
    record["peak_precision"] = precision
    record["peak_gflops_per_second"] = peak
    record["fraction_of_peak"] = None if peak is None else \
        record["achieved_gflops_per_second"] / peak
    return record


def plot_results(results: dict, path: Path) -> None:
    """Test accuracy against training seconds, one line per recipe, targets dashed."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 5), layout="constrained")
    axis = figure.subplots()
    for record in results["recipes"]:
        axis.plot([row["train_seconds"] for row in record["per_epoch"]],
                  [row["test_accuracy"] for row in record["per_epoch"]], "o-",
                  label=f"{record['recipe']}, {record['epochs']} epochs "
                        f"({record['final_test_accuracy']:.3f})")
    for threshold in THRESHOLDS:
        axis.axhline(float(threshold), color="gray", linestyle="--", linewidth=0.7)
    axis.set_xscale("log")
    axis.set_xlabel("training seconds (log scale)")
    axis.set_ylabel("test accuracy")
    axis.set_title(f"CIFAR-10 recipes on {results['machine']['processor']} "
                   f"({results['machine']['cpu_count']} cores)")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.savefig(path, dpi=110)


ENTRY_PATTERN = re.compile(r"^(?P<name>[a-z_0-9]+)(:(?P<epochs>[0-9]+))?(@(?P<seeds>[0-9]+))?$")
FIRST_SEED = 42  # RunConfig's default: seed 1 of n is the run a user gets by default.


def parse_entry(entry: str, recipes) -> tuple[str, int | None, int]:
    """``NAME[:EPOCHS][@SEEDS]`` as ``(name, epochs or None, seeds)``.

    Args:
        entry: A ``--recipes`` entry.
        recipes: The valid recipe names.

    Returns:
        The recipe name, its epochs (None: the recipe's), and how many seeds to run.

    Raises:
        ValueError: A malformed entry or an unknown recipe, naming the valid ones.
    """
    found = ENTRY_PATTERN.match(entry)
    if not found or found["name"] not in recipes or found["seeds"] == "0" \
            or found["epochs"] == "0":
        raise ValueError(f"bad recipe entry {entry!r}: write NAME[:EPOCHS][@SEEDS] with NAME one "
                         f"of {', '.join(recipes)}, EPOCHS and SEEDS at least 1")
    return found["name"], int(found["epochs"]) if found["epochs"] else None, \
        int(found["seeds"] or 1)


def combine_seeds(entry: str, records: list[dict]) -> dict:
    """One record for an entry run with several seeds: the first seed's, plus the spread.

    The first seed's record stays whole (its curve is the one plotted); ``seeds`` lists each
    seed's final accuracy, training seconds and seconds to each threshold, and the
    ``*_mean``/``*_std`` fields summarise them (sample standard deviation; 0 for one seed).
    A threshold's mean is None unless every seed reached it.

    Args:
        entry: The ``--recipes`` entry.
        records: :func:`benchmark_one` records, one per seed.

    Returns:
        The combined record.
    """
    import numpy as np

    record = dict(records[0], entry=entry)
    record["seeds"] = [{"seed": one["seed"], "final_test_accuracy": one["final_test_accuracy"],
                        "train_seconds": one["train_seconds"],
                        "train_images_per_second": one["train_images_per_second"],
                        "seconds_to": one["seconds_to"]} for one in records]
    for key in ("final_test_accuracy", "train_seconds", "train_images_per_second"):
        values = np.array([one[key] for one in records], dtype=float)
        record[f"{key}_mean"] = float(values.mean())
        record[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    record["seconds_to_mean"] = {
        threshold: (None if any(one["seconds_to"][threshold] is None for one in records)
                    else float(np.mean([one["seconds_to"][threshold] for one in records])))
        for threshold in record["seconds_to"]}
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipes", nargs="+", default=list(DEFAULT_RECIPES),
                        metavar="RECIPE[:EPOCHS][@SEEDS]")
    parser.add_argument("--data-source", default=DEFAULT_DATA_SOURCE)
    parser.add_argument("--output", type=Path, default=None,
                        help="results file (default: benchmarks/results/<machine>.json, "
                             "gpu-<model> or cpu-<cores>core-<kind>, kind one of amx, "
                             "avx512bf16, avx512, avx2)")
    parser.add_argument("--fine-recipes", nargs="*", default=list(DEFAULT_FINE_RECIPES),
                        metavar="RECIPE", help="recipes also scored within each epoch")
    parser.add_argument("--evaluations-per-epoch", type=int,
                        default=DEFAULT_EVALUATIONS_PER_EPOCH,
                        help="test-set evaluations per epoch of the --fine-recipes, the "
                             "epoch's end included (outside training time)")
    parser.add_argument("--reference-python", default=None, metavar="PATH",
                        help="python of a torch environment: also measure the reference "
                             "airbench94 network's training images/s")
    parser.add_argument("--reference-epochs", type=int, nargs="*", default=[], metavar="EPOCHS",
                        help="with --reference-python: also train the reference itself for "
                             "each of these epoch counts (its schedule fitted to them)")
    parser.add_argument("--peak-sizes", type=int, nargs="+", default=list(DEFAULT_SIZES),
                        help="matrix sides of the matmul peak measurement")
    parser.add_argument("--peak-repeats", type=int, default=DEFAULT_REPEATS,
                        help="timed matmuls per size of the peak measurement, at least")
    parser.add_argument("--peak-minimum-seconds", type=float, default=DEFAULT_MINIMUM_SECONDS,
                        help="timed seconds per size of the peak measurement, at least")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # Internal: run one recipe, print JSON.
    parser.add_argument("--seed", type=int, default=None, help=argparse.SUPPRESS)  # With --one.
    arguments = parser.parse_args()
    if arguments.evaluations_per_epoch < 1:
        parser.error("--evaluations-per-epoch must be at least 1")

    if arguments.one:
        name, _, epochs = arguments.one.partition(":")
        fine = name in arguments.fine_recipes
        record = benchmark_one(name, int(epochs) if epochs else None, arguments.data_source,
                               seed=arguments.seed,
                               evaluations_per_epoch=arguments.evaluations_per_epoch if fine
                               else 1, curve_with_tta=fine)
        print_result(record)
        return

    from cifar_cnn.recipes import RECIPES

    try:
        entries = [(entry, *parse_entry(entry, RECIPES)) for entry in arguments.recipes]
    except ValueError as error:
        parser.error(str(error))
    unknown = [name for name in arguments.fine_recipes if name not in RECIPES]
    if unknown:
        parser.error(f"unknown --fine-recipes {', '.join(unknown)}; valid: {', '.join(RECIPES)}")
    if arguments.reference_epochs and not arguments.reference_python:
        parser.error("--reference-epochs needs --reference-python")
    arguments.output = arguments.output or (REPOSITORY_ROOT / "benchmarks" / "results" /
                                            f"{machine_slug()}.json")
    results = {"command": " ".join(["python", "benchmarks/recipes.py", *sys.argv[1:]]),
               "data_source": arguments.data_source, "machine": machine_record()}

    def save():
        arguments.output.parent.mkdir(parents=True, exist_ok=True)
        results["targets"] = check_targets(results)
        arguments.output.write_text(json.dumps(results, indent=2) + "\n")

    # First, while nothing else of this benchmark runs: the recipes train in child
    # processes afterwards, so they do not share the cores with the measurement.
    print("== matmul peak", flush=True)
    results["machine_peak"] = measure_peaks(arguments.peak_sizes, arguments.peak_repeats,
                                             arguments.peak_minimum_seconds)
    print(json.dumps(results["machine_peak"]["peak_gflops_per_second"]), flush=True)
    results["flop_convention"] = FLOP_CONVENTION
    results["reference_network"] = reference_throughput(arguments.reference_python)
    print(f"== reference network: {results['reference_network']['images_per_second']} images/s",
          flush=True)
    results["recipes"] = []
    for entry, name, epochs, seeds in entries:
        records = []
        for seed in range(FIRST_SEED, FIRST_SEED + seeds):
            print(f"== {entry} (seed {seed})", flush=True)
            spec = name if epochs is None else f"{name}:{epochs}"
            command = [sys.executable, __file__, "--one", spec, "--seed", str(seed),
                       "--data-source", arguments.data_source, "--evaluations-per-epoch",
                       str(arguments.evaluations_per_epoch),
                       "--fine-recipes", *arguments.fine_recipes]
            record, lines = run_child(command, f"recipe {entry}")
            print("\n".join(lines), flush=True)
            records.append(add_efficiency(record,
                                          results["machine_peak"]["peak_gflops_per_second"]))
        results["recipes"].append(combine_seeds(entry, records))
        save()  # After every entry.
    results["reference_runs"] = []
    for epochs in arguments.reference_epochs:
        print(f"== reference airbench94_muon, {epochs} epochs", flush=True)
        results["reference_runs"].append(reference_run(arguments.reference_python, epochs))
        print(json.dumps(results["reference_runs"][-1]), flush=True)
        save()
    save()
    plot_results(results, arguments.output.with_suffix(".png"))
    for record in results["recipes"]:
        print(f"{record['entry']}: {record['final_test_accuracy_mean']:.4f} "
              f"(+- {record['final_test_accuracy_std']:.4f}) in "
              f"{record['train_seconds']:.0f} s, seconds_to {record['seconds_to']}, "
              f"{record['train_images_per_second']:.0f} images/s, "
              f"{record['achieved_gflops_per_second']:.1f} GFLOP/s")
    for check in results["targets"]:
        print(f"target {'met' if check['met'] else 'NOT met' if check['met'] is False else 'n/a'}"
              f": {check['target']}: {check['value']} (required {check['required']})")


if __name__ == "__main__":
    main()
