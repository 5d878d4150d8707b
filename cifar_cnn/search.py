"""Searches: an Optuna study whose trials are runs of the main notebook.

``cifar-cnn search SPEC.yaml`` (file format in :mod:`cifar_cnn.search_spec`) opens or
creates the study in its storage (:mod:`cifar_cnn.search_storage`), then asks the study for
trials until it holds ``trials`` finished ones (complete or pruned). Each trial is one
execution of the notebook through the sweep's executor (papermill in a child process, one
run folder ``<output_dir>/<study>-t<number>`` each, the same record as every run); the
trial's kernel reports its monitored accuracy after every epoch and stops when the pruner
says so (:mod:`cifar_cnn.search_trial`). The run folder then tells the study how the trial
ended: ``complete`` with the objective's value from ``metrics.json``, ``pruned``, or failed.

Any number of workers share a study through its storage: ``workers`` threads of one process,
and any number of processes on one machine or many, each running the same command with the
same ``--storage``. A worker counts the study's finished and running trials before it asks
for one, and after asking checks that its trial is within the count (another worker may have
asked at the same moment; a trial past the count is marked failed as ``surplus`` at once,
before anything runs). While a trial runs, its worker writes a heartbeat into the study every
``heartbeat_seconds``; a running trial whose heartbeat is older than
``STALE_HEARTBEATS`` beats (its worker was killed) is marked failed by whichever worker sees
it, and its place is taken. Every worker stays until the study is done, so a trial that fails
late is still replaced; a re-run of the same command continues the study to its count.

At the end, and on demand (``cifar-cnn compare --study``), the runs are compared as a sweep's
are, with the study's own view added (:mod:`cifar_cnn.study_report`).
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from cifar_cnn import run_catalog
from cifar_cnn import runs as run_folders
from cifar_cnn.runs import COMPLETE, FAILED, PRUNED
from cifar_cnn.search_spec import SearchSpec, make_pruner, make_sampler
from cifar_cnn.search_storage import (
    default_storage,
    display_name,
    is_database_url,
    open_storage,
)
from cifar_cnn.search_trial import TrialConnection
from cifar_cnn.sweep import PROGRESS_LINE
from cifar_cnn.sweep_execution import (
    ExecutionRequest,
    Executor,
    notebook_error,
    papermill_subprocess_executor,
)
from cifar_cnn.sweep_workers import default_workers, worker_environment

# Trial attributes this package writes (user attributes show in optuna-dashboard).
RUN_NAME_ATTRIBUTE = "run_name"
RUN_FOLDER_ATTRIBUTE = "run_folder"
WORKER_ATTRIBUTE = "worker"
ERROR_ATTRIBUTE = "error"
SURPLUS_ATTRIBUTE = "surplus"
HEARTBEAT_ATTRIBUTE = "cifar_cnn:heartbeat"  # A system attribute: bookkeeping, not a result.
SPEC_ATTRIBUTE = "search"  # The study's space and objective (a user attribute), checked on joining.
# A running trial is stale when its heartbeat is older than this many heartbeat periods.
STALE_HEARTBEATS = 3
# A worker whose trials fail this many times in a row stops: the cause (a missing data source,
# a full disk) would fail every trial after them too.
MAX_FAILURES_IN_A_ROW = 3


@dataclass
class SearchResult:
    """What :func:`run_search` returns.

    Attributes:
        study_name: The study.
        storage: Where it lives (password hidden).
        output_dir: The folder of its run folders.
        finished: Trials finished in the study (complete or pruned), all workers together.
        executed: ``(trial number, state)`` of the trials this process executed.
        comparison: Paths of the comparison's files, or None.
        gave_up: Why this process stopped before the study was finished, or None.
    """

    study_name: str
    storage: str
    output_dir: Path
    finished: int
    executed: list[tuple[int, str]] = field(default_factory=list)
    comparison: dict[str, Path] | None = None
    gave_up: str | None = None

    @property
    def failed(self) -> list[int]:
        """Numbers of the trials this process executed that failed."""
        return [number for number, state in self.executed if state == FAILED]


def _check_same_search(study, spec: SearchSpec) -> None:
    """Refuse to add trials to a study made for another base, space, objective or heartbeat.

    The data source's path may differ from one machine to the next; the rest may not.
    """
    import json

    base = {name: value for name, value in spec.base.items()
            if name not in ("data_source", "output_dir")}
    # The heartbeat too: a worker judges others' trials stale by its own period.
    fingerprint = json.dumps({"objective": spec.objective, "base": base,
                              "heartbeat_seconds": spec.heartbeat_seconds,
                              "space": [dimension.to_record() for dimension in spec.space]},
                             sort_keys=True)
    recorded = study.user_attrs.get(SPEC_ATTRIBUTE)
    if recorded is None:
        study.set_user_attr(SPEC_ATTRIBUTE, fingerprint)
    elif recorded != fingerprint:
        raise ValueError(f"study {spec.name!r} in {display_name(spec.storage or '')} was made "
                         f"for another base, space, objective or heartbeat ({recorded}); give this "
                         "search another name, or the same settings to continue it.")


class _Search:
    """One process's workers on one study."""

    def __init__(self, spec: SearchSpec, storage_url: str, notebook: Path, executor: Executor,
                 workers: int, stream: TextIO, verbose: bool):
        import optuna

        self.optuna = optuna
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # This module reports each trial.
        self.spec, self.storage_url, self.notebook = spec, storage_url, notebook
        self.executor, self.workers, self.stream, self.verbose = executor, workers, stream, verbose
        self.lock = threading.Lock()  # Output, and the lists below.
        self.ask_lock = threading.Lock()
        self.stopping = threading.Event()
        self.executed: list[tuple[int, str]] = []
        self.running: dict[int, object] = {}  # This process's trials in flight, by number.
        self.gave_up: str | None = None
        self.output_dir = spec.runs_dir
        self.storage = open_storage(storage_url)
        self.study = optuna.create_study(
            study_name=spec.name, storage=self.storage, direction="maximize",
            sampler=make_sampler(spec.sampler), pruner=make_pruner(spec.pruner),
            load_if_exists=True)
        _check_same_search(self.study, spec)
        if not self.study.get_trials(deepcopy=False):
            for parameters in spec.enqueue:  # Only into a new study: a re-run adds none.
                self.study.enqueue_trial(parameters, skip_if_exists=True)
        self.worker_name = f"{socket.gethostname()}:{os.getpid()}"

    def _draw(self, trial) -> None:
        """Draw a trial's parameters with a sampler seeded by the spec's seed and its number.

        TPE keeps no state but its random generator (it reads the history from the storage),
        so a sampler made afresh for each trial loses nothing; seeded with the trial's number,
        a lone worker repeats its study exactly, and workers that join one study at the same
        moment draw different trials instead of the same ones. An enqueued trial keeps its
        given values. Called under ``ask_lock``: the study's sampler is shared.
        """
        settings = dict(self.spec.sampler)
        if settings.get("seed") is not None:
            settings["seed"] = int(settings["seed"]) + trial.number
        self.study.sampler = make_sampler(settings)
        for dimension in self.spec.space:
            dimension.suggest(trial)

    def say(self, text: str) -> None:
        with self.lock:
            print(text, file=self.stream, flush=True)

    # -- the study's counts ------------------------------------------------------------------

    def _fail_stale_trials(self) -> None:
        """Mark failed every running trial whose worker stopped beating (killed)."""
        state = self.optuna.trial.TrialState
        now = time.time()
        limit = STALE_HEARTBEATS * self.spec.heartbeat_seconds
        for trial in self.study.get_trials(deepcopy=False, states=(state.RUNNING,)):
            beat = trial.system_attrs.get(HEARTBEAT_ATTRIBUTE)
            if beat is None:
                beat = trial.datetime_start.timestamp() if trial.datetime_start else now
            if now - beat <= limit:
                continue
            try:
                self.storage.set_trial_user_attr(
                    trial._trial_id, ERROR_ATTRIBUTE,
                    f"its worker {trial.user_attrs.get(WORKER_ATTRIBUTE, '?')} stopped sending "
                    f"heartbeats ({now - beat:.0f} s without one): killed or cut off")
                self.storage.set_trial_state_values(trial._trial_id, state=state.FAIL)
            except (RuntimeError, ValueError):
                continue  # Another worker marked it first, or it finished meanwhile.
            self.say(f"[{self.spec.run_name(trial.number)}] marked failed: its worker stopped "
                     "sending heartbeats; another trial takes its place")

    def _counts(self) -> tuple[int, int]:
        """``(finished, running)`` trials of the study, every worker's."""
        state = self.optuna.trial.TrialState
        trials = self.study.get_trials(deepcopy=False)
        finished = sum(trial.state in (state.COMPLETE, state.PRUNED) for trial in trials)
        running = sum(trial.state == state.RUNNING for trial in trials)
        return finished, running

    def _within_count(self, trial) -> bool:
        """Whether a trial just asked for is one the study still needs."""
        state = self.optuna.trial.TrialState
        ahead = sum(other.state in (state.COMPLETE, state.PRUNED, state.RUNNING)
                    and other.number < trial.number
                    for other in self.study.get_trials(deepcopy=False))
        return ahead < self.spec.trials

    # -- one worker ----------------------------------------------------------------------------

    def worker(self, environment: dict[str, str]) -> None:
        state = self.optuna.trial.TrialState
        waited = False
        failures_in_a_row = 0
        while not self.stopping.is_set():
            if failures_in_a_row >= MAX_FAILURES_IN_A_ROW:
                self.gave_up = (f"{failures_in_a_row} trials in a row failed in this worker; "
                                "fix the cause (each trial's error is above and in its run "
                                "folder's notebook) and run the same command again")
                self.say(f"search: stopping: {self.gave_up}")
                self.stopping.set()
                return
            # This process's workers ask one at a time; other processes may still ask at the
            # same moment, which _within_count settles.
            with self.ask_lock:
                self._fail_stale_trials()
                finished, running = self._counts()
                if finished >= self.spec.trials:
                    return
                full = finished + running >= self.spec.trials
                if not full:
                    trial = self.study.ask()
                    if not self._within_count(trial):
                        self.storage.set_trial_user_attr(trial._trial_id, SURPLUS_ATTRIBUTE, True)
                        self.study.tell(trial, state=state.FAIL)
                        continue
                    self._draw(trial)
            if full:
                # The rest are running: wait, to take the place of any that fails.
                if not waited:
                    self.say(f"search: the study's last {running} trial(s) are running; "
                             "waiting for them to finish")
                    waited = True
                self.stopping.wait(min(self.spec.heartbeat_seconds, 5.0))
                continue
            outcome = self.execute(trial, environment)
            failures_in_a_row = failures_in_a_row + 1 if outcome == FAILED else 0

    def _heartbeat(self, trial_id: int, done: threading.Event) -> None:
        while True:
            try:
                self.storage.set_trial_system_attr(trial_id, HEARTBEAT_ATTRIBUTE, time.time())
            except (RuntimeError, ValueError):
                return  # The trial is finished (or was marked failed): nothing to keep alive.
            if done.wait(self.spec.heartbeat_seconds):
                return

    def execute(self, trial, environment: dict[str, str]) -> str:
        """Run one trial's notebook and tell the study how it ended.

        Returns:
            ``complete``, ``pruned`` or ``failed``.
        """
        spec = self.spec
        run_name = spec.run_name(trial.number)
        run_folder = self.output_dir / run_name
        prefix = f"[{run_name}]"
        beating = threading.Event()
        heartbeat = threading.Thread(target=self._heartbeat, args=(trial._trial_id, beating),
                                     daemon=True)
        heartbeat.start()
        for key, value in ((RUN_NAME_ATTRIBUTE, run_name), (RUN_FOLDER_ATTRIBUTE, str(run_folder)),
                           (WORKER_ATTRIBUTE, self.worker_name)):
            trial.set_user_attr(key, value)
        parameters = {**{key: value for key, value in spec.base.items() if key != "output_dir"},
                      **trial.params, "output_dir": str(self.output_dir), "run_name": run_name}
        shown = ", ".join(f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}"
                          for name, value in trial.params.items())
        self.say(f"{prefix} trial {trial.number} started ({shown})")
        connection = TrialConnection(storage=self.storage_url, study=spec.name,
                                     trial_id=trial._trial_id, trial_number=trial.number,
                                     pruner=spec.pruner)
        tail: deque[str] = deque(maxlen=30)

        def on_output(line: str) -> None:
            tail.append(line)
            if line.strip() and (self.verbose or PROGRESS_LINE.match(line)):
                self.say(f"{prefix} {line}")

        started = time.perf_counter()
        output_notebook = run_folder / run_folders.NOTEBOOK_FILE
        error = None
        with self.lock:
            self.running[trial.number] = trial
        try:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            returncode = self.executor(ExecutionRequest(
                notebook=self.notebook, output_notebook=output_notebook, parameters=parameters,
                cwd=Path.cwd(), environment={**environment, **connection.environment()},
                on_output=on_output))
        except Exception as exception:  # noqa: BLE001 - one broken trial must not stop the rest.
            returncode, error = None, f"{type(exception).__name__}: {exception}"
        finally:
            beating.set()
            with self.lock:
                self.running.pop(trial.number, None)
        seconds = time.perf_counter() - started
        summary = run_catalog.read_run(run_folder)
        value = (summary.metrics or {}).get(spec.objective)
        state = self.optuna.trial.TrialState
        if summary.status == COMPLETE and isinstance(value, (int, float)):
            outcome, told = COMPLETE, dict(values=float(value))
        elif summary.status == PRUNED:
            outcome, told = PRUNED, dict(state=state.PRUNED)
        else:
            if error is None:
                error = notebook_error(output_notebook) if output_notebook.is_file() else None
            if error is None:
                last = " | ".join(line.strip() for line in list(tail)[-5:] if line.strip())
                error = f"execution ended with exit status {returncode}: {last}"
            outcome, told = FAILED, dict(state=state.FAIL)
        try:
            if outcome == FAILED:
                trial.set_user_attr(ERROR_ATTRIBUTE, error[:2000])
            self.study.tell(trial, **told)
        except (RuntimeError, ValueError) as refused:
            # Marked failed by another worker meanwhile (a heartbeat that came too late).
            outcome, error = FAILED, f"the study refused this trial's result: {refused}"
        with self.lock:
            self.executed.append((trial.number, outcome))
        finished, _ = self._counts()
        if outcome == COMPLETE:
            detail = f"{spec.objective} {value:.4f}"
        elif outcome == PRUNED:
            detail = f"after epoch {summary.record.get('pruned_after_epoch')}"
        else:
            detail = error
        self.say(f"{prefix} {outcome.upper() if outcome == FAILED else outcome} in "
                 f"{seconds:.1f} s: {detail} - {finished} of {spec.trials} finished")
        return outcome

    def check_no_earlier_runs(self) -> None:
        """Refuse a new study whose run folder names are taken by another study's runs.

        A study deleted from (or kept in another) storage leaves its run folders; a new
        study of the same name would find every trial's folder taken and fail them all.
        """
        if self.study.get_trials(deepcopy=False) or not self.output_dir.is_dir():
            return
        taken = sorted(path.name for path in self.output_dir.glob(f"{self.spec.name}-t[0-9]*")
                       if path.is_dir())
        if taken:
            raise ValueError(
                f"{self.output_dir} already holds run folders of a study named "
                f"{self.spec.name!r} ({', '.join(taken[:3])}{', ...' if len(taken) > 3 else ''}),"
                f" but {display_name(self.storage_url)} has no trial of it: give the earlier "
                "study's --storage to continue it, or another name or output_dir.")

    def fail_running(self, why: str) -> None:
        """Mark this process's trials in flight failed (Ctrl-C): no stale wait for them."""
        state = self.optuna.trial.TrialState
        with self.lock:
            trials = list(self.running.values())
        for trial in trials:
            try:
                trial.set_user_attr(ERROR_ATTRIBUTE, why)
                self.study.tell(trial, state=state.FAIL)
            except (RuntimeError, ValueError):
                pass  # Finished meanwhile.

    def run(self) -> None:
        finished, running = self._counts()
        self.say(f"search: study {self.spec.name} in {display_name(self.storage_url)}: "
                 f"{finished} of {self.spec.trials} trials finished, {running} running; "
                 f"{self.workers} worker(s) here; run folders in {self.output_dir}")
        environment = worker_environment(self.workers)
        threads = [threading.Thread(target=self.worker, args=(environment,), daemon=True)
                   for _ in range(self.workers)]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(0.5)
        except BaseException:
            # Ctrl-C: ask no more trials; those running end with their processes (the
            # terminal's Ctrl-C reaches them too) and are marked failed now, so that the
            # same command, run again, takes their places at once.
            self.stopping.set()
            self.fail_running("interrupted (Ctrl-C) in its worker")
            raise


def run_search(spec: SearchSpec, *, workers: int | None = None, storage: str | None = None,
               notebook: str | Path | None = None, executor: Executor | None = None,
               compare: bool = True, verbose: bool = False,
               stream: TextIO | None = None) -> SearchResult:
    """Run (or join, or continue) a search until its study holds ``spec.trials`` finished trials.

    Everything is checked before the first trial: the spec (:meth:`SearchSpec.validate`),
    the storage (opened and, for a database, connected), and that an existing study of the
    same name was made for the same space and objective.

    Args:
        spec: The search.
        workers: Trials side by side in this process (default: the spec's, else
            ``sweep_workers.default_workers``).
        storage: Storage URL or journal path (default: the spec's, else the journal file
            beside the run folders).
        notebook: The notebook each trial executes (default: the main notebook).
        executor: Runs one execution (default: ``papermill_subprocess_executor``).
        compare: Write the comparison and the study's view at the end.
        verbose: Stream every line the notebooks print, not only the epoch lines.
        stream: Where progress goes (default: standard output).

    Returns:
        The :class:`SearchResult`.
    """
    from cifar_cnn.notebook_runner import main_notebook_path
    from cifar_cnn.sweep_spec import check_workers

    spec.validate()
    if workers is None:
        workers = spec.workers if spec.workers is not None else default_workers()
    workers = check_workers(workers, where="workers")
    storage = storage or spec.storage or default_storage(spec.runs_dir, spec.name)
    if not is_database_url(storage):
        spec.runs_dir.mkdir(parents=True, exist_ok=True)  # The default journal lies there.
    spec.storage = storage
    notebook = Path(notebook) if notebook else main_notebook_path()
    search = _Search(spec, storage, notebook, executor or papermill_subprocess_executor,
                     workers, stream or sys.stdout, verbose)
    search.check_no_earlier_runs()
    search.run()
    finished, _ = search._counts()
    result = SearchResult(study_name=spec.name, storage=display_name(storage),
                          output_dir=search.output_dir, finished=finished,
                          executed=list(search.executed))
    if compare:
        from cifar_cnn import study_report

        report = study_report.load_study_report(spec.name, storage, search.output_dir)
        result.comparison = study_report.write_study_report(report, search.output_dir)
        search.say("\n" + report.markdown().rstrip())
        for kind, path in result.comparison.items():
            search.say(f"comparison {kind}: {path}")
    search.say(f"search {'stopped' if search.gave_up else 'finished'}: {finished} of "
               f"{spec.trials} trials finished in the study; this process executed "
               f"{len(result.executed)}")
    result.gave_up = search.gave_up
    return result
