"""Tests for the size and pickle limits of ``cifar_cnn.data``: bombs, hostile pickles, layouts.

Each bomb is built here, small on disk but declaring or inflating to about a gigabyte, so
an unbounded read would show in the peak memory of the fresh process that loads it.
"""

from __future__ import annotations

import gzip
import itertools
import json
import os
import pickle
import re
import struct
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from cifar_cnn.data import DataSourceError, load_cifar10
from cifar_cnn.data import formats as data_formats
from cifar_cnn.data import safe_pickle
from cifar_cnn.data import sources as data_sources
from cifar_cnn.data.file_trees import FileLimit, TreeLimits, open_file_tree

REPOSITORY = Path(__file__).resolve().parent.parent
GIB = 1 << 30
# A refused bomb must not cost more than this; reading one would take over a gigabyte.
MAX_PEAK_MEMORY_MB = 800
# Refusing reads no member body, so it takes well under a second; inflating takes 20 s.
MAX_REFUSAL_SECONDS = 10
ZERO_CHUNK = bytes(16 << 20)
BINARY_FOLDER = "cifar-10-batches-bin"
PYTHON_FOLDER = "cifar-10-batches-py"

# Loads a source in a fresh interpreter and reports the outcome and the peak memory.
LOAD_AND_MEASURE = """
import json, resource, sys, time
from cifar_cnn.data import DataSourceError, load_cifar10
start = time.perf_counter()
try:
    load_cifar10(sys.argv[1], use_cache=False)
    outcome = {"error": None, "message": "loaded"}
except BaseException as error:
    outcome = {"error": type(error).__name__, "message": str(error),
               "is_data_source_error": isinstance(error, DataSourceError)}
outcome["seconds"] = time.perf_counter() - start
# VmHWM is this interpreter's own peak: ru_maxrss would also count the pages of the large
# pytest process it was forked from, because Linux keeps that figure across exec.
try:
    status = open("/proc/self/status").read()
    outcome["peak_mb"] = int(status.split("VmHWM:")[1].split()[0]) / 1024
except (OSError, IndexError):
    outcome["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(outcome))
"""


def load_in_fresh_process(source: Path, cache_dir: Path) -> dict:
    """Load ``source`` in a new interpreter; return its outcome, time and peak memory."""
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY),
                   "CIFAR_CNN_CACHE_DIR": str(cache_dir)}
    completed = subprocess.run([sys.executable, "-c", LOAD_AND_MEASURE, str(source)],
                               capture_output=True, text=True, timeout=300, env=environment,
                               cwd=REPOSITORY)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def tar_header(name: str, size: int, member_type: bytes = tarfile.REGTYPE) -> bytes:
    """The 512-byte GNU tar header of one member."""
    info = tarfile.TarInfo(name)
    info.size, info.type, info.mtime, info.mode = size, member_type, 1_600_000_000, 0o644
    return info.tobuf(format=tarfile.GNU_FORMAT)


def write_gzip_bomb(archive: Path, files: list[tuple[str, bytes]], bomb: str, size: int) -> Path:
    """A .tar.gz of ``files`` whose member ``bomb`` is instead ``size`` zero bytes.

    Written in chunks through one gzip stream, so neither the test nor the file (a few MB)
    ever holds the zeros.
    """
    with open(archive, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1) as gz:
        for name, content in files:
            member_size = size if name == bomb else len(content)
            gz.write(tar_header(name, member_size))
            if name == bomb:
                for start in range(0, size, len(ZERO_CHUNK)):
                    gz.write(ZERO_CHUNK[: size - start])
            else:
                gz.write(content)
            gz.write(bytes(-member_size % tarfile.BLOCKSIZE))  # Members fill whole blocks.
        gz.write(bytes(2 * tarfile.BLOCKSIZE))  # The end-of-archive marker.
    return archive


def sparse_tar_header(name: str, real_size: int) -> bytes:
    """An old-GNU sparse member header: one 512-byte data block, then a hole to ``real_size``."""
    header = bytearray(tar_header(name, tarfile.BLOCKSIZE, tarfile.GNUTYPE_SPARSE))
    header[386:398] = tarfile.itn(0, 12, tarfile.GNU_FORMAT)  # First region: offset 0,
    header[398:410] = tarfile.itn(tarfile.BLOCKSIZE, 12, tarfile.GNU_FORMAT)  # 512 bytes.
    header[483:495] = tarfile.itn(real_size, 12, tarfile.GNU_FORMAT)  # The declared size.
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)  # The checksum covers the patched fields.
    return bytes(header)


def write_sparse_tar(archive: Path, test_batch: bytes) -> Path:
    """An uncompressed binary-layout .tar (about 70 KB) whose five training batches are
    sparse members declaring 1 GiB each."""
    with open(archive, "wb") as stream:
        for number in range(1, 6):
            stream.write(sparse_tar_header(f"{BINARY_FOLDER}/data_batch_{number}.bin", GIB))
            stream.write(bytes(tarfile.BLOCKSIZE))
        stream.write(tar_header(f"{BINARY_FOLDER}/test_batch.bin", len(test_batch)))
        stream.write(test_batch + bytes(-len(test_batch) % tarfile.BLOCKSIZE))
        stream.write(bytes(2 * tarfile.BLOCKSIZE))  # The end-of-archive marker.
    return archive


def write_pax_header_bomb(archive: Path) -> Path:
    """A .tar whose first header is a pax header declaring 1 GiB, stored as a hole on disk."""
    with open(archive, "wb") as stream:
        stream.write(tar_header("././@PaxHeader", GIB, tarfile.XHDTYPE))
        stream.truncate(tarfile.BLOCKSIZE + GIB + 2 * tarfile.BLOCKSIZE)
    return archive


def long_binput_pickle() -> bytes:
    """Eleven bytes asking the unpickler to memoize an object at index 2**27 (a 2 GB table)."""
    return (pickle.PROTO + b"\x02" + pickle.EMPTY_DICT + pickle.LONG_BINPUT
            + struct.pack("<I", 1 << 27) + pickle.NONE + pickle.POP + pickle.STOP)


def write_tiny_source(root: Path, make_cifar_fixture, layout: str, replaced: str,
                      content: bytes | int) -> Path:
    """A tiny source folder of ``layout`` with the file ``replaced`` (added if absent) holding
    ``content``, or, for an int, that many zero bytes stored as a hole (no disk used)."""
    files = [(name, data) for name, data in make_cifar_fixture.files(layout) if name != replaced]
    files.append((replaced, content if isinstance(content, bytes) else b""))
    for name, data in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    if isinstance(content, int):
        os.truncate(root / replaced, content)
    return root


@pytest.fixture(scope="module")
def bomb_folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bombs")


def _gzip_bomb(folder: Path, make_cifar_fixture) -> Path:
    return write_gzip_bomb(folder / "gzip-bomb.tar.gz", make_cifar_fixture.files("binary"),
                           f"{BINARY_FOLDER}/data_batch_1.bin", GIB)


def _sparse_tar(folder: Path, make_cifar_fixture) -> Path:
    test_batch = dict(make_cifar_fixture.files("binary"))[f"{BINARY_FOLDER}/test_batch.bin"]
    return write_sparse_tar(folder / "sparse.tar", test_batch)


def _pax_header_bomb(folder: Path, _make_cifar_fixture) -> Path:
    return write_pax_header_bomb(folder / "pax-header.tar")


def _long_binput_pickle(folder: Path, make_cifar_fixture) -> Path:
    return write_tiny_source(folder / "long-binput", make_cifar_fixture, "python",
                             f"{PYTHON_FOLDER}/data_batch_1", long_binput_pickle())


def _holey_file_in_a_folder(folder: Path, make_cifar_fixture) -> Path:
    return write_tiny_source(folder / "holey-file", make_cifar_fixture, "binary",
                             f"{BINARY_FOLDER}/data_batch_1.bin", GIB)


# name -> (builder, what the error must say)
BOMBS = {
    "gzip_member_of_1_gib": (_gzip_bomb, r"data_batch_1.bin' is 1,073,741,824 bytes; no file"),
    "gnu_sparse_members_of_1_gib": (_sparse_tar, r"data_batch_1.bin' is a sparse file"),
    "pax_header_of_1_gib": (_pax_header_bomb, r"extended tar header of 1,073,741,824 bytes"),
    "long_binput_memo_index": (_long_binput_pickle,
                               r"data_batch_1: the pickle stores memo entry 134,217,728"),
    "folder_file_of_1_gib": (_holey_file_in_a_folder,
                             r"data_batch_1.bin is 1,073,741,824 bytes, but a binary batch"),
}


@pytest.mark.parametrize("bomb", sorted(BOMBS))
def test_bomb_is_refused_quickly_within_bounded_memory(bomb, bomb_folder, make_cifar_fixture,
                                                       data_cache_dir):
    build, expected_message = BOMBS[bomb]
    source = build(bomb_folder, make_cifar_fixture)

    outcome = load_in_fresh_process(source, data_cache_dir)

    assert outcome["error"] == "DataSourceError" and outcome["is_data_source_error"], outcome
    assert str(source) in outcome["message"]
    assert re.search(expected_message, outcome["message"]), outcome["message"]
    assert outcome["peak_mb"] < MAX_PEAK_MEMORY_MB, outcome
    assert outcome["seconds"] < MAX_REFUSAL_SECONDS, outcome


# --- Hostile and legitimate pickles ----------------------------------------------------


def _global(module: str, name: str) -> bytes:
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def _text(text: str) -> bytes:
    data = text.encode()
    return pickle.BINUNICODE + struct.pack("<I", len(data)) + data


def _int(value: int) -> bytes:
    return pickle.BININT + struct.pack("<i", value)


PROTOCOL_2 = pickle.PROTO + b"\x02"
RECONSTRUCT = _global("numpy._core.multiarray", "_reconstruct")
DTYPE_U1 = (_global("numpy", "dtype") + _text("u1") + pickle.NEWFALSE + pickle.NEWTRUE
            + pickle.TUPLE3 + pickle.REDUCE)


def _dtype_state(flags: int) -> bytes:
    return (pickle.MARK + _int(3) + _text("|") + pickle.NONE * 3 + _int(-1) + _int(-1)
            + _int(flags) + pickle.TUPLE)


# name -> (pickle, what the refusal must say)
HOSTILE_PICKLES = {
    "memo_index_of_2_27": (long_binput_pickle(), "stores memo entry 134,217,728"),
    "too_many_opcodes": (PROTOCOL_2 + pickle.NONE * (safe_pickle.MAX_PICKLE_OPCODES + 1)
                         + pickle.STOP, "more than 250,000 opcodes"),
    "persistent_id": (PROTOCOL_2 + pickle.PERSID + b"1\n" + pickle.STOP,
                      "opcode PERSID at byte 2 is not one a CIFAR-10 batch uses"),
    "bytes_of_a_gigabyte": (PROTOCOL_2 + _global("__builtin__", "bytes") + _int(GIB)
                            + pickle.TUPLE1 + pickle.REDUCE + pickle.STOP,
                            r"calls bytes\(1073741824,\)"),
    "ndarray_called_directly": (PROTOCOL_2 + _global("numpy", "ndarray") + _int(350_000)
                                + _int(3072) + pickle.TUPLE2 + pickle.TUPLE1 + pickle.REDUCE
                                + pickle.STOP, "calls numpy.ndarray, which a CIFAR-10 batch"),
    "reconstruct_of_a_large_shape": (PROTOCOL_2 + RECONSTRUCT + _global("numpy", "ndarray")
                                     + _int(350_000) + _int(3072) + pickle.TUPLE2 + _text("B")
                                     + pickle.TUPLE3 + pickle.REDUCE + pickle.STOP,
                                     r"of shape \(350000, 3072\)"),
    "object_dtype": (PROTOCOL_2 + _global("numpy", "dtype") + _text("O8") + pickle.NEWFALSE
                     + pickle.NEWTRUE + pickle.TUPLE3 + pickle.REDUCE + pickle.STOP,
                     "asks for dtype object"),
    "dtype_state_with_object_flags": (PROTOCOL_2 + DTYPE_U1 + _dtype_state(63) + pickle.BUILD
                                      + pickle.STOP, "not that of a plain numeric dtype"),
    "large_object_used_twice": (pickle.PROTO + b"\x03" + pickle.BINBYTES
                                + struct.pack("<I", 2000) + bytes(2000) + pickle.BINPUT + b"\x00"
                                + pickle.BINGET + b"\x00" + pickle.TUPLE2 + pickle.STOP,
                                "uses an object built from 2,000 bytes a second time"),
    "fetch_of_an_entry_never_stored": (PROTOCOL_2 + pickle.BINGET + b"\x05" + pickle.STOP,
                                       "fetches memo entry 5, which it never stored"),
    "build_on_a_dict": (PROTOCOL_2 + pickle.EMPTY_DICT + pickle.EMPTY_DICT + pickle.BUILD
                        + pickle.STOP, "sets the state of a plain object"),
    "codecs_encode_to_another_codec": (PROTOCOL_2 + _global("_codecs", "encode") + _text("x")
                                       + _text("utf-32") + pickle.TUPLE2 + pickle.REDUCE
                                       + pickle.STOP, "codecs.encode with 'utf-32'"),
    "bytes_declared_larger_than_the_file": (pickle.PROTO + b"\x03" + pickle.BINBYTES
                                            + struct.pack("<I", GIB) + b"abc",
                                            "the pickle is malformed"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_PICKLES))
def test_hostile_pickle_is_refused_with_the_file_and_the_reason(case):
    content, reason = HOSTILE_PICKLES[case]

    with pytest.raises(DataSourceError, match=reason) as raised:
        safe_pickle.load_batch_pickle(content, "cifar/data_batch_3")

    assert str(raised.value).startswith("cifar/data_batch_3")


def test_long_binput_pickle_is_eleven_bytes():
    assert len(long_binput_pickle()) == 11


@pytest.fixture
def numpy_pickling_restored():
    """Undo a successful attack on NumPy's pickling functions, so later tests still work."""
    functions = [safe_pickle._numpy_core.multiarray._reconstruct,
                 safe_pickle._numpy_core.numeric._frombuffer]
    saved = [(function.__module__, function.__qualname__) for function in functions]
    yield
    for function, (module, qualified_name) in zip(functions, saved):
        function.__module__ = module
        if hasattr(function, "__code__"):  # Built-in functions' names are read-only.
            function.__qualname__ = qualified_name


def _rewrite_attribute_state(name: str) -> bytes:
    """BUILD state ``(None, {name: 'nowhere'})``: setattr on the target, for each key."""
    return (pickle.NONE + pickle.EMPTY_DICT + _text(name) + _text("nowhere") + pickle.SETITEM
            + pickle.TUPLE2 + pickle.BUILD)


BUILD_ON_GLOBAL = {
    "global": PROTOCOL_2 + RECONSTRUCT + _rewrite_attribute_state("__module__") + pickle.STOP,
    "stack_global": (pickle.PROTO + b"\x04" + pickle.SHORT_BINUNICODE + b"\x13numpy._core.numeric"
                     + pickle.SHORT_BINUNICODE + b"\x0b_frombuffer" + pickle.STACK_GLOBAL
                     + _rewrite_attribute_state("__qualname__") + pickle.STOP),
    "global_fetched_from_the_memo": (PROTOCOL_2 + pickle.EMPTY_LIST + RECONSTRUCT + pickle.BINPUT
                                     + b"\x00" + pickle.APPEND + pickle.BINGET + b"\x00"
                                     + _rewrite_attribute_state("__module__") + pickle.STOP),
}


@pytest.mark.parametrize("variant", sorted(BUILD_ON_GLOBAL))
def test_build_on_an_allowed_global_is_refused_and_numpy_still_pickles(
        variant, copy_cifar_fixture, data_cache_dir, numpy_pickling_restored):
    source = copy_cifar_fixture("python", "folder")
    (source / PYTHON_FOLDER / "data_batch_2").write_bytes(BUILD_ON_GLOBAL[variant])

    with pytest.raises(DataSourceError, match=r"data_batch_2: the pickle would rewrite the "
                                              r"attributes of numpy\._core\..* itself"):
        load_cifar10(source)

    assert safe_pickle._numpy_core.multiarray._reconstruct.__module__ != "nowhere"
    assert safe_pickle._numpy_core.numeric._frombuffer.__qualname__ == "_frombuffer"
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        array = np.arange(3)
        np.testing.assert_array_equal(pickle.loads(pickle.dumps(array, protocol)), array)
    pickle.dumps(np.arange(3))


def python_layout_files(tiny_arrays, encode) -> list[tuple[str, bytes]]:
    """The python layout's files, each batch encoded by ``encode(images, labels)``."""
    (x_train, y_train), (x_test, y_test) = tiny_arrays
    chunks = np.array_split(np.arange(len(y_train)), 5)  # As conftest.py splits them.
    files = [(f"{PYTHON_FOLDER}/data_batch_{number}", encode(x_train[chunk], y_train[chunk]))
             for number, chunk in enumerate(chunks, start=1)]
    return files + [(f"{PYTHON_FOLDER}/test_batch", encode(x_test, y_test))]


@pytest.mark.parametrize("protocol", range(2, pickle.HIGHEST_PROTOCOL + 1))
def test_python_batch_with_an_empty_batch_label_loads(tiny_arrays, cifar_encoders, tmp_path,
                                                      protocol):
    files = python_layout_files(tiny_arrays, lambda images, labels: (
        cifar_encoders.python_batch_bytes(images, labels, "", protocol)))
    if protocol == 2:  # The premise: Python 3 writes b'' at protocol 2 as a call of bytes().
        assert _global("__builtin__", "bytes") in files[0][1]

    source = cifar_encoders.write_folder(tmp_path / "empty-label", files)

    np.testing.assert_equal(load_cifar10(source), tiny_arrays)


def python2_cpickle_batch(images: np.ndarray, labels: np.ndarray) -> bytes:
    """A batch pickled the way Python 2's cPickle wrote the official files (protocol 2):
    str as SHORT_BINSTRING/BINSTRING, every string memoized, ``numpy.core`` names."""
    memo_indices = itertools.count(1)

    def put() -> bytes:
        index = next(memo_indices)
        return (pickle.BINPUT + bytes([index]) if index < 256
                else pickle.LONG_BINPUT + struct.pack("<I", index))

    def string(data: bytes) -> bytes:
        if len(data) < 256:
            return pickle.SHORT_BINSTRING + bytes([len(data)]) + data + put()
        return pickle.BINSTRING + struct.pack("<i", len(data)) + data + put()

    def small_int(value: int) -> bytes:
        return pickle.BININT2 + struct.pack("<H", value)

    planar = np.ascontiguousarray(images.transpose(0, 3, 1, 2)).reshape(len(images), -1)
    dtype = (_global("numpy", "dtype") + put() + string(b"u1") + small_int(0) + small_int(1)
             + pickle.TUPLE3 + pickle.REDUCE + put() + pickle.MARK + small_int(3) + string(b"|")
             + pickle.NONE * 3 + _int(-1) + _int(-1) + small_int(0) + pickle.TUPLE + pickle.BUILD)
    array = (_global("numpy.core.multiarray", "_reconstruct") + put() + _global("numpy", "ndarray")
             + put() + small_int(0) + pickle.TUPLE1 + string(b"b") + pickle.TUPLE3 + pickle.REDUCE
             + put() + pickle.MARK + small_int(1) + small_int(len(images)) + small_int(3072)
             + pickle.TUPLE2 + dtype + pickle.NEWFALSE + string(planar.tobytes()) + pickle.TUPLE
             + pickle.BUILD)
    label_list = (pickle.EMPTY_LIST + put() + pickle.MARK
                  + b"".join(small_int(int(label)) for label in labels) + pickle.APPENDS)
    file_names = (pickle.EMPTY_LIST + put() + pickle.MARK
                  + b"".join(string(b"leptodactylus_pentadactylus_s_%06d.png" % index)
                             for index in range(len(images))) + pickle.APPENDS)
    return (PROTOCOL_2 + pickle.EMPTY_DICT + put() + pickle.MARK + string(b"data") + array
            + string(b"labels") + label_list + string(b"batch_label")
            + string(b"training batch 1 of 5") + string(b"filenames") + file_names
            + pickle.SETITEMS + pickle.STOP)


BATCH_STYLES = ["python2_cpickle", *range(2, pickle.HIGHEST_PROTOCOL + 1)]


def _full_size_batch(style, python_batch_bytes) -> tuple[bytes, np.ndarray, np.ndarray]:
    """A batch of the official size, 10,000 images, pickled in ``style``."""
    generator = np.random.default_rng(5)
    images = generator.integers(0, 256, (data_formats.IMAGES_PER_BATCH, 32, 32, 3), np.uint8)
    labels = generator.integers(0, 10, data_formats.IMAGES_PER_BATCH)
    if style == "python2_cpickle":
        return python2_cpickle_batch(images, labels), images, labels
    return python_batch_bytes(images, labels, "training batch 1 of 5", style), images, labels


@pytest.mark.parametrize("style", BATCH_STYLES)
def test_full_size_batch_passes_every_limit(style, cifar_encoders):
    content, images, labels = _full_size_batch(style, cifar_encoders.python_batch_bytes)
    assert len(content) <= data_formats.PYTHON_BATCH_MAX_BYTES

    batch = safe_pickle.load_batch_pickle(content, "data_batch_1")

    planar = np.ascontiguousarray(images.transpose(0, 3, 1, 2)).reshape(len(images), -1)
    np.testing.assert_array_equal(batch[b"data"], planar)
    assert list(batch[b"labels"]) == labels.tolist()
    assert len(batch[b"filenames"]) == len(images)


def test_python2_cpickle_batches_load_as_the_official_layout(tiny_arrays, cifar_encoders,
                                                             tmp_path):
    files = python_layout_files(tiny_arrays, python2_cpickle_batch)
    source = cifar_encoders.write_folder(tmp_path / "python2", files)

    np.testing.assert_equal(load_cifar10(source), tiny_arrays)


def test_memory_error_while_unpickling_names_the_file(monkeypatch):
    def out_of_memory(self):
        raise MemoryError

    monkeypatch.setattr(safe_pickle._AllowListUnpickler, "load", out_of_memory)
    content = pickle.dumps({b"data": b""}, protocol=2)

    with pytest.raises(DataSourceError, match="cifar/test_batch: ran out of memory unpickling"):
        safe_pickle.load_batch_pickle(content, "cifar/test_batch")


# --- Size limits of each layout ----------------------------------------------------------


OVERSIZED_FILES = {
    "binary_batch_one_record_too_long": (
        "binary", f"{BINARY_FOLDER}/data_batch_4.bin",
        data_formats.BINARY_BATCH_BYTES + data_formats.BINARY_RECORD_BYTES,
        r"is 30,733,073 bytes, but a binary batch \(10,000 records of 3,073 bytes\) is at most "
        r"30,730,000 bytes"),
    "python_batch": (
        "python", f"{PYTHON_FOLDER}/test_batch", data_formats.PYTHON_BATCH_MAX_BYTES + 1,
        r"is 67,108,865 bytes, but a python batch \(10,000 images, about 31 MB\) is at most"),
    "image": (
        "image_folder", "train/cat/huge.png", data_formats.IMAGE_FILE_MAX_BYTES + 1,
        r"train/cat/huge.png is 4,194,305 bytes, but a 32x32 JPEG or PNG image is at most"),
}


@pytest.mark.parametrize("case", sorted(OVERSIZED_FILES))
def test_file_larger_than_its_layout_allows_is_refused_before_reading(
        case, make_cifar_fixture, tmp_path, monkeypatch, data_cache_dir):
    layout, relative_path, size, message = OVERSIZED_FILES[case]
    source = write_tiny_source(tmp_path / "source", make_cifar_fixture, layout, relative_path,
                               size)
    opened = []
    real_open = open

    def recording_open(file, *args, **kwargs):
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", recording_open)

    with pytest.raises(DataSourceError, match=message):
        load_cifar10(source, use_cache=False)

    assert not [path for path in opened if path.endswith(relative_path)], "it was read"


def test_binary_batch_of_exactly_the_official_size_loads(make_cifar_fixture, tmp_path):
    source = write_tiny_source(tmp_path / "source", make_cifar_fixture, "binary",
                               f"{BINARY_FOLDER}/data_batch_1.bin", data_formats.BINARY_BATCH_BYTES)

    (x_train, y_train), _ = load_cifar10(source, use_cache=False)

    # 10,000 black images labelled 0 (the zero bytes), then the other tiny batches.
    assert len(x_train) == data_formats.IMAGES_PER_BATCH + 24
    assert not x_train[:data_formats.IMAGES_PER_BATCH].any()


SMALL_LIMITS = TreeLimits(max_file_bytes=10_000, max_total_bytes=25_000, max_files=8,
                          largest_file="a test file")


def _archive_of(tmp_path, files: list[tuple[str, bytes]], cifar_encoders) -> Path:
    return cifar_encoders.write_tar(tmp_path / "archive.tar.gz", files, compression="gz")


def test_archive_member_larger_than_any_cifar_file_is_refused_when_listed(tmp_path,
                                                                          cifar_encoders):
    archive = _archive_of(tmp_path, [("a.bin", bytes(10_001))], cifar_encoders)

    with pytest.raises(DataSourceError, match=r"member 'a.bin' is 10,001 bytes; no file of a "
                                              r"CIFAR-10 source is larger than 10,000 bytes "
                                              r"\(a test file\)"):
        open_file_tree(archive, SMALL_LIMITS)


def test_archive_whose_members_hold_too_much_in_all_is_refused(tmp_path, cifar_encoders):
    files = [(f"part{index}.bin", bytes(9_000)) for index in range(3)]
    archive = _archive_of(tmp_path, files, cifar_encoders)

    with pytest.raises(DataSourceError, match="more than 25,000 bytes in all"):
        open_file_tree(archive, SMALL_LIMITS)


@pytest.mark.parametrize("container", ["folder", "tar.gz"])
def test_source_with_too_many_files_is_refused(container, tmp_path, cifar_encoders):
    files = [(f"images/{index}.png", b"x") for index in range(9)]
    if container == "folder":
        source = cifar_encoders.write_folder(tmp_path / "many", files)
    else:
        source = _archive_of(tmp_path, files, cifar_encoders)

    with pytest.raises(DataSourceError, match="holds more than 8 files"):
        open_file_tree(source, SMALL_LIMITS).paths()


def test_folder_files_to_read_holding_too_much_in_all_are_refused(tmp_path, cifar_encoders):
    files = [(f"part{index}.bin", bytes(9_000)) for index in range(3)]
    tree = open_file_tree(cifar_encoders.write_folder(tmp_path / "parts", files), SMALL_LIMITS)
    limit = FileLimit(10_000, "a part")

    with pytest.raises(DataSourceError, match="the 3 files to read hold 27,000 bytes in all"):
        tree.read_files({path: limit for path in tree.paths()})


def test_file_that_grew_after_its_size_was_checked_is_read_no_further(tmp_path, cifar_encoders,
                                                                       monkeypatch):
    tree = open_file_tree(cifar_encoders.write_folder(tmp_path / "growing",
                                                      [("part.bin", bytes(5_000))]), SMALL_LIMITS)
    monkeypatch.setattr(type(tree), "size", lambda self, path: 100)  # What stat said earlier.

    with pytest.raises(DataSourceError, match="part.bin is more than 1,000 bytes"):
        dict(tree.read_files({"part.bin": FileLimit(1_000, "a part")}))


def test_memory_error_while_decoding_names_the_source(make_cifar_fixture, monkeypatch):
    def out_of_memory(tree, prefix):
        raise MemoryError

    source = make_cifar_fixture("binary", "tar.gz")
    monkeypatch.setitem(data_sources.LAYOUT_LOADERS, "binary", out_of_memory)

    with pytest.raises(DataSourceError, match="ran out of memory while loading it") as raised:
        load_cifar10(source)
    assert str(source) in str(raised.value)


def test_memory_error_while_reading_a_file_names_it(tmp_path, cifar_encoders):
    class ExhaustedStream:
        def read(self, size):
            raise MemoryError

    tree = open_file_tree(cifar_encoders.write_folder(tmp_path / "f", [("a.bin", b"abc")]),
                          SMALL_LIMITS)

    with pytest.raises(DataSourceError, match="ran out of memory reading a.bin, which should be "
                                              "a part"):
        tree._read_capped("a.bin", ExhaustedStream(), FileLimit(10, "a part"), 3)


# --- Image folders ----------------------------------------------------------------------


def test_images_below_a_class_folder_are_an_error_that_names_them(copy_cifar_fixture,
                                                                  cifar_encoders, tiny_arrays,
                                                                  data_cache_dir):
    source = copy_cifar_fixture("image_folder", "folder")
    (source / "train" / "cat" / "more").mkdir()
    (source / "train" / "cat" / "more" / "x.png").write_bytes(
        cifar_encoders.image_bytes(tiny_arrays[0][0][0], "png"))

    with pytest.raises(DataSourceError, match=r"train/cat/more/x.png lie in a folder below "
                                              r"train/<class>/"):
        load_cifar10(source)


def test_hidden_files_and_folders_below_a_class_folder_are_ignored(copy_cifar_fixture,
                                                                   cifar_encoders, tiny_arrays):
    source = copy_cifar_fixture("image_folder", "folder")
    image = cifar_encoders.image_bytes(tiny_arrays[0][0][0], "png")
    for relative_path in ("train/cat/.thumbnails/x.png", "train/cat/more/.DS_Store",
                          "test/.hidden/dog/x.png", "test/ship/._x.png"):
        path = source / relative_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(image)

    np.testing.assert_equal(load_cifar10(source), tiny_arrays)

