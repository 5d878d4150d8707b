"""Sweeps: the main notebook executed by papermill once per parameter set.

A sweep file (YAML) names a base and a grid and/or an explicit list of runs::

    name: lr-bs                    # optional prefix of every run name
    output_dir: runs               # optional; default: base's output_dir, else the
                                   # project's runs folder (cifar_cnn.runs.runs_folder)
    workers: 1                     # optional; default: default_workers()
    base: {epochs: 2, data_source: ../shared/data/cifar10-jpeg.tar.gz}
    grid: {learning_rate: [0.001, 0.003], batch_size: [32, 64]}
    runs:
      - {learning_rate: 0.01, batch_size: 128}

The parameter sets are base + each point of the grid's cartesian product (the first key
varies slowest), then base + each ``runs`` entry; with neither, base alone is one run. The
command line builds the same thing (``--set``, ``--grid``, ``--run``), on its own or on top
of a file. Values are YAML scalars, except that ``1e-3`` reads as a number and ``None`` as
null, as a Python user expects.

Every set is validated with ``RunConfig`` before anything runs: an invalid set is recorded
as failed with its error and never executed, the others go on. Each run is named from the
parameters that vary across the sweep (``lr0.001-bs32``) and gets its own run folder
``<output_dir>/<run name>/`` with the executed ``notebook.ipynb``. A run whose folder
already holds ``metrics.json`` is skipped, and an interrupted one resumes from its training
state, so running a stopped sweep again finishes it. A run that fails is recorded as failed
and the rest go on. ``<output_dir>/sweep.json`` (``<name>-sweep.json`` for a named sweep)
holds every run's status, error, timings and executed notebook, rewritten at every change.
At the end the runs are compared (:mod:`cifar_cnn.compare`).

Each execution is a separate ``python`` process driving papermill (and papermill its own
kernel), so runs are isolated, their output can be streamed line by line with the run's
name in front, and each gets its own environment. ``workers`` of them run side by side.

This module runs a sweep; its parts live apart: what a sweep is (:mod:`cifar_cnn.sweep_spec`),
its plan (:mod:`cifar_cnn.sweep_plan`), the lock on its output folder
(:mod:`cifar_cnn.sweep_lock`), how many executions run at once and in what environment
(:mod:`cifar_cnn.sweep_workers`), and one execution (:mod:`cifar_cnn.sweep_execution`).
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, TextIO

from cifar_cnn import run_catalog
from cifar_cnn import runs as run_folders
from cifar_cnn.files import write_json
from cifar_cnn.runs import COMPLETE, FAILED, PENDING, RUNNING, SKIPPED, SWEEP_STATUSES, utc_now
from cifar_cnn.sweep_execution import (
    ExecutionRequest,
    Executor,
    notebook_error,
    papermill_subprocess_executor,
)
from cifar_cnn.sweep_lock import output_folder_lock
from cifar_cnn.sweep_plan import SweepRun, plan_sweep, read_test_accuracy
from cifar_cnn.sweep_spec import (
    SweepSpec,
    check_workers,
    load_sweep_file,
    sanitize,
    varying_parameters,
)
from cifar_cnn.sweep_workers import default_workers, worker_environment

# Lines of a run's output streamed when not verbose (the sweep reports each outcome itself).
PROGRESS_LINE = re.compile(r"^(epoch \d+/\d+|resuming after epoch)")


@dataclass
class SweepResult:
    """What :func:`run_sweep` returns.

    Attributes:
        output_dir: The folder of the run folders.
        runs: Every run, in sweep order, with its final status.
        status_path: The sweep's status file (``sweep.json``).
        comparison: Paths of the comparison's ``csv``, ``markdown`` and ``figure``, or None.
    """

    output_dir: Path
    runs: list[SweepRun]
    status_path: Path
    comparison: dict[str, Path] | None = None

    @property
    def failed(self) -> list[SweepRun]:
        """The runs that failed (at validation or during execution)."""
        return [run for run in self.runs if run.status == FAILED]

    @property
    def counts(self) -> dict[str, int]:
        """How many runs have each status."""
        return {status: sum(run.status == status for run in self.runs)
                for status in SWEEP_STATUSES}


class _Sweep:
    """Executes the pending runs of a plan, recording and reporting as it goes."""

    def __init__(self, spec: SweepSpec, output_dir: Path, runs: list[SweepRun], workers: int,
                 notebook: Path, executor: Executor, stream: TextIO, verbose: bool):
        self.spec, self.output_dir, self.runs = spec, output_dir, runs
        self.workers, self.notebook, self.executor = workers, notebook, executor
        self.stream, self.verbose = stream, verbose
        self.status_path = output_dir / status_file_name(spec.name)
        self.lock = threading.Lock()
        self.started_at = utc_now()
        self.finished_at: str | None = None
        self.state = RUNNING
        self.comparison: dict[str, Path] | None = None
        self.to_execute = sum(run.status == PENDING for run in runs)
        self.started = 0

    def say(self, text: str) -> None:
        with self.lock:
            print(text, file=self.stream, flush=True)

    def record(self) -> None:
        """Rewrite the status file; called after every change, under the lock."""
        counts = {status: sum(run.status == status for run in self.runs)
                  for status in SWEEP_STATUSES}
        write_json(self.status_path, {
            "name": self.spec.name, "status": self.state, "output_dir": str(self.output_dir),
            "notebook": str(self.notebook), "workers": self.workers,
            "started_at": self.started_at, "finished_at": self.finished_at,
            "varying": varying_parameters([run.parameters for run in self.runs]),
            "counts": counts,
            "comparison": ({kind: str(path) for kind, path in self.comparison.items()}
                           if self.comparison else None),
            "runs": [run.to_record() for run in self.runs],
        })

    def left(self) -> int:
        return sum(run.status in (PENDING, RUNNING) for run in self.runs)

    def execute(self, run: SweepRun, environment: dict[str, str]) -> None:
        output_notebook = run.run_folder / run_folders.NOTEBOOK_FILE
        tail: deque[str] = deque(maxlen=30)  # Kept for the error when the notebook has none.
        prefix = f"[{run.run_name}]"

        def on_output(line: str) -> None:
            tail.append(line)
            if line.strip() and (self.verbose or PROGRESS_LINE.match(line)):
                self.say(f"{prefix} {line}")

        with self.lock:
            run.status, run.started_at = RUNNING, utc_now()
            self.started += 1
            position = f"{self.started} of {self.to_execute}"
            self.record()
        self.say(f"{prefix} started{' (resuming an interrupted run)' if run.resumed else ''}"
                 f", run {position} to execute")
        started = time.perf_counter()
        run.run_folder.mkdir(parents=True, exist_ok=True)
        try:
            returncode = self.executor(ExecutionRequest(
                notebook=self.notebook, output_notebook=output_notebook,
                parameters=run.notebook_parameters(), cwd=Path.cwd(), environment=environment,
                on_output=on_output))
            error = None
        except Exception as exception:  # noqa: BLE001 - one broken run must not stop the sweep.
            returncode, error = None, f"{type(exception).__name__}: {exception}"
        seconds = time.perf_counter() - started
        complete = returncode == 0 and (run.run_folder / run_folders.METRICS_FILE).is_file()
        if not complete and error is None:
            error = notebook_error(output_notebook) if output_notebook.is_file() else None
            if error is None:
                last = " | ".join(line.strip() for line in list(tail)[-5:] if line.strip())
                error = (f"execution ended with exit status {returncode} without writing "
                         f"{run_folders.METRICS_FILE}{': ' + last if last else ''}")
        with self.lock:
            run.finished_at, run.seconds = utc_now(), round(seconds, 3)
            run.notebook = output_notebook if output_notebook.is_file() else None
            if complete:
                run.status, run.test_accuracy = COMPLETE, read_test_accuracy(run.run_folder)
            else:
                run.status, run.failed_at, run.error = FAILED, "execution", error
            self.record()
        if complete:
            accuracy = (f", test accuracy {run.test_accuracy:.4f}"
                        if isinstance(run.test_accuracy, (int, float)) else "")
            self.say(f"{prefix} complete in {seconds:.1f} s{accuracy} - {self.left()} left")
        else:
            self.say(f"{prefix} FAILED after {seconds:.1f} s: {run.error}"
                     f"{f' (notebook: {run.notebook})' if run.notebook else ''}"
                     f" - {self.left()} left")

    def run(self) -> None:
        pending = [run for run in self.runs if run.status == PENDING]
        skipped = sum(run.status == SKIPPED for run in self.runs)
        invalid = [run for run in self.runs if run.status == FAILED]
        self.output_dir.mkdir(parents=True, exist_ok=True)
        with self.lock:
            self.record()
        self.say(f"sweep: {len(self.runs)} run(s) in {self.output_dir}: {len(pending)} to "
                 f"execute with {self.workers} worker(s), {skipped} already complete "
                 f"(skipped), {len(invalid)} invalid; status in {self.status_path}")
        for run in invalid:
            self.say(f"[{run.run_name}] FAILED before execution: {run.error}")
        environment = worker_environment(min(self.workers, max(1, len(pending))))
        pool = ThreadPoolExecutor(max_workers=self.workers)
        try:
            futures = [pool.submit(self.execute, run, environment) for run in pending]
            for future in as_completed(futures):
                future.result()
        except BaseException:
            # Ctrl-C (or a bug): start nothing more; executions already running end with
            # their own process (the terminal's Ctrl-C reaches it too) and record themselves.
            pool.shutdown(wait=False, cancel_futures=True)
            with self.lock:
                self.state, self.finished_at = "interrupted", utc_now()
                self.record()
            raise
        pool.shutdown()
        self.state, self.finished_at = "finished", utc_now()

    def compare(self) -> None:
        from cifar_cnn import compare

        summaries = []
        for run in self.runs:
            # A folder that failed validation holds someone else's config (or nothing).
            if run.failed_at != "validation" \
                    and (run.run_folder / run_folders.CONFIG_FILE).is_file():
                summary = run_catalog.read_run(run.run_folder)
                summary.name = run.run_name
            else:
                summary = run_catalog.RunSummary(name=run.run_name,
                                                 config=compare.nominal_config(run.parameters))
            if run.status == FAILED:
                summary.status, summary.error = FAILED, run.error
            summaries.append(summary)
        name = f"{sanitize(self.spec.name)}-comparison" if self.spec.name else "comparison"
        self.comparison = compare.write_comparison(summaries, self.output_dir, name)
        self.say("\n" + compare.markdown_table(compare.comparison_rows(summaries)).rstrip())
        for kind, path in self.comparison.items():
            self.say(f"comparison {kind}: {path}")


def status_file_name(name: str | None) -> str:
    """The sweep's status file name: ``sweep.json``, or ``<name>-sweep.json`` when named."""
    return f"{sanitize(name)}-sweep.json" if name else "sweep.json"


def _as_spec(sweep: SweepSpec | Mapping[str, Any] | str | Path) -> SweepSpec:
    if isinstance(sweep, SweepSpec):
        return sweep
    if isinstance(sweep, (str, Path)):
        return load_sweep_file(sweep)
    return SweepSpec.from_mapping(sweep)


def run_sweep(sweep: SweepSpec | Mapping[str, Any] | str | Path, *, workers: int | None = None,
              notebook: str | Path | None = None, executor: Executor | None = None,
              compare: bool = True, verbose: bool = False,
              stream: TextIO | None = None) -> SweepResult:
    """Execute the main notebook once per parameter set of a sweep.

    Every set is validated first; completed runs are skipped, interrupted ones resumed,
    failures recorded while the others go on. Progress (each run's start, epoch lines,
    outcome and how many are left) is printed to ``stream``; the status file is rewritten
    at every change; the runs are compared at the end.

    Args:
        sweep: A :class:`SweepSpec`, a dictionary shaped like a sweep file, or its path.
        workers: Executions side by side (default: the sweep's, else
            :func:`default_workers`).
        notebook: The notebook to execute (default: the main notebook).
        executor: Runs one :class:`ExecutionRequest` and returns its exit status (default:
            :func:`papermill_subprocess_executor`; tests pass their own).
        compare: Write the comparison table and figure at the end.
        verbose: Stream every line the notebooks print, not only the epoch lines.
        stream: Where progress goes (default: standard output).

    Returns:
        The :class:`SweepResult`.
    """
    from cifar_cnn.notebook_runner import main_notebook_path

    spec = _as_spec(sweep)
    if workers is None:
        workers = spec.workers if spec.workers is not None else default_workers()
    workers = check_workers(workers)
    notebook = Path(notebook) if notebook else main_notebook_path()
    output_dir, runs = plan_sweep(spec)  # A sweep that cannot run fails here, creating nothing.
    with output_folder_lock(output_dir):
        # Planned again under the lock: another sweep may have finished runs meanwhile.
        output_dir, runs = plan_sweep(spec)
        sweep_runner = _Sweep(spec, output_dir, runs, workers, notebook=notebook,
                              executor=executor or papermill_subprocess_executor,
                              stream=stream or sys.stdout, verbose=verbose)
        sweep_runner.run()
        if compare:
            sweep_runner.compare()
        with sweep_runner.lock:
            sweep_runner.record()
    counts = {status: count for status, count in
              ((status, sum(run.status == status for run in runs)) for status in SWEEP_STATUSES)
              if count}
    sweep_runner.say("sweep finished: " + ", ".join(f"{count} {status}"
                                                   for status, count in counts.items()))
    return SweepResult(output_dir=output_dir, runs=runs, status_path=sweep_runner.status_path,
                       comparison=sweep_runner.comparison)
