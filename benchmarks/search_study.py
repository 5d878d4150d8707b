"""An Optuna study of the seed recipe on the real data: does a search beat the seed's settings?

Usage:
    python benchmarks/search_study.py [--data-source PATH] [--trials 16] [--runs-dir DIR]

Runs the study of ``benchmarks/search_seed.yaml`` (the seed recipe for 5 epochs with a 10%
validation split; learning rate, batch size and preprocessing searched; median pruning; the
seed notebook's own settings, learning rate 1e-3, batch 32 and pixels / 255, enqueued as
trial 0) through ``cifar-cnn search``'s own path (:func:`cifar_cnn.search.run_search`): it
continues a study already in ``--runs-dir`` to its count and only reads back one that is
finished. Then it writes
``benchmarks/results/search-seed-<machine>.json``, ``.md`` and ``.png``: every trial, and the
best trial against the seed's own settings on the objective (the best validation accuracy
over the 5 epochs) and on the test set, with the machine and the commit. One trial is one
seed; ``--confirm-seeds`` trains the best trial's settings and the seed's own again with other
seeds, as a sweep (:func:`cifar_cnn.sweep.run_sweep`, the same path again), so that the
difference can be set against the seed-to-seed spread.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # machine_slug imports TensorFlow here.

from common import DEFAULT_DATA_SOURCE, REPOSITORY_ROOT, machine_record, machine_slug

from cifar_cnn import run_catalog, study_report
from cifar_cnn.files import write_figure, write_json, write_text
from cifar_cnn.plots.study import study_figure
from cifar_cnn.runs import COMPLETE
from cifar_cnn.search import run_search
from cifar_cnn.search_spec import load_search_file

SPEC_FILE = REPOSITORY_ROOT / "benchmarks" / "search_seed.yaml"


def _trial_record(trial: study_report.TrialRow, runs_by_name: dict) -> dict:
    run = runs_by_name.get(trial.run_name)
    return {"number": trial.number, "run": trial.run_name, "state": trial.state,
            "value": trial.value, "parameters": trial.parameters,
            "epochs_trained": len(trial.steps),
            "test_accuracy": run.test_accuracy if run else None,
            "train_seconds": run.train_seconds if run else None}


def _confirm(spec, best: dict, baseline: dict, seeds: list[int], output_dir: Path) -> dict | None:
    """Train the best trial's settings and the seed's own with other seeds (a sweep)."""
    if not seeds or best["number"] == baseline["number"]:
        return None
    from cifar_cnn.sweep import run_sweep
    from cifar_cnn.sweep_spec import SweepSpec

    base = {name: value for name, value in spec.base.items() if name != "output_dir"}
    settings = {"best": best["parameters"], "seed_settings": baseline["parameters"]}
    sweep = SweepSpec(base=base, output_dir=str(output_dir), name="confirm", runs=[
        {**parameters, "seed": seed, "run_name": f"{name}-seed{seed}"}
        for name, parameters in settings.items() for seed in seeds])
    result = run_sweep(sweep, compare=False)
    confirmation = {}
    for name in settings:
        runs = [{"seed": run.parameters["seed"], "status": run.status,
                 "objective": (run_catalog.read_run(run.run_folder).metrics or {}).get(
                     spec.objective),
                 "test_accuracy": run.test_accuracy}
                for run in result.runs if run.run_name.startswith(f"{name}-seed")]
        done = [run for run in runs if run["test_accuracy"] is not None]
        confirmation[name] = {
            "parameters": settings[name], "runs": runs,
            "mean_objective": statistics.mean(run["objective"] for run in done) if done else None,
            "mean_test_accuracy": statistics.mean(run["test_accuracy"] for run in done)
            if done else None}
    return confirmation


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-source", default=DEFAULT_DATA_SOURCE)
    parser.add_argument("--trials", type=int, default=None,
                        help="finished trials (default: the spec's)")
    parser.add_argument("--runs-dir", type=Path, default=REPOSITORY_ROOT / "runs" / "search-study",
                        help="where the trials' run folders and the study's journal go")
    parser.add_argument("--output", type=Path, default=None,
                        help="results path without suffix (default: benchmarks/results/"
                             "search-seed-<machine>)")
    parser.add_argument("--confirm-seeds", type=int, nargs="*", default=[1, 2],
                        help="seeds for training the best and the seed's settings again "
                             "(default: 1 2; none to skip)")
    arguments = parser.parse_args()

    spec = load_search_file(SPEC_FILE)
    spec.base["data_source"] = str(Path(arguments.data_source).resolve())
    spec.output_dir = str(arguments.runs_dir)
    spec.trials = arguments.trials or spec.trials
    result = run_search(spec, compare=False)
    report = study_report.load_study_report(spec.name, spec.storage, arguments.runs_dir)
    runs_by_name = {run.name: run for run in report.runs}
    trials = [_trial_record(trial, runs_by_name) for trial in report.trials if not trial.surplus]
    seed_settings = spec.enqueue[0]
    baseline = next((trial for trial in trials if trial["parameters"] == seed_settings
                     and trial["state"] == COMPLETE), None)
    best = report.best and next(trial for trial in trials if trial["number"] == report.best.number)
    confirmation = _confirm(spec, best, baseline, arguments.confirm_seeds,
                            arguments.runs_dir / "confirm") if best and baseline else None
    record = {
        "machine": machine_record(),
        "spec": {"file": str(SPEC_FILE.relative_to(REPOSITORY_ROOT)), "base": spec.base,
                 "space": [dimension.to_record() for dimension in spec.space],
                 "objective": spec.objective, "sampler": spec.sampler, "pruner": spec.pruner,
                 "trials": spec.trials},
        "study": {"name": spec.name, "storage": result.storage, "counts": report.counts(),
                  "importances": report.importances},
        "seed_settings": baseline, "best": best,
        "best_beats_seed_settings": {
            "on_objective": (best["value"] > baseline["value"]) if best and baseline else None,
            "on_test_accuracy": (best["test_accuracy"] > baseline["test_accuracy"])
            if best and baseline else None},
        "confirmation": confirmation,
        "trials": trials,
    }
    output = arguments.output or (REPOSITORY_ROOT / "benchmarks" / "results"
                                  / f"search-seed-{machine_slug()}")
    write_json(output.with_suffix(".json"), record)
    summary = io.StringIO()
    if best and baseline:
        print(f"Best trial {best['number']} ({best['parameters']}): {spec.objective} "
              f"{best['value']:.4f}, test accuracy {best['test_accuracy']:.4f}; the seed's own "
              f"settings (trial {baseline['number']}): {baseline['value']:.4f}, test accuracy "
              f"{baseline['test_accuracy']:.4f}.", file=summary)
    for name, again in (confirmation or {}).items():
        seeds = ", ".join(str(run["seed"]) for run in again["runs"])
        tests = ", ".join(f"{run['test_accuracy']:.4f}" for run in again["runs"]
                          if run["test_accuracy"] is not None)
        print(f"Again with seeds {seeds}, {name}: {spec.objective} mean "
              f"{again['mean_objective']:.4f}, test accuracy mean "
              f"{again['mean_test_accuracy']:.4f} ({tests}).", file=summary)
    write_text(output.with_suffix(".md"), summary.getvalue() + "\n" + report.markdown())
    write_figure(output.with_suffix(".png"), study_figure(report), dpi=100)
    print(summary.getvalue() + report.markdown())
    print(f"results: {output.with_suffix('.json')}, .md, .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
