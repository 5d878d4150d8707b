"""Recipes and their parts: augmentation, whitening, identity init, loss, schedules, precision."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from cifar_cnn import augment, models, precision, train
from cifar_cnn.config import RunConfig
from cifar_cnn.data import preprocessing_layer
from cifar_cnn.recipes import RECIPES, get_recipe

RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, (64, 32, 32, 3)).astype(np.uint8)


def test_every_recipe_builds_a_model_ending_in_probabilities():
    for name, recipe in RECIPES.items():
        keras.utils.set_random_seed(0)
        model = models.build_model(
            recipe.model, preprocessing=preprocessing_layer(recipe.preprocessing, IMAGES),
            train_images=IMAGES)
        recipe = dataclasses.replace(recipe, epochs=2)
        train.compile_model(model, train.make_optimizer(recipe, 3), train.make_loss(recipe))
        probabilities = model.predict(IMAGES[:2].astype(np.float32), verbose=0)
        assert probabilities.shape == (2, 10), name
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-4, err_msg=name)


def test_recipe_defaults_fill_the_config():
    config = RunConfig.from_parameters({"recipe": "airbench"}, environ={})
    recipe = get_recipe("airbench")
    assert (config.epochs, config.batch_size, config.learning_rate, config.preprocessing,
            config.tta, config.mixed_precision) == \
        (recipe.epochs, recipe.batch_size, recipe.learning_rate, "standardize", True, "auto")
    assert RunConfig.from_parameters({}, environ={}).mixed_precision == "float32"  # The seed.


def test_flip_mirrors_about_half_the_images():
    images = tf.constant(IMAGES, tf.float32)
    flipped = augment.random_flip(images).numpy()
    mirrored = np.all(flipped == IMAGES[:, :, ::-1], axis=(1, 2, 3))
    unchanged = np.all(flipped == IMAGES, axis=(1, 2, 3))
    assert np.all(mirrored | unchanged) and 10 < mirrored.sum() < 54


def test_translate_shifts_each_image_by_at_most_two_pixels_with_reflection():
    images = tf.constant(IMAGES, tf.float32)
    shifted = augment.random_translate(images, pixels=2).numpy()
    padded = np.pad(IMAGES, [(0, 0), (2, 2), (2, 2), (0, 0)], mode="reflect")
    offsets_seen = set()
    for index in range(len(IMAGES)):
        matches = [(dy, dx) for dy in range(5) for dx in range(5)
                   if np.array_equal(shifted[index], padded[index, dy:dy + 32, dx:dx + 32])]
        assert matches, f"image {index} is not a reflect-padded crop"
        offsets_seen.update(matches)
    assert len(offsets_seen) > 5  # Offsets really vary from image to image.


def test_unknown_augmentation_is_rejected():
    with pytest.raises(ValueError, match="Unknown augmentation.*cutout; valid choices: flip, "
                                         "alternating_flip, translate"):
        augment.make_augmenter(["flip", "cutout"])
    assert augment.make_augmenter([]) is None


def test_whitening_kernel_decorrelates_patches():
    images = RNG.normal(size=(200, 8, 8, 3))
    images[..., 1] = images[..., 0] * 0.9 + 0.1 * images[..., 1]  # Strongly correlated channels.
    kernel = models.whitening_kernel(images, epsilon=0.0)
    assert kernel.shape == (2, 2, 3, 24)
    outputs = tf.nn.conv2d(images.astype(np.float32), kernel, 1, "VALID").numpy()
    covariance = np.cov(outputs[..., :12].reshape(-1, 12), rowvar=False)
    np.testing.assert_allclose(covariance, np.eye(12), atol=0.05)
    np.testing.assert_allclose(kernel[..., 12:], -kernel[..., :12])


def test_partial_identity_passes_input_channels_through():
    keras.utils.set_random_seed(1)
    kernel = keras.ops.convert_to_numpy(models.PartialIdentity()((3, 3, 4, 6)))
    inputs = RNG.normal(size=(1, 5, 5, 4)).astype(np.float32)
    outputs = tf.nn.conv2d(inputs, kernel, 1, "SAME").numpy()
    np.testing.assert_allclose(outputs[..., :4], inputs, atol=1e-6)
    assert np.abs(kernel[..., 4:]).max() <= 1 / np.sqrt(36) and np.abs(kernel[..., 4:]).max() > 0


def test_label_smoothing_loss_matches_keras_categorical_crossentropy():
    probabilities = tf.nn.softmax(RNG.normal(size=(5, 10)).astype(np.float32))
    labels = np.array([0, 3, 9, 2, 2])
    smoothed = train.SparseCrossentropyWithSmoothing(0.2)(labels, probabilities)
    expected = keras.losses.CategoricalCrossentropy(label_smoothing=0.2)(
        tf.one_hot(labels, 10), probabilities)
    np.testing.assert_allclose(float(smoothed), float(expected), rtol=1e-6)
    plain = train.make_loss(get_recipe("seed"))
    assert isinstance(plain, keras.losses.SparseCategoricalCrossentropy)


def test_warmup_can_start_above_zero():
    recipe = dataclasses.replace(get_recipe("seed_regularized"), learning_rate=1.0, epochs=10,
                                 warmup_fraction=0.2, warmup_start=0.2)
    schedule = train.learning_rate_schedule(recipe, steps_per_epoch=10)
    assert float(schedule(0)) == pytest.approx(0.2)
    assert float(schedule(20)) == pytest.approx(1.0)
    assert float(schedule(100)) == pytest.approx(0.0, abs=1e-6)


def test_linear_decay_starts_at_the_peak_and_ends_at_zero():
    recipe = dataclasses.replace(get_recipe("airbench"), learning_rate=0.24, epochs=8)
    schedule = train.learning_rate_schedule(recipe, steps_per_epoch=25)
    assert float(schedule(0)) == pytest.approx(0.24)
    assert float(schedule(100)) == pytest.approx(0.12)
    assert float(schedule(200)) == pytest.approx(0.0, abs=1e-7)


def test_precision_choices():
    assert precision.resolve_precision("float32") == "float32"
    assert precision.resolve_precision("auto") in ("float32", "mixed_bfloat16", "mixed_float16")
    with pytest.raises(ValueError, match="Unknown mixed_precision 'half'; valid choices: auto"):
        precision.resolve_precision("half")
    try:
        assert precision.apply_precision("mixed_bfloat16") == "mixed_bfloat16"
        assert keras.mixed_precision.global_policy().compute_dtype == "bfloat16"
    finally:
        keras.mixed_precision.set_global_policy("float32")
