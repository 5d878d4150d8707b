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
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, TextIO

from cifar_cnn import run_lock
from cifar_cnn import runs as run_folders
from cifar_cnn.config import RunConfig
from cifar_cnn.files import write_json
from cifar_cnn.runs import COMPLETE, FAILED, PENDING, RUNNING, SKIPPED, utc_now
from cifar_cnn.sweep_spec import (
    SweepSpec,
    check_workers,
    expand_parameter_sets,
    load_sweep_file,
    run_names,
    sanitize,
    varying_parameters,
)

# Run statuses in sweep.json (defined with the run folder): "skipped" is complete before
# this sweep started.
STATUSES = run_folders.SWEEP_STATUSES
SWEEP_LOCK_FILE = ".sweep.lock"

# Lines of a run's output streamed when not verbose (the sweep reports each outcome itself).
PROGRESS_LINE = re.compile(r"^(epoch \d+/\d+|resuming after epoch)")


# ---------------------------------------------------------------------------------------------
# Planning


@dataclass
class SweepRun:
    """One run of a sweep and what happened to it (a row of ``sweep.json``).

    Attributes:
        index: 1-based position in the sweep.
        run_name: The run folder's name.
        parameters: The parameter set as the sweep gave it (no output_dir, no run_name).
        run_folder: ``<output_dir>/<run_name>``.
        status: One of ``STATUSES``.
        error: Why it failed (``ExceptionName: message``), or None.
        failed_at: ``"validation"`` (never executed) or ``"execution"``, or None.
        resumed: Its folder held an interrupted run, which this execution continues.
        started_at: When its execution started (UTC, ISO 8601).
        finished_at: When its execution ended.
        seconds: Wall-clock seconds of the execution.
        notebook: The executed notebook, once one exists.
        test_accuracy: From ``metrics.json`` once complete.
    """

    index: int
    run_name: str
    parameters: dict[str, Any]
    run_folder: Path
    status: str = PENDING
    error: str | None = None
    failed_at: str | None = None
    resumed: bool = False
    started_at: str | None = None
    finished_at: str | None = None
    seconds: float | None = None
    notebook: Path | None = None
    test_accuracy: float | None = None

    def notebook_parameters(self) -> dict[str, Any]:
        """The parameters papermill injects: the set plus the folder it must write to."""
        return {**self.parameters, "output_dir": str(self.run_folder.parent),
                "run_name": self.run_name}

    def to_record(self) -> dict[str, Any]:
        """The JSON-ready row of ``sweep.json``."""
        record = dataclasses.asdict(self)
        record["run_folder"] = str(self.run_folder)
        record["notebook"] = str(self.notebook) if self.notebook else None
        return record


def _read_test_accuracy(run_folder: Path) -> float | None:
    return run_folders.read_run(run_folder).test_accuracy


def sweep_output_dir(spec: SweepSpec) -> Path:
    """The folder of a sweep's run folders: its output_dir, else base's, else the runs folder."""
    return run_folders.runs_folder(spec.output_dir or spec.base.get("output_dir"))


class SweepLockedError(ValueError):
    """Another sweep is running in the same output folder."""


@contextlib.contextmanager
def output_folder_lock(output_dir: Path) -> Iterator[None]:
    """Hold the output folder for one sweep at a time.

    Two sweeps in one folder would execute the same pending runs side by side and write one
    status file. The lock is an ``flock`` on ``<output_dir>/.sweep.lock``: the system
    releases it when the process ends, however it ends, so a killed sweep never leaves a
    stale lock. The file names the holder, for the message the second sweep prints.

    Args:
        output_dir: The sweep's output folder (created if needed).

    Raises:
        SweepLockedError: Another sweep holds the folder.
    """
    try:
        lock = run_lock.lock_file(output_dir / SWEEP_LOCK_FILE, command="cifar-cnn sweep")
    except run_lock.RunInUseError as busy:
        raise SweepLockedError(
            f"{output_dir} is in use by another sweep ({run_lock.describe_holder(busy.record)})."
            " Wait for it to finish, or give this sweep another output_dir.") from None
    try:
        yield
    finally:
        lock.release()


def plan_sweep(spec: SweepSpec) -> tuple[Path, list[SweepRun]]:
    """Expand, name and validate every parameter set, and see which are already done.

    Nothing is executed. Invalid sets come back ``failed`` (``failed_at="validation"``),
    runs whose folder holds a completed run of the same config come back ``skipped``, a
    folder holding a different config is ``failed``; the rest are ``pending``.

    Args:
        spec: The sweep.

    Returns:
        ``(output_dir, runs)``.
    """
    # Where run folders go and what they are called is the sweep's business, not a value
    # that may vary from run to run (an explicit run_name in a runs entry is the exception).
    for key, place in (("output_dir", spec.grid), ("run_name", spec.grid),
                       ("run_name", spec.base)):
        if key in place:
            where = "grid" if place is spec.grid else "base"
            raise ValueError(f"{key} cannot be set in the sweep's {where}: run folders are "
                             "named from the parameters (use name for a prefix, output_dir "
                             "for their folder, or run_name in a runs entry).")
    if any("output_dir" in run for run in spec.runs):
        raise ValueError("output_dir cannot be set in a runs entry: all of a sweep's run "
                         "folders go under the sweep's output_dir.")
    for index, run in enumerate(spec.runs):
        if "run_name" in run and (not isinstance(run["run_name"], str)
                                  or sanitize(run["run_name"]) != run["run_name"]):
            raise ValueError(f"runs[{index}]: run_name must be a plain folder name of letters, "
                             f"digits, '.', '_' and '-', got {run['run_name']!r}.")
    base = dict(spec.base)
    base.pop("output_dir", None)
    output_dir = sweep_output_dir(spec)
    parameter_sets = expand_parameter_sets(base, spec.grid, spec.runs)
    names = run_names(parameter_sets, prefix=spec.name)
    runs = []
    for index, (parameters, name) in enumerate(zip(parameter_sets, names), start=1):
        parameters = {key: value for key, value in parameters.items() if key != "run_name"}
        run = SweepRun(index=index, run_name=name, parameters=parameters,
                       run_folder=output_dir / name)
        try:
            config = RunConfig.from_parameters(run.notebook_parameters())
        except (ValueError, TypeError) as error:
            run.status, run.failed_at = FAILED, "validation"
            run.error = f"{type(error).__name__}: {error}"
            runs.append(run)
            continue
        # The one rule of run folders (runs.existing_run_state), as start_run applies it.
        existing = run_folders.existing_run_state(run.run_folder, config,
                                                  given_parameters=set(run.parameters))
        if existing.state == run_folders.DONE:
            run.status, run.test_accuracy = SKIPPED, _read_test_accuracy(run.run_folder)
            notebook = run.run_folder / run_folders.NOTEBOOK_FILE
            run.notebook = notebook if notebook.is_file() else None
        elif existing.state == run_folders.CONFLICT:
            # Caught here rather than in the notebook, so nothing is executed to find it out.
            run.status, run.failed_at = FAILED, "validation"
            run.error = f"ValueError: {existing.reason}"
        run.resumed = existing.state == run_folders.RESUME
        runs.append(run)
    return output_dir, runs


# ---------------------------------------------------------------------------------------------
# Executing


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # The cores this process may use (containers).
    except AttributeError:
        return os.cpu_count() or 1


def _gpu_present() -> bool:
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return Path("/dev/nvidia0").exists() or Path("/proc/driver/nvidia/gpus").is_dir()


def default_workers(cpu_count: int | None = None, gpu_present: bool | None = None) -> int:
    """How many notebooks to execute side by side when the sweep does not say.

    One per two usable cores (each TensorFlow kernel then keeps two threads; on a 2-core
    machine that is 1), and 1 when an NVIDIA GPU is present, because each kernel would
    try to take the whole GPU's memory.

    Args:
        cpu_count: Usable cores (default: this process's CPU affinity).
        gpu_present: Whether a GPU is present (default: look for /dev/nvidia0).

    Returns:
        At least 1.
    """
    cpu_count = _usable_cpus() if cpu_count is None else cpu_count
    gpu_present = _gpu_present() if gpu_present is None else gpu_present
    return 1 if gpu_present else max(1, cpu_count // 2)


def worker_environment(workers: int, cpu_count: int | None = None,
                       base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of each execution: threads shared out when several run at once.

    Each TensorFlow kernel otherwise sizes its thread pools to the whole machine, and
    ``workers`` of them would fight over the cores. Variables already set are kept.

    Args:
        workers: Executions running side by side.
        cpu_count: Usable cores (default: this process's CPU affinity).
        base: The environment to start from (default: ``os.environ``).

    Returns:
        The environment for the execution's process.
    """
    environment = dict(os.environ if base is None else base)
    environment["PYTHONUNBUFFERED"] = "1"  # Epoch lines arrive as they are printed.
    if workers > 1:
        threads = max(1, (_usable_cpus() if cpu_count is None else cpu_count) // workers)
        environment.setdefault("TF_NUM_INTRAOP_THREADS", str(threads))
        environment.setdefault("TF_NUM_INTEROP_THREADS", str(min(2, threads)))
        environment.setdefault("OMP_NUM_THREADS", str(threads))
        environment.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    return environment


@dataclass(frozen=True)
class ExecutionRequest:
    """One notebook execution, as handed to an executor.

    Attributes:
        notebook: The notebook to run.
        output_notebook: Where papermill writes the executed copy.
        parameters: The parameters papermill injects.
        cwd: The kernel's working folder.
        environment: The process environment.
        on_output: Called with every line the execution prints, without its newline.
    """

    notebook: Path
    output_notebook: Path
    parameters: dict[str, Any]
    cwd: Path
    environment: dict[str, str]
    on_output: Callable[[str], None]


def papermill_subprocess_executor(request: ExecutionRequest) -> int:
    """Execute the notebook in a child ``python`` process, streaming its output.

    The child runs ``cifar_cnn.notebook_runner`` (the same path as ``cifar-cnn notebook``):
    papermill with the notebook's standard output on the child's, its standard error in the
    run folder's log.

    Args:
        request: What to execute.

    Returns:
        The child's exit status (0: the notebook ran to the end).
    """
    payload = json.dumps({"notebook": str(request.notebook), "parameters": request.parameters})
    with subprocess.Popen([sys.executable, "-m", "cifar_cnn.notebook_runner", payload],
                          cwd=request.cwd,
                          env=request.environment, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                          errors="replace", bufsize=1) as process:
        for line in process.stdout:
            request.on_output(line.rstrip("\n"))
        return process.wait()


Executor = Callable[[ExecutionRequest], int]


def notebook_error(path: Path) -> str | None:
    """The first error an executed notebook shows, as ``ExceptionName: message``.

    Args:
        path: An executed notebook.

    Returns:
        The error, or None when it has none (or cannot be read).
    """
    try:
        notebook = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                message = output.get("evalue")
                return f"{output.get('ename')}: {message}" if message else output.get("ename")
    return None


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
        return {status: sum(run.status == status for run in self.runs) for status in STATUSES}


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
        counts = {status: sum(run.status == status for run in self.runs) for status in STATUSES}
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
                run.status, run.test_accuracy = COMPLETE, _read_test_accuracy(run.run_folder)
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
                summary = run_folders.read_run(run.run_folder)
                summary.name = run.run_name
            else:
                summary = run_folders.RunSummary(name=run.run_name,
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
              ((status, sum(run.status == status for run in runs)) for status in STATUSES)
              if count}
    sweep_runner.say("sweep finished: " + ", ".join(f"{count} {status}"
                                                   for status, count in counts.items()))
    return SweepResult(output_dir=output_dir, runs=runs, status_path=sweep_runner.status_path,
                       comparison=sweep_runner.comparison)
