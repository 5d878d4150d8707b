"""airbench94_muon's optimizer as one Keras optimizer: Muon on the filters, SGD on the rest.

Why not ``keras.optimizers.Muon``: Keras 3's Muon sends every variable that is not 2-D (so
every convolution kernel) to AdamW, scales its updates by the Moonlight RMS rule and never
renormalises the weights. airbench94_muon (KellerJordan/cifar10-airbench) instead flattens
each filter bank to (out, in * kh * kw), orthogonalises the Nesterov-momentum update with
three quintic Newton-Schulz steps, rescales the weight to norm sqrt(out) before each step,
and trains the whitening bias, the BatchNorm biases and the head with Nesterov SGD, each
group with its own learning rate, coupled weight decay and schedule. ``model.fit`` takes
one optimizer, so this one holds all the groups and picks a variable's group by its shape
and layer (:func:`parameter_group`).
"""

from __future__ import annotations

import dataclasses
import math

import keras
from keras import ops

from cifar_cnn.recipes import MuonSettings

# The group names, and the layer whose bias has its own schedule.
FILTERS, WHITENING_BIAS, BIASES, HEAD = "filters", "whitening_bias", "biases", "head"
WHITENING_LAYER = "whitening"  # cifar_cnn.models.airbench_net's PatchWhitening layer.

# Newton-Schulz quintic coefficients of the reference, chosen to maximise the slope at 0.
_NEWTON_SCHULZ_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def parameter_group(variable) -> str:
    """Which of airbench's parameter groups a trainable variable belongs to.

    Args:
        variable: A trainable ``keras.Variable``.

    Returns:
        ``FILTERS`` for convolution kernels (4-D), ``WHITENING_BIAS`` for the whitening
        layer's bias, ``BIASES`` for every other 1-D variable (the BatchNorm shifts) and
        ``HEAD`` for the rest (the final linear layer's kernel).
    """
    if len(variable.shape) == 4:
        return FILTERS
    if len(variable.shape) == 1:
        layer_name = variable.path.split("/")[-2] if "/" in variable.path else ""
        return WHITENING_BIAS if layer_name == WHITENING_LAYER else BIASES
    return HEAD


def orthogonalize(matrix, steps: int, epsilon: float = 1e-7):
    """Approximately replace a matrix's singular values by ones (Muon's update direction).

    The reference's quintic Newton-Schulz iteration: it does not converge to U V^T but to
    U S' V^T with S' roughly in [0.5, 1.5], which trains as well and needs only a few
    matrix products. Computed in the matrix's own dtype (float32 here).

    Args:
        matrix: A 2-D tensor (rows, columns).
        steps: Newton-Schulz iterations.
        epsilon: Keeps the first normalisation finite for a zero matrix.

    Returns:
        A tensor of the same shape.
    """
    a, b, c = _NEWTON_SCHULZ_COEFFICIENTS
    x = matrix / (ops.sqrt(ops.sum(ops.square(matrix))) + epsilon)  # Top singular value <= 1.
    wide = matrix.shape[0] <= matrix.shape[1]
    if not wide:
        x = ops.transpose(x)
    for _ in range(steps):
        gram = ops.matmul(x, ops.transpose(x))
        polynomial = b * gram + c * ops.matmul(gram, gram)
        x = a * x + ops.matmul(polynomial, x)
    return x if wide else ops.transpose(x)


@keras.saving.register_keras_serializable(package="cifar_cnn")
class AirbenchMuon(keras.optimizers.Optimizer):
    """Muon on convolution filters and Nesterov SGD on biases and head, in one optimizer.

    Every rate follows the optimizer's learning-rate schedule relative to its peak (the
    recipe's ``linear_decay``), except the whitening bias, which decays to 0 over its own
    steps and then stays frozen. The SGD groups step on the *summed* loss, as the reference:
    Keras hands over the gradient of the mean loss, which is multiplied by ``batch_size``.

    Args:
        learning_rate: Muon's rate on the filters: a float or a schedule.
        peak_learning_rate: The schedule's value at step 0 (the recipe's learning rate).
        batch_size: The global batch size, to turn mean-loss gradients into summed ones.
        whitening_bias_steps: Steps over which the whitening bias trains.
        settings: The other groups' rates, momenta and weight decay.
        name: The optimizer's name.
        **kwargs: Passed to ``keras.optimizers.Optimizer``.
    """

    def __init__(self, learning_rate=0.24, peak_learning_rate: float = 0.24,
                 batch_size: int = 2000, whitening_bias_steps: int = 75,
                 settings: MuonSettings | dict | None = None, name: str = "airbench_muon",
                 **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if isinstance(settings, dict):
            settings = MuonSettings(**settings)
        self.settings = settings or MuonSettings()
        self.peak_learning_rate = float(peak_learning_rate)
        self.batch_size = int(batch_size)
        self.whitening_bias_steps = max(1, int(whitening_bias_steps))

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._momentums = [self.add_variable_from_reference(variable, "momentum")
                           for variable in variables]
        self._groups = [parameter_group(variable) for variable in variables]

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        momentum, group = self._momentums[index], self._groups[index]
        gradient = ops.cast(gradient, variable.dtype)
        learning_rate = ops.cast(learning_rate, variable.dtype)
        # Each group's name scope names its ops in profiles (benchmarks/profile_step.py).
        if group == FILTERS:
            with keras.name_scope("muon"):
                self._muon_step(gradient, variable, momentum, learning_rate)
            return
        with keras.name_scope("sgd"):
            self._sgd_step(gradient, variable, momentum, learning_rate, group)

    def _sgd_step(self, gradient, variable, momentum, learning_rate, group):
        """Nesterov SGD on the summed loss with coupled weight decay, at the group's rate."""
        settings = self.settings
        peak = settings.head_learning_rate if group == HEAD else settings.bias_learning_rate
        if group == WHITENING_BIAS:
            step = ops.cast(self.iterations, variable.dtype)
            decay = ops.maximum(0.0, 1.0 - step / self.whitening_bias_steps)
        else:
            decay = learning_rate / self.peak_learning_rate
        # PyTorch's coupled weight decay, set as the reference does: wd * batch / peak rate.
        decay_coefficient = settings.weight_decay * self.batch_size / peak
        summed = gradient * self.batch_size + decay_coefficient * variable
        self.assign(momentum, settings.sgd_momentum * momentum + summed)
        nesterov = summed + settings.sgd_momentum * momentum
        self.assign_sub(variable, peak * decay * nesterov)

    def _muon_step(self, gradient, variable, momentum, learning_rate):
        """Nesterov momentum, renormalise the weight, then step along the orthogonalised update."""
        mu = self.settings.filter_momentum
        self.assign(momentum, mu * momentum + gradient)
        update = gradient + mu * momentum
        out_channels = variable.shape[-1]
        norm = ops.sqrt(ops.sum(ops.square(variable)))
        self.assign(variable, variable * (math.sqrt(out_channels) / norm))
        # Keras kernels are (kh, kw, in, out); the reference's matrix is (out, in * kh * kw).
        # The column order does not matter: orthogonalising commutes with permuting columns.
        matrix = ops.transpose(ops.reshape(update, (-1, out_channels)))
        direction = orthogonalize(matrix, self.settings.newton_schulz_steps)
        self.assign_sub(variable, learning_rate * ops.reshape(ops.transpose(direction),
                                                              variable.shape))

    def get_config(self):
        return {**super().get_config(), "peak_learning_rate": self.peak_learning_rate,
                "batch_size": self.batch_size, "whitening_bias_steps": self.whitening_bias_steps,
                "settings": dataclasses.asdict(self.settings)}
