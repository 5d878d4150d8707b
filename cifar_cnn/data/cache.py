"""A cache of decoded CIFAR-10 arrays, written atomically and keyed by the source's identity.

A cache file is named after a key derived from the source's content (an archive's
sha256, a folder's file listing with sizes and modification times) and the cache format
version, so a changed source gets a new key and can never return stale arrays. Files are
written to a temporary name and renamed into place, so an interrupted write leaves no
file that looks valid.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np

from cifar_cnn.files import atomic_output

# Bump when the decoders change what they return, so old caches are not reused.
CACHE_FORMAT_VERSION = 1
_ARRAY_NAMES = ("x_train", "y_train", "x_test", "y_test")


def default_cache_dir() -> Path:
    """Return ``$CIFAR_CNN_CACHE_DIR``, or ``~/.cache/cifar_cnn`` when it is unset."""
    configured = os.environ.get("CIFAR_CNN_CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "cifar_cnn"


def file_sha256(path: Path) -> str:
    """Return the hex sha256 of a file, read in 1 MiB chunks.

    Args:
        path: The file.

    Returns:
        64 lowercase hex digits.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def folder_fingerprint(root: Path) -> str:
    """Return a sha256 over a folder's relative paths, sizes and modification times.

    Args:
        root: The folder.

    Returns:
        64 lowercase hex digits that change when any file is added, removed or rewritten.
    """
    digest = hashlib.sha256()
    for directory, subdirectories, files in os.walk(root):
        subdirectories.sort()
        for file_name in sorted(files):
            path = os.path.join(directory, file_name)
            # lstat: a dangling link must reach FolderTree's clear error, not raise here.
            status = os.lstat(path)
            relative = os.path.relpath(path, root)
            digest.update(f"{relative}\0{status.st_size}\0{status.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def cache_path(cache_dir: Path, source_fingerprint: str) -> Path:
    """Return the cache file for a source fingerprint under ``cache_dir``."""
    key = hashlib.sha256(f"v{CACHE_FORMAT_VERSION}:{source_fingerprint}".encode()).hexdigest()
    return Path(cache_dir) / f"cifar10-{key[:32]}.npz"


def load_cached(path: Path):
    """Load cached arrays, or return None when the file is missing or unusable.

    Args:
        path: A file written by :func:`save_cached`.

    Returns:
        ``((x_train, y_train), (x_test, y_test))`` or None.
    """
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in _ARRAY_NAMES}
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile):
        return None  # A damaged cache is rebuilt from the source, never trusted.
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if images.dtype != np.uint8 or images.shape[1:] != (32, 32, 3) \
                or labels.shape != (images.shape[0],):
            return None
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def save_cached(path: Path, train, test) -> None:
    """Write arrays to ``path`` atomically: a temporary file renamed into place.

    Args:
        path: The cache file to create or replace.
        train: ``(x_train, y_train)``.
        test: ``(x_test, y_test)``.
    """
    with atomic_output(path) as temporary, open(temporary, "wb") as stream:
        # Uncompressed: loading 180 MB raw is far faster than inflating it.
        np.savez(stream, x_train=train[0], y_train=train[1], x_test=test[0], y_test=test[1])
