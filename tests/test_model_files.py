"""Model files from elsewhere: checked before Keras opens them, loaded within a memory budget.

Each hostile file is built here from a real saved model, small on disk; the peak-memory
cases run ``cifar-cnn predict`` in a fresh interpreter and read its own peak (VmHWM).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from cifar_cnn import model_files, predict

REPOSITORY = Path(__file__).resolve().parent.parent
MAX_PEAK_MEMORY_MB = 800
ZERO_CHUNK = bytes(16 << 20)

PREDICT_AND_MEASURE = """
import json, sys
from cifar_cnn import cli
code = cli.main(["predict", *sys.argv[1:]])
status = open("/proc/self/status").read()
print(json.dumps({"exit": code, "peak_mb": int(status.split("VmHWM:")[1].split()[0]) / 1024}))
"""


def predict_in_fresh_process(*arguments) -> tuple[dict, str]:
    """Run ``cifar-cnn predict`` in a new interpreter: its outcome, its peak memory, stderr."""
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY), "TF_CPP_MIN_LOG_LEVEL": "3"}
    completed = subprocess.run([sys.executable, "-c", PREDICT_AND_MEASURE, *map(str, arguments)],
                               capture_output=True, text=True, timeout=300, env=environment,
                               cwd=REPOSITORY)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1]), completed.stderr


def rewrite(source: Path, destination: Path, replace=None, add=()) -> Path:
    """Copy a .keras archive, replacing members (name -> bytes or None to drop) and adding some."""
    replace = replace or {}
    with zipfile.ZipFile(source) as original, \
            zipfile.ZipFile(destination, "w", zipfile.ZIP_DEFLATED) as copy:
        for member in original.infolist():
            if member.filename in replace:
                if replace[member.filename] is not None:
                    copy.writestr(member.filename, replace[member.filename])
            else:
                copy.writestr(member.filename, original.read(member))
        for name, content in add:
            copy.writestr(name, content)
    return destination


def zip_bomb_config(source: Path, destination: Path, size: int) -> Path:
    """A copy whose config.json is ``size`` zero bytes, written in chunks (about 1 MB on disk)."""
    with zipfile.ZipFile(source) as original, \
            zipfile.ZipFile(destination, "w", zipfile.ZIP_DEFLATED) as copy:
        for member in original.infolist():
            if member.filename == "config.json":
                with copy.open("config.json", "w", force_zip64=True) as stream:
                    for start in range(0, size, len(ZERO_CHUNK)):
                        stream.write(ZERO_CHUNK[: size - start])
            else:
                copy.writestr(member.filename, original.read(member))
    return destination


def lie_about_size(path: Path, name: str, declared: int) -> Path:
    """Patch the central directory so that ``name`` declares ``declared`` bytes inflated."""
    content = bytearray(path.read_bytes())
    entry = content.find(b"PK\x01\x02")
    while entry != -1:
        name_length = int.from_bytes(content[entry + 28:entry + 30], "little")
        if content[entry + 46:entry + 46 + name_length] == name.encode():
            content[entry + 24:entry + 28] = declared.to_bytes(4, "little")
            break
        entry = content.find(b"PK\x01\x02", entry + 4)
    path.write_bytes(bytes(content))
    return path


def weights_with(path: Path, dataset) -> bytes:
    """An HDF5 weights file holding one dataset made by ``dataset(h5py.File)``."""
    with h5py.File(path, "w") as handle:
        dataset(handle)
    return path.read_bytes()


def test_a_model_keras_saved_passes_and_loads(small_keras_model):
    assert model_files.check_model_file(small_keras_model) > 0
    loaded = predict.load_model(small_keras_model)
    assert loaded.num_classes == 10


def test_a_legacy_h5_model_passes_and_loads(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])
    model.save(tmp_path / "legacy.h5")
    assert predict.load_model(tmp_path / "legacy.h5").num_classes == 10


def _hostile(kind: str, small_keras_model: Path, folder: Path) -> Path:
    target = folder / f"{kind.replace(' ', '-')}.keras"
    if kind == "odd member":
        return rewrite(small_keras_model, target, add=[("../escape.py", b"print('hi')")])
    if kind == "nested archive":
        return rewrite(small_keras_model, target, add=[("assets/inner.zip", b"PK\x05\x06" + bytes(18))])
    if kind == "too many members":
        return rewrite(small_keras_model, target,
                       add=[(f"assets/{index}.txt", b"x") for index in range(100)])
    if kind == "no weights":
        return rewrite(small_keras_model, target, replace={"model.weights.h5": None})
    if kind == "config lies about its size":
        with zipfile.ZipFile(small_keras_model) as original:
            config = json.loads(original.read("config.json"))
        config["padding"] = " " * 200_000
        rewrite(small_keras_model, target, replace={"config.json": json.dumps(config)})
        return lie_about_size(target, "config.json", 1000)
    if kind == "config not json":
        return rewrite(small_keras_model, target, replace={"config.json": b"[" * 100_000})
    if kind == "compressed weights dataset":
        bomb = weights_with(folder / "bomb.h5", lambda handle: handle.create_dataset(
            "layers/dense/vars/0", shape=(250_000_000,), dtype="f4", chunks=(1_000_000,),
            compression="gzip"))
        return rewrite(small_keras_model, target, replace={"model.weights.h5": bomb})
    if kind == "string weights":
        strings = weights_with(folder / "strings.h5", lambda handle: handle.create_dataset(
            "layers/dense/vars/0", data=np.array([b"a" * 100] * 10, dtype=object),
            dtype=h5py.string_dtype()))
        return rewrite(small_keras_model, target, replace={"model.weights.h5": strings})
    if kind == "weights not hdf5":
        return rewrite(small_keras_model, target, replace={"model.weights.h5": b"\x89HDF\r\n\x1a\n"
                                                     + bytes(1000)})
    raise ValueError(kind)


@pytest.mark.parametrize("kind, message", [
    ("odd member", "holds '../escape.py', which a Keras model does not"),
    ("nested archive", "assets/inner.zip is not an asset a Keras model holds"),
    ("too many members", "holds 103 files; a .keras model holds a few (at most 64)"),
    ("no weights", "holds no model.weights.h5 or model.weights.npz"),
    ("config lies about its size", "config.json"),
    ("config not json", "config.json is not valid JSON"),
    ("compressed weights dataset", "is stored compressed or in chunks"),
    ("string weights", "is not numeric"),
    ("weights not hdf5", "its weights cannot be read as HDF5"),
])
def test_hostile_model_files_are_refused_before_keras_opens_them(
        small_keras_model, tmp_path, kind, message):
    path = _hostile(kind, small_keras_model, tmp_path)
    with pytest.raises(model_files.ModelFileError) as refused:
        model_files.check_model_file(path)
    assert message in str(refused.value) and str(path) in str(refused.value)
    assert "\n" not in str(refused.value)
    with pytest.raises(predict.ModelLoadError, match="^" + str(path).replace(".", r"\.")):
        predict.load_model(path)


def test_a_legacy_h5_with_a_compressed_bomb_is_refused(tmp_path):
    weights_with(tmp_path / "bomb.h5", lambda handle: handle.create_dataset(
        "model_weights/dense/kernel", shape=(250_000_000,), dtype="f4", chunks=(1_000_000,),
        compression="gzip"))
    with pytest.raises(predict.ModelLoadError, match="stored compressed or in chunks"):
        predict.load_model(tmp_path / "bomb.h5")


def test_a_keras_zip_bomb_is_refused_within_800_mb(small_keras_model, black_32x32_png, tmp_path):
    bomb = zip_bomb_config(small_keras_model, tmp_path / "bomb.keras", 1 << 30)
    assert bomb.stat().st_size < 8 << 20
    outcome, errors = predict_in_fresh_process(bomb, black_32x32_png)
    assert outcome["exit"] == 2
    assert "config.json inflates to 1,073,741,824 bytes" in errors
    assert outcome["peak_mb"] < MAX_PEAK_MEMORY_MB, outcome
    print(f"1 GB .keras zip bomb: exit {outcome['exit']}, peak {outcome['peak_mb']:.0f} MB")


@pytest.mark.slow
def test_a_config_describing_an_enormous_network_fails_within_its_budget(
        small_keras_model, black_32x32_png, tmp_path):
    with zipfile.ZipFile(small_keras_model) as original:
        config = json.loads(original.read("config.json"))
    dense = next(layer for layer in config["config"]["layers"]
                 if layer["class_name"] == "Dense")
    dense["config"]["units"] = 200_000  # 614 million weights, 2.5 GB, from a 30-byte change.
    huge = rewrite(small_keras_model, tmp_path / "huge.keras", replace={"config.json": json.dumps(config)})
    outcome, errors = predict_in_fresh_process(huge, black_32x32_png)
    assert outcome["exit"] == 2
    assert "describes a network that does not fit in the memory allowed" in errors
    assert outcome["peak_mb"] < MAX_PEAK_MEMORY_MB, outcome
    print(f"2.5 GB network config: exit {outcome['exit']}, peak {outcome['peak_mb']:.0f} MB")
