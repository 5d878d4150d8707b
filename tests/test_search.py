"""cifar-cnn search: the spec's checks, pruned runs, and real studies of notebook runs.

The studies run the real path: ``cifar-cnn search`` processes executing the main notebook
through papermill on a tiny learnable image folder, with Optuna's journal file and a real
PostgreSQL server that the ``postgresql_url`` fixture starts (Debian's ``postgresql``
package, as an unprivileged user, in a temporary folder).
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from cifar_cnn import cli, run_catalog, run_reuse, runs
from cifar_cnn.config import RunConfig
from cifar_cnn.files import write_json
from cifar_cnn.search_spec import SearchSpec, load_search_file
from cifar_cnn.search_trial import TRIAL_VARIABLE, TrialConnection, connection_from_environment

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = REPOSITORY_ROOT / "examples" / "search_example.yaml"
SPACE = {"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}


# ---------------------------------------------------------------------------------------------
# The spec, checked before anything runs


def _spec(**changes) -> dict:
    document = {"name": "s", "base": {"epochs": 2}, "space": dict(SPACE)}
    document.update(changes)
    return document


@pytest.mark.parametrize("document, expected", [
    (_spec(space={"learnig_rate": SPACE["learning_rate"]}), "Unknown parameter(s) learnig_rate"),
    (_spec(space={"learning_rate": {"type": "float", "low": 1e-2, "high": 1e-4}}),
     "is empty; low must be below high"),
    (_spec(space={"batch_size": {"type": "int", "low": 64, "high": 64}}), "a single value"),
    (_spec(space={"learning_rate": {"type": "float", "low": 0, "high": 1e-2, "log": True}}),
     "a log range needs low > 0"),
    (_spec(space={"batch_size": {"type": "categorical", "choices": []}}),
     "choices must be a non-empty list"),
    (_spec(space={"batch_size": {"type": "uniform", "low": 1, "high": 2}}),
     "type must be one of float, int, categorical"),
    (_spec(space={"epochs": {"type": "int", "low": 0, "high": 3}}, base={}),
     "epochs must be an integer >= 1"),
    (_spec(space={}), "space must map at least one parameter"),
    (_spec(base={"learning_rate": 1e-3}), "learning_rate is both in base and in space"),
    (_spec(base={"run_name": "x"}), "run_name cannot be set"),
    (_spec(pruner={"type": "median", "patience": 3}), "unknown argument(s) patience"),
    (_spec(pruner="hyperband"), "pruner must be one of median, successive_halving, none"),
    (_spec(sampler={"type": "grid"}), "sampler must be one of tpe, random"),
    (_spec(objective="test_loss"), "objective must be one of"),
    (_spec(enqueue=[{"batch_size": 64}]), "batch_size not in the search space"),
    (_spec(trials=0), "trials must be an integer >= 1"),
    (_spec(trials=1, enqueue=[{"learning_rate": 1e-3}, {"learning_rate": 2e-3}]),
     "enqueue lists 2 trials, more than the study's 1"),
    (_spec(storage=""), "storage must be a URL"),
    (_spec(heartbeat_seconds=0), "heartbeat_seconds must be a positive number"),
    (_spec(name="../up"), "name (the study's) must be a plain name"),
    (_spec(grid={"learning_rate": [1]}), "unknown key(s) grid"),
])
def test_search_spec_refuses_what_cannot_run(document, expected):
    with pytest.raises(ValueError) as error:
        SearchSpec.from_mapping(document).validate()
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


def test_example_search_file_is_valid_and_searches_learning_rate_and_batch_size():
    spec = load_search_file(EXAMPLE)
    spec.validate()
    assert spec.trials >= 6
    assert spec.dimensions["learning_rate"].log
    assert spec.dimensions["batch_size"].type == "categorical"
    assert spec.pruner["type"] in ("median", "successive_halving")
    assert spec.run_name(7) == "example-search-t007"


def _write_spec(path: Path, **changes) -> Path:
    path.write_text(yaml.safe_dump(_spec(**changes)))
    return path


@pytest.mark.parametrize("changes, storage, expected", [
    ({"space": {"learnig_rate": SPACE["learning_rate"]}}, None, "Unknown parameter(s)"),
    ({"space": {"learning_rate": {"type": "float", "low": 1.0, "high": 0.1}}}, None, "is empty"),
    ({}, "mongodb://db/study", "unknown kind 'mongodb'"),
    ({}, "postgresql://cifar:hunter2@127.0.0.1:1/study", "cannot open storage"),
    ({}, "/no/such/folder/study.optuna-journal", "folder /no/such/folder does not exist"),
])
def test_search_command_refuses_bad_input_in_one_line_before_any_trial(
        tmp_path, capsys, changes, storage, expected):
    spec_file = _write_spec(tmp_path / "search.yaml", **changes)
    arguments = ["search", str(spec_file), "--output-dir", str(tmp_path / "runs")]
    if storage:
        arguments += ["--storage", storage]
    assert cli.main(arguments) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("cifar-cnn search: error:") and "\n" not in error
    assert expected in error
    assert "hunter2" not in error  # A password never reaches a message.
    # Nothing ran: no run folder, no study file.
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# ---------------------------------------------------------------------------------------------
# The pruned status, and the trial's connection


def test_a_pruned_run_is_final_listed_and_never_resumed(tmp_path, capsys):
    config = RunConfig.from_parameters({"output_dir": str(tmp_path), "run_name": "trial",
                                        "epochs": 5})
    run = runs.start_run(config)
    (run.path / runs.TRAINING_STATE_FOLDER).mkdir()
    write_json(run.path / runs.HISTORY_FILE,
                    [{"epoch": 1, "seconds": 1.0, "val_accuracy": 0.2},
                     {"epoch": 2, "seconds": 1.0, "val_accuracy": 0.25}])
    run.prune(2, "val_accuracy 0.2500 after epoch 2 judged not promising")
    with pytest.raises(runs.RunClosedError):
        run.check_open()
    summary = run_catalog.read_run(run.path)
    assert summary.status == runs.PRUNED
    assert summary.best_monitored_accuracy == 0.25 and summary.epochs_done == 2
    assert not (run.path / runs.TRAINING_STATE_FOLDER).exists()
    assert run_catalog.read_run(run.path).record["pruned_after_epoch"] == 2
    existing = run_reuse.existing_run_state(run.path, config)
    assert existing.state == run_reuse.CONFLICT and "pruned after epoch 2" in existing.reason
    overwrite = RunConfig.from_parameters({**config.to_dict(), "overwrite": True})
    assert run_reuse.existing_run_state(run.path, overwrite).state == run_reuse.REPLACE
    assert cli.main(["runs", str(tmp_path)]) == 0
    listing = capsys.readouterr().out
    assert "pruned" in listing and "2/5" in listing


def test_trial_reporter_reports_every_epoch_and_stops_training_when_pruned():
    from cifar_cnn.training_callbacks import TrialReporter

    class Trial:
        def __init__(self):
            self.reported = []

        def report(self, value, step):
            self.reported.append((step, value))

        def should_prune(self):
            return len(self.reported) == 2  # The pruner's verdict after the second epoch.

    class Model:
        stop_training = False

    trial = Trial()
    reporter = TrialReporter(trial)
    reporter.set_model(Model())
    reporter.on_epoch_end(0, {"val_accuracy": 0.3, "accuracy": 0.5})
    assert not reporter.model.stop_training and reporter.pruned_after_epoch is None
    reporter.on_epoch_end(1, {"val_accuracy": 0.35})
    assert trial.reported == [(1, 0.3), (2, 0.35)]
    assert reporter.model.stop_training and reporter.pruned_after_epoch == 2
    assert "0.3500 after epoch 2" in reporter.reason


def test_trial_connection_travels_in_one_variable():
    connection = TrialConnection(storage="runs/s.optuna-journal", study="s", trial_id=4,
                                 trial_number=3, pruner={"type": "median"})
    assert connection_from_environment(connection.environment()) == connection
    assert connection_from_environment({}) is None
    with pytest.raises(ValueError, match=TRIAL_VARIABLE):
        connection_from_environment({TRIAL_VARIABLE: "{not json"})


# ---------------------------------------------------------------------------------------------
# Real studies


def _search_command(spec_file: Path, output_dir: Path, data: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "cifar_cnn", "search", str(spec_file), "--output-dir",
            str(output_dir), "--set", f"data_source={data}", "--set", "epochs=3",
            "--set", "validation_split=0.2", "--workers", "1", *extra]


def _study_trials(storage: str, name: str):
    import optuna

    from cifar_cnn.search_storage import open_storage

    return optuna.load_study(study_name=name, storage=open_storage(storage)).get_trials()


def _trial_folder_status(output_dir: Path, trial) -> str:
    return run_catalog.read_run(output_dir / trial.user_attrs["run_name"]).status


@pytest.mark.slow
def test_example_search_prunes_and_compares_on_fixture_data(tmp_path, learnable_image_folder):
    import optuna

    output_dir = tmp_path / "runs"
    command = _search_command(EXAMPLE, output_dir, learnable_image_folder, "--trials", "6")
    finished = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True,
                              timeout=600)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    storage = str(output_dir / "example-search.optuna-journal")
    trials = _study_trials(storage, "example-search")
    states = [trial.state for trial in trials]
    assert len(trials) == 6 and optuna.trial.TrialState.FAIL not in states
    assert states.count(optuna.trial.TrialState.PRUNED) >= 1
    for trial in trials:
        folder = output_dir / trial.user_attrs["run_name"]
        summary = run_catalog.read_run(folder)
        if trial.state == optuna.trial.TrialState.PRUNED:
            # Stopped at the epoch the pruner judged: no evaluation, no resume state.
            assert summary.status == runs.PRUNED
            assert len(summary.history) == summary.record["pruned_after_epoch"] < 3
            assert summary.metrics is None
            assert not (folder / runs.TRAINING_STATE_FOLDER).exists()
            assert sorted(trial.intermediate_values) == list(range(1, len(summary.history) + 1))
        else:
            assert summary.status == runs.COMPLETE
            assert trial.value == summary.metrics["best_monitored_accuracy"]
        assert summary.config["learning_rate"] == trial.params["learning_rate"]
        assert summary.config["batch_size"] == trial.params["batch_size"]
    best = max((trial for trial in trials if trial.state == optuna.trial.TrialState.COMPLETE),
               key=lambda trial: trial.value)
    study_view = (output_dir / "example-search-study.md").read_text()
    assert f"Best trial: {best.number} (run {best.user_attrs['run_name']})" in study_view
    assert f"Best trial: {best.number}" in finished.stdout
    comparison = (output_dir / "example-search-comparison.csv").read_text()
    assert "pruned" in comparison and best.user_attrs["run_name"] in comparison
    assert (output_dir / "example-search-study.png").stat().st_size > 0
    # On demand, from the storage and the run folders alone.
    assert cli.main(["compare", str(output_dir), "--study", "example-search",
                     "--output-dir", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "example-search-study.md").read_text() == study_view
    # The comparison notebook shows the same view.
    notebook = tmp_path / "compare.ipynb"
    import papermill

    papermill.execute_notebook(str(REPOSITORY_ROOT / "notebooks" / "compare_runs.ipynb"),
                               str(notebook), cwd=str(tmp_path), log_output=False,
                               progress_bar=False,
                               parameters={"runs_dir": str(output_dir), "study": "example-search",
                                           "pattern": "example-search-t*"})
    assert f"Best trial: {best.number} (run {best.user_attrs['run_name']})" \
        in notebook.read_text()
    # Run again: the study has its trials, nothing more runs.
    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "this process executed 0" in again.stdout
    assert len(_study_trials(storage, "example-search")) == 6


def _fast_heartbeat_spec(tmp_path: Path) -> Path:
    document = yaml.safe_load(EXAMPLE.read_text().replace("1e-4", "0.0001").replace(
        "3e-2", "0.03").replace("1e-3", "0.001"))
    document["heartbeat_seconds"] = 1
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _check_finished_study(trials, output_dir: Path, count: int) -> list:
    import optuna

    state = optuna.trial.TrialState
    finished = [trial for trial in trials if trial.state in (state.COMPLETE, state.PRUNED)]
    assert len(finished) == count
    assert not [trial for trial in trials if trial.state in (state.RUNNING, state.WAITING)]
    names = [trial.user_attrs["run_name"] for trial in finished]
    assert len(set(names)) == len(names)  # Disjoint: one run folder per trial, none twice.
    for trial in finished:
        expected = runs.COMPLETE if trial.state == state.COMPLETE else runs.PRUNED
        assert _trial_folder_status(output_dir, trial) == expected
    return finished


@pytest.mark.slow
def test_two_workers_share_a_journal_study_and_a_killed_workers_trial_is_replaced(
        tmp_path, learnable_image_folder):
    import optuna

    output_dir = tmp_path / "runs"
    spec_file = _fast_heartbeat_spec(tmp_path)
    command = _search_command(spec_file, output_dir, learnable_image_folder, "--trials", "4")
    first_folder = output_dir / "example-search-t000"
    killed = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        # Mid-trial: its kernel has opened the run folder.
        _wait_for(lambda: (first_folder / runs.CONFIG_FILE).is_file(), 120, "the first trial")
        second = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(timeout=30)
        rerun = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True,
                               timeout=600)
        second_output = second.communicate(timeout=600)[0]
    finally:
        for process in (killed, locals().get("second")):
            if process is not None and process.poll() is None:
                process.kill()
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert second.returncode == 0, second_output[-3000:]
    trials = _study_trials(str(output_dir / "example-search.optuna-journal"), "example-search")
    finished = _check_finished_study(trials, output_dir, 4)
    failed = [trial for trial in trials if trial.state == optuna.trial.TrialState.FAIL
              and not trial.user_attrs.get("surplus")]
    assert [trial.number for trial in failed] == [0]
    assert "stopped sending heartbeats" in failed[0].user_attrs["error"]
    # Its place was taken, by workers other than the killed one.
    workers = {trial.user_attrs["worker"] for trial in finished}
    assert failed[0].user_attrs["worker"] not in workers and len(workers) == 2
    # The killed worker's notebook died with it: nobody holds or writes its folder.
    _wait_for(lambda: run_catalog.read_run(first_folder).status == runs.INTERRUPTED, 60,
              "the killed trial's kernel to end")


def _postgres_binaries() -> Path | None:
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(folder) / "initdb").is_file():
            return Path(folder)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@pytest.fixture(scope="module")
def postgresql_url():
    """A PostgreSQL server of its own, on a free loopback port, stopped at the end.

    Runs Debian's server binaries as the ``postgres`` account when the tests run as root
    (the server refuses root). Skips where PostgreSQL is not installed, unless
    ``$CIFAR_CNN_REQUIRE_POSTGRES`` is set (as ``.ci/run`` does), then fails.
    """
    binaries = _postgres_binaries()
    account = None
    if os.geteuid() == 0:  # The server refuses root: it runs as the package's account.
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            binaries = None
    if binaries is None:
        reason = ("PostgreSQL's server (Debian package postgresql, with its postgres account "
                  "when run as root) is not installed")
        if os.environ.get("CIFAR_CNN_REQUIRE_POSTGRES"):
            pytest.fail(reason)
        pytest.skip(reason)
    folder = Path(tempfile.mkdtemp(prefix="cifar-cnn-postgres-"))
    demote = None
    if account is not None:
        os.chown(folder, account.pw_uid, account.pw_gid)

        def demote():
            os.setgid(account.pw_gid)
            os.setuid(account.pw_uid)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = folder / "data"

    def server(*arguments: str) -> None:
        subprocess.run([str(binaries / arguments[0]), *arguments[1:]], check=True,
                       preexec_fn=demote, capture_output=True, timeout=120, cwd=folder)

    server("initdb", "-D", str(data), "-U", "cifar", "--auth=trust", "--no-sync")
    server("pg_ctl", "-D", str(data), "-l", str(folder / "server.log"), "-w", "-o",
           f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    try:
        yield f"postgresql://cifar@127.0.0.1:{port}/postgres"
    finally:
        server("pg_ctl", "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_two_workers_share_a_postgresql_study(tmp_path, learnable_image_folder, postgresql_url):
    output_dir = tmp_path / "runs"
    spec_file = _fast_heartbeat_spec(tmp_path)
    command = _search_command(spec_file, output_dir, learnable_image_folder, "--trials", "3",
                              "--storage", postgresql_url)
    workers = [subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [worker.communicate(timeout=600)[0] for worker in workers]
    for worker, output in zip(workers, outputs):
        assert worker.returncode == 0, output[-3000:]
    trials = _study_trials(postgresql_url, "example-search")
    finished = _check_finished_study(trials, output_dir, 3)
    assert len({trial.user_attrs["worker"] for trial in finished}) == 2


# ---------------------------------------------------------------------------------------------
# The worker loop, with an executor that writes run folders without a kernel


def _fake_executor(outcomes: dict | None = None):
    """An executor that writes what a run would: complete, pruned or nothing (failed).

    ``outcomes`` maps a trial's run name to "pruned" or "failed"; the rest complete with a
    value that grows with the learning rate.
    """
    calls = []

    def execute(request) -> int:
        parameters = request.parameters
        folder = Path(parameters["output_dir"]) / parameters["run_name"]
        calls.append(parameters["run_name"])
        outcome = (outcomes or {}).get(parameters["run_name"], "complete")
        if outcome == "failed":
            return 1
        folder.mkdir(parents=True)
        write_json(folder / runs.CONFIG_FILE, {k: v for k, v in parameters.items()})
        write_json(folder / runs.HISTORY_FILE, [{"epoch": 1, "seconds": 0.1,
                                                 "val_accuracy": 0.1}])
        if outcome == "pruned":
            write_json(folder / runs.RUN_RECORD_FILE, {"status": runs.PRUNED,
                                                       "pruned_after_epoch": 1})
        else:
            write_json(folder / runs.METRICS_FILE, {
                "test_accuracy": 0.5, "best_monitored_accuracy": parameters["learning_rate"]})
        return 0

    execute.calls = calls
    return execute


def _quiet_spec(tmp_path: Path, **changes) -> SearchSpec:
    document = _spec(**{"trials": 5, **changes})
    spec = SearchSpec.from_mapping(document)
    spec.output_dir = str(tmp_path / "runs")
    return spec


@pytest.mark.parametrize("storage", ["journal", "sqlite"])
def test_workers_of_one_process_finish_exactly_the_trial_count(tmp_path, storage):
    import io

    import optuna

    from cifar_cnn.search import run_search

    executor = _fake_executor({"s-t001": "pruned", "s-t003": "failed"})
    url = (str(tmp_path / "runs" / "s.optuna-journal") if storage == "journal"
           else f"sqlite:///{tmp_path / 'study.db'}")
    result = run_search(_quiet_spec(tmp_path), workers=3, executor=executor, storage=url,
                        notebook=EXAMPLE, stream=io.StringIO())
    trials = _study_trials(url, "s")
    states = [trial.state for trial in trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) \
        + states.count(optuna.trial.TrialState.PRUNED) == 5 == result.finished
    assert optuna.trial.TrialState.PRUNED in states
    failed = [trial for trial in trials if trial.state == optuna.trial.TrialState.FAIL
              and not trial.user_attrs.get("surplus")]
    assert [trial.number for trial in failed] == [3]
    assert "exit status 1" in failed[0].user_attrs["error"]
    assert len(executor.calls) == len(set(executor.calls)) == 6  # None twice.
    assert (tmp_path / "runs" / "s-study.md").is_file()


def test_a_worker_whose_trials_keep_failing_stops_and_says_why(tmp_path, capsys):
    import io

    from cifar_cnn.search import MAX_FAILURES_IN_A_ROW, run_search

    executor = _fake_executor({f"s-t{number:03d}": "failed" for number in range(50)})
    stream = io.StringIO()
    result = run_search(_quiet_spec(tmp_path), workers=1, executor=executor, notebook=EXAMPLE,
                        stream=stream)
    assert len(executor.calls) == MAX_FAILURES_IN_A_ROW
    assert result.gave_up and "in a row failed" in result.gave_up
    assert "search stopped: 0 of 5" in stream.getvalue()


def test_a_new_study_refuses_an_output_folder_holding_another_studys_runs(tmp_path):
    import io

    from cifar_cnn.search import run_search

    (tmp_path / "runs" / "s-t000").mkdir(parents=True)
    executor = _fake_executor()
    with pytest.raises(ValueError, match="already holds run folders of a study named 's'"):
        run_search(_quiet_spec(tmp_path), workers=1, executor=executor, notebook=EXAMPLE,
                   stream=io.StringIO())
    assert executor.calls == []


def test_joining_a_study_made_for_another_space_is_refused(tmp_path):
    import io

    from cifar_cnn.search import run_search

    run_search(_quiet_spec(tmp_path, trials=1), workers=1, executor=_fake_executor(),
               notebook=EXAMPLE, stream=io.StringIO())
    other = _quiet_spec(tmp_path, trials=2, space={
        "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True}})
    with pytest.raises(ValueError,
                       match="was made for another base, space, objective or heartbeat"):
        run_search(other, workers=1, executor=_fake_executor(), notebook=EXAMPLE,
                   stream=io.StringIO())
    longer = _quiet_spec(tmp_path, trials=2, base={"epochs": 3})
    with pytest.raises(ValueError, match="was made for another base"):
        run_search(longer, workers=1, executor=_fake_executor(), notebook=EXAMPLE,
                   stream=io.StringIO())


def test_a_trial_whose_worker_went_silent_is_shown_then_failed_and_replaced(tmp_path):
    import io

    import optuna

    from cifar_cnn import study_report
    from cifar_cnn.search import HEARTBEAT_ATTRIBUTE, run_search
    from cifar_cnn.search_storage import open_storage

    spec = _quiet_spec(tmp_path, trials=1, heartbeat_seconds=1)
    run_search(spec, workers=1, executor=_fake_executor(), notebook=EXAMPLE,
               stream=io.StringIO())
    storage_url = str(tmp_path / "runs" / "s.optuna-journal")
    storage = open_storage(storage_url)
    study = optuna.load_study(study_name="s", storage=storage)
    orphan = study.ask({"learning_rate": optuna.distributions.FloatDistribution(
        1e-4, 1e-2, log=True)})  # A worker that asked, then was killed.
    storage.set_trial_system_attr(orphan._trial_id, HEARTBEAT_ATTRIBUTE, time.time() - 100)
    report = study_report.load_study_report("s", storage_url, tmp_path / "runs")
    assert report.trials[1].state == "running (worker silent)"
    assert "no heartbeat for" in report.trials[1].error
    stream = io.StringIO()
    result = run_search(_quiet_spec(tmp_path, trials=2, heartbeat_seconds=1), workers=1,
                        executor=_fake_executor(), notebook=EXAMPLE, stream=stream)
    assert result.finished == 2
    trials = _study_trials(storage_url, "s")
    assert trials[1].state == optuna.trial.TrialState.FAIL
    assert "stopped sending heartbeats" in trials[1].user_attrs["error"]
    assert trials[2].state == optuna.trial.TrialState.COMPLETE
    assert "marked failed: its worker stopped sending heartbeats" in stream.getvalue()


def test_a_lone_worker_repeats_its_study_and_joined_workers_draw_different_trials(tmp_path):
    import io
    import threading

    from cifar_cnn.search import run_search

    def params(folder: Path) -> list[float]:
        trials = _study_trials(str(folder / "s.optuna-journal"), "s")
        # A surplus trial (asked at the same moment as the other's last) drew nothing.
        return [trial.params["learning_rate"] for trial in trials if trial.params]

    for name in ("first", "second"):
        run_search(_quiet_spec(tmp_path / name, trials=4), workers=1, executor=_fake_executor(),
                   notebook=EXAMPLE, stream=io.StringIO())
    assert params(tmp_path / "first" / "runs") == params(tmp_path / "second" / "runs")
    # Two workers as of separate processes (separate study objects), starting together.
    together = tmp_path / "together"
    workers = [threading.Thread(target=run_search, args=(_quiet_spec(together, trials=6),),
                                kwargs=dict(workers=1, executor=_fake_executor(),
                                            notebook=EXAMPLE, stream=io.StringIO(),
                                            compare=False))
               for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    drawn = params(together / "runs")
    assert len(drawn) >= 6 and len(set(drawn)) == len(drawn)
