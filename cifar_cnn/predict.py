"""Using a trained model on your own images: load the model, rank its classes.

Reading and resizing the images is :mod:`cifar_cnn.images`; computing probabilities is
:func:`cifar_cnn.evaluate.predict_probabilities`, the same as evaluation uses. The
``predict`` command puts the three together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from cifar_cnn.images import IMAGE_SIZE, one_line_error
from cifar_cnn.run_catalog import read_run
from cifar_cnn.runs import CONFIG_FILE, METRICS_FILE, MODEL_FILE, UNREADABLE

MODEL_SUFFIXES = (".keras", ".h5")


class ModelLoadError(ValueError):
    """A model path that is missing, not a model, or a model these commands cannot feed."""


@dataclass
class LoadedModel:
    """A model loaded for inference, with where it came from.

    Attributes:
        model: The ``keras.Model`` (not compiled: only used to predict).
        path: The model file.
        run_folder: The run folder holding it (a folder with ``config.json``), or None.
        run_config: That run's ``config.json`` as a dictionary, or None.
        notes: Things the user should know about the model (e.g. no preprocessing layer).
    """

    model: object
    path: Path
    run_folder: Path | None = None
    run_config: dict | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        """Number of classes the model predicts (its last dimension)."""
        return int(self.model.outputs[0].shape[-1])


def resolve_model_path(model_or_run_folder: str | Path) -> Path:
    """Find the model file for a command-line argument.

    Args:
        model_or_run_folder: A ``.keras`` (or legacy ``.h5``) file, or a run folder that
            holds ``model.keras``.

    Returns:
        The model file's path.

    Raises:
        ModelLoadError: The path does not exist, or the folder holds no ``model.keras``.
    """
    path = Path(model_or_run_folder).expanduser()
    if path.is_dir():
        model_path = path / MODEL_FILE
        if not model_path.is_file():
            completed = "; the run is not complete" if not (path / METRICS_FILE).is_file() else ""
            raise ModelLoadError(f"{path} holds no {MODEL_FILE}{completed}. Give a run "
                                 f"folder with a saved model or a {MODEL_FILE} file.")
        return model_path
    if not path.exists():
        raise ModelLoadError(f"model {path} does not exist. Give a {MODEL_FILE} file or a "
                             "run folder that holds one.")
    return path


def _check_model_file(path: Path) -> int:
    """Refuse what cannot be, or must not be opened as, a Keras model (see model_files).

    Returns:
        The bytes of the weights the file holds.
    """
    from cifar_cnn.model_files import ModelFileError, check_model_file

    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise ModelLoadError(f"{path} is not a Keras model file; valid: a .keras file (or a "
                             f"legacy .h5 file), or a run folder holding {MODEL_FILE}.")
    try:
        return check_model_file(path)
    except ModelFileError as error:
        raise ModelLoadError(str(error)) from None


def load_model(model_or_run_folder: str | Path, num_classes: int = 10) -> LoadedModel:
    """Load a saved model for evaluation or prediction, with clear errors.

    The model is loaded without its optimizer (``compile=False``): inference needs only
    the layers, and this keeps working for models saved with any training recipe. Keras'
    safe mode stays on, so a model file cannot run arbitrary code through lambda layers.
    The file is checked first and loaded within a memory budget (``cifar_cnn.model_files``).

    Args:
        model_or_run_folder: A ``.keras`` file, or a run folder holding ``model.keras``.
        num_classes: Classes the model must predict (CIFAR-10: 10).

    Returns:
        A :class:`LoadedModel`.

    Raises:
        ModelLoadError: The path is missing, is not a model, or the model does not map
            32x32 RGB images to ``num_classes`` probabilities.
    """
    model_path = resolve_model_path(model_or_run_folder)
    weights_bytes = _check_model_file(model_path)
    import keras

    # Registers this package's custom layers (e.g. airbench's PatchWhitening): a fresh
    # process that has not built a model yet could not deserialise them otherwise.
    import cifar_cnn.models  # noqa: F401
    from cifar_cnn.model_files import memory_budget

    try:
        # A config may describe a network far larger than its weights: building it must
        # fail, not take the machine's memory.
        with memory_budget(weights_bytes):
            model = keras.saving.load_model(model_path, compile=False)
    except Exception as error:  # Keras raises many types (ValueError, KeyError, OSError...).
        from tensorflow.errors import ResourceExhaustedError

        if isinstance(error, (ResourceExhaustedError, MemoryError)):
            raise ModelLoadError(f"{model_path} describes a network that does not fit in the "
                                 "memory allowed for loading a model (its weights hold "
                                 f"{weights_bytes:,} bytes); it was not loaded.") from None
        raise ModelLoadError(f"{model_path} could not be loaded as a Keras model: "
                             f"{one_line_error(error)}") from error
    input_shape = tuple(model.inputs[0].shape[1:]) if getattr(model, "inputs", None) else None
    if input_shape != (*IMAGE_SIZE, 3):
        raise ModelLoadError(f"{model_path} takes inputs of shape {input_shape}; these commands "
                             f"feed {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} RGB images, shape "
                             f"{(*IMAGE_SIZE, 3)}.")
    output_shape = tuple(model.outputs[0].shape[1:])
    if output_shape != (num_classes,):
        raise ModelLoadError(f"{model_path} outputs shape {output_shape}; a CIFAR-10 model "
                             f"outputs one probability per class, shape ({num_classes},).")
    notes = []
    if not any(layer.name == "preprocessing" for layer in model.layers):
        notes.append(f"{model_path} has no layer named 'preprocessing'; it is fed raw 0-255 "
                     "pixels, as models saved by cifar-cnn expect.")
    run_folder, run_config = _run_folder_of(model_path)
    return LoadedModel(model=model, path=model_path, run_folder=run_folder,
                       run_config=run_config, notes=notes)


def _run_folder_of(model_path: Path) -> tuple[Path | None, dict | None]:
    """The run folder around a model file and its config, when the model lies in one."""
    if not (model_path.parent / CONFIG_FILE).is_file():
        return None, None
    run = read_run(model_path.parent)
    # A damaged config still marks a run folder; the model is then used without its config.
    return run.path, (run.config if run.status != UNREADABLE else None)


def top_k(probabilities: np.ndarray, k: int, class_names: Sequence[str]) -> list[tuple[str, float]]:
    """The k most probable classes of one image, most probable first.

    Args:
        probabilities: One image's class probabilities (classes,).
        k: How many classes, 1 to the number of classes.
        class_names: Name of each class.

    Returns:
        ``[(class name, probability), ...]`` of length k; ties keep label order.
    """
    if not 1 <= k <= len(class_names):
        raise ValueError(f"top-k must be between 1 and {len(class_names)} (the number of "
                         f"classes), got {k}.")
    order = np.argsort(-np.asarray(probabilities), kind="stable")[:k]
    return [(class_names[index], float(probabilities[index])) for index in order]


__all__ = ["LoadedModel", "ModelLoadError", "load_model",
           "resolve_model_path", "top_k"]
