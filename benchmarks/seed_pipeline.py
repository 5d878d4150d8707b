"""Seed recipe speed: our tf.data pipeline and model against plain model.fit on NumPy arrays.

The baseline is the seed notebook's own code path: pixels divided by 255 in NumPy, a
Sequential model of the same layers, ``model.fit(x, y, batch_size=32)``. The library path
is what the notebook runs: ``cifar_cnn.data.make_dataset`` (shuffle, batch, cast, prefetch)
and ``models.seed_cnn`` with its preprocessing layer inside. Both train the same number of
epochs without validation, alternating, and the first epoch of each run (graph tracing) is
left out of the comparison.

Usage:
    python benchmarks/seed_pipeline.py [--epochs 3] [--repeats 2] [--data-source PATH]
Writes benchmarks/results/seed-pipeline-<machine>.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import keras
import numpy as np

from common import DEFAULT_DATA_SOURCE, REPOSITORY_ROOT, machine_record

from cifar_cnn import data, models, train
from cifar_cnn.recipes import get_recipe


class EpochTimer(keras.callbacks.Callback):
    """Wall-clock seconds of every epoch."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._started)


def plain_numpy_fit(x_train, y_train, epochs: int, seed: int) -> list[float]:
    """The seed notebook's code: NumPy scaling, Sequential model, fit on arrays."""
    keras.utils.set_random_seed(seed)
    scaled = x_train / 255.0
    model = keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Conv2D(32, (3, 3), padding="same", activation="relu"),
        keras.layers.MaxPooling2D((2, 2)),
        keras.layers.Conv2D(64, (3, 3), padding="same", activation="relu"),
        keras.layers.MaxPooling2D((2, 2)),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dropout(0.4),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dropout(0.4),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    timer = EpochTimer()
    model.fit(scaled, y_train, batch_size=32, epochs=epochs, verbose=0, callbacks=[timer])
    return timer.seconds


def library_fit(x_train, y_train, epochs: int, seed: int, run_directory: Path) -> list[float]:
    """The library's seed recipe: tf.data pipeline, seed_cnn, train.fit with its callbacks."""
    recipe = get_recipe("seed")
    train.set_seeds(seed)
    model = models.build_model("seed_cnn")
    steps = -(-len(y_train) // recipe.batch_size)
    train.compile_model(model, recipe, recipe.learning_rate, epochs, steps)
    dataset = data.make_dataset(x_train, y_train, recipe.batch_size, shuffle=True, seed=seed)
    result = train.fit(model, dataset, epochs, run_directory, print_epochs=False)
    return result.series("seconds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--data-source", default=DEFAULT_DATA_SOURCE)
    parser.add_argument("--output", type=Path,
                        default=REPOSITORY_ROOT / "benchmarks" / "results" /
                        "seed-pipeline-cpu-2core.json")
    arguments = parser.parse_args()
    if arguments.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch of each run is left out")

    (x_train, y_train), _ = data.load_cifar10(arguments.data_source)
    import tempfile

    plain, library = [], []
    for repeat in range(arguments.repeats):
        plain.append(plain_numpy_fit(x_train, y_train, arguments.epochs, seed=repeat))
        with tempfile.TemporaryDirectory() as run_directory:
            library.append(library_fit(x_train, y_train, arguments.epochs, repeat,
                                       Path(run_directory)))
        print(f"repeat {repeat + 1}: plain {plain[-1]}, library {library[-1]}", flush=True)

    steady_plain = [seconds for run in plain for seconds in run[1:]]
    steady_library = [seconds for run in library for seconds in run[1:]]
    result = {
        "benchmark": "seed recipe per-epoch training time, library pipeline vs plain NumPy fit",
        "command": "python benchmarks/seed_pipeline.py --epochs "
                   f"{arguments.epochs} --repeats {arguments.repeats}",
        "data_source": arguments.data_source,
        "train_images": int(len(y_train)),
        "epochs_per_run": arguments.epochs,
        "plain_numpy_fit_epoch_seconds": plain,
        "library_pipeline_epoch_seconds": library,
        "plain_median_seconds": statistics.median(steady_plain),
        "library_median_seconds": statistics.median(steady_library),
        "ratio_library_to_plain": statistics.median(steady_library)
        / statistics.median(steady_plain),
        "machine": machine_record(),
    }
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"plain {result['plain_median_seconds']:.2f} s/epoch, library "
          f"{result['library_median_seconds']:.2f} s/epoch, ratio "
          f"{result['ratio_library_to_plain']:.3f} -> {arguments.output}")


if __name__ == "__main__":
    np.set_printoptions(precision=2)
    main()
