"""One writer per run folder: the lock, its holder's name, and a finished run that takes no writes."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cifar_cnn import cli, run_catalog, run_lock, runs
from cifar_cnn.config import RunConfig
from cifar_cnn.notebook_runner import execute_notebook

HOLDER_SCRIPT = """
import sys, time
from cifar_cnn import runs
from cifar_cnn.config import RunConfig
config = RunConfig.from_parameters({"output_dir": sys.argv[1], "run_name": sys.argv[2]},
                                   environ={})
run = runs.start_run(config)
print("held", flush=True)
time.sleep(120)  # Bounded: the process ends even if nobody kills it.
"""


def _config(output: Path, name: str = "twice", **parameters) -> RunConfig:
    return RunConfig.from_parameters({"output_dir": str(output), "run_name": name, **parameters},
                                     environ={})


def _start_holder(output: Path, name: str, environment=None) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", HOLDER_SCRIPT, str(output), name],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=environment)
    line = process.stdout.readline()
    assert line.strip() == "held", line + process.stdout.read()
    return process


def _snapshot(folder: Path) -> dict:
    return {path.relative_to(folder): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def test_a_second_start_from_any_entry_point_is_refused_naming_the_holder(tmp_path, capsys):
    output = tmp_path / "runs"
    holder = _start_holder(output, "twice")
    try:
        folder = output / "twice"
        before = _snapshot(folder)
        assert run_catalog.read_run(folder).status == runs.RUNNING

        with pytest.raises(run_lock.RunInUseError) as refused:
            runs.start_run(_config(output))
        message = str(refused.value)
        assert f"process {holder.pid} on {socket.gethostname()} since " in message
        assert "one writer" in message

        started = time.monotonic()
        exit_code = cli.main(["train", "--output-dir", str(output), "--run-name", "twice"])
        assert exit_code == cli.EXIT_BAD_INPUT
        error = capsys.readouterr().err.strip()
        assert len(error.splitlines()) == 1 and f"in use by process {holder.pid}" in error

        with pytest.raises(ValueError, match=f"in use by process {holder.pid}"):
            execute_notebook({"output_dir": str(output), "run_name": "twice"}, log_output=False)
        assert time.monotonic() - started < 30, "refused at once, before any kernel or data"
        assert _snapshot(folder) == before, "a refused start leaves the run untouched"

        table = cli.main(["runs", str(output)])
        assert table == 0 and " running" in capsys.readouterr().out
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)

    # Killed: the lock went with the process, so the run is interrupted, and resumes.
    assert run_catalog.read_run(folder).status == runs.INTERRUPTED
    assert cli.main(["runs", str(output)]) == 0
    assert " interrupted" in capsys.readouterr().out
    resumed = runs.start_run(_config(output))
    assert resumed.resumed and json.loads((folder / "run.json").read_text())["resumed"]
    resumed.finish({"test_accuracy": 0.5})
    assert not run_lock.lock_path(folder).exists(), "a released lock leaves no file behind"


@pytest.mark.slow
def test_a_notebook_runner_lends_its_lock_to_its_kernel_and_nobody_else(tmp_path):
    output = tmp_path / "runs"
    lock = run_lock.acquire(output / "lent", command="a runner in this test")
    try:
        with run_lock.delegated_to_children(lock):
            child = _start_holder(output, "lent", environment=dict(os.environ))
        child.kill()
        child.wait(timeout=30)
        stranger = subprocess.run([sys.executable, "-c", HOLDER_SCRIPT, str(output), "lent"],
                                  capture_output=True, text=True, timeout=120)
        assert stranger.returncode != 0
        assert f"in use by process {os.getpid()}" in stranger.stdout + stranger.stderr
        assert "a runner in this test" in stranger.stdout + stranger.stderr
    finally:
        lock.release()


def test_a_finished_run_refuses_every_further_write(tmp_path):
    run = runs.start_run(_config(tmp_path))
    run.finish({"test_accuracy": 0.5})
    before = _snapshot(run.path)
    for write in (lambda: run.save_figure(object(), "late"), lambda: run.save_model(object()),
                  lambda: run.finish({"test_accuracy": 0.9}), run.check_open):
        with pytest.raises(runs.RunClosedError, match="is complete; its files are final") as error:
            write()
        assert "run the config and open-run cells again" in str(error.value)
    run.fail(RuntimeError("late"))  # Does nothing to a finished run.
    assert _snapshot(run.path) == before


def test_a_failed_run_refuses_writes_and_resumes_when_opened_again(tmp_path):
    run = runs.start_run(_config(tmp_path))
    run.fail(RuntimeError("disk full"))
    with pytest.raises(runs.RunClosedError, match="stopped with an error"):
        run.check_open()
    again = runs.start_run(_config(tmp_path))
    assert again.resumed


def test_opening_a_run_again_in_the_same_process_takes_it_over(tmp_path):
    first = runs.start_run(_config(tmp_path))
    second = runs.start_run(_config(tmp_path))
    assert second.resumed and second.lock is first.lock and second.lock.owner is second
    with pytest.raises(runs.RunClosedError, match="opened again in this process"):
        first.check_open()
    second.finish({"test_accuracy": 0.5})
    assert not run_lock.lock_path(second.path).exists()


def test_a_refused_start_in_the_same_process_keeps_the_earlier_run_open(tmp_path):
    first = runs.start_run(_config(tmp_path, epochs=2))
    with pytest.raises(ValueError, match="different config"):
        runs.start_run(_config(tmp_path, epochs=3))
    first.check_open()
    assert run_catalog.read_run(first.path).status == runs.RUNNING
    first.finish({"test_accuracy": 0.5})


def test_default_names_started_in_the_same_second_get_their_own_folders(tmp_path):
    config = RunConfig.from_parameters({"output_dir": str(tmp_path)}, environ={})
    started = [runs.start_run(config) for _ in range(3)]
    assert len({run.path for run in started}) == 3
    for run in started:
        run.finish({"test_accuracy": 0.5})


def test_a_reader_probing_the_lock_never_makes_a_start_fail(tmp_path):
    folder = tmp_path / "probed"
    probes = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom cifar_cnn import run_lock\nend = time.time() + 4\n"
        "while time.time() < end: run_lock.holder(sys.argv[1])\n"), str(folder)])
    try:
        for _ in range(20):
            run = runs.start_run(_config(tmp_path, "probed", overwrite=True))
            run.finish({"test_accuracy": 0.5})
    finally:
        probes.wait(timeout=60)


def test_a_link_planted_as_the_lock_file_is_refused_and_its_target_untouched(tmp_path):
    output = tmp_path / "runs"
    output.mkdir()
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    run_lock.lock_path(output / "planted").symlink_to(target)
    with pytest.raises(ValueError, match="cannot create the lock file .*lock files must be plain"):
        runs.start_run(_config(output, "planted"))
    assert target.read_text() == "keep me"
    assert not (output / "planted").exists()


def test_a_garbage_or_huge_lock_file_of_a_dead_holder_is_taken_over(tmp_path):
    output = tmp_path / "runs"
    output.mkdir()
    run_lock.lock_path(output / "stale").write_bytes(b"\xff" * (1 << 20))
    run = runs.start_run(_config(output, "stale"))
    assert json.loads(run_lock.lock_path(output / "stale").read_text())["pid"] == os.getpid()
    run.finish({"test_accuracy": 0.5})


@pytest.mark.slow
def test_two_starts_at_the_same_instant_leave_exactly_one_writer(tmp_path):
    output = tmp_path / "runs"
    script = HOLDER_SCRIPT.replace("time.sleep(120)", "time.sleep(8)")
    racers = [subprocess.Popen([sys.executable, "-c", script, str(output), "race"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
              for _ in range(2)]
    outputs = [racer.communicate(timeout=120)[0] for racer in racers]
    held = [text for text in outputs if text.startswith("held")]
    refused = [text for text in outputs if "RunInUseError" in text and "in use by process" in text]
    assert len(held) == 1 and len(refused) == 1, outputs
