"""Evaluation: accuracy, per-class accuracy, confusion matrix, loss, mistakes, test-time flips."""

import keras
import numpy as np

from cifar_cnn import evaluate


def test_scores_known_predictions():
    probabilities = np.array([
        [0.8, 0.1, 0.1],  # true 0, predicted 0
        [0.2, 0.7, 0.1],  # true 1, predicted 1
        [0.6, 0.3, 0.1],  # true 1, predicted 0 (confident mistake)
        [0.1, 0.45, 0.45 + 1e-6],  # true 2, predicted 2
    ], dtype=np.float32)
    labels = np.array([0, 1, 1, 2])
    result = evaluate.evaluate_probabilities(probabilities, labels)
    assert result.accuracy == 0.75
    np.testing.assert_array_equal(result.per_class_accuracy, [1.0, 0.5, 1.0])
    np.testing.assert_array_equal(result.confusion, [[1, 0, 0], [1, 1, 0], [0, 0, 1]])
    expected_loss = keras.losses.SparseCategoricalCrossentropy()(labels, probabilities)
    np.testing.assert_allclose(result.loss, float(expected_loss), rtol=1e-5)
    np.testing.assert_array_equal(evaluate.misclassified_indices(result), [2])
    summary = result.summary(["a", "b", "c"])
    assert summary["per_class_accuracy"] == {"a": 1.0, "b": 0.5, "c": 1.0}
    assert summary["test_accuracy"] == 0.75


def test_misclassified_are_ordered_by_confidence():
    probabilities = np.array([[0.1, 0.9], [0.4, 0.6], [0.3, 0.7]], dtype=np.float32)
    result = evaluate.evaluate_probabilities(probabilities, np.array([0, 0, 0]))
    np.testing.assert_array_equal(evaluate.misclassified_indices(result), [0, 2, 1])
    np.testing.assert_array_equal(evaluate.misclassified_indices(result, limit=1), [0])


def test_flip_augmentation_averages_an_image_and_its_mirror():
    # A model that reports the mean of the left half of the image versus the right half.
    inputs = keras.Input((32, 32, 3))
    left = keras.layers.Lambda(lambda x: keras.ops.mean(x[:, :, :16, :], axis=(1, 2, 3)))(inputs)
    right = keras.layers.Lambda(lambda x: keras.ops.mean(x[:, :, 16:, :], axis=(1, 2, 3)))(inputs)
    scores = keras.layers.Lambda(lambda pair: keras.ops.softmax(keras.ops.stack(pair, axis=1)))(
        [left, right])
    model = keras.Model(inputs, scores)
    image = np.zeros((1, 32, 32, 3), dtype=np.uint8)
    image[:, :, :16, :] = 2  # Left half brighter: without flips class 0 wins.
    plain = evaluate.predict_probabilities(model, image)
    flipped = evaluate.predict_probabilities(model, image, flip_augmentation=True)
    assert plain[0, 0] > plain[0, 1]
    np.testing.assert_allclose(flipped[0], [0.5, 0.5], atol=1e-6)
