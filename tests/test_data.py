"""Tests for ``cifar_cnn.data``: every source format, the cache, the pipeline and bad input.

All sources are tiny generated fixtures from ``conftest.py``; nothing touches the network,
``~/.cache`` or the user's data.
"""

from __future__ import annotations

import builtins
import io
import os
import pickle
import shlex
import shutil
import tarfile

import numpy as np
import pytest
from PIL import Image

from cifar_cnn.data import (
    CLASS_NAMES,
    DataSourceError,
    channel_statistics,
    class_count_range,
    load_cifar10,
    make_dataset,
    preprocessing_layer,
    resolve_source,
    scale_pixels,
    stratified_counts,
    subsample,
    train_validation_split,
)
from cifar_cnn.data import cache as data_cache
from cifar_cnn.data import sources as data_sources
from cifar_cnn.data.cache import file_sha256

ARCHIVE_CASES = [
    (layout, container)
    for layout in ("python", "binary", "image_folder")
    for container in ("folder", "tar", "tar.gz")
]


def assert_valid_cifar_arrays(arrays) -> None:
    """Check the shapes, dtypes and label range ``load_cifar10`` promises."""
    for images, labels in arrays:
        assert images.dtype == np.uint8
        assert images.ndim == 4 and images.shape[1:] == (32, 32, 3)
        assert labels.dtype == np.int64
        assert labels.shape == (images.shape[0],)
        assert labels.min() >= 0 and labels.max() <= 9


def assert_arrays_equal(actual, expected) -> None:
    """Exact equality of two ``((x_train, y_train), (x_test, y_test))`` tuples."""
    for (actual_images, actual_labels), (expected_images, expected_labels) in zip(actual, expected):
        np.testing.assert_array_equal(actual_images, expected_images)
        np.testing.assert_array_equal(actual_labels, expected_labels)


def cache_files(cache_dir):
    """Every file in the cache folder, including leftover partial writes."""
    return sorted(path.name for path in cache_dir.rglob("*") if path.is_file())


def expect_load_failure(source, match: str, cache_dir, **kwargs) -> DataSourceError:
    """Load ``source``, expect a DataSourceError matching ``match``, and no cache written."""
    with pytest.raises(DataSourceError, match=match) as raised:
        load_cifar10(source, **kwargs)
    assert cache_files(cache_dir) == [], "a failed load must not leave a cache file behind"
    return raised.value


def _always_fails(*args, **kwargs):
    raise AssertionError("the layout decoder ran although the cache should have served the load")


# --- Formats ----------------------------------------------------------------------------


@pytest.mark.parametrize("layout, container", ARCHIVE_CASES)
def test_every_format_loads_the_ground_truth(make_cifar_fixture, tiny_arrays, layout, container):
    source = make_cifar_fixture(layout, container, "png")

    arrays = load_cifar10(source)

    assert_valid_cifar_arrays(arrays)
    assert_arrays_equal(arrays, tiny_arrays)
    assert set(arrays[0][1].tolist()) == set(range(10))


@pytest.mark.parametrize("protocol", sorted({2, pickle.DEFAULT_PROTOCOL, pickle.HIGHEST_PROTOCOL}))
@pytest.mark.parametrize("container", ["folder", "tar.gz"])
def test_python_batches_load_with_any_pickle_protocol(make_cifar_fixture, tiny_arrays,
                                                      protocol, container):
    # The official files are protocol 2; batches re-saved with NumPy today use 4 or 5.
    source = make_cifar_fixture("python", container, pickle_protocol=protocol)

    assert_arrays_equal(load_cifar10(source), tiny_arrays)


@pytest.mark.parametrize("container", ["folder", "tar", "tar.gz"])
def test_jpeg_image_folder_loads_close_to_the_ground_truth(make_cifar_fixture, tiny_arrays,
                                                           container):
    source = make_cifar_fixture("image_folder", container, "jpeg")

    arrays = load_cifar10(source)

    assert_valid_cifar_arrays(arrays)
    for (images, labels), (expected_images, expected_labels) in zip(arrays, tiny_arrays):
        np.testing.assert_array_equal(labels, expected_labels)
        difference = np.abs(images.astype(np.int16) - expected_images.astype(np.int16))
        # JPEG is lossy; at quality 100 without chroma subsampling the error is a few levels,
        # while two different noise images differ by about 85 levels on average.
        assert difference.mean() < 2.0
        assert difference.max() <= 16


def test_class_folders_map_to_the_official_label_order(make_cifar_fixture):
    archive = make_cifar_fixture("image_folder", "tar")
    with tarfile.open(archive) as tar:
        members = [member.name for member in tar.getmembers()]
        cat_member = next(name for name in members if "/train/cat/" in name)
        cat_image = np.asarray(Image.open(io.BytesIO(tar.extractfile(cat_member).read())))
    stored_class_order = list(dict.fromkeys(name.split("/")[2] for name in members
                                            if "/train/" in name))
    # The premise: the archive does not list its classes in label order.
    assert sorted(stored_class_order) == sorted(CLASS_NAMES)
    assert stored_class_order != list(CLASS_NAMES)

    (x_train, y_train), _ = load_cifar10(archive)

    matches = np.flatnonzero((x_train == cat_image).all(axis=(1, 2, 3)))
    assert len(matches) == 1
    assert y_train[matches[0]] == CLASS_NAMES.index("cat") == 3
    # Labels come out grouped in the official order, whatever the storage order.
    assert list(dict.fromkeys(y_train.tolist())) == list(range(10))


def test_hidden_files_in_an_image_folder_are_ignored(copy_cifar_fixture, tiny_arrays):
    source = copy_cifar_fixture("image_folder", "folder")
    # What macOS leaves behind: .DS_Store in every folder and ._ files beside folders.
    (source / "train" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (source / "train" / "._cat").write_bytes(b"\x00\x05\x16\x07")
    (source / "test" / "dog" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")

    assert_arrays_equal(load_cifar10(source), tiny_arrays)


def test_image_folder_archive_fixture_has_20_train_and_10_test_images_per_class(
        image_folder_archive, make_cifar_fixture):
    assert image_folder_archive.name.endswith(".tar.gz")

    (x_train, y_train), (x_test, y_test) = load_cifar10(image_folder_archive)

    assert x_train.shape == (200, 32, 32, 3) and x_test.shape == (100, 32, 32, 3)
    assert np.bincount(y_train).tolist() == [20] * 10
    assert np.bincount(y_test).tolist() == [10] * 10
    assert_arrays_equal(((x_train, y_train), (x_test, y_test)),
                        make_cifar_fixture.arrays(train_per_class=20, test_per_class=10))


def test_environment_variable_is_used_when_source_is_none(make_cifar_fixture, tiny_arrays,
                                                          monkeypatch):
    source = make_cifar_fixture("binary", "tar.gz")
    monkeypatch.setenv("CIFAR10_SOURCE", str(source))

    assert resolve_source(None).path == source.resolve()
    assert_arrays_equal(load_cifar10(), tiny_arrays)


def test_explicit_source_wins_over_the_environment_variable(make_cifar_fixture, tiny_arrays,
                                                            monkeypatch, tmp_path):
    monkeypatch.setenv("CIFAR10_SOURCE", str(tmp_path / "does-not-exist.tar.gz"))

    assert_arrays_equal(load_cifar10(make_cifar_fixture("python", "folder")), tiny_arrays)


def test_no_source_and_no_environment_variable_means_keras(monkeypatch):
    import keras

    generator = np.random.default_rng(7)
    x_train = generator.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    x_test = generator.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    # Keras returns labels as uint8 columns of shape (N, 1).
    y_train = np.array([[0], [9], [3], [3], [5], [1]], dtype=np.uint8)
    y_test = np.array([[2], [8], [7], [4]], dtype=np.uint8)
    calls = []

    def fake_load_data():
        calls.append(True)
        return (x_train, y_train), (x_test, y_test)

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", fake_load_data)

    assert resolve_source(None).kind == "keras"
    (loaded_x_train, loaded_y_train), (loaded_x_test, loaded_y_test) = load_cifar10()

    assert calls == [True]
    np.testing.assert_array_equal(loaded_x_train, x_train)
    np.testing.assert_array_equal(loaded_x_test, x_test)
    assert loaded_y_train.shape == (6,) and loaded_y_test.shape == (4,)
    assert loaded_y_train.dtype == np.int64
    assert loaded_y_train.tolist() == [0, 9, 3, 3, 5, 1]
    assert loaded_y_test.tolist() == [2, 8, 7, 4]


def test_keras_download_failure_points_at_the_environment_variable(monkeypatch):
    import keras

    def offline_load_data():
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", offline_load_data)

    with pytest.raises(DataSourceError, match="CIFAR10_SOURCE") as raised:
        load_cifar10("keras")
    assert "Temporary failure in name resolution" in str(raised.value)
    assert isinstance(raised.value, ValueError)


# --- Cache ------------------------------------------------------------------------------


def test_second_load_is_served_from_the_cache(make_cifar_fixture, tiny_arrays, monkeypatch,
                                              data_cache_dir):
    source = make_cifar_fixture("python", "tar.gz")
    load_cifar10(source)
    assert len(cache_files(data_cache_dir)) == 1

    monkeypatch.setitem(data_sources.LAYOUT_LOADERS, "python", _always_fails)

    assert_arrays_equal(load_cifar10(source), tiny_arrays)
    # The control: without the cache the (now broken) decoder does run.
    with pytest.raises(AssertionError, match="decoder ran"):
        load_cifar10(source, use_cache=False)


def test_changed_archive_gives_the_new_data_not_the_stale_cache(make_cifar_fixture,
                                                                copy_cifar_fixture):
    source = copy_cifar_fixture("python", "tar.gz")
    first = load_cifar10(source)
    # Rewrite the archive in place with different content (one more image per class).
    shutil.copyfile(make_cifar_fixture("python", "tar.gz", train_per_class=4), source)

    second = load_cifar10(source)

    assert len(second[0][1]) == 40 != len(first[0][1])
    assert_arrays_equal(second, make_cifar_fixture.arrays(train_per_class=4))


def test_changed_folder_gives_the_new_data_not_the_stale_cache(copy_cifar_fixture,
                                                               cifar_encoders, tiny_arrays):
    source = copy_cifar_fixture("binary", "folder")
    load_cifar10(source)
    (_, _), (x_test, y_test) = tiny_arrays
    # Replace the test batch by one holding only its first three images.
    (source / "cifar-10-batches-bin" / "test_batch.bin").write_bytes(
        cifar_encoders.binary_batch_bytes(x_test[:3], y_test[:3]))

    _, (new_x_test, new_y_test) = load_cifar10(source)

    np.testing.assert_array_equal(new_x_test, x_test[:3])
    np.testing.assert_array_equal(new_y_test, y_test[:3])


def test_failed_cache_write_leaves_neither_cache_nor_partial_file(make_cifar_fixture,
                                                                  tiny_arrays, data_cache_dir):
    source = make_cifar_fixture("python", "folder")
    written_partial = []

    def savez_then_disk_full(stream, **arrays):
        stream.write(b"PK\x03\x04 half of an archive")
        stream.flush()
        written_partial.extend(path.name for path in data_cache_dir.iterdir())
        raise OSError(28, "No space left on device")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(data_cache.np, "savez", savez_then_disk_full)
        # An unwritable cache is a warning, and the decoded data is still returned.
        with pytest.warns(data_cache.CacheWarning, match="No space left on device"):
            assert_arrays_equal(load_cifar10(source), tiny_arrays)

    # The partial file really existed on disk before the failure, then was removed.
    assert len(written_partial) == 1 and ".partial" in written_partial[0]
    assert cache_files(data_cache_dir) == []
    # Once the disk has room again the load works and writes a cache.
    assert_arrays_equal(load_cifar10(source), tiny_arrays)
    assert len(cache_files(data_cache_dir)) == 1


def test_use_cache_false_writes_nothing(make_cifar_fixture, tiny_arrays, data_cache_dir):
    arrays = load_cifar10(make_cifar_fixture("image_folder", "tar.gz"), use_cache=False)

    assert_arrays_equal(arrays, tiny_arrays)
    assert cache_files(data_cache_dir) == []


def test_explicit_cache_dir_overrides_the_environment(make_cifar_fixture, data_cache_dir,
                                                      tmp_path):
    explicit = tmp_path / "explicit-cache"

    load_cifar10(make_cifar_fixture("binary", "folder"), cache_dir=explicit)

    assert len(cache_files(explicit)) == 1
    assert cache_files(data_cache_dir) == []


# --- Pipeline ---------------------------------------------------------------------------


def _identified_examples(class_counts):
    """Images whose single value is their index, and labels with the given class counts."""
    labels = np.repeat(np.arange(len(class_counts)), class_counts)
    labels = np.random.default_rng(0).permutation(labels)
    identifiers = np.arange(len(labels))
    return identifiers, labels


def test_train_validation_split_is_stratified_and_a_partition():
    class_counts = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    identifiers, labels = _identified_examples(class_counts)

    (train_ids, train_labels), (validation_ids, validation_labels) = train_validation_split(
        identifiers, labels, validation_split=0.2, seed=1)

    assert np.bincount(validation_labels).tolist() == [count // 5 for count in class_counts]
    assert np.bincount(train_labels).tolist() == [count * 4 // 5 for count in class_counts]
    assert sorted(np.concatenate([train_ids, validation_ids]).tolist()) == identifiers.tolist()
    # Images stay paired with their labels.
    np.testing.assert_array_equal(labels[train_ids], train_labels)
    np.testing.assert_array_equal(labels[validation_ids], validation_labels)


def test_train_validation_split_is_seeded():
    identifiers, labels = _identified_examples([30] * 10)

    _, (first, _) = train_validation_split(identifiers, labels, 0.1, seed=5)
    _, (again, _) = train_validation_split(identifiers, labels, 0.1, seed=5)
    _, (other, _) = train_validation_split(identifiers, labels, 0.1, seed=6)

    np.testing.assert_array_equal(first, again)
    assert set(first.tolist()) != set(other.tolist())


def test_zero_validation_split_keeps_everything_for_training(tiny_arrays):
    (x_train, y_train), _ = tiny_arrays

    (images, labels), validation = train_validation_split(x_train, y_train, 0.0, seed=0)

    assert validation is None
    np.testing.assert_array_equal(images, x_train)
    np.testing.assert_array_equal(labels, y_train)


@pytest.mark.parametrize("validation_split", [-0.1, 1.0, 1.5])
def test_out_of_range_validation_split_raises(tiny_arrays, validation_split):
    (x_train, y_train), _ = tiny_arrays
    with pytest.raises(ValueError, match=r"validation_split must be in \[0, 1\)"):
        train_validation_split(x_train, y_train, validation_split, seed=0)


def test_subsample_is_stratified_seeded_and_keeps_order():
    identifiers, labels = _identified_examples([20] * 10)

    kept_ids, kept_labels = subsample(identifiers, labels, 50, seed=3)
    again_ids, _ = subsample(identifiers, labels, 50, seed=3)
    other_ids, _ = subsample(identifiers, labels, 50, seed=4)

    assert len(kept_ids) == 50
    assert np.bincount(kept_labels).tolist() == [5] * 10
    np.testing.assert_array_equal(labels[kept_ids], kept_labels)
    assert np.all(np.diff(kept_ids) > 0), "the subset keeps the original order"
    np.testing.assert_array_equal(kept_ids, again_ids)
    assert set(kept_ids.tolist()) != set(other_ids.tolist())


@pytest.mark.parametrize("class_counts, count", [
    ([5000] * 10, 512),        # 51.2 per class: rounding each class up would give 510 or 520.
    ([1000] * 10, 256),        # The case: 25.6 per class gave 260.
    ([3, 97, 1, 1, 50, 50, 7, 11, 13, 17], 29),
    ([20] * 10, 1),
    ([7] * 10, 69),
])
def test_subsample_never_exceeds_the_count_asked_for(class_counts, count):
    identifiers, labels = _identified_examples(class_counts)

    kept_ids, kept_labels = subsample(identifiers, labels, count, seed=1)

    assert len(kept_ids) == count
    per_class = np.bincount(kept_labels, minlength=len(class_counts))
    shares = np.asarray(class_counts) * count / sum(class_counts)
    # Each class within one of its exact share, and never more than it has.
    assert np.all(np.abs(per_class - shares) < 1.0)
    assert np.all(per_class <= np.asarray(class_counts))


def test_stratified_counts_say_how_they_rounded():
    counts = stratified_counts(np.array([1000] * 10), 256)
    assert counts.tolist() == [26] * 6 + [25] * 4
    labels = np.repeat(np.arange(10), counts)
    assert class_count_range(labels) == "25-26 per class"
    assert class_count_range(np.repeat(np.arange(10), 5)) == "5 per class"
    with pytest.raises(ValueError, match="cannot be drawn"):
        stratified_counts(np.array([3, 3]), 7)


def test_validation_split_of_a_subset_adds_up_to_its_fraction():
    identifiers, labels = _identified_examples([51, 51, 51, 51, 52, 52, 51, 51, 51, 51])
    _, (validation_ids, _) = train_validation_split(identifiers, labels, 0.1, seed=0)
    assert len(validation_ids) == round(0.1 * len(labels))


@pytest.mark.parametrize("count", [None, 200, 500])
def test_subsample_of_everything_returns_everything(count):
    identifiers, labels = _identified_examples([20] * 10)

    kept_ids, kept_labels = subsample(identifiers, labels, count, seed=0)

    np.testing.assert_array_equal(kept_ids, identifiers)
    np.testing.assert_array_equal(kept_labels, labels)


def _numbered_images(count):
    """uint8 images filled with their index, so a batch shows which examples it holds."""
    images = np.broadcast_to(np.arange(count, dtype=np.uint8)[:, None, None, None],
                             (count, 32, 32, 3)).copy()
    images[0, 0, 0, 0] = 255  # One full-scale pixel, to check nothing is rescaled.
    return images, np.arange(count) % 10


def test_make_dataset_yields_float32_raw_pixel_batches_with_a_last_partial_batch():
    images, labels = _numbered_images(30)

    batches = list(make_dataset(images, labels, batch_size=8).as_numpy_iterator())

    assert [len(batch_labels) for _, batch_labels in batches] == [8, 8, 8, 6]
    for batch_images, batch_labels in batches:
        assert batch_images.dtype == np.float32 and batch_images.shape[1:] == (32, 32, 3)
        assert batch_labels.dtype == np.int32
    all_images = np.concatenate([batch_images for batch_images, _ in batches])
    np.testing.assert_array_equal(all_images, images.astype(np.float32))
    assert all_images.min() >= 0 and all_images.max() == 255.0
    np.testing.assert_array_equal(np.concatenate([b for _, b in batches]), labels)


def test_make_dataset_drop_remainder_drops_the_partial_batch():
    images, labels = _numbered_images(30)

    batches = list(make_dataset(images, labels, 8, drop_remainder=True).as_numpy_iterator())

    assert [batch_images.shape for batch_images, _ in batches] == [(8, 32, 32, 3)] * 3


def test_make_dataset_shuffle_is_reproducible_and_keeps_pairs():
    images, labels = _numbered_images(30)

    def first_epoch_order(seed):
        dataset = make_dataset(images, labels, 8, shuffle=True, seed=seed)
        batches = list(dataset.as_numpy_iterator())
        order = np.concatenate([batch_images[:, 0, 1, 0] for batch_images, _ in batches])
        batch_labels = np.concatenate([batch_labels for _, batch_labels in batches])
        return order.astype(int), batch_labels

    order, shuffled_labels = first_epoch_order(seed=11)
    again, _ = first_epoch_order(seed=11)

    np.testing.assert_array_equal(order, again)
    assert sorted(order.tolist()) == list(range(30))
    assert order.tolist() != list(range(30)), "shuffle=True must change the order"
    np.testing.assert_array_equal(shuffled_labels, order % 10)


def test_scale_preprocessing_layer_equals_scale_pixels_exactly():
    every_value = np.arange(256, dtype=np.uint8)
    images = np.stack([np.roll(every_value, shift)[:, None].repeat(4, axis=1).reshape(32, 32)
                       for shift in (0, 85, 170)], axis=-1)[None]

    layer_output = np.asarray(preprocessing_layer("scale")(images.astype(np.float32)))
    scaled = scale_pixels(images)

    assert scaled.dtype == np.float32 and layer_output.dtype == np.float32
    np.testing.assert_array_equal(layer_output, scaled)
    # Both are x / 255 up to float32 rounding, with 0 and 255 mapped exactly to 0 and 1.
    np.testing.assert_allclose(scaled, images / 255.0, rtol=1e-7, atol=0)
    assert scaled.min() == 0.0 and scaled.max() == 1.0


def test_standardize_preprocessing_gives_zero_mean_unit_std_per_channel(tiny_arrays):
    (x_train, _), _ = tiny_arrays
    # Give the channels different statistics, so a global (not per-channel) one would fail.
    images = (x_train.astype(np.float32) * np.array([0.2, 0.6, 1.0], np.float32)
              + np.array([10.0, 50.0, 0.0], np.float32)).astype(np.uint8)

    layer = preprocessing_layer("standardize", images)
    output = np.asarray(layer(images.astype(np.float32))).reshape(-1, 3)

    np.testing.assert_allclose(output.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(output.std(axis=0), 1.0, atol=1e-3)


def test_channel_statistics_are_per_channel_mean_and_std(tiny_arrays):
    (x_train, _), _ = tiny_arrays

    mean, std = channel_statistics(x_train)

    assert mean.shape == (3,) and mean.dtype == np.float32
    np.testing.assert_allclose(mean, x_train.reshape(-1, 3).mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(std, x_train.reshape(-1, 3).std(axis=0), rtol=1e-6)


def test_standardize_without_training_images_raises():
    with pytest.raises(ValueError, match="needs the training images"):
        preprocessing_layer("standardize")


def test_unknown_preprocessing_mode_names_the_valid_choices():
    with pytest.raises(ValueError, match="'whiten'.*valid choices: scale, standardize"):
        preprocessing_layer("whiten")


# --- Bad input --------------------------------------------------------------------------


def test_unknown_source_path(tmp_path, data_cache_dir):
    missing = tmp_path / "no-such-cifar.tar.gz"
    error = expect_load_failure(missing, "does not exist", data_cache_dir)
    assert str(missing) in str(error)
    assert isinstance(error, ValueError)


def test_folder_with_no_known_layout(tmp_path, data_cache_dir):
    folder = tmp_path / "holiday-photos"
    folder.mkdir()
    (folder / "notes.txt").write_text("not CIFAR-10")

    expect_load_failure(folder, "holds no CIFAR-10 layout", data_cache_dir)


def test_truncated_archive(make_cifar_fixture, tmp_path, data_cache_dir):
    content = make_cifar_fixture("python", "tar.gz").read_bytes()
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(content[: len(content) // 2])

    expect_load_failure(truncated, "truncated or corrupt", data_cache_dir)


def test_file_of_random_bytes(tmp_path, data_cache_dir):
    random_file = tmp_path / "cifar.tar.gz"
    random_file.write_bytes(np.random.default_rng(0).bytes(100_000))

    expect_load_failure(random_file, "is not a readable tar archive", data_cache_dir)


def test_official_archive_name_with_the_wrong_checksum(make_cifar_fixture, tmp_path,
                                                       data_cache_dir):
    impostor = tmp_path / "cifar-10-python.tar.gz"
    shutil.copyfile(make_cifar_fixture("python", "tar.gz"), impostor)

    error = expect_load_failure(impostor, "fails its checksum", data_cache_dir)
    assert data_sources.KNOWN_ARCHIVE_SHA256["cifar-10-python.tar.gz"] in str(error)


def test_explicit_sha256_mismatch(make_cifar_fixture, tiny_arrays, data_cache_dir):
    archive = make_cifar_fixture("binary", "tar.gz")

    expect_load_failure(archive, "fails its checksum", data_cache_dir, sha256="0" * 64)
    # The control: the right sum (in either case) loads.
    assert_arrays_equal(load_cifar10(archive, sha256=file_sha256(archive).upper()), tiny_arrays)


def test_sha256_with_a_folder_source(make_cifar_fixture, data_cache_dir):
    folder = make_cifar_fixture("binary", "folder")
    expect_load_failure(folder, "can only check an archive", data_cache_dir, sha256="0" * 64)


def test_image_folder_missing_a_class(copy_cifar_fixture, data_cache_dir):
    source = copy_cifar_fixture("image_folder", "folder")
    shutil.rmtree(source / "train" / "dog")

    expect_load_failure(source, "wrong class folders.*missing dog", data_cache_dir)


def test_image_folder_with_an_extra_class(copy_cifar_fixture, cifar_encoders, tiny_arrays,
                                          data_cache_dir):
    source = copy_cifar_fixture("image_folder", "folder")
    (source / "train" / "unicorn").mkdir()
    (source / "train" / "unicorn" / "00000.png").write_bytes(
        cifar_encoders.image_bytes(tiny_arrays[0][0][0], "png"))

    expect_load_failure(source, "wrong class folders.*unexpected unicorn", data_cache_dir)


def test_unreadable_image(copy_cifar_fixture, data_cache_dir):
    source = copy_cifar_fixture("image_folder", "folder")
    (source / "train" / "cat" / "broken.png").write_bytes(np.random.default_rng(1).bytes(500))

    expect_load_failure(source, "broken.png cannot be decoded as an image", data_cache_dir)


def test_image_of_the_wrong_size(copy_cifar_fixture, cifar_encoders, data_cache_dir):
    source = copy_cifar_fixture("image_folder", "folder")
    large = np.zeros((40, 40, 3), dtype=np.uint8)
    (source / "test" / "ship" / "large.png").write_bytes(cifar_encoders.image_bytes(large, "png"))

    expect_load_failure(source, "large.png is 40x40 pixels", data_cache_dir)


def test_image_in_an_unsupported_format(copy_cifar_fixture, data_cache_dir):
    source = copy_cifar_fixture("image_folder", "folder")
    Image.new("RGB", (32, 32)).save(source / "train" / "frog" / "disguised.png", format="GIF")

    expect_load_failure(source, "disguised.png is a GIF image", data_cache_dir)


def test_non_image_file_in_a_class_folder(copy_cifar_fixture, data_cache_dir):
    source = copy_cifar_fixture("image_folder", "folder")
    (source / "train" / "horse" / "labels.csv").write_text("file,label\n")

    expect_load_failure(source, "labels.csv is not an image", data_cache_dir)


class _RunsCode:
    """Pickles to a call of ``function(argument)``, as a malicious batch would."""

    def __init__(self, function, argument):
        self.function, self.argument = function, argument

    def __reduce__(self):
        return self.function, (self.argument,)


def _code_running_batch(marker, runner: str) -> bytes:
    """A python batch whose unpickling creates ``marker`` through os.system or exec."""
    if runner == "os.system":
        payload = _RunsCode(os.system, f"touch {shlex.quote(str(marker))}")
    else:
        payload = _RunsCode(builtins.exec, f"open({str(marker)!r}, 'w').close()")
    return pickle.dumps({b"data": payload, b"labels": [0]}, protocol=2)


@pytest.mark.parametrize("runner", ["os.system", "builtins.exec"])
def test_pickle_that_runs_code_is_refused_without_running_it(copy_cifar_fixture, tmp_path,
                                                             data_cache_dir, runner):
    # The premise: the payload does run code when unpickled normally.
    control_marker = tmp_path / "control-marker"
    pickle.loads(_code_running_batch(control_marker, runner))
    assert control_marker.exists()

    marker = tmp_path / "pwned-marker"
    source = copy_cifar_fixture("python", "folder")
    (source / "cifar-10-batches-py" / "data_batch_3").write_bytes(
        _code_running_batch(marker, runner))

    # Protocol 2 names globals the Python 2 way: posix.system, __builtin__.exec.
    expected_global = "posix.system" if runner == "os.system" else "__builtin__.exec"
    expect_load_failure(source, f"asks for {expected_global}, .*refusing to load it",
                        data_cache_dir)
    assert not marker.exists()


def _archive_with_extra_member(tmp_path, make_cifar_fixture, member: tarfile.TarInfo,
                               content: bytes = b"") -> os.PathLike:
    """A valid python-layout .tar.gz with one hostile member appended."""
    archive = tmp_path / "hostile.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, file_content in make_cifar_fixture.files("python"):
            info = tarfile.TarInfo(name)
            info.size = len(file_content)
            tar.addfile(info, io.BytesIO(file_content))
        member.size = len(content) if member.isfile() else 0
        tar.addfile(member, io.BytesIO(content) if member.isfile() else None)
    return archive


def test_tar_member_with_dot_dot_in_its_path(make_cifar_fixture, tmp_path, data_cache_dir):
    member = tarfile.TarInfo("cifar-10-batches-py/../../escaped.txt")
    archive = _archive_with_extra_member(tmp_path, make_cifar_fixture, member, b"gotcha")

    expect_load_failure(archive, "escapes its folder with '..'", data_cache_dir)
    assert not (tmp_path.parent / "escaped.txt").exists()


def test_tar_member_with_an_absolute_path(make_cifar_fixture, tmp_path, data_cache_dir):
    target = tmp_path / "absolute-target.txt"
    member = tarfile.TarInfo(str(target))
    archive = _archive_with_extra_member(tmp_path, make_cifar_fixture, member, b"gotcha")

    expect_load_failure(archive, "has an absolute path", data_cache_dir)
    assert not target.exists()


def test_tar_symlink_member_pointing_outside(make_cifar_fixture, tmp_path, data_cache_dir):
    member = tarfile.TarInfo("cifar-10-batches-py/readme.html")
    member.type = tarfile.SYMTYPE
    member.linkname = "/etc/passwd"
    archive = _archive_with_extra_member(tmp_path, make_cifar_fixture, member)

    expect_load_failure(archive, "is a link \\(to '/etc/passwd'\\)", data_cache_dir)


@pytest.mark.parametrize("member_type", [tarfile.FIFOTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE],
                         ids=["fifo", "character_device", "block_device"])
def test_tar_special_member_is_refused(member_type, make_cifar_fixture, tmp_path,
                                       data_cache_dir):
    member = tarfile.TarInfo("cifar-10-batches-py/special")
    member.type = member_type
    archive = _archive_with_extra_member(tmp_path, make_cifar_fixture, member)

    expect_load_failure(archive, "'cifar-10-batches-py/special' is a device, pipe or other "
                                 "special file", data_cache_dir)


def test_folder_with_a_symlink_to_a_file_outside(copy_cifar_fixture, tmp_path, data_cache_dir):
    source = copy_cifar_fixture("python", "folder")
    batch = source / "cifar-10-batches-py" / "test_batch"
    # The outside file is a valid batch: the refusal is about the link, not the content.
    outside = tmp_path / "outside_test_batch"
    shutil.move(batch, outside)
    batch.symlink_to(outside)

    expect_load_failure(source, "is a link that points outside the folder", data_cache_dir)


def test_folder_with_a_dangling_symlink(copy_cifar_fixture, tmp_path, data_cache_dir):
    source = copy_cifar_fixture("python", "folder")
    (source / "cifar-10-batches-py" / "readme.html").symlink_to(tmp_path / "deleted.html")

    expect_load_failure(source, "points outside the folder", data_cache_dir)


def test_binary_batch_that_is_not_whole_records(copy_cifar_fixture, data_cache_dir):
    source = copy_cifar_fixture("binary", "folder")
    with open(source / "cifar-10-batches-bin" / "data_batch_2.bin", "ab") as stream:
        stream.write(b"\x00" * 100)

    expect_load_failure(source, "data_batch_2.bin has .* bytes, not a whole number of "
                                "3073-byte records", data_cache_dir)


def test_binary_batch_with_a_label_out_of_range(copy_cifar_fixture, data_cache_dir):
    source = copy_cifar_fixture("binary", "folder")
    batch = source / "cifar-10-batches-bin" / "test_batch.bin"
    content = bytearray(batch.read_bytes())
    content[0] = 12
    batch.write_bytes(bytes(content))

    expect_load_failure(source, "labels must be 0..9, found values from 0 to 12", data_cache_dir)
