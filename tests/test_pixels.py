"""One pixel conversion: a file gives the same pixels to training and to ``predict``.

Each special image (16-bit gray, transparency, palette, grayscale, CMYK, EXIF rotation) is
placed in a tiny image-folder source as the first training image and loaded through
``load_cifar10``, and the same file is read with ``images.load_image``: both must give the
same pixels, and the pixels the stated rule promises.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from cifar_cnn import images
from cifar_cnn.data import DataSourceError, load_cifar10

WHITE = np.array(images.BACKGROUND_COLOR, dtype=np.uint8)
# The first training image: the split loads sorted by label (airplane first), then by name.
FIRST_TRAIN_IMAGE = "train/airplane/00000"


def _encoded(image: Image.Image, image_format: str, **options) -> bytes:
    stream = io.BytesIO()
    image.save(stream, format=image_format, **options)
    return stream.getvalue()


def _noise(channels: int, seed: int = 0) -> np.ndarray:
    shape = (32, 32, channels) if channels > 1 else (32, 32)
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def both_paths(make_cifar_fixture, cifar_encoders, tmp_path, content: bytes, suffix: str):
    """Pixels of one image file as training data and as ``predict`` input.

    Args:
        make_cifar_fixture: The conftest factory (its image-folder files are reused).
        cifar_encoders: The conftest encoders (``write_folder``).
        tmp_path: Where the source and the single file are written.
        content: The image file's bytes.
        suffix: ``".png"`` or ``".jpg"``.

    Returns:
        ``(training pixels, predict pixels, predict notes)``.
    """
    files = [(path, data) for path, data in make_cifar_fixture.files("image_folder", "png")
             if not path.startswith(FIRST_TRAIN_IMAGE)]
    files.append((FIRST_TRAIN_IMAGE + suffix, content))
    source = cifar_encoders.write_folder(tmp_path / "source", files)
    (x_train, _), _ = load_cifar10(source, use_cache=False)

    single = tmp_path / f"single{suffix}"
    single.write_bytes(content)
    prepared = images.load_image(single)
    return x_train[0], prepared.pixels, prepared.notes


def _assert_same_in_both_paths(training, predicted) -> None:
    assert training.dtype == predicted.dtype == np.uint8
    np.testing.assert_array_equal(training, predicted)


def test_16_bit_gray_is_scaled_by_its_range_in_both_paths(make_cifar_fixture, cifar_encoders,
                                                           tmp_path):
    deep = Image.fromarray(np.full((32, 32), 30000, dtype=np.uint16))
    assert deep.mode.startswith("I;16")

    training, predicted, notes = both_paths(make_cifar_fixture, cifar_encoders, tmp_path,
                                            _encoded(deep, "PNG"), ".png")

    _assert_same_in_both_paths(training, predicted)
    assert np.all(training == 117)  # round(30000 * 255 / 65535), not clipped to 255.
    assert notes == ["16-bit grayscale: scaled to 8 bits, gray level copied to R, G and B."]


def test_dark_16_bit_gray_stays_dark(make_cifar_fixture, cifar_encoders, tmp_path):
    # Values under 256 are still 16-bit values: 200 of 65535 is nearly black, not 200.
    deep = Image.fromarray(np.full((32, 32), 200, dtype=np.uint16))

    training, predicted, _ = both_paths(make_cifar_fixture, cifar_encoders, tmp_path,
                                        _encoded(deep, "PNG"), ".png")

    _assert_same_in_both_paths(training, predicted)
    assert np.all(training == 1)


def test_transparent_rgba_is_composited_on_white_in_both_paths(make_cifar_fixture,
                                                               cifar_encoders, tmp_path):
    pixels = _noise(4)
    pixels[..., 3] = 255
    pixels[:8, :, :3] = 0  # A hidden black under fully transparent pixels...
    pixels[:8, :, 3] = 0
    pixels[8:16, :, 3] = 128  # ...and half-transparent ones, blended with white.
    rgba = Image.fromarray(pixels, mode="RGBA")

    training, predicted, notes = both_paths(make_cifar_fixture, cifar_encoders, tmp_path,
                                            _encoded(rgba, "PNG"), ".png")

    _assert_same_in_both_paths(training, predicted)
    assert np.all(training[:8] == WHITE)
    half = pixels[8:16, :, :3].astype(np.int32)
    np.testing.assert_allclose(training[8:16], (half * 128 + 255 * 127) / 255, atol=1)
    np.testing.assert_array_equal(training[16:], pixels[16:, :, :3])
    assert notes == ["RGBA with transparent pixels: composited on a white background."]


def test_palette_with_a_transparent_colour_is_composited_on_white_in_both_paths(
        make_cifar_fixture, cifar_encoders, tmp_path):
    indices = np.zeros((32, 32), dtype=np.uint8)
    indices[:, 16:] = 1
    palette_image = Image.fromarray(indices, mode="P")
    palette_image.putpalette([0, 0, 0, 200, 30, 40] + [0] * (254 * 3))
    content = _encoded(palette_image, "PNG", transparency=0)  # Index 0 (black) is hidden.

    training, predicted, notes = both_paths(make_cifar_fixture, cifar_encoders, tmp_path,
                                            content, ".png")

    _assert_same_in_both_paths(training, predicted)
    assert np.all(training[:, :16] == WHITE)
    assert np.all(training[:, 16:] == [200, 30, 40])
    assert notes == ["P with transparent pixels: composited on a white background."]


def test_grayscale_is_copied_to_r_g_and_b_in_both_paths(make_cifar_fixture, cifar_encoders,
                                                         tmp_path):
    gray = _noise(1)

    training, predicted, notes = both_paths(make_cifar_fixture, cifar_encoders, tmp_path,
                                            _encoded(Image.fromarray(gray), "PNG"), ".png")

    _assert_same_in_both_paths(training, predicted)
    for channel in range(3):
        np.testing.assert_array_equal(training[..., channel], gray)
    assert notes == ["grayscale: its gray level was copied to R, G and B."]


def test_cmyk_jpeg_is_converted_to_rgb_in_both_paths(make_cifar_fixture, cifar_encoders,
                                                      tmp_path):
    cmyk = Image.fromarray(_noise(4, seed=5), mode="CMYK")
    content = _encoded(cmyk, "JPEG", quality=100)

    training, predicted, notes = both_paths(make_cifar_fixture, cifar_encoders, tmp_path,
                                            content, ".jpg")

    _assert_same_in_both_paths(training, predicted)
    with Image.open(io.BytesIO(content)) as decoded:
        np.testing.assert_array_equal(training, np.asarray(decoded.convert("RGB")))
    assert notes == ["CMYK image: converted to RGB."]


def test_exif_orientation_is_applied_in_both_paths(make_cifar_fixture, cifar_encoders,
                                                   tmp_path):
    sideways = np.zeros((32, 32, 3), dtype=np.uint8)
    sideways[:, 16:] = 255  # Left half black, right half white...
    image = Image.fromarray(sideways)
    exif = image.getexif()
    exif[0x0112] = 6  # ...stored sideways: "rotate 90 degrees clockwise" to view it.
    content = _encoded(image, "JPEG", quality=100, exif=exif.tobytes())

    training, predicted, _ = both_paths(make_cifar_fixture, cifar_encoders, tmp_path,
                                        content, ".jpg")

    _assert_same_in_both_paths(training, predicted)
    assert training[:12].mean() < 10 and training[-12:].mean() > 245  # Black on top.


def test_to_rgb_pixels_keeps_the_size_and_training_refuses_other_sizes(copy_cifar_fixture,
                                                                       tmp_path):
    deep = Image.fromarray(np.full((40, 48), 30000, dtype=np.uint16))
    pixels, _ = images.to_rgb_pixels(deep)
    assert pixels.shape == (40, 48, 3) and np.all(pixels == 117)

    source = copy_cifar_fixture("image_folder", "folder")
    deep.save(source / "test" / "ship" / "deep.png")
    # predict resizes any image; training data must be 32x32 and names the file if not.
    assert images.load_image(source / "test" / "ship" / "deep.png").pixels.shape == (32, 32, 3)
    with pytest.raises(DataSourceError, match=r"deep\.png is 48x40 pixels"):
        load_cifar10(source, use_cache=False)
