"""Named Keras model builders and their registry.

Every builder takes raw 0-255 pixels through a preprocessing layer it is given (see
``cifar_cnn.data.preprocessing_layer``), so a saved model carries its own preprocessing.
Models know nothing of data files; recipes (``cifar_cnn.recipes``) pick a builder by name.
"""

from __future__ import annotations

from typing import Callable

import keras
from keras import layers

NUM_CLASSES = 10
INPUT_SHAPE = (32, 32, 3)


def seed_cnn(preprocessing: keras.layers.Layer | None = None, num_classes: int = NUM_CLASSES,
             input_shape: tuple[int, int, int] = INPUT_SHAPE) -> keras.Model:
    """The seed notebook's network, layer for layer.

    Conv2D(32, 3, same, relu) - MaxPool(2) - Conv2D(64, 3, same, relu) - MaxPool(2) -
    Flatten - Dense(128, relu) - Dropout(0.4) - Dense(256, relu) - Dropout(0.4) -
    Dense(10, softmax): 579,402 trainable parameters.

    Args:
        preprocessing: Layer applied to the raw pixels first (default: ``x / 255``, as the
            seed scaled its arrays).
        num_classes: Output classes.
        input_shape: Image shape, channels last.

    Returns:
        An uncompiled functional ``keras.Model`` named ``"seed_cnn"``.
    """
    inputs = keras.Input(shape=input_shape, name="pixels")
    x = (preprocessing or layers.Rescaling(1.0 / 255.0, name="preprocessing"))(inputs)
    x = layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1")(x)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(128, activation="relu", name="dense1")(x)
    x = layers.Dropout(0.4, name="dropout1")(x)
    x = layers.Dense(256, activation="relu", name="dense2")(x)
    x = layers.Dropout(0.4, name="dropout2")(x)
    # float32 output keeps softmax and the loss numerically safe under mixed precision.
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32",
                           name="predictions")(x)
    return keras.Model(inputs, outputs, name="seed_cnn")


MODEL_BUILDERS: dict[str, Callable[..., keras.Model]] = {
    "seed_cnn": seed_cnn,
}


def build_model(name: str, preprocessing: keras.layers.Layer | None = None,
                **options) -> keras.Model:
    """Build a registered model by name.

    Args:
        name: A key of ``MODEL_BUILDERS``.
        preprocessing: The input preprocessing layer (see ``cifar_cnn.data``).
        **options: Passed to the builder (``num_classes``, ``input_shape``, ...).

    Returns:
        An uncompiled ``keras.Model``.
    """
    if name not in MODEL_BUILDERS:
        raise ValueError(f"Unknown model {name!r}; valid choices: "
                         f"{', '.join(sorted(MODEL_BUILDERS))}.")
    return MODEL_BUILDERS[name](preprocessing=preprocessing, **options)
