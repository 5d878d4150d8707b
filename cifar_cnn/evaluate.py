"""Accuracy, per-class accuracy, confusion matrix and predictions of a trained model.

From arrays (:func:`evaluate_model`, :func:`evaluate_probabilities`) or, for a model saved
on disk, the whole ``cifar-cnn evaluate`` workflow (:func:`evaluate_saved_model`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

# What evaluate_saved_model writes: the figure (its format follows its suffix, so only
# suffixes matplotlib writes are accepted) and, in the same folder, the results.
FIGURE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")
CONFUSION_MATRIX_FIGURE = "confusion_matrix.png"
EVALUATION_FILE = "evaluation.json"


def _shifted(pixels: np.ndarray, offset: int) -> np.ndarray:
    """Images moved by one pixel (offset 0: down-right, 2: up-left), borders reflected."""
    height, width = pixels.shape[1:3]
    padded = np.pad(pixels, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    return padded[:, offset:offset + height, offset:offset + width]


def check_test_time_augmentation(test_time_augmentation: str) -> None:
    """Refuse a name that is not one of ``cifar_cnn.config.TEST_TIME_AUGMENTATIONS``.

    Args:
        test_time_augmentation: The name to check.

    Raises:
        ValueError: It is not a valid choice; the message lists the valid ones.
    """
    from cifar_cnn.config import TEST_TIME_AUGMENTATIONS

    if test_time_augmentation not in TEST_TIME_AUGMENTATIONS:
        raise ValueError(f"Unknown test_time_augmentation {test_time_augmentation!r}; valid "
                         f"choices: {', '.join(TEST_TIME_AUGMENTATIONS)}.")


def test_time_views(pixels: np.ndarray, test_time_augmentation: str):
    """The views of a batch that test-time augmentation averages, with their weights.

    ``"flip_translate"`` is airbench's six views: half the weight on the image and its
    mirror, half on the same two shifted one pixel down-right and up-left (reflected
    borders), each pair split equally.

    Args:
        pixels: float images (N, H, W, C).
        test_time_augmentation: One of ``cifar_cnn.config.TEST_TIME_AUGMENTATIONS``.

    Returns:
        A list of ``(weight, images)``; the weights sum to 1.
    """
    check_test_time_augmentation(test_time_augmentation)
    if test_time_augmentation == "none":
        return [(1.0, pixels)]
    views = [(0.5, pixels)]
    if test_time_augmentation == "flip_translate":
        views = [(0.5, pixels), (0.25, _shifted(pixels, 0)), (0.25, _shifted(pixels, 2))]
    return [(weight / 2, mirrored) for weight, view in views
            for mirrored in (view, view[:, :, ::-1])]


def predict_probabilities(model, images: np.ndarray, *, batch_size: int = 500,
                          test_time_augmentation: str = "none", chunk_size: int = 2000,
                          progress_label: str | None = None) -> np.ndarray:
    """Class probabilities for raw uint8 (or 0-255 float) images.

    The one place a model's probabilities are computed: training's final evaluation, the
    ``evaluate`` and ``predict`` commands and the benchmarks all call this, so they agree.
    The images go through the model in chunks of whole batches (batching is the same as in
    one call), which lets a counter show progress on long jobs.

    With test-time augmentation, the views' logits are averaged, as airbench does, and the
    result goes through softmax again. The models end in softmax, so the log-probabilities
    are averaged instead: each view's differ from its logits by one constant per image,
    which softmax removes, so the probabilities are exactly those of the averaged logits.

    Args:
        model: A model whose first layer preprocesses raw pixels (every model here does).
        images: Array (N, 32, 32, 3) of 0-255 pixels.
        batch_size: Images per forward pass.
        test_time_augmentation: The views averaged (:func:`test_time_views`): ``"none"``,
            ``"flip"`` or ``"flip_translate"``.
        chunk_size: Images between two progress updates (rounded up to whole batches).
        progress_label: Label of a "label: done/total" counter on a terminal's standard
            error, or None (the default) for no counter.

    Returns:
        float32 array (N, classes), each row summing to 1.
    """
    if batch_size < 1 or chunk_size < 1:
        raise ValueError(f"batch_size and chunk_size must be 1 or more, got {batch_size} and "
                         f"{chunk_size}.")
    check_test_time_augmentation(test_time_augmentation)
    # Whole batches per chunk, so the batches are those of one call over all the images.
    chunk_size = -(-chunk_size // batch_size) * batch_size
    counter = None
    if progress_label:
        from cifar_cnn.progress import ProgressCounter

        # A single chunk is over in a moment: the counter shows only for longer work.
        counter = ProgressCounter(progress_label, len(images), minimum_total=chunk_size + 1)
    parts = []
    for start in range(0, len(images), chunk_size):
        pixels = images[start:start + chunk_size].astype(np.float32)
        views = test_time_views(pixels, test_time_augmentation)
        if len(views) == 1:
            probabilities = model.predict(pixels, batch_size=batch_size, verbose=0)
        else:
            log_probabilities = sum(
                weight * np.log(np.maximum(model.predict(view, batch_size=batch_size, verbose=0),
                                           np.finfo(np.float32).tiny))
                for weight, view in views)
            probabilities = _softmax(log_probabilities)
        parts.append(np.asarray(probabilities, dtype=np.float32))
        if counter:
            counter.update(min(start + chunk_size, len(images)))
    if not parts:
        return np.zeros((0, int(model.outputs[0].shape[-1])), dtype=np.float32)
    return np.concatenate(parts)


def _softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, in float64 for the sums."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Count (true class, predicted class) pairs.

    Args:
        labels: True labels (N,).
        predictions: Predicted labels (N,).
        num_classes: Number of classes.

    Returns:
        int64 array (classes, classes); row = true class, column = predicted class.
    """
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


@dataclass
class Evaluation:
    """Results of evaluating predictions against labels.

    Attributes:
        loss: Mean sparse categorical cross-entropy.
        accuracy: Fraction of correct top-1 predictions.
        per_class_accuracy: Accuracy (recall) of each true class.
        confusion: Confusion matrix, rows true, columns predicted.
        probabilities: Predicted probabilities (N, classes).
        predictions: Top-1 predicted labels (N,).
        labels: True labels (N,).
    """

    loss: float
    accuracy: float
    per_class_accuracy: np.ndarray
    confusion: np.ndarray
    probabilities: np.ndarray
    predictions: np.ndarray
    labels: np.ndarray

    def summary(self, class_names) -> dict:
        """Return the scalar results as a JSON-ready dictionary keyed by class name."""
        return {
            "test_loss": self.loss,
            "test_accuracy": self.accuracy,
            "per_class_accuracy": {name: float(value) for name, value
                                   in zip(class_names, self.per_class_accuracy)},
            "confusion_matrix": self.confusion.tolist(),
        }


def evaluate_probabilities(probabilities: np.ndarray, labels: np.ndarray) -> Evaluation:
    """Score predicted probabilities against true labels.

    Args:
        probabilities: Array (N, classes).
        labels: Integer labels (N,).

    Returns:
        An :class:`Evaluation`.
    """
    labels = np.asarray(labels, dtype=np.int64)
    num_classes = probabilities.shape[1]
    predictions = probabilities.argmax(axis=1)
    # Same clipping as Keras' cross-entropy, so the loss matches model.evaluate.
    true_probabilities = np.clip(probabilities[np.arange(len(labels)), labels], 1e-7, 1.0)
    matrix = confusion_matrix(labels, predictions, num_classes)
    per_class_totals = matrix.sum(axis=1)
    per_class = np.divide(np.diag(matrix), per_class_totals,
                          out=np.zeros(num_classes), where=per_class_totals > 0)
    return Evaluation(
        loss=float(-np.log(true_probabilities).mean()),
        accuracy=float((predictions == labels).mean()),
        per_class_accuracy=per_class,
        confusion=matrix,
        probabilities=probabilities,
        predictions=predictions,
        labels=labels,
    )


def evaluate_model(model, images: np.ndarray, labels: np.ndarray, *, batch_size: int = 500,
                   test_time_augmentation: str = "none",
                   progress_label: str | None = None) -> Evaluation:
    """Predict and score in one call.

    Args:
        model: A trained model taking raw pixels.
        images: Array (N, 32, 32, 3) of 0-255 pixels.
        labels: Integer labels (N,).
        batch_size: Images per forward pass.
        test_time_augmentation: The views averaged (see :func:`predict_probabilities`).
        progress_label: A terminal counter's label (see :func:`predict_probabilities`).

    Returns:
        An :class:`Evaluation`.
    """
    probabilities = predict_probabilities(model, images, batch_size=batch_size,
                                          test_time_augmentation=test_time_augmentation,
                                          progress_label=progress_label)
    return evaluate_probabilities(probabilities, labels)


def misclassified_indices(evaluation: Evaluation, limit: int | None = None) -> np.ndarray:
    """Indices of wrong predictions, most confident mistakes first.

    Args:
        evaluation: Results of :func:`evaluate_probabilities`.
        limit: Return at most this many.

    Returns:
        int array of indices into the evaluated images.
    """
    wrong = np.flatnonzero(evaluation.predictions != evaluation.labels)
    confidence = evaluation.probabilities[wrong, evaluation.predictions[wrong]]
    ordered = wrong[np.argsort(-confidence, kind="stable")]
    return ordered if limit is None else ordered[:limit]


@dataclass
class EvaluationReport:
    """What :func:`evaluate_saved_model` did and found.

    Attributes:
        evaluation: The scores.
        class_names: Name of each label, in label order.
        model_path: The model file evaluated.
        run_folder: The run folder holding it, or None for a bare model file.
        data_source: Where the test split was read (the source's description).
        test_examples: Images evaluated.
        split_size: Images in the whole test split (more than ``test_examples`` when a
            subset was drawn).
        subset_seed: The seed of the stratified subset (the run's, else the default).
        test_time_augmentation: The views each prediction averaged (``"none"``: one).
        seconds: Time spent loading the data, predicting and scoring.
        figure_path: The confusion-matrix figure written.
        results_path: The ``evaluation.json`` written beside it.
        notes: Things the user should know about the model (see ``LoadedModel.notes``).
    """

    evaluation: Evaluation
    class_names: tuple[str, ...]
    model_path: Path
    run_folder: Path | None
    data_source: str
    test_examples: int
    split_size: int
    subset_seed: int
    test_time_augmentation: str
    seconds: float
    figure_path: Path
    results_path: Path
    notes: list[str] = field(default_factory=list)

    @property
    def is_subset(self) -> bool:
        """True when only a stratified subset of the test split was evaluated."""
        return self.test_examples < self.split_size


def evaluation_figure_path(model_path: str | Path, output: str | Path | None = None) -> Path:
    """Where the confusion-matrix figure goes: ``output``, else a folder beside the model.

    ``model.keras`` gets ``evaluation/``; another file such as ``best.keras`` gets
    ``evaluation-best/``, so evaluating two models of a run folder keeps both results.

    Args:
        model_path: The model file.
        output: The requested figure path, if any.

    Returns:
        The figure's path (``evaluation.json`` goes in the same folder).

    Raises:
        ValueError: The path does not end in one of ``FIGURE_SUFFIXES``.
    """
    from cifar_cnn.runs import EVALUATION_FOLDER, MODEL_FILE

    if output:
        figure_path = Path(output).expanduser()
    else:
        model_path = Path(model_path)
        folder = EVALUATION_FOLDER if model_path.stem == Path(MODEL_FILE).stem \
            else f"{EVALUATION_FOLDER}-{model_path.stem}"
        figure_path = model_path.parent / folder / CONFUSION_MATRIX_FIGURE
    if figure_path.suffix.lower() not in FIGURE_SUFFIXES:
        raise ValueError(f"output {figure_path} must end in one of {', '.join(FIGURE_SUFFIXES)}: "
                         "the figure's format follows its suffix.")
    return figure_path


def evaluate_saved_model(model_or_run_folder: str | Path, *, data_source: str | None = None,
                         max_test_examples: int | None = None,
                         test_time_augmentation: str | None = None,
                         output: str | Path | None = None,
                         progress: Callable[[str], None] | None = None) -> EvaluationReport:
    """Score a saved model on a test split; write a confusion matrix and ``evaluation.json``.

    A run folder knows its recipe, data, the seed of its test subset and its test-time
    augmentation: each is reused unless given, so evaluating a run with its own
    ``max_test_examples`` reproduces its ``metrics.json`` exactly. The work goes through
    the run's own steps (``resolve_run``, ``experiment.prepare_data``,
    ``experiment.evaluate_model``), so it cannot drift from what training measured.

    Args:
        model_or_run_folder: A ``.keras`` file, or a run folder holding ``model.keras``.
        data_source: The CIFAR-10 source (default: the run's recorded source, else
            ``$CIFAR10_SOURCE``, else the Keras download).
        max_test_examples: Evaluate a stratified subset of this many test images, drawn
            with the run's seed (default: the whole test split).
        test_time_augmentation: The views each prediction averages, one of
            ``cifar_cnn.config.TEST_TIME_AUGMENTATIONS`` (default: the run's; ``"none"``
            for a bare model file).
        output: The confusion-matrix figure's path (default: see
            :func:`evaluation_figure_path`); ``evaluation.json`` goes in its folder.
        progress: Called with a line before each slow step (loading the model, the data).

    Returns:
        An :class:`EvaluationReport`.

    Raises:
        ValueError: A bad ``output`` suffix, or a model that cannot be loaded or used
            (``ModelLoadError``).
        DataSourceError: The data source cannot be read.
    """
    from cifar_cnn import data as data_module
    from cifar_cnn import experiment
    from cifar_cnn.files import write_figure, write_json
    from cifar_cnn.plots import confusion_matrix_figure
    from cifar_cnn.predict import load_model, resolve_model_path
    from cifar_cnn.runs import CONFIG_FILE, utc_now

    say = progress or (lambda message: None)
    if test_time_augmentation is not None:
        check_test_time_augmentation(test_time_augmentation)  # Before the slow work.
    model_path = resolve_model_path(model_or_run_folder)
    # Checked before the slow work, so a typo costs nothing.
    figure_path = evaluation_figure_path(model_path, output)
    say(f"model: {model_path}")
    loaded = load_model(model_path, num_classes=len(data_module.CLASS_NAMES))
    run_config = loaded.run_config or {}
    try:
        plan = _evaluation_plan(run_config, data_source, max_test_examples,
                                test_time_augmentation)
    except data_module.DataSourceError as error:
        if data_source or not run_config.get("data_source"):
            raise
        # A relative path recorded at training time may not hold from here: say where it
        # came from and how to override it.
        raise data_module.DataSourceError(
            f"{error} (This is the data_source recorded in {loaded.run_folder}/{CONFIG_FILE}; "
            "give another data_source (--data-source) to evaluate on another copy.)") \
            from error
    say(f"loading the test split of {plan.source.description} ...")
    started = time.perf_counter()
    data = experiment.prepare_data(plan)
    evaluation = experiment.evaluate_model(plan, data, loaded.model, progress_label="predicting")
    seconds = time.perf_counter() - started

    views, seed = plan.recipe.test_time_augmentation, plan.config.seed
    test_examples = int(len(data.test[1]))
    write_figure(figure_path, confusion_matrix_figure(evaluation.confusion, data.class_names))
    results_path = figure_path.parent / EVALUATION_FILE
    write_json(results_path, {
        "model": str(loaded.path),
        "run_folder": str(loaded.run_folder) if loaded.run_folder else None,
        "data_source": data.source,
        "test_examples": test_examples,
        "max_test_examples": max_test_examples,
        "subset_seed": seed,
        "test_time_augmentation": views,
        **evaluation.summary(data.class_names),
        "confusion_matrix_figure": str(figure_path),
        "seconds": seconds,
        "evaluated_at": utc_now(),
    })
    return EvaluationReport(
        evaluation=evaluation, class_names=tuple(data.class_names),
        model_path=loaded.path, run_folder=loaded.run_folder, data_source=data.source,
        test_examples=test_examples, split_size=data.test_split_size, subset_seed=seed,
        test_time_augmentation=views, seconds=seconds, figure_path=figure_path,
        results_path=results_path, notes=list(loaded.notes))


def _evaluation_plan(run_config: dict, data_source: str | None, max_test_examples: int | None,
                     test_time_augmentation: str | None):
    """The resolved run that re-evaluates a saved model: the run's own choices, overridden.

    Only what evaluation reads is taken from the run's ``config.json``: its recipe (for its
    test-time views), seed (for the test subset), ``tta`` and data source. A recipe no longer
    registered evaluates as the seed's, whose views with ``tta`` are the mirror, as every
    recipe's were before.

    Returns:
        A ``ResolvedRun`` (no run folder is opened for it).
    """
    import dataclasses

    from cifar_cnn.config import RunConfig
    from cifar_cnn.recipes import RECIPES
    from cifar_cnn.resolved_run import resolve_run

    parameters = {"recipe": run_config.get("recipe") if run_config.get("recipe") in RECIPES
                  else RunConfig.recipe,
                  "seed": run_config.get("seed", RunConfig.seed),
                  "tta": bool(run_config.get("tta", False)),
                  "data_source": data_source or run_config.get("data_source"),
                  "max_test_examples": max_test_examples,
                  "max_train_examples": None, "validation_split": 0.0}
    plan = resolve_run(RunConfig.from_parameters(parameters, environ={}))
    if test_time_augmentation is None:
        return plan
    return dataclasses.replace(plan, recipe=dataclasses.replace(
        plan.recipe, test_time_augmentation=test_time_augmentation))
