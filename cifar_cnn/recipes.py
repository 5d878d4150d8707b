"""Named training recipes: which model, how to optimise it, and the defaults a run starts from.

A recipe is the unit the notebook's ``recipe`` parameter selects. ``epochs``,
``batch_size`` and ``learning_rate`` left as None in the run config take the recipe's
defaults, so ``recipe="seed"`` alone reproduces the seed notebook.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Recipe:
    """Everything that defines how a model is trained, apart from data and run options.

    Attributes:
        name: The registry key.
        description: One line for tables and ``--help``.
        model: A ``cifar_cnn.models.MODEL_BUILDERS`` key.
        epochs: Default number of epochs.
        batch_size: Default global batch size.
        learning_rate: Default peak learning rate.
        optimizer: ``"adam"``, ``"sgd_nesterov"`` or ``"muon"`` (``cifar_cnn.muon``: Muon
            on the convolution filters and Nesterov SGD on the rest, as airbench94_muon).
        schedule: ``"constant"``, ``"warmup_linear_decay"`` or ``"linear_decay"`` (from the
            peak at the first step to 0 after the last).
        preprocessing: ``"scale"`` or ``"standardize"`` (``cifar_cnn.data``).
        augmentations: Names of training-time augmentations (``cifar_cnn.augment``).
        label_smoothing: Label smoothing of the cross-entropy loss.
        weight_decay: Decoupled weight decay (0 for none), as Keras applies it:
            ``w -= learning_rate * weight_decay * w`` each step.
        momentum: Momentum of ``sgd_nesterov``.
        warmup_fraction: Share of the steps spent warming up, for ``warmup_linear_decay``.
        warmup_start: Learning rate at step 0, as a fraction of the peak.
        test_time_augmentation: The views averaged at test time when the ``tta`` parameter
            is on: ``"none"``, ``"flip"`` (each image and its mirror) or ``"flip_translate"``
            (airbench's six views); see ``cifar_cnn.evaluate.predict_probabilities``.
        precision: Default for the ``mixed_precision`` parameter (``cifar_cnn.precision``).
        drop_remainder: Drop the last partial training batch of each epoch (airbench trains
            on whole batches only), when there is at least one whole batch.
        muon: The ``"muon"`` optimizer's settings (None for other optimizers); with it,
            ``learning_rate`` is the convolution filters' peak learning rate.
    """

    name: str
    description: str
    model: str
    epochs: int
    batch_size: int
    learning_rate: float
    optimizer: str = "adam"
    schedule: str = "constant"
    preprocessing: str = "scale"
    augmentations: tuple[str, ...] = ()
    label_smoothing: float = 0.0
    weight_decay: float = 0.0
    momentum: float = 0.9
    warmup_fraction: float = 0.2
    warmup_start: float = 0.0
    test_time_augmentation: str = "none"
    precision: str = "float32"
    drop_remainder: bool = False
    muon: "MuonSettings | None" = None


@dataclass(frozen=True)
class MuonSettings:
    """Per-parameter-group settings of airbench94_muon's two optimizers, in its own units.

    airbench94_muon.py (KellerJordan/cifar10-airbench) trains the convolution filters with
    Muon and everything else with Nesterov SGD, each group with its own learning rate. Its
    loss is *summed* over the batch, so these SGD learning rates are per example: the
    ``"muon"`` optimizer multiplies the mean-loss gradient Keras gives it by the batch size
    to step exactly as the reference does, whatever the batch size. Muon's step does not
    depend on the gradient's scale, so its rate (the recipe's ``learning_rate``) needs no
    such care.

    Attributes:
        filter_momentum: Muon's Nesterov momentum on the 3x3 convolution filters.
        newton_schulz_steps: Quintic Newton-Schulz iterations that orthogonalise each update.
        sgd_momentum: Nesterov momentum of the SGD groups (biases and head).
        bias_learning_rate: SGD rate of the BatchNorm biases and the whitening bias.
        head_learning_rate: SGD rate of the final linear layer's weights.
        weight_decay: Per-example L2 decay of the SGD groups, added to the summed gradient
            as ``weight_decay * batch_size / learning_rate * w`` (PyTorch's coupled
            ``weight_decay`` argument, as the reference sets it).
        whitening_bias_epochs: The whitening layer's bias decays linearly to 0 over these
            epochs and is frozen after them; every other rate decays linearly over the run.
    """

    filter_momentum: float = 0.6
    newton_schulz_steps: int = 3
    sgd_momentum: float = 0.85
    bias_learning_rate: float = 0.053
    head_learning_rate: float = 0.67
    weight_decay: float = 2e-6
    whitening_bias_epochs: float = 3.0


# airbench94_muon.py's hyperparameters (the 94% record; KellerJordan/cifar10-airbench), in
# one place. The network (whitening, widths 64/256/256, BatchNorm momentum 0.6 and epsilon
# 1e-12, the head's 1/256 logit scale) is cifar_cnn.models.airbench_net.
_AIRBENCH = Recipe(
    name="airbench",
    description="Keras port of airbench94_muon: patch-whitening layer, identity-initialised "
                "convs, Muon on the filters and Nesterov SGD on biases and head, batch 2000, "
                "label smoothing 0.2, alternating flip and 2-pixel translate, six-view "
                "test-time augmentation.",
    model="airbench_net",
    epochs=8,                   # The record's schedule: 8 epochs of 25 steps.
    batch_size=2000,
    drop_remainder=True,        # 25 whole batches an epoch, as the reference's drop_last.
    learning_rate=0.24,         # Muon's rate on the convolution filters.
    optimizer="muon",
    muon=MuonSettings(),        # The other groups' rates, momenta and weight decay.
    schedule="linear_decay",    # Every rate from its peak at step 0 to 0 after the last.
    preprocessing="standardize",
    augmentations=("alternating_flip", "translate"),
    label_smoothing=0.2,
    test_time_augmentation="flip_translate",
    precision="auto",
)

RECIPES: dict[str, Recipe] = {
    "seed": Recipe(
        name="seed",
        description="The seed notebook exactly: seed_cnn, Adam 1e-3, batch 32, 20 epochs, x/255.",
        model="seed_cnn",
        epochs=20,
        batch_size=32,
        learning_rate=1e-3,
    ),
    "seed_regularized": Recipe(
        name="seed_regularized",
        description="The seed's small network plus BatchNorm, flip and translate augmentation, "
                    "label smoothing and a warm-up/linear-decay schedule.",
        model="regularized_seed_cnn",
        epochs=20,
        batch_size=64,
        learning_rate=2e-3,
        schedule="warmup_linear_decay",
        warmup_fraction=0.1,
        augmentations=("flip", "translate"),
        label_smoothing=0.1,
        precision="auto",
    ),
    "airbench": _AIRBENCH,
    "airbench_small": dataclasses.replace(
        _AIRBENCH,
        name="airbench_small",
        description="The airbench recipe on a narrow network (24/48/96 channels) for 2 "
                    "epochs: the most accuracy in a short time on CPUs.",
        model="airbench_small_net",
        # Measured on a 2-core AVX2 EPYC (float32, seed 42, accuracy with the six-view TTA):
        # 2 epochs of batch 1000 reached 0.80 after 96 s with 24/48/96 channels (0.804 at the
        # end), 120 s with 28/56/112 (0.816) and 143 s with 32/64/128 (0.825), against the
        # four seed epochs (125 s) of the short-budget target. On a 2-core Xeon, 32/64/128
        # reached 0.80 in about 100 s; batch 2000 was less accurate, float32 and XLA slower.
        epochs=2,
        batch_size=1000,
        augmentations=("alternating_flip",),  # Translation costs accuracy this early.
    ),
    "airbench_tiny": dataclasses.replace(
        _AIRBENCH,
        name="airbench_tiny",
        description="The airbench recipe on the narrowest network (16/32/64 channels) for one "
                    "epoch: a moderate accuracy in the least time on CPUs.",
        model="airbench_tiny_net",
        # Measured on a 2-core AVX2 EPYC (float32): one epoch of batch 500 trained in 34 s
        # and scored 0.72 without TTA; widths 24/48/96 took 51 s for 0.735 and 32/64/128
        # 67 s for 0.739, and two epochs of 16/32/64 reached 0.68 later (52 s).
        epochs=1,
        batch_size=500,
        augmentations=("alternating_flip",),
    ),
}


def get_recipe(name: str) -> Recipe:
    """Return the recipe registered under ``name``.

    Args:
        name: A key of ``RECIPES``.

    Returns:
        The :class:`Recipe`.
    """
    if name not in RECIPES:
        raise ValueError(f"Unknown recipe {name!r}; valid choices: {', '.join(RECIPES)}.")
    return RECIPES[name]
