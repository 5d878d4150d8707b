"""tf.distribute: the strategy choice, two logical CPU devices, and two workers on loopback.

Logical devices must be set before TensorFlow starts and ``TF_CONFIG`` is read once per
process, so the real distributed runs happen in subprocesses that these tests start,
bound in time and always kill.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from cifar_cnn import distribute
from cifar_cnn.config import RunConfig
from training_scripts import PAUSE_VARIABLE, SCRIPT_PRELUDE, SUBPROCESS_TIMEOUT


def _environment(**changes) -> dict:
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    for name in ("TF_CONFIG", PAUSE_VARIABLE):
        environment.pop(name, None)
    environment.update(changes)
    return environment


def _finish(processes, logs, timeout=SUBPROCESS_TIMEOUT) -> None:
    """Wait for every process to exit 0 within the timeout; kill them all in any case."""
    deadline = time.monotonic() + timeout
    try:
        for process, log in zip(processes, logs):
            returncode = process.wait(timeout=max(1.0, deadline - time.monotonic()))
            assert returncode == 0, Path(log).read_text()[-4000:]
    finally:
        _kill(processes)


def _kill(processes) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


# ---- the strategy parameter ----

def test_strategy_defaults_to_auto_and_bad_names_list_the_choices():
    assert RunConfig().strategy == "auto"
    assert distribute.STRATEGY_CHOICES == ("auto", "default", "mirrored", "multiworker", "tpu")
    with pytest.raises(ValueError, match="Unknown strategy 'mirror'; valid choices: auto, "
                                         "default, mirrored, multiworker, tpu"):
        RunConfig.from_parameters({"strategy": "mirror"}, environ={})
    with pytest.raises(ValueError, match="Unknown strategy 'gpu'; valid choices"):
        distribute.make_strategy("gpu")


@pytest.mark.parametrize("tpu_attached, gpu_count, expected", [
    (True, 0, "tpu"), (True, 4, "tpu"), (False, 2, "mirrored"), (False, 8, "mirrored"),
    (False, 1, "default"), (False, 0, "default"),
])
def test_auto_picks_tpu_then_several_gpus_then_the_default(tpu_attached, gpu_count, expected):
    assert distribute.auto_strategy_name(tpu_attached, gpu_count) == expected


def test_auto_on_this_cpu_machine_is_the_default_strategy(monkeypatch):
    import tensorflow as tf

    for name in ("COLAB_TPU_ADDR", "TPU_NAME"):
        monkeypatch.delenv(name, raising=False)
    if tf.config.list_physical_devices("GPU") or tf.config.list_physical_devices("TPU"):
        pytest.skip("an accelerator is attached")
    assert distribute.resolve_strategy_name("auto") == "default"
    assert distribute.make_strategy("auto") is tf.distribute.get_strategy()
    assert not distribute.is_multi_worker(distribute.make_strategy("default"))


@pytest.mark.parametrize("tf_config, chief", [
    (None, True),
    ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}, True),
    ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}, False),
    ({"cluster": {"chief": ["c:0"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}},
     False),
    ({"cluster": {"chief": ["c:0"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}},
     True),
    ({"cluster": {"worker": ["a:1"], "evaluator": ["e:1"]}, "task": {"type": "evaluator"}}, False),
])
def test_the_chief_is_the_chief_task_or_else_worker_zero(tf_config, chief):
    environ = {} if tf_config is None else {"TF_CONFIG": json.dumps(tf_config)}
    assert distribute.is_chief(environ) is chief


def test_unreadable_tf_config_is_a_clear_error():
    with pytest.raises(ValueError, match="TF_CONFIG must be JSON like"):
        distribute.is_chief({"TF_CONFIG": "{not json"})


# ---- MirroredStrategy over two logical CPU devices ----

MIRRORED_SCRIPT = '''
import json, sys
from pathlib import Path

import numpy as np
import tensorflow as tf

# Split the CPU before TensorFlow starts: this is what gives "mirrored" two replicas here.
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras

from cifar_cnn import data, experiment, runs
from cifar_cnn.config import RunConfig

output = Path(sys.argv[1])
generator = np.random.default_rng(0)
labels = np.arange(192) % 10
images = generator.integers(0, 60, (192, 32, 32, 3))
images[..., 0] += labels[:, None, None] * 19
images = images.astype(np.uint8)
prepared = experiment.PreparedData(train=(images, labels), validation=None,
                                   test=(images[:60], labels[:60]), class_names=data.CLASS_NAMES,
                                   source="synthetic", load_seconds=0.0)


def unshuffled_datasets(plan, prepared):
    # model.fit under any strategy other than the default draws the dataset once more before
    # epoch 1 (Keras' symbolic build), which shifts a reshuffled order by one epoch: fixed
    # order keeps the comparison about the distributed arithmetic, not about the data order.
    return (data.make_dataset(*prepared.train, plan.recipe.batch_size),
            data.make_dataset(*prepared.monitored, batch_size=500), [])


experiment.make_datasets = unshuffled_datasets


def train(strategy, epochs, run_name):
    config = RunConfig(strategy=strategy, epochs=epochs, batch_size=32, seed=1,
                       output_dir=str(output), run_name=run_name)
    plan = experiment.resolve_run(config)
    model = experiment.build_model(plan, None, prepared)
    initial = model.get_weights()
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0  # Replicas draw different dropout masks than one device does.
    result = experiment.train_model(plan, runs.RunFolder(path=output / run_name, config=config),
                                    prepared, model, print_epochs=False)
    np.savez(output / f"{run_name}-initial.npz", *initial)
    np.savez(output / f"{run_name}-final.npz", *model.get_weights())
    np.save(output / f"{run_name}-probabilities.npy", model.predict(images, verbose=0))
    return {"replicas": model.distribute_strategy.num_replicas_in_sync,
            "strategy": type(model.distribute_strategy).__name__,
            "resumed_from_epoch": result.resumed_from_epoch,
            "history": result.history}


summary = {"logical_cpus": len(tf.config.list_logical_devices("CPU")),
           "default": train("default", 3, "default")}
# The mirrored run is interrupted after epoch 1 and resumed: it must match the one-device run
# all the same (one mirrored training less than an uninterrupted run beside a resumed one).
train("mirrored", 1, "mirrored")
summary["mirrored"] = train("mirrored", 3, "mirrored")
(output / "summary.json").write_text(json.dumps(summary))
'''


def _weights(path: Path) -> list[np.ndarray]:
    with np.load(path) as stored:
        return [stored[f"arr_{index}"] for index in range(len(stored.files))]


def _relative_difference(first, second, initial) -> float:
    """||first - second|| over how far training moved the weights, ||second - initial||."""
    def norm(arrays):
        return float(np.sqrt(sum(np.sum(np.square(array, dtype=np.float64)) for array in arrays)))

    return norm([a - b for a, b in zip(first, second)]) / norm(
        [b - c for b, c in zip(second, initial)])


# Tolerances, from runs on a 2-core CPU over five seeds (the test's seed 1 agrees far more
# closely: losses to 1e-7, weights to 5e-6). Float sums run in another order on two
# replicas, and Adam magnifies tiny differences of near-zero gradients, so the worst seed
# reached: losses 3.1e-5 relative, probabilities 1.5e-2, weights 2.7e-2 of the distance
# training moved them. Training the same model on another data order, for scale, differs
# by 0.33 in probabilities and 0.97 in weights.
LOSS_TOLERANCE = 1e-3
PROBABILITY_TOLERANCE = 5e-2
WEIGHT_TOLERANCE = 1e-1


@pytest.mark.slow
def test_mirrored_over_two_cpu_devices_matches_one_device_and_resumes(tmp_path):
    log = tmp_path / "mirrored.log"
    with open(log, "w") as stream:
        # Eigen kernels, as the tolerances below were calibrated with: oneDNN's (the default
        # since issue 15) sum in another order on two replicas, which moved the third epoch's
        # validation loss by 1.9e-3 and its accuracy by 2 of 192 examples (not yet calibrated).
        process = subprocess.Popen([sys.executable, "-c", MIRRORED_SCRIPT, str(tmp_path)],
                                   stdout=stream, stderr=subprocess.STDOUT,
                                   env=_environment(TF_ENABLE_ONEDNN_OPTS="0"))
    _finish([process], [log])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["logical_cpus"] == 2
    assert summary["default"]["replicas"] == 1
    assert summary["mirrored"] == {**summary["mirrored"], "replicas": 2,
                                   "strategy": "MirroredStrategy"}

    one_device = [row["loss"] for row in summary["default"]["history"]]
    two_devices = [row["loss"] for row in summary["mirrored"]["history"]]
    assert one_device[-1] < 0.9 * one_device[0]  # It trained: the comparison means something.
    np.testing.assert_allclose(two_devices, one_device, rtol=LOSS_TOLERANCE)
    for metric in ("accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose([row[metric] for row in summary["mirrored"]["history"]],
                                   [row[metric] for row in summary["default"]["history"]],
                                   rtol=LOSS_TOLERANCE, atol=1e-6)
    initial = _weights(tmp_path / "default-initial.npz")
    for first, second in zip(_weights(tmp_path / "mirrored-initial.npz"), initial):
        np.testing.assert_array_equal(first, second)  # Same seed, same start.
    mirrored = _weights(tmp_path / "mirrored-final.npz")
    difference = _relative_difference(mirrored, _weights(tmp_path / "default-final.npz"), initial)
    probability_difference = float(np.abs(np.load(tmp_path / "mirrored-probabilities.npy")
                                          - np.load(tmp_path / "default-probabilities.npy")).max())
    print(f"mirrored vs one device: relative weight difference {difference:.2e}, largest "
          f"probability difference {probability_difference:.2e}, loss differences "
          f"{np.subtract(two_devices, one_device).tolist()}")
    assert difference < WEIGHT_TOLERANCE
    assert probability_difference < PROBABILITY_TOLERANCE

    # It matched although it was resumed from its state after epoch 1.
    assert summary["mirrored"]["resumed_from_epoch"] == 1
    assert [row["epoch"] for row in summary["mirrored"]["history"]] == [1, 2, 3]


# ---- MultiWorkerMirroredStrategy: two worker processes on loopback ----

WORKER_SCRIPT = SCRIPT_PRELUDE + '''

class SaveFinalWeights(keras.callbacks.Callback):
    def on_train_end(self, logs=None):
        np.savez(sys.argv[2], *self.model.get_weights())


run_folder, metrics = run_experiment(RunConfig.from_parameters(json.loads(sys.argv[1])),
                                     extra_callbacks=[SaveFinalWeights(), *pause])
print("completed", run_folder.path, metrics["test_accuracy"], flush=True)
'''


def _free_loopback_ports(count: int) -> list[int]:
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _start_workers(parameters, tmp_path: Path, phase: str, pause: bool,
                   worker_changes: dict | None = None):
    """Start worker 0 (the chief) and worker 1; ``worker_changes`` alters worker 1's parameters."""
    ports = _free_loopback_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes, logs = [], []
    for index in range(2):
        log = tmp_path / f"{phase}-worker{index}.log"
        scratch = tmp_path / f"tmp-{phase}-worker{index}"
        scratch.mkdir(exist_ok=True)
        environment = _environment(
            TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
            TMPDIR=str(scratch))  # Where a non-chief worker's scratch run folder goes.
        if pause:
            environment[PAUSE_VARIABLE] = "1"
        worker_parameters = {**parameters, **(worker_changes or {})} if index else parameters
        with open(log, "w") as stream:
            processes.append(subprocess.Popen(
                [sys.executable, "-c", WORKER_SCRIPT, json.dumps(worker_parameters),
                 str(tmp_path / f"{phase}-weights{index}.npz")],
                stdout=stream, stderr=subprocess.STDOUT, env=environment))
        logs.append(log)
    return processes, logs


def _wait_until_all_printed(processes, logs, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not all(text in log.read_text() for log in logs):
        for process, log in zip(processes, logs):
            if process.poll() is not None:
                pytest.fail(f"a worker exited with {process.returncode} before {text!r}:\n"
                            f"{log.read_text()[-4000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {text!r} within {timeout} s")
        time.sleep(0.1)


@pytest.mark.slow
def test_two_workers_on_loopback_train_in_sync_and_resume_after_a_kill(image_folder_archive,
                                                                       tmp_path):
    parameters = {"strategy": "multiworker", "data_source": str(image_folder_archive),
                  "epochs": 2, "seed": 5, "output_dir": str(tmp_path / "runs"),
                  "run_name": "mw"}
    run_path = tmp_path / "runs" / "mw"

    # Both workers killed mid-epoch 2.
    processes, logs = _start_workers(parameters, tmp_path, "first", pause=True)
    try:
        _wait_until_all_printed(processes, logs, "paused in epoch 2", SUBPROCESS_TIMEOUT)
        for process in processes:
            process.send_signal(signal.SIGKILL)
    finally:
        _kill(processes)
    assert [row["epoch"] for row in json.loads((run_path / "history.json").read_text())] == [1]
    assert [path.name for path in (run_path / "training_state").iterdir()] == \
        ["epoch-0001.weights.h5"]
    assert not (run_path / "metrics.json").exists()
    assert json.loads((run_path / "run.json").read_text())["status"] == "running"

    # A worker that cannot see the chief's run folder stops both with the reason, not a hang.
    processes, logs = _start_workers(parameters, tmp_path, "unshared", pause=False,
                                     worker_changes={"output_dir": str(tmp_path / "elsewhere")})
    try:
        for process in processes:
            assert process.wait(timeout=SUBPROCESS_TIMEOUT) != 0
    finally:
        _kill(processes)
    for log in logs:
        assert "Workers found training states of different epochs" in log.read_text()
    assert not (run_path / "metrics.json").exists()

    # Started again: both resume from the chief's state and finish in step.
    processes, logs = _start_workers(parameters, tmp_path, "second", pause=False)
    _finish(processes, logs)
    outputs = [log.read_text() for log in logs]
    for output in outputs:
        assert f"resuming after epoch 1 from {run_path / 'training_state'}" in output
        assert "epoch 2/2" in output and "epoch 1/2" not in output
    final = [_weights(tmp_path / f"second-weights{index}.npz") for index in range(2)]
    for chief_array, worker_array in zip(*final):
        np.testing.assert_array_equal(chief_array, worker_array)
    saved = keras.saving.load_model(run_path / "model.keras").get_weights()
    for chief_array, saved_array in zip(final[0], saved):
        np.testing.assert_array_equal(chief_array, saved_array)

    history = json.loads((run_path / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "seconds"} <= set(history[1])
    metrics = json.loads((run_path / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and metrics["resumed_from_epoch"] == 1
    assert metrics["test_examples"] == 100 and 0.0 <= metrics["test_accuracy"] <= 1.0
    assert sum(map(sum, metrics["confusion_matrix"])) == 100  # Every test image predicted once.
    assert json.loads((run_path / "config.json").read_text())["strategy"] == "multiworker"
    assert json.loads((run_path / "run.json").read_text())["status"] == "complete"
    # Only the chief wrote the real run folder; the other worker's scratch folder is gone.
    assert [path.name for path in (tmp_path / "runs").iterdir()] == ["mw"]
    assert list((tmp_path / "tmp-second-worker1").iterdir()) == []
