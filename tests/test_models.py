"""Model registry and the seed network's exact architecture."""

import keras
import numpy as np
import pytest

from cifar_cnn import models
from cifar_cnn.data import preprocessing_layer


def test_seed_cnn_matches_the_seed_notebook():
    model = models.build_model("seed_cnn")
    assert model.count_params() == 579_402
    layer_kinds = [type(layer).__name__ for layer in model.layers]
    assert layer_kinds == ["InputLayer", "Rescaling", "Conv2D", "MaxPooling2D", "Conv2D",
                           "MaxPooling2D", "Flatten", "Dense", "Dropout", "Dense", "Dropout",
                           "Dense"]
    convolutions = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [(layer.filters, layer.kernel_size, layer.padding) for layer in convolutions] == \
        [(32, (3, 3), "same"), (64, (3, 3), "same")]
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.units for layer in dense] == [128, 256, 10]
    assert [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)] \
        == [0.4, 0.4]
    assert dense[-1].activation.__name__ == "softmax"


def test_seed_cnn_outputs_probabilities_for_raw_pixels():
    model = models.build_model("seed_cnn")
    pixels = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype("float32")
    probabilities = model.predict(pixels, verbose=0)
    assert probabilities.shape == (4, 10)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_preprocessing_layer_is_the_first_block():
    images = np.random.default_rng(1).integers(0, 256, (8, 32, 32, 3)).astype(np.uint8)
    model = models.build_model("seed_cnn", preprocessing=preprocessing_layer("standardize", images))
    assert model.get_layer("preprocessing").__class__.__name__ == "Normalization"
    assert model.count_params() == 579_402  # Normalization's statistics are not trainable.


def test_same_seed_same_initial_weights():
    keras.utils.set_random_seed(3)
    first = models.build_model("seed_cnn").get_weights()
    keras.utils.set_random_seed(3)
    second = models.build_model("seed_cnn").get_weights()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_unknown_model_name_lists_the_valid_choices():
    with pytest.raises(ValueError, match="Unknown model 'vgg'; valid choices: ") as raised:
        models.build_model("vgg")
    for name in models.MODEL_BUILDERS:
        assert name in str(raised.value)
