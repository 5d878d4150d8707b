"""Accuracy, per-class accuracy, confusion matrix and predictions of a trained model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def predict_probabilities(model, images: np.ndarray, batch_size: int = 500,
                          flip_augmentation: bool = False) -> np.ndarray:
    """Class probabilities for raw uint8 (or 0-255 float) images.

    Args:
        model: A model whose first layer preprocesses raw pixels (every model here does).
        images: Array (N, 32, 32, 3) of 0-255 pixels.
        batch_size: Images per forward pass.
        flip_augmentation: Test-time augmentation: average the probabilities of each image
            and its horizontal mirror.

    Returns:
        float32 array (N, classes), each row summing to 1.
    """
    pixels = images.astype(np.float32)
    probabilities = model.predict(pixels, batch_size=batch_size, verbose=0)
    if flip_augmentation:
        mirrored = model.predict(pixels[:, :, ::-1, :], batch_size=batch_size, verbose=0)
        probabilities = (probabilities + mirrored) / 2.0
    return np.asarray(probabilities, dtype=np.float32)


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


def evaluate_model(model, images: np.ndarray, labels: np.ndarray, batch_size: int = 500,
                   flip_augmentation: bool = False) -> Evaluation:
    """Predict and score in one call.

    Args:
        model: A trained model taking raw pixels.
        images: Array (N, 32, 32, 3) of 0-255 pixels.
        labels: Integer labels (N,).
        batch_size: Images per forward pass.
        flip_augmentation: Average with horizontally mirrored images (test-time augmentation).

    Returns:
        An :class:`Evaluation`.
    """
    probabilities = predict_probabilities(model, images, batch_size, flip_augmentation)
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
