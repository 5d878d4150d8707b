"""Model files from elsewhere, checked before Keras opens them, and loaded within a memory budget.

A ``.keras`` file is a zip archive holding ``metadata.json``, ``config.json`` and the
weights (``model.weights.h5``, or ``.npz``), and perhaps ``assets/``. Nothing in it is
trusted: a zip member can declare a small size and inflate to gigabytes, an HDF5 dataset
can be stored compressed or sparse and expand when read, and a config can describe a
network whose initial weights alone fill the memory. So, in this order:

1. :func:`check_model_file` reads only headers and bounded parts: the members (names,
   count, declared sizes, compression), the JSON files (read with a byte cap, so a member
   that inflates past its declared size is caught), and the weights' HDF5 structure
   (numeric datasets whose bytes fit in the file, a bounded number of objects).
2. :func:`memory_budget` then caps the process's data segment while Keras builds the
   network and loads the weights, so that a config describing an enormous network fails
   with an error instead of taking the machine's memory (Linux; elsewhere the cap is not
   available and only step 1 applies).
"""

from __future__ import annotations

import contextlib
import json
import re
import zipfile
from pathlib import Path
from typing import Iterator

# Limits, documented in the README. The largest network here (airbench) has 2 million
# weights, 8 MB; its config is 30 KB.
MAX_MODEL_FILE_BYTES = 1 << 30        # The file on disk.
MAX_CONFIG_BYTES = 4 << 20            # config.json, inflated.
MAX_METADATA_BYTES = 64 << 10         # metadata.json, inflated.
MAX_WEIGHTS_BYTES = 512 << 20         # The weights file, inflated (optimizer state included).
MAX_ASSETS_BYTES = 16 << 20           # Everything under assets/, inflated.
MAX_MEMBERS = 64                      # Members of the archive.
MAX_HDF5_OBJECTS = 100_000            # Groups and datasets in a weights file.
# Memory the process may add while Keras builds and loads a model: the weights' size, twice
# (the variables and the arrays read), plus room for Keras itself.
LOAD_BUDGET_BASE_BYTES = 512 << 20

_CONFIG, _METADATA = "config.json", "metadata.json"
_WEIGHTS = ("model.weights.h5", "model.weights.npz")
_ASSETS = "assets/"
# The members a .keras archive may hold (assets aside), each with its inflated-size limit.
_MEMBER_LIMITS = {_CONFIG: MAX_CONFIG_BYTES, _METADATA: MAX_METADATA_BYTES,
                  **{weights_name: MAX_WEIGHTS_BYTES for weights_name in _WEIGHTS}}
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")
_NESTED_ARCHIVE = re.compile(r"\.(zip|keras|jar|tar|tgz|gz|bz2|xz|zst|7z|rar)$", re.IGNORECASE)


class ModelFileError(ValueError):
    """A model file that is damaged, hostile, or larger than these commands accept."""


def check_model_file(path: Path) -> int:
    """Check a ``.keras`` or legacy ``.h5`` model file without letting Keras open it.

    Args:
        path: The model file.

    Returns:
        The bytes of the weights it holds (inflated), for :func:`memory_budget`.

    Raises:
        ModelFileError: What is wrong, in one line.
    """
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_MODEL_FILE_BYTES:
        raise ModelFileError(f"{path} is {size:,} bytes; model files up to "
                             f"{MAX_MODEL_FILE_BYTES:,} bytes are accepted.")
    if path.suffix.lower() == ".h5":
        with open(path, "rb") as file:
            if file.read(len(_HDF5_SIGNATURE)) != _HDF5_SIGNATURE:
                raise ModelFileError(f"{path} is not an HDF5 file (a legacy .h5 model is one).")
        _check_hdf5(path, path, size, legacy_model=True)
        return size
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise ModelFileError(f"{path} is not a Keras model: a .keras file is a zip archive "
                             f"and this one cannot be read ({error}).") from None
    with archive:
        return _check_archive(path, archive)


def _check_archive(path: Path, archive: zipfile.ZipFile) -> int:
    """The members of a ``.keras`` archive: names, sizes, compression, then their content."""
    members = archive.infolist()
    if len(members) > MAX_MEMBERS:
        raise ModelFileError(f"{path} holds {len(members):,} files; a .keras model holds a "
                             f"few (at most {MAX_MEMBERS}).")
    names = [member.filename for member in members]
    if len(set(names)) != len(names):
        raise ModelFileError(f"{path} holds the same name twice; it is not a Keras model.")
    assets_bytes = 0
    weights = None
    for member in members:
        name = member.filename
        if member.flag_bits & 0x1:
            raise ModelFileError(f"{path}: {name} is encrypted; Keras models are not.")
        if member.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ModelFileError(f"{path}: {name} uses a compression Keras never writes "
                                 f"(method {member.compress_type}).")
        if name.startswith(_ASSETS):
            if ".." in Path(name).parts or "\\" in name or _NESTED_ARCHIVE.search(name):
                raise ModelFileError(f"{path}: {name} is not an asset a Keras model holds "
                                     "(a path leaving the archive, or a nested archive).")
            assets_bytes += member.file_size
            if assets_bytes > MAX_ASSETS_BYTES:
                raise ModelFileError(f"{path}: its assets inflate past {MAX_ASSETS_BYTES:,} "
                                     "bytes.")
            continue
        limit = _MEMBER_LIMITS.get(name)
        if limit is None:
            raise ModelFileError(f"{path} holds {name!r}, which a Keras model does not "
                                 f"(valid: {_CONFIG}, {_METADATA}, {' or '.join(_WEIGHTS)}, "
                                 f"{_ASSETS}...).")
        if member.file_size > limit:
            raise ModelFileError(f"{path}: {name} inflates to {member.file_size:,} bytes; at "
                                 f"most {limit:,} are accepted.")
        if name in _WEIGHTS:
            if weights is not None:
                raise ModelFileError(f"{path} holds two weights files.")
            weights = member
    if _CONFIG not in names or weights is None:
        missing = _CONFIG if _CONFIG not in names else " or ".join(_WEIGHTS)
        raise ModelFileError(f"{path} holds no {missing}; it is not a complete Keras model.")
    for name in (_CONFIG, _METADATA):
        if name in names:
            _read_json_member(path, archive, name, _MEMBER_LIMITS[name])
    _check_weights_member(path, archive, weights)
    return weights.file_size


def _read_bounded(archive: zipfile.ZipFile, member: zipfile.ZipInfo, limit: int) -> bytes:
    """A member's bytes, never more than ``limit`` of them in memory."""
    with archive.open(member) as stream:
        content = stream.read(limit + 1)
    if len(content) > limit:
        raise ModelFileError(f"{member.filename} inflates past {limit:,} bytes.")
    return content


def _read_json_member(path: Path, archive: zipfile.ZipFile, name: str, limit: int) -> None:
    try:
        content = _read_bounded(archive, archive.getinfo(name), limit)
        json.loads(content.decode("utf-8"))
    except ModelFileError as error:
        raise ModelFileError(f"{path}: {error}") from None
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise ModelFileError(f"{path}: {name} cannot be read ({error}).") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ModelFileError(f"{path}: {name} is not valid JSON ({type(error).__name__}).") \
            from None


def _check_weights_member(path: Path, archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> None:
    try:
        with archive.open(member) as stream:
            head = stream.read(8)
            if member.filename.endswith(".h5"):
                if head != _HDF5_SIGNATURE:
                    raise ModelFileError(f"{path}: {member.filename} is not an HDF5 file.")
                _check_hdf5(path, stream, member.file_size, legacy_model=False)
            elif head[:4] in _ZIP_SIGNATURES:
                # An .npz is itself a zip: check it as one more archive of arrays.
                _check_npz(path, stream, member.file_size)
            else:
                raise ModelFileError(f"{path}: {member.filename} is not an .npz archive.")
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise ModelFileError(f"{path}: {member.filename} cannot be read ({error}).") from None


def _check_npz(path: Path, stream, size: int) -> None:
    stream.seek(0)
    with zipfile.ZipFile(stream) as arrays:
        total = sum(info.file_size for info in arrays.infolist())
        if len(arrays.infolist()) > MAX_HDF5_OBJECTS or total > MAX_WEIGHTS_BYTES:
            raise ModelFileError(f"{path}: its weights inflate past {MAX_WEIGHTS_BYTES:,} "
                                 "bytes or hold too many arrays.")
        if any(not info.filename.endswith(".npy") for info in arrays.infolist()):
            raise ModelFileError(f"{path}: its .npz weights hold something other than arrays.")


def _check_hdf5(path: Path, source, size: int, legacy_model: bool) -> None:
    """Every dataset numeric and stored in full (its bytes within the file), objects bounded.

    Keras writes plain, uncompressed datasets; a compressed or sparse one could hold many
    more bytes than the file, so it is refused before anything reads it.
    """
    import h5py
    import numpy as np

    if hasattr(source, "seek"):
        source.seek(0)
    try:
        handle = h5py.File(source, "r")
    except (OSError, ValueError) as error:
        raise ModelFileError(f"{path}: its weights cannot be read as HDF5 "
                             f"({' '.join(str(error).split())}).") from None
    counted = {"objects": 0, "bytes": 0}

    def visit(name, item):
        counted["objects"] += 1
        if counted["objects"] > MAX_HDF5_OBJECTS:
            raise ModelFileError(f"{path}: its weights hold more than {MAX_HDF5_OBJECTS:,} "
                                 "groups and datasets.")
        if isinstance(item, h5py.Dataset):
            if item.dtype.kind not in "biuf":
                raise ModelFileError(f"{path}: weights dataset {name!r} is not numeric "
                                     f"({item.dtype}).")
            if item.compression is not None or item.chunks is not None:
                raise ModelFileError(f"{path}: weights dataset {name!r} is stored compressed "
                                     "or in chunks, which Keras never writes.")
            counted["bytes"] += int(np.prod(item.shape, dtype=np.int64)) * item.dtype.itemsize
            if counted["bytes"] > size:
                raise ModelFileError(f"{path}: its weights declare {counted['bytes']:,} bytes "
                                     f"of arrays in a file of {size:,} bytes.")
        for attribute in item.attrs.values() if legacy_model else ():
            if getattr(attribute, "nbytes", 0) > MAX_CONFIG_BYTES:
                raise ModelFileError(f"{path}: an attribute of {name!r} is larger than "
                                     f"{MAX_CONFIG_BYTES:,} bytes.")

    try:
        with handle:
            handle.visititems(visit)
    except ModelFileError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        raise ModelFileError(f"{path}: its weights are damaged "
                             f"({' '.join(str(error).split())}).") from None


def _data_segment_bytes() -> int | None:
    """This process's data segment (what RLIMIT_DATA counts), or None where unknown."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmData:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else None


@contextlib.contextmanager
def memory_budget(weights_bytes: int) -> Iterator[None]:
    """Cap the memory this process may add while a model is built and loaded.

    Allocations past the cap fail (TensorFlow raises ``ResourceExhaustedError``, NumPy
    ``MemoryError``) instead of exhausting the machine. Linux only: elsewhere, or when the
    limit cannot be set, nothing is capped.

    Args:
        weights_bytes: The model's weights, from :func:`check_model_file`.
    """
    import resource

    used = _data_segment_bytes()
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    except (AttributeError, ValueError, OSError):
        used = None
    if used is None:
        yield
        return
    cap = used + LOAD_BUDGET_BASE_BYTES + 2 * weights_bytes
    if soft != resource.RLIM_INFINITY:
        cap = min(cap, soft)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))
