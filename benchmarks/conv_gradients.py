"""Ways to compute airbench's convolution weight gradients, timed against TensorFlow's own.

The step profile (``profile_step.py``) shows the weight gradients (``Conv2DBackpropFilter``)
taking longer than the forward convolutions of the same FLOPs. This script times, for each
of airbench's convolution shapes at batch 2000, the forward convolution, the input gradient,
the weight gradient as TensorFlow computes it (NHWC, and NCHW), and three rewrites of the
weight gradient that a custom gradient could use: im2col patches times the output gradient,
nine matmuls of shifted input slices, and the weight gradient as one forward convolution of
the transposed input with the output gradient as filter. Each is the best of a few calls
after a warm-up, in GFLOP/s of the weight gradient's 2*N*H*W*9*Cin*Cout FLOPs.

Usage:
    python benchmarks/conv_gradients.py [--batch 2000] [--repeats 3] [--output PATH]
Writes benchmarks/results/conv-gradients-<machine>.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import time

from common import REPOSITORY_ROOT, machine_record, machine_slug

# airbench_net's 3x3 convolutions: (name, map side, input channels, output channels).
SHAPES = (("group1_conv1", 31, 24, 64), ("group1_conv2", 15, 64, 64),
          ("group2_conv1", 15, 64, 256), ("group2_conv2", 7, 256, 256),
          ("group3_conv1", 7, 256, 256), ("group3_conv2", 3, 256, 256))
METHODS = ("forward", "input gradient", "weight gradient (TensorFlow, NHWC)",
           "weight gradient (TensorFlow, NCHW)", "weight gradient as im2col matmul",
           "weight gradient as 9 shifted matmuls", "weight gradient as one forward convolution")


def _best_seconds(function, *arguments, repeats: int) -> float:
    function(*arguments)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        function(*arguments).numpy()
        best = min(best, time.perf_counter() - started)
    return best


def methods_for(images, upstream, kernel) -> dict:
    """Every method of ``METHODS`` as ``(function, arguments, to_hwio)`` for these tensors.

    Args:
        images: The convolution's input (N, H, W, Cin).
        upstream: The gradient of its output (N, H, W, Cout).
        kernel: Its 3x3 kernel (3, 3, Cin, Cout).

    Returns:
        ``{method: (function, arguments, to_hwio)}``; ``to_hwio`` turns a weight-gradient
        method's result into the (3, 3, Cin, Cout) kernel layout (None for the other two).
    """
    import tensorflow as tf

    batch, side, _, in_channels = images.shape
    out_channels = upstream.shape[-1]
    filter_shape = [3, 3, in_channels, out_channels]
    strides = [1, 1, 1, 1]

    def im2col(x, dy):
        patches = tf.image.extract_patches(x, [1, 3, 3, 1], strides, [1, 1, 1, 1], "SAME")
        return tf.matmul(tf.reshape(patches, (-1, 9 * in_channels)),
                         tf.reshape(dy, (-1, out_channels)), transpose_a=True)

    def shifted(x, dy):
        padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
        flat = tf.reshape(dy, (-1, out_channels))
        return tf.stack([tf.matmul(tf.reshape(padded[:, row:row + side, column:column + side],
                                              (-1, in_channels)), flat, transpose_a=True)
                         for row in range(3) for column in range(3)])

    def as_forward(x, dy):
        # Batch becomes the reduced channel axis: (Cin, H+2, W+2, N) * (H, W, N, Cout).
        transposed = tf.transpose(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]]), [3, 1, 2, 0])
        return tf.nn.conv2d(transposed, tf.transpose(dy, [1, 2, 0, 3]), 1, "VALID")

    def as_kernel(result):
        return tf.reshape(result, filter_shape)

    return {
        METHODS[0]: (lambda x, w: tf.nn.conv2d(x, w, 1, "SAME"), (images, kernel), None),
        METHODS[1]: (lambda w, dy: tf.compat.v1.nn.conv2d_backprop_input(
            [batch, side, side, in_channels], w, dy, strides, "SAME"), (kernel, upstream), None),
        METHODS[2]: (lambda x, dy: tf.compat.v1.nn.conv2d_backprop_filter(
            x, filter_shape, dy, strides, "SAME"), (images, upstream), as_kernel),
        METHODS[3]: (lambda x, dy: tf.compat.v1.nn.conv2d_backprop_filter(
            x, filter_shape, dy, strides, "SAME", data_format="NCHW"),
            (tf.transpose(images, [0, 3, 1, 2]), tf.transpose(upstream, [0, 3, 1, 2])),
            as_kernel),
        METHODS[4]: (im2col, (images, upstream), as_kernel),
        METHODS[5]: (shifted, (images, upstream), as_kernel),
        METHODS[6]: (as_forward, (images, upstream),
                     lambda result: tf.transpose(result, [1, 2, 0, 3])),
    }


def time_shape(batch: int, side: int, in_channels: int, out_channels: int,
               repeats: int) -> dict:
    """Seconds of every method of ``METHODS`` for one convolution shape.

    Args:
        batch: Images per batch.
        side: The square feature map's side.
        in_channels: Input channels.
        out_channels: Output channels.
        repeats: Timed calls per method.

    Returns:
        ``{method: seconds}`` (None where this TensorFlow cannot run the method).
    """
    import tensorflow as tf

    methods = methods_for(tf.random.normal((batch, side, side, in_channels)),
                          tf.random.normal((batch, side, side, out_channels)),
                          tf.random.normal((3, 3, in_channels, out_channels)))
    seconds = {}
    for name, (function, arguments, _) in methods.items():
        try:
            seconds[name] = _best_seconds(tf.function(function), *arguments, repeats=repeats)
        except (tf.errors.OpError, ValueError):  # NCHW needs oneDNN on a CPU.
            seconds[name] = None
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default=None)
    arguments = parser.parse_args()
    if arguments.batch < 1 or arguments.repeats < 1:
        parser.error("--batch and --repeats must be at least 1")
    from cifar_cnn.cpu_kernels import kernel_settings

    rows = []
    for name, side, in_channels, out_channels in SHAPES:
        gflop = 2 * arguments.batch * side * side * 9 * in_channels * out_channels / 1e9
        seconds = time_shape(arguments.batch, side, in_channels, out_channels, arguments.repeats)
        rows.append({"layer": name, "side": side, "in_channels": in_channels,
                     "out_channels": out_channels, "gflop": gflop, "seconds": seconds})
        print(f"{name}: " + ", ".join(f"{method} {1000 * value:.0f} ms"
                                      for method, value in seconds.items() if value), flush=True)
    totals = {method: sum(row["seconds"][method] or float("nan") for row in rows)
              for method in METHODS}
    results = {"command": "python benchmarks/conv_gradients.py", "batch": arguments.batch,
               "machine": machine_record(), "cpu_kernels": kernel_settings(),
               "rows": rows, "total_seconds": totals}
    output = arguments.output or (REPOSITORY_ROOT / "benchmarks" / "results" /
                                  f"conv-gradients-{machine_slug()}.json")
    with open(output, "w") as stream:
        stream.write(json.dumps(results, indent=2) + "\n")
    print("| method | " + " | ".join(row["layer"] for row in rows) + " | all |")
    print("|---|" + "---|" * (len(rows) + 1))
    for method in METHODS:
        cells = ["-" if row["seconds"][method] is None else
                 f"{1000 * row['seconds'][method]:.0f}" for row in rows]
        print(f"| {method} (ms) | " + " | ".join(cells) + f" | {1000 * totals[method]:.0f} |")


if __name__ == "__main__":
    main()
