"""Counting a Keras model's floating-point operations per image, layer by layer.

The count is what makes a throughput comparable with the machine's matmul peak
(``benchmarks/machine_peak.py``): images/s times FLOPs per image is the work the network
did each second. The count is read from the layers' shapes, not guessed, and a layer type
it does not know raises an error instead of counting as zero.

Usage (prints every registered model's count, with TensorFlow's profiler count beside it):
    python benchmarks/flops.py
"""

from __future__ import annotations

import json
import math

# Written into the benchmark's JSON, so a reader knows what the FLOP numbers are.
FLOP_CONVENTION = {
    "forward_flops_per_image": "convolution and dense (matmul) FLOPs only, one image of the "
                               "model's input shape, a multiply-add counted as 2 FLOPs: "
                               "Conv2D 2*H_out*W_out*k_h*k_w*(C_in/groups)*C_out, the "
                               "whitening layer (PatchWhitening) as the 2x2 valid convolution "
                               "it is, Dense 2*inputs*outputs",
    "elementwise_flops_per_image": "reported separately and not included above: bias adds, "
                                   "activations and scalings 1 per element (GELU counted as "
                                   "one operation, not its instruction count), BatchNorm 2 per "
                                   "element (its inference form, scale and shift; batch "
                                   "statistics not counted), Normalization 2, max pooling "
                                   "(window size - 1) comparisons per output element; "
                                   "Dropout, Flatten and the input 0",
    "training_flops_per_image": "3 x forward_flops_per_image: the forward matmuls plus two "
                                "backward matmuls of the same size each (the gradient with "
                                "respect to the layer's input and to its weights). It slightly "
                                "overcounts: the first layer needs no input gradient, and the "
                                "frozen whitening kernel no weight gradient",
}

TRAINING_FLOPS_MULTIPLIER = 3


def _per_image(shape) -> tuple[int, ...]:
    """A layer's tensor shape without its batch dimension, as integers."""
    dimensions = tuple(shape)[1:]
    if any(dimension is None for dimension in dimensions):
        raise ValueError(f"Cannot count FLOPs for a shape with unknown dimensions: {shape}.")
    return tuple(int(dimension) for dimension in dimensions)


def _activation_flops(layer, output_elements: int) -> int:
    """One operation per element for a fused activation, none for a linear one."""
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", "linear")
    return 0 if name == "linear" else output_elements


def layer_flops(layer) -> dict:
    """Forward FLOPs of one layer for one image, split into matmul and elementwise.

    Args:
        layer: A built layer of a functional Keras model (its input and output shapes
            are known).

    Returns:
        ``{"name", "type", "matmul_flops", "elementwise_flops"}``.

    Raises:
        ValueError: For a layer type this counter does not know, so that a new layer is
            never silently counted as free.
    """
    import keras

    from cifar_cnn.models import PatchWhitening

    kind = type(layer).__name__
    if isinstance(layer, keras.layers.InputLayer):
        return {"name": layer.name, "type": kind, "matmul_flops": 0, "elementwise_flops": 0}
    input_shape = _per_image(layer.input.shape)
    output_shape = _per_image(layer.output.shape)
    output_elements = math.prod(output_shape)
    matmul = elementwise = 0

    if isinstance(layer, keras.layers.DepthwiseConv2D):
        # Each input channel has its own depth_multiplier filters: no sum over channels.
        kernel_height, kernel_width = layer.kernel_size
        matmul = 2 * output_elements * kernel_height * kernel_width
        elementwise = (output_elements if layer.use_bias else 0) + \
            _activation_flops(layer, output_elements)
    elif isinstance(layer, keras.layers.Conv2D):
        kernel_height, kernel_width = layer.kernel_size
        input_channels = input_shape[-1] // layer.groups
        matmul = 2 * output_elements * kernel_height * kernel_width * input_channels
        elementwise = (output_elements if layer.use_bias else 0) + \
            _activation_flops(layer, output_elements)
    elif isinstance(layer, PatchWhitening):
        # A 'valid' convolution with a fixed kernel, then a (scaled) bias add.
        matmul = 2 * output_elements * layer.kernel_size ** 2 * input_shape[-1]
        elementwise = output_elements
    elif isinstance(layer, keras.layers.Dense):
        # Dense acts on the last axis; any leading axes repeat the matmul.
        matmul = 2 * math.prod(input_shape) * layer.units
        elementwise = (output_elements if layer.use_bias else 0) + \
            _activation_flops(layer, output_elements)
    elif isinstance(layer, keras.layers.BatchNormalization):
        elementwise = 2 * output_elements
    elif isinstance(layer, keras.layers.Normalization):
        elementwise = 2 * output_elements
    elif isinstance(layer, keras.layers.Rescaling):
        elementwise = output_elements * (1 if layer.offset == 0 else 2)
    elif isinstance(layer, keras.layers.Activation):
        elementwise = output_elements
    elif isinstance(layer, (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)):
        pool_height, pool_width = layer.pool_size
        elementwise = output_elements * (pool_height * pool_width - 1)
    elif isinstance(layer, (keras.layers.GlobalMaxPooling2D,
                            keras.layers.GlobalAveragePooling2D)):
        elementwise = math.prod(input_shape) - output_elements
    elif isinstance(layer, (keras.layers.Flatten, keras.layers.Dropout, keras.layers.Reshape)):
        pass  # Data movement only (Dropout is the identity at inference).
    else:
        raise ValueError(f"No FLOP rule for layer {layer.name!r} of type {kind}; add one to "
                         f"benchmarks/flops.py.")
    return {"name": layer.name, "type": kind, "matmul_flops": int(matmul),
            "elementwise_flops": int(elementwise)}


def _leaf_layers(model):
    """The model's layers, with nested models replaced by their own layers."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _leaf_layers(layer)
        else:
            yield layer


def count_model_flops(model) -> dict:
    """Forward FLOPs per image of a functional Keras model, and its training FLOPs.

    Args:
        model: A built functional ``keras.Model`` (any dtype policy: the count depends on
            shapes only).

    Returns:
        ``{"forward_flops_per_image", "elementwise_flops_per_image",
        "training_flops_per_image", "per_layer"}``; see ``FLOP_CONVENTION`` for what each
        counts.
    """
    per_layer = [layer_flops(layer) for layer in _leaf_layers(model)]
    forward = sum(row["matmul_flops"] for row in per_layer)
    return {
        "forward_flops_per_image": forward,
        "elementwise_flops_per_image": sum(row["elementwise_flops"] for row in per_layer),
        "training_flops_per_image": TRAINING_FLOPS_MULTIPLIER * forward,
        "per_layer": per_layer,
    }


# Written into the profile's JSON, beside FLOP_CONVENTION: what the memory side of the
# roofline counts.
ELEMENTWISE_BYTES_CONVENTION = (
    "every layer that is not a matmul (BatchNorm, activations, pooling, rescaling, the "
    "whitening layer's bias add) reads its input and writes its output once in the forward "
    "pass, (input elements + output elements) x the bytes of its compute dtype; the backward "
    "pass reads the output gradient and the saved input and writes the input gradient, about "
    "twice that: training moves 3 x the forward bytes. Convolutions and Dense layers are "
    "counted as matmuls (FLOP_CONVENTION), their own reads and writes not here")
_MATMUL_OR_FREE_LAYERS = ("InputLayer", "Conv2D", "DepthwiseConv2D", "Dense", "Flatten",
                          "Dropout", "Reshape")


def elementwise_bytes_per_image(model) -> dict:
    """Bytes the non-matmul layers move per image, for the memory side of a roofline.

    Args:
        model: A built functional ``keras.Model``.

    Returns:
        ``{"forward_bytes_per_image", "training_bytes_per_image"}`` (see
        ``ELEMENTWISE_BYTES_CONVENTION``).
    """
    import numpy as np

    forward = 0
    for layer in _leaf_layers(model):
        if type(layer).__name__ in _MATMUL_OR_FREE_LAYERS:
            continue
        itemsize = np.dtype(layer.compute_dtype).itemsize
        forward += (math.prod(_per_image(layer.input.shape))
                    + math.prod(_per_image(layer.output.shape))) * itemsize
    return {"forward_bytes_per_image": forward,
            "training_bytes_per_image": TRAINING_FLOPS_MULTIPLIER * forward}


def profiler_flops(model) -> dict:
    """TensorFlow's own count of the model's forward FLOPs for one image, as a cross-check.

    Traces ``model(x, training=False)`` for a batch of one into a graph and asks
    ``tf.compat.v1.profiler`` for its float operations, once for every op and once for the
    convolution and matmul ops alone. The profiler's ``Conv2D`` and ``MatMul`` rules use the
    same 2-per-multiply-add convention as :func:`count_model_flops`, so the second number
    should equal our ``forward_flops_per_image``; the first adds the elementwise ops it has
    rules for (bias adds, additions, multiplications, pooling), with rules of its own (it
    has none for ReLU or GELU's transcendental functions, for example).

    Args:
        model: A built functional ``keras.Model``.

    Returns:
        ``{"all_ops": int, "conv_and_matmul_ops": int}``.
    """
    import tensorflow as tf

    input_shape = (1, *_per_image(model.input_shape if isinstance(model.input_shape, tuple)
                                  else model.input_shape[0]))
    concrete = tf.function(lambda images: model(images, training=False)).get_concrete_function(
        tf.TensorSpec(input_shape, tf.float32))
    builder = tf.compat.v1.profiler.ProfileOptionBuilder
    counts = {}
    for key, op_types in (("all_ops", [".*"]),
                          ("conv_and_matmul_ops", ["Conv2D", "MatMul", "BatchMatMulV2",
                                                   "DepthwiseConv2dNative"])):
        options = builder(builder.float_operation()).account_displayed_op_only(True) \
            .with_empty_output().build()
        options["account_type_regexes"] = op_types
        profile = tf.compat.v1.profiler.profile(graph=concrete.graph, options=options)
        counts[key] = int(profile.total_float_ops)
    return counts


def registered_model_flops(with_profiler: bool = False) -> dict:
    """The count for every model in ``cifar_cnn.models.MODEL_BUILDERS``, on 32x32x3 inputs.

    The whitening models need training images for their first layer; random pixels do:
    the kernel's values do not change its FLOPs.

    Args:
        with_profiler: Also run :func:`profiler_flops` on each (a second or two each).

    Returns:
        ``{model name: count_model_flops(...) without per_layer, plus "profiler" if asked}``.
    """
    import numpy as np

    from cifar_cnn.models import MODEL_BUILDERS, build_model

    images = np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    counts = {}
    for name in MODEL_BUILDERS:
        model = build_model(name, train_images=images)
        count = count_model_flops(model)
        del count["per_layer"]
        if with_profiler:
            count["profiler"] = profiler_flops(model)
        counts[name] = count
    return counts


if __name__ == "__main__":
    print(json.dumps({"convention": FLOP_CONVENTION,
                      "models": registered_model_flops(with_profiler=True)}, indent=2))
