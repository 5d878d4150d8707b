"""Loading time of a CIFAR-10 source: the first load (decode and cache) and the second (cache).

Usage:
    python benchmarks/data_loading.py [--data-source PATH] [--repeats 3]
Writes benchmarks/results/data-loading-cpu-2core.json. The first load uses an empty
temporary cache folder, so it always measures decoding.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from common import DEFAULT_DATA_SOURCE, REPOSITORY_ROOT, machine_record

from cifar_cnn.data import load_cifar10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-source", default=DEFAULT_DATA_SOURCE)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=REPOSITORY_ROOT / "benchmarks" / "results"
                        / "data-loading-cpu-2core.json")
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory() as cache_dir:
        started = time.perf_counter()
        (x_train, _), (x_test, _) = load_cifar10(arguments.data_source, cache_dir=cache_dir)
        first_seconds = time.perf_counter() - started
        cached_seconds = []
        for _ in range(arguments.repeats):
            started = time.perf_counter()
            load_cifar10(arguments.data_source, cache_dir=cache_dir)
            cached_seconds.append(time.perf_counter() - started)
    result = {
        "benchmark": "load_cifar10: first load (decode + write cache) and cached loads",
        "command": f"python benchmarks/data_loading.py --repeats {arguments.repeats}",
        "data_source": arguments.data_source,
        "images": int(len(x_train) + len(x_test)),
        "first_load_seconds": first_seconds,
        "cached_load_seconds": cached_seconds,
        "cached_load_median_seconds": statistics.median(cached_seconds),
        "machine": machine_record(),
    }
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"first load {first_seconds:.1f} s, cached load median "
          f"{result['cached_load_median_seconds']:.2f} s -> {arguments.output}")


if __name__ == "__main__":
    main()
