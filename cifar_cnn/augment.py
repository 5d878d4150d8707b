"""Training-time augmentation as vectorised batch operations for the ``tf.data`` pipeline.

Augmentation runs in the input pipeline, on whole batches, rather than inside the model:
the pipeline runs on the CPU in parallel with the training step (``prefetch``), the saved
model stays a plain function of its input, and one flip or translation of a 512-image batch
is a handful of ops instead of 512 small ones. ``benchmarks/recipes.py`` measures the
pipeline's images/s against the model's to show it is not the bottleneck.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

AUGMENTATIONS = ("flip", "alternating_flip", "translate")
TRANSLATE_PIXELS = 2


def random_flip(images):
    """Mirror each image left-right with probability 1/2.

    Args:
        images: float tensor (B, H, W, C).

    Returns:
        A tensor of the same shape.
    """
    import tensorflow as tf

    flip = tf.random.uniform([tf.shape(images)[0], 1, 1, 1]) < 0.5
    return tf.where(flip, tf.reverse(images, axis=[2]), images)


def random_translate(images, pixels: int = TRANSLATE_PIXELS):
    """Shift each image by up to ``pixels`` in each direction, filling by reflection.

    Equivalent to reflect-padding by ``pixels`` and taking a random crop of the original
    size, done for the whole batch with two gathers.

    Args:
        images: float tensor (B, H, W, C).
        pixels: Largest shift, in pixels.

    Returns:
        A tensor of the same shape.
    """
    import tensorflow as tf

    batch, height, width = tf.shape(images)[0], tf.shape(images)[1], tf.shape(images)[2]
    padded = tf.pad(images, [[0, 0], [pixels, pixels], [pixels, pixels], [0, 0]], mode="REFLECT")
    offsets = tf.random.uniform([batch, 2], 0, 2 * pixels + 1, dtype=tf.int32)
    rows = offsets[:, :1] + tf.range(height)[None, :]
    columns = offsets[:, 1:] + tf.range(width)[None, :]
    shifted = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(shifted, columns, axis=2, batch_dims=1)


def flip_all(images, flip):
    """Mirror every image of the batch left-right when ``flip`` is true.

    Args:
        images: float tensor (B, H, W, C).
        flip: A boolean scalar tensor.

    Returns:
        A tensor of the same shape.
    """
    import tensorflow as tf

    return tf.where(flip, tf.reverse(images, axis=[2]), images)


_FUNCTIONS = {"flip": random_flip, "translate": random_translate}


class Augmenter:
    """The recipe's training-time augmentations, as one batch function for the pipeline.

    ``alternating_flip`` is airbench's flip: each image is mirrored at random once, before
    training (:meth:`prepare`), and every odd epoch the whole set is mirrored, so that over
    two epochs each image is seen once each way instead of at random (arXiv 2404.00498,
    section 3.6). The epoch comes from a variable that :meth:`callback` sets at the start of
    each epoch, before ``model.fit`` draws that epoch's first batch.

    Args:
        names: Augmentation names, each one of ``AUGMENTATIONS``.
        seed: Seed of the one-time random mirroring.
    """

    def __init__(self, names: Sequence[str], seed: int = 0):
        unknown = [name for name in names if name not in AUGMENTATIONS]
        if unknown:
            raise ValueError(f"Unknown augmentation(s) {', '.join(unknown)}; valid choices: "
                             f"{', '.join(AUGMENTATIONS)}.")
        self.names, self.seed = tuple(names), seed
        self._epoch = None
        if "alternating_flip" in self.names:
            import tensorflow as tf

            self._epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="augment_epoch")

    def prepare(self, images: np.ndarray) -> np.ndarray:
        """The training images as the pipeline should hold them (pre-mirrored if alternating).

        Args:
            images: uint8 images (N, H, W, C); not modified.

        Returns:
            The same array, or a copy with a seeded random half mirrored.
        """
        if self._epoch is None:
            return images
        mirrored = np.random.default_rng(self.seed).random(len(images)) < 0.5
        images = images.copy()
        images[mirrored] = images[mirrored, :, ::-1]
        return images

    def __call__(self, images):
        for name in self.names:
            if name == "alternating_flip":
                images = flip_all(images, self._epoch % 2 == 1)
            else:
                images = _FUNCTIONS[name](images)
        return images

    def callback(self):
        """A Keras callback that tells the pipeline the epoch, or None when none is needed."""
        if self._epoch is None:
            return None
        import keras

        epoch_variable = self._epoch

        class _SetAugmentationEpoch(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                epoch_variable.assign(epoch)

        return _SetAugmentationEpoch()


def make_augmenter(names: Sequence[str], seed: int = 0) -> Augmenter | None:
    """The named augmentations as one :class:`Augmenter` for ``make_dataset(augment=...)``.

    Args:
        names: Augmentation names, each one of ``AUGMENTATIONS``.
        seed: Seed of the alternating flip's one-time random mirroring.

    Returns:
        An :class:`Augmenter`, or None when ``names`` is empty.
    """
    augmenter = Augmenter(names, seed)
    return augmenter if augmenter.names else None
