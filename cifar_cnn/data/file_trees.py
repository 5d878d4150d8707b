"""Read-only views of a folder or a tar archive as a set of relative file paths.

Both views are untrusted input. Archive members are never extracted to disk: they are
read into memory one by one, after every member has been checked, so a member named
``../../etc/passwd``, an absolute path or a link cannot write or read anything outside
the archive. Folders are walked without following links out of the folder.
"""

from __future__ import annotations

import os
import tarfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator

from cifar_cnn.data.errors import DataSourceError

# Errors that tarfile and its decompressors raise for truncated or damaged archives.
_ARCHIVE_READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError)
try:  # The compressors below are optional in CPython builds.
    import lzma

    _ARCHIVE_READ_ERRORS += (lzma.LZMAError,)
except ImportError:  # pragma: no cover - depends on the Python build.
    pass


def _safe_relative_path(name: str, container: str) -> str:
    """Return ``name`` as a clean relative POSIX path, or raise if it escapes.

    Args:
        name: The member name as stored in the archive or found in the folder.
        container: The archive or folder, for the error message.

    Returns:
        The normalised relative path, without a leading ``./``.
    """
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or name.startswith("/"):
        raise DataSourceError(
            f"{container}: member {name!r} has an absolute path; refusing to read an "
            "archive whose members could land outside its folder."
        )
    if ".." in path.parts:
        raise DataSourceError(
            f"{container}: member {name!r} escapes its folder with '..'; refusing to read "
            "an archive whose members could land outside its folder."
        )
    parts = [part for part in path.parts if part not in ("", ".")]
    return "/".join(parts)


class FileTree:
    """A read-only set of files addressed by relative POSIX paths."""

    description: str

    def paths(self) -> list[str]:
        """Return every regular file's relative path, sorted."""
        raise NotImplementedError

    def read_files(self, wanted: Iterable[str]) -> Iterator[tuple[str, bytes]]:
        """Yield ``(path, content)`` for each wanted path, in the tree's natural order.

        Args:
            wanted: Relative paths returned by :meth:`paths`.

        Returns:
            An iterator of pairs; the order is the cheapest one to read, not ``wanted``'s.
        """
        raise NotImplementedError


class FolderTree(FileTree):
    """A folder on disk. Links that point outside the folder are refused."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.description = str(root)
        self._real_root = os.path.realpath(root)

    def paths(self) -> list[str]:
        found = []
        for directory, _subdirectories, files in os.walk(self.root):
            for file_name in files:
                full_path = os.path.join(directory, file_name)
                real_path = os.path.realpath(full_path)
                if os.path.commonpath([real_path, self._real_root]) != self._real_root:
                    raise DataSourceError(
                        f"{self.description}: {full_path} is a link that points outside the "
                        f"folder (to {real_path}); refusing to follow it."
                    )
                if os.path.isfile(real_path):
                    found.append(Path(full_path).relative_to(self.root).as_posix())
        return sorted(found)

    def read_files(self, wanted: Iterable[str]) -> Iterator[tuple[str, bytes]]:
        for relative_path in wanted:
            yield relative_path, (self.root / relative_path).read_bytes()


class TarTree(FileTree):
    """A .tar, .tar.gz, .tgz, .tar.bz2 or .tar.xz archive, checked member by member."""

    def __init__(self, archive: Path):
        self.archive = Path(archive)
        self.description = str(archive)
        self._members = self._checked_members()

    def _open(self) -> tarfile.TarFile:
        try:
            return tarfile.open(self.archive, mode="r:*")
        except _ARCHIVE_READ_ERRORS as error:
            raise DataSourceError(
                f"{self.description} is not a readable tar archive (truncated or corrupt?): "
                f"{error}. Valid archives: .tar, .tar.gz, .tgz, .tar.bz2, .tar.xz."
            ) from error

    def _checked_members(self) -> dict[str, str]:
        """Check every member before any is read; map clean path -> stored name."""
        members: dict[str, str] = {}
        with self._open() as archive:
            try:
                for member in archive:
                    clean_path = _safe_relative_path(member.name, self.description)
                    if member.issym() or member.islnk():
                        raise DataSourceError(
                            f"{self.description}: member {member.name!r} is a link (to "
                            f"{member.linkname!r}); CIFAR-10 archives hold only folders and "
                            "regular files, and links could point outside the archive."
                        )
                    if member.isfile():
                        members[clean_path] = member.name
                    elif not member.isdir():
                        raise DataSourceError(
                            f"{self.description}: member {member.name!r} is a device, pipe or "
                            "other special file; only folders and regular files are allowed."
                        )
            except _ARCHIVE_READ_ERRORS as error:
                raise DataSourceError(
                    f"{self.description} is truncated or corrupt: {error}"
                ) from error
        return members

    def paths(self) -> list[str]:
        return sorted(self._members)

    def read_files(self, wanted: Iterable[str]) -> Iterator[tuple[str, bytes]]:
        wanted_names = {self._members[path]: path for path in wanted}
        with self._open() as archive:
            try:
                # One sequential pass: compressed archives are slow to seek backwards.
                for member in archive:
                    clean_path = wanted_names.get(member.name)
                    if clean_path is None or not member.isfile():
                        continue
                    stream = archive.extractfile(member)
                    yield clean_path, stream.read()
            except _ARCHIVE_READ_ERRORS as error:
                raise DataSourceError(
                    f"{self.description} is truncated or corrupt: {error}"
                ) from error


def open_file_tree(path: Path) -> FileTree:
    """Open a folder or a tar archive as a :class:`FileTree`.

    Args:
        path: A folder, or a tar archive (optionally gzip, bzip2 or xz compressed).

    Returns:
        A tree whose members have been checked to stay inside it.
    """
    path = Path(path)
    if path.is_dir():
        return FolderTree(path)
    if path.is_file():
        return TarTree(path)
    raise DataSourceError(
        f"CIFAR-10 source {str(path)!r} does not exist. Valid sources: 'keras' (the official "
        "download), a local official archive or folder (cifar-10-python or cifar-10-binary), "
        "or an image folder or archive with train/<class>/ and test/<class>/."
    )
