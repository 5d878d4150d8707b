"""Per-epoch training state on disk, written so that a run killed at any instant resumes cleanly.

Keras' ``BackupAndRestore`` writes the weights and the epoch counter as two files, one
after the other, and not atomically: a ``SIGKILL`` between or during the writes can leave
weights of one epoch beside the counter of another, or a half-written file. Here the
epoch number is part of the file name and each file is written under a temporary name and
renamed into place, so every ``epoch-NNNN.weights.h5`` that exists is complete.

A complete file can still be damaged afterwards (a full disk, a copy cut short, a bad
sector), so the last two epochs' states are kept: when the newest cannot be loaded, the run
resumes from the one before, and says so.
"""

from __future__ import annotations

import re
from pathlib import Path

import keras

from cifar_cnn.files import atomic_output

_STATE_PATTERN = re.compile(r"^epoch-(\d{4,})\.weights\.h5$")
# States kept on disk: the newest, and one to fall back on if the newest is damaged.
KEPT_STATES = 2


class DamagedTrainingStateError(ValueError):
    """No saved training state of a run could be loaded."""


def _state_files(directory: Path) -> list[tuple[int, Path]]:
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = _STATE_PATTERN.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_completed_epoch(directory: Path) -> int:
    """Return the number of the last epoch whose state was saved (0 when none).

    Args:
        directory: The run's training-state folder.

    Returns:
        An epoch count: training resumes with this many epochs already done.
    """
    states = _state_files(Path(directory))
    return states[-1][0] if states else 0


def restore_training_state(model: keras.Model, directory: Path, report=print) -> int:
    """Load the newest usable saved weights and optimizer state into a compiled model.

    A state that cannot be loaded is skipped, with a note, for the one before it; the
    damaged file stays where it is (the same epoch's next save replaces it).

    Args:
        model: The compiled model, built, with the same architecture and optimizer.
        directory: The run's training-state folder.
        report: Receives the one-line note about each damaged state skipped.

    Returns:
        The number of completed epochs restored (0 when there was nothing to restore).

    Raises:
        DamagedTrainingStateError: States exist and none of them loads; the message names
            each file and what was wrong, and what the user can do.
    """
    states = _state_files(Path(directory))
    if not states:
        return 0
    if model.optimizer is not None and not model.optimizer.built:
        # The optimizer's slots must exist before their saved values can be loaded into them.
        model.optimizer.build(model.trainable_variables)
    damaged = []
    for epoch, path in reversed(states):
        try:
            model.load_weights(path)
        except Exception as error:  # noqa: BLE001 - h5py and Keras raise many kinds.
            damaged.append(f"{path.name} ({type(error).__name__}: {' '.join(str(error).split())})")
            continue
        for description in damaged:
            report(f"note: training state {description} is damaged and was skipped; resuming "
                   f"from {path.name}, after epoch {epoch}.")
        return epoch
    raise DamagedTrainingStateError(
        f"no saved training state in {directory} can be loaded: {'; '.join(damaged)}. Put "
        "back an undamaged copy of one of these files, or start the run over with "
        "overwrite=True (--overwrite), which discards its completed epochs.")


class TrainingStateCheckpoint(keras.callbacks.Callback):
    """Save weights and optimizer state atomically after every epoch, keeping the newest two.

    Args:
        directory: The run's training-state folder.
    """

    def __init__(self, directory: Path):
        super().__init__()
        self.directory = Path(directory)

    def on_epoch_end(self, epoch, logs=None):
        self.directory.mkdir(parents=True, exist_ok=True)
        completed = epoch + 1
        final_path = self.directory / f"epoch-{completed:04d}.weights.h5"
        with atomic_output(final_path, suffix=".weights.h5") as temporary_path:
            self.model.save_weights(temporary_path, overwrite=True)
        for old_epoch, old_path in _state_files(self.directory):
            if old_epoch <= completed - KEPT_STATES:
                old_path.unlink(missing_ok=True)
