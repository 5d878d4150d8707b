"""The reference's first two optimizer steps, saved for ``benchmarks/reference_diff.py``.

Run with a torch environment (never a project dependency; see ../shared/anchors/README.md):

    /tmp/torch-venv/bin/python benchmarks/reference_steps_torch.py /tmp/reference_steps.npz

It imports ``../shared/anchors/airbench94_muon_cpu.py`` (float32), builds and initialises its
network as its ``main`` does (seed 0, whitening from the first 5,000 training images), and
takes two steps exactly as ``main`` does, but on two fixed batches without augmentation
(every 25th training image from 0, then from 1: the shared copy is sorted by class, so
these hold 200 images of each class), so that a port can take the very same steps. It saves
every parameter and buffer before and after each step, the step-1 gradients, the summed
losses, the batches' uint8 pixels and labels and the evaluation-mode logits of the initial
network on the first batch; then it takes the same two steps in float64 (``float64_``
keys), the yardstick for float32's own rounding.
"""

import copy
import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ANCHOR = Path(__file__).resolve().parents[2] / "shared" / "anchors" / "airbench94_muon_cpu.py"
BATCH_SIZE, EPOCHS = 2000, 8


def load_anchor():
    """Import the anchor module (it reads sys.argv[0] as its own source at import)."""
    sys.path.insert(0, str(ANCHOR.parent))
    saved, sys.argv[0] = sys.argv[0], str(ANCHOR)
    spec = importlib.util.spec_from_file_location("airbench_anchor", ANCHOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.argv[0] = saved
    return module


def state(model, prefix):
    """Every parameter and buffer as float32 numpy arrays under ``prefix/``."""
    arrays = {f"{prefix}/{name}": value.detach().float().numpy().copy()
              for name, value in model.named_parameters()}
    arrays.update({f"{prefix}/{name}": value.detach().float().numpy().copy()
                   for name, value in model.named_buffers() if value.dtype.is_floating_point})
    return arrays


def newton_schulz_in_input_dtype(matrix, steps=3, epsilon=1e-7):
    """The anchor's zeropower_via_newtonschulz5 without its cast to float32."""
    a, b, c = (3.4445, -4.7750, 2.0315)
    x = matrix / (matrix.norm() + epsilon)
    tall = matrix.size(0) > matrix.size(1)
    x = x.T if tall else x
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


def take_two_steps(anchor, model, images, labels, steps_per_epoch, prefix):
    """Two of main()'s steps on two fixed batches; returns losses, gradients and weights."""
    total_steps = math.ceil(EPOCHS * steps_per_epoch)
    whiten_steps = math.ceil(3 * steps_per_epoch)
    bias_lr, head_lr, wd = 0.053, 0.67, 2e-6 * BATCH_SIZE
    filter_params = [p for p in model.parameters() if len(p.shape) == 4 and p.requires_grad]
    norm_biases = [p for n, p in model.named_parameters() if "norm" in n and p.requires_grad]
    param_configs = [dict(params=[model.whiten.bias], lr=bias_lr, weight_decay=wd / bias_lr),
                     dict(params=norm_biases, lr=bias_lr, weight_decay=wd / bias_lr),
                     dict(params=[model.head.weight], lr=head_lr, weight_decay=wd / head_lr)]
    optimizer1 = torch.optim.SGD(param_configs, momentum=0.85, nesterov=True)
    optimizer2 = anchor.Muon(filter_params, lr=0.24, momentum=0.6, nesterov=True)
    for optimizer in (optimizer1, optimizer2):
        for group in optimizer.param_groups:
            group["initial_lr"] = group["lr"]

    arrays = {}
    model.train()
    for step in range(2):
        batch = slice(step * BATCH_SIZE, (step + 1) * BATCH_SIZE)
        outputs = model(images[batch], whiten_bias_grad=step < whiten_steps)
        loss = F.cross_entropy(outputs, labels[batch], label_smoothing=0.2, reduction="sum")
        loss.backward()
        arrays[f"{prefix}loss{step + 1}"] = np.float32(loss.item())
        if step == 0:
            arrays.update({f"{prefix}grad1/{name}": p.grad.float().numpy().copy()
                           for name, p in model.named_parameters() if p.grad is not None})
        for group in optimizer1.param_groups[:1]:
            group["lr"] = group["initial_lr"] * (1 - step / whiten_steps)
        for group in optimizer1.param_groups[1:] + optimizer2.param_groups:
            group["lr"] = group["initial_lr"] * (1 - step / total_steps)
        optimizer1.step()
        optimizer2.step()
        model.zero_grad(set_to_none=True)
        arrays.update(state(model, f"{prefix}after{step + 1}"))
        print(f"{prefix}step {step + 1}: summed loss {loss.item():.4f}", flush=True)
    return arrays


def main():
    output = Path(sys.argv[1])
    anchor = load_anchor()
    torch.manual_seed(0)
    (train_images, train_labels), _ = anchor.load()
    steps_per_epoch = len(train_labels) // BATCH_SIZE
    chosen = np.concatenate([np.arange(step, len(train_labels), steps_per_epoch)
                             for step in range(2)])
    batch_images, batch_labels = train_images[chosen], train_labels[chosen]

    def normalize(pixels):
        pixels = (torch.tensor(pixels).float() / 255).permute(0, 3, 1, 2)
        return anchor.T.Normalize(anchor.CIFAR_MEAN, anchor.CIFAR_STD)(pixels)

    images = normalize(batch_images)
    labels = torch.tensor(batch_labels.astype("int64"))

    model = anchor.CifarNet()
    model.reset()
    model.init_whiten(normalize(train_images[:5000]))  # As main() does.
    arrays = state(model, "init")
    model.eval()
    with torch.no_grad():
        arrays["eval_logits_init"] = model(images[:BATCH_SIZE]).numpy()

    exact = copy.deepcopy(model).double()
    arrays.update(take_two_steps(anchor, model, images, labels, steps_per_epoch, ""))
    # The same two steps in float64 (Newton-Schulz included): float32's own rounding, the
    # yardstick for how closely any float32 implementation can follow.
    float32_newton_schulz = anchor.zeropower_via_newtonschulz5
    anchor.zeropower_via_newtonschulz5 = newton_schulz_in_input_dtype
    arrays.update(take_two_steps(anchor, exact, images.double(), labels, steps_per_epoch,
                                 "float64_"))
    anchor.zeropower_via_newtonschulz5 = float32_newton_schulz

    arrays.update(batch_images=batch_images, batch_labels=batch_labels,
                  batch_size=np.int64(BATCH_SIZE), steps_per_epoch=np.int64(steps_per_epoch),
                  torch_version=np.array(torch.__version__))
    np.savez(output, **arrays)
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
