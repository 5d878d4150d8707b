"""Seed recipe speed: our tf.data pipeline and model against plain model.fit on NumPy arrays.

The baseline is the seed notebook's own code path: pixels divided by 255 in NumPy, a
Sequential model of the same layers, ``model.fit(x, y, batch_size=32)``. The library path
is what the notebook runs, through the same steps of ``cifar_cnn.experiment``
(``open_run``, ``prepare_data``, ``build_model``, ``train_model``): the ``tf.data``
pipeline (shuffle, batch, cast, prefetch), ``models.seed_cnn`` with its preprocessing layer
inside, the strategy scope and the run folder's per-epoch callbacks. Both train the same
number of epochs, alternating. The baseline fits without validation; the library's run
evaluates the test set after every epoch (as the seed notebook shows its curve), and that
pass is left out of its epoch time (the history's ``train_seconds``), so both sides time
training alone. The first epoch of each run (graph tracing) is left out of the comparison.

Usage:
    python benchmarks/seed_pipeline.py [--epochs 3] [--repeats 2] [--data-source PATH]
Writes benchmarks/results/seed-pipeline-<machine>.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

from common import DEFAULT_DATA_SOURCE, REPOSITORY_ROOT, machine_record

from cifar_cnn import data, experiment
from cifar_cnn.config import RunConfig


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


def library_fit(data_source: str, epochs: int, seed: int, output_dir: str) -> list[float]:
    """The library's seed recipe, through the run steps the notebook and the command line take.

    Only the steps up to training run (no figures, final evaluation or model saving):
    their time is not part of the comparison.

    Args:
        data_source: The CIFAR-10 source (the library loads it itself, from the data cache).
        epochs: Epochs to train.
        seed: The run's seed (weights, data order).
        output_dir: A scratch folder that receives the run folder.

    Returns:
        Seconds of each training epoch, the per-epoch test evaluation left out.
    """
    # One device, like the baseline: "auto" would mirror over two or more GPUs.
    plan = experiment.resolve_run(RunConfig.from_parameters({"recipe": "seed", "epochs": epochs, "seed": seed,
                                        "data_source": data_source, "output_dir": output_dir,
                                        "run_name": f"seed-pipeline-{seed}",
                                        "strategy": "default"}))
    run = experiment.open_run(plan)
    try:
        prepared = experiment.prepare_data(plan)
        model = experiment.build_model(plan, run, prepared)
        training = experiment.train_model(plan, run, prepared, model, print_epochs=False)
    finally:
        experiment.close_run(plan, run)
    return training.series("train_seconds")


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

    # The baseline's own load; the library path loads the same source itself (cached).
    (x_train, y_train), _ = data.load_cifar10(arguments.data_source)

    plain, library = [], []
    for repeat in range(arguments.repeats):
        plain.append(plain_numpy_fit(x_train, y_train, arguments.epochs, seed=repeat))
        with tempfile.TemporaryDirectory() as output_dir:
            library.append(library_fit(arguments.data_source, arguments.epochs, repeat,
                                       output_dir))
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
        "library_path": "cifar_cnn.experiment open_run, prepare_data, build_model, train_model; "
                        "epoch seconds are the history's train_seconds, which leave out the "
                        "run's per-epoch test evaluation",
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
