"""Recipe benchmark: per-epoch time and test accuracy, time to accuracy targets, throughput.

Each recipe trains in its own process (so peak memory is its own) on the shared CIFAR-10
copy with its default parameters. After every epoch the whole test set is evaluated, with
the recipe's test-time augmentation when it has one (and without, recorded beside it);
evaluation time is not counted as training time. Training seconds are the wall-clock
seconds of the training epochs, first-epoch graph tracing included.

Usage:
    python benchmarks/recipes.py [--recipes seed seed_regularized airbench_small airbench:4]
                                 [--data-source PATH]
A recipe written NAME:EPOCHS runs with that many epochs instead of its default (its schedule
is then fitted to that budget).
Writes benchmarks/results/cpu-2core.json (machine, recipes, per-epoch curves) and a PNG plot.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import DEFAULT_DATA_SOURCE, REPOSITORY_ROOT, machine_record, peak_memory_mib

THRESHOLDS = ("0.68", "0.70", "0.80", "0.90", "0.94")
DEFAULT_RECIPES = ("seed", "seed_regularized", "airbench_small", "airbench")


def pipeline_images_per_second(dataset, limit_images: int = 20_000) -> float:
    """How fast the input pipeline alone delivers training batches (augmentation included)."""
    started, images = time.perf_counter(), 0
    for batch_images, _ in dataset:
        images += int(batch_images.shape[0])
        if images >= limit_images:
            break
    return images / (time.perf_counter() - started)


def benchmark_one(recipe: str, epochs: int | None, data_source: str) -> dict:
    """Train one recipe with per-epoch test evaluation; return its benchmark record."""
    import keras
    import numpy as np

    from cifar_cnn import evaluate, experiment, train
    from cifar_cnn.config import RunConfig

    with tempfile.TemporaryDirectory() as output_dir:
        config = RunConfig.from_parameters({"recipe": recipe, "epochs": epochs,
                                            "data_source": data_source,
                                            "output_dir": output_dir, "run_name": recipe})
        prepared = experiment.prepare_data(config)
        x_test, y_test = prepared.test
        train_dataset, _ = experiment.make_datasets(config, prepared)
        pipeline_speed = pipeline_images_per_second(train_dataset)
        model = experiment.build_model(config, prepared)
        per_epoch = []

        class TestEvaluation(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                started = time.perf_counter()
                plain = evaluate.predict_probabilities(self.model, x_test)
                row = {"epoch": epoch + 1,
                       "test_accuracy_no_tta": float((plain.argmax(1) == y_test).mean())}
                if config.tta:
                    mirrored = evaluate.predict_probabilities(self.model, x_test[:, :, ::-1])
                    row["test_accuracy"] = float(((plain + mirrored).argmax(1) == y_test).mean())
                else:
                    row["test_accuracy"] = row["test_accuracy_no_tta"]
                row["evaluation_seconds"] = time.perf_counter() - started
                per_epoch.append(row)
                print(f"  {recipe} epoch {epoch + 1}: test accuracy {row['test_accuracy']:.4f}",
                      flush=True)

        started = time.perf_counter()
        training = train.fit(model, train_dataset, config.epochs, Path(output_dir) / recipe,
                             extra_callbacks=[TestEvaluation()])
        wall_seconds = time.perf_counter() - started

    cumulative = np.cumsum(training.series("train_seconds"))
    for row, seconds, history_row in zip(per_epoch, cumulative, training.history):
        row["train_seconds"] = float(seconds)
        row["train_accuracy"] = history_row["accuracy"]
    seconds_to = {}
    for threshold in THRESHOLDS:
        reached = [row["train_seconds"] for row in per_epoch
                   if row["test_accuracy"] >= float(threshold)]
        seconds_to[threshold] = reached[0] if reached else None
    train_seconds = float(cumulative[-1])
    return {
        "recipe": recipe,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "precision_policy": keras.mixed_precision.global_policy().name,
        "test_time_augmentation": "flip" if config.tta else None,
        "train_seconds": train_seconds,
        "wall_seconds_including_evaluation": wall_seconds,
        "final_test_accuracy": per_epoch[-1]["test_accuracy"],
        "final_test_accuracy_no_tta": per_epoch[-1]["test_accuracy_no_tta"],
        "best_test_accuracy": max(row["test_accuracy"] for row in per_epoch),
        "final_train_accuracy": per_epoch[-1]["train_accuracy"],
        "seconds_to": seconds_to,
        "train_images_per_second": len(prepared.train[1]) * config.epochs / train_seconds,
        "pipeline_images_per_second": pipeline_speed,
        "peak_memory_mib": peak_memory_mib(),
        "per_epoch": per_epoch,
    }


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipes", nargs="+", default=list(DEFAULT_RECIPES),
                        metavar="RECIPE[:EPOCHS]")
    parser.add_argument("--data-source", default=DEFAULT_DATA_SOURCE)
    parser.add_argument("--output", type=Path,
                        default=REPOSITORY_ROOT / "benchmarks" / "results" / "cpu-2core.json")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # Internal: run one recipe, print JSON.
    arguments = parser.parse_args()

    if arguments.one:
        name, _, epochs = arguments.one.partition(":")
        record = benchmark_one(name, int(epochs) if epochs else None, arguments.data_source)
        print("RESULT " + json.dumps(record), flush=True)
        return

    from cifar_cnn.recipes import RECIPES

    unknown = [entry for entry in arguments.recipes if entry.partition(":")[0] not in RECIPES
               or not (entry.partition(":")[2] or "1").isdigit()]
    if unknown:
        parser.error(f"bad recipe entries {', '.join(unknown)}; valid recipes: "
                     f"{', '.join(RECIPES)}, optionally followed by :EPOCHS")
    results = {"command": " ".join(["python", "benchmarks/recipes.py", *sys.argv[1:]]),
               "data_source": arguments.data_source, "machine": machine_record(), "recipes": []}
    for recipe in arguments.recipes:
        print(f"== {recipe}", flush=True)
        command = [sys.executable, __file__, "--one", recipe, "--data-source",
                   arguments.data_source]
        completed = subprocess.run(command, capture_output=True, text=True)
        lines = completed.stdout.splitlines()
        print("\n".join(line for line in lines if not line.startswith("RESULT ")), flush=True)
        results_lines = [line for line in lines if line.startswith("RESULT ")]
        if completed.returncode != 0 or not results_lines:
            print(completed.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"recipe {recipe} failed (exit {completed.returncode})")
        results["recipes"].append(json.loads(results_lines[-1][len("RESULT "):]))
        arguments.output.parent.mkdir(parents=True, exist_ok=True)
        arguments.output.write_text(json.dumps(results, indent=2) + "\n")  # After every recipe.
    plot_results(results, arguments.output.with_suffix(".png"))
    for record in results["recipes"]:
        print(f"{record['recipe']}: {record['final_test_accuracy']:.4f} in "
              f"{record['train_seconds']:.0f} s, seconds_to {record['seconds_to']}")


if __name__ == "__main__":
    main()
