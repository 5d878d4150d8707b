"""Named training recipes: which model, how to optimise it, and the defaults a run starts from.

A recipe is the unit the notebook's ``recipe`` parameter selects. ``epochs``,
``batch_size`` and ``learning_rate`` left as None in the run config take the recipe's
defaults, so ``recipe="seed"`` alone reproduces the seed notebook.
"""

from __future__ import annotations

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
        weight_decay: Decoupled weight decay (0 for none).
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


RECIPES: dict[str, Recipe] = {
    "seed": Recipe(
        name="seed",
        description="The seed notebook exactly: seed_cnn, Adam 1e-3, batch 32, 20 epochs, x/255.",
        model="seed_cnn",
        epochs=20,
        batch_size=32,
        learning_rate=1e-3,
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
