"""Decoders for the three CIFAR-10 layouts, each from a checked :class:`FileTree`.

Every decoder returns ``(x_train, y_train), (x_test, y_test)`` with images as uint8
arrays of shape (N, 32, 32, 3) and labels as 1-D int64 arrays in the official order.
"""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image, UnidentifiedImageError

from cifar_cnn.data.errors import DataSourceError
from cifar_cnn.data.file_trees import FileLimit, FileTree, TreeLimits
from cifar_cnn.images import one_line_error, to_rgb_pixels

CLASS_NAMES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
IMAGE_SHAPE = (32, 32, 3)
_PIXELS_PER_IMAGE = 32 * 32 * 3
_PYTHON_TRAIN_FILES = tuple(f"data_batch_{index}" for index in range(1, 6))
_BINARY_TRAIN_FILES = tuple(f"data_batch_{index}.bin" for index in range(1, 6))
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

# Size limits, checked (from tar headers or os.stat) before a file is read, so a small
# archive that inflates to gigabytes is refused without being inflated.
IMAGES_PER_BATCH = 10_000  # In each official batch, python or binary.
BINARY_RECORD_BYTES = 1 + _PIXELS_PER_IMAGE  # 1 label byte + 3,072 pixel bytes.
BINARY_BATCH_BYTES = IMAGES_PER_BATCH * BINARY_RECORD_BYTES  # 30,730,000: the official size.
# An official python batch is 31,035,704 bytes. Python 3 re-saving one at protocol 2 writes
# the pixels as latin-1 text in UTF-8, up to two bytes each: about 62 MB at worst.
PYTHON_BATCH_MAX_BYTES = 64 << 20
# A 32x32 JPEG or PNG is a few KB; a few MB leaves room for metadata (EXIF, ICC profiles).
IMAGE_FILE_MAX_BYTES = 4 << 20
# The official versions hold about 186 MB, a PNG image folder up to about 200 MB; this
# leaves room for extra files while bounding what is read into memory (and inflated).
SOURCE_MAX_BYTES = 512 << 20
# 60,000 images plus their folders; twice that leaves room for extra files.
SOURCE_MAX_FILES = 150_000

SOURCE_LIMITS = TreeLimits(
    max_file_bytes=max(PYTHON_BATCH_MAX_BYTES, BINARY_BATCH_BYTES, IMAGE_FILE_MAX_BYTES),
    max_total_bytes=SOURCE_MAX_BYTES,
    max_files=SOURCE_MAX_FILES,
    largest_file="a python-version batch re-saved by Python 3",
)
_BINARY_BATCH_LIMIT = FileLimit(
    BINARY_BATCH_BYTES, f"a binary batch ({IMAGES_PER_BATCH:,} records of "
                        f"{BINARY_RECORD_BYTES:,} bytes)")
_PYTHON_BATCH_LIMIT = FileLimit(
    PYTHON_BATCH_MAX_BYTES, f"a python batch ({IMAGES_PER_BATCH:,} images, about 31 MB)")
_IMAGE_FILE_LIMIT = FileLimit(IMAGE_FILE_MAX_BYTES, "a 32x32 JPEG or PNG image")

Arrays = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _find_batch_folder(tree: FileTree, marker: str) -> str | None:
    """Return the folder prefix holding ``marker`` (e.g. 'cifar-10-batches-py/'), or None."""
    for path in tree.paths():
        folder, _, name = path.rpartition("/")
        if name == marker:
            return folder + "/" if folder else ""
    return None


def detect_layout(tree: FileTree) -> tuple[str, str]:
    """Tell which CIFAR-10 layout a tree holds.

    Args:
        tree: A checked folder or archive.

    Returns:
        ``(layout, prefix)``: layout is ``"python"``, ``"binary"`` or ``"image_folder"``;
        prefix is the folder inside the tree that holds it ('' for the top).
    """
    prefix = _find_batch_folder(tree, "test_batch")
    if prefix is not None:
        return "python", prefix
    prefix = _find_batch_folder(tree, "test_batch.bin")
    if prefix is not None:
        return "binary", prefix
    for path in tree.paths():
        parts = path.split("/")
        if "train" in parts[:-1]:
            index = parts.index("train")
            return "image_folder", "/".join(parts[:index]) + ("/" if index else "")
    raise DataSourceError(
        f"{tree.description} holds no CIFAR-10 layout I know. Valid layouts: the official "
        "python version (cifar-10-batches-py/data_batch_1..5, test_batch), the official "
        "binary version (cifar-10-batches-bin/data_batch_1..5.bin, test_batch.bin), or an "
        "image folder (train/<class>/*.png|jpg and test/<class>/*.png|jpg)."
    )


def _require_files(tree: FileTree, paths: list[str]) -> None:
    present = set(tree.paths())
    missing = [path for path in paths if path not in present]
    if missing:
        raise DataSourceError(f"{tree.description} is incomplete: missing {', '.join(missing)}.")


def _read_named(tree: FileTree, paths: list[str], limit: FileLimit) -> dict[str, bytes]:
    """Read files that must all exist, each refused if larger than ``limit``.

    Args:
        tree: The checked folder or archive.
        paths: The files to read.
        limit: What each file is and the most bytes it may hold.

    Returns:
        Path -> content.
    """
    _require_files(tree, paths)
    return _read_reporting(tree, {path: limit for path in paths})


def _read_reporting(tree: FileTree, wanted: dict[str, FileLimit]) -> dict[str, bytes]:
    """``dict(tree.read_files(wanted))``, telling ``tree.report`` how many files are read."""
    contents: dict[str, bytes] = {}
    tree.report("reading", 0, len(wanted), "files")
    for path, content in tree.read_files(wanted):
        contents[path] = content
        tree.report("reading", len(contents), len(wanted), "files")
    return contents


def _check_labels(labels: np.ndarray, where: str) -> np.ndarray:
    if labels.size and (labels.min() < 0 or labels.max() >= len(CLASS_NAMES)):
        raise DataSourceError(
            f"{where}: labels must be 0..9, found values from {labels.min()} to {labels.max()}."
        )
    return labels.astype(np.int64)


def load_python_layout(tree: FileTree, prefix: str) -> Arrays:
    """Decode the official python version (pickled batches) with the allow-list unpickler.

    Args:
        tree: The checked folder or archive.
        prefix: The folder inside it holding the batches.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``.
    """
    from cifar_cnn.data.safe_pickle import load_batch_pickle

    names = [prefix + name for name in (*_PYTHON_TRAIN_FILES, "test_batch")]
    contents = _read_named(tree, names, _PYTHON_BATCH_LIMIT)

    def decode(name: str) -> tuple[np.ndarray, np.ndarray]:
        where = f"{tree.description}:{name}"
        # Popped: each file's bytes are freed once decoded, not kept until the end.
        batch = load_batch_pickle(contents.pop(name), where)
        data, labels = batch.get(b"data"), batch.get(b"labels")
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
                or data.shape[1] != _PIXELS_PER_IMAGE:
            raise DataSourceError(
                f"{where}: b'data' must be a uint8 array of shape (N, 3072), got "
                f"{getattr(data, 'dtype', type(data).__name__)} {getattr(data, 'shape', '')}."
            )
        labels = np.asarray(labels)
        if labels.shape != (data.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
            raise DataSourceError(f"{where}: b'labels' must hold one integer per image.")
        # Stored channel-planar (3, 32, 32); the rest of the library is channels-last.
        images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return np.ascontiguousarray(images), _check_labels(labels, where)

    batches = [*_PYTHON_TRAIN_FILES, "test_batch"]
    parts = []
    for index, name in enumerate(batches):
        tree.report("decoding", index, len(batches), "batches")
        parts.append(decode(prefix + name))
    train_parts, test = parts[:-1], parts[-1]
    x_train = np.concatenate([images for images, _ in train_parts])
    y_train = np.concatenate([labels for _, labels in train_parts])
    return (x_train, y_train), test


def load_binary_layout(tree: FileTree, prefix: str) -> Arrays:
    """Decode the official binary version: records of 1 label byte + 3072 pixel bytes.

    Args:
        tree: The checked folder or archive.
        prefix: The folder inside it holding the ``.bin`` files.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``.
    """
    names = [prefix + name for name in (*_BINARY_TRAIN_FILES, "test_batch.bin")]
    contents = _read_named(tree, names, _BINARY_BATCH_LIMIT)

    def decode(name: str) -> tuple[np.ndarray, np.ndarray]:
        where = f"{tree.description}:{name}"
        raw = np.frombuffer(contents[name], dtype=np.uint8)
        _check_whole_records(raw.size, where)
        records = raw.reshape(-1, BINARY_RECORD_BYTES)
        images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return np.ascontiguousarray(images), _check_labels(records[:, 0], where)

    train_parts = [decode(prefix + name) for name in _BINARY_TRAIN_FILES]
    test = decode(prefix + "test_batch.bin")
    x_train = np.concatenate([images for images, _ in train_parts])
    y_train = np.concatenate([labels for _, labels in train_parts])
    return (x_train, y_train), test


def _check_whole_records(size: int, where: str) -> None:
    """Refuse a binary batch that is not a whole, positive number of records.

    Args:
        size: The file's size in bytes.
        where: The file, for the error message.
    """
    if size == 0 or size % BINARY_RECORD_BYTES:
        raise DataSourceError(
            f"{where} has {size} bytes, not a whole number of {BINARY_RECORD_BYTES}-byte "
            "records (1 label byte + 3072 pixel bytes): truncated or not a CIFAR-10 file."
        )


def decode_image(content: bytes, where: str, expected_size: tuple[int, int] | None = (32, 32)):
    """Decode one untrusted JPEG or PNG into an RGB uint8 array.

    Pixels go through :func:`cifar_cnn.images.to_rgb_pixels`, the conversion ``predict``
    uses, so a file trains with the pixels it is later predicted with (16-bit gray scaled,
    transparency composited on white, EXIF orientation applied). Its notes are dropped:
    one line per image would bury a 60,000-image load.

    Args:
        content: The file's bytes.
        where: Its path, for error messages.
        expected_size: Required (width, height), or None to accept any size. Training data
            is never resized: an image of another size is an error naming the file.

    Returns:
        An array of shape (height, width, 3), dtype uint8.
    """
    try:
        with Image.open(io.BytesIO(content)) as image:
            if image.format not in ("JPEG", "PNG"):
                raise DataSourceError(f"{where} is a {image.format} image; valid: JPEG or PNG.")
            # The size is known from the header: refuse before decoding any pixels.
            if expected_size is not None and image.size != expected_size:
                raise DataSourceError(
                    f"{where} is {image.size[0]}x{image.size[1]} pixels; CIFAR-10 images "
                    f"are {expected_size[0]}x{expected_size[1]}."
                )
            pixels, _notes = to_rgb_pixels(image)
            return pixels
    except DataSourceError:
        raise
    # Pillow reports damaged files as OSError, ValueError, SyntaxError or EOFError.
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError,
            Image.DecompressionBombError) as error:
        raise DataSourceError(
            f"{where} cannot be decoded as an image: {one_line_error(error)}") from error


def _image_folder_split(tree: FileTree, prefix: str, split: str) -> list[tuple[str, int]]:
    """List ``(path, label)`` for one split, checking the class folders first."""
    split_prefix = f"{prefix}{split}/"
    files_by_class: dict[str, list[str]] = {}
    too_deep = []
    for path in tree.paths():
        if not path.startswith(split_prefix):
            continue
        parts = path[len(split_prefix):].split("/")
        if any(part.startswith(".") for part in parts):
            continue  # Hidden files and folders (.DS_Store, macOS ._ files) are not images.
        if len(parts) == 1:
            raise DataSourceError(
                f"{tree.description}: {path} lies directly in {split}/; images belong in "
                f"{split}/<class>/ with <class> one of {', '.join(CLASS_NAMES)}."
            )
        if len(parts) > 2:
            too_deep.append(path)
        else:
            files_by_class.setdefault(parts[0], []).append(path)
    _refuse_nested_files(tree, split, too_deep)
    found, expected = set(files_by_class), set(CLASS_NAMES)
    if found != expected:
        problems = []
        if expected - found:
            problems.append(f"missing {', '.join(sorted(expected - found))}")
        if found - expected:
            problems.append(f"unexpected {', '.join(sorted(found - expected))}")
        raise DataSourceError(
            f"{tree.description}: {split}/ has the wrong class folders ({'; '.join(problems)}). "
            f"Valid class folders, in label order: {', '.join(CLASS_NAMES)}."
        )
    listing = []
    for label, class_name in enumerate(CLASS_NAMES):
        for path in files_by_class[class_name]:
            if not path.lower().endswith(IMAGE_SUFFIXES):
                raise DataSourceError(
                    f"{tree.description}: {path} is not an image; valid: "
                    f"{', '.join(IMAGE_SUFFIXES)}."
                )
            listing.append((path, label))
    return listing


def _refuse_nested_files(tree: FileTree, split: str, paths: list[str]) -> None:
    """Refuse files in folders below the class folders, naming a few of them.

    They were silently skipped once; an image set aside in a sub-folder is more likely a
    mistake than a wish to leave it out.
    """
    if not paths:
        return
    shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3:,} more" if len(paths) > 3 else "")
    raise DataSourceError(
        f"{tree.description}: {shown} lie in a folder below {split}/<class>/; images belong "
        f"directly in their class folder ({split}/<class>/<image>), and sub-folders are not "
        "read. Move them up, or hide the folder (a name starting with '.')."
    )


def load_image_folder_layout(tree: FileTree, prefix: str) -> Arrays:
    """Decode ``train/<class>/*`` and ``test/<class>/*`` JPEG or PNG images.

    Class folders map to the official label order whatever order they are stored in.

    Args:
        tree: The checked folder or archive.
        prefix: The folder inside it holding ``train/`` and ``test/``.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``, each split sorted by label then file name.
    """
    listings = {split: _image_folder_split(tree, prefix, split) for split in ("train", "test")}
    labels_by_path = {path: label for listing in listings.values() for path, label in listing}
    contents = _read_reporting(tree, {path: _IMAGE_FILE_LIMIT for path in labels_by_path})
    # Pillow releases the GIL while decoding, so threads use every core.
    decoded: dict[str, np.ndarray] = {}
    tree.report("decoding", 0, len(contents), "images")
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for path, pixels in zip(contents, pool.map(decode_image, contents.values(),
                                                   contents.keys())):
            decoded[path] = pixels
            tree.report("decoding", len(decoded), len(contents), "images")

    def stack(listing: list[tuple[str, int]]) -> tuple[np.ndarray, np.ndarray]:
        images = np.stack([decoded[path] for path, _ in listing]).astype(np.uint8)
        labels = np.array([label for _, label in listing], dtype=np.int64)
        return images, labels

    return stack(listings["train"]), stack(listings["test"])


LAYOUT_LOADERS = {
    "python": load_python_layout,
    "binary": load_binary_layout,
    "image_folder": load_image_folder_layout,
}
