"""The command line end to end: train, evaluate, predict on your own images, runs, --help.

One tiny run is trained once for the module (1 epoch on 100 fixture images) through
``cli.main``; the in-memory model of that process is kept, so predictions of the saved
model reloaded in a fresh ``python -m cifar_cnn`` process can be compared with it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from cifar_cnn import (cli, evaluate, images, predict, progress, run_catalog, runs,
                       saved_model_evaluation, tensorboard_logging)
from cifar_cnn.cli.runs import format_run_table
from cifar_cnn.config import RunConfig
from cifar_cnn.data import CLASS_NAMES

ERROR_PREFIX = "cifar-cnn predict: error: "
NOTE_PREFIX = "cifar-cnn predict: note: "


def _noise(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    shape = (height, width, channels) if channels > 1 else (height, width)
    return np.random.default_rng([seed, height, width]).integers(0, 256, size=shape,
                                                                  dtype=np.uint8)


def _save(path: Path, pixels: np.ndarray, image_format: str | None = None, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=image_format, **options)
    return path


def _lines(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


@pytest.fixture(scope="module")
def trained_run(image_folder_archive, tmp_path_factory):
    """Train the tiny run through ``cli.main`` once, keeping the in-memory model."""
    root = tmp_path_factory.mktemp("cli")
    in_memory_models = []
    save_model = runs.RunFolder.save_model

    def recording_save_model(self, model):
        in_memory_models.append(model)
        return save_model(self, model)

    output = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        # The autouse cache fixture is per test; a module fixture needs its own isolation.
        patch.setenv("CIFAR_CNN_CACHE_DIR", str(root / "cache"))
        patch.delenv("CIFAR10_SOURCE", raising=False)
        patch.delenv("CIFAR_CNN_QUICK", raising=False)
        patch.setattr(runs.RunFolder, "save_model", recording_save_model)
        with contextlib.redirect_stdout(output):
            exit_code = cli.main(["train", "--data-source", str(image_folder_archive),
                                  "--epochs", "1", "--max-train-examples", "100",
                                  "--max-test-examples", "50",
                                  "--output-dir", str(root / "runs"), "--run-name", "r"])
    return SimpleNamespace(exit_code=exit_code, stdout=output.getvalue(),
                           output_dir=root / "runs", folder=root / "runs" / "r",
                           model=in_memory_models[0], data_source=image_folder_archive,
                           metrics=json.loads((root / "runs" / "r" / "metrics.json").read_text()))


@pytest.fixture
def sample_images(tmp_path) -> SimpleNamespace:
    """Images of several sizes and formats, and a folder of more, as a user would have."""
    root = tmp_path / "images"
    square = _noise(32, 32, seed=1)
    files = [
        _save(root / "square.png", square),
        _save(root / "wide.jpg", _noise(60, 100, seed=2), quality=95),
        _save(root / "tall.png", _noise(250, 7, seed=3)),
    ]
    folder = root / "folder"
    _save(folder / "b.bmp", _noise(50, 40, seed=4))
    _save(folder / "a.webp", _noise(64, 64, seed=5), lossless=True)
    _save(folder / "c.gif", _noise(20, 30, seed=6))
    (folder / "notes.txt").write_text("not an image, skipped by its suffix")
    return SimpleNamespace(files=files, folder=folder, square_pixels=square,
                           folder_files=[folder / "a.webp", folder / "b.bmp", folder / "c.gif"])


# ---------------------------------------------------------------- train

def test_train_writes_a_complete_run_with_a_model(trained_run):
    assert trained_run.exit_code == 0
    assert f"run folder: {trained_run.folder}" in trained_run.stdout
    assert f"test accuracy: {trained_run.metrics['test_accuracy']:.4f}" in trained_run.stdout
    assert (trained_run.folder / "model.keras").is_file()
    assert trained_run.metrics["test_examples"] == 50 and trained_run.metrics["epochs"] == 1


@pytest.mark.skipif("tensorboard" not in RunConfig.parameter_names(),
                    reason="RunConfig has no tensorboard field yet")
def test_train_dry_run_prints_the_plan_and_creates_nothing(tmp_path, capsys):
    output = tmp_path / "runs"
    assert cli.main(["train", "--recipe", "airbench", "--epochs", "3", "--data-source", "keras",
                     "--output-dir", str(output), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "Muon on the conv filters, learning rate 0.24" in printed
    assert "linear decay" in printed and "after step 75" in printed  # 3 epochs of 25 steps.
    assert "epoch 1/" not in printed and not output.exists()


@pytest.mark.slow
def test_train_with_tensorboard_writes_logs_in_the_run_folder(image_folder_archive, tmp_path,
                                                              capsys):
    pytest.importorskip("tensorboard")
    exit_code = cli.main(["train", "--data-source", str(image_folder_archive), "--epochs", "1",
                          "--max-train-examples", "100", "--max-test-examples", "50",
                          "--output-dir", str(tmp_path), "--run-name", "tb", "--tensorboard"])
    assert exit_code == 0
    log_dir = tmp_path / "tb" / tensorboard_logging.TENSORBOARD_FOLDER
    assert list((log_dir / "train").glob("events.out.tfevents.*"))
    assert f"tensorboard logs: {log_dir}" in capsys.readouterr().out


def test_tensorboard_callback_writes_per_epoch_event_files(tmp_path):
    pytest.importorskip("tensorboard")
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    features = np.random.default_rng(0).random((16, 4))
    labels = np.arange(16) % 3
    model.fit(features, labels, validation_data=(features, labels), epochs=2, verbose=0,
              callbacks=[tensorboard_logging.tensorboard_callback(tmp_path)])
    log_dir = tensorboard_logging.tensorboard_log_dir(tmp_path)
    assert log_dir == tmp_path / "tensorboard"
    for split in ("train", "validation"):
        assert list((log_dir / split).glob("events.out.tfevents.*")), split


def test_tensorboard_without_its_package_fails_before_training_with_the_fix(monkeypatch,
                                                                             tmp_path):
    monkeypatch.setattr(tensorboard_logging.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match="pip install tensorboard"):
        tensorboard_logging.tensorboard_callback(tmp_path)
    assert not (tmp_path / "tensorboard").exists()


# ---------------------------------------------------------------- evaluate

def test_evaluate_a_run_folder_reuses_its_source_and_reproduces_its_metrics(trained_run, capsys):
    exit_code = cli.main(["evaluate", str(trained_run.folder), "--max-test-examples", "50"])
    out = capsys.readouterr().out
    assert exit_code == 0
    evaluation_folder = trained_run.folder / "evaluation"
    results = json.loads((evaluation_folder / "evaluation.json").read_text())
    # Same model, same recorded source, same seeded subset: the run's own numbers.
    assert results["test_accuracy"] == pytest.approx(trained_run.metrics["test_accuracy"],
                                                     abs=1e-9)
    assert results["test_loss"] == pytest.approx(trained_run.metrics["test_loss"], abs=1e-5)
    assert results["test_examples"] == 50 and results["subset_seed"] == 42
    assert results["data_source"] == str(trained_run.data_source)
    assert sum(map(sum, results["confusion_matrix"])) == 50
    assert tuple(results["per_class_accuracy"]) == CLASS_NAMES
    assert f"test accuracy: {trained_run.metrics['test_accuracy']:.4f}" in out
    for name in CLASS_NAMES:
        assert any(line.split() and line.split()[0] == name for line in out.splitlines()), name
    figure = evaluation_folder / "confusion_matrix.png"
    assert figure.read_bytes()[:4] == b"\x89PNG"
    assert f"confusion matrix: {figure}" in out


def test_evaluate_a_model_file_with_a_given_source_output_and_tta(trained_run, tmp_path,
                                                                  capsys):
    model_file = tmp_path / "copied" / "model.keras"
    model_file.parent.mkdir()
    shutil.copy(trained_run.folder / "model.keras", model_file)
    figure = tmp_path / "report" / "cm.png"
    exit_code = cli.main(["evaluate", str(model_file), "--data-source",
                          str(trained_run.data_source), "--output", str(figure), "--tta", "flip"])
    assert exit_code == 0, capsys.readouterr().err
    results = json.loads((figure.parent / "evaluation.json").read_text())
    assert figure.read_bytes()[:4] == b"\x89PNG"
    assert results["test_time_augmentation"] == "flip" and results["run_folder"] is None
    assert results["test_examples"] == 100  # The whole test split of the fixture.
    assert "test images: 100, flip TTA" in capsys.readouterr().out


def test_evaluate_a_bare_model_without_source_reads_the_environment(trained_run, tmp_path,
                                                                    monkeypatch, capsys):
    model_file = tmp_path / "best-guess.keras"
    shutil.copy(trained_run.folder / "model.keras", model_file)
    monkeypatch.setenv("CIFAR10_SOURCE", str(trained_run.data_source))
    assert cli.main(["evaluate", str(model_file), "--max-test-examples", "20"]) == 0
    # A model not named model.keras gets its own evaluation folder.
    results = json.loads((tmp_path / "evaluation-best-guess" / "evaluation.json").read_text())
    assert results["test_examples"] == 20 and results["run_folder"] is None
    assert "(a stratified subset of 100, seed 42)" in capsys.readouterr().out


def test_evaluate_follows_the_runs_tta_unless_told(trained_run, tmp_path, capsys):
    run_copy = tmp_path / "tta-run"
    run_copy.mkdir()
    shutil.copy(trained_run.folder / "model.keras", run_copy)
    config = json.loads((trained_run.folder / "config.json").read_text())
    (run_copy / "config.json").write_text(json.dumps({**config, "tta": True}))
    results_path = run_copy / "evaluation" / "evaluation.json"
    # The seed recipe has no views of its own, so its tta means the mirror.
    for extra, expected in (([], "flip"), (["--tta", "none"], "none"),
                            (["--tta", "flip_translate"], "flip_translate")):
        assert cli.main(["evaluate", str(run_copy), "--max-test-examples", "20", *extra]) == 0
        assert json.loads(results_path.read_text())["test_time_augmentation"] == expected, extra
    capsys.readouterr()


@pytest.mark.parametrize("extra, message", [
    (["--output", "figure.txt"], "output figure.txt must end in one of .png"),
    (["--data-source", "no/such/archive.tar.gz"], "'no/such/archive.tar.gz' does not exist"),
])
def test_evaluate_bad_options_exit_2_with_one_line(trained_run, tmp_path, monkeypatch, capsys,
                                                   extra, message):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["evaluate", str(trained_run.folder), *extra]) == cli.EXIT_BAD_INPUT
    error = capsys.readouterr().err.strip()
    assert error.startswith("cifar-cnn evaluate: error: ") and "\n" not in error
    assert message in error


def test_evaluate_explains_a_recorded_source_that_moved(trained_run, tmp_path, capsys):
    run_copy = tmp_path / "moved-run"
    run_copy.mkdir()
    shutil.copy(trained_run.folder / "model.keras", run_copy)
    config = json.loads((trained_run.folder / "config.json").read_text())
    (run_copy / "config.json").write_text(json.dumps({**config, "data_source": "gone.tar.gz"}))
    assert cli.main(["evaluate", str(run_copy)]) == cli.EXIT_BAD_INPUT
    error = capsys.readouterr().err.strip()
    assert "'gone.tar.gz' does not exist" in error and "\n" not in error
    assert f"recorded in {run_copy}/config.json; give another data_source (--data-source)" \
        in error


def test_evaluate_saved_model_is_the_library_side_of_the_command(trained_run, tmp_path):
    figure = tmp_path / "library" / "cm.svg"
    progress = []
    report = saved_model_evaluation.evaluate_saved_model(
        trained_run.folder, max_test_examples=50, output=figure, progress=progress.append)
    assert report.evaluation.accuracy == pytest.approx(trained_run.metrics["test_accuracy"],
                                                       abs=1e-9)
    assert report.run_folder == trained_run.folder and report.subset_seed == 42
    assert report.test_examples == 50 and report.is_subset
    assert report.test_time_augmentation == "none"
    assert report.figure_path == figure and figure.read_text().lstrip().startswith("<?xml")
    assert json.loads(report.results_path.read_text())["test_examples"] == 50
    assert progress[0] == f"model: {trained_run.folder / 'model.keras'}"
    assert progress[1].startswith("loading the test split of ")


def test_evaluating_inside_a_run_that_still_trains_is_refused_naming_its_writer(
        trained_run, tmp_path, capsys):
    from cifar_cnn import run_lock

    run_copy = tmp_path / "runs" / "busy"
    # Without what other tests evaluated into the shared run.
    shutil.copytree(trained_run.folder, run_copy, ignore=shutil.ignore_patterns("evaluation*"))
    lock = run_lock.acquire(run_copy, command="cifar-cnn train (a test standing for it)")
    try:
        assert cli.main(["evaluate", str(run_copy / "model.keras")]) == cli.EXIT_BAD_INPUT
        error = capsys.readouterr().err
        assert f"run folder {run_copy} is in use by process {os.getpid()}" in error
        assert "(a test standing for it)" in error and "--output" in error
        assert not (run_copy / "evaluation").exists()  # Nothing written inside it.
        # Elsewhere is fine: the run's own files are only read.
        assert cli.main(["evaluate", str(run_copy), "--max-test-examples", "20",
                         "--output", str(tmp_path / "elsewhere" / "cm.png")]) == 0
    finally:
        lock.release()


def test_evaluate_missing_model_exits_2(tmp_path, capsys):
    assert cli.main(["evaluate", str(tmp_path / "nothing.keras")]) == cli.EXIT_BAD_INPUT
    assert "nothing.keras does not exist" in capsys.readouterr().err


# ---------------------------------------------------------------- predict

@pytest.mark.slow
def test_predict_in_a_fresh_process_matches_the_in_memory_model(trained_run, sample_images,
                                                                 tmp_path):
    json_path, sheet_path = tmp_path / "out" / "predictions.json", tmp_path / "sheet.png"
    arguments = [str(path) for path in sample_images.files] + [str(sample_images.folder)]
    completed = subprocess.run(
        [sys.executable, "-m", "cifar_cnn", "predict", str(trained_run.folder), *arguments,
         "--top-k", "3", "--json", str(json_path), "--contact-sheet", str(sheet_path)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert completed.returncode == 0, completed.stderr
    document = json.loads(json_path.read_text())
    paths = [Path(entry["path"]) for entry in document["images"]]
    # Given files in order, then the folder's images sorted by name; notes.txt skipped.
    assert paths == [*sample_images.files, *sample_images.folder_files]
    assert document["failed"] == []

    pixels = np.stack([images.load_image(path).pixels for path in paths])
    in_memory = evaluate.predict_probabilities(trained_run.model, pixels)
    reloaded = np.array([[entry["probabilities"][name] for name in CLASS_NAMES]
                         for entry in document["images"]])
    np.testing.assert_allclose(reloaded, in_memory, atol=1e-5, rtol=0)
    np.testing.assert_allclose(reloaded.sum(axis=1), 1.0, atol=1e-5)

    prediction_lines = {line.split(": ", 1)[0]: line.split(": ", 1)[1]
                        for line in completed.stdout.splitlines() if ": " in line}
    for entry, probabilities in zip(document["images"], reloaded):
        ranked = [CLASS_NAMES[index] for index in np.argsort(-probabilities, kind="stable")[:3]]
        assert [item["class"] for item in entry["top_k"]] == ranked
        shown = prediction_lines[entry["path"]]
        assert [part.split()[0] for part in shown.split(", ")] == ranked
        assert shown.split(", ")[0].endswith(f"{entry['top_k'][0]['probability']:.1%}")
    assert sheet_path.read_bytes()[:4] == b"\x89PNG"
    assert f"contact sheet: {sheet_path}" in completed.stdout


@pytest.mark.slow
def test_a_model_with_custom_layers_reloads_in_a_fresh_process(tmp_path):
    # airbench's whitening layer is this package's own class: a fresh process must know it.
    from cifar_cnn.models import airbench_net

    model = airbench_net(train_images=_noise(64, 64)[None].repeat(4, axis=0)[:, :32, :32],
                         widths=(8, 8, 8))
    model_path = tmp_path / "airbench.keras"
    model.save(model_path)
    image = _save(tmp_path / "photo.jpg", _noise(48, 80, seed=9), quality=90)
    json_path = tmp_path / "predictions.json"
    completed = subprocess.run(
        [sys.executable, "-m", "cifar_cnn", "predict", str(model_path), str(image),
         "--json", str(json_path)],
        capture_output=True, text=True, timeout=300, env={**os.environ,
                                                          "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert completed.returncode == 0, completed.stderr
    reloaded = json.loads(json_path.read_text())["images"][0]["probabilities"]
    expected = evaluate.predict_probabilities(model, images.load_image(image).pixels[None])[0]
    np.testing.assert_allclose([reloaded[name] for name in CLASS_NAMES], expected, atol=1e-5,
                               rtol=0)


def test_predict_reports_each_bad_input_and_still_classifies_the_others(trained_run, tmp_path,
                                                                        capsys):
    good = _save(tmp_path / "good.png", _noise(40, 30))
    gray = _save(tmp_path / "gray.png", _noise(32, 32, channels=1))
    rgba_pixels = _noise(32, 32, channels=4)
    rgba_pixels[:8, :, 3] = 0
    rgba = _save(tmp_path / "rgba.png", rgba_pixels)
    missing = tmp_path / "missing.jpg"
    not_an_image = tmp_path / "not-an-image.png"
    not_an_image.write_bytes(b"this is text, not a PNG")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:200])
    empty_folder = tmp_path / "empty"
    empty_folder.mkdir()
    exit_code = cli.main(["predict", str(trained_run.folder), str(good), str(missing),
                          str(not_an_image), str(truncated), str(empty_folder), str(gray),
                          str(rgba)])
    out, err = capsys.readouterr()
    assert exit_code == cli.EXIT_SOME_FAILED
    errors = _lines(err, ERROR_PREFIX)
    for bad, reason in ((missing, "does not exist"),
                        (not_an_image, "cannot be decoded as an image"),
                        (truncated, "cannot be decoded as an image"),
                        (empty_folder, "is a folder with no images")):
        naming = [line for line in errors if f"{bad} " in line or f"{bad}:" in line]
        assert len(naming) == 1 and reason in naming[0], (bad, errors)
    assert errors[-1] == f"{ERROR_PREFIX}4 input(s) failed; 3 image(s) classified."
    assert [line.split(": ", 1)[0] for line in out.splitlines()] == [str(good), str(gray),
                                                                    str(rgba)]
    notes = _lines(err, NOTE_PREFIX)
    assert any(str(gray) in line and "grayscale" in line for line in notes), notes
    assert any(str(rgba) in line and "composited on a white background" in line
               for line in notes), notes


def _unusable_model(kind: str, folder: Path) -> Path:
    """Make one kind of bad model argument inside ``folder`` and return its path."""
    if kind == "missing":
        return folder / "absent.keras"
    if kind == "not a zip":
        (folder / "model.keras").write_text("not a zip archive")
        return folder / "model.keras"
    if kind == "wrong suffix":
        (folder / "weights.txt").write_text("x")
        return folder / "weights.txt"
    if kind == "zip without a model":
        with zipfile.ZipFile(folder / "junk.keras", "w") as archive:
            archive.writestr("readme.txt", "a zip, but not a Keras model")
        return folder / "junk.keras"
    if kind == "run folder without a model":
        (folder / "config.json").write_text("{}")
        return folder
    raise ValueError(f"unknown kind {kind!r}")


@pytest.mark.parametrize("kind, message", [
    ("missing", "does not exist"),
    ("not a zip", "is not a Keras model: a .keras file is a zip archive"),
    ("wrong suffix", "is not a Keras model file; valid: a .keras file"),
    ("zip without a model", "holds 'readme.txt', which a Keras model does not"),
    ("run folder without a model", "holds no model.keras; the run is not complete"),
])
def test_predict_with_an_unusable_model_exits_2_with_one_line(tmp_path, capsys, kind, message):
    image = _save(tmp_path / "images" / "fine.png", _noise(32, 32))
    model_folder = tmp_path / "models"
    model_folder.mkdir()
    model_path = _unusable_model(kind, model_folder)
    assert cli.main(["predict", str(model_path), str(image)]) == cli.EXIT_BAD_INPUT
    out, err = capsys.readouterr()
    assert out == ""  # Nothing is classified without a model.
    error = err.strip()
    assert error.startswith(ERROR_PREFIX) and "\n" not in error
    assert str(model_path) in error and message in error


def test_a_model_that_does_not_take_cifar_images_is_refused(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    model.save(tmp_path / "mnist.keras")
    with pytest.raises(predict.ModelLoadError, match=r"takes inputs of shape \(28, 28, 1\)"):
        predict.load_model(tmp_path / "mnist.keras")


def test_predict_top_k_out_of_range_is_a_usage_error(trained_run, sample_images, capsys):
    with pytest.raises(SystemExit) as raised:
        cli.main(["predict", str(trained_run.folder), str(sample_images.files[0]), "--top-k",
                  "0"])
    assert raised.value.code == 2
    assert "must be 1 or more" in capsys.readouterr().err
    assert cli.main(["predict", str(trained_run.folder), str(sample_images.files[0]),
                     "--top-k", "11"]) == cli.EXIT_BAD_INPUT
    assert "--top-k must be between 1 and 10" in capsys.readouterr().err


def test_predict_top_k_10_lists_every_class_once(trained_run, sample_images, capsys):
    assert cli.main(["predict", str(trained_run.folder), str(sample_images.files[1]),
                     "--top-k", "10"]) == 0
    shown = capsys.readouterr().out.strip().split(": ", 1)[1].split(", ")
    assert sorted(part.split()[0] for part in shown) == sorted(CLASS_NAMES)
    percentages = [float(part.split()[1].rstrip("%")) for part in shown]
    assert percentages == sorted(percentages, reverse=True)
    assert sum(percentages) == pytest.approx(100.0, abs=0.6)


# ---------------------------------------------------------------- image loading

def test_a_32x32_image_reaches_the_model_pixel_for_pixel(sample_images):
    loaded = images.load_image(sample_images.files[0])
    np.testing.assert_array_equal(loaded.pixels, sample_images.square_pixels)
    assert loaded.notes == [] and loaded.original_size == (32, 32)


@pytest.mark.parametrize("name, size, image_format", [
    ("wide.jpg", (100, 60), "JPEG"), ("tall.png", (7, 250), "PNG"),
    ("big.tiff", (640, 480), "TIFF"), ("photo.webp", (45, 45), "WEBP"),
    ("paint.bmp", (33, 31), "BMP"),
])
def test_any_size_and_format_becomes_32x32_rgb(tmp_path, name, size, image_format):
    path = _save(tmp_path / name, _noise(size[1], size[0]), image_format)
    loaded = images.load_image(path)
    assert loaded.pixels.shape == (32, 32, 3) and loaded.pixels.dtype == np.uint8
    assert loaded.original_size == size and loaded.notes == []


def test_stretching_uses_lanczos_and_center_crop_keeps_the_middle(tmp_path):
    stripes = np.zeros((32, 96, 3), dtype=np.uint8)
    stripes[:, :32, 0] = 255  # red | green | blue thirds
    stripes[:, 32:64, 1] = 255
    stripes[:, 64:, 2] = 255
    path = _save(tmp_path / "stripes.png", stripes)
    cropped = images.load_image(path, resize="center-crop").pixels
    np.testing.assert_array_equal(cropped, np.broadcast_to([0, 255, 0], (32, 32, 3)))
    stretched = images.load_image(path, resize="stretch").pixels
    expected = np.asarray(Image.fromarray(stripes).resize((32, 32), Image.Resampling.LANCZOS))
    np.testing.assert_array_equal(stretched, expected)
    assert stretched[:, 0, 0] == pytest.approx(255, abs=2) and stretched[:, -1, 2].min() > 250
    with pytest.raises(ValueError, match="valid choices: stretch, center-crop"):
        images.load_image(path, resize="squash")


def test_grayscale_is_copied_to_three_channels_with_a_note(tmp_path):
    gray = _noise(32, 32, channels=1)
    loaded = images.load_image(_save(tmp_path / "gray.png", gray))
    for channel in range(3):
        np.testing.assert_array_equal(loaded.pixels[..., channel], gray)
    assert loaded.notes == ["grayscale: its gray level was copied to R, G and B."]


def test_16_bit_grayscale_is_scaled_not_clipped(tmp_path):
    values = np.full((32, 32), 128 * 257, dtype=np.uint16)  # Mid gray in 16 bits.
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    loaded = images.load_image(path)
    assert np.all(loaded.pixels == 128)
    assert "16-bit grayscale" in loaded.notes[0]


def test_transparent_pixels_are_composited_on_white(tmp_path):
    pixels = _noise(32, 32, channels=4)
    pixels[..., 3] = 255
    pixels[:10, :, 3] = 0
    loaded = images.load_image(_save(tmp_path / "cutout.png", pixels))
    assert np.all(loaded.pixels[:10] == 255)
    np.testing.assert_array_equal(loaded.pixels[10:], pixels[10:, :, :3])
    assert loaded.notes == ["RGBA with transparent pixels: composited on a white background."]


def test_an_opaque_rgba_image_keeps_its_colours(tmp_path):
    pixels = _noise(32, 32, channels=4)
    pixels[..., 3] = 255
    loaded = images.load_image(_save(tmp_path / "opaque.png", pixels))
    np.testing.assert_array_equal(loaded.pixels, pixels[..., :3])
    assert loaded.notes == ["RGBA with an alpha channel but no transparent pixel: alpha dropped."]


def test_cmyk_animated_and_rotated_images_are_handled(tmp_path):
    cmyk = Image.fromarray(_noise(40, 40, channels=4), mode="CMYK")
    cmyk.save(tmp_path / "print.jpg")
    assert images.load_image(tmp_path / "print.jpg").notes == ["CMYK image: converted to RGB."]

    first, second = (Image.new("RGB", (32, 32), color) for color in ((255, 0, 0), (0, 0, 255)))
    first.save(tmp_path / "blink.gif", save_all=True, append_images=[second], duration=100)
    animated = images.load_image(tmp_path / "blink.gif")
    assert animated.notes == ["animated (2 frames): the first frame is used."]
    assert np.all(animated.pixels == [255, 0, 0])

    # A phone photo stored sideways: EXIF orientation 6 means "rotate 90 degrees clockwise".
    sideways = np.zeros((32, 64, 3), dtype=np.uint8)
    sideways[:, 32:] = 255  # left half black, right half white
    image = Image.fromarray(sideways)
    exif = image.getexif()
    exif[0x0112] = 6
    image.save(tmp_path / "phone.jpg", quality=100, exif=exif.tobytes())
    upright = images.load_image(tmp_path / "phone.jpg").pixels
    assert upright[:12].mean() < 10 and upright[-12:].mean() > 245  # black on top


def test_undecodable_images_raise_a_clear_error(tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(images.ImageLoadError, match=r"broken\.jpg cannot be decoded as an image"):
        images.load_image(broken)
    with pytest.raises(images.ImageLoadError, match=r"nowhere\.png does not exist"):
        images.load_image(tmp_path / "nowhere.png")


def test_folders_expand_to_their_images_in_name_order(tmp_path):
    folder = tmp_path / "photos"
    for name in ("b.png", "a.JPG", ".hidden.png", "sub/c.png"):
        _save(folder / name, _noise(8, 8), "PNG")
    (folder / "notes.txt").write_text("x")
    odd = _save(tmp_path / "image.data", _noise(8, 8), "PNG")
    empty = tmp_path / "empty"
    empty.mkdir()
    paths, problems = images.collect_image_paths([folder, odd, folder / "b.png", empty,
                                                   tmp_path / "gone.png"])
    # Named files are tried whatever their suffix; a path given twice is used once.
    assert paths == [folder / "a.JPG", folder / "b.png", odd]
    assert problems == [
        (empty, f"{empty} is a folder with no images in it (looked for files ending in .png, "
                ".jpg, .bmp, .gif, .webp ...; subfolders are not searched)."),
        (tmp_path / "gone.png", f"{tmp_path / 'gone.png'} does not exist.")]
    assert {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif"} <= images.openable_suffixes()


def test_top_k_orders_by_probability_and_checks_k():
    probabilities = np.array([0.1, 0.5, 0.0, 0.4] + [0.0] * 6)
    assert predict.top_k(probabilities, 2, CLASS_NAMES) == [("automobile", 0.5), ("cat", 0.4)]
    with pytest.raises(ValueError, match="between 1 and 10"):
        predict.top_k(probabilities, 0, CLASS_NAMES)


def test_progress_counter_draws_only_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal, pipe = Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        counter = progress.ProgressCounter("loading images", 2, stream=stream)
        counter.update(1)
        counter.update(2)
    assert terminal.getvalue() == "\rloading images: 1/2\rloading images: 2/2\n"
    assert pipe.getvalue() == ""


# ---------------------------------------------------------------- runs

def test_runs_lists_every_run_sorted_with_status_and_accuracy(trained_run, tmp_path, capsys):
    output_dir = tmp_path / "runs"
    shutil.copytree(trained_run.folder, output_dir / "r",
                    ignore=shutil.ignore_patterns("*.keras", "figures", "evaluation*"))
    interrupted = output_dir / "a-interrupted"
    interrupted.mkdir()
    (interrupted / "config.json").write_text(json.dumps({"recipe": "seed", "epochs": 5}))
    (interrupted / "history.json").write_text(json.dumps([{"epoch": 1, "seconds": 2.0},
                                                          {"epoch": 2, "seconds": 3.0}]))
    broken = output_dir / "z-broken"
    broken.mkdir()
    (broken / "config.json").write_text("{ half written")
    (output_dir / "not-a-run").mkdir()  # No run files: not listed.

    assert cli.main(["runs", str(output_dir)]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].split() == ["name", "recipe", "epochs", "test", "accuracy", "status",
                                "train", "seconds"]
    assert [line.split()[0] for line in lines[1:]] == ["a-interrupted", "r", "z-broken"]
    assert lines[1].split() == ["a-interrupted", "seed", "2/5", "-", "interrupted", "5.0"]
    metrics = trained_run.metrics
    assert lines[2].split() == ["r", "seed", "1", f"{metrics['test_accuracy']:.4f}", "complete",
                                f"{metrics['train_seconds']:.1f}"]
    assert lines[3].split() == ["z-broken", "-", "-", "-", "unreadable", "-"]
    assert "z-broken is unreadable" in err


def test_runs_in_a_subprocess_and_on_empty_or_missing_folders(trained_run, tmp_path, capsys):
    completed = subprocess.run([sys.executable, "-m", "cifar_cnn", "runs",
                                str(trained_run.output_dir)],
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines()[1].split()[:5] == [
        "r", "seed", "1", f"{trained_run.metrics['test_accuracy']:.4f}", "complete"]
    assert cli.main(["runs", str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"no run folders in {tmp_path}\n"
    assert cli.main(["runs", str(tmp_path / "nowhere")]) == cli.EXIT_BAD_INPUT
    assert "nowhere is not a folder of runs" in capsys.readouterr().err


def test_run_table_formats_missing_values_as_dashes(tmp_path):
    (tmp_path / "fresh").mkdir()
    (tmp_path / "fresh" / "config.json").write_text("{}")
    (tmp_path / "fresh" / "run.json").write_text(json.dumps({"status": "running"}))
    summaries = run_catalog.list_runs(tmp_path)
    assert [(summary.name, summary.status) for summary in summaries] == [("fresh", "interrupted")]
    assert format_run_table(summaries).splitlines()[1].split() == ["fresh", "-", "-", "-",
                                                                   "interrupted", "-"]


# ---------------------------------------------------------------- help

@pytest.mark.parametrize("command", [[], ["train"], ["notebook"], ["evaluate"], ["predict"],
                                     ["runs"], ["sweep"], ["compare"]])
def test_help_exits_0_for_every_command(command, capsys):
    with pytest.raises(SystemExit) as raised:
        cli.main([*command, "--help"])
    assert raised.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: cifar-cnn {command[0]}" if command else "usage: cifar-cnn")
    if command in (["evaluate"], ["predict"], ["runs"]):
        assert "example:" in out and "exit codes" in out


_HEAVY_MODULES = ("tensorflow", "keras", "matplotlib", "yaml", "papermill")

# Runs in a fresh interpreter: whatever the test process imported must not count.
_LIGHT_COMMANDS_PROGRAM = """
import contextlib, io, sys
from cifar_cnn import cli

def quietly(argv):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            return cli.main(argv)
        except SystemExit as done:
            return done.code

assert quietly(["--help"]) == 0
for command in ("train", "notebook", "evaluate", "predict", "runs", "sweep", "compare"):
    assert quietly([command, "--help"]) == 0, command
assert quietly(["runs", sys.argv[1]]) == 0
print(" ".join(sorted(name for name in {heavy} if name in sys.modules)) or "none")
"""


def test_help_and_runs_import_no_heavy_library(tmp_path):
    run_folder = tmp_path / "runs" / "fake"
    run_folder.mkdir(parents=True)
    (run_folder / "config.json").write_text(json.dumps({"recipe": "seed", "epochs": 2}))
    (run_folder / "history.json").write_text(json.dumps([{"epoch": 1, "seconds": 1.0}]))
    completed = subprocess.run(
        [sys.executable, "-c", _LIGHT_COMMANDS_PROGRAM.format(heavy=_HEAVY_MODULES),
         str(tmp_path / "runs")], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    # Building the parser or listing runs must stay instant: no TensorFlow, no matplotlib.
    assert completed.stdout.split() == ["none"]


def test_predict_help_documents_the_image_policy(capsys):
    with pytest.raises(SystemExit):
        cli.main(["predict", "--help"])
    out = capsys.readouterr().out
    for phrase in ("Lanczos", "composited on white", "raw 0-255 pixels", "first frame",
                   "1  some inputs failed", "2  bad usage"):
        assert phrase in out, phrase


def test_predict_without_images_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as raised:
        cli.main(["predict", "model.keras"])
    assert raised.value.code == 2
    assert "IMAGE_OR_FOLDER" in capsys.readouterr().err
