"""The steps of one run, shared by the notebook, the command line and the benchmarks.

The notebook calls these one cell at a time; :func:`run_experiment` chains them for
scripts. Each step takes the validated :class:`~cifar_cnn.config.RunConfig`.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cifar_cnn import data as data_module
from cifar_cnn.config import RunConfig
from cifar_cnn.recipes import get_recipe


@dataclass
class PreparedData:
    """The arrays of one run, after subsetting and the validation split.

    Attributes:
        train: ``(images, labels)`` used for training.
        validation: ``(images, labels)`` held out from training, or None.
        test: ``(images, labels)`` of the test set (possibly a quick-mode subset).
        class_names: Name of each label.
        source: Description of where the data came from.
        load_seconds: Time spent loading (from the cache when it is warm).
    """

    train: tuple[np.ndarray, np.ndarray]
    validation: tuple[np.ndarray, np.ndarray] | None
    test: tuple[np.ndarray, np.ndarray]
    class_names: tuple[str, ...]
    source: str
    load_seconds: float

    @property
    def validation_label(self) -> str:
        """What the per-epoch validation curve measures: "validation" or (as the seed) "test"."""
        return "validation" if self.validation is not None else "test"

    @property
    def monitored(self) -> tuple[np.ndarray, np.ndarray]:
        """The data evaluated after every epoch: the validation split, else the test set."""
        return self.validation if self.validation is not None else self.test


def prepare_data(config: RunConfig) -> PreparedData:
    """Load CIFAR-10 from the configured source, subset it if asked, and split off validation.

    Args:
        config: The run configuration.

    Returns:
        A :class:`PreparedData`.
    """
    started = time.perf_counter()
    resolved = data_module.resolve_source(config.data_source)
    (x_train, y_train), (x_test, y_test) = data_module.load_cifar10(config.data_source)
    load_seconds = time.perf_counter() - started
    x_train, y_train = data_module.subsample(x_train, y_train, config.max_train_examples,
                                             config.seed)
    x_test, y_test = data_module.subsample(x_test, y_test, config.max_test_examples, config.seed)
    train, validation = data_module.train_validation_split(x_train, y_train,
                                                           config.validation_split, config.seed)
    return PreparedData(train=train, validation=validation, test=(x_test, y_test),
                        class_names=data_module.CLASS_NAMES, source=resolved.description,
                        load_seconds=load_seconds)


def steps_per_epoch(config: RunConfig, prepared: PreparedData) -> int:
    """Optimizer steps in one epoch (the last partial batch counts)."""
    return -(-len(prepared.train[1]) // config.batch_size)


def build_model(config: RunConfig, prepared: PreparedData):
    """Build and compile the recipe's model, seeded, inside the configured strategy's scope.

    The strategy (``config.strategy``, see ``cifar_cnn.distribute``) is created first,
    because ``MultiWorkerMirroredStrategy`` must exist before TensorFlow's first operation.
    Every variable (preprocessing statistics, weights, optimizer) is then created in its
    scope, so it is mirrored over all replicas; the model remembers the strategy and
    :func:`train_model` trains with it.

    Args:
        config: The run configuration.
        prepared: The run's data (standardisation statistics come from its training split).

    Returns:
        A compiled ``keras.Model``.
    """
    from cifar_cnn import distribute, models, precision, train

    strategy = distribute.make_strategy(config.strategy)
    recipe = get_recipe(config.recipe)
    precision.apply_precision(config.mixed_precision)
    train.set_seeds(config.seed)
    with strategy.scope():
        preprocessing = data_module.preprocessing_layer(config.preprocessing, prepared.train[0])
        model = models.build_model(recipe.model, preprocessing=preprocessing,
                                   train_images=prepared.train[0])
        return train.compile_model(model, recipe, config.learning_rate, config.epochs,
                                   steps_per_epoch(config, prepared),
                                   jit_compile="auto" if config.xla is None else config.xla)


def make_datasets(config: RunConfig, prepared: PreparedData):
    """The training and per-epoch monitoring pipelines.

    Args:
        config: The run configuration.
        prepared: The run's data.

    Returns:
        ``(train_dataset, monitor_dataset)``.
    """
    from cifar_cnn.augment import make_augmenter

    augmenter = make_augmenter(get_recipe(config.recipe).augmentations)
    train_dataset = data_module.make_dataset(*prepared.train, config.batch_size, shuffle=True,
                                             seed=config.seed, augment=augmenter)
    monitor_dataset = data_module.make_dataset(*prepared.monitored, batch_size=500)
    return train_dataset, monitor_dataset


def train_model(model, config: RunConfig, prepared: PreparedData, run_folder,
                print_epochs: bool = True, extra_callbacks=()):
    """Fit the model under its strategy, recording into (and resuming from) the run folder.

    ``model.fit`` (``train.fit``) trains under every strategy but multi-worker, which has
    its own loop (``distribute.fit_multi_worker``, where the reason is given).

    Args:
        model: The compiled model from :func:`build_model`.
        config: The run configuration.
        prepared: The run's data.
        run_folder: A ``cifar_cnn.runs.RunFolder``.
        print_epochs: Print one line per epoch.
        extra_callbacks: More Keras callbacks.

    Returns:
        A ``cifar_cnn.train.TrainingResult``.
    """
    from cifar_cnn import distribute, train

    train_dataset, monitor_dataset = make_datasets(config, prepared)
    callbacks = list(extra_callbacks)
    if config.tensorboard:
        from cifar_cnn.tensorboard_logging import tensorboard_callback

        callbacks.append(tensorboard_callback(run_folder.path))
    options = dict(validation_dataset=monitor_dataset, extra_callbacks=callbacks,
                   monitor_best=prepared.validation is not None, print_epochs=print_epochs)
    strategy = model.distribute_strategy
    if distribute.is_multi_worker(strategy):
        return distribute.fit_multi_worker(model, train_dataset, config.epochs, run_folder.path,
                                           resume_directory=_chief_run_directory(config,
                                                                                 run_folder),
                                           **options)
    # In the scope, optimizer slots that a resume builds before fit are mirrored like the rest.
    with strategy.scope():
        return train.fit(model, train_dataset, config.epochs, run_folder.path, **options)


def _chief_run_directory(config: RunConfig, run_folder) -> Path:
    """The run folder that the chief writes and every worker resumes from.

    On a non-chief worker ``run_folder`` is its temporary folder; the chief's is the
    configured one, known by name only when ``run_name`` is given (without it, the run
    is new and nothing can be resumed).
    """
    if config.run_name is None:
        return run_folder.path
    return Path(config.output_dir).expanduser() / config.run_name


def evaluate_model(model, config: RunConfig, prepared: PreparedData):
    """Evaluate on the test set, with flip test-time augmentation when ``config.tta``.

    Args:
        model: The trained model.
        config: The run configuration.
        prepared: The run's data.

    Returns:
        A ``cifar_cnn.evaluate.Evaluation``.
    """
    from cifar_cnn import evaluate

    return evaluate.evaluate_model(model, *prepared.test, flip_augmentation=config.tta)


def final_metrics(config: RunConfig, prepared: PreparedData, training, evaluation) -> dict:
    """The run's ``metrics.json``: results, timings and where the data came from.

    Args:
        config: The run configuration.
        prepared: The run's data.
        training: The ``TrainingResult``.
        evaluation: The test ``Evaluation``.

    Returns:
        A JSON-ready dictionary.
    """
    monitored = training.series("val_accuracy")
    epoch_seconds = training.series("seconds")
    metrics = evaluation.summary(prepared.class_names)
    metrics.update({
        "recipe": config.recipe,
        "epochs": len(training.history),
        "train_examples": int(len(prepared.train[1])),
        "test_examples": int(len(prepared.test[1])),
        "final_train_accuracy": training.history[-1]["accuracy"] if training.history else None,
        "monitored_on": prepared.validation_label,
        "best_monitored_accuracy": max(monitored) if monitored else None,
        "best_epoch": int(np.argmax(monitored)) + 1 if monitored else None,
        "train_seconds": float(sum(epoch_seconds)),
        "seconds_per_epoch": epoch_seconds,
        "mean_seconds_per_epoch": float(np.mean(epoch_seconds)) if epoch_seconds else None,
        "train_images_per_second": (len(prepared.train[1]) * len(epoch_seconds)
                                    / sum(epoch_seconds)) if epoch_seconds else None,
        "precision_policy": _global_policy_name(),
        "test_time_augmentation": "flip" if config.tta else None,
        "resumed_from_epoch": training.resumed_from_epoch,
        "data_source": prepared.source,
        "data_load_seconds": prepared.load_seconds,
    })
    return metrics


def _global_policy_name() -> str:
    import keras

    return keras.mixed_precision.global_policy().name


def run_experiment(config: RunConfig, print_epochs: bool = True, extra_callbacks=()):
    """Run every step without figures: data, model, training, evaluation, run folder.

    Args:
        config: The run configuration.
        print_epochs: Print one line per epoch.
        extra_callbacks: More Keras callbacks for training.

    Returns:
        ``(run_folder, metrics)``; on a non-chief multi-worker process the run folder was
        temporary and is gone (the chief's holds the run).
    """
    prepared = prepare_data(config)
    run_folder, scratch = _open_run_folder(config)
    try:
        model = build_model(config, prepared)
        training = train_model(model, config, prepared, run_folder, print_epochs=print_epochs,
                               extra_callbacks=extra_callbacks)
        evaluation = evaluate_model(model, config, prepared)
        metrics = final_metrics(config, prepared, training, evaluation)
        run_folder.save_model(model)
        run_folder.finish(metrics)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return run_folder, metrics


def _open_run_folder(config: RunConfig):
    """Start the run folder this process writes: the real one, or a non-chief's scratch one.

    Under ``multiworker`` every worker runs every step, saving included (TensorFlow's
    rule: a step some workers skip can hang the others), but only the chief's files may
    land in the real run folder; the other workers write theirs into a temporary folder
    that :func:`run_experiment` deletes. Every other strategy runs in one process, which
    is its own chief.

    Returns:
        ``(run_folder, scratch)``: ``scratch`` is the temporary folder to delete, or None.
    """
    from cifar_cnn import distribute, runs

    if config.strategy == "multiworker" and not distribute.is_chief():
        scratch = tempfile.mkdtemp(prefix="cifar_cnn-worker-")
        return runs.start_run(dataclasses.replace(config, output_dir=scratch)), scratch
    return runs.start_run(config), None
