"""Training-time augmentation as vectorised batch operations for the ``tf.data`` pipeline.

Augmentation runs in the input pipeline, on whole batches, rather than inside the model:
the pipeline runs on the CPU in parallel with the training step (``prefetch``), the saved
model stays a plain function of its input, and one flip or translation of a 512-image batch
is a handful of ops instead of 512 small ones. ``benchmarks/recipes.py`` measures the
pipeline's images/s against the model's to show it is not the bottleneck.
"""

from __future__ import annotations

from typing import Callable, Sequence

AUGMENTATIONS = ("flip", "translate")
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


_FUNCTIONS = {"flip": random_flip, "translate": random_translate}


def make_augmenter(names: Sequence[str]) -> Callable | None:
    """Chain the named augmentations into one batch function for ``make_dataset(augment=...)``.

    Args:
        names: Augmentation names, each one of ``AUGMENTATIONS``.

    Returns:
        A function ``images -> images``, or None when ``names`` is empty.
    """
    unknown = [name for name in names if name not in _FUNCTIONS]
    if unknown:
        raise ValueError(f"Unknown augmentation(s) {', '.join(unknown)}; valid choices: "
                         f"{', '.join(AUGMENTATIONS)}.")
    if not names:
        return None

    def augment(images):
        for name in names:
            images = _FUNCTIONS[name](images)
        return images

    return augment
