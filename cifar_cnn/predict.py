"""Using a trained model on your own images: load it, load and resize the images, rank classes.

How an image becomes model input (the ``predict`` command does exactly this):

1. Pillow opens it, whatever the format it can read (PNG, JPEG, BMP, GIF, WebP, TIFF, ...).
   Animated images use their first frame; a camera's EXIF orientation is applied.
2. It is converted to 8-bit RGB. Grayscale copies its gray level into R, G and B (16-bit
   grayscale is scaled to 8 bits first); an image with transparent pixels (RGBA, LA, a
   palette with a transparent colour) is composited on a white background, because the
   colour hidden under a transparent pixel is arbitrary (often black) and CIFAR-10 photos
   have no transparency; CMYK and other modes use Pillow's conversion. Each of these
   conversions is reported as a note, so a surprising prediction can be traced to it.
3. It is resized to 32x32 with Pillow's Lanczos filter, which antialiases when shrinking
   (a large photo does not alias into noise). ``"stretch"`` (the default) keeps the whole
   image and ignores its aspect ratio; ``"center-crop"`` cuts the largest centred region of
   the right shape first, keeping proportions but maybe losing the edges. A 32x32 image is
   passed through unchanged, pixel for pixel.
4. The raw 0-255 pixels go to the model: every model saved by this package starts with its
   own preprocessing layer (``x / 255`` or standardisation), so nothing is rescaled here.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, ImageOps

IMAGE_SIZE = (32, 32)
RESIZE_MODES = ("stretch", "center-crop")
# Lanczos: the sharpest of Pillow's antialiasing filters for shrinking large photos.
RESIZE_FILTER = Image.Resampling.LANCZOS
BACKGROUND_COLOR = (255, 255, 255)
MODEL_FILE_NAME = "model.keras"
MODEL_SUFFIXES = (".keras", ".h5")
# Pillow's modes for one gray channel: 1-bit, 8-bit, 32-bit integer, float, 16-bit variants.
_GRAYSCALE_BANDS = ("1", "L", "I", "F")


class ModelLoadError(ValueError):
    """A model path that is missing, not a model, or a model these commands cannot feed."""


class ImageLoadError(ValueError):
    """An image argument that is missing, cannot be decoded, or a folder without images."""


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


@dataclass
class PreparedImage:
    """One image ready for the model.

    Attributes:
        path: The image file.
        pixels: uint8 array (32, 32, 3) of raw 0-255 RGB pixels.
        original_size: ``(width, height)`` of the file's image.
        original_mode: Pillow's mode of the file's image (``"RGB"``, ``"L"``, ``"RGBA"`` ...).
        notes: Colour and frame conversions applied (grayscale, transparency, animation...),
            one sentence each; resizing, which nearly every image needs, is not listed.
    """

    path: Path
    pixels: np.ndarray
    original_size: tuple[int, int]
    original_mode: str
    notes: list[str] = field(default_factory=list)


def _one_line(error: BaseException, limit: int = 300) -> str:
    """An exception's message on one line, cut to ``limit`` characters.

    Some libraries' messages span several lines, and Keras' can run to thousands of
    characters (a whole layer config): the start says what went wrong.
    """
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[:limit - 1] + "…"


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
        model_path = path / MODEL_FILE_NAME
        if not model_path.is_file():
            completed = "; the run is not complete" if not (path / "metrics.json").is_file() else ""
            raise ModelLoadError(f"{path} holds no {MODEL_FILE_NAME}{completed}. Give a run "
                                 f"folder with a saved model or a {MODEL_FILE_NAME} file.")
        return model_path
    if not path.exists():
        raise ModelLoadError(f"model {path} does not exist. Give a {MODEL_FILE_NAME} file or a "
                             "run folder that holds one.")
    return path


def _check_model_file(path: Path) -> None:
    """Refuse files that cannot be a Keras model before Keras gives a misleading message."""
    import zipfile

    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise ModelLoadError(f"{path} is not a Keras model file; valid: a .keras file (or a "
                             "legacy .h5 file), or a run folder holding model.keras.")
    # A .keras file is a zip archive; Keras reports anything else as "File not found".
    if path.suffix.lower() == ".keras" and not zipfile.is_zipfile(path):
        raise ModelLoadError(f"{path} is not a Keras model: a .keras file is a zip archive "
                             "and this file is not one (truncated, or another kind of file).")


def load_model(model_or_run_folder: str | Path, num_classes: int = 10) -> LoadedModel:
    """Load a saved model for evaluation or prediction, with clear errors.

    The model is loaded without its optimizer (``compile=False``): inference needs only
    the layers, and this keeps working for models saved with any training recipe. Keras'
    safe mode stays on, so a model file cannot run arbitrary code through lambda layers.

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
    _check_model_file(model_path)
    import keras

    # Registers this package's custom layers (e.g. airbench's PatchWhitening): a fresh
    # process that has not built a model yet could not deserialise them otherwise.
    import cifar_cnn.models  # noqa: F401

    try:
        model = keras.saving.load_model(model_path, compile=False)
    except Exception as error:  # Keras raises many types (ValueError, KeyError, OSError...).
        raise ModelLoadError(f"{model_path} could not be loaded as a Keras model: "
                             f"{_one_line(error)}") from error
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
    config_path = model_path.parent / "config.json"
    if not config_path.is_file():
        return None, None
    try:
        return model_path.parent, json.loads(config_path.read_text())
    except (OSError, ValueError):
        return model_path.parent, None


def openable_suffixes() -> frozenset[str]:
    """File name suffixes of the image formats this Pillow can open (``.png``, ``.webp`` ...).

    Returns:
        Lower-case suffixes with their dot.
    """
    Image.init()
    return frozenset(suffix.lower() for suffix, image_format in
                     Image.registered_extensions().items() if image_format in Image.OPEN)


def collect_image_paths(
        arguments: Iterable[str | Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Expand image and folder arguments into image files, keeping the user's order.

    A folder contributes its files (not its subfolders) whose suffix is an image format
    Pillow opens, sorted by name; hidden files are skipped. A file named explicitly is
    always tried, whatever its suffix. A path given twice is used once.

    Args:
        arguments: Image files and folders.

    Returns:
        ``(paths, problems)``: the image files, and ``(argument, message)`` for each
        argument that gave none (missing path, folder without images).
    """
    suffixes = openable_suffixes()
    paths, problems, seen = [], [], set()

    def add(path: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            paths.append(path)

    for argument in arguments:
        path = Path(argument).expanduser()
        if path.is_dir():
            images = sorted(child for child in path.iterdir()
                            if child.is_file() and not child.name.startswith(".")
                            and child.suffix.lower() in suffixes)
            if not images:
                problems.append((path, f"{path} is a folder with no images in it (looked "
                                       "for files ending in .png, .jpg, .bmp, .gif, .webp "
                                       "...; subfolders are not searched)."))
            for image in images:
                add(image)
        elif path.exists():
            add(path)
        else:
            problems.append((path, f"{path} does not exist."))
    return paths, problems


def _to_rgb(image: Image.Image, notes: list[str]) -> Image.Image:
    """Convert any Pillow image to 8-bit RGB, noting conversions that change what is seen."""
    bands = image.getbands()
    color_bands = [band for band in bands if band not in ("A", "a")]
    if len(color_bands) == 1 and color_bands[0] in _GRAYSCALE_BANDS and image.mode != "P":
        if image.mode in ("I", "F") or image.mode.startswith("I;16"):
            # Pillow's own convert() clips 16-bit values to 255 (a white image): scale instead.
            values = np.asarray(image, dtype=np.float64)
            if values.size and values.max() > 255:
                values = values * (255.0 / 65535.0)
                notes.append("16-bit grayscale: scaled to 8 bits, gray level copied to R, G "
                             "and B.")
            else:
                notes.append("grayscale: its gray level was copied to R, G and B.")
            image = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")
        else:
            notes.append("grayscale: its gray level was copied to R, G and B.")
    # An alpha band, or a palette/RGB image whose tRNS chunk names a transparent colour.
    if "A" in bands or "a" in bands or "transparency" in image.info:
        rgba = image.convert("RGBA")
        minimum_alpha = rgba.getextrema()[3][0]
        if minimum_alpha == 255:
            notes.append(f"{image.mode} with an alpha channel but no transparent pixel: "
                         "alpha dropped.")
        else:
            notes.append(f"{image.mode} with transparent pixels: composited on a white "
                         "background.")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND_COLOR, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode not in ("RGB", "L", "P", "1"):
        notes.append(f"{image.mode} image: converted to RGB.")
    return image.convert("RGB")


def load_image(path: str | Path, resize: str = "stretch") -> PreparedImage:
    """Load one image file of any size and format as a 32x32 RGB uint8 array.

    See the module docstring for every conversion step.

    Args:
        path: The image file.
        resize: ``"stretch"`` (whole image, aspect ratio not kept) or ``"center-crop"``
            (largest centred square first).

    Returns:
        A :class:`PreparedImage`.

    Raises:
        ImageLoadError: The file is missing or cannot be decoded.
        ValueError: ``resize`` is not one of ``RESIZE_MODES``.
    """
    if resize not in RESIZE_MODES:
        raise ValueError(f"Unknown resize mode {resize!r}; valid choices: "
                         f"{', '.join(RESIZE_MODES)}.")
    path = Path(path)
    if not path.is_file():
        raise ImageLoadError(f"{path} does not exist." if not path.exists()
                             else f"{path} is not a file.")
    notes: list[str] = []
    try:
        with Image.open(path) as opened:
            frames = getattr(opened, "n_frames", 1)
            if frames > 1:
                notes.append(f"animated ({frames} frames): the first frame is used.")
            opened.load()  # Decode now, so a truncated file fails here, inside the try.
            original_size, original_mode = opened.size, opened.mode
            image = ImageOps.exif_transpose(opened)
            image = _to_rgb(image, notes)
            if resize == "stretch":
                image = image.resize(IMAGE_SIZE, RESIZE_FILTER)
            else:
                image = ImageOps.fit(image, IMAGE_SIZE, method=RESIZE_FILTER)
            pixels = np.asarray(image, dtype=np.uint8)
    except Exception as error:  # Pillow raises OSError, SyntaxError, EOFError, struct.error...
        raise ImageLoadError(f"{path} cannot be decoded as an image: "
                             f"{_one_line(error)}") from error
    # Resizing is not a note: nearly every photo needs it, and --help documents it.
    return PreparedImage(path=path, pixels=pixels, original_size=original_size,
                         original_mode=original_mode, notes=notes)


class ProgressCounter:
    """A one-line "label: done/total" counter on a terminal; silent when not on a terminal.

    Args:
        label: What is counted, e.g. ``"predicting"``.
        total: How many items there are.
        stream: Where to draw (default standard error, so standard output stays clean).
        minimum_total: Draw nothing for fewer items than this: short jobs need no bar.
    """

    def __init__(self, label: str, total: int, stream=None, minimum_total: int = 2):
        self.label, self.total = label, total
        self.stream = stream or sys.stderr
        self.active = total >= minimum_total and getattr(self.stream, "isatty", lambda: False)()

    def update(self, done: int) -> None:
        """Redraw the counter after ``done`` items.

        Args:
            done: Items finished so far.
        """
        if self.active:
            self.stream.write(f"\r{self.label}: {done}/{self.total}")
            if done >= self.total:
                self.stream.write("\n")
            self.stream.flush()


def predict_probabilities(model, pixels: np.ndarray, flip_augmentation: bool = False,
                          batch_size: int = 500, chunk_size: int = 2000,
                          progress_label: str | None = "predicting") -> np.ndarray:
    """Class probabilities for raw 0-255 images, in chunks that drive a progress counter.

    Uses ``cifar_cnn.evaluate.predict_probabilities`` on each chunk, so the numbers are
    those of the library's evaluation (chunks are whole batches, so batching is the same).

    Args:
        model: A model taking raw 0-255 pixels.
        pixels: Array (N, 32, 32, 3).
        flip_augmentation: Average each image's probabilities with its mirror's.
        batch_size: Images per forward pass.
        chunk_size: Images between two progress updates (a multiple of ``batch_size``).
        progress_label: The counter's label, or None for no counter.

    Returns:
        float32 array (N, classes).
    """
    from cifar_cnn.evaluate import predict_probabilities as predict_chunk

    # A single chunk is over in a moment: the counter shows only for longer work.
    counter = ProgressCounter(progress_label, len(pixels), minimum_total=chunk_size + 1) \
        if progress_label else None
    parts = []
    for start in range(0, len(pixels), chunk_size):
        parts.append(predict_chunk(model, pixels[start:start + chunk_size], batch_size,
                                   flip_augmentation))
        if counter:
            counter.update(min(start + chunk_size, len(pixels)))
    if not parts:
        return np.zeros((0, int(model.outputs[0].shape[-1])), dtype=np.float32)
    return np.concatenate(parts)


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


__all__ = ["IMAGE_SIZE", "RESIZE_MODES", "RESIZE_FILTER", "ImageLoadError", "LoadedModel",
           "ModelLoadError", "PreparedImage", "ProgressCounter", "collect_image_paths",
           "load_image", "load_model", "openable_suffixes", "predict_probabilities",
           "resolve_model_path", "top_k"]
