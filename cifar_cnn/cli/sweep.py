"""``cifar-cnn sweep``: execute the main notebook once per parameter set (see
:mod:`cifar_cnn.sweep` for the sweep file and what a sweep does)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence, TextIO

from cifar_cnn.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SOME_FAILED,
    add_execution_options,
    message,
)
from cifar_cnn.runs import FAILED, PENDING, RUNS_FOLDER_NAME, RUNS_FOLDER_VARIABLE, SKIPPED


def add_parser(commands) -> None:
    """Add the ``sweep`` command.

    Args:
        commands: The subparsers of the ``cifar-cnn`` parser.
    """
    parser = commands.add_parser(
        "sweep", help="execute the main notebook once per parameter set (papermill)",
        description="Execute the main notebook once per parameter set from a YAML file and/or "
                    "--set/--grid/--run options; completed runs are skipped on a re-run, "
                    "failures are recorded and the rest go on; ends with a comparison.")
    parser.add_argument("sweep_file", nargs="?", default=None, metavar="SWEEP.yaml",
                        help="sweep file with base, grid and/or runs (optional when --set, "
                             "--grid or --run describe the sweep)")
    parser.add_argument("--set", dest="set_values", action="append", default=[],
                        metavar="NAME=VALUE",
                        help="a parameter shared by every run (added to or replacing base); "
                             "repeatable; values are YAML scalars: 1, 1e-3, null, true")
    parser.add_argument("--grid", dest="grid_values", action="append", default=[],
                        metavar="NAME=V1,V2",
                        help="a parameter's values (or NAME=[V1, V2] as a YAML list), one run "
                             "per combination with the other --grid axes; repeatable")
    parser.add_argument("--run", dest="run_values", action="append", default=[],
                        metavar="NAME=VALUE,...",
                        help="one extra parameter set, as NAME=VALUE,NAME=VALUE or a YAML "
                             "mapping '{learning_rate: 0.01}'; repeatable")
    parser.add_argument("--name", default=None,
                        help="sweep name: prefix of run names and of the status file")
    parser.add_argument("--output-dir", default=None,
                        help=f"folder of the run folders (default: ${RUNS_FOLDER_VARIABLE}, else "
                             f"the project's {RUNS_FOLDER_NAME}/ folder)")
    add_execution_options(parser, "notebooks executed", "the comparison table and figure")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the planned runs and what would happen, execute nothing")
    parser.set_defaults(handler=run)


def spec_from_arguments(arguments: argparse.Namespace):
    """Build the sweep from a sweep file and/or ``--set``, ``--grid`` and ``--run``.

    Command-line values are applied on top of the file: ``--set`` replaces base values,
    ``--grid`` replaces or adds a grid axis, ``--run`` appends runs.

    Args:
        arguments: Parsed by the ``sweep`` parser.

    Returns:
        The ``cifar_cnn.sweep_spec.SweepSpec``.
    """
    from cifar_cnn.sweep_spec import (
        SweepSpec,
        check_workers,
        load_sweep_file,
        parse_assignment,
        parse_grid_assignment,
        parse_run_mapping,
        sanitize,
    )

    has_values = arguments.set_values or arguments.grid_values or arguments.run_values
    if arguments.sweep_file is None and not has_values:
        raise ValueError("Nothing to sweep: give a sweep file, or --set/--grid/--run values "
                         "(e.g. --set epochs=1 --grid learning_rate=0.001,0.003).")
    spec = load_sweep_file(arguments.sweep_file) if arguments.sweep_file else SweepSpec()
    spec.base.update(parse_assignment(text) for text in arguments.set_values)
    spec.grid.update(parse_grid_assignment(text) for text in arguments.grid_values)
    spec.runs.extend(parse_run_mapping(text) for text in arguments.run_values)
    if arguments.name is not None:
        if not sanitize(arguments.name):
            raise ValueError(f"--name must contain a letter or digit, got {arguments.name!r}.")
        spec.name = arguments.name
    if arguments.output_dir is not None:
        spec.output_dir = arguments.output_dir
    if arguments.workers is not None:
        spec.workers = check_workers(arguments.workers, where="--workers")
    return spec


def _print_plan(output_dir: Path, runs: Sequence, stream: TextIO) -> None:
    what = {PENDING: "execute", SKIPPED: "skip (complete)", FAILED: "invalid"}
    print(f"{len(runs)} run(s) in {output_dir}:", file=stream)
    for run in runs:
        action = "resume" if run.resumed else what.get(run.status, run.status)
        parameters = ", ".join(f"{name}={value!r}" for name, value in run.parameters.items())
        print(f"  {run.run_name}: {action} ({parameters})"
              f"{f' - {run.error}' if run.error else ''}", file=stream)


def run(arguments: argparse.Namespace) -> int:
    """Execute the sweep, or with ``--dry-run`` print its plan.

    Args:
        arguments: Parsed by the ``sweep`` parser.

    Returns:
        0 when every run completed (now or before), 1 when any failed, 130 when
        interrupted; bad input raises ``ValueError``.
    """
    from cifar_cnn.sweep import run_sweep
    from cifar_cnn.sweep_plan import plan_sweep

    spec = spec_from_arguments(arguments)
    if arguments.dry_run:
        output_dir, runs = plan_sweep(spec)
        _print_plan(output_dir, runs, sys.stdout)
        return EXIT_SOME_FAILED if any(run.status == FAILED for run in runs) else EXIT_OK
    try:
        result = run_sweep(spec, notebook=arguments.notebook, compare=arguments.compare,
                           verbose=arguments.verbose)
    except KeyboardInterrupt:
        # The runs in flight stop with their kernels; their folders keep the training state.
        message("sweep", "interrupted", "the same command resumes it")
        return EXIT_INTERRUPTED
    return EXIT_SOME_FAILED if result.failed else EXIT_OK
