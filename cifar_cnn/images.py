"""Reading your own images as model input: any size and format in, 32x32 RGB pixels out.

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

Pillow is imported by the functions that read images, not by this module, so the command
line can offer ``RESIZE_MODES`` as choices without loading it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

IMAGE_SIZE = (32, 32)
RESIZE_MODES = ("stretch", "center-crop")
# Lanczos: the sharpest of Pillow's antialiasing filters for shrinking large photos. Named
# (a member of PIL.Image.Resampling) rather than imported, so this module does not need Pillow.
RESIZE_FILTER = "LANCZOS"
BACKGROUND_COLOR = (255, 255, 255)
# Pillow's modes for one gray channel: 1-bit, 8-bit, 32-bit integer, float, 16-bit variants.
_GRAYSCALE_BANDS = ("1", "L", "I", "F")


class ImageLoadError(ValueError):
    """An image argument that is missing, cannot be decoded, or a folder without images."""


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


def one_line_error(error: BaseException, limit: int = 300) -> str:
    """An exception's message on one line, cut to ``limit`` characters.

    Some libraries' messages span several lines, and Keras' can run to thousands of
    characters (a whole layer config): the start says what went wrong.

    Args:
        error: The exception.
        limit: The longest message returned, in characters.

    Returns:
        The message (the exception's type name when it has none).
    """
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[:limit - 1] + "…"


def openable_suffixes() -> frozenset[str]:
    """File name suffixes of the image formats this Pillow can open (``.png``, ``.webp`` ...).

    Returns:
        Lower-case suffixes with their dot.
    """
    from PIL import Image

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
    from PIL import Image

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
    from PIL import Image, ImageOps

    if resize not in RESIZE_MODES:
        raise ValueError(f"Unknown resize mode {resize!r}; valid choices: "
                         f"{', '.join(RESIZE_MODES)}.")
    path = Path(path)
    if not path.is_file():
        raise ImageLoadError(f"{path} does not exist." if not path.exists()
                             else f"{path} is not a file.")
    resize_filter = Image.Resampling[RESIZE_FILTER]
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
                image = image.resize(IMAGE_SIZE, resize_filter)
            else:
                image = ImageOps.fit(image, IMAGE_SIZE, method=resize_filter)
            pixels = np.asarray(image, dtype=np.uint8)
    except Exception as error:  # Pillow raises OSError, SyntaxError, EOFError, struct.error...
        raise ImageLoadError(f"{path} cannot be decoded as an image: "
                             f"{one_line_error(error)}") from error
    # Resizing is not a note: nearly every photo needs it, and --help documents it.
    return PreparedImage(path=path, pixels=pixels, original_size=original_size,
                         original_mode=original_mode, notes=notes)


__all__ = ["BACKGROUND_COLOR", "IMAGE_SIZE", "RESIZE_FILTER", "RESIZE_MODES", "ImageLoadError",
           "PreparedImage", "collect_image_paths", "load_image", "one_line_error",
           "openable_suffixes"]
