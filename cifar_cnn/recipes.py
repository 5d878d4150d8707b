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
        optimizer: ``"adam"`` or ``"sgd_nesterov"``.
        schedule: ``"constant"`` or ``"warmup_linear_decay"``.
        preprocessing: ``"scale"`` or ``"standardize"`` (``cifar_cnn.data``).
        augmentations: Names of training-time augmentations (``cifar_cnn.augment``).
        label_smoothing: Label smoothing of the cross-entropy loss.
        weight_decay: Decoupled weight decay (0 for none), as Keras applies it:
            ``w -= learning_rate * weight_decay * w`` each step.
        momentum: Momentum of ``sgd_nesterov``.
        warmup_fraction: Share of the steps spent warming up, for ``warmup_linear_decay``.
        warmup_start: Learning rate at step 0, as a fraction of the peak.
        flip_test_time_augmentation: Default for the ``tta`` parameter: average each test
            image's prediction with its mirror's.
        precision: Default for the ``mixed_precision`` parameter (``cifar_cnn.precision``).
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
    flip_test_time_augmentation: bool = False
    precision: str = "float32"


_AIRBENCH = Recipe(
    name="airbench",
    description="Fast airbench94-shaped network: whitening layer, identity-initialised convs, "
                "BatchNorm with 64x bias learning rate, GELU, Nesterov SGD with warm-up and "
                "linear decay, batch 1024, label smoothing 0.2, flip/translate augmentation, "
                "flip test-time augmentation.",
    model="airbench_net",
    # airbench94 trains 9.9 epochs; 8 fit a 15-minute budget on a 2-core AVX-512 CPU
    # (about 110 s an epoch there, benchmarks/results/cpu-2core.json).
    epochs=8,
    batch_size=1024,
    # airbench's ablation study (lr 10 and weight decay 0.0153 "per 1024 examples", summed
    # loss, decay through Nesterov momentum 0.85) converted to Keras' mean loss and
    # decoupled decay: the same step size and the same shrinkage per step at the peak.
    learning_rate=1.3,
    optimizer="sgd_nesterov",
    momentum=0.85,
    weight_decay=0.0102,
    schedule="warmup_linear_decay",
    warmup_fraction=0.2,
    warmup_start=0.2,
    preprocessing="standardize",
    augmentations=("flip", "translate"),
    label_smoothing=0.2,
    flip_test_time_augmentation=True,
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
        description="The airbench recipe on a narrow network (32/64/128 channels), batch 512, "
                    "for the shortest time to a moderate accuracy on CPUs.",
        model="airbench_small_net",
        epochs=3,
        batch_size=512,
        learning_rate=1.0,
        augmentations=("flip",),
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
