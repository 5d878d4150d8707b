"""Atomic file writing: the one way this package writes a file that others may read.

A reader (a resumed run, ``cifar-cnn runs``, a sweep, another worker) must never see half a
file, even when the writer is killed mid-write. Every file is therefore written under a
temporary name in the same folder, flushed to disk, and renamed into place: a rename within
one file system is atomic, so the final name holds either the old content or the new.

Imports nothing heavy, so the command line and sweeps can use it without TensorFlow.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` in one rename.

    On an exception the temporary file is removed and ``path`` is left as it was.

    Args:
        path: The file to create or replace.
        suffix: The temporary file's suffix (default: ``path``'s own, so that writers that
            choose a format by suffix, such as matplotlib and Keras, see the right one).

    Yields:
        The temporary file's path (it exists, empty; the writer may replace it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix if suffix is None else suffix
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".partial{suffix}",
                                             dir=path.parent)
    os.close(descriptor)
    temporary = Path(temporary)
    try:
        yield temporary
        with open(temporary, "rb+") as stream:
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write a text file atomically.

    Args:
        path: Destination file.
        text: Its content.

    Returns:
        ``path`` as a ``Path``.
    """
    with atomic_output(path) as temporary:
        temporary.write_text(text)
    return Path(path)


def write_json(path: str | os.PathLike, document: Any) -> Path:
    """Write JSON atomically, indented, with a final newline.

    Args:
        path: Destination file.
        document: Anything ``json.dumps`` accepts (other objects are written as strings).

    Returns:
        ``path`` as a ``Path``.
    """
    return write_text(path, json.dumps(document, indent=2, default=str) + "\n")


def write_figure(path: str | os.PathLike, figure, dpi: int = 110) -> Path:
    """Save a matplotlib Figure atomically, in the format its suffix names.

    Args:
        path: Destination file (``.png``, ``.pdf``, ``.svg``...).
        figure: A ``matplotlib.figure.Figure``.
        dpi: Resolution of raster formats.

    Returns:
        ``path`` as a ``Path``.
    """
    path = Path(path)
    with atomic_output(path) as temporary:
        # The temporary name ends in ".partial<suffix>": the format is named explicitly.
        suffix = path.suffix.lstrip(".").lower() or "png"
        # A fast PNG compression level: figures are small, and the default level took a
        # quarter of the saving time for 5-10% smaller files.
        options = {"pil_kwargs": {"compress_level": 1}} if suffix == "png" else {}
        figure.savefig(temporary, dpi=dpi, format=suffix, **options)
    return path


__all__ = ["atomic_output", "write_figure", "write_json", "write_text"]
