"""Large images in ``predict``: decoded at reduced scale where the format allows, refused past the limits.

The large files are built here, small on disk: a 108-megapixel JPEG of a few shapes, and PNGs
whose header declares hundreds of megapixels (their rows are zeros, compressed as they are
written). The peak memory is that of a fresh interpreter running ``cifar-cnn predict``.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from cifar_cnn import images
from test_model_files import MAX_PEAK_MEMORY_MB, predict_in_fresh_process


def write_large_png(path: Path, width: int, height: int, channels: int = 3) -> Path:
    """A valid PNG of zero pixels, written row by row: never the whole image in memory."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    color_type = {1: 0, 3: 2, 4: 6}[channels]
    row = bytes(1 + width * channels)  # A filter byte, then the row's samples.
    compressor = zlib.compressobj(1)
    with open(path, "wb") as stream:
        stream.write(b"\x89PNG\r\n\x1a\n")
        stream.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)))
        pending = bytearray()
        for _ in range(height):
            pending += compressor.compress(row)
            if len(pending) > 1 << 20:
                stream.write(chunk(b"IDAT", bytes(pending)))
                pending.clear()
        pending += compressor.flush()
        stream.write(chunk(b"IDAT", bytes(pending)))
        stream.write(chunk(b"IEND", b""))
    return path


def write_large_jpeg(path: Path, width: int, height: int) -> Path:
    """A JPEG photo-sized image of a few coloured shapes (it passes through memory once)."""
    image = Image.new("RGB", (width, height), (40, 90, 160))
    draw = ImageDraw.Draw(image)
    draw.ellipse((width // 4, height // 4, 3 * width // 4, 3 * height // 4), fill=(220, 180, 40))
    draw.rectangle((0, 2 * height // 3, width, height), fill=(30, 120, 40))
    image.save(path, quality=80)
    return path


@pytest.mark.slow
def test_a_108_megapixel_jpeg_is_classified_and_a_400_megapixel_png_named_too_large(
        small_keras_model, tmp_path):
    photo = write_large_jpeg(tmp_path / "panorama.jpg", 12000, 9000)
    huge = write_large_png(tmp_path / "huge.png", 20000, 20000)
    assert huge.stat().st_size < 16 << 20
    outcome, errors = predict_in_fresh_process(small_keras_model, photo, huge)
    assert outcome["exit"] == 1
    assert f"{huge} is too large to read: 20000x20000 is 400,000,000 pixels" in errors
    assert "panorama.jpg" not in errors
    assert outcome["peak_mb"] < MAX_PEAK_MEMORY_MB, outcome
    print(f"108 MP JPEG + 400 MP PNG: exit {outcome['exit']}, peak {outcome['peak_mb']:.0f} MB")


def test_a_large_jpeg_decodes_at_reduced_scale_and_keeps_its_true_size(tmp_path):
    photo = write_large_jpeg(tmp_path / "photo.jpg", 4000, 3000)
    prepared = images.load_image(photo)
    assert prepared.original_size == (4000, 3000) and prepared.pixels.shape == (32, 32, 3)
    # The ellipse is yellow at the centre, the ground green at the bottom.
    assert prepared.pixels[16, 16, 0] > 150 and prepared.pixels[30, 16, 1] > 90


def test_a_small_jpeg_is_read_pixel_for_pixel(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "small.jpg", quality=95)
    with Image.open(tmp_path / "small.jpg") as reference:
        expected = np.asarray(reference.convert("RGB"))
    np.testing.assert_array_equal(images.load_image(tmp_path / "small.jpg").pixels, expected)


@pytest.mark.parametrize("size, channels, message", [
    ((20000, 20000), 3, "20000x20000 is 400,000,000 pixels; images of up to 150,000,000"),
    ((5000, 5000), 4, "(5000x5000 RGBA) take 100,000,000 bytes decoded, beyond the 48,000,000"),
    ((4100, 4000), 3, "(4100x4000 RGB) take 49,200,000 bytes decoded, beyond the 48,000,000"),
])
def test_images_past_the_limits_are_refused_from_their_header(tmp_path, size, channels, message):
    path = write_large_png(tmp_path / "large.png", *size, channels=channels)
    with pytest.raises(images.ImageLoadError) as refused:
        images.load_image(path)
    assert str(refused.value).startswith(f"{path} is too large to read: ")
    assert message in str(refused.value)


@pytest.fixture(scope="module")
def baseline_peak_mb(small_keras_model, black_32x32_png) -> float:
    """The peak of the same predict command on one 32x32 image: TensorFlow and the model."""
    return predict_in_fresh_process(small_keras_model, black_32x32_png)[0]["peak_mb"]


@pytest.mark.parametrize("size, channels", [((4000, 4000), 3), ((2440, 2440), 4)])
def test_the_largest_images_accepted_stay_within_their_budget(
        small_keras_model, baseline_peak_mb, tmp_path, size, channels):
    """Just under the budget: 48 MB of RGB (shrunk as decoded), 23.8 MB of RGBA (premultiplied
    copy, then shrunk); an image costs its budget and little more, and the process stays
    under 800 MB."""
    path = write_large_png(tmp_path / "large.png", *size, channels=channels)
    outcome, errors = predict_in_fresh_process(small_keras_model, path)
    assert outcome["exit"] == 0, errors[-2000:]
    added = outcome["peak_mb"] - baseline_peak_mb
    assert added < images.DECODE_BUDGET_BYTES / 2**20 * 1.25, (outcome, baseline_peak_mb)
    assert outcome["peak_mb"] < MAX_PEAK_MEMORY_MB, outcome
    print(f"{size[0]}x{size[1]}x{channels} PNG: peak {outcome['peak_mb']:.0f} MB, "
          f"{added:.0f} MB over one 32x32 image's {baseline_peak_mb:.0f} MB")


def test_shrinking_an_image_with_alpha_never_shows_the_colour_under_transparent_pixels(tmp_path):
    """Left half transparent red (hidden colour), right half opaque blue: after shrinking,
    the left must be the white background, never pink."""
    pixels = np.zeros((1024, 1024, 4), np.uint8)
    pixels[:, :512] = (255, 0, 0, 0)
    pixels[:, 512:] = (0, 0, 255, 255)
    Image.fromarray(pixels, "RGBA").save(tmp_path / "half.png")
    prepared = images.load_image(tmp_path / "half.png")
    np.testing.assert_array_equal(prepared.pixels[:, :12], 255)
    assert (prepared.pixels[:, 20:, 2] > 240).all() and (prepared.pixels[:, 20:, 0] < 15).all()
