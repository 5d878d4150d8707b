"""Where a training step's time goes, by kind of work, set against this machine's roofline.

Each variant (a set of kernel, thread and compiler settings) runs in its own process,
because TensorFlow reads its kernel choice once, when it is imported. The process builds
the recipe's model through the library's own steps (``cifar_cnn.experiment``: the data,
model, optimizer and ``tf.data`` pipeline a run trains with), takes warm-up steps
(tracing), times ``--steps`` steps of ``model.fit`` with a per-batch clock, then traces
``--traced-steps`` more with TensorFlow's profiler and sums the time of every TensorFlow op
on the executor threads by kind of work (:func:`kind_of_work`).

The roofline, measured in the same run before any variant: the counted training FLOPs of a
batch (``flops.py``) at the measured matmul peak of the precision the model computes in, plus
the bytes the non-matmul layers move (``flops.ELEMENTWISE_BYTES_CONVENTION``) at the measured
memory bandwidth (``machine_peak.memory_bandwidth_gbs``): the step time this machine could
reach if the step were nothing but its matmuls at peak and its elementwise work at full
bandwidth.

Variants are written ``KEY=VALUE[,KEY=VALUE...]`` (``default`` for none) with the keys
``onednn`` (on/off: ``TF_ENABLE_ONEDNN_OPTS``), ``bfc`` (on/off: ``TF_CPU_ALLOCATOR_USE_BFC``,
TensorFlow's caching allocator for CPU tensors), ``inter_op`` and ``intra_op`` (thread
counts), ``xla`` (on/off), ``precision`` (a ``mixed_precision`` choice) and ``batchnorm``
(``fused``, the library's ``FusedBatchNormalization``, or ``keras``, Keras' own layer swapped
in to measure what the fused one buys). ``default`` is what a run gets from the library as
it is; ``onednn=off,batchnorm=keras`` is the code before issue 15.

Usage:
    python benchmarks/profile_step.py [--recipe airbench] [--variants default onednn=off ...]
        [--steps 3] [--traced-steps 2] [--warmup-steps 1] [--data-source PATH] [--output PATH]
Writes benchmarks/results/profile-<machine>.json (``profile-cpu-2core-avx2.json``) and prints the table (``--markdown`` of a
results file prints it again).
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import (DEFAULT_DATA_SOURCE, REPOSITORY_ROOT, machine_slug,
                    print_result, run_child)

VARIANT_KEYS = {
    "onednn": ("on", "off"), "bfc": ("on", "off"), "xla": ("on", "off"),
    "batchnorm": ("fused", "keras"),
    "inter_op": "a thread count", "intra_op": "a thread count",
    "precision": "a mixed_precision choice",
}
DEFAULT_VARIANTS = ("default", "onednn=off")
# Kinds of work, in the order the table lists them.
KINDS = ("convolution forward", "convolution backward (input)",
         "convolution backward (filter)", "head matmul", "BatchNorm", "activation (GELU)",
         "pooling", "preprocessing and whitening", "loss and metrics",
         "optimizer: Muon (filters)", "optimizer: SGD (biases, head)", "optimizer: shared",
         "input pipeline (step waiting for its batch)", "casts and layout",
         "XLA-compiled step (not split by kind)", "other")
SUM_NOTE = ("milliseconds per step summed over TensorFlow's executor threads: two ops may run "
            "at once on different cores (inter-op parallelism), so the kinds can add up to more "
            "than the step's wall time; each op's time includes the work of the intra-op threads "
            "it waits for")


def parse_variant(text: str) -> dict:
    """``KEY=VALUE,...`` (or ``default``) as a settings dict, checked against VARIANT_KEYS.

    Args:
        text: A ``--variants`` entry.

    Returns:
        ``{key: value}`` (empty for ``default``).

    Raises:
        ValueError: An unknown key or a bad value, naming the valid ones.
    """
    if text == "default":
        return {}
    settings = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        choices = VARIANT_KEYS.get(key)
        if choices is None:
            raise ValueError(f"unknown variant key {key!r} in {text!r}; valid keys: "
                             f"{', '.join(VARIANT_KEYS)}")
        if isinstance(choices, tuple) and value not in choices:
            raise ValueError(f"{key} must be one of {', '.join(choices)}, not {value!r}")
        if key in ("inter_op", "intra_op") and not value.isdigit():
            raise ValueError(f"{key} must be a thread count, not {value!r}")
        settings[key] = value
    return settings


def kind_of_work(op_name: str) -> str | None:
    """The kind of work of one traced TensorFlow op, from its ``scope/name:Type`` name.

    Layer and optimizer-group name scopes decide first (the airbench network names its
    layers ``*_conv*``, ``*_bn*``, ``*_gelu*``, ``*_pool``; ``cifar_cnn.muon`` scopes its
    groups ``muon`` and ``sgd``), then the op type.

    Args:
        op_name: The traced event's name.

    Returns:
        One of ``KINDS``, or None for events that only contain other ops (function calls).
    """
    if op_name == "CpuExecutable::ExecuteAsyncOnStream":  # One whole XLA-compiled program.
        return "XLA-compiled step (not split by kind)"
    scope, _, op_type = op_name.rpartition(":")
    if not scope or "::" in op_name or op_type in ("StatefulPartitionedCall", "PartitionedCall"):
        return None
    path = scope.lower().split("/")
    # Keras numbers a scope entered again: muon, muon_1, muon_2, ...
    if any(re.fullmatch(r"muon(_\d+)?", part) for part in path):
        return "optimizer: Muon (filters)"
    if any(re.fullmatch(r"sgd(_\d+)?", part) for part in path):
        return "optimizer: SGD (biases, head)"
    if any(re.fullmatch(r"(airbench_muon|adam|optimizer)(_\d+)?", part) for part in path):
        return "optimizer: shared"
    if "IteratorGetNext" in op_type:
        return "input pipeline (step waiting for its batch)"
    if "Conv2DBackpropInput" in op_type:
        return "convolution backward (input)"
    if "Conv2DBackpropFilter" in op_type:
        return "convolution backward (filter)"
    layer = next((part for part in path if "_conv" in part or "_bn" in part or "gelu" in part
                  or "pool" in part or "whitening" in part or "preprocessing" in part
                  or part.startswith("logit")), "")
    if "Conv2D" in op_type and "whitening" not in layer:
        return "convolution forward"
    if "whitening" in layer or "preprocessing" in layer:
        return "preprocessing and whitening"
    if "_bn" in layer or "BatchNorm" in op_type:
        return "BatchNorm"
    if "gelu" in layer:
        return "activation (GELU)"
    if "pool" in layer or "Pool" in op_type:
        return "pooling"
    if "MatMul" in op_type or layer.startswith("logit"):
        return "head matmul"
    if any(word in scope.lower() for word in ("loss", "crossentropy", "metric", "accuracy",
                                              "softmax")):
        return "loss and metrics"
    if op_type in ("Cast", "Transpose", "_MklToTf", "_MklInputConversion", "Reshape"):
        return "casts and layout"
    return "other"


def summarize_trace(trace_folder: str, steps: int) -> dict:
    """Milliseconds per step of each kind of work, from a TensorFlow profiler trace.

    Args:
        trace_folder: The folder ``tf.profiler.experimental.start`` wrote.
        steps: Training steps the trace covers.

    Returns:
        ``{"kinds": {kind: ms per step}, "top_ops": [[op, ms per step], ...] (15 largest),
        "input_threads_ms_per_step": CPU time of tf.data's own threads}``.
    """
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    paths = glob.glob(os.path.join(trace_folder, "**", "*.xplane.pb"), recursive=True)
    if not paths:
        raise SystemExit(f"the profiler wrote no trace under {trace_folder}")
    space = xplane_pb2.XSpace()
    space.ParseFromString(Path(paths[0]).read_bytes())
    kinds, ops = collections.Counter(), collections.Counter()
    input_threads = 0.0
    for plane in space.planes:
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                milliseconds = event.duration_ps / 1e9
                if line.name.startswith("tf_data_private_threadpool") and \
                        name == "ExecutorState::Process":
                    input_threads += milliseconds
                if not line.name.startswith("tf_Compute"):
                    continue
                kind = kind_of_work(name)
                if kind is not None:
                    kinds[kind] += milliseconds
                    ops[name.split("StatefulPartitionedCall/")[-1]] += milliseconds
    return {"kinds": {kind: kinds[kind] / steps for kind in KINDS},
            "top_ops": [[name, value / steps] for name, value in ops.most_common(15)],
            "input_threads_ms_per_step": input_threads / steps}


def profile_variant(variant: str, recipe: str, data_source: str, steps: int,
                    traced_steps: int, warmup_steps: int) -> dict:
    """Time and trace training steps under one variant's settings (in this process).

    Args:
        variant: A ``--variants`` entry; its environment settings must precede TensorFlow's
            import, so this runs in a fresh process (``--one``).
        recipe: The recipe to train.
        data_source: The CIFAR-10 source.
        steps: Timed steps.
        traced_steps: Steps traced by the profiler (timed apart: tracing slows them).
        warmup_steps: Untimed steps first (tracing the training function).

    Returns:
        The variant's record.
    """
    settings = parse_variant(variant)
    if "onednn" in settings:
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1" if settings["onednn"] == "on" else "0"
    if "bfc" in settings:
        os.environ["TF_CPU_ALLOCATOR_USE_BFC"] = "1" if settings["bfc"] == "on" else "0"
    import keras
    import tensorflow as tf

    from flops import count_model_flops, elementwise_bytes_per_image

    from cifar_cnn import experiment
    from cifar_cnn.config import RunConfig
    from cifar_cnn.cpu_kernels import kernel_settings

    if settings.get("batchnorm") == "keras":
        from cifar_cnn import models

        models.AirbenchBatchNorm = keras.layers.BatchNormalization
    if "inter_op" in settings:
        tf.config.threading.set_inter_op_parallelism_threads(int(settings["inter_op"]))
    if "intra_op" in settings:
        tf.config.threading.set_intra_op_parallelism_threads(int(settings["intra_op"]))
    parameters = {"recipe": recipe, "data_source": data_source, "run_name": "profile"}
    if "xla" in settings:
        parameters["xla"] = settings["xla"] == "on"
    if "precision" in settings:
        parameters["mixed_precision"] = settings["precision"]
    with tempfile.TemporaryDirectory() as scratch:
        plan = experiment.resolve_run(
            RunConfig.from_parameters({**parameters, "output_dir": scratch}))
        data = experiment.prepare_data(plan)
        model = experiment.build_model(plan, None, data)
        train_dataset, _, callbacks = experiment.make_datasets(plan, data)

        step_seconds = []

        class StepClock(keras.callbacks.Callback):
            def on_train_batch_begin(self, batch, logs=None):
                self.started = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                step_seconds.append(time.perf_counter() - self.started)

        def run_steps(count, clock=()):
            model.fit(train_dataset.take(count), epochs=1, verbose=0,
                      callbacks=[*callbacks, *clock])

        run_steps(warmup_steps)
        run_steps(steps, [StepClock()])
        trace_folder = os.path.join(scratch, "trace")
        tf.profiler.experimental.start(trace_folder)
        started = time.perf_counter()
        run_steps(traced_steps)
        traced_seconds = time.perf_counter() - started
        tf.profiler.experimental.stop()
        trace = summarize_trace(trace_folder, traced_steps)
    batch_size = plan.recipe.batch_size
    flops = count_model_flops(model)
    return {
        "variant": variant, "settings": settings, "recipe": recipe,
        "batch_size": batch_size, "precision_policy": keras.config.dtype_policy().name,
        "cpu_kernels": kernel_settings(),
        "step_seconds": step_seconds,
        "median_step_seconds": sorted(step_seconds)[len(step_seconds) // 2],
        "images_per_second": batch_size / sorted(step_seconds)[len(step_seconds) // 2],
        "traced_step_seconds": traced_seconds / traced_steps,
        "training_flops_per_image": flops["training_flops_per_image"],
        **elementwise_bytes_per_image(model),
        **trace,
    }


def add_roofline(record: dict, peaks: dict, bandwidth: float) -> dict:
    """The step time this machine could reach, and how far the measured step is from it."""
    from machine_peak import POLICY_PRECISION

    precision = POLICY_PRECISION.get(record["precision_policy"], "float32")
    matmul = record["training_flops_per_image"] * record["batch_size"] / \
        (peaks[precision] * 1e9)
    memory = record["training_bytes_per_image"] * record["batch_size"] / (bandwidth * 1e9)
    record["roofline"] = {
        "matmul_seconds": matmul, "elementwise_seconds": memory,
        "step_seconds": matmul + memory, "peak_precision": precision,
        "measured_over_roofline": record["median_step_seconds"] / (matmul + memory),
        "fraction_of_matmul_peak": matmul / record["median_step_seconds"],
    }
    return record


def markdown_table(results: dict) -> str:
    """The profile as a markdown table: one column per variant, one row per kind of work."""
    variants = results["variants"]
    header = "| ms per step | " + " | ".join(f"`{v['variant']}`" for v in variants) + " |"
    lines = [header, "|---|" + "---|" * len(variants)]
    for kind in KINDS:
        lines.append(f"| {kind} | " + " | ".join(f"{v['kinds'].get(kind, 0):.0f}" for v in variants)
                     + " |")
    rows = [
        ("sum of op times", lambda v: f"{sum(v['kinds'].values()):.0f}"),
        ("**step, wall (median, untraced)**", lambda v: f"**{1000 * v['median_step_seconds']:.0f}**"),
        ("images/s", lambda v: f"{v['images_per_second']:.0f}"),
        ("roofline: matmuls at peak", lambda v: f"{1000 * v['roofline']['matmul_seconds']:.0f}"),
        ("roofline: elementwise at bandwidth",
         lambda v: f"{1000 * v['roofline']['elementwise_seconds']:.0f}"),
        ("fraction of the matmul peak", lambda v: f"{v['roofline']['fraction_of_matmul_peak']:.0%}"),
        ("oneDNN kernels", lambda v: str(v["cpu_kernels"]["onednn"])),
    ]
    for label, cell in rows:
        lines.append(f"| {label} | " + " | ".join(cell(v) for v in variants) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", default="airbench")
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--traced-steps", type=int, default=2)
    parser.add_argument("--warmup-steps", type=int, default=1)
    parser.add_argument("--data-source", default=DEFAULT_DATA_SOURCE)
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--peak-sizes", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--markdown", type=Path, help="print the table of a results file")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # Internal: profile one variant.
    arguments = parser.parse_args()
    if arguments.markdown:
        print(markdown_table(json.loads(arguments.markdown.read_text())))
        return
    if arguments.one:
        record = profile_variant(arguments.one, arguments.recipe, arguments.data_source,
                                 arguments.steps, arguments.traced_steps, arguments.warmup_steps)
        print_result(record)
        return
    from cifar_cnn.recipes import RECIPES

    if arguments.recipe not in RECIPES:
        parser.error(f"unknown recipe {arguments.recipe!r}; valid: {', '.join(RECIPES)}")
    try:
        for variant in arguments.variants:
            parse_variant(variant)
    except ValueError as error:
        parser.error(str(error))
    if min(arguments.steps, arguments.traced_steps) < 1 or arguments.warmup_steps < 0:
        parser.error("--steps and --traced-steps must be at least 1, --warmup-steps at least 0")
    output = arguments.output or (REPOSITORY_ROOT / "benchmarks" / "results" /
                                  f"profile-{machine_slug()}.json")

    # The roofline's two rates and the machine record, measured first, in a process of their
    # own (this one must not import TensorFlow with settings a variant would then inherit).
    measured = subprocess.run(
        [sys.executable, "-c", "import json, sys; sys.path.insert(0, sys.argv[1]); "
         "from machine_peak import measure_peaks, memory_bandwidth_gbs; "
         "from common import machine_record; "
         "print(json.dumps({'peaks': measure_peaks(sizes=[int(s) for s in sys.argv[2:]], "
         "repeats=3), 'bandwidth': memory_bandwidth_gbs(), 'machine': machine_record()}))",
         str(Path(__file__).parent), *map(str, arguments.peak_sizes)],
        capture_output=True, text=True, check=True)
    rates = json.loads(measured.stdout.strip().splitlines()[-1])
    peaks = rates["peaks"]["peak_gflops_per_second"]
    bandwidth = rates["bandwidth"]["gigabytes_per_second"]
    print(f"== matmul peaks {peaks} GFLOP/s, memory bandwidth {bandwidth:.1f} GB/s", flush=True)
    results = {"command": " ".join(["python", "benchmarks/profile_step.py", *sys.argv[1:]]),
               "machine": rates["machine"], "machine_peak": rates["peaks"],
               "memory_bandwidth": rates["bandwidth"], "recipe": arguments.recipe,
               "sum_note": SUM_NOTE, "variants": []}
    from flops import ELEMENTWISE_BYTES_CONVENTION, FLOP_CONVENTION

    results["flop_convention"] = FLOP_CONVENTION["training_flops_per_image"]
    results["elementwise_bytes_convention"] = ELEMENTWISE_BYTES_CONVENTION
    for variant in arguments.variants:
        print(f"== {variant}", flush=True)
        record, _ = run_child(
            [sys.executable, __file__, "--one", variant, "--recipe", arguments.recipe,
             "--steps", str(arguments.steps), "--traced-steps", str(arguments.traced_steps),
             "--warmup-steps", str(arguments.warmup_steps),
             "--data-source", arguments.data_source], f"variant {variant}")
        record = add_roofline(record, peaks, bandwidth)
        results["variants"].append(record)
        print(f"   {record['images_per_second']:.0f} images/s, step "
              f"{record['median_step_seconds']:.2f} s", flush=True)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown_table(results))


if __name__ == "__main__":
    main()
