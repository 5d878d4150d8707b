"""CIFAR-10 data: sources -> uint8 arrays -> verified cache -> splits -> tf.data pipelines.

The public entry point mirrors Keras::

    from cifar_cnn.data import load_cifar10, CLASS_NAMES
    (x_train, y_train), (x_test, y_test) = load_cifar10("path/to/cifar10-jpeg.tar.gz")

Nothing here imports TensorFlow until a pipeline is built.
"""

from cifar_cnn.data.errors import DataSourceError
from cifar_cnn.data.formats import CLASS_NAMES, IMAGE_SHAPE
from cifar_cnn.data.pipeline import (
    PREPROCESSING_MODES,
    channel_statistics,
    class_count_range,
    make_dataset,
    preprocessing_layer,
    scale_pixels,
    stratified_counts,
    subsample,
    train_validation_split,
    validation_count,
)
from cifar_cnn.data.sources import load_cifar10, resolve_source

__all__ = [
    "CLASS_NAMES",
    "IMAGE_SHAPE",
    "PREPROCESSING_MODES",
    "DataSourceError",
    "channel_statistics",
    "class_count_range",
    "load_cifar10",
    "make_dataset",
    "preprocessing_layer",
    "resolve_source",
    "scale_pixels",
    "stratified_counts",
    "subsample",
    "train_validation_split",
    "validation_count",
]
