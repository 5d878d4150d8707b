"""The decoded-array cache: keyed by content, checked when read, never fatal to write.

Every test loads a tiny generated source (``conftest.py``) with ``$CIFAR_CNN_CACHE_DIR``
pointing at the test's own empty folder (``data_cache_dir``).
"""

from __future__ import annotations

import os
import shutil
import time

import numpy as np
import pytest

from cifar_cnn.data import cache as data_cache
from cifar_cnn.data import load_cifar10
from cifar_cnn.data import sources as data_sources

BINARY_TEST_BATCH = "cifar-10-batches-bin/test_batch.bin"


def assert_arrays_equal(actual, expected) -> None:
    """Exact equality of two ``((x_train, y_train), (x_test, y_test))`` tuples."""
    for (actual_images, actual_labels), (expected_images, expected_labels) in zip(actual, expected):
        np.testing.assert_array_equal(actual_images, expected_images)
        np.testing.assert_array_equal(actual_labels, expected_labels)


def cache_entries(cache_dir) -> list[str]:
    """Every file in the cache folder, hidden partial writes included."""
    return sorted(path.name for path in cache_dir.rglob("*") if path.is_file())


def forbid_decoding(monkeypatch) -> None:
    """Make every layout decoder fail, so only a cache hit can serve a load."""
    def decoder_ran(*args, **kwargs):
        raise AssertionError("the decoder ran: the load was not served from the cache")

    for layout in data_sources.LAYOUT_LOADERS:
        monkeypatch.setitem(data_sources.LAYOUT_LOADERS, layout, decoder_ran)


def rewrite_keeping_size_and_mtime(path, content: bytes) -> None:
    """Replace a file's bytes by as many other bytes and restore its modification time."""
    status = path.stat()
    assert len(content) == status.st_size, "the premise: the edit keeps the size"
    path.write_bytes(content)
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))
    assert path.stat().st_mtime_ns == status.st_mtime_ns


# --- The key is the folder's content -------------------------------------------------------


def test_same_size_same_mtime_edit_of_an_image_invalidates_the_cache(
        copy_cifar_fixture, cifar_encoders, tiny_arrays, data_cache_dir):
    source = copy_cifar_fixture("image_folder", "folder", "png")
    assert_arrays_equal(load_cifar10(source), tiny_arrays)
    (x_train, y_train), test = tiny_arrays
    # train/airplane/00000.png is x_train[0] (the split loads sorted by label, then name).
    edited = x_train[0].copy()
    edited[0, 0, 0] ^= 1
    rewrite_keeping_size_and_mtime(source / "train" / "airplane" / "00000.png",
                                   cifar_encoders.image_bytes(edited, "png"))

    (new_x_train, new_y_train), new_test = load_cifar10(source)

    np.testing.assert_array_equal(new_x_train[0], edited)
    assert_arrays_equal([(new_x_train[1:], new_y_train[1:]), new_test],
                        [(x_train[1:], y_train[1:]), test])
    assert len(cache_entries(data_cache_dir)) == 2  # The old content keeps its own entry.


def test_copied_folder_with_identical_content_shares_the_cache_entry(
        copy_cifar_fixture, tiny_arrays, data_cache_dir, tmp_path, monkeypatch):
    source = copy_cifar_fixture("binary", "folder")
    load_cifar10(source)
    copy = shutil.copytree(source, tmp_path / "elsewhere" / "copy", copy_function=shutil.copy)
    forbid_decoding(monkeypatch)

    # A plain copy gets new modification times: the content alone decides the key.
    assert_arrays_equal(load_cifar10(copy), tiny_arrays)
    assert len(cache_entries(data_cache_dir)) == 1


def test_copy_with_one_changed_byte_does_not_hit_the_cache(
        copy_cifar_fixture, tiny_arrays, data_cache_dir, tmp_path):
    source = copy_cifar_fixture("binary", "folder")
    load_cifar10(source)
    # cp -a / rsync -a: same names, sizes and modification times as the original...
    copy = shutil.copytree(source, tmp_path / "synced", copy_function=shutil.copy2)
    batch = copy / BINARY_TEST_BATCH
    content = bytearray(batch.read_bytes())
    content[1] ^= 0xFF  # ...but the first pixel byte of the first test image differs.
    rewrite_keeping_size_and_mtime(batch, bytes(content))

    _, (x_test, y_test) = load_cifar10(copy)

    expected = tiny_arrays[1][0].copy()
    expected[0, 0, 0, 0] ^= 0xFF  # Channel-planar storage: byte 1 is red of pixel (0, 0).
    np.testing.assert_array_equal(x_test, expected)
    np.testing.assert_array_equal(y_test, tiny_arrays[1][1])
    assert len(cache_entries(data_cache_dir)) == 2


def test_renaming_a_file_changes_the_folder_fingerprint(copy_cifar_fixture):
    source = copy_cifar_fixture("image_folder", "folder", "png")
    before = data_cache.folder_fingerprint(source)
    (source / "train" / "cat" / "00009.png").rename(source / "train" / "cat" / "00009b.png")

    assert data_cache.folder_fingerprint(source) != before


def test_an_entry_from_an_older_decoder_version_is_not_served(make_cifar_fixture, tiny_arrays,
                                                               data_cache_dir, monkeypatch):
    source = make_cifar_fixture("image_folder", "tar")
    load_cifar10(source)
    monkeypatch.setattr(data_cache, "CACHE_FORMAT_VERSION", data_cache.CACHE_FORMAT_VERSION + 1)

    assert_arrays_equal(load_cifar10(source), tiny_arrays)
    assert len(cache_entries(data_cache_dir)) == 2


# --- Entries are checked when read ---------------------------------------------------------


def _rewrite_entry(path, **changes) -> None:
    """Rewrite a valid cache entry with some arrays replaced (None removes one)."""
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays.update(changes)
    with open(path, "wb") as stream:
        np.savez(stream, **{name: array for name, array in arrays.items() if array is not None})


def _with_label_12(path) -> None:
    with np.load(path) as archive:
        labels = archive["y_train"].copy()
    labels[0] = 12
    _rewrite_entry(path, y_train=labels)


def _with_float_images(path) -> None:
    with np.load(path) as archive:
        images = archive["x_test"].astype(np.float32)
    _rewrite_entry(path, x_test=images)


def _with_labels_of_another_length(path) -> None:
    with np.load(path) as archive:
        labels = archive["y_test"][:-1]
    _rewrite_entry(path, y_test=labels)


def _with_flipped_byte(path) -> None:
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0xFF  # Inside the pixels: only the zip CRC notices.
    path.write_bytes(bytes(content))


def _with_flipped_header_byte(path) -> None:
    content = bytearray(path.read_bytes())
    content[20000] ^= 0xFF  # Early in the entry: the first array's header or pixels.
    path.write_bytes(bytes(content))


def _with_every_array_wrong(path) -> None:
    with open(path, "wb") as stream:
        np.savez(stream, x_train=np.zeros((2, 8, 8, 3), np.uint8), y_train=np.zeros(2),
                 x_test=np.zeros((1, 8, 8, 3), np.uint8), y_test=np.zeros(1))


ENTRY_DAMAGE = {
    "empty": lambda path: path.write_bytes(b""),
    "random_bytes": lambda path: path.write_bytes(np.random.default_rng(3).bytes(5000)),
    "truncated": lambda path: path.write_bytes(path.read_bytes()[: path.stat().st_size // 3]),
    "truncated_to_half": lambda path: path.write_bytes(
        path.read_bytes()[: path.stat().st_size // 2]),
    "flipped_header_byte": _with_flipped_header_byte,
    "flipped_byte": _with_flipped_byte,
    "wrong_shapes": lambda path: _rewrite_entry(path, x_train=np.zeros((30, 8, 8, 3), np.uint8)),
    "every_array_wrong": _with_every_array_wrong,
    "wrong_dtype": _with_float_images,
    "label_12": _with_label_12,
    "labels_of_another_length": _with_labels_of_another_length,
    "missing_test_split": lambda path: _rewrite_entry(path, x_test=None, y_test=None),
}


@pytest.mark.parametrize("damage", sorted(ENTRY_DAMAGE))
def test_a_damaged_entry_is_ignored_and_rewritten(make_cifar_fixture, tiny_arrays,
                                                  data_cache_dir, damage):
    source = make_cifar_fixture("python", "tar.gz")
    load_cifar10(source)
    (entry,) = data_cache_dir.iterdir()
    ENTRY_DAMAGE[damage](entry)
    assert data_cache.load_cached(entry) is None

    assert_arrays_equal(load_cifar10(source), tiny_arrays)

    assert cache_entries(data_cache_dir) == [entry.name]
    assert_arrays_equal(data_cache.load_cached(entry), tiny_arrays)


def test_a_leftover_partial_file_is_not_read(make_cifar_fixture, tiny_arrays, data_cache_dir):
    source = make_cifar_fixture("binary", "tar")
    load_cifar10(source)
    (entry,) = data_cache_dir.iterdir()
    # What a writer killed before its rename leaves: a valid-looking file under the
    # temporary name that files.atomic_output uses, and no entry under the final name.
    partial = entry.with_name(f".{entry.stem}.k1ll3d.partial{entry.suffix}")
    zeros = [(np.zeros_like(images), labels) for images, labels in tiny_arrays]
    data_cache.save_cached(partial, *zeros)
    entry.unlink()

    assert_arrays_equal(load_cifar10(source), tiny_arrays)
    assert_arrays_equal(data_cache.load_cached(entry), tiny_arrays)


# --- A cache that cannot be written is a warning ---------------------------------------------


def _cache_dir_under_a_file(tmp_path, monkeypatch):
    """A cache folder that cannot be created (its parent is a file), even for root."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder's parent should be")
    return blocker / "cache"


def _disk_full_while_writing(tmp_path, monkeypatch):
    """A cache folder whose writes fail with ENOSPC after half an entry."""
    def savez_then_disk_full(stream, **arrays):
        stream.write(b"PK\x03\x04 half of an archive")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(data_cache.np, "savez", savez_then_disk_full)
    return tmp_path / "full-disk-cache"


@pytest.mark.parametrize("unwritable", [_cache_dir_under_a_file, _disk_full_while_writing],
                         ids=["folder_not_creatable", "disk_full"])
def test_an_unwritable_cache_warns_and_still_returns_the_arrays(make_cifar_fixture, tiny_arrays,
                                                                tmp_path, monkeypatch,
                                                                unwritable):
    cache_dir = unwritable(tmp_path, monkeypatch)

    with pytest.warns(data_cache.CacheWarning) as warned:
        arrays = load_cifar10(make_cifar_fixture("binary", "folder"), cache_dir=cache_dir)

    assert_arrays_equal(arrays, tiny_arrays)
    (warning,) = warned
    text = str(warning.message)
    assert str(cache_dir) in text and "$CIFAR_CNN_CACHE_DIR" in text and "\n" not in text
    # The warning points at the caller of load_cifar10, not at the cache module.
    assert warning.filename == __file__
    if cache_dir.parent.is_dir():
        assert cache_entries(cache_dir) == [], "no entry and no partial file is left behind"


def test_partial_files_of_killed_writers_are_removed_but_fresh_ones_kept(make_cifar_fixture,
                                                                         data_cache_dir):
    data_cache_dir.mkdir(parents=True, exist_ok=True)
    abandoned = data_cache_dir / ".cifar10-abc.x1.partial.npz"
    in_progress = data_cache_dir / ".cifar10-def.x2.partial.npz"
    for partial in (abandoned, in_progress):
        partial.write_bytes(b"half written")
    hours_ago = time.time() - 2 * data_cache.ABANDONED_PARTIAL_SECONDS
    os.utime(abandoned, (hours_ago, hours_ago))
    load_cifar10(make_cifar_fixture("binary", "tar"))
    assert not abandoned.exists() and in_progress.exists()
