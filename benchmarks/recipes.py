"""Recipe benchmark: per-epoch time and test accuracy, time to accuracy targets, throughput.

Each recipe trains in its own process (so peak memory is its own) on the shared CIFAR-10
copy with its default parameters, through ``cifar_cnn.experiment.run_experiment``: the very
chain the notebook and ``cifar-cnn train`` run (run folder, strategy scope, figures, final
evaluation), so a benchmark number is a number the notebook would get. After every epoch a
Keras callback evaluates the whole test set with ``cifar_cnn.evaluate.predict_probabilities``
without test-time augmentation; the recipe's test-time augmentation is scored once, by the
run's own final evaluation. That callback, like the run's own per-epoch monitoring pass,
runs outside training time: training seconds are the run history's ``train_seconds``, the wall-clock seconds of
the training epochs alone, first-epoch graph tracing included.

Throughput is set against the machine: before any recipe, with nothing else running, the run
measures this machine's float32 and bfloat16 matmul peaks (``machine_peak.py``), and every
recipe's record carries its network's FLOPs per training image, counted from the layers
(``flops.py``), the GFLOP/s its training achieved and the fraction of the peak of the
precision it trained in. With ``--reference-python`` (the python of a torch environment) the
reference airbench94 network's training images/s (``../shared/anchors/reference_throughput.py``)
is measured in the same run and recorded beside ours.

Usage:
    python benchmarks/recipes.py [--recipes seed@3 seed_regularized airbench_small@3
                                  airbench:2 airbench] [--data-source PATH]
                                 [--reference-python PATH [--reference-epochs 2 8]]
                                 [--peak-sizes 1024 2048] [--peak-repeats 5]
                                 [--peak-minimum-seconds 0.5]
A recipe written NAME:EPOCHS runs with that many epochs instead of its default (its schedule
is then fitted to that budget); NAME@SEEDS runs it with that many seeds (42, 43, ...) and
records their mean and standard deviation. The JSON's ``targets`` compares the run's figures
with the project's targets (issue 9), each against numbers measured in the same run.
Writes benchmarks/results/cpu-2core.json (machine, matmul peaks, FLOP convention, reference
network, recipes with per-epoch curves) and a PNG plot.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import DEFAULT_DATA_SOURCE, REPOSITORY_ROOT, machine_record, peak_memory_mib
from flops import FLOP_CONVENTION, count_model_flops
from machine_peak import (DEFAULT_MINIMUM_SECONDS, DEFAULT_REPEATS, DEFAULT_SIZES,
                          POLICY_PRECISION, measure_peaks)

THRESHOLDS = ("0.68", "0.70", "0.80", "0.90", "0.94")
# The long airbench rows first, so that they land even if a session ends during the rest.
DEFAULT_RECIPES = ("airbench", "airbench:2", "airbench_small@3", "seed@3", "seed_regularized")
# Written into every record, so a reader of the JSON knows what the per-epoch numbers are.
PER_EPOCH_EVALUATION = {
    "method": "Keras callback after every epoch: cifar_cnn.evaluate.predict_probabilities on "
              "the whole test set without test-time augmentation (test_accuracy); the "
              "recipe's test-time augmentation is scored once, by the run's own final "
              "evaluation (final_test_accuracy)",
    "counted_in_train_seconds": False,
}
REFERENCE_SCRIPT = REPOSITORY_ROOT.parent / "shared" / "anchors" / "reference_throughput.py"
REFERENCE_NETWORK = ("airbench94 reference network (KellerJordan/cifar10-airbench), PyTorch "
                     "float32, channels_last, eager, batch 500, random data, forward and "
                     "backward passes alone (no optimizer step, no input pipeline); compare "
                     "with the airbench recipe")


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


def per_epoch_test_evaluation(images, labels, label: str):
    """A Keras callback that scores the test set after every epoch, as the run's evaluation does.

    It calls the library's ``predict_probabilities`` (the function behind the run's final
    evaluation), so the per-epoch curve and the final accuracy are computed alike. It
    runs after the run's history recorder in the callback list, so its time is not part
    of the epoch's recorded ``train_seconds``. No test-time augmentation: the curve is
    the network's own, as the reference prints it, and six views every epoch would cost
    six passes.

    Args:
        images: Test images (N, 32, 32, 3), 0-255.
        labels: Test labels (N,).
        label: Printed before each epoch's line.

    Returns:
        ``(callback, rows)``: the callback, and the list it appends one dict per epoch to
        (``epoch``, ``test_accuracy``, ``evaluation_seconds``).
    """
    import keras
    import numpy as np

    from cifar_cnn.evaluate import predict_probabilities

    labels = np.asarray(labels)
    rows = []

    class TestEvaluation(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            started = time.perf_counter()
            probabilities = predict_probabilities(self.model, images, batch_size=2000)
            row = {"epoch": epoch + 1,
                   "test_accuracy": float((probabilities.argmax(axis=1) == labels).mean()),
                   "evaluation_seconds": time.perf_counter() - started}
            rows.append(row)
            print(f"  {label} epoch {epoch + 1}: test accuracy {row['test_accuracy']:.4f}",
                  flush=True)

    return TestEvaluation(), rows


def benchmark_one(recipe: str, epochs: int | None, data_source: str,
                  print_epochs: bool = True, seed: int | None = None) -> dict:
    """Run one recipe through ``experiment.run_experiment`` and build its benchmark record.

    Args:
        recipe: A ``cifar_cnn.recipes.RECIPES`` key.
        epochs: Epochs to train, or None for the recipe's default.
        data_source: The CIFAR-10 source.
        print_epochs: Print the run's one line per epoch.
        seed: The run's seed (None: the config's default).

    Returns:
        A JSON-ready dictionary: settings, the seed, training seconds, final and best test accuracy,
        seconds to each of ``THRESHOLDS``, throughputs, the network's FLOPs per image
        (``flops.FLOP_CONVENTION``), peak memory and ``per_epoch`` rows.
    """
    import numpy as np

    from cifar_cnn import experiment, runs
    from cifar_cnn.config import RunConfig

    with tempfile.TemporaryDirectory() as output_dir:
        parameters = {"recipe": recipe, "epochs": epochs, "data_source": data_source,
                      "output_dir": output_dir, "run_name": recipe}
        if seed is not None:
            parameters["seed"] = seed
        config = RunConfig.from_parameters(parameters)
        # The callback needs the run's test arrays: the same config prepares the same
        # subset, and the data cache makes run_experiment's own load cheap. Only the test
        # split is kept, so the peak memory stays the run's.
        test_images, test_labels = experiment.prepare_data(config).test
        callback, per_epoch = per_epoch_test_evaluation(test_images, test_labels, recipe)
        started = time.perf_counter()
        run, metrics = experiment.run_experiment(config, print_epochs=print_epochs,
                                                 extra_callbacks=[callback])
        wall_seconds = time.perf_counter() - started
        history = runs.read_run(run.path).history
        # Read before the pipeline measurement below, which is no part of the run.
        peak_memory = peak_memory_mib()
        # Measured after the run, not before: nothing may run on TensorFlow before the
        # run creates its strategy (build_model's rule).
        prepared = experiment.prepare_data(config)
        train_dataset, _, _ = experiment.make_datasets(config, prepared)
        pipeline_speed = pipeline_images_per_second(train_dataset)

    cumulative = np.cumsum([row["train_seconds"] for row in history])
    for row, seconds, history_row in zip(per_epoch, cumulative, history):
        row["train_seconds"] = float(seconds)
        row["train_accuracy"] = history_row["accuracy"]
    seconds_to = {}
    for threshold in THRESHOLDS:
        reached = [row["train_seconds"] for row in per_epoch
                   if row["test_accuracy"] >= float(threshold)]
        seconds_to[threshold] = reached[0] if reached else None
    train_seconds = float(cumulative[-1])
    # The trained model itself (the callback holds it), so the count is of the very network
    # whose throughput is measured.
    flops = count_model_flops(callback.model)
    return {
        "recipe": recipe,
        "seed": config.seed,
        "model": config.training_recipe().model,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
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
        "final_test_accuracy_no_tta": per_epoch[-1]["test_accuracy"],
        "best_test_accuracy": max(row["test_accuracy"] for row in per_epoch),
        "final_train_accuracy": per_epoch[-1]["train_accuracy"],
        "seconds_to": seconds_to,
        "train_images_per_second": metrics["train_examples"] * len(history) / train_seconds,
        "pipeline_images_per_second": pipeline_speed,
        "forward_flops_per_image": flops["forward_flops_per_image"],
        "elementwise_flops_per_image": flops["elementwise_flops_per_image"],
        "training_flops_per_image": flops["training_flops_per_image"],
        "peak_memory_mib": peak_memory,
        "per_epoch_evaluation": PER_EPOCH_EVALUATION,
        "per_epoch": per_epoch,
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


def reference_throughput(reference_python: str | None, timeout_seconds: float = 900) -> dict:
    """Training images/s of the reference airbench94 network, measured with a torch python.

    Runs ``../shared/anchors/reference_throughput.py`` in a scratch folder (it may write
    there) and reads the number from its last line.

    Args:
        reference_python: The python executable of a virtual environment with torch, or
            None to skip the measurement.
        timeout_seconds: Give up after this long.

    Returns:
        ``{"network", "python", "images_per_second", "note"}``; ``images_per_second`` is
        None when no python was given, and the note says why.
    """
    record = {"network": REFERENCE_NETWORK, "python": reference_python,
              "images_per_second": None}
    if reference_python is None:
        record["note"] = "not measured: no --reference-python given"
        return record
    with tempfile.TemporaryDirectory() as scratch:
        completed = subprocess.run([reference_python, str(REFERENCE_SCRIPT)], cwd=scratch,
                                   capture_output=True, text=True, timeout=timeout_seconds)
    found = re.search(r"([0-9.]+) img/s", completed.stdout)
    if completed.returncode != 0 or not found:
        raise SystemExit(f"the reference throughput script failed (exit "
                         f"{completed.returncode}):\n{completed.stderr[-3000:]}")
    record["images_per_second"] = float(found.group(1))
    record["note"] = completed.stdout.strip().splitlines()[-1]
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


def _find(results: dict, recipe: str, epochs: int | None = None) -> dict | None:
    """The first record of ``recipe`` (with ``epochs`` epochs when given), or None."""
    return next((record for record in results["recipes"] if record["recipe"] == recipe
                 and (epochs is None or record["epochs"] == epochs)), None)


def check_targets(results: dict) -> list[dict]:
    """The issue's targets, each against figures measured in this same run.

    Args:
        results: The results so far (entries not run are reported as not measured).

    Returns:
        One dict per target: ``target``, ``value``, ``required``, ``met`` (None when the
        entries it needs were not run).
    """
    checks = []

    def add(target, value, required, met):
        checks.append({"target": target, "value": value, "required": required,
                       "met": None if value is None else bool(met)})

    airbench = _find(results, "airbench", 8)
    short = _find(results, "airbench_small")
    seed = _find(results, "seed")
    if airbench:
        accuracy = airbench["final_test_accuracy"]
        add("airbench (8 epochs) test accuracy with its TTA", accuracy, ">= 0.9034",
            accuracy >= 0.9034)
        curve = [row["test_accuracy"] for row in airbench["per_epoch"]]
        drops = [curve[index - 1] - curve[index] for index in range(2, len(curve))]
        add("airbench: largest drop from one epoch to the next, from epoch 3 on",
            max(drops, default=0.0), "<= 0.03", max(drops, default=0.0) <= 0.03)
        reference = results.get("reference_network", {}).get("images_per_second")
        ours = airbench["train_images_per_second"]
        add("airbench training images/s against the reference network's (ratio)",
            None if reference is None else ours / reference, ">= 1.0",
            reference is not None and ours >= reference)
        add(f"airbench achieved fraction of the {airbench.get('peak_precision')} matmul peak",
            airbench.get("fraction_of_peak"), ">= 0.75",
            (airbench.get("fraction_of_peak") or 0) >= 0.75)
    two = _find(results, "airbench", 2)
    if two:
        add("airbench:2 test accuracy with its TTA", two["final_test_accuracy"], ">= 0.8345",
            two["final_test_accuracy"] >= 0.8345)
    if seed and short:
        seed_epoch = seed.get("train_seconds_mean", seed["train_seconds"]) / seed["epochs"]
        short_to = short.get("seconds_to_mean", short["seconds_to"])
        seed_to = seed.get("seconds_to_mean", seed["seconds_to"])
        value = short_to["0.80"]
        add("short budget: seconds to 0.80 against 4 seed epoch-times (ratio)",
            None if value is None else value / (4 * seed_epoch), "<= 1.0",
            value is not None and value <= 4 * seed_epoch)
        value = short_to["0.68"]
        add("short budget: seconds to 0.68 against the seed's own (ratio)",
            None if value is None or seed_to["0.68"] is None else value / seed_to["0.68"],
            "<= 0.2", value is not None and seed_to["0.68"] is not None
            and value <= seed_to["0.68"] / 5)
    if seed:
        value = seed.get("final_test_accuracy_mean", seed["final_test_accuracy"])
        add(f"seed ({seed['epochs']} epochs) test accuracy", value, ">= 0.67", value >= 0.67)
    regularized = _find(results, "seed_regularized")
    if regularized:
        value = regularized["final_test_accuracy"]
        add(f"seed_regularized ({regularized['epochs']} epochs) test accuracy", value,
            ">= 0.78", value >= 0.78)
    return checks


REFERENCE_TRAINING_SCRIPT = REPOSITORY_ROOT.parent / "shared" / "anchors" / "airbench94_muon_cpu.py"


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
    import os

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipes", nargs="+", default=list(DEFAULT_RECIPES),
                        metavar="RECIPE[:EPOCHS][@SEEDS]")
    parser.add_argument("--data-source", default=DEFAULT_DATA_SOURCE)
    parser.add_argument("--output", type=Path,
                        default=REPOSITORY_ROOT / "benchmarks" / "results" / "cpu-2core.json")
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

    if arguments.one:
        name, _, epochs = arguments.one.partition(":")
        record = benchmark_one(name, int(epochs) if epochs else None, arguments.data_source,
                               seed=arguments.seed)
        print("RESULT " + json.dumps(record), flush=True)
        return

    from cifar_cnn.recipes import RECIPES

    try:
        entries = [(entry, *parse_entry(entry, RECIPES)) for entry in arguments.recipes]
    except ValueError as error:
        parser.error(str(error))
    if arguments.reference_epochs and not arguments.reference_python:
        parser.error("--reference-epochs needs --reference-python")
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
                       "--data-source", arguments.data_source]
            completed = subprocess.run(command, capture_output=True, text=True)
            lines = completed.stdout.splitlines()
            print("\n".join(line for line in lines if not line.startswith("RESULT ")),
                  flush=True)
            results_lines = [line for line in lines if line.startswith("RESULT ")]
            if completed.returncode != 0 or not results_lines:
                print(completed.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"recipe {entry} failed (exit {completed.returncode})")
            records.append(add_efficiency(json.loads(results_lines[-1][len("RESULT "):]),
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
