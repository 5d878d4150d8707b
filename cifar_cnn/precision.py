"""Choosing the Keras dtype policy: float32, or mixed precision where the hardware has it.

``mixed_float16`` pays off on NVIDIA GPUs with tensor cores; ``mixed_bfloat16`` on CPUs
with AVX-512 BF16 or AMX instructions (measured on such a 2-core CPU: about 1.3x the
float32 speed of the airbench network). Every model here computes its softmax in float32.
"""

from __future__ import annotations

from pathlib import Path

from cifar_cnn.config import PRECISION_CHOICES

_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_supports_bfloat16() -> bool:
    """True when /proc/cpuinfo lists AVX-512 BF16 or AMX-BF16 (Linux only; else False)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags.split() for flag in _BF16_CPU_FLAGS)


def resolve_precision(choice: str) -> str:
    """Turn a precision choice into a Keras dtype policy name.

    Args:
        choice: One of ``PRECISION_CHOICES``; ``"auto"`` picks ``mixed_float16`` with a
            GPU, ``mixed_bfloat16`` on a CPU with bf16 instructions, else ``float32``.

    Returns:
        A policy name for ``keras.mixed_precision.set_global_policy``.
    """
    if choice not in PRECISION_CHOICES:
        raise ValueError(f"Unknown mixed_precision {choice!r}; valid choices: "
                         f"{', '.join(PRECISION_CHOICES)}.")
    if choice != "auto":
        return choice
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return "mixed_float16"
    return "mixed_bfloat16" if cpu_supports_bfloat16() else "float32"


def apply_precision(choice: str) -> str:
    """Set Keras' global dtype policy for the models built next, and return its name.

    Args:
        choice: One of ``PRECISION_CHOICES``.

    Returns:
        The policy now in force.
    """
    import keras

    policy = resolve_precision(choice)
    keras.mixed_precision.set_global_policy(policy)
    return policy
