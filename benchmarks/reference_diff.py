"""Step for step against the reference: the airbench port's first two updates beside PyTorch's.

``benchmarks/reference_steps_torch.py`` (run with a torch environment, never a project
dependency) builds ``../shared/anchors/airbench94_muon_cpu.py``'s network, takes two of its
optimizer steps on two fixed, unaugmented batches and saves every weight before and after,
its gradients and its losses. This script loads the same initial weights into
``cifar_cnn``'s ``airbench_net``, takes the same two steps with the ``airbench`` recipe's
optimizer and loss (in float32) and prints, per variable, how far the two disagree.

    /tmp/torch-venv/bin/python benchmarks/reference_steps_torch.py /tmp/reference_steps.npz
    python benchmarks/reference_diff.py /tmp/reference_steps.npz

The reference also takes the same steps in float64, so the printout shows float32's own
rounding beside the port's difference: a port that is as close to the reference as the
reference (float32) is to itself in float64 does what the reference does. Muon's
Newton-Schulz steps magnify rounding, so after two steps both differences are about 2%.

Results go to ``benchmarks/results/reference_diff.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY_ROOT))

# The reference's normalisation constants (its CIFAR_MEAN and CIFAR_STD on 0-1 pixels).
REFERENCE_MEAN = np.array([0.4914, 0.4822, 0.4465], dtype=np.float32)
REFERENCE_STD = np.array([0.2470, 0.2435, 0.2616], dtype=np.float32)


def torch_to_keras(name: str, array: np.ndarray) -> np.ndarray:
    """A reference tensor in the layout of the matching Keras variable."""
    if array.ndim == 4:  # (out, in, kh, kw) -> (kh, kw, in, out)
        return array.transpose(2, 3, 1, 0)
    if array.ndim == 2:  # Linear (out, in) -> Dense (in, out)
        return array.T
    return array


def keras_variable_names(model) -> dict[str, object]:
    """Map the reference's parameter and buffer names to the port's variables."""
    names = {"whiten.weight": model.get_layer("whitening").kernel,
             "whiten.bias": model.get_layer("whitening").bias,
             "head.weight": model.get_layer("logits").kernel}
    for group in (1, 2, 3):
        for index in (1, 2):
            prefix = f"layers.{group}"
            names[f"{prefix}.conv{index}.weight"] = model.get_layer(
                f"group{group}_conv{index}").kernel
            batchnorm = model.get_layer(f"group{group}_bn{index}")
            names[f"{prefix}.norm{index}.bias"] = batchnorm.beta
            names[f"{prefix}.norm{index}.running_mean"] = batchnorm.moving_mean
            names[f"{prefix}.norm{index}.running_var"] = batchnorm.moving_variance
    return names


def relative_difference(ours: np.ndarray, theirs: np.ndarray) -> float:
    """||ours - theirs|| / ||theirs|| (absolute difference when theirs is zero)."""
    scale = float(np.linalg.norm(theirs))
    difference = float(np.linalg.norm(ours - theirs))
    return difference / scale if scale > 0 else difference


def gradient_differences(model, variables: dict, images, labels, reference) -> dict:
    """Compare the summed loss's gradients at the initial weights with the reference's.

    The forward pass runs in training mode (batch statistics), as the reference's step
    does; the BatchNorm running statistics it updates are put back afterwards.
    """
    import tensorflow as tf

    saved = [variable.numpy() for variable in model.non_trainable_variables]
    with tf.GradientTape() as tape:
        probabilities = model(images.astype(np.float32), training=True)
        loss = model.loss(labels, probabilities) * len(labels)
    gradients = tape.gradient(loss, model.trainable_variables)
    for variable, value in zip(model.non_trainable_variables, saved):
        variable.assign(value)
    by_variable = {id(variable): gradient for variable, gradient
                   in zip(model.trainable_variables, gradients)}
    differences = {}
    for name, variable in variables.items():
        if f"grad1/{name}" in reference and id(variable) in by_variable:
            exact = torch_to_keras(name, reference[f"float64_grad1/{name}"])
            differences[name] = {
                "ours_vs_reference": relative_difference(
                    np.asarray(by_variable[id(variable)]),
                    torch_to_keras(name, reference[f"grad1/{name}"])),
                "ours_vs_float64": relative_difference(
                    np.asarray(by_variable[id(variable)]), exact),
                "reference_float32_vs_float64": relative_difference(
                    torch_to_keras(name, reference[f"grad1/{name}"]), exact)}
    return differences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("reference_steps", type=Path,
                        help="the .npz written by reference_steps_torch.py")
    parser.add_argument("--output", type=Path,
                        default=REPOSITORY_ROOT / "benchmarks" / "results" / "reference_diff.json")
    arguments = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import dataclasses

    import keras

    from cifar_cnn import models, train
    from cifar_cnn.recipes import get_recipe

    reference = np.load(arguments.reference_steps)
    images = reference["batch_images"]  # uint8 NHWC, the reference's own decoded pixels.
    labels = reference["batch_labels"].astype(np.int32)
    batch_size = int(reference["batch_size"])
    steps_per_epoch = int(reference["steps_per_epoch"])

    keras.mixed_precision.set_dtype_policy("float32")
    preprocessing = keras.layers.Normalization(mean=REFERENCE_MEAN * 255,
                                               variance=np.square(REFERENCE_STD * 255),
                                               name="preprocessing")
    model = models.airbench_net(preprocessing=preprocessing, train_images=images)
    variables = keras_variable_names(model)
    for name, variable in variables.items():
        variable.assign(torch_to_keras(name, reference[f"init/{name}"]))
    recipe = dataclasses.replace(get_recipe("airbench"), batch_size=batch_size, precision="float32")
    train.compile_model(model, train.make_optimizer(recipe, steps_per_epoch), train.make_loss(recipe),
                        jit_compile=False)

    logits = np.log(model(images[:batch_size].astype(np.float32), training=False))
    theirs = reference["eval_logits_init"]
    results = {"reference": str(arguments.reference_steps), "batch_size": batch_size,
               # Log-probabilities differ from logits by one constant per row: compare centred.
               "initial_eval_logits": relative_difference(
                   logits - logits.mean(1, keepdims=True), theirs - theirs.mean(1, keepdims=True)),
               "steps": []}
    results["step1_gradients"] = gradient_differences(model, variables, images[:batch_size],
                                                      labels[:batch_size], reference)
    print("step 1 gradients (summed loss), relative difference: ours vs reference, ours vs "
          "float64, reference (float32) vs float64")
    for name, row in results["step1_gradients"].items():
        print(f"  {name:32s} {row['ours_vs_reference']:.2e}  {row['ours_vs_float64']:.2e}  "
              f"{row['reference_float32_vs_float64']:.2e}")
    for step in (1, 2):
        batch = slice((step - 1) * batch_size, step * batch_size)
        logs = model.train_on_batch(images[batch].astype(np.float32), labels[batch],
                                    return_dict=True)
        row = {"step": step, "our_summed_loss": float(logs["loss"]) * batch_size,
               "reference_summed_loss": float(reference[f"loss{step}"]),
               "reference_float64_summed_loss": float(reference[f"float64_loss{step}"]),
               "variables": {}}
        for name, variable in variables.items():
            theirs = torch_to_keras(name, reference[f"after{step}/{name}"])
            exact = torch_to_keras(name, reference[f"float64_after{step}/{name}"])
            ours = np.asarray(variable.numpy())
            row["variables"][name] = {
                "ours_vs_reference": relative_difference(ours, theirs),
                "ours_vs_float64": relative_difference(ours, exact),
                "reference_float32_vs_float64": relative_difference(theirs, exact)}
        results["steps"].append(row)
        print(f"after step {step}: summed loss ours {row['our_summed_loss']:.3f}, reference "
              f"{row['reference_summed_loss']:.3f} (float64 "
              f"{row['reference_float64_summed_loss']:.3f}); weights, relative difference: "
              "ours vs reference, ours vs float64, reference vs float64")
        for name, differences in row["variables"].items():
            print(f"  {name:32s} " + "  ".join(f"{value:.2e}" for value in differences.values()))
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {arguments.output}")


if __name__ == "__main__":
    main()
