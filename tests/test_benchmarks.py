"""The benchmark scripts run end to end on a tiny fixture and write the promised fields."""

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _run(script, *arguments, timeout=600):
    completed = subprocess.run([sys.executable, str(BENCHMARKS / script), *arguments],
                               capture_output=True, text=True, timeout=timeout)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-3000:]
    return completed.stdout


def test_recipe_benchmark_records_curves_thresholds_and_machine(image_folder_archive, tmp_path):
    output = tmp_path / "results.json"
    _run("recipes.py", "--recipes", "seed:2", "airbench_small:1", "--data-source",
         str(image_folder_archive), "--output", str(output))
    results = json.loads(output.read_text())
    assert results["machine"]["cpu_count"] >= 1 and results["machine"]["processor"]
    assert [record["recipe"] for record in results["recipes"]] == ["seed", "airbench_small"]
    seed, small = results["recipes"]
    assert seed["epochs"] == 2 and len(seed["per_epoch"]) == 2
    assert set(seed["seconds_to"]) == {"0.68", "0.70", "0.80", "0.90", "0.94"}
    seconds = [row["train_seconds"] for row in seed["per_epoch"]]
    assert 0 < seconds[0] < seconds[1] == seed["train_seconds"]
    assert 0.0 <= seed["final_test_accuracy"] <= 1.0
    for threshold, reached in seed["seconds_to"].items():
        first = [row["train_seconds"] for row in seed["per_epoch"]
                 if row["test_accuracy"] >= float(threshold)]
        assert reached == (first[0] if first else None)
    assert small["test_time_augmentation"] == "flip" and small["precision_policy"]
    # The per-epoch callback and the run's own final evaluation are the same library call.
    assert small["final_test_accuracy"] == small["per_epoch"][-1]["test_accuracy"]
    assert seed["per_epoch_evaluation"]["counted_in_train_seconds"] is False
    assert small["pipeline_images_per_second"] > 0 and small["peak_memory_mib"] > 0
    assert output.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    table = _run("table.py", str(output))
    assert table.count("\n| `") == 2 and "to 0.94" in table


def test_seed_pipeline_benchmark_compares_both_paths(image_folder_archive, tmp_path):
    output = tmp_path / "seed.json"
    _run("seed_pipeline.py", "--epochs", "2", "--repeats", "1", "--data-source",
         str(image_folder_archive), "--output", str(output))
    result = json.loads(output.read_text())
    assert len(result["plain_numpy_fit_epoch_seconds"][0]) == 2
    assert len(result["library_pipeline_epoch_seconds"][0]) == 2
    assert result["ratio_library_to_plain"] == \
        result["library_median_seconds"] / result["plain_median_seconds"]


def test_data_loading_benchmark_times_first_and_cached_loads(image_folder_archive, tmp_path):
    output = tmp_path / "loading.json"
    _run("data_loading.py", "--repeats", "2", "--data-source", str(image_folder_archive),
         "--output", str(output))
    result = json.loads(output.read_text())
    assert result["images"] == 300 and len(result["cached_load_seconds"]) == 2
    assert result["first_load_seconds"] > 0 and result["cached_load_median_seconds"] > 0
