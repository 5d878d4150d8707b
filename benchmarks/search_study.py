"""An Optuna study of the seed recipe on the real data: does a search beat the seed's settings?

Usage:
    python benchmarks/search_study.py [--data-source PATH] [--trials 16] [--runs-dir DIR]

Runs the study of ``benchmarks/search_seed.yaml`` (the seed recipe for 5 epochs with a 10%
validation split; learning rate, batch size and preprocessing searched; median pruning; the
seed notebook's own settings, learning rate 1e-3, batch 32 and pixels / 255, enqueued as
trial 0) through ``cifar-cnn search``'s own path (:func:`cifar_cnn.search.run_search`): it continues a study already in
``--runs-dir`` to its count and only reads back one that is finished. Then it writes
``benchmarks/results/search-seed-<machine>.json``, ``.md`` and ``.png``: every trial, and the
best trial against the seed's own settings on the objective (the best validation accuracy
over the 5 epochs) and on the test set, with the machine and the commit.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

from common import DEFAULT_DATA_SOURCE, REPOSITORY_ROOT, machine_record, machine_slug

from cifar_cnn import study_report
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
    record = {
        "machine": machine_record(),
        "spec": {"file": str(SPEC_FILE.relative_to(REPOSITORY_ROOT)), "base": spec.base,
                 "space": [vars(dimension) | {"choices": list(dimension.choices)}
                           for dimension in spec.space],
                 "objective": spec.objective, "sampler": spec.sampler, "pruner": spec.pruner,
                 "trials": spec.trials},
        "study": {"name": spec.name, "storage": result.storage, "counts": report.counts(),
                  "importances": report.importances},
        "seed_settings": baseline, "best": best,
        "best_beats_seed_settings": {
            "on_objective": (best["value"] > baseline["value"]) if best and baseline else None,
            "on_test_accuracy": (best["test_accuracy"] > baseline["test_accuracy"])
            if best and baseline else None},
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
    write_text(output.with_suffix(".md"), summary.getvalue() + "\n" + report.markdown())
    write_figure(output.with_suffix(".png"), study_figure(report), dpi=100)
    print(summary.getvalue() + report.markdown())
    print(f"results: {output.with_suffix('.json')}, .md, .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
