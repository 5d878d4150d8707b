"""From uint8 arrays to what the model eats: scaling, splits and ``tf.data`` pipelines.

Pixel preprocessing (the seed's ``/ 255``, or per-channel standardisation) lives in a
Keras layer at the front of the model rather than in the pipeline: the saved model then
takes raw 0-255 pixels, so evaluation, prediction and a reloaded model cannot be fed
differently scaled images by mistake. The pipeline only shuffles, batches, casts and
(for recipes that ask for it) augments.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from cifar_cnn.config import PREPROCESSING_MODES


def scale_pixels(images: np.ndarray) -> np.ndarray:
    """Scale uint8 pixels to float32 in [0, 1] as the seed notebook does (``x / 255``).

    Computed as ``x * float32(1 / 255)``, the arithmetic of the model's ``"scale"``
    preprocessing layer (``keras.layers.Rescaling``), so both give bit-identical inputs;
    this differs from a float32 ``x / 255`` by at most one unit in the last place.

    Args:
        images: uint8 array of any shape.

    Returns:
        A float32 array of the same shape.
    """
    return images.astype(np.float32) * np.float32(1.0 / 255.0)


def channel_statistics(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of raw pixels, for standardisation.

    Args:
        images: uint8 array (N, H, W, C): compute on the training split only.

    Returns:
        ``(mean, std)``, each float32 of shape (C,), in 0-255 pixel units.
    """
    pixels = images.reshape(-1, images.shape[-1]).astype(np.float64)
    return pixels.mean(axis=0).astype(np.float32), pixels.std(axis=0).astype(np.float32)


def preprocessing_layer(mode: str = "scale", train_images: np.ndarray | None = None):
    """The Keras layer that turns raw 0-255 pixels into model inputs.

    Args:
        mode: ``"scale"`` divides by 255 (the seed); ``"standardize"`` subtracts the
            training split's per-channel mean and divides by its standard deviation.
        train_images: The training split, required for ``"standardize"``.

    Returns:
        A ``keras.layers.Layer`` named ``"preprocessing"``.
    """
    import keras

    if mode == "scale":
        return keras.layers.Rescaling(1.0 / 255.0, name="preprocessing")
    if mode == "standardize":
        if train_images is None:
            raise ValueError("preprocessing 'standardize' needs the training images for its "
                             "per-channel mean and standard deviation.")
        mean, std = channel_statistics(train_images)
        return keras.layers.Normalization(mean=mean, variance=np.square(std),
                                          name="preprocessing")
    raise ValueError(f"Unknown preprocessing {mode!r}; valid choices: "
                     f"{', '.join(PREPROCESSING_MODES)}.")


def stratified_counts(class_sizes: np.ndarray, total: int) -> np.ndarray:
    """How many examples each class gives to a stratified subset of exactly ``total``.

    Each class gets its proportional share rounded down; the examples left over go one each
    to the classes with the largest fractional shares (ties to the lower label), so the
    counts add up to ``total`` exactly and no class is off by more than one from its share.

    Args:
        class_sizes: Examples per class.
        total: Size of the subset, from 0 to ``class_sizes.sum()``.

    Returns:
        An int array of per-class counts, each at most that class's size.
    """
    class_sizes = np.asarray(class_sizes, dtype=np.int64)
    available = int(class_sizes.sum())
    if not 0 <= total <= available:
        raise ValueError(f"a stratified subset of {total} cannot be drawn from {available} "
                         "examples.")
    shares = class_sizes * (total / available) if available else class_sizes * 0.0
    counts = np.minimum(np.floor(shares).astype(np.int64), class_sizes)
    remainders = shares - counts
    # Stable sort on the negated remainders: the largest first, ties in label order.
    for index in np.argsort(-remainders, kind="stable"):
        if counts.sum() == total:
            break
        if counts[index] < class_sizes[index]:
            counts[index] += 1
    return counts


def _stratified_indices(labels: np.ndarray, total: int, seed: int):
    """Split indices so each class keeps its share; return (kept, taken) index arrays.

    ``taken`` holds exactly ``total`` indices (see :func:`stratified_counts`).
    """
    generator = np.random.default_rng(seed)
    classes, sizes = np.unique(labels, return_counts=True)
    kept, taken = [], []
    for label, count in zip(classes, stratified_counts(sizes, total)):
        indices = np.flatnonzero(labels == label)
        generator.shuffle(indices)
        taken.append(indices[:count])
        kept.append(indices[count:])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(taken))


def class_count_range(labels: np.ndarray) -> str:
    """How a (stratified) subset rounded: ``"51-52 per class"`` or ``"50 per class"``.

    Args:
        labels: The subset's labels.

    Returns:
        The smallest and largest count of any class present, as text.
    """
    counts = np.unique(np.asarray(labels), return_counts=True)[1]
    if counts.size == 0:
        return "empty"
    low, high = int(counts.min()), int(counts.max())
    return f"{low} per class" if low == high else f"{low}-{high} per class"


def validation_count(examples: int, validation_split: float) -> int:
    """How many of ``examples`` training images :func:`train_validation_split` holds out.

    Args:
        examples: Images in the training set.
        validation_split: Fraction held out, in [0, 1).

    Returns:
        The rounded count (0 for no split).
    """
    return int(round(validation_split * examples))


def train_validation_split(images: np.ndarray, labels: np.ndarray,
                           validation_split: float, seed: int):
    """Hold out a seeded, stratified validation split.

    Args:
        images: Training images (N, 32, 32, 3).
        labels: Their labels (N,).
        validation_split: Fraction in [0, 1) held out; 0 keeps everything for training
            (the seed notebook's behaviour) and returns None for the validation part.
        seed: Seed for the split; the same seed always gives the same split.

    Returns:
        ``((train_images, train_labels), validation)`` where validation is
        ``(images, labels)`` or None.
    """
    if not 0.0 <= validation_split < 1.0:
        raise ValueError(f"validation_split must be in [0, 1), got {validation_split}.")
    if validation_split == 0:
        return (images, labels), None
    kept, taken = _stratified_indices(labels, validation_count(len(labels), validation_split),
                                      seed)
    return (images[kept], labels[kept]), (images[taken], labels[taken])


def subsample(images: np.ndarray, labels: np.ndarray, count: int | None, seed: int):
    """Keep a seeded, stratified subset of exactly ``count`` examples (None or >= N keeps all).

    Never more than ``count``: per-class shares are rounded so that they add up to it
    (:func:`stratified_counts`); :func:`class_count_range` tells how they rounded.

    Args:
        images: Images (N, ...).
        labels: Labels (N,).
        count: How many to keep.
        seed: Seed for the choice.

    Returns:
        ``(images, labels)``, the subset in the original order.
    """
    if count is None or count >= len(labels):
        return images, labels
    _, taken = _stratified_indices(labels, count, seed)
    return images[taken], labels[taken]


# Fixed pipeline parallelism (see make_dataset for why it is not autotuned): two batches
# mapped at once and two ready ahead keep a step's input waiting on nothing.
MAP_THREADS = 2
PREFETCH_BATCHES = 2
AUTOTUNE_INPUT = False


def make_dataset(images: np.ndarray, labels: np.ndarray, batch_size: int, *,
                 shuffle: bool = False, seed: int | None = None,
                 augment: Callable | None = None, drop_remainder: bool = False):
    """Build a ``tf.data`` pipeline of float32 batches of raw 0-255 pixels.

    Batching comes before the per-batch map, so casting and augmentation run as a few
    vectorised ops per batch instead of one small op per image.

    Args:
        images: uint8 images (N, 32, 32, 3).
        labels: Integer labels (N,).
        batch_size: Examples per batch (the global batch under a distribution strategy).
        shuffle: Reshuffle every epoch (for training).
        seed: Shuffle and augmentation seed, for reproducible order.
        augment: Optional function ``float_images_batch -> images_batch`` run inside the
            pipeline on training batches (random ops inside it should be seeded).
        drop_remainder: Drop the last partial batch (useful for fixed-shape compilation).

    Returns:
        A ``tf.data.Dataset`` of ``(images float32 (B, 32, 32, 3), labels int32 (B,))``,
        ending in ``prefetch``.
    """
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int32)))
    if shuffle:
        dataset = dataset.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)

    def cast(batch_images, batch_labels):
        return tf.cast(batch_images, tf.float32), batch_labels

    dataset = dataset.map(cast, num_parallel_calls=MAP_THREADS, deterministic=True)
    if augment is not None:
        dataset = dataset.map(lambda batch_images, batch_labels:
                              (augment(batch_images), batch_labels),
                              num_parallel_calls=MAP_THREADS, deterministic=True)
    # No autotuning thread: when Keras drops an epoch's iterator, its destructor waits for
    # that thread, which sleeps between optimisations for up to a minute. On a 2-core AVX2
    # VM, epoch starts stalled 30-48 s with the CPU idle, in about one run in three; py-spy
    # showed fit() in ~IteratorResource -> RootDataset::Iterator -> waiting on its thread.
    # The maps and the prefetch need no tuning: the pipeline runs 40-80x faster than
    # training on that machine, and the data order and augmentation are unchanged.
    options = tf.data.Options()
    options.autotune.enabled = AUTOTUNE_INPUT
    return dataset.prefetch(PREFETCH_BATCHES).with_options(options)
