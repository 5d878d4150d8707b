"""This machine's matmul peak with TensorFlow, in float32 and bfloat16, measured now.

A throughput in images/s says little until it is set against what the machine can do: the
recipe benchmark divides the network's achieved FLOP/s by the peak measured here, in the
same run, because the CPU model and its neighbours' load change from one machine (and
hour) to the next.

Square matmuls of a few sizes run through two TensorFlow paths: a plain ``tf.function``
(oneDNN kernels, the path Keras trains through on a CPU-only machine, where its
``jit_compile="auto"`` turns XLA off) and an XLA-compiled one. Each is warmed up, then
timed several times (at least ``repeats`` calls lasting ``minimum_seconds`` together); the
best time counts (the least disturbed by other processes), as GFLOP/s = 2 n^3 / seconds /
1e9. The peak of a precision is the best over sizes and paths.

Usage:
    python benchmarks/machine_peak.py [--sizes 1024 2048] [--repeats 5] [--minimum-seconds 0.5]
Prints the JSON record.
"""

from __future__ import annotations

import argparse
import json
import os
import time

DEFAULT_SIZES = (1024, 2048)
DEFAULT_REPEATS = 5
# Fast matmuls repeat until this much time is spent on them: with other processes on the
# cores, single calls vary twofold (bf16 at n=2048 measured 341 to 1290 GFLOP/s in 20
# consecutive calls), and only enough calls make the best one a clean one.
DEFAULT_MINIMUM_SECONDS = 0.5
PRECISIONS = ("float32", "bfloat16")
# Which peak a recipe is compared against, by the Keras dtype policy it trained in: the
# matmuls of a mixed_bfloat16 model run in bfloat16, of a float32 model in float32.
POLICY_PRECISION = {"float32": "float32", "mixed_bfloat16": "bfloat16"}


def _thread_settings() -> dict:
    """TensorFlow's kernels and thread pools (``cpu_kernels.kernel_settings``) and usable cores."""
    from cifar_cnn.cpu_kernels import kernel_settings

    try:
        usable_cores = len(os.sched_getaffinity(0))
    except AttributeError:  # Not Linux.
        usable_cores = os.cpu_count()
    return {**kernel_settings(), "usable_cores": usable_cores}


def matmul_gflops(size: int, dtype: str, jit_compile: bool, repeats: int,
                  minimum_seconds: float = DEFAULT_MINIMUM_SECONDS) -> float:
    """Best GFLOP/s of one ``size`` x ``size`` matmul over the timed calls.

    Args:
        size: The matrices' side.
        dtype: ``"float32"`` or ``"bfloat16"``.
        jit_compile: Compile with XLA.
        repeats: Timed calls at least, after one warm-up call (which traces and compiles).
        minimum_seconds: Keep calling until the timed calls add up to this long.

    Returns:
        2 * size**3 / best seconds / 1e9.
    """
    import tensorflow as tf

    generator = tf.random.Generator.from_seed(0)
    left = tf.cast(generator.normal((size, size)), dtype)
    right = tf.cast(generator.normal((size, size)), dtype)
    # Summing the whole product makes the timed call wait for the matmul without copying
    # it to the host (n^2 additions against 2 n^3 FLOPs), and unlike taking one element it
    # leaves no compiler a way to compute less than the full product.
    multiply = tf.function(lambda a, b: tf.reduce_sum(tf.cast(tf.matmul(a, b), "float32")),
                           jit_compile=jit_compile)
    multiply(left, right).numpy()
    best, calls, spent = float("inf"), 0, 0.0
    while calls < repeats or spent < minimum_seconds:
        started = time.perf_counter()
        multiply(left, right).numpy()
        seconds = time.perf_counter() - started
        best, calls, spent = min(best, seconds), calls + 1, spent + seconds
    return 2 * size ** 3 / best / 1e9


def memory_bandwidth_gbs(megabytes: int = 256, repeats: int = DEFAULT_REPEATS) -> dict:
    """This machine's memory bandwidth as TensorFlow's elementwise kernels reach it.

    Times ``a + b`` on two float32 tensors of ``megabytes`` each (far beyond any cache):
    the kernel reads both and writes the sum, 3 x ``megabytes`` moved. TensorFlow runs
    eager CPU ops synchronously, so the call returns when the sum is written.

    Args:
        megabytes: Size of each operand, in MiB.
        repeats: Timed calls after one warm-up; the best counts.

    Returns:
        ``{"gigabytes_per_second", "megabytes", "repeats", "method"}``.
    """
    import tensorflow as tf

    elements = megabytes * 2**20 // 4
    left = tf.random.uniform((elements,), dtype=tf.float32, seed=1)
    right = tf.random.uniform((elements,), dtype=tf.float32, seed=2)
    add = tf.function(lambda a, b: a + b)
    add(left, right)
    best = float("inf")
    for _ in range(max(1, repeats)):
        started = time.perf_counter()
        add(left, right)
        best = min(best, time.perf_counter() - started)
    return {"gigabytes_per_second": 3 * elements * 4 / best / 1e9, "megabytes": megabytes,
            "repeats": repeats,
            "method": "a + b on two float32 tensors of `megabytes` MiB, best of `repeats`; "
                      "3 x the operand size moved (two reads, one write)"}


def measure_peaks(sizes=DEFAULT_SIZES, repeats: int = DEFAULT_REPEATS,
                  minimum_seconds: float = DEFAULT_MINIMUM_SECONDS) -> dict:
    """Measure the float32 and bfloat16 matmul peaks of this machine with TensorFlow.

    Run it with nothing else running in this process (and ideally on the machine): the
    best-of-``repeats`` time discounts short interruptions, not a sustained load.

    Args:
        sizes: Matrix sides to try (2048 is enough to reach the peak of a 2-core CPU; a
            test passes a small one to take a second).
        repeats: Timed calls per size, precision and path, at least.
        minimum_seconds: Timed seconds per size, precision and path, at least.

    Returns:
        A JSON-ready dictionary: ``peak_gflops_per_second`` (precision -> best GFLOP/s),
        ``measurements`` (one row per size, precision and path), ``bfloat16_native``
        (the CPU has AVX-512 BF16 or AMX-BF16 instructions), ``processor``, ``threads``,
        ``sizes``, ``repeats``, ``minimum_seconds``, ``method`` and ``seconds`` (the whole
        measurement).
    """
    from cifar_cnn.precision import cpu_supports_bfloat16
    from cifar_cnn.provenance import cpu_model

    started = time.perf_counter()
    measurements = []
    for dtype in PRECISIONS:
        for jit_compile in (False, True):
            for size in sizes:
                measurements.append({
                    "dtype": dtype, "size": int(size),
                    "path": "xla" if jit_compile else "tf.function (oneDNN)",
                    "gflops_per_second": matmul_gflops(int(size), dtype, jit_compile, repeats,
                                                       minimum_seconds),
                })
    peaks = {dtype: max(row["gflops_per_second"] for row in measurements
                        if row["dtype"] == dtype) for dtype in PRECISIONS}
    return {
        "peak_gflops_per_second": peaks,
        "measurements": measurements,
        "bfloat16_native": cpu_supports_bfloat16(),
        "processor": cpu_model(),
        "threads": _thread_settings(),
        "sizes": [int(size) for size in sizes],
        "repeats": repeats,
        "minimum_seconds": minimum_seconds,
        "method": "square matmuls, one warm-up then the best of at least `repeats` timed "
                  "calls lasting at least `minimum_seconds` together, "
                  "GFLOP/s = 2 n^3 / seconds / 1e9; the peak of a precision is the best over "
                  "sizes and over the tf.function (oneDNN, what Keras trains with on a CPU) "
                  "and XLA paths",
        "seconds": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS)
    parser.add_argument("--minimum-seconds", type=float, default=DEFAULT_MINIMUM_SECONDS)
    arguments = parser.parse_args()
    print(json.dumps(measure_peaks(arguments.sizes, arguments.repeats,
                                   arguments.minimum_seconds), indent=2))


if __name__ == "__main__":
    main()
