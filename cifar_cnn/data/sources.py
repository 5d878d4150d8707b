"""Choosing a CIFAR-10 source and loading it: ``load_cifar10``, the public entry point."""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Union

import numpy as np

from cifar_cnn import progress as progress_module
from cifar_cnn.data import cache
from cifar_cnn.data.errors import DataSourceError
from cifar_cnn.data.file_trees import open_file_tree
from cifar_cnn.data.formats import LAYOUT_LOADERS, SOURCE_LIMITS, detect_layout

KERAS_SOURCE = "keras"
SOURCE_ENVIRONMENT_VARIABLE = "CIFAR10_SOURCE"
# The official archives' published sha256 sums (Keras checks the first one too).
KNOWN_ARCHIVE_SHA256 = {
    "cifar-10-python.tar.gz": "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
    "cifar-10-binary.tar.gz": "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
}


@dataclass(frozen=True)
class ResolvedSource:
    """Where the data will come from, decided before anything is decoded.

    Attributes:
        kind: ``"keras"`` for the official download, else ``"path"``.
        path: The local file or folder, for ``"path"`` sources.
        description: A human-readable name for logs and run records.
    """

    kind: str
    path: Path | None
    description: str


def resolve_source(source: str | os.PathLike | None = None) -> ResolvedSource:
    """Decide which source to read, without reading it.

    Args:
        source: ``"keras"`` for the official download, a path to a local archive or folder,
            or None to use ``$CIFAR10_SOURCE`` and fall back to ``"keras"``.

    Returns:
        The resolved source. A path that does not exist raises :class:`DataSourceError`.
    """
    if source is None or source == "":
        source = os.environ.get(SOURCE_ENVIRONMENT_VARIABLE) or KERAS_SOURCE
    if str(source).lower() == KERAS_SOURCE:
        return ResolvedSource(KERAS_SOURCE, None, "keras.datasets.cifar10 (official download)")
    path = Path(os.path.expanduser(str(source)))
    if not path.exists():
        raise DataSourceError(
            f"CIFAR-10 source {str(source)!r} does not exist. Valid sources: 'keras' (the "
            "official download), a local official archive or folder (cifar-10-python or "
            "cifar-10-binary), or an image folder or .tar/.tar.gz archive with "
            "train/<class>/ and test/<class>/."
        )
    return ResolvedSource("path", path.resolve(), str(path))


@contextlib.contextmanager
def _keras_messages(shown: bool) -> Iterator[None]:
    """Keras' own download bar where a person watches; off where nobody does (a log would
    hold hundreds of its redraws)."""
    import keras

    interactive = keras.config.is_interactive_logging_enabled()
    if interactive and not shown:
        keras.config.disable_interactive_logging()
    try:
        yield
    finally:
        if interactive and not shown:
            keras.config.enable_interactive_logging()


def _load_from_keras(show_download: bool = True):
    import keras  # Deferred: importing Keras is slow and only this source needs it.

    try:
        with _keras_messages(show_download):
            (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    except Exception as error:
        raise DataSourceError(
            f"Could not download CIFAR-10 with keras.datasets.cifar10 ({error}). Offline? "
            f"Point {SOURCE_ENVIRONMENT_VARIABLE} or the data_source parameter at a local copy "
            "(an official archive or an image-folder archive)."
        ) from error
    return (x_train, y_train.reshape(-1).astype(np.int64)), \
        (x_test, y_test.reshape(-1).astype(np.int64))


def _verify_checksum(path: Path, actual_sha256: str, expected_sha256: str | None) -> None:
    expected = expected_sha256 or KNOWN_ARCHIVE_SHA256.get(path.name)
    if expected and actual_sha256 != expected.lower():
        raise DataSourceError(
            f"{path} fails its checksum: sha256 is {actual_sha256}, expected {expected.lower()}. "
            "The file is corrupt, truncated or not the archive it is named after; download it "
            "again."
        )


def _decode_source(path: Path,
                   report: progress_module.StageReporter = progress_module.no_report):
    """Decode a local folder or archive, whatever its layout.

    Args:
        path: The folder or archive.
        report: Told how far each pass has come.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``.
    """
    try:
        tree = open_file_tree(path, SOURCE_LIMITS, report)
        layout, prefix = detect_layout(tree)
        return LAYOUT_LOADERS[layout](tree, prefix)
    except MemoryError:
        # The size limits should make this unreachable; a clear error beats a traceback
        # from deep inside NumPy or Pillow if they are not enough on a small machine.
        raise DataSourceError(
            f"{path}: ran out of memory while loading it. A CIFAR-10 source holds 60,000 "
            "32x32 images (about 180 MB decoded) and at most "
            f"{SOURCE_LIMITS.max_total_bytes:,} bytes of files; free some memory or check "
            "that it is CIFAR-10 data."
        ) from None


Progress = Union[bool, Callable[..., None]]


def _reporter(progress: Progress, path: Path) -> progress_module.StageReporter:
    """The reporter a load uses: the automatic line for True, nothing for False."""
    if progress is True:
        # A cached load ends within the delay and draws nothing.
        line = progress_module.ProgressLine(delay=1.0)
        if not line.active:  # Quiet: a plain function is the cheapest thing to call.
            return progress_module.no_report
        return progress_module.Stages(line, f"loading {path.name}")
    if progress is False or progress is None:
        return progress_module.no_report
    return progress


def _finish(report: progress_module.StageReporter, text: str | None = None) -> None:
    """Close the reporter's line (when it has one) with ``text`` left, or none."""
    close = getattr(report, "close", None)
    if close is not None:
        close(text)


def load_cifar10(
    source: str | os.PathLike | ResolvedSource | None = None,
    *,
    sha256: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    progress: Progress = True,
):
    """Load CIFAR-10 as uint8 images and integer labels, like ``keras.datasets.cifar10``.

    Args:
        source: ``"keras"`` (the official download, verified and cached by Keras), a path to
            an official archive or folder (python or binary version), or an image folder or
            tar archive of one (``train/<class>/*``, ``test/<class>/*``). None reads
            ``$CIFAR10_SOURCE`` and falls back to ``"keras"``. A :class:`ResolvedSource`
            (from :func:`resolve_source`) is read as it is, not resolved again.
        sha256: Expected sha256 of an archive source. Official archive names are checked
            against their published sums even without it.
        cache_dir: Where decoded arrays are cached (default ``$CIFAR_CNN_CACHE_DIR`` or
            ``~/.cache/cifar_cnn``).
        use_cache: False decodes the source every time and writes no cache.
        progress: True shows how far a long load has come where a person watches (a bar
            in a notebook, a line in a terminal, nothing in logs: see
            :mod:`cifar_cnn.progress`) from its first second or so: decoding the JPEG
            archive takes half a minute, the official download longer. A load served
            from the cache is over sooner and shows nothing. False shows nothing; a
            callable ``report(stage, done, total=None, unit="")`` (a
            :class:`cifar_cnn.progress.StageReporter`) is told instead.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: images uint8 of shape (N, 32, 32, 3),
        labels int64 of shape (N,) with values 0..9 in the order of ``CLASS_NAMES``.
    """
    resolved = source if isinstance(source, ResolvedSource) else resolve_source(source)
    if resolved.kind == KERAS_SOURCE:
        return _load_from_keras(show_download=progress is not False and
                                progress_module.display_mode() != progress_module.QUIET)
    path = resolved.path
    started = time.monotonic()
    report = _reporter(progress, path)
    try:
        train, test = _load_local(path, sha256, cache_dir, use_cache, report)
    except BaseException:
        _finish(report)  # The line goes: the error says what happened.
        raise
    _finish(report, _loaded(path, train, test, started))
    return train, test


def _load_local(path: Path, sha256: str | None, cache_dir: str | os.PathLike | None,
                use_cache: bool, report: progress_module.StageReporter):
    """A local source's arrays: checked, then from the cache or decoded (and cached)."""
    if path.is_file():
        fingerprint = cache.file_sha256(path)
        _verify_checksum(path, fingerprint, sha256)
    elif sha256:
        raise DataSourceError(f"{path} is a folder; a sha256 can only check an archive file.")
    if not use_cache:
        return _decode_source(path, report)
    if not path.is_file():
        # Hashing a folder's content is only needed for the cache key.
        fingerprint = "folder:" + cache.folder_fingerprint(path)
    cache_file = cache.cache_path(Path(cache_dir) if cache_dir else cache.default_cache_dir(),
                                  fingerprint)
    cached = cache.load_cached(cache_file)
    if cached is not None:
        return cached
    train, test = _decode_source(path, report)
    report("writing the cache", 0)
    cache.save_cached(cache_file, train, test)
    return train, test


def _loaded(path: Path, train, test, started: float) -> str:
    """The line a long load leaves where its progress was."""
    return (f"loaded {len(train[0]) + len(test[0]):,} images from {path.name} in "
            f"{progress_module.format_seconds(time.monotonic() - started)}")
