"""Opt-in TensorBoard logging of a run (``cifar-cnn train --tensorboard``).

The logs go inside the run folder, ``<run folder>/tensorboard/{train,validation}/``, so
they travel with the run they describe. View them with::

    tensorboard --logdir runs            # every run, side by side
    tensorboard --logdir runs/<run_name>/tensorboard

Writing the logs needs the ``tensorboard`` package: TensorFlow 2.21 no longer installs it,
and without it Keras fails at the end of the first epoch. :func:`require_tensorboard`
checks for it up front, so a missing package is reported before any training starts.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from cifar_cnn.runs import TENSORBOARD_FOLDER


def tensorboard_available() -> bool:
    """Whether the ``tensorboard`` package, which writes the logs, is installed.

    Returns:
        True when it can be imported.
    """
    return importlib.util.find_spec("tensorboard") is not None


def require_tensorboard() -> None:
    """Fail early, with the fix, when TensorBoard logging cannot work.

    Raises:
        ValueError: The ``tensorboard`` package is not installed.
    """
    if not tensorboard_available():
        raise ValueError("tensorboard=True needs the tensorboard package, which is not "
                         "installed: pip install tensorboard (or leave tensorboard off).")


def tensorboard_log_dir(run_directory: str | Path) -> Path:
    """Where a run's TensorBoard logs go.

    Args:
        run_directory: The run folder.

    Returns:
        ``<run folder>/tensorboard``.
    """
    return Path(run_directory) / TENSORBOARD_FOLDER


def tensorboard_callback(run_directory: str | Path):
    """A Keras TensorBoard callback writing per-epoch scalars into the run folder.

    Only the per-epoch values Keras reports (loss, accuracy, their validation twins,
    learning rate) are written: no weight
    histograms and no graph, which would make the logs large and the epochs slower for
    little insight on a model this size. A resumed run appends to the same logs, and its
    epochs keep their numbers, so the curves continue where they stopped.

    Args:
        run_directory: The run folder.

    Returns:
        A ``keras.callbacks.TensorBoard`` for ``cifar_cnn.train.fit(extra_callbacks=...)``.

    Raises:
        ValueError: The ``tensorboard`` package is not installed.
    """
    require_tensorboard()
    import keras

    return keras.callbacks.TensorBoard(log_dir=str(tensorboard_log_dir(run_directory)),
                                       histogram_freq=0, write_graph=False,
                                       update_freq="epoch", profile_batch=0)


__all__ = ["require_tensorboard", "tensorboard_available",
           "tensorboard_callback", "tensorboard_log_dir"]
