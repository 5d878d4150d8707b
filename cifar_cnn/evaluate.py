"""Accuracy, per-class accuracy, confusion matrix and predictions of a trained model.

From arrays: :func:`predict_probabilities` (with test-time views), :func:`evaluate_model`,
:func:`evaluate_probabilities`. Re-evaluating a model saved on disk (``cifar-cnn
evaluate``) is ``cifar_cnn.saved_model_evaluation``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
