"""Shared fixtures: an isolated data environment and tiny CIFAR-10 sources in every format.

Every test runs with ``$CIFAR_CNN_CACHE_DIR`` pointing at its own empty folder and without
``$CIFAR10_SOURCE``, so no test reads the user's data or writes to ``~/.cache``.

The generated sources all encode the same small, seeded arrays (see ``tiny_arrays``):
images are random uint8 noise and labels are sorted by class, because an image folder
loads sorted by label then file name, and a single ground truth must hold for every format.
The sources are shared by the whole session: treat them as read-only and copy one before
changing it.
"""

from __future__ import annotations

import functools
import io
import pickle
import shutil
import tarfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from cifar_cnn.data import CLASS_NAMES

def pytest_collection_modifyitems(items):
    """Slow tests first: with parallel workers (scripts/test.sh), a long test that started
    last would keep one worker busy while the others idle."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


LAYOUTS = ("python", "binary", "image_folder")
CONTAINERS = ("folder", "tar", "tar.gz")
IMAGE_FORMATS = ("png", "jpeg")
TRAIN_BATCH_COUNT = 5
DEFAULT_TRAIN_PER_CLASS = 3
DEFAULT_TEST_PER_CLASS = 2
# Where each layout lives inside an archive; folder sources keep the same tree.
PYTHON_FOLDER = "cifar-10-batches-py"
BINARY_FOLDER = "cifar-10-batches-bin"
IMAGE_FOLDER_ARCHIVE_ROOT = "tiny-cifar10"


@functools.lru_cache(maxsize=None)
def generate_tiny_arrays(train_per_class: int, test_per_class: int):
    """Return seeded ``((x_train, y_train), (x_test, y_test))`` with labels sorted by class.

    The arrays are read-only so a test cannot change the shared ground truth by accident.
    """
    generator = np.random.default_rng([2024, train_per_class, test_per_class])
    splits = []
    for per_class in (train_per_class, test_per_class):
        labels = np.repeat(np.arange(len(CLASS_NAMES), dtype=np.int64), per_class)
        images = generator.integers(0, 256, size=(labels.size, 32, 32, 3), dtype=np.uint8)
        images.flags.writeable = False
        labels.flags.writeable = False
        splits.append((images, labels))
    return splits[0], splits[1]


def python_batch_bytes(images: np.ndarray, labels: np.ndarray, batch_name: str,
                       protocol: int = 2) -> bytes:
    """Pickle one batch the way the official python version stores it (channel-planar rows)."""
    batch = {
        b"batch_label": batch_name.encode(),
        b"labels": [int(label) for label in labels],
        b"data": np.ascontiguousarray(images.transpose(0, 3, 1, 2)).reshape(len(images), -1),
        b"filenames": [f"image_{index}.png".encode() for index in range(len(images))],
    }
    return pickle.dumps(batch, protocol=protocol)


def binary_batch_bytes(images: np.ndarray, labels: np.ndarray) -> bytes:
    """Encode one batch as the official binary version: 1 label byte + 3072 pixel bytes."""
    planar = np.ascontiguousarray(images.transpose(0, 3, 1, 2)).reshape(len(images), -1)
    records = np.concatenate([labels.astype(np.uint8)[:, None], planar], axis=1)
    return records.tobytes()


def image_bytes(image: np.ndarray, image_format: str) -> bytes:
    """Encode one RGB image as PNG (lossless) or JPEG (best quality, no chroma subsampling)."""
    stream = io.BytesIO()
    if image_format == "png":
        Image.fromarray(image).save(stream, format="PNG")
    elif image_format == "jpeg":
        Image.fromarray(image).save(stream, format="JPEG", quality=100, subsampling=0)
    else:
        raise ValueError(f"unknown image format {image_format!r}; valid: {IMAGE_FORMATS}")
    return stream.getvalue()


def _layout_files(layout: str, arrays, image_format: str, pickle_protocol: int,
                  shuffle_seed: int) -> list[tuple[str, bytes]]:
    """Return ``(relative path, content)`` for every file of one layout, in storage order."""
    (x_train, y_train), (x_test, y_test) = arrays
    train_chunks = np.array_split(np.arange(len(y_train)), TRAIN_BATCH_COUNT)
    if layout == "python":
        files = [(f"{PYTHON_FOLDER}/data_batch_{number}",
                  python_batch_bytes(x_train[chunk], y_train[chunk],
                                     f"training batch {number} of 5", pickle_protocol))
                 for number, chunk in enumerate(train_chunks, start=1)]
        files.append((f"{PYTHON_FOLDER}/test_batch",
                       python_batch_bytes(x_test, y_test, "testing batch 1 of 1", pickle_protocol)))
        meta = {b"label_names": [name.encode() for name in CLASS_NAMES]}
        files.append((f"{PYTHON_FOLDER}/batches.meta", pickle.dumps(meta, protocol=2)))
        return files
    if layout == "binary":
        files = [(f"{BINARY_FOLDER}/data_batch_{number}.bin",
                  binary_batch_bytes(x_train[chunk], y_train[chunk]))
                 for number, chunk in enumerate(train_chunks, start=1)]
        files.append((f"{BINARY_FOLDER}/test_batch.bin", binary_batch_bytes(x_test, y_test)))
        files.append((f"{BINARY_FOLDER}/batches.meta.txt", "\n".join(CLASS_NAMES).encode()))
        return files
    if layout == "image_folder":
        suffix = "png" if image_format == "png" else "jpg"
        files = []
        for split, (images, labels) in (("train", (x_train, y_train)), ("test", (x_test, y_test))):
            for index, (image, label) in enumerate(zip(images, labels)):
                # Zero-padded names sort in array order within each class folder.
                path = f"{split}/{CLASS_NAMES[label]}/{index:05d}.{suffix}"
                files.append((path, image_bytes(image, image_format)))
        # Store classes (and splits) in a shuffled order, so a loader that numbered the
        # class folders in the order it met them would get the labels wrong.
        order = np.random.default_rng(shuffle_seed).permutation(len(files))
        return [files[index] for index in order]
    raise ValueError(f"unknown layout {layout!r}; valid: {LAYOUTS}")


def write_folder(root: Path, files: list[tuple[str, bytes]]) -> Path:
    """Write ``(relative path, content)`` pairs under ``root``, creating folders in that order."""
    for relative_path, content in files:
        path = root / relative_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


def write_tar(archive: Path, files: list[tuple[str, bytes]], compression: str = "") -> Path:
    """Write ``(member name, content)`` pairs to a tar archive in the given order.

    Args:
        archive: The archive to create.
        files: Members, stored in this order.
        compression: "" for a plain .tar, "gz" for .tar.gz.
    """
    with tarfile.open(archive, mode=f"w:{compression}" if compression else "w") as tar:
        for name, content in files:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = 1_600_000_000
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    return archive


class CifarFixtureFactory:
    """Builds tiny CIFAR-10 sources on demand and reuses them for the whole session.

    Call it as ``make_cifar_fixture(layout, container, image_format="png",
    train_per_class=3, test_per_class=2, pickle_protocol=2)``; use :meth:`arrays` for the
    ground truth of a non-default size and :meth:`files` for the raw files of a source.
    """

    def __init__(self, root: Path):
        self.root = root
        self._built: dict[tuple, Path] = {}

    @staticmethod
    def arrays(train_per_class: int = DEFAULT_TRAIN_PER_CLASS,
               test_per_class: int = DEFAULT_TEST_PER_CLASS):
        """The arrays that sources of this size encode (JPEG ones only approximately)."""
        return generate_tiny_arrays(train_per_class, test_per_class)

    def files(self, layout: str, image_format: str = "png",
              train_per_class: int = DEFAULT_TRAIN_PER_CLASS,
              test_per_class: int = DEFAULT_TEST_PER_CLASS,
              pickle_protocol: int = 2) -> list[tuple[str, bytes]]:
        """``(relative path, content)`` of every file of a source, for hand-built variants."""
        return _layout_files(layout, self.arrays(train_per_class, test_per_class), image_format,
                             pickle_protocol, shuffle_seed=train_per_class * 100 + test_per_class)

    def __call__(self, layout: str, container: str, image_format: str = "png",
                 train_per_class: int = DEFAULT_TRAIN_PER_CLASS,
                 test_per_class: int = DEFAULT_TEST_PER_CLASS,
                 pickle_protocol: int = 2) -> Path:
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; valid: {LAYOUTS}")
        if container not in CONTAINERS:
            raise ValueError(f"unknown container {container!r}; valid: {CONTAINERS}")
        if layout != "image_folder":
            image_format = "png"  # Ignored: only image folders hold encoded images.
        if layout != "python":
            pickle_protocol = 2  # Ignored: only the python version is pickled.
        key = (layout, container, image_format, train_per_class, test_per_class, pickle_protocol)
        if key not in self._built:
            self._built[key] = self._build(*key)
        return self._built[key]

    def _build(self, layout, container, image_format, train_per_class, test_per_class,
               pickle_protocol) -> Path:
        name = (f"{layout}-{image_format}-{train_per_class}x{test_per_class}"
                f"-p{pickle_protocol}-{container.replace('.', '')}")
        directory = self.root / name
        directory.mkdir()
        files = self.files(layout, image_format, train_per_class, test_per_class, pickle_protocol)
        if container == "folder":
            return write_folder(directory / "source", files)
        if layout == "image_folder":
            # Inside archives the image folder sits one level down, as real archives do.
            files = [(f"{IMAGE_FOLDER_ARCHIVE_ROOT}/{path}", content) for path, content in files]
        # Not named like the official archives, whose names trigger a checksum check.
        archive = directory / f"tiny-{layout.replace('_', '-')}.{container}"
        return write_tar(archive, files, compression="gz" if container == "tar.gz" else "")


@pytest.fixture(autouse=True)
def data_cache_dir(tmp_path_factory, monkeypatch) -> Path:
    """Isolate every test: a fresh cache folder and no ``$CIFAR10_SOURCE``.

    Returns:
        The (empty) folder that ``$CIFAR_CNN_CACHE_DIR`` names for this test.
    """
    cache_dir = tmp_path_factory.mktemp("cifar_cnn_cache")
    monkeypatch.setenv("CIFAR_CNN_CACHE_DIR", str(cache_dir))
    monkeypatch.delenv("CIFAR10_SOURCE", raising=False)
    return cache_dir


@pytest.fixture(scope="session")
def make_cifar_fixture(tmp_path_factory) -> CifarFixtureFactory:
    """Factory for tiny CIFAR-10 sources: ``make_cifar_fixture(layout, container, ...)``.

    ``layout`` is "python", "binary" or "image_folder"; ``container`` is "folder", "tar"
    or "tar.gz"; ``image_format`` ("png" or "jpeg") applies to image folders and
    ``pickle_protocol`` to the python layout. The result is cached per argument set and
    shared by the session: copy it before modifying it.
    """
    return CifarFixtureFactory(tmp_path_factory.mktemp("cifar_fixtures"))


@pytest.fixture(scope="session")
def tiny_arrays(make_cifar_fixture):
    """Ground truth ``((x_train, y_train), (x_test, y_test))`` of the default-size sources."""
    return make_cifar_fixture.arrays()


@pytest.fixture(scope="session")
def image_folder_archive(make_cifar_fixture) -> Path:
    """A PNG image-folder .tar.gz with 20 train and 10 test images per class (200 + 100)."""
    return make_cifar_fixture("image_folder", "tar.gz", "png",
                              train_per_class=20, test_per_class=10)


@pytest.fixture(scope="session")
def cifar_encoders() -> SimpleNamespace:
    """The encoders behind the fixtures, for tests that build a damaged source by hand."""
    return SimpleNamespace(
        python_batch_bytes=python_batch_bytes,
        binary_batch_bytes=binary_batch_bytes,
        image_bytes=image_bytes,
        write_folder=write_folder,
        write_tar=write_tar,
    )


def copy_source(source: Path, destination: Path) -> Path:
    """Copy a shared fixture (folder or archive) to ``destination`` so a test may change it."""
    if source.is_dir():
        return Path(shutil.copytree(source, destination))
    destination.parent.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copyfile(source, destination))


@pytest.fixture
def copy_cifar_fixture(make_cifar_fixture, tmp_path):
    """Like ``make_cifar_fixture`` but returns a private copy under ``tmp_path`` to modify."""

    def make_copy(layout: str, container: str, *args, **kwargs) -> Path:
        source = make_cifar_fixture(layout, container, *args, **kwargs)
        return copy_source(source, tmp_path / "copies" / source.parent.name / source.name)

    return make_copy


@pytest.fixture(scope="session")
def small_keras_model(tmp_path_factory) -> Path:
    """A small real CIFAR-shaped model (its own preprocessing layer), saved by Keras as .keras."""
    import keras

    model = keras.Sequential([keras.Input((32, 32, 3)),
                              keras.layers.Rescaling(1 / 255, name="preprocessing"),
                              keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    path = tmp_path_factory.mktemp("model") / "small.keras"
    model.save(path)
    return path


@pytest.fixture(scope="session")
def black_32x32_png(tmp_path_factory) -> Path:
    """One 32x32 black PNG: an image that costs nothing to read."""
    path = tmp_path_factory.mktemp("image") / "black.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(path)
    return path


@pytest.fixture(scope="session")
def learnable_image_folder(tmp_path_factory) -> Path:
    """A PNG image folder (40 train, 10 test images per class) that a network can learn.

    Each class lights up its own patch of noise, so accuracy depends on the learning rate
    and the epochs, as searches need; the other fixtures are pure noise.
    """
    generator = np.random.default_rng(7)
    files = []
    for split, per_class in (("train", 40), ("test", 10)):
        for label, name in enumerate(CLASS_NAMES):
            for index in range(per_class):
                image = generator.integers(0, 110, size=(32, 32, 3))
                row, column = (label // 5) * 16, (label % 5) * 6
                image[row:row + 16, column:column + 6] += 120
                files.append((f"{split}/{name}/{index:05d}.png",
                              image_bytes(image.astype(np.uint8), "png")))
    return write_folder(tmp_path_factory.mktemp("learnable") / "source", files)
