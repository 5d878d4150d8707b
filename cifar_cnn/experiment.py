"""The steps of one run: the one chain that every way of starting a run goes through.

The notebook calls these steps one cell at a time; :func:`run_experiment` chains the very
same steps for ``cifar-cnn train`` and the benchmarks, and a sweep executes the notebook.
So every path writes the same run folder, figures included::

    plan = resolve_run(config)                   # every choice decided once; the training plan
    run = open_run(plan)                         # the run folder (resume, overwrite, workers)
    data = prepare_data(plan)                    # arrays, subsets, validation split
    data_figures(plan, run, data)                # sample grid, class balance
    model = build_model(plan, run, data)         # strategy, precision, seeds, compile
    training = train_model(plan, run, data, model)
    training_figures(plan, run, data, training)  # learning curves
    evaluation = evaluate_model(plan, data, model)
    evaluation_figures(plan, run, data, evaluation)  # per-class accuracy, confusion, mistakes
    metrics = finish_run(plan, run, data, model, training, evaluation)

Each step takes the :class:`~cifar_cnn.resolved_run.ResolvedRun` first, then what earlier
steps made, always in this order: run folder, data, model, training, evaluation. No step
looks the recipe or the data source up again. TensorFlow's own start-up and device
messages go to the run folder's ``run.log`` (``cifar_cnn.native_logs``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from cifar_cnn import data as data_module
from cifar_cnn import runs
from cifar_cnn.config import RunConfig
from cifar_cnn.native_logs import native_stderr_to
from cifar_cnn.resolved_run import ResolvedRun, resolve_run

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
        test_split_size: Images in the whole test split, before any subset (None: unknown).
    """

    train: tuple[np.ndarray, np.ndarray]
    validation: tuple[np.ndarray, np.ndarray] | None
    test: tuple[np.ndarray, np.ndarray]
    class_names: tuple[str, ...]
    source: str
    load_seconds: float
    test_split_size: int | None = None

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


def open_run(plan: ResolvedRun) -> runs.RunFolder:
    """Open the run folder this process writes, before any long work.

    Checks that the folder is free for this run (see ``run_reuse.existing_run_state``), then
    records the versions, machine and git commit in ``run.json``. Under ``multiworker``
    every worker runs every step, saving included (TensorFlow's rule: a step some workers
    skip can hang the others), but only the chief's files land in the real run folder; the
    others write a scratch folder that :func:`close_run` deletes.

    Args:
        plan: The resolved run.

    Returns:
        A ``runs.RunFolder`` (``resumed`` tells whether an interrupted run continues).
    """
    run = runs.start_run(plan.config, scratch=not plan.chief)
    # Importing TensorFlow to record its version and devices prints its start-up messages:
    # they go to run.log from here on, not to the notebook or the terminal.
    with native_stderr_to(run.log_path):
        runs.record_environment(run)
    return run


def prepare_data(plan: ResolvedRun) -> PreparedData:
    """Load CIFAR-10 from the resolved source, subset it if asked, and split off validation.

    Args:
        plan: The resolved run.

    Returns:
        A :class:`PreparedData`.
    """
    config = plan.config
    started = time.perf_counter()
    (x_train, y_train), (x_test, y_test) = data_module.load_cifar10(plan.source)
    load_seconds = time.perf_counter() - started
    test_split_size = len(y_test)
    x_train, y_train = data_module.subsample(x_train, y_train, config.max_train_examples,
                                             config.seed)
    x_test, y_test = data_module.subsample(x_test, y_test, config.max_test_examples, config.seed)
    train, validation = data_module.train_validation_split(x_train, y_train,
                                                           config.validation_split, config.seed)
    return PreparedData(train=train, validation=validation, test=(x_test, y_test),
                        class_names=data_module.CLASS_NAMES, source=plan.source.description,
                        load_seconds=load_seconds, test_split_size=test_split_size)


def _save_figures(run: runs.RunFolder, figures: dict) -> dict:
    # A multi-worker non-chief's scratch folder is deleted unread, and drawing takes no
    # collective op that the other workers would wait for: its figures are not rendered.
    if not run.scratch:
        for name, figure in figures.items():
            run.save_figure(figure, name)
    return figures


def data_figures(plan: ResolvedRun, run: runs.RunFolder, data: PreparedData) -> dict:
    """Draw and save the data's figures: a sample of training images, the class balance.

    Args:
        plan: The resolved run.
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


def build_model(plan: ResolvedRun, run: runs.RunFolder | None, data: PreparedData):
    """Build and compile the recipe's model, seeded, inside the resolved strategy's scope.

    The strategy (``cifar_cnn.distribute``) is created first, because
    ``MultiWorkerMirroredStrategy`` must exist before TensorFlow's first operation. Every
    variable (preprocessing statistics, weights, optimizer) is then created in its scope, so
    it is mirrored over all replicas; the model remembers the strategy and
    :func:`train_model` trains with it.

    Args:
        plan: The resolved run: recipe, precision, strategy, XLA.
        run: The run folder, whose ``run.log`` receives TensorFlow's device messages (None:
            they are printed as usual).
        data: The run's data (standardisation statistics come from its training split).

    Returns:
        A compiled ``keras.Model``.
    """
    with native_stderr_to(run.log_path if run else None):
        from cifar_cnn import distribute, models, precision, train

        strategy = distribute.make_strategy(plan.strategy)
        precision.apply_precision(plan.precision)
        train.set_seeds(plan.config.seed)
        with strategy.scope():
            recipe = plan.recipe
            preprocessing = data_module.preprocessing_layer(recipe.preprocessing, data.train[0])
            model = models.build_model(recipe.model, preprocessing=preprocessing,
                                       train_images=data.train[0])
            optimizer = train.make_optimizer(recipe, plan.steps_per_epoch(len(data.train[1])))
            return train.compile_model(model, optimizer, train.make_loss(recipe),
                                       jit_compile=plan.jit_compile)


def make_datasets(plan: ResolvedRun, data: PreparedData):
    """The training and per-epoch monitoring pipelines, and the callbacks the first needs.

    Args:
        plan: The resolved run.
        data: The run's data.

    Returns:
        ``(train_dataset, monitor_dataset, callbacks)``; ``callbacks`` (a list) must be
        given to training (the alternating flip learns the epoch from one).
    """
    from cifar_cnn.augment import make_augmenter

    augmenter = make_augmenter(plan.recipe.augmentations, seed=plan.config.seed)
    images, labels = data.train
    if augmenter is not None:
        images = augmenter.prepare(images)
    train_dataset = data_module.make_dataset(
        images, labels, plan.recipe.batch_size, shuffle=True, seed=plan.config.seed,
        augment=augmenter, drop_remainder=plan.drops_last_batch(len(labels)))
    monitor_dataset = data_module.make_dataset(*data.monitored, batch_size=500)
    callback = augmenter.callback() if augmenter is not None else None
    return train_dataset, monitor_dataset, [callback] if callback else []


def train_model(plan: ResolvedRun, run: runs.RunFolder, data: PreparedData, model,
                print_epochs: bool = True, extra_callbacks=()):
    """Fit the model under its strategy, recording into (and resuming from) the run folder.

    At heart this is ``model.fit(train_dataset, epochs=..., validation_data=...,
    callbacks=[...])`` (``cifar_cnn.train.fit``), with callbacks that write the history
    and the training state after every epoch; multi-worker training has its own loop
    (``distribute.fit_multi_worker``, where the reason is given).

    Args:
        plan: The resolved run.
        run: The run folder.
        data: The run's data.
        model: The compiled model from :func:`build_model`.
        print_epochs: Print one line per epoch (and, where a person watches, progress).
        extra_callbacks: More Keras callbacks.

    Returns:
        A ``cifar_cnn.train.TrainingResult``.

    Raises:
        cifar_cnn.search_trial.RunPruned: The run is a trial of ``cifar-cnn search`` and
            its study's pruner stopped it; its folder records ``pruned``.
    """
    run.check_open()  # A finished run's files are final: refuse before any work.
    from cifar_cnn import distribute, train

    from cifar_cnn.search_trial import RunPruned, connection_from_environment

    train_dataset, monitor_dataset, callbacks = make_datasets(plan, data)
    callbacks += list(extra_callbacks)
    # A search's trial (cifar-cnn search) reports every epoch to its study and may be pruned.
    connection = connection_from_environment()
    reporter = None
    if connection is not None and plan.chief:
        from cifar_cnn.training_callbacks import TrialReporter

        reporter = TrialReporter(connection.open_trial())
        callbacks.append(reporter)
    if plan.config.tensorboard:
        from cifar_cnn.tensorboard_logging import tensorboard_callback

        callbacks.append(tensorboard_callback(run.path))
    options = dict(validation_dataset=monitor_dataset, extra_callbacks=callbacks,
                   monitor_best=data.validation is not None, print_epochs=print_epochs)
    strategy = model.distribute_strategy
    epochs = plan.recipe.epochs
    with native_stderr_to(run.log_path):
        if distribute.is_multi_worker(strategy):
            # A non-chief writes a scratch folder; it resumes from the chief's, known by
            # name only when run_name is given (without it the run is new).
            chief_folder = runs.run_folder_path(plan.config) if plan.config.run_name \
                else run.path
            training = distribute.fit_multi_worker(model, train_dataset, epochs,
                                                   run.path, resume_directory=chief_folder,
                                                   **options)
        else:
            # In the scope, optimizer slots that a resume builds before fit are mirrored too.
            with strategy.scope():
                training = train.fit(model, train_dataset, epochs, run.path, **options)
    training.strategy = plan.strategy
    training.replicas = int(strategy.num_replicas_in_sync)
    if reporter is not None and reporter.pruned_after_epoch is not None:
        run.prune(reporter.pruned_after_epoch, reporter.reason)
        raise RunPruned(f"trial {connection.trial_number} of study {connection.study} pruned: "
                        f"{reporter.reason}; the run folder records it as pruned.")
    return training


def training_figures(plan: ResolvedRun, run: runs.RunFolder, data: PreparedData,
                     training) -> dict:
    """Draw and save the learning curves.

    Args:
        plan: The resolved run.
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


def evaluate_model(plan: ResolvedRun, data: PreparedData, model,
                   progress_label: str | None = None):
    """Evaluate on the test set, averaging the resolved test-time views.

    Args:
        plan: The resolved run (``plan.recipe.test_time_augmentation``: the views).
        data: The run's data.
        model: The trained model.
        progress_label: A terminal counter's label, or None for none.

    Returns:
        A ``cifar_cnn.evaluate.Evaluation``.
    """
    from cifar_cnn import evaluate

    return evaluate.evaluate_model(model, *data.test,
                                   test_time_augmentation=plan.recipe.test_time_augmentation,
                                   progress_label=progress_label)


def evaluation_figures(plan: ResolvedRun, run: runs.RunFolder, data: PreparedData,
                       evaluation) -> dict:
    """Draw and save per-class accuracy, the confusion matrix and misclassified images.

    Args:
        plan: The resolved run.
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


def final_metrics(plan: ResolvedRun, data: PreparedData, training, evaluation) -> dict:
    """The run's ``metrics.json``: results, timings and where the data came from.

    Args:
        plan: The resolved run.
        data: The run's data.
        training: The ``TrainingResult``.
        evaluation: The test ``Evaluation``.

    Returns:
        A JSON-ready dictionary.
    """
    monitored = training.series("val_accuracy")
    epoch_seconds = training.series("seconds")
    metrics = evaluation.summary(data.class_names)
    metrics.update({
        "recipe": plan.recipe.name,
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
        "precision_policy": plan.precision,
        "strategy": training.strategy,
        "replicas": training.replicas,
        "test_time_augmentation": plan.recipe.test_time_augmentation,
        "resumed_from_epoch": training.resumed_from_epoch,
        "data_source": data.source,
        "data_load_seconds": data.load_seconds,
    })
    return metrics


def finish_run(plan: ResolvedRun, run: runs.RunFolder, data: PreparedData, model, training,
               evaluation) -> dict:
    """Save the model, then write ``metrics.json`` last: the run is complete.

    Args:
        plan: The resolved run.
        run: The run folder.
        data: The run's data.
        model: The trained model.
        training: The ``TrainingResult``.
        evaluation: The test ``Evaluation``.

    Returns:
        The metrics written.
    """
    run.check_open()
    metrics = final_metrics(plan, data, training, evaluation)
    run.save_model(model)
    run.finish(metrics)
    return metrics


def close_run(plan: ResolvedRun, run: runs.RunFolder) -> None:
    """Release the run folder: a multi-worker non-chief's scratch folder is deleted.

    Args:
        plan: The resolved run.
        run: The run folder.
    """
    run.close()


def run_experiment(plan: ResolvedRun | RunConfig, print_epochs: bool = True,
                   extra_callbacks=()):
    """Run every step, figures included, exactly as the notebook does.

    On an error the run is marked failed in ``run.json`` (its training state stays, so the
    same command resumes) and a completed run it was replacing is put back.

    Args:
        plan: The resolved run (a ``RunConfig`` is resolved first, with :func:`resolve_run`).
        print_epochs: Print one line per epoch (and, where a person watches, progress).
        extra_callbacks: More Keras callbacks for training.

    Returns:
        ``(run, metrics)``: the ``runs.RunFolder`` (on a non-chief multi-worker process a
        scratch folder, already deleted) and the metrics written.
    """
    if isinstance(plan, RunConfig):
        plan = resolve_run(plan)
    run = open_run(plan)
    try:
        data = prepare_data(plan)
        data_figures(plan, run, data)
        model = build_model(plan, run, data)
        training = train_model(plan, run, data, model, print_epochs=print_epochs,
                               extra_callbacks=extra_callbacks)
        training_figures(plan, run, data, training)
        evaluation = evaluate_model(plan, data, model)
        evaluation_figures(plan, run, data, evaluation)
        metrics = finish_run(plan, run, data, model, training, evaluation)
    except BaseException as error:
        run.fail(error)
        raise
    finally:
        close_run(plan, run)
    return run, metrics
