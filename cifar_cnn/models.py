"""Named Keras model builders and their registry.

Every builder takes raw 0-255 pixels through a preprocessing layer it is given (see
``cifar_cnn.data.preprocessing_layer``), so a saved model carries its own preprocessing.
Models know nothing of data files; recipes (``cifar_cnn.recipes``) pick a builder by name.
"""

from __future__ import annotations

from typing import Callable

import keras
import numpy as np
from keras import layers

NUM_CLASSES = 10
INPUT_SHAPE = (32, 32, 3)


def seed_cnn(preprocessing: keras.layers.Layer | None = None, num_classes: int = NUM_CLASSES,
             input_shape: tuple[int, int, int] = INPUT_SHAPE, train_images=None) -> keras.Model:
    """The seed notebook's network, layer for layer.

    Conv2D(32, 3, same, relu) - MaxPool(2) - Conv2D(64, 3, same, relu) - MaxPool(2) -
    Flatten - Dense(128, relu) - Dropout(0.4) - Dense(256, relu) - Dropout(0.4) -
    Dense(10, softmax): 579,402 trainable parameters.

    Args:
        preprocessing: Layer applied to the raw pixels first (default: ``x / 255``, as the
            seed scaled its arrays).
        num_classes: Output classes.
        input_shape: Image shape, channels last.
        train_images: Unused (the registry passes it to every builder).

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


def _softmax_head(x, num_classes: int):
    """Dense logits, then a float32 softmax (safe under mixed precision)."""
    x = layers.Dense(num_classes, name="logits")(x)
    return _float32_softmax(x)


def _float32_softmax(logits):
    """The probabilities every model here ends in, computed in float32."""
    return layers.Activation("softmax", dtype="float32", name="predictions")(logits)


def regularized_seed_cnn(preprocessing: keras.layers.Layer | None = None,
                         num_classes: int = NUM_CLASSES,
                         input_shape: tuple[int, int, int] = INPUT_SHAPE,
                         train_images=None) -> keras.Model:
    """The seed network with BatchNorm after each convolution and the first dense layer.

    Same widths as :func:`seed_cnn` (the point is to show what standard regularisation does
    to the same small network); convolutions lose their bias, which BatchNorm replaces.

    Args:
        preprocessing: Layer applied to raw pixels first (default ``x / 255``).
        num_classes: Output classes.
        input_shape: Image shape, channels last.
        train_images: Unused.

    Returns:
        An uncompiled ``keras.Model`` named ``"regularized_seed_cnn"``.
    """
    inputs = keras.Input(shape=input_shape, name="pixels")
    x = (preprocessing or layers.Rescaling(1.0 / 255.0, name="preprocessing"))(inputs)
    for index, filters in enumerate((32, 64), start=1):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{index}")(x)
        x = layers.BatchNormalization(name=f"bn{index}")(x)
        x = layers.Activation("relu", name=f"relu{index}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{index}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(128, use_bias=False, name="dense1")(x)
    x = layers.BatchNormalization(name="bn_dense1")(x)
    x = layers.Activation("relu", name="relu_dense1")(x)
    x = layers.Dropout(0.4, name="dropout1")(x)
    x = layers.Dense(256, activation="relu", name="dense2")(x)
    x = layers.Dropout(0.4, name="dropout2")(x)
    return keras.Model(inputs, _softmax_head(x, num_classes), name="regularized_seed_cnn")


def whitening_kernel(images: np.ndarray, patch_size: int = 2, epsilon: float = 5e-4) -> np.ndarray:
    """Convolution filters that whiten image patches (PCA whitening), and their negatives.

    The eigenvectors of the patches' second-moment matrix, each divided by the square root
    of its eigenvalue, decorrelate the pixels of every patch: the first layer then sees
    features of equal variance, which lets the rest of the network train fast (airbench,
    arXiv 2404.00498). As airbench94_muon's ``init_whiten``, the matrix is not centred
    (the inputs are already standardised).

    Args:
        images: Preprocessed float images (N, H, W, C); airbench uses 5,000.
        patch_size: Height and width of the patches (and of the kernel).
        epsilon: Added to the eigenvalues, so near-zero directions are not blown up.

    Returns:
        float32 kernel (patch_size, patch_size, C, 2 * patch_size**2 * C).
    """
    images = np.asarray(images, dtype=np.float64)
    channels = images.shape[-1]
    windows = np.lib.stride_tricks.sliding_window_view(images, (patch_size, patch_size),
                                                       axis=(1, 2))
    # (N, H', W', C, p, p) -> rows of patches flattened in the kernel's (p, p, C) order.
    patches = windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, patch_size * patch_size * channels)
    second_moment = patches.T @ patches / len(patches)
    eigenvalues, eigenvectors = np.linalg.eigh(second_moment)
    filters = eigenvectors / np.sqrt(eigenvalues + epsilon)
    filters = np.concatenate([filters, -filters], axis=1)
    return filters.reshape(patch_size, patch_size, channels, -1).astype(np.float32)


@keras.saving.register_keras_serializable(package="cifar_cnn")
class PatchWhitening(layers.Layer):
    """A 2x2 'valid' convolution whose kernel is fixed (set from data) and whose bias trains.

    Args:
        filters: Output channels (twice the patch dimension).
        kernel_size: Patch height and width.
    """

    def __init__(self, filters: int, kernel_size: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size = filters, kernel_size

    def build(self, input_shape):
        self.kernel = self.add_weight(
            name="kernel", shape=(self.kernel_size, self.kernel_size, input_shape[-1], self.filters),
            initializer="zeros", trainable=False)
        # PyTorch's default convolution bias, as the reference keeps it: Uniform(+-1/sqrt(fan_in)).
        bound = 1.0 / np.sqrt(self.kernel_size * self.kernel_size * input_shape[-1])
        self.bias = self.add_weight(name="bias", shape=(self.filters,),
                                    initializer=keras.initializers.RandomUniform(-bound, bound))

    def call(self, inputs):
        outputs = keras.ops.conv(inputs, keras.ops.cast(self.kernel, inputs.dtype), padding="valid")
        return outputs + keras.ops.cast(self.bias, inputs.dtype)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size}


@keras.saving.register_keras_serializable(package="cifar_cnn")
class PartialIdentity(keras.initializers.Initializer):
    """Uniform(+-1/sqrt(fan_in)) kernels whose first ``in_channels`` filters are identities.

    PyTorch's default convolution initialisation followed by ``dirac_`` on the first
    ``in_channels`` output filters, as airbench: those filters pass their input channel
    through unchanged at the start of training, an implicit residual connection that lets
    a plain deep stack train as fast as a residual one.
    """

    def __call__(self, shape, dtype=None):
        height, width, in_channels, out_channels = shape
        bound = 1.0 / np.sqrt(height * width * in_channels)
        kernel = np.random.default_rng(int(keras.random.randint((), 0, 2**31 - 1))).uniform(
            -bound, bound, size=shape)
        identities = min(in_channels, out_channels)
        kernel[:, :, :, :identities] = 0.0
        kernel[height // 2, width // 2, np.arange(identities), np.arange(identities)] = 1.0
        return keras.ops.convert_to_tensor(kernel, dtype=dtype or "float32")


@keras.saving.register_keras_serializable(package="cifar_cnn")
class UnitVarianceUniform(keras.initializers.Initializer):
    """Uniform weights rescaled so that the drawn tensor's standard deviation is exactly 1.

    airbench's head: PyTorch's default linear initialisation, then ``w *= 1 / w.std()``;
    the network divides the logits by its width instead.
    """

    def __call__(self, shape, dtype=None):
        weights = np.random.default_rng(int(keras.random.randint((), 0, 2**31 - 1))).uniform(
            -1.0, 1.0, size=shape)
        weights /= weights.std(ddof=1)  # PyTorch's Tensor.std is the unbiased one.
        return keras.ops.convert_to_tensor(weights, dtype=dtype or "float32")


@keras.saving.register_keras_serializable(package="cifar_cnn")
class FusedBatchNormalization(layers.BatchNormalization):
    """Keras' BatchNormalization, trained through TensorFlow's fused kernel on CPUs.

    Keras 3 normalises with separate moments, subtract, multiply and add ops, each a pass
    over the activations in the forward and the backward pass; TensorFlow's
    ``FusedBatchNormV3`` does the forward in one kernel and the backward in another (oneDNN's
    where TensorFlow runs oneDNN). On a 2-core AVX2 CPU it cut BatchNorm's op time in an
    airbench step from 862 to 316 ms and the step from 13.0 to 12.4 s
    (``benchmarks/results/profile-cpu-2core-avx2.json``).
    Same weights, settings (momentum, any epsilon: the raw op has no lower bound on a CPU)
    and saved format as the Keras layer; inference, other backends, other axes and GPUs (where
    cuDNN bounds epsilon and XLA fuses the Keras ops anyway) take Keras' own path. The moving
    variance is updated with the unbiased batch variance, as PyTorch does, where Keras uses
    the biased one (a relative difference of 1/(N*H*W - 1), under 1e-4 here).
    """

    def build(self, input_shape):
        super().build(input_shape)
        import tensorflow as tf

        self._fused = (keras.backend.backend() == "tensorflow" and len(input_shape) == 4
                       and self.axis in (3, -1) and not self.renorm
                       and not tf.config.list_physical_devices("GPU"))

    def call(self, inputs, training=None, mask=None):
        if not (getattr(self, "_fused", False) and training and self.trainable and mask is None):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        channels = inputs.shape[-1]
        scale = tf.cast(self.gamma, "float32") if self.scale else tf.ones((channels,))
        offset = tf.cast(self.beta, "float32") if self.center else tf.zeros((channels,))
        outputs, mean, variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=inputs, scale=scale, offset=offset, mean=tf.zeros((0,)),
            variance=tf.zeros((0,)), epsilon=self.epsilon, exponential_avg_factor=1.0,
            data_format="NHWC", is_training=True)
        self.moving_mean.assign(self.moving_mean * self.momentum
                                + tf.cast(mean, self.moving_mean.dtype) * (1.0 - self.momentum))
        self.moving_variance.assign(
            self.moving_variance * self.momentum
            + tf.cast(variance, self.moving_variance.dtype) * (1.0 - self.momentum))
        return tf.cast(outputs, self.compute_dtype)


# airbench's BatchNorm: running statistics that follow the weights quickly (PyTorch momentum
# 0.4 is Keras momentum 0.6), an epsilon that leaves the normalisation exact, and no scale.
AIRBENCH_BATCHNORM = {"momentum": 0.6, "epsilon": 1e-12, "scale": False, "center": True}
# The layer airbench normalises with (benchmarks/profile_step.py swaps in Keras' own to
# measure what the fused one buys).
AirbenchBatchNorm = FusedBatchNormalization


def _conv_group(x, filters: int, name: str):
    """Conv - MaxPool - BN - GELU - Conv - BN - GELU, the airbench block (no biases in convs)."""
    for index in (1, 2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False,
                          kernel_initializer=PartialIdentity(), name=f"{name}_conv{index}")(x)
        if index == 1:
            x = layers.MaxPooling2D(2, name=f"{name}_pool")(x)
        x = AirbenchBatchNorm(**AIRBENCH_BATCHNORM, name=f"{name}_bn{index}")(x)
        x = layers.Activation("gelu", name=f"{name}_gelu{index}")(x)
    return x


def airbench_net(preprocessing: keras.layers.Layer | None = None, num_classes: int = NUM_CLASSES,
                 input_shape: tuple[int, int, int] = INPUT_SHAPE, train_images=None,
                 widths: tuple[int, int, int] = (64, 256, 256),
                 name: str = "airbench_net") -> keras.Model:
    """airbench94_muon's network (KellerJordan/cifar10-airbench), layer for layer.

    A frozen 2x2 patch-whitening convolution (24 filters computed from 5,000 training
    images spread over the set) with a trainable bias, GELU, three
    Conv-Pool-BN-GELU-Conv-BN-GELU groups (64, 256, 256 channels) of bias-free,
    identity-initialised 3x3 convolutions, a 3x3 max pool (on the final 4x4 map it keeps
    the top-left 3x3, as the reference's ``MaxPool2d(3)``), and a bias-free linear head
    whose logits are divided by the width (256).

    Args:
        preprocessing: Layer applied to raw pixels first (the recipe standardises).
        num_classes: Output classes.
        input_shape: Image shape, channels last.
        train_images: Raw uint8 training images, for the whitening filters (required).
        widths: Channels of the three groups.
        name: The model's name (the narrow variants name theirs).

    Returns:
        An uncompiled ``keras.Model`` named ``name``.
    """
    if train_images is None:
        raise ValueError("airbench_net needs train_images to compute its whitening layer.")
    preprocessing = preprocessing or layers.Rescaling(1.0 / 255.0, name="preprocessing")
    # 5,000 images, as the reference; spread over the set, since a copy sorted by class
    # (the shared JPEG copy is) would otherwise give the whitening one class only.
    sample = np.asarray(train_images[::max(1, len(train_images) // 5000)][:5000],
                        dtype=np.float32)
    whitening = PatchWhitening(filters=24, kernel_size=2, name="whitening")
    inputs = keras.Input(shape=input_shape, name="pixels")
    x = preprocessing(inputs)
    x = whitening(x)
    whitening.kernel.assign(whitening_kernel(keras.ops.convert_to_numpy(preprocessing(sample))))
    x = layers.Activation("gelu", name="whitening_gelu")(x)
    for index, width in enumerate(widths, start=1):
        x = _conv_group(x, width, name=f"group{index}")
    x = layers.MaxPooling2D(3, name="final_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(num_classes, use_bias=False, kernel_initializer=UnitVarianceUniform(),
                     name="logits")(x)
    x = layers.Rescaling(1.0 / widths[-1], name="logit_scale")(x)
    return keras.Model(inputs, _float32_softmax(x), name=name)


def airbench_small_net(preprocessing: keras.layers.Layer | None = None,
                       num_classes: int = NUM_CLASSES,
                       input_shape: tuple[int, int, int] = INPUT_SHAPE,
                       train_images=None) -> keras.Model:
    """:func:`airbench_net` with narrow groups (24, 48, 96): about 9x fewer operations.

    For short budgets on CPUs, where reaching a moderate accuracy first matters more than
    the final accuracy.

    Args:
        preprocessing: Layer applied to raw pixels first.
        num_classes: Output classes.
        input_shape: Image shape, channels last.
        train_images: Raw uint8 training images, for the whitening filters (required).

    Returns:
        An uncompiled ``keras.Model`` named ``"airbench_small_net"``.
    """
    return airbench_net(preprocessing, num_classes, input_shape, train_images,
                        widths=(24, 48, 96), name="airbench_small_net")


def airbench_tiny_net(preprocessing: keras.layers.Layer | None = None,
                      num_classes: int = NUM_CLASSES,
                      input_shape: tuple[int, int, int] = INPUT_SHAPE,
                      train_images=None) -> keras.Model:
    """:func:`airbench_net` with the narrowest groups (16, 32, 64): about 17x fewer operations.

    For the shortest budgets on CPUs: one epoch of it reaches 0.68 in about a sixth of the
    seed network's time to 0.68.

    Args:
        preprocessing: Layer applied to raw pixels first.
        num_classes: Output classes.
        input_shape: Image shape, channels last.
        train_images: Raw uint8 training images, for the whitening filters (required).

    Returns:
        An uncompiled ``keras.Model`` named ``"airbench_tiny_net"``.
    """
    return airbench_net(preprocessing, num_classes, input_shape, train_images,
                        widths=(16, 32, 64), name="airbench_tiny_net")


MODEL_BUILDERS: dict[str, Callable[..., keras.Model]] = {
    "seed_cnn": seed_cnn,
    "regularized_seed_cnn": regularized_seed_cnn,
    "airbench_net": airbench_net,
    "airbench_small_net": airbench_small_net,
    "airbench_tiny_net": airbench_tiny_net,
}


def build_model(name: str, preprocessing: keras.layers.Layer | None = None,
                **options) -> keras.Model:
    """Build a registered model by name.

    Args:
        name: A key of ``MODEL_BUILDERS``.
        preprocessing: The input preprocessing layer (see ``cifar_cnn.data``).
        **options: Passed to the builder (``num_classes``, ``input_shape``, ``train_images``
            for models whose first layer is computed from data).

    Returns:
        An uncompiled ``keras.Model``.
    """
    if name not in MODEL_BUILDERS:
        raise ValueError(f"Unknown model {name!r}; valid choices: "
                         f"{', '.join(sorted(MODEL_BUILDERS))}.")
    return MODEL_BUILDERS[name](preprocessing=preprocessing, **options)


def builder_source(name: str) -> str:
    """The Python source of a registered model's builder, to show the network's definition.

    The notebook displays it so that a reader sees the layers of the recipe's network, not
    only a call into the library.

    Args:
        name: A key of ``MODEL_BUILDERS``.

    Returns:
        The builder function's source code.
    """
    import inspect

    if name not in MODEL_BUILDERS:
        raise ValueError(f"Unknown model {name!r}; valid choices: "
                         f"{', '.join(sorted(MODEL_BUILDERS))}.")
    return inspect.getsource(MODEL_BUILDERS[name])
