"""Reading your own images as model input: any size and format in, 32x32 RGB pixels out.

How an image becomes model input (the ``predict`` command does exactly this; training
data read from an image folder goes through the same step 2, :func:`to_rgb_pixels`, so a
file gives the model the same pixels in training and in prediction):

1. Pillow opens it, whatever the format it can read (PNG, JPEG, BMP, GIF, WebP, TIFF, ...).
   Animated images use their first frame.
2. It is turned upright (a camera's EXIF orientation) and converted to 8-bit RGB.
   Grayscale copies its gray level into R, G and B (16-bit grayscale is first scaled to
   8 bits, 0..65535 onto 0..255); an image with transparent pixels (RGBA, LA, a palette
   with a transparent colour) is composited on a white background, because the colour
   hidden under a transparent pixel is arbitrary (often black) and CIFAR-10 photos have
   no transparency; CMYK and other modes use Pillow's conversion. Each of these
   conversions is reported as a note, so a surprising prediction can be traced to it.
3. It is resized to 32x32 with Pillow's Lanczos filter, which antialiases when shrinking
   (a large photo does not alias into noise). ``"stretch"`` (the default) keeps the whole
   image and ignores its aspect ratio; ``"center-crop"`` cuts the largest centred region of
   the right shape first, keeping proportions but maybe losing the edges. A 32x32 image is
   passed through unchanged, pixel for pixel.
Large images are read within a fixed memory budget: a file of more than
``MAX_IMAGE_PIXELS`` pixels is refused from its header, before any decoding; a JPEG is
decoded directly at 1/2, 1/4 or 1/8 scale when that still leaves at least
``DRAFT_MINIMUM_SIZE`` pixels a side (a 108-megapixel photo decodes as 1.7 megapixels);
an 8-bit RGB or gray image (with or without alpha) is box-shrunk by a whole factor right
after decoding; and an image that would still take more than ``DECODE_BUDGET_BYTES`` to
decode and convert (a format with no reduced-scale decoding, such as PNG) is refused,
naming the file.

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
# The largest image read, in pixels (width x height from the file's header): a 150-megapixel
# photo is larger than any camera's.
MAX_IMAGE_PIXELS = 150_000_000
# The memory one image may take while it is read, beyond what the program holds already
# (610-710 MB for predict with TensorFlow and a model, measured on two installs: the two
# stay under 800 MB). An 8-bit gray or RGB image is box-shrunk right after decoding, so it
# costs its decoded size once (48 MB: 16 megapixels of RGB); one with an alpha band costs
# it twice (premultiplied first, so shrinking averages only what is visible: 6 megapixels
# of RGBA); any other (a palette or colour with transparency, 16-bit, CMYK) is converted
# at full size, which copies it about six times.
DECODE_BUDGET_BYTES = 48_000_000
_CONVERSION_COPIES = 6
# Modes shrunk right after decoding, with what they are shrunk as (premultiplied alpha).
_SHRINK_AS = {"L": "L", "RGB": "RGB", "LA": "La", "RGBA": "RGBa"}
# JPEGs are decoded at the smallest scale that keeps both sides at least this long: enough
# for a sharp 32x32 result after a centre crop.
DRAFT_MINIMUM_SIZE = 256
# Bytes per pixel of Pillow's modes, for the decoded-size budget (4 for anything unlisted).
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "LA": 2, "PA": 2, "I;16": 2, "I;16B": 2, "I;16L": 2,
               "RGB": 3, "YCbCr": 3, "LAB": 3, "HSV": 3}
# Pillow's modes for one gray channel: 1-bit, 8-bit, 32-bit integer, float, 16-bit variants.
_GRAYSCALE_BANDS = ("1", "L", "I", "F")
# Gray modes deeper than 8 bits ("I;16", "I;16B"... are matched by prefix), and the top of
# the 16-bit range they are scaled from.
_SIXTEEN_BIT_MODES = ("I", "F")
_SIXTEEN_BIT_MAX = 65535.0


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


def _is_sixteen_bit(image: Image.Image) -> bool:
    """True for one-channel images deeper than 8 bits: 16-bit, 32-bit integer or float."""
    return image.mode in _SIXTEEN_BIT_MODES or image.mode.startswith("I;16")


def _is_grayscale(image: Image.Image) -> bool:
    """True when the image has one colour band that is a gray level (alpha aside)."""
    color_bands = [band for band in image.getbands() if band not in ("A", "a")]
    # A palette's one band is an index into colours, not a gray level.
    return image.mode != "P" and len(color_bands) == 1 and color_bands[0] in _GRAYSCALE_BANDS


def _sixteen_bit_to_8_bits(image: Image.Image) -> Image.Image:
    """Scale a 16-bit (or 32-bit, float) gray image to 8 bits by the 16-bit value range.

    Pillow's own ``convert()`` clips values above 255 to 255, so a mid-gray 16-bit image
    would turn white. Values are read as 0..65535 and mapped linearly onto 0..255
    (30000 -> 117); values outside that range are clipped to it.

    Args:
        image: An image of mode ``"I;16"`` (and byte-order variants), ``"I"`` or ``"F"``.

    Returns:
        An ``"L"`` image, or ``"LA"`` when a PNG ``tRNS`` chunk names a transparent gray
        value (Pillow's own conversion would drop it).
    """
    from PIL import Image

    values = np.nan_to_num(np.asarray(image, dtype=np.float64))
    gray = Image.fromarray(np.rint(np.clip(values, 0, _SIXTEEN_BIT_MAX)
                                   * (255.0 / _SIXTEEN_BIT_MAX)).astype(np.uint8))
    transparent_value = image.info.get("transparency")
    if not isinstance(transparent_value, (int, float)):
        return gray
    alpha = Image.fromarray(np.where(values == transparent_value, 0, 255).astype(np.uint8))
    return Image.merge("LA", (gray, alpha))


def _has_transparency(image: Image.Image) -> bool:
    """True for an alpha band, or a palette/gray/RGB image whose ``tRNS`` names a colour."""
    bands = image.getbands()
    return "A" in bands or "a" in bands or "transparency" in image.info


def _composite_on_background(image: Image.Image, notes: list[str]) -> Image.Image:
    """Composite an image with transparency on ``BACKGROUND_COLOR``; return it as RGB.

    The colour hidden under a transparent pixel is arbitrary (often black), so it is never
    used: every transparent or half-transparent pixel is blended with the background.

    Args:
        image: An image with an alpha band or a ``tRNS`` transparent colour.
        notes: Receives one sentence saying whether any pixel was transparent.

    Returns:
        An ``"RGB"`` image of the same size.
    """
    from PIL import Image

    rgba = image.convert("RGBA")
    if rgba.getextrema()[3][0] == 255:
        notes.append(f"{image.mode} with an alpha channel but no transparent pixel: "
                     "alpha dropped.")
    else:
        notes.append(f"{image.mode} with transparent pixels: composited on a white "
                     "background.")
    background = Image.new("RGBA", rgba.size, (*BACKGROUND_COLOR, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _to_rgb(image: Image.Image, notes: list[str]) -> Image.Image:
    """Convert any Pillow image to 8-bit RGB (the rules of :func:`to_rgb_pixels`).

    Args:
        image: An upright image of any mode.
        notes: Receives one sentence per conversion that changes what is seen.

    Returns:
        An ``"RGB"`` image of the same size.
    """
    if _is_grayscale(image):
        if _is_sixteen_bit(image):
            image = _sixteen_bit_to_8_bits(image)
            notes.append("16-bit grayscale: scaled to 8 bits, gray level copied to R, G "
                         "and B.")
        else:
            notes.append("grayscale: its gray level was copied to R, G and B.")
    # Palettes with a transparent colour go through RGBA here too: their colours and
    # their transparency both come out of Pillow's RGBA conversion.
    if _has_transparency(image):
        return _composite_on_background(image, notes)
    if image.mode not in ("RGB", "L", "P", "1"):
        notes.append(f"{image.mode} image: converted to RGB.")  # CMYK, YCbCr, LAB, HSV.
    return image.convert("RGB")


def to_rgb_pixels(image: Image.Image) -> tuple[np.ndarray, list[str]]:
    """Convert a decoded image to 8-bit RGB pixels: the one conversion of training and predict.

    Training data read from image folders (``cifar_cnn.data.formats.decode_image``) and
    ``predict`` (:func:`load_image`) both call this, so a file gives the same pixels to
    the model in training and in prediction. The rules:

    - EXIF orientation is applied (a phone photo stored sideways is turned upright).
    - 16-bit grayscale (modes ``"I;16"``, ``"I"``, ``"F"``) is scaled to 8 bits by the
      16-bit value range, 0..65535 onto 0..255 (30000 -> 117), not clipped to 255.
    - Grayscale (1-bit, 8-bit, or scaled 16-bit) is copied to R, G and B.
    - Transparency (an alpha band, or a ``tRNS`` transparent colour in a palette, gray or
      RGB image; palettes are converted through RGBA) is composited on
      ``BACKGROUND_COLOR`` (white); the colour hidden under a transparent pixel is unused.
    - CMYK (and any other colour mode) is converted to RGB by Pillow.

    The size is not changed: resizing is the caller's choice (``predict`` resizes, training
    data refuses images that are not 32x32).

    Args:
        image: An opened Pillow image (its first frame is used).

    Returns:
        ``(pixels, notes)``: a uint8 array of shape (height, width, 3), and one sentence for
        each conversion that changes what is seen (grayscale, transparency, 16 bits, CMYK).
    """
    from PIL import ImageOps

    notes: list[str] = []
    upright = ImageOps.exif_transpose(image)
    return np.asarray(_to_rgb(upright, notes), dtype=np.uint8), notes


def _resized(pixels: np.ndarray, resize: str) -> np.ndarray:
    """Bring RGB pixels to ``IMAGE_SIZE`` by stretching or by a centre crop, with Lanczos."""
    from PIL import Image, ImageOps

    resize_filter = Image.Resampling[RESIZE_FILTER]
    image = Image.fromarray(pixels)
    if resize == "stretch":
        image = image.resize(IMAGE_SIZE, resize_filter)
    else:
        image = ImageOps.fit(image, IMAGE_SIZE, method=resize_filter)
    return np.asarray(image, dtype=np.uint8)


def _check_image_size(path: Path, image: Image.Image) -> None:
    """Refuse an image too large to read, and shrink a JPEG's decoding when it can.

    Called on an opened, not yet decoded image: only its header has been read.

    Args:
        path: The file, for messages.
        image: The opened image; a JPEG is set to decode at a reduced scale (``draft``).

    Raises:
        ImageLoadError: More than ``MAX_IMAGE_PIXELS`` pixels, or more than
            ``DECODE_BUDGET_BYTES`` to decode and convert.
    """
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageLoadError(f"{path} is too large to read: {width}x{height} is "
                             f"{width * height:,} pixels; images of up to "
                             f"{MAX_IMAGE_PIXELS:,} pixels are read.")
    # JPEG (and Pillow's other draft-capable decoders) decode at 1/2, 1/4 or 1/8 scale.
    image.draft(image.mode, (min(width, DRAFT_MINIMUM_SIZE), min(height, DRAFT_MINIMUM_SIZE)))
    decoded_width, decoded_height = image.size
    decoded_bytes = decoded_width * decoded_height * _MODE_BYTES.get(image.mode, 4)
    copies = (_CONVERSION_COPIES if not _shrinks_early(image)
              else 2 if _SHRINK_AS[image.mode] != image.mode else 1)
    if decoded_bytes * copies > DECODE_BUDGET_BYTES:
        raise ImageLoadError(
            f"{path} is too large to read: its {image.format or 'image'} pixels "
            f"({decoded_width}x{decoded_height} {image.mode}) take {decoded_bytes:,} bytes "
            f"decoded{' and are converted at full size' if copies > 2 else ''}, beyond the "
            f"{DECODE_BUDGET_BYTES:,} bytes an image may use (8-bit RGB or gray up to "
            f"{DECODE_BUDGET_BYTES // 3:,} pixels, others less; a JPEG is decoded at reduced "
            "scale: convert or shrink a very large image first).")


def _shrinks_early(image: Image.Image) -> bool:
    """True for 8-bit gray or RGB, with or without an alpha band, and no transparent colour
    (``tRNS``): box-shrinking those right after decoding averages only what is visible."""
    return image.mode in _SHRINK_AS and "transparency" not in image.info


def _shrunk(image: Image.Image) -> Image.Image:
    """A large 8-bit gray or RGB image box-shrunk by a whole factor, to no less than
    ``DRAFT_MINIMUM_SIZE`` pixels a side; any other image unchanged."""
    factor = min(image.size) // DRAFT_MINIMUM_SIZE
    if factor < 2 or not _shrinks_early(image):
        return image
    mode, working_mode = image.mode, _SHRINK_AS[image.mode]
    # Premultiplied by alpha (working_mode "RGBa"/"La"): a transparent pixel's hidden colour
    # weighs nothing in the average, as compositing on the background later requires.
    working = image if working_mode == mode else image.convert(working_mode)
    if working is not image:
        image.close()  # The decoded pixels go before the shrunk copy is made.
    shrunk = working.reduce(factor)
    working.close()  # Frees the full-size pixels now, not when the file is closed.
    return shrunk if working_mode == mode else shrunk.convert(mode)


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
    from PIL import Image

    if resize not in RESIZE_MODES:
        raise ValueError(f"Unknown resize mode {resize!r}; valid choices: "
                         f"{', '.join(RESIZE_MODES)}.")
    path = Path(path)
    if not path.is_file():
        raise ImageLoadError(f"{path} does not exist." if not path.exists()
                             else f"{path} is not a file.")
    notes: list[str] = []
    try:
        # The size is checked here, against MAX_IMAGE_PIXELS, with a message that names
        # it; Pillow's own check at open (a warning past 89 MP, an error past 179 MP) is
        # set aside for that moment only.
        pillow_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            opened = Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = pillow_limit
        with opened:
            original_size, original_mode = opened.size, opened.mode
            _check_image_size(path, opened)
            frames = getattr(opened, "n_frames", 1)
            if frames > 1:
                notes.append(f"animated ({frames} frames): the first frame is used.")
            opened.load()  # Decode now, so a truncated file fails here, inside the try.
            rgb_pixels, conversion_notes = to_rgb_pixels(_shrunk(opened))
            notes.extend(conversion_notes)
            pixels = _resized(rgb_pixels, resize)
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as error:
        raise ImageLoadError(f"{path} is too large to read: {one_line_error(error)} Images "
                             f"of up to {MAX_IMAGE_PIXELS:,} pixels are read.") from None
    except Exception as error:  # Pillow raises OSError, SyntaxError, EOFError, struct.error...
        raise ImageLoadError(f"{path} cannot be decoded as an image: "
                             f"{one_line_error(error)}") from error
    # Resizing is not a note: nearly every photo needs it, and --help documents it.
    return PreparedImage(path=path, pixels=pixels, original_size=original_size,
                         original_mode=original_mode, notes=notes)


__all__ = ["BACKGROUND_COLOR", "DECODE_BUDGET_BYTES", "IMAGE_SIZE", "MAX_IMAGE_PIXELS",
           "RESIZE_FILTER", "RESIZE_MODES", "ImageLoadError",
           "PreparedImage", "collect_image_paths", "load_image", "one_line_error",
           "openable_suffixes", "to_rgb_pixels"]
