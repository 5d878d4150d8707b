"""Which CPU kernels TensorFlow runs: oneDNN where TensorFlow would leave it off.

TensorFlow's x86 builds carry two sets of CPU kernels for convolutions, matmuls, pooling
and batch normalisation: Eigen's and oneDNN's. TensorFlow turns oneDNN on by default only
on Intel CPUs with AVX-512 VNNI, BF16 or AMX; everywhere else (every AMD CPU, older
Intel ones) it runs Eigen unless ``TF_ENABLE_ONEDNN_OPTS=1`` is in the environment when
TensorFlow is first imported. On a 2-core AVX2 AMD EPYC, an airbench training step ran
1.82x faster with oneDNN (23.6 s against 13.0 s; ``benchmarks/profile_step.py``, results in
``benchmarks/results/profile-cpu-2core-avx2.json``): Eigen's convolutions and their
gradients are the slow part of the step. So the package asks for oneDNN when it is imported
first, leaves an explicit ``TF_ENABLE_ONEDNN_OPTS`` alone, and records what TensorFlow
actually runs with every result (:func:`kernel_settings`), because the choice is fixed
for the life of the process once TensorFlow is imported.
"""

from __future__ import annotations

import os
import sys

ONEDNN_ENVIRONMENT_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"


def prefer_onednn() -> None:
    """Ask TensorFlow for its oneDNN kernels, unless told otherwise or too late to ask.

    Sets ``TF_ENABLE_ONEDNN_OPTS=1`` only when the variable is unset and TensorFlow has not
    been imported yet (afterwards the variable has no effect). Costs nothing: nothing is
    imported.
    """
    if "tensorflow" not in sys.modules:
        os.environ.setdefault(ONEDNN_ENVIRONMENT_VARIABLE, "1")


def onednn_enabled() -> bool | None:
    """Whether this process's TensorFlow runs its oneDNN CPU kernels.

    Imports TensorFlow.

    Returns:
        True or False as TensorFlow reports it, or None where this TensorFlow build does not
        say (its private flag moved).
    """
    import tensorflow  # noqa: F401  (the flag is read after TensorFlow decided it)

    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:
        return None
    return bool(_pywrap_util_port.IsMklEnabled())


def kernel_settings() -> dict:
    """TensorFlow's CPU kernel and thread settings, for the record of a run or a benchmark.

    Imports TensorFlow.

    Returns:
        ``{"onednn": bool or None, "onednn_environment": the variable's value or None,
        "intra_op_threads", "inter_op_threads"}`` (threads 0: TensorFlow's default, one per
        usable core).
    """
    import tensorflow as tf

    return {
        "onednn": onednn_enabled(),
        "onednn_environment": os.environ.get(ONEDNN_ENVIRONMENT_VARIABLE),
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
    }
