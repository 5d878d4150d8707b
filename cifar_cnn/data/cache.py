"""A cache of decoded CIFAR-10 arrays, keyed by the source's content, checked when read.

A cache file is named after a key made of the source's content and the cache format
version:

- an archive is keyed by its sha256;
- a folder is keyed by a sha256 over every file's relative path and bytes (a link by its
  target), so an edit that keeps a file's size and modification time still changes the
  key, and a copy of a folder (``cp -a``, rsync) with the same content shares its entry;
- ``CACHE_FORMAT_VERSION`` names what the decoders return, so a decoder change never
  serves arrays decoded the old way.

A cache entry is checked when it is read (shapes, dtypes, label range, both splits) and
ignored when anything is wrong: the caller then decodes the source and replaces it.
Entries are written to a temporary name and renamed into place, so an interrupted write
leaves only a hidden ``.partial`` file that is never read (and deleted by a later write once
it is an hour old). A cache that cannot be written
(no permission, disk full) is a warning, not a failure: the decoded arrays are still used.
"""

from __future__ import annotations

import hashlib
import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from cifar_cnn.data.formats import CLASS_NAMES, IMAGE_SHAPE
from cifar_cnn.files import atomic_output

# Bump when a decoder changes what it returns, so entries decoded the old way are not reused.
# 2: image folders convert pixels with cifar_cnn.images.to_rgb_pixels (16-bit scaling,
#    transparency composited on white, EXIF orientation).
CACHE_FORMAT_VERSION = 2
CACHE_DIR_ENVIRONMENT_VARIABLE = "CIFAR_CNN_CACHE_DIR"
_ARRAY_NAMES = ("x_train", "y_train", "x_test", "y_test")
_READ_CHUNK = 1 << 20
# Threads that read and hash a folder's files; more than a few only contend for the GIL.
_HASH_THREADS = 4


class CacheWarning(UserWarning):
    """The decoded data could not be cached; it is still returned and used."""


def default_cache_dir() -> Path:
    """Return ``$CIFAR_CNN_CACHE_DIR``, or ``~/.cache/cifar_cnn`` when it is unset."""
    configured = os.environ.get(CACHE_DIR_ENVIRONMENT_VARIABLE)
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
        for chunk in iter(lambda: stream.read(_READ_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _sorted_entries(directory: str, prefix: str):
    """Yield ``(relative path, DirEntry)`` for every non-folder under ``directory``, sorted.

    Folders are entered, links to folders are not (as the folder reader does not follow
    them), so the order and the set of entries depend only on the tree's names.

    Args:
        directory: The folder to list.
        prefix: Its path relative to the fingerprinted root ('' or ending in '/').

    Returns:
        An iterator of ``(relative POSIX path, os.DirEntry)``.
    """
    try:
        with os.scandir(directory) as scanned:
            entries = sorted(scanned, key=lambda entry: entry.name)
    except OSError:
        return  # The folder reader (os.walk) skips a folder it cannot list; so does the key.
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield from _sorted_entries(entry.path, f"{prefix}{entry.name}/")
        else:
            yield f"{prefix}{entry.name}", entry


def _content_digest(path: str) -> bytes:
    """The sha256 of a file's bytes, read with raw system calls.

    ``os.open``/``os.read`` rather than ``open()``: for 60,000 small images the buffered
    file object's setup costs more than hashing the bytes.
    """
    digest = hashlib.sha256()
    descriptor = os.open(path, os.O_RDONLY)
    try:
        while chunk := os.read(descriptor, _READ_CHUNK):
            digest.update(chunk)
    finally:
        os.close(descriptor)
    return digest.digest()


def _entry_digest(entry: os.DirEntry) -> tuple[bytes, bytes]:
    """``(kind, 32-byte digest)`` of one folder entry, read the way the folder reader would.

    A link is keyed by its target, never followed here: a link out of the folder is refused
    by the folder reader, one inside it points at a file that is hashed in its own right,
    and following a link to a pipe or device could block. A file that cannot be read gets a
    marker, so hashing never fails where decoding would not: the decoder reports the file
    if it needs it.

    Args:
        entry: A file, link or special file found by :func:`_sorted_entries`.

    Returns:
        ``(kind, digest)``: kind is ``b"F"`` (file bytes), ``b"L"`` (link target), ``b"E"``
        (unreadable, digest of the error number) or ``b"S"`` (special file, zero digest).
    """
    if entry.is_symlink():
        return b"L", hashlib.sha256(os.fsencode(os.readlink(entry.path))).digest()
    if not entry.is_file(follow_symlinks=False):
        return b"S", bytes(32)  # A pipe, socket or device: the folder reader skips it.
    try:
        return b"F", _content_digest(entry.path)
    except OSError as error:
        return b"E", hashlib.sha256(str(error.errno).encode()).digest()


def _entry_digests(entries: list[os.DirEntry]) -> list[tuple[bytes, bytes]]:
    """:func:`_entry_digest` of each entry, in order (one thread's share of a folder)."""
    return [_entry_digest(entry) for entry in entries]


def folder_fingerprint(root: Path) -> str:
    """Return a sha256 over a folder's content: every file's relative path and bytes.

    Sizes and modification times are not used: a same-size edit may keep the time (tools
    that preserve it, coarse clocks), while a copy with the same content should share the
    cache. Hashing the 60,000 files of CIFAR-10 as JPEGs (55 MB) takes about 0.4 s on two
    cores, with the files in the page cache.

    Args:
        root: The folder.

    Returns:
        64 lowercase hex digits that change when any file is added, removed, renamed or
        changed by a single byte.
    """
    listing = list(_sorted_entries(os.fspath(root), ""))
    # Reading many small files is mostly system calls, which release the GIL: a few threads,
    # each hashing one contiguous slice (a task per file would cost more than it saves),
    # overlap them. map() keeps the slices in order, so the result does not depend on timing.
    workers = min(_HASH_THREADS, os.cpu_count() or 1)
    slice_size = max(1, -(-len(listing) // (4 * workers)))
    slices = [[entry for _, entry in listing[start:start + slice_size]]
              for start in range(0, len(listing), slice_size)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        entry_digests = [digest for part in pool.map(_entry_digests, slices) for digest in part]
    digest = hashlib.sha256()
    for (relative, _), (kind, entry_digest) in zip(listing, entry_digests):
        # Names hold no NUL byte and entry digests have a fixed length: the stream of
        # records is unambiguous, so two different trees cannot produce the same bytes.
        digest.update(kind + os.fsencode(relative) + b"\0" + entry_digest)
    return digest.hexdigest()


def cache_path(cache_dir: Path, source_fingerprint: str) -> Path:
    """Return the cache file for a source fingerprint under ``cache_dir``."""
    key = hashlib.sha256(f"v{CACHE_FORMAT_VERSION}:{source_fingerprint}".encode()).hexdigest()
    return Path(cache_dir) / f"cifar10-{key[:32]}.npz"


def _checked_split(images: np.ndarray, labels: np.ndarray):
    """Check one cached split against what every decoder returns.

    Args:
        images: The cached images.
        labels: The cached labels.

    Returns:
        ``(images, labels as int64)`` when images are uint8 (N, 32, 32, 3) and labels are N
        integers in 0..9; None otherwise.
    """
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE:
        return None
    if not np.issubdtype(labels.dtype, np.integer) or labels.shape != (images.shape[0],):
        return None
    if labels.size and (labels.min() < 0 or labels.max() >= len(CLASS_NAMES)):
        return None
    return images, labels.astype(np.int64, copy=False)


def load_cached(path: Path):
    """Load cached arrays, or return None when the entry is missing or not valid.

    Valid means: all four arrays present, images uint8 of shape (N, 32, 32, 3), labels
    integers 0..9, one per image, in both splits.

    Args:
        path: A file written by :func:`save_cached`.

    Returns:
        ``((x_train, y_train), (x_test, y_test))`` or None.
    """
    try:
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in _ARRAY_NAMES}
    except Exception:  # noqa: BLE001 - zipfile, zlib, numpy and OS errors all mean "rebuild".
        return None  # A damaged cache is rebuilt from the source, never trusted.
    splits = [_checked_split(arrays[f"x_{split}"], arrays[f"y_{split}"])
              for split in ("train", "test")]
    if any(split is None for split in splits):
        return None
    return splits[0], splits[1]


# A cache write takes seconds; a partial file this old was left by a writer that was killed.
ABANDONED_PARTIAL_SECONDS = 3600


def _remove_abandoned_partials(cache_dir: Path) -> None:
    """Delete temporary cache files (about 180 MB each) that killed writers left behind.

    Younger ones may belong to a load running right now in another process: they stay.
    """
    if not cache_dir.is_dir():
        return
    now = time.time()
    for partial in cache_dir.glob(".*.partial.npz"):
        try:
            if now - partial.stat().st_mtime > ABANDONED_PARTIAL_SECONDS:
                partial.unlink()
        except OSError:
            pass  # Gone already, or not ours to delete: the cache works without this.


def save_cached(path: Path, train, test) -> bool:
    """Write arrays to ``path`` atomically; warn (never raise) when that is impossible.

    The arrays have been decoded by then and are worth returning: a cache folder that
    cannot be created, a read-only one or a full disk costs speed next time, not this load.

    Args:
        path: The cache file to create or replace.
        train: ``(x_train, y_train)``.
        test: ``(x_test, y_test)``.

    Returns:
        True when the entry was written, False when it could not be (a
        :class:`CacheWarning` says why).
    """
    _remove_abandoned_partials(Path(path).parent)
    try:
        with atomic_output(path) as temporary, open(temporary, "wb") as stream:
            # Uncompressed: loading 180 MB raw is far faster than inflating it.
            np.savez(stream, x_train=train[0], y_train=train[1], x_test=test[0], y_test=test[1])
    except OSError as error:
        reason = error.strerror or str(error) or type(error).__name__
        # stacklevel 4 (here, sources._load_local, load_cifar10): the warning points at the
        # caller of load_cifar10.
        warnings.warn(f"could not write the CIFAR-10 cache in {Path(path).parent} ({reason}); "
                      "the data is used uncached. Set $CIFAR_CNN_CACHE_DIR to a writable "
                      "folder to cache it.", CacheWarning, stacklevel=4)
        return False
    return True
