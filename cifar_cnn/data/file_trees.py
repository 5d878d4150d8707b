"""Read-only views of a folder or a tar archive as a set of relative file paths.

Both views are untrusted input. Archive members are never extracted to disk: they are
read into memory one by one, after every member has been checked, so a member named
``../../etc/passwd``, an absolute path or a link cannot write or read anything outside
the archive. Folders are walked without following links out of the folder.

Sizes are untrusted too. Every file's size is checked against what it may hold (from the
tar header or ``os.stat``) before a byte of it is read, and every read is capped, so a
small archive that inflates to gigabytes is refused without being inflated.
"""

from __future__ import annotations

import contextlib
import os
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Iterator, Mapping

from cifar_cnn.data.errors import DataSourceError
from cifar_cnn.progress import StageReporter, no_report

# Errors that tarfile and its decompressors raise for truncated or damaged archives.
# RecursionError: tarfile follows a chain of extended headers by recursion.
_ARCHIVE_READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError, RecursionError)
try:  # The compressors below are optional in CPython builds.
    import lzma

    _ARCHIVE_READ_ERRORS += (lzma.LZMAError,)
except ImportError:  # pragma: no cover - depends on the Python build.
    pass

# tarfile reads a GNU long name or a pax header whole into memory before it returns the
# member they describe. Real ones hold a path or a few ``key=value`` records; a larger one
# is refused before tarfile reads it.
MAX_EXTENDED_HEADER_BYTES = 1 << 20
_EXTENDED_HEADER_TYPES = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK,
                          tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)


@dataclass(frozen=True)
class TreeLimits:
    """Bounds on a whole source, checked before anything is read.

    Attributes:
        max_file_bytes: The largest any one file or archive member may be, whether a
            layout reads it or not (listing a compressed archive inflates every member).
        max_total_bytes: The most bytes all archive members, or all files a layout reads
            from a folder, may hold together.
        max_files: The most files (archive members, folders included) a source may hold.
        largest_file: What the largest legitimate file is, for error messages.
    """

    max_file_bytes: int
    max_total_bytes: int
    max_files: int
    largest_file: str


@dataclass(frozen=True)
class FileLimit:
    """What one file is expected to be, and the most bytes it may hold.

    Attributes:
        max_bytes: The largest size accepted.
        expected: What the file should be, e.g. "a binary batch (10,000 records of
            3,073 bytes)", for error messages.
    """

    max_bytes: int
    expected: str


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
    """A read-only set of files addressed by relative POSIX paths.

    ``report`` is told how far long passes over the tree have come (see
    :class:`cifar_cnn.progress.StageReporter`); the layout decoders report through it too.
    """

    description: str
    limits: TreeLimits
    report: StageReporter = staticmethod(no_report)

    def paths(self) -> list[str]:
        """Return every regular file's relative path, sorted."""
        raise NotImplementedError

    def size(self, path: str) -> int:
        """Return a file's size in bytes, as its tar header or ``os.stat`` states it.

        Args:
            path: A relative path returned by :meth:`paths`.

        Returns:
            The size, known without reading the file.
        """
        raise NotImplementedError

    def read_files(self, wanted: Mapping[str, FileLimit]) -> Iterator[tuple[str, bytes]]:
        """Yield ``(path, content)`` for each wanted path, in the tree's natural order.

        Every size is checked before anything is read, so an oversized file is refused
        without reading (or inflating) a byte of it.

        Args:
            wanted: Relative paths returned by :meth:`paths`, each with its limit.

        Returns:
            An iterator of pairs; the order is the cheapest one to read, not ``wanted``'s.
        """
        self._check_sizes(wanted)
        return self._read_checked(wanted)

    def _read_checked(self, wanted: Mapping[str, FileLimit]) -> Iterator[tuple[str, bytes]]:
        raise NotImplementedError

    def _check_sizes(self, wanted: Mapping[str, FileLimit]) -> None:
        """Refuse any wanted file larger than its limit, or too many bytes in all."""
        total = 0
        for path, limit in wanted.items():
            size = self.size(path)
            if size > limit.max_bytes:
                raise self._too_large(path, f"{size:,}", limit)
            total += size
        if total > self.limits.max_total_bytes:
            raise DataSourceError(
                f"{self.description}: the {len(wanted):,} files to read hold {total:,} bytes "
                f"in all; a CIFAR-10 source holds at most {self.limits.max_total_bytes:,}. "
                "Refusing to read them (corrupt, or not CIFAR-10 data)."
            )

    def _read_capped(self, path: str, stream: BinaryIO, limit: FileLimit, size: int) -> bytes:
        """Read one file, never more than ``limit.max_bytes`` (plus one byte to notice).

        Args:
            path: The file, for error messages.
            stream: The open file or archive member.
            limit: What the file is and the most bytes it may hold.
            size: Its size as last stated (header or stat), at most ``limit.max_bytes``.

        Returns:
            The file's bytes.
        """
        try:
            # Asking for the stated size, not the limit: a buffered read allocates what it
            # is asked for, and 60,000 small images would each cost megabytes of it.
            content = stream.read(size + 1)
            if len(content) > size:  # It grew since it was stated: read on, still capped.
                content += stream.read(limit.max_bytes + 1 - len(content))
        except MemoryError:
            raise DataSourceError(
                f"{self.description}: ran out of memory reading {path}, which should be "
                f"{limit.expected} (at most {limit.max_bytes:,} bytes)."
            ) from None
        if len(content) > limit.max_bytes:
            raise self._too_large(path, f"more than {limit.max_bytes:,}", limit)
        return content

    def _too_large(self, path: str, size_text: str, limit: FileLimit) -> DataSourceError:
        return DataSourceError(
            f"{self.description}: {path} is {size_text} bytes, but {limit.expected} is at "
            f"most {limit.max_bytes:,} bytes. Refusing to read it (corrupt, not CIFAR-10 "
            "data, or a decompression bomb)."
        )

    def _check_file_count(self, count: int) -> None:
        if count > self.limits.max_files:
            raise DataSourceError(
                f"{self.description} holds more than {self.limits.max_files:,} files; a "
                "CIFAR-10 source holds about 60,000 (one per image) at most. Refusing to "
                "read it."
            )


class FolderTree(FileTree):
    """A folder on disk. Links that point outside the folder are refused."""

    def __init__(self, root: Path, limits: TreeLimits, report: StageReporter = no_report):
        self.root = Path(root)
        self.description = str(root)
        self.limits = limits
        self.report = report
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
            self._check_file_count(len(found))
        return sorted(found)

    def size(self, path: str) -> int:
        return os.stat(self.root / path).st_size

    def _read_checked(self, wanted: Mapping[str, FileLimit]) -> Iterator[tuple[str, bytes]]:
        for relative_path, limit in wanted.items():
            with open(self.root / relative_path, "rb") as stream:
                size = min(os.fstat(stream.fileno()).st_size, limit.max_bytes)
                yield relative_path, self._read_capped(relative_path, stream, limit, size)


class _ExtendedHeaderTooLarge(Exception):
    """An extended tar header larger than MAX_EXTENDED_HEADER_BYTES (turned into a
    DataSourceError that names the archive)."""

    def __init__(self, name: str, size: int):
        super().__init__(name, size)
        self.name, self.size = name, size


class _BoundedTarInfo(tarfile.TarInfo):
    """A TarInfo that refuses an oversized extended header before tarfile reads it."""

    def _proc_member(self, archive):
        # tarfile's per-header dispatch (private, stable since Python 3.0): the one place
        # where the header's declared size is known and its body not yet read.
        if self.type in _EXTENDED_HEADER_TYPES and self.size > MAX_EXTENDED_HEADER_BYTES:
            raise _ExtendedHeaderTooLarge(self.name, self.size)
        return super()._proc_member(archive)


class TarTree(FileTree):
    """A .tar, .tar.gz, .tgz, .tar.bz2 or .tar.xz archive, checked member by member."""

    def __init__(self, archive: Path, limits: TreeLimits, report: StageReporter = no_report):
        self.archive = Path(archive)
        self.description = str(archive)
        self.limits = limits
        self.report = report
        # clean path -> (stored name, size stated by the header)
        self._members: dict[str, tuple[str, int]] = self._checked_members()

    def _open(self, raw: BinaryIO) -> tarfile.TarFile:
        try:
            # Opening reads the first header already.
            return tarfile.open(fileobj=raw, mode="r:*", tarinfo=_BoundedTarInfo)
        except _ExtendedHeaderTooLarge as error:
            raise self._header_too_large(error) from None
        except _ARCHIVE_READ_ERRORS as error:
            raise self._unreadable(error) from error

    def _unreadable(self, error: BaseException) -> DataSourceError:
        return DataSourceError(
            f"{self.description} is not a readable tar archive (truncated or corrupt?): "
            f"{error}. Valid archives: .tar, .tar.gz, .tgz, .tar.bz2, .tar.xz."
        )

    @contextlib.contextmanager
    def _opened(self) -> Iterator[tuple[tarfile.TarFile, BinaryIO]]:
        """The archive open for one pass, with its file: the file's position (compressed
        bytes consumed) tells how far the pass has come, whatever the compression."""
        try:
            raw = open(self.archive, "rb")
        except OSError as error:
            raise self._unreadable(error) from error
        with raw, self._open(raw) as archive:
            yield archive, raw

    def _members_of(self, archive: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
        """Iterate over an open archive's members, turning read errors into DataSourceError."""
        try:
            yield from archive
        except _ExtendedHeaderTooLarge as error:
            raise self._header_too_large(error) from None
        except _ARCHIVE_READ_ERRORS as error:
            raise DataSourceError(f"{self.description} is truncated or corrupt: {error}") from error

    def _header_too_large(self, error: _ExtendedHeaderTooLarge) -> DataSourceError:
        return DataSourceError(
            f"{self.description}: member {error.name!r} is an extended tar header of "
            f"{error.size:,} bytes; real ones hold a file name or a few records (at most "
            f"{MAX_EXTENDED_HEADER_BYTES:,} bytes here). Refusing to read it."
        )

    def _checked_members(self) -> dict[str, tuple[str, int]]:
        """Check every member's path, type and size before any is read.

        A member's header is checked as soon as it is met: the next step of the iteration
        would skip (and, in a compressed archive, inflate) its body.

        Returns:
            Clean path -> (stored name, size), for the regular files.
        """
        members: dict[str, tuple[str, int]] = {}
        total, count = 0, 0
        archive_bytes = os.path.getsize(self.archive)
        with self._opened() as (archive, raw):
            for member in self._members_of(archive):
                if count % 64 == 0:  # A position is a system call: not for every member.
                    self.report("checking the archive", raw.tell(), archive_bytes, "bytes")
                clean_path = _safe_relative_path(member.name, self.description)
                self._check_member_type(member)
                count += 1
                self._check_file_count(count)
                if member.isdir():
                    continue
                self._check_member_size(member)
                total += member.size
                if total > self.limits.max_total_bytes:
                    raise DataSourceError(
                        f"{self.description}: its members hold more than "
                        f"{self.limits.max_total_bytes:,} bytes in all, more than any CIFAR-10 "
                        "source. Refusing to read it (not CIFAR-10 data, or a decompression "
                        "bomb)."
                    )
                members[clean_path] = (member.name, member.size)
        return members

    def _check_member_type(self, member: tarfile.TarInfo) -> None:
        """Allow only folders and plain regular files: no links, sparse or special files."""
        if member.issym() or member.islnk():
            raise DataSourceError(
                f"{self.description}: member {member.name!r} is a link (to "
                f"{member.linkname!r}); CIFAR-10 archives hold only folders and regular "
                "files, and links could point outside the archive."
            )
        if member.issparse():
            # A sparse member's header can declare gigabytes of holes in a tiny archive.
            raise DataSourceError(
                f"{self.description}: member {member.name!r} is a sparse file; CIFAR-10 "
                "archives hold only folders and regular files."
            )
        if not (member.isfile() or member.isdir()):
            raise DataSourceError(
                f"{self.description}: member {member.name!r} is a device, pipe or other "
                "special file; only folders and regular files are allowed."
            )

    def _check_member_size(self, member: tarfile.TarInfo) -> None:
        if member.size < 0:
            raise DataSourceError(
                f"{self.description}: member {member.name!r} declares a negative size "
                f"({member.size}); the archive is corrupt."
            )
        if member.size > self.limits.max_file_bytes:
            raise DataSourceError(
                f"{self.description}: member {member.name!r} is {member.size:,} bytes; no file "
                f"of a CIFAR-10 source is larger than {self.limits.max_file_bytes:,} bytes "
                f"({self.limits.largest_file}). Refusing to read it (not CIFAR-10 data, or a "
                "decompression bomb)."
            )

    def paths(self) -> list[str]:
        return sorted(self._members)

    def size(self, path: str) -> int:
        return self._members[path][1]

    def _read_checked(self, wanted: Mapping[str, FileLimit]) -> Iterator[tuple[str, bytes]]:
        wanted_names = {self._members[path][0]: path for path in wanted}
        with self._opened() as (archive, _raw):
            # One sequential pass: compressed archives are slow to seek backwards.
            for member in self._members_of(archive):
                clean_path = wanted_names.get(member.name)
                if clean_path is None or not member.isfile():
                    continue
                limit = wanted[clean_path]
                # Checked again: the archive may have been replaced since it was listed.
                self._check_member_type(member)
                if member.size > limit.max_bytes:
                    raise self._too_large(clean_path, f"{member.size:,}", limit)
                try:
                    content = self._read_capped(clean_path, archive.extractfile(member), limit,
                                                member.size)
                except _ARCHIVE_READ_ERRORS as error:
                    raise DataSourceError(
                        f"{self.description} is truncated or corrupt: {error}"
                    ) from error
                yield clean_path, content


def open_file_tree(path: Path, limits: TreeLimits,
                   report: StageReporter = no_report) -> FileTree:
    """Open a folder or a tar archive as a :class:`FileTree`.

    Args:
        path: A folder, or a tar archive (optionally gzip, bzip2 or xz compressed).
        limits: Bounds on the file count and sizes; an archive's headers are checked
            against them here, before any member is read.
        report: Told how far long passes have come (checking an archive's headers here,
            reading and decoding in the layout decoders); default: nothing.

    Returns:
        A tree whose members have been checked to stay inside it and within the limits.
    """
    path = Path(path)
    if path.is_dir():
        return FolderTree(path, limits, report)
    if path.is_file():
        return TarTree(path, limits, report)
    raise DataSourceError(
        f"CIFAR-10 source {str(path)!r} does not exist. Valid sources: 'keras' (the official "
        "download), a local official archive or folder (cifar-10-python or cifar-10-binary), "
        "or an image folder or archive with train/<class>/ and test/<class>/."
    )
