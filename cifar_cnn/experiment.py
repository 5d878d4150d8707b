"""The steps of one run: the one chain that every way of starting a run goes through.

The notebook calls these steps one cell at a time; :func:`run_experiment` chains the very
same steps for ``cifar-cnn train`` and the benchmarks, and a sweep executes the notebook.
So every path writes the same run folder, figures included::

    run = open_run(config)                       # the run folder (resume, overwrite, workers)
    data = prepare_data(config)                  # arrays, subsets, validation split
    data_figures(run, data)                      # sample grid, class balance
    model = build_model(config, data, run)       # strategy, precision, seeds, compile
    training = train_model(model, config, data, run)
    training_figures(run, data, training)        # learning curves
    evaluation = evaluate_model(model, config, data)
    evaluation_figures(run, data, evaluation)    # per-class accuracy, confusion, mistakes
    metrics = finish_run(run, model, config, data, training, evaluation)

Each step takes the validated :class:`~cifar_cnn.config.RunConfig`. TensorFlow's own
start-up and device messages go to the run folder's ``run.log`` (``cifar_cnn.native_logs``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from cifar_cnn import data as data_module
from cifar_cnn import runs
from cifar_cnn.config import RunConfig
from cifar_cnn.native_logs import native_stderr_to

# Figures each step saves, in the order the notebook shows them. A test holds every path
# (notebook, command line, sweep) to this same set.
DATA_FIGURES = ("sample_grid", "class_balance")
TRAINING_FIGURES = ("training_curves",)
EVALUATION_FIGURES = ("per_class_accuracy", "confusion_matrix", "misclassified")
MISCLASSIFIED_SHOWN = 18


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

    def describe(self) -> str:
        """Shapes and source, in two lines for people to read."""
        def split(name, arrays):
            if arrays is None:
                return f"{name} none"
            # Stratified subsets round per class: say how.
            return f"{name} {len(arrays[1])} ({data_module.class_count_range(arrays[1])})"

        return (f"{split('train', self.train)}, {split('validation', self.validation)}, "
                f"{split('test', self.test)}\nsource: {self.source}")


def describe_config(config: RunConfig) -> str:
    """The run's parameters for people to read, with what ``None`` stands for resolved.

    Resolving the data source also checks, at once, that a local source exists.

    Args:
        config: The run configuration.

    Returns:
        One ``name  value`` line per parameter.
    """
    return config.describe(resolved={
        "data_source": data_module.resolve_source(config.data_source).description,
        "output_dir": str(runs.runs_folder(config.output_dir)),
    })


def open_run(config: RunConfig) -> runs.RunFolder:
    """Open the run folder this process writes, before any long work.

    Checks what can fail cheaply first (TensorBoard installed, the folder free for this
    run: see ``runs.existing_run_state``), then records the versions, machine and git
    commit in ``run.json``. Under ``multiworker`` every worker runs every
    step, saving included (TensorFlow's rule: a step some workers skip can hang the
    others), but only the chief's files land in the real run folder; the others write a
    scratch folder that :func:`close_run` deletes.

    Args:
        config: The run configuration.

    Returns:
        A ``runs.RunFolder`` (``resumed`` tells whether an interrupted run continues).
    """
    from cifar_cnn import distribute

    if config.tensorboard:
        from cifar_cnn.tensorboard_logging import require_tensorboard

        require_tensorboard()  # Fail now, not after the first epoch.
    chief = config.strategy != "multiworker" or distribute.is_chief()
    run = runs.start_run(config, scratch=not chief)
    # Importing TensorFlow to record its version and devices prints its start-up messages:
    # they go to run.log from here on, not to the notebook or the terminal.
    with native_stderr_to(run.log_path):
        runs.record_environment(run)
    return run


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


def _save_figures(run: runs.RunFolder, figures: dict) -> dict:
    for name, figure in figures.items():
        run.save_figure(figure, name)
    return figures


def data_figures(run: runs.RunFolder, data: PreparedData) -> dict:
    """Draw and save the data's figures: a sample of training images, the class balance.

    Args:
        run: The run folder.
        data: The run's data.

    Returns:
        ``{name: matplotlib Figure}`` with the names of ``DATA_FIGURES``.
    """
    run.check_open()
    from cifar_cnn import plots

    return _save_figures(run, {
        "sample_grid": plots.sample_grid(*data.train, data.class_names),
        "class_balance": plots.class_balance({"train": data.train[1], "test": data.test[1]},
                                             data.class_names),
    })


def _drops_last_batch(config: RunConfig, data: PreparedData) -> bool:
    """Whether training drops each epoch's partial batch: if the recipe asks and one whole fits."""
    recipe = config.training_recipe()
    return recipe.drop_remainder and len(data.train[1]) >= recipe.batch_size


def steps_per_epoch(config: RunConfig, data: PreparedData) -> int:
    """Optimizer steps in one epoch (a last partial batch counts unless the recipe drops it)."""
    count, batch_size = len(data.train[1]), config.training_recipe().batch_size
    return count // batch_size if _drops_last_batch(config, data) else -(-count // batch_size)


def build_model(config: RunConfig, data: PreparedData, run: runs.RunFolder | None = None):
    """Build and compile the recipe's model, seeded, inside the configured strategy's scope.

    The strategy (``config.strategy``, see ``cifar_cnn.distribute``) is created first,
    because ``MultiWorkerMirroredStrategy`` must exist before TensorFlow's first operation.
    Every variable (preprocessing statistics, weights, optimizer) is then created in its
    scope, so it is mirrored over all replicas; the model remembers the strategy and
    :func:`train_model` trains with it. The recipe comes from ``config.training_recipe()``.

    Args:
        config: The run configuration.
        data: The run's data (standardisation statistics come from its training split).
        run: The run folder, whose ``run.log`` receives TensorFlow's device messages (None:
            they are printed as usual).

    Returns:
        A compiled ``keras.Model``.
    """
    with native_stderr_to(run.log_path if run else None):
        from cifar_cnn import distribute, models, precision, train

        strategy = distribute.make_strategy(config.strategy)
        recipe = config.training_recipe()
        precision.apply_precision(recipe.precision)
        train.set_seeds(config.seed)
        with strategy.scope():
            preprocessing = data_module.preprocessing_layer(recipe.preprocessing, data.train[0])
            model = models.build_model(recipe.model, preprocessing=preprocessing,
                                       train_images=data.train[0])
            return train.compile_model(model, recipe, steps_per_epoch(config, data),
                                       jit_compile="auto" if config.xla is None else config.xla)


def make_datasets(config: RunConfig, data: PreparedData):
    """The training and per-epoch monitoring pipelines, and the callbacks the first needs.

    Args:
        config: The run configuration.
        data: The run's data.

    Returns:
        ``(train_dataset, monitor_dataset, callbacks)``; ``callbacks`` (a list) must be
        given to training (the alternating flip learns the epoch from one).
    """
    from cifar_cnn.augment import make_augmenter

    recipe = config.training_recipe()
    augmenter = make_augmenter(recipe.augmentations, seed=config.seed)
    images, labels = data.train
    if augmenter is not None:
        images = augmenter.prepare(images)
    train_dataset = data_module.make_dataset(images, labels, recipe.batch_size, shuffle=True,
                                             seed=config.seed, augment=augmenter,
                                             drop_remainder=_drops_last_batch(config, data))
    monitor_dataset = data_module.make_dataset(*data.monitored, batch_size=500)
    callback = augmenter.callback() if augmenter is not None else None
    return train_dataset, monitor_dataset, [callback] if callback else []


def train_model(model, config: RunConfig, data: PreparedData, run: runs.RunFolder,
                print_epochs: bool = True, extra_callbacks=()):
    """Fit the model under its strategy, recording into (and resuming from) the run folder.

    At heart this is ``model.fit(train_dataset, epochs=..., validation_data=...,
    callbacks=[...])`` (``cifar_cnn.train.fit``), with callbacks that write the history
    and the training state after every epoch; multi-worker training has its own loop
    (``distribute.fit_multi_worker``, where the reason is given).

    Args:
        model: The compiled model from :func:`build_model`.
        config: The run configuration.
        data: The run's data.
        run: The run folder.
        print_epochs: Print one line per epoch.
        extra_callbacks: More Keras callbacks.

    Returns:
        A ``cifar_cnn.train.TrainingResult``.
    """
    run.check_open()  # A finished run's files are final: refuse before any work.
    from cifar_cnn import distribute, train

    epochs = config.training_recipe().epochs
    train_dataset, monitor_dataset, callbacks = make_datasets(config, data)
    callbacks += list(extra_callbacks)
    if config.tensorboard:
        from cifar_cnn.tensorboard_logging import tensorboard_callback

        callbacks.append(tensorboard_callback(run.path))
    options = dict(validation_dataset=monitor_dataset, extra_callbacks=callbacks,
                   monitor_best=data.validation is not None, print_epochs=print_epochs)
    strategy = model.distribute_strategy
    with native_stderr_to(run.log_path):
        if distribute.is_multi_worker(strategy):
            # A non-chief writes a scratch folder; it resumes from the chief's, known by
            # name only when run_name is given (without it the run is new).
            chief_folder = runs.run_folder_path(config) if config.run_name else run.path
            training = distribute.fit_multi_worker(model, train_dataset, epochs,
                                                   run.path, resume_directory=chief_folder,
                                                   **options)
        else:
            # In the scope, optimizer slots that a resume builds before fit are mirrored too.
            with strategy.scope():
                training = train.fit(model, train_dataset, epochs, run.path, **options)
    # What "auto" chose, for metrics.json.
    training.strategy = distribute.resolve_strategy_name(config.strategy)
    training.replicas = int(strategy.num_replicas_in_sync)
    return training


def training_figures(run: runs.RunFolder, data: PreparedData, training) -> dict:
    """Draw and save the learning curves.

    Args:
        run: The run folder.
        data: The run's data (names what the validation curve measures).
        training: The ``TrainingResult``.

    Returns:
        ``{name: Figure}`` with the names of ``TRAINING_FIGURES``.
    """
    run.check_open()
    from cifar_cnn import plots

    return _save_figures(run, {
        "training_curves": plots.training_curves(training.history, data.validation_label)})


def evaluate_model(model, config: RunConfig, data: PreparedData):
    """Evaluate on the test set, with the recipe's test-time augmentation when ``config.tta``.

    Args:
        model: The trained model.
        config: The run configuration.
        data: The run's data.

    Returns:
        A ``cifar_cnn.evaluate.Evaluation``.
    """
    from cifar_cnn import evaluate

    recipe = config.training_recipe()
    return evaluate.evaluate_model(model, *data.test,
                                   test_time_augmentation=recipe.test_time_augmentation)


def evaluation_figures(run: runs.RunFolder, data: PreparedData, evaluation) -> dict:
    """Draw and save per-class accuracy, the confusion matrix and misclassified images.

    Args:
        run: The run folder.
        data: The run's data.
        evaluation: The test ``Evaluation``.

    Returns:
        ``{name: Figure}`` with the names of ``EVALUATION_FIGURES``.
    """
    run.check_open()
    from cifar_cnn import plots
    from cifar_cnn.evaluate import misclassified_indices

    wrong = misclassified_indices(evaluation, limit=MISCLASSIFIED_SHOWN)
    return _save_figures(run, {
        "per_class_accuracy": plots.per_class_accuracy_figure(evaluation.per_class_accuracy,
                                                              data.class_names),
        "confusion_matrix": plots.confusion_matrix_figure(evaluation.confusion,
                                                          data.class_names),
        "misclassified": plots.misclassified_gallery(*data.test, evaluation.predictions, wrong,
                                                     data.class_names),
    })


def final_metrics(config: RunConfig, data: PreparedData, training, evaluation) -> dict:
    """The run's ``metrics.json``: results, timings and where the data came from.

    Args:
        config: The run configuration.
        data: The run's data.
        training: The ``TrainingResult``.
        evaluation: The test ``Evaluation``.

    Returns:
        A JSON-ready dictionary.
    """
    import keras

    monitored = training.series("val_accuracy")
    epoch_seconds = training.series("seconds")
    metrics = evaluation.summary(data.class_names)
    metrics.update({
        "recipe": config.recipe,
        "epochs": len(training.history),
        "train_examples": int(len(data.train[1])),
        "test_examples": int(len(data.test[1])),
        "final_train_accuracy": training.history[-1]["accuracy"] if training.history else None,
        "monitored_on": data.validation_label,
        "best_monitored_accuracy": max(monitored) if monitored else None,
        "best_epoch": int(np.argmax(monitored)) + 1 if monitored else None,
        "train_seconds": float(sum(epoch_seconds)),
        "seconds_per_epoch": epoch_seconds,
        "mean_seconds_per_epoch": float(np.mean(epoch_seconds)) if epoch_seconds else None,
        "train_images_per_second": (len(data.train[1]) * len(epoch_seconds)
                                    / sum(epoch_seconds)) if epoch_seconds else None,
        "precision_policy": keras.mixed_precision.global_policy().name,
        "strategy": training.strategy,
        "replicas": training.replicas,
        "test_time_augmentation": config.training_recipe().test_time_augmentation,
        "resumed_from_epoch": training.resumed_from_epoch,
        "data_source": data.source,
        "data_load_seconds": data.load_seconds,
    })
    return metrics


def finish_run(run: runs.RunFolder, model, config: RunConfig, data: PreparedData, training,
               evaluation) -> dict:
    """Save the model, then write ``metrics.json`` last: the run is complete.

    Args:
        run: The run folder.
        model: The trained model.
        config: The run configuration.
        data: The run's data.
        training: The ``TrainingResult``.
        evaluation: The test ``Evaluation``.

    Returns:
        The metrics written.
    """
    run.check_open()
    metrics = final_metrics(config, data, training, evaluation)
    run.save_model(model)
    run.finish(metrics)
    return metrics


def close_run(run: runs.RunFolder) -> None:
    """Release the run folder: a multi-worker non-chief's scratch folder is deleted."""
    run.close()


def run_experiment(config: RunConfig, print_epochs: bool = True, extra_callbacks=()):
    """Run every step, figures included, exactly as the notebook does.

    On an error the run is marked failed in ``run.json`` (its training state stays, so the
    same command resumes) and a completed run it was replacing is put back.

    Args:
        config: The run configuration.
        print_epochs: Print one line per epoch.
        extra_callbacks: More Keras callbacks for training.

    Returns:
        ``(run, metrics)``: the ``runs.RunFolder`` (on a non-chief multi-worker process a
        scratch folder, already deleted) and the metrics written.
    """
    run = open_run(config)
    try:
        data = prepare_data(config)
        data_figures(run, data)
        model = build_model(config, data, run)
        training = train_model(model, config, data, run, print_epochs=print_epochs,
                               extra_callbacks=extra_callbacks)
        training_figures(run, data, training)
        evaluation = evaluate_model(model, config, data)
        evaluation_figures(run, data, evaluation)
        metrics = finish_run(run, model, config, data, training, evaluation)
    except BaseException as error:
        run.fail(error)
        raise
    finally:
        close_run(run)
    return run, metrics
