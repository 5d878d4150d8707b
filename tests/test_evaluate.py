"""Evaluation: accuracy, per-class accuracy, confusion matrix, loss, mistakes, test-time flips."""

import io
import sys

import keras
import numpy as np
import pytest

from cifar_cnn import evaluate, saved_model_evaluation


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
    flipped = evaluate.predict_probabilities(model, image, test_time_augmentation="flip")
    assert plain[0, 0] > plain[0, 1]
    np.testing.assert_allclose(flipped[0], [0.5, 0.5], atol=1e-6)


def test_six_views_average_the_logits_of_airbenchs_views():
    # Logits that read one pixel (row 0, column 0) and its column-31 mirror, so each view's
    # logits are known in closed form.
    inputs = keras.Input((32, 32, 3))
    logits = keras.layers.Lambda(lambda x: keras.ops.stack(
        [x[:, 0, 0, 0] / 50.0, x[:, 0, 31, 0] / 50.0, x[:, 1, 1, 0] * 0.0], axis=1))(inputs)
    model = keras.Model(inputs, keras.layers.Softmax()(logits))
    image = np.random.default_rng(5).integers(0, 256, (3, 32, 32, 3)).astype(np.uint8)
    padded = np.pad(image.astype(np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    down_right, up_left = padded[:, :32, :32], padded[:, 2:, 2:]
    views = [(0.25, image.astype(np.float64)), (0.125, down_right), (0.125, up_left)]
    expected_logits = sum(
        weight * np.stack([view[:, 0, 0, 0] + view[:, 0, 31, 0],
                           view[:, 0, 31, 0] + view[:, 0, 0, 0],
                           np.zeros(len(view))], axis=1) / 50.0
        for weight, view in views)  # Each view and its mirror: pixels (0, 0) and (0, 31) swap.
    expected = np.exp(expected_logits) / np.exp(expected_logits).sum(axis=1, keepdims=True)
    got = evaluate.predict_probabilities(model, image, test_time_augmentation="flip_translate")
    np.testing.assert_allclose(got, expected, rtol=1e-4)
    weights = [weight for weight, _ in evaluate.test_time_views(image, "flip_translate")]
    assert len(weights) == 6 and sum(weights) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="valid choices: none, flip, flip_translate"):
        evaluate.predict_probabilities(model, image, test_time_augmentation="rotate")


def _mean_brightness_model():
    # Two classes scored from the image's mean pixel: a model whose outputs differ per image.
    inputs = keras.Input((32, 32, 3))
    mean = keras.layers.Lambda(lambda x: keras.ops.mean(x, axis=(1, 2, 3)) / 255.0)(inputs)
    scores = keras.layers.Lambda(
        lambda value: keras.ops.softmax(keras.ops.stack([value, 1.0 - value], axis=1)))(mean)
    return keras.Model(inputs, scores)


def test_chunks_give_the_probabilities_of_one_pass_and_options_are_keywords():
    model = _mean_brightness_model()
    images = np.random.default_rng(0).integers(0, 256, (23, 32, 32, 3)).astype(np.uint8)
    whole = evaluate.predict_probabilities(model, images, batch_size=32)
    chunked = evaluate.predict_probabilities(model, images, batch_size=4, chunk_size=6)
    np.testing.assert_allclose(chunked, whole, atol=1e-6)
    assert chunked.shape == (23, 2) and chunked.dtype == np.float32
    empty = evaluate.predict_probabilities(model, images[:0])
    assert empty.shape == (0, 2)
    with pytest.raises(TypeError):
        evaluate.predict_probabilities(model, images, 4, True)  # Options are keyword-only.


def test_progress_counter_is_off_by_default_and_counts_chunks_on_a_terminal(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    model = _mean_brightness_model()
    images = np.zeros((10, 32, 32, 3), dtype=np.uint8)
    evaluate.predict_probabilities(model, images, batch_size=2, chunk_size=4)
    assert terminal.getvalue() == ""
    evaluate.predict_probabilities(model, images, batch_size=2, chunk_size=4,
                                   progress_label="predicting")
    assert terminal.getvalue() == "\rpredicting: 4/10\rpredicting: 8/10\rpredicting: 10/10\n"


def test_evaluation_figure_goes_beside_the_model_unless_given(tmp_path):
    assert saved_model_evaluation.evaluation_figure_path(tmp_path / "model.keras") == \
        tmp_path / "evaluation" / "confusion_matrix.png"
    assert saved_model_evaluation.evaluation_figure_path(tmp_path / "best.keras") == \
        tmp_path / "evaluation-best" / "confusion_matrix.png"
    assert saved_model_evaluation.evaluation_figure_path(tmp_path / "model.keras", tmp_path / "cm.pdf") == \
        tmp_path / "cm.pdf"
    with pytest.raises(ValueError, match="must end in one of .png"):
        saved_model_evaluation.evaluation_figure_path(tmp_path / "model.keras", "figure.txt")
