"""A training process killed with SIGKILL mid-epoch resumes after its last completed epoch.

The run is a real subprocess running ``experiment.run_experiment`` on a small image-folder
source. To kill it mid-epoch deterministically, the first start gets a test-only callback
(armed by an environment variable of this test's script, not of the library) that holds
the process still after the first step of epoch 2: by then epoch 1's state is on disk and
epoch 2 has changed the weights without saving them. The second start is the same command
without that variable.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cifar_cnn.config import RunConfig
from cifar_cnn.data import CLASS_NAMES
from cifar_cnn.experiment import run_experiment
from training_scripts import PAUSE_VARIABLE, SCRIPT_PRELUDE, SUBPROCESS_TIMEOUT

EPOCHS = 6
TRAINING_SCRIPT = SCRIPT_PRELUDE + '''
config = RunConfig.from_parameters(json.loads(sys.argv[1]))
run_folder, metrics = run_experiment(config, extra_callbacks=pause)
print("completed", run_folder.path, flush=True)
'''


@pytest.fixture
def learnable_source(tmp_path, cifar_encoders) -> Path:
    """An image-folder source whose classes a few epochs can learn (class written in colour)."""
    generator = np.random.default_rng(5)
    files = []
    for split, per_class in (("train", 32), ("test", 10)):
        for label, name in enumerate(CLASS_NAMES):
            for index in range(per_class):
                image = generator.integers(0, 20, (32, 32, 3))
                image[..., 0] += label * 25
                image[..., 1] += (9 - label) * 25
                files.append((f"{split}/{name}/{index:03d}.png",
                              cifar_encoders.image_bytes(image.astype(np.uint8), "png")))
    return cifar_encoders.write_folder(tmp_path / "learnable", files)


def _wait_for_line(process, log_path: Path, text: str, timeout: float) -> None:
    """Wait until the process printed ``text``; fail with its output if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log_path.read_text():
            return
        if process.poll() is not None:
            pytest.fail(f"exited with {process.returncode} before {text!r}:\n"
                        f"{log_path.read_text()[-3000:]}")
        time.sleep(0.1)
    pytest.fail(f"no {text!r} within {timeout} s:\n{log_path.read_text()[-3000:]}")


def _start(parameters: dict, log_path: Path, pause: bool) -> subprocess.Popen:
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    environment.pop(PAUSE_VARIABLE, None)
    if pause:
        environment[PAUSE_VARIABLE] = "1"
    with open(log_path, "w") as log:
        return subprocess.Popen([sys.executable, "-c", TRAINING_SCRIPT, json.dumps(parameters)],
                                stdout=log, stderr=subprocess.STDOUT, env=environment)


@pytest.mark.slow
def test_sigkilled_run_resumes_after_its_last_completed_epoch(learnable_source, tmp_path):
    parameters = {"data_source": str(learnable_source), "epochs": EPOCHS, "seed": 3,
                  "batch_size": 16, "learning_rate": 2e-3, "strategy": "default",
                  "output_dir": str(tmp_path / "runs"), "run_name": "r"}
    run_path = tmp_path / "runs" / "r"
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    process = _start(parameters, first_log, pause=True)
    try:
        _wait_for_line(process, first_log, "paused in epoch 2", SUBPROCESS_TIMEOUT)
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        process.kill()
        process.wait(timeout=30)

    # Killed mid-epoch 2: epoch 1 is recorded and saved, and nothing claims completion.
    assert [row["epoch"] for row in json.loads((run_path / "history.json").read_text())] == [1]
    assert sorted(path.name for path in (run_path / "training_state").iterdir()) == \
        ["epoch-0001.weights.h5"]
    assert not (run_path / "metrics.json").exists()
    assert not (run_path / "model.keras").exists()
    assert json.loads((run_path / "run.json").read_text())["status"] == "running"

    process = _start(parameters, second_log, pause=False)
    try:
        assert process.wait(timeout=SUBPROCESS_TIMEOUT) == 0, second_log.read_text()[-3000:]
    finally:
        process.kill()
        process.wait(timeout=30)
    output = second_log.read_text()
    assert "resuming after epoch 1 from" in output
    epoch_lines = [line for line in output.splitlines() if line.startswith("epoch ")]
    assert [line.split(" - ")[0] for line in epoch_lines] == \
        [f"epoch {epoch}/{EPOCHS}" for epoch in range(2, EPOCHS + 1)]

    history = json.loads((run_path / "history.json").read_text())
    assert [row["epoch"] for row in history] == list(range(1, EPOCHS + 1))
    metrics = json.loads((run_path / "metrics.json").read_text())
    assert metrics["epochs"] == EPOCHS and metrics["resumed_from_epoch"] == 1
    assert metrics["test_examples"] == 100
    run_record = json.loads((run_path / "run.json").read_text())
    assert run_record["status"] == "complete" and run_record["resumed"] is True
    assert not (run_path / "training_state").exists()
    assert (run_path / "model.keras").is_file()

    # Comparable with the same run never interrupted (its data order differs after epoch
    # 1, since a restarted pipeline reshuffles from its first order, so not identical).
    reference_config = RunConfig.from_parameters({**parameters, "run_name": "reference"},
                                                 environ={})
    _, reference = run_experiment(reference_config, print_epochs=False)
    assert reference["epochs"] == EPOCHS and reference["resumed_from_epoch"] == 0
    assert metrics["test_accuracy"] > 0.7 and reference["test_accuracy"] > 0.7
    assert abs(metrics["test_accuracy"] - reference["test_accuracy"]) <= 0.2
    assert abs(metrics["final_train_accuracy"] - reference["final_train_accuracy"]) <= 0.2
    print(f"resumed: test accuracy {metrics['test_accuracy']:.4f}, final train accuracy "
          f"{metrics['final_train_accuracy']:.4f}; uninterrupted: "
          f"{reference['test_accuracy']:.4f}, {reference['final_train_accuracy']:.4f}")


class _StopAtEpoch3(Exception):
    pass


@pytest.mark.slow
def test_a_run_whose_newest_state_is_cut_short_resumes_from_the_one_before(
        learnable_source, tmp_path, capsys):
    import keras

    from cifar_cnn import cli

    class StopAtEpoch3(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise _StopAtEpoch3()

    parameters = {"data_source": str(learnable_source), "epochs": 3, "seed": 3,
                  "batch_size": 32, "strategy": "default",
                  "output_dir": str(tmp_path / "runs"), "run_name": "cut"}
    with pytest.raises(_StopAtEpoch3):
        run_experiment(RunConfig.from_parameters(parameters, environ={}), print_epochs=False,
                       extra_callbacks=[StopAtEpoch3()])
    state = tmp_path / "runs" / "cut" / "training_state"
    newest = state / "epoch-0002.weights.h5"
    newest.write_bytes(newest.read_bytes()[:newest.stat().st_size // 2])
    capsys.readouterr()

    exit_code = cli.main(["train", "--data-source", str(learnable_source), "--epochs", "3",
                          "--seed", "3", "--batch-size", "32", "--strategy", "default",
                          "--output-dir", str(tmp_path / "runs"), "--run-name", "cut"])
    output = capsys.readouterr().out
    assert exit_code == 0, output
    assert "note: training state epoch-0002.weights.h5 (" in output
    assert "truncated file" in output and "resuming from epoch-0001.weights.h5" in output
    assert "resuming after epoch 1 from" in output
    metrics = json.loads((tmp_path / "runs" / "cut" / "metrics.json").read_text())
    assert metrics["epochs"] == 3 and metrics["resumed_from_epoch"] == 1
    history = json.loads((tmp_path / "runs" / "cut" / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2, 3]
