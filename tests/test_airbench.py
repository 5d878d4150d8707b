"""The airbench94_muon port: optimizer rules, network details, alternating flip.

The optimizer is checked against a NumPy transcription of the reference's PyTorch rules
(``torch.optim.SGD`` with Nesterov momentum and coupled weight decay, and airbench's Muon),
written here independently of ``cifar_cnn.muon``; the whole network is checked against the
reference itself by ``benchmarks/reference_diff.py``, which needs torch.
"""

import dataclasses
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from cifar_cnn import augment, models, muon, train
from cifar_cnn.data import make_dataset, preprocessing_layer
from cifar_cnn.recipes import MuonSettings, get_recipe

RNG = np.random.default_rng(0)


def reference_newton_schulz(matrix, steps=3):
    """The reference's zeropower_via_newtonschulz5, in NumPy (float64)."""
    a, b, c = (3.4445, -4.7750, 2.0315)
    x = matrix / (np.linalg.norm(matrix) + 1e-7)
    tall = matrix.shape[0] > matrix.shape[1]
    x = x.T if tall else x
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


def reference_sgd(weight, summed_gradient, buffer, learning_rate, weight_decay, momentum=0.85):
    """torch.optim.SGD(nesterov=True, weight_decay=...) for one parameter and one step."""
    gradient = summed_gradient + weight_decay * weight
    buffer = momentum * buffer + gradient
    return weight - learning_rate * (gradient + momentum * buffer), buffer


def reference_muon(kernel, gradient, buffer, learning_rate, momentum=0.6):
    """airbench's Muon.step for one Keras (kh, kw, in, out) kernel, via PyTorch's layout."""
    buffer = momentum * buffer + gradient
    update = gradient + momentum * buffer
    torch_kernel = kernel.transpose(3, 2, 0, 1)  # (out, in, kh, kw), as the reference.
    torch_update = update.transpose(3, 2, 0, 1)
    out_channels = torch_kernel.shape[0]
    torch_kernel = torch_kernel * math.sqrt(out_channels) / np.linalg.norm(torch_kernel)
    direction = reference_newton_schulz(torch_update.reshape(out_channels, -1))
    torch_kernel = torch_kernel - learning_rate * direction.reshape(torch_update.shape)
    return torch_kernel.transpose(2, 3, 1, 0), buffer


def tiny_network():
    inputs = keras.Input((8, 8, 3))
    x = models.PatchWhitening(filters=24, name="whitening")(inputs)
    x = keras.layers.Conv2D(6, 3, use_bias=False, name="conv")(x)
    x = keras.layers.BatchNormalization(**models.AIRBENCH_BATCHNORM, name="norm")(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(4, use_bias=False, name="head")(x)
    return keras.Model(inputs, outputs)


def test_parameter_groups_follow_the_reference():
    groups = {variable.path: muon.parameter_group(variable)
              for variable in tiny_network().trainable_variables}
    assert groups == {"whitening/bias": "whitening_bias", "conv/kernel": "filters",
                      "norm/beta": "biases", "head/kernel": "head"}


def test_two_steps_match_a_transcription_of_the_reference():
    keras.utils.set_random_seed(0)
    model = tiny_network()
    variables = model.trainable_variables
    settings = MuonSettings()
    batch_size, total_steps, peak = 50, 10, 0.24
    schedule = keras.optimizers.schedules.PolynomialDecay(peak, total_steps, 0.0, power=1.0)
    optimizer = muon.AirbenchMuon(schedule, peak_learning_rate=peak, batch_size=batch_size,
                                  whitening_bias_steps=1, settings=settings)
    expected = {variable.path: variable.numpy().astype(np.float64) for variable in variables}
    buffers = {path: np.zeros_like(value) for path, value in expected.items()}
    for step in range(2):
        gradients = [RNG.normal(size=variable.shape) for variable in variables]
        optimizer.apply([tf.constant(g, tf.float32) for g in gradients], variables)
        decay = 1 - step / total_steps
        for variable, gradient in zip(variables, gradients):
            path, group = variable.path, muon.parameter_group(variable)
            if group == "filters":
                expected[path], buffers[path] = reference_muon(
                    expected[path], gradient, buffers[path], peak * decay)
                continue
            group_peak = settings.head_learning_rate if group == "head" \
                else settings.bias_learning_rate
            # The whitening bias decays over its own 1 step: frozen from step 1 on.
            rate = group_peak * (max(0.0, 1 - step) if group == "whitening_bias" else decay)
            expected[path], buffers[path] = reference_sgd(
                expected[path], gradient * batch_size, buffers[path], rate,
                settings.weight_decay * batch_size / group_peak)
        for variable in variables:
            np.testing.assert_allclose(variable.numpy(), expected[variable.path], rtol=2e-4,
                                       atol=2e-5, err_msg=f"{variable.path}, step {step + 1}")


def test_muon_renormalises_each_filter_bank_to_sqrt_out_channels():
    kernel = keras.Variable(RNG.normal(size=(3, 3, 5, 7)).astype(np.float32) * 10, name="k")
    optimizer = muon.AirbenchMuon(0.0, peak_learning_rate=1.0)  # Rate 0: only the rescaling.
    optimizer.apply([tf.zeros_like(kernel)], [kernel])
    assert np.linalg.norm(kernel.numpy()) == pytest.approx(math.sqrt(7), rel=1e-5)


def test_orthogonalize_brings_singular_values_near_one():
    matrix = RNG.normal(size=(16, 40)) * np.logspace(-2, 1, 40)
    singular_values = np.linalg.svd(
        keras.ops.convert_to_numpy(muon.orthogonalize(tf.constant(matrix, tf.float32), 5)),
        compute_uv=False)
    assert singular_values.min() > 0.5 and singular_values.max() < 1.5
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(muon.orthogonalize(tf.constant(matrix.T, tf.float32), 3)),
        reference_newton_schulz(matrix.T), atol=1e-4)  # The tall case goes through the transpose.


def test_airbench_net_is_the_references_network():
    images = RNG.integers(0, 256, (64, 32, 32, 3)).astype(np.uint8)
    keras.utils.set_random_seed(1)
    model = models.airbench_net(preprocessing_layer("standardize", images), train_images=images)
    # The reference's trainable parameters: whitening bias, six filter banks, BN biases, head.
    assert model.count_params() - 288 - 2 * 1152 == 1_971_352
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 6 and all(
        (layer.momentum, layer.epsilon, layer.scale, layer.center) == (0.6, 1e-12, False, True)
        for layer in norms)
    assert model.get_layer("final_pool").output.shape[1:] == (1, 1, 256)
    assert np.std(model.get_layer("logits").kernel.numpy(), ddof=1) == pytest.approx(1.0)
    assert float(model.get_layer("logit_scale").scale) == pytest.approx(1 / 256)
    bias = model.get_layer("whitening").bias.numpy()
    assert 0 < np.abs(bias).max() <= 1 / math.sqrt(12)  # PyTorch's default conv bias.


def test_the_recipe_uses_the_muon_optimizer_and_whole_batches():
    recipe = get_recipe("airbench")
    assert (recipe.batch_size, recipe.drop_remainder, recipe.optimizer, recipe.schedule) == \
        (2000, True, "muon", "linear_decay")
    optimizer = train.make_optimizer(dataclasses.replace(recipe, epochs=8), steps_per_epoch=25)
    assert isinstance(optimizer, muon.AirbenchMuon)
    assert (optimizer.whitening_bias_steps, optimizer.batch_size) == (75, 2000)
    with pytest.raises(ValueError, match="no muon settings"):
        train.make_optimizer(dataclasses.replace(recipe, muon=None), steps_per_epoch=25)


def test_alternating_flip_mirrors_a_fixed_half_then_everything_on_odd_epochs():
    images = RNG.integers(0, 256, (40, 4, 4, 3)).astype(np.uint8)
    augmenter = augment.make_augmenter(["alternating_flip"], seed=3)
    prepared = augmenter.prepare(images)
    mirrored = np.all(prepared == images[:, :, ::-1], axis=(1, 2, 3))
    assert np.all(mirrored | np.all(prepared == images, axis=(1, 2, 3)))
    assert 8 < mirrored.sum() < 32 and np.array_equal(prepared, augmenter.prepare(images))

    # What model.fit's batches hold, epoch by epoch: recorded by an eager layer.
    seen = []

    class Record(keras.layers.Layer):
        def call(self, inputs):
            seen.append(np.asarray(inputs))
            return inputs

        def compute_output_shape(self, input_shape):
            return input_shape

    inputs = keras.Input((4, 4, 3))
    outputs = keras.layers.Dense(1)(keras.layers.Flatten()(Record()(inputs)))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss="mse", run_eagerly=True)
    labels = np.zeros(len(images), dtype=np.int64)
    dataset = make_dataset(prepared, labels, batch_size=40, augment=augmenter)
    epochs = []
    model.fit(dataset, epochs=3, verbose=0, shuffle=False, callbacks=[
        augmenter.callback(),
        keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: epochs.append(seen[-1]))])
    np.testing.assert_array_equal(epochs[0], prepared)
    np.testing.assert_array_equal(epochs[1], prepared[:, :, ::-1])
    np.testing.assert_array_equal(epochs[2], prepared)


@pytest.mark.parametrize("epsilon, scale", [(1e-12, False), (1e-3, True)])
def test_fused_batchnorm_trains_exactly_as_keras_batchnorm(epsilon, scale):
    """Same outputs, gradients, moving statistics and saved form as keras' own layer."""
    settings = {**models.AIRBENCH_BATCHNORM, "epsilon": epsilon, "scale": scale}
    images = tf.constant(RNG.normal(2.0, 3.0, (16, 5, 5, 6)), tf.float32)
    fused = models.FusedBatchNormalization(**settings)
    plain = keras.layers.BatchNormalization(**settings)
    fused.build(images.shape)
    plain.build(images.shape)
    assert fused._fused  # The fused kernel is what this test exercises.
    for variable in plain.trainable_variables:
        variable.assign(RNG.normal(size=variable.shape))
    fused.set_weights(plain.get_weights())
    results, upstream = [], tf.constant(RNG.normal(size=images.shape), tf.float32)
    for layer in (fused, plain):
        with tf.GradientTape() as tape:
            tape.watch(images)
            outputs = layer(images, training=True)
            loss = tf.reduce_sum(outputs * upstream)
        gradients = tape.gradient(loss, [images, *layer.trainable_variables])
        results.append((outputs, gradients, layer.moving_mean, layer.moving_variance))
    (outputs, gradients, mean, variance), (outputs_k, gradients_k, mean_k, variance_k) = results
    np.testing.assert_allclose(outputs, outputs_k, rtol=1e-4, atol=1e-5)
    for gradient, gradient_k in zip(gradients, gradients_k):
        np.testing.assert_allclose(gradient, gradient_k, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(mean, mean_k, rtol=1e-5)
    # The unbiased batch variance (PyTorch's running update) against Keras' biased one.
    count = 16 * 5 * 5
    unbiased = 0.6 + (np.asarray(variance_k) - 0.6) * count / (count - 1)
    np.testing.assert_allclose(variance, unbiased, rtol=1e-4)
    # Inference uses the moving statistics, as Keras does; the saved form is the same.
    plain.moving_variance.assign(fused.moving_variance)
    np.testing.assert_allclose(fused(images, training=False), plain(images, training=False),
                               rtol=1e-5, atol=1e-6)
    assert fused.get_config() == {**plain.get_config(), "name": fused.name}
    assert [w.shape for w in fused.weights] == [w.shape for w in plain.weights]
