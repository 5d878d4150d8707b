"""Training: loss falls on a tiny set, fixed seeds reproduce, killed runs resume from their state."""

import dataclasses
import json

import keras
import numpy as np
import pytest

from cifar_cnn import checkpoints, models, train
from cifar_cnn.data import make_dataset
from cifar_cnn.recipes import get_recipe


def _learnable_images(count=96, seed=0):
    """Images whose class is written in their colour, so a few steps can learn them."""
    generator = np.random.default_rng(seed)
    labels = np.arange(count) % 10
    images = generator.integers(0, 60, (count, 32, 32, 3))
    images[..., 0] += labels[:, None, None] * 19
    return images.astype(np.uint8), labels


def _compiled_seed_model(epochs, steps_per_epoch, seed=0):
    train.set_seeds(seed)
    model = models.build_model("seed_cnn")
    recipe = dataclasses.replace(get_recipe("seed"), epochs=epochs)
    return train.compile_model(model, train.make_optimizer(recipe, steps_per_epoch),
                               train.make_loss(recipe))


def _dataset(images, labels, seed=0):
    return make_dataset(images, labels, batch_size=32, shuffle=True, seed=seed)


def test_loss_falls_over_a_few_epochs(tmp_path):
    images, labels = _learnable_images(count=320)
    model = _compiled_seed_model(epochs=8, steps_per_epoch=10)
    result = train.fit(model, _dataset(images, labels), 8, tmp_path, print_epochs=False)
    losses = result.series("loss")
    assert len(losses) == 8
    assert losses[-1] < 0.7 * losses[0], losses
    assert [row["epoch"] for row in result.history] == list(range(1, 9))
    assert all(row["seconds"] > 0 for row in result.history)
    assert json.loads((tmp_path / "history.json").read_text()) == result.history


def test_fixed_seed_reproduces_weights_and_history(tmp_path):
    images, labels = _learnable_images()
    runs = []
    for attempt in range(2):
        model = _compiled_seed_model(epochs=2, steps_per_epoch=3, seed=7)
        result = train.fit(model, _dataset(images, labels, seed=7), 2, tmp_path / str(attempt),
                           print_epochs=False)
        runs.append((model.get_weights(), result.series("loss")))
    np.testing.assert_allclose(runs[0][1], runs[1][1], rtol=1e-6)
    for first, second in zip(runs[0][0], runs[1][0]):
        np.testing.assert_allclose(first, second, rtol=1e-6, atol=1e-7)


def test_interrupted_run_resumes_after_its_last_completed_epoch(tmp_path):
    images, labels = _learnable_images()
    first = _compiled_seed_model(epochs=4, steps_per_epoch=3)
    train.fit(first, _dataset(images, labels), 2, tmp_path, print_epochs=False)
    assert checkpoints.latest_completed_epoch(tmp_path / "training_state") == 2
    saved_weights = first.get_weights()

    # A fresh process would rebuild the model from scratch and call fit with the same folder.
    second = _compiled_seed_model(epochs=4, steps_per_epoch=3, seed=99)
    restored = checkpoints.restore_training_state(second, tmp_path / "training_state")
    assert restored == 2
    assert int(second.optimizer.iterations.numpy()) == 2 * 3  # Optimizer state came back too.
    for expected, actual in zip(saved_weights, second.get_weights()):
        np.testing.assert_array_equal(expected, actual)

    resumed = train.fit(second, _dataset(images, labels), 4, tmp_path, print_epochs=False)
    assert resumed.resumed_from_epoch == 2
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3, 4]
    assert checkpoints.latest_completed_epoch(tmp_path / "training_state") == 4


def test_history_rows_past_the_saved_state_are_dropped_on_resume(tmp_path):
    images, labels = _learnable_images()
    model = _compiled_seed_model(epochs=3, steps_per_epoch=3)
    train.fit(model, _dataset(images, labels), 1, tmp_path, print_epochs=False)
    # Simulate a kill after epoch 2's history row was written but before its state landed.
    history = json.loads((tmp_path / "history.json").read_text())
    history.append(dict(history[0], epoch=2))
    (tmp_path / "history.json").write_text(json.dumps(history))
    (tmp_path / "training_state" / "partial-0002.weights.h5").write_bytes(b"half a file")
    fresh = _compiled_seed_model(epochs=3, steps_per_epoch=3)
    result = train.fit(fresh, _dataset(images, labels), 3, tmp_path, print_epochs=False)
    assert result.resumed_from_epoch == 1
    assert [row["epoch"] for row in result.history] == [1, 2, 3]


def test_completed_state_means_no_more_epochs(tmp_path):
    images, labels = _learnable_images()
    model = _compiled_seed_model(epochs=2, steps_per_epoch=3)
    train.fit(model, _dataset(images, labels), 2, tmp_path, print_epochs=False)
    again = _compiled_seed_model(epochs=2, steps_per_epoch=3)
    result = train.fit(again, _dataset(images, labels), 2, tmp_path, print_epochs=False)
    assert result.resumed_from_epoch == 2 and len(result.history) == 2


def test_epoch_line_prints_one_line_per_epoch(tmp_path, capsys):
    images, labels = _learnable_images(count=32)
    model = _compiled_seed_model(epochs=2, steps_per_epoch=1)
    train.fit(model, _dataset(images, labels), 2, tmp_path)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch")]
    assert len(lines) == 2 and lines[0].startswith("epoch 1/2 - ") and "loss" in lines[0]


def test_warmup_linear_decay_schedule_rises_then_falls_to_zero():
    recipe = get_recipe("seed").__class__(name="x", description="", model="seed_cnn", epochs=10,
                                          batch_size=8, learning_rate=0.4,
                                          schedule="warmup_linear_decay")
    schedule = train.learning_rate_schedule(recipe, steps_per_epoch=10)
    values = [float(schedule(step)) for step in (0, 10, 20, 60, 100)]
    assert values[0] == 0.0 and values[1] == pytest.approx(0.2) and values[2] == pytest.approx(0.4)
    assert values[3] == pytest.approx(0.4 * 40 / 80) and values[4] == pytest.approx(0.0)
    restored = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(schedule))
    assert float(restored(60)) == pytest.approx(values[3])


def test_unknown_optimizer_is_rejected():
    recipe = get_recipe("seed").__class__(name="x", description="", model="seed_cnn", epochs=1,
                                          batch_size=8, learning_rate=0.1, optimizer="lbfgs")
    with pytest.raises(ValueError, match="Unknown optimizer 'lbfgs'; valid choices: adam"):
        train.make_optimizer(recipe, steps_per_epoch=1)


def _cut_short(path):
    """Truncate a file to half its length, as a full disk or an interrupted copy would."""
    content = path.read_bytes()
    path.write_bytes(content[:len(content) // 2])


def test_the_last_two_epochs_states_are_kept(tmp_path):
    images, labels = _learnable_images()
    model = _compiled_seed_model(epochs=3, steps_per_epoch=3)
    train.fit(model, _dataset(images, labels), 3, tmp_path, print_epochs=False)
    assert sorted(path.name for path in (tmp_path / "training_state").iterdir()) == \
        ["epoch-0002.weights.h5", "epoch-0003.weights.h5"]


def test_a_damaged_newest_state_falls_back_to_the_one_before(tmp_path, capsys):
    images, labels = _learnable_images()
    first = _compiled_seed_model(epochs=4, steps_per_epoch=3)
    train.fit(first, _dataset(images, labels), 1, tmp_path, print_epochs=False)
    after_one = first.get_weights()
    train.fit(first, _dataset(images, labels), 2, tmp_path, print_epochs=False)
    _cut_short(tmp_path / "training_state" / "epoch-0002.weights.h5")
    capsys.readouterr()

    second = _compiled_seed_model(epochs=4, steps_per_epoch=3, seed=99)
    assert checkpoints.restore_training_state(second, tmp_path / "training_state") == 1
    note = capsys.readouterr().out.strip()
    assert note.startswith("note: training state epoch-0002.weights.h5 (")
    assert "is damaged and was skipped; resuming from epoch-0001.weights.h5, after epoch 1." \
        in note and len(note.splitlines()) == 1
    for expected, actual in zip(after_one, second.get_weights()):
        np.testing.assert_array_equal(expected, actual)

    resumed = train.fit(second, _dataset(images, labels), 4, tmp_path, print_epochs=False)
    assert resumed.resumed_from_epoch == 1
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3, 4]
    assert sorted(path.name for path in (tmp_path / "training_state").iterdir()) == \
        ["epoch-0003.weights.h5", "epoch-0004.weights.h5"]


def test_no_usable_state_names_every_damaged_file_and_the_way_out(tmp_path):
    images, labels = _learnable_images()
    model = _compiled_seed_model(epochs=4, steps_per_epoch=3)
    train.fit(model, _dataset(images, labels), 2, tmp_path, print_epochs=False)
    _cut_short(tmp_path / "training_state" / "epoch-0002.weights.h5")
    (tmp_path / "training_state" / "epoch-0001.weights.h5").write_bytes(b"not hdf5 at all")
    fresh = _compiled_seed_model(epochs=4, steps_per_epoch=3)
    with pytest.raises(checkpoints.DamagedTrainingStateError) as error:
        train.fit(fresh, _dataset(images, labels), 4, tmp_path, print_epochs=False)
    message = str(error.value)
    assert "epoch-0002.weights.h5 (" in message and "epoch-0001.weights.h5 (" in message
    assert "overwrite=True (--overwrite)" in message and len(message.splitlines()) == 1
