"""Figures: each plot returns a Figure with the expected content and opens no pyplot window."""

import inspect

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from cifar_cnn import plots  # noqa: E402
from cifar_cnn.data import CLASS_NAMES  # noqa: E402

RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, (30, 32, 32, 3)).astype(np.uint8)
LABELS = np.arange(30) % 10


def _titles(figure):
    """Every axes title and every text drawn on an axes (the image grids' captions)."""
    return [axis.get_title() for axis in figure.axes] + \
        [text.get_text() for axis in figure.axes for text in axis.texts]


def test_sample_grid_titles_images_with_their_class():
    figure = plots.sample_grid(IMAGES, LABELS, CLASS_NAMES, count=10, columns=5)
    assert isinstance(figure, Figure)
    titles = [title for title in _titles(figure) if title]
    assert len(titles) == 10 and set(titles) <= set(CLASS_NAMES)
    assert len(figure.axes[0].get_images()) == 10  # One image under each title.
    assert plt.get_fignums() == []  # Nothing leaked into pyplot's global state.


def test_training_curves_show_train_and_validation():
    history = [{"epoch": e, "loss": 1 / e, "accuracy": e / 10, "val_loss": 1.5 / e,
                "val_accuracy": e / 12} for e in range(1, 6)]
    figure = plots.training_curves(history, validation_label="test")
    loss_axis, accuracy_axis = figure.axes
    assert [line.get_label() for line in loss_axis.get_lines()] == ["train", "test"]
    np.testing.assert_allclose(accuracy_axis.get_lines()[1].get_ydata(),
                               [row["val_accuracy"] for row in history])


def test_training_curves_without_validation_draw_only_train():
    figure = plots.training_curves([{"epoch": 1, "loss": 2.0, "accuracy": 0.2}])
    assert [line.get_label() for line in figure.axes[0].get_lines()] == ["train"]


def test_training_curves_of_no_epoch_yet_draw_empty_axes():
    figure = plots.training_curves([])
    assert [len(axis.get_lines()) for axis in figure.axes] == [1, 1]
    assert all(len(line.get_xdata()) == 0 for axis in figure.axes for line in axis.get_lines())


def test_one_epoch_curves_are_readable_markers_on_a_sensible_axis():
    figure = plots.training_curves([{"epoch": 1, "loss": 2.05, "accuracy": 0.31,
                                     "val_loss": 1.93, "val_accuracy": 0.34}])
    loss_axis, accuracy_axis = figure.axes
    for axis in figure.axes:
        # Half an epoch each side, one tick at 1: not a lone dot on a 0.945-1.050 axis.
        assert axis.get_xlim() == (0.5, 1.5)
        assert list(axis.get_xticks()) == [1]
        assert all(line.get_marker() == "o" and line.get_markersize() >= 6
                   for line in axis.get_lines())
    assert accuracy_axis.get_ylim() == (0.0, 1.0)
    assert loss_axis.get_ylim()[0] == 0.0 and loss_axis.get_ylim()[1] > 2.05
    # The values are written beside the dots.
    assert [text.get_text() for text in accuracy_axis.texts] == ["0.310", "0.340"]
    assert [text.get_text() for text in loss_axis.texts] == ["2.050", "1.930"]


def test_many_epoch_curves_keep_matplotlib_s_own_axis():
    history = [{"epoch": e, "loss": 1 / e, "accuracy": 0.5 + e / 100} for e in range(1, 31)]
    accuracy_axis = plots.training_curves(history).axes[1]
    assert len(accuracy_axis.texts) == 0
    low, high = accuracy_axis.get_ylim()
    assert low > 0.45 and high < 0.85  # Zoomed on the curve, not stretched to 0..1.


def _overlaps(first, second) -> bool:
    return (first.x0 < second.x1 and second.x0 < first.x1
            and first.y0 < second.y1 and second.y0 < first.y1)


def test_class_balance_legend_covers_no_bar():
    # Every class as tall as the tallest: inside the axes there is no empty corner.
    labels = np.repeat(np.arange(10), 50)
    figure = plots.class_balance({"train": labels, "test": labels[::5]}, CLASS_NAMES)
    figure.draw_without_rendering()
    axis = figure.axes[0]
    legend = axis.get_legend().get_window_extent()
    bars = [patch.get_window_extent() for patch in axis.patches]
    assert len(bars) == 20
    assert not any(_overlaps(legend, bar) for bar in bars)
    assert legend.x0 >= axis.get_window_extent().x1  # Beside the axes.
    assert legend.x1 <= figure.bbox.x1  # And still inside the figure.


def test_confusion_matrix_figure_normalises_rows():
    matrix = np.array([[3, 1], [0, 4]])
    figure = plots.confusion_matrix_figure(matrix, ["a", "b"])
    shown = figure.axes[0].get_images()[0].get_array()
    np.testing.assert_allclose(shown, [[0.75, 0.25], [0.0, 1.0]])


def test_prediction_figure_names_predicted_and_true_class():
    probabilities = np.full(10, 0.05)
    probabilities[3] = 0.55
    figure = plots.prediction_figure(IMAGES[0], probabilities, CLASS_NAMES, true_label=5)
    title = figure.axes[0].get_title()
    assert "predicted: cat (55%)" in title and "true: dog" in title
    assert len(figure.axes[1].patches) == 10


def test_misclassified_gallery_and_bars_and_balance():
    predictions = (LABELS + 1) % 10
    gallery = plots.misclassified_gallery(IMAGES, LABELS, predictions, [0, 4], CLASS_NAMES)
    assert "airplane\n-> automobile" in _titles(gallery)
    bars = plots.per_class_accuracy_figure(np.linspace(0, 1, 10), CLASS_NAMES)
    assert len(bars.axes[0].patches) == 10
    balance = plots.class_balance({"train": LABELS, "test": LABELS[:10]}, CLASS_NAMES)
    heights = [patch.get_height() for patch in balance.axes[0].patches]
    assert heights == [3] * 10 + [1] * 10


def test_contact_sheet_has_one_titled_tile_per_image():
    images = np.random.default_rng(7).integers(0, 256, (7, 32, 32, 3)).astype(np.uint8)
    rankings = [[("cat", 0.5), ("dog", 0.3), ("frog", 0.1)]] * 7
    figure = plots.prediction_contact_sheet(images, [f"image-{i}.png" for i in range(7)],
                                            rankings, columns=4)
    tiles = [axis for axis in figure.axes if axis.images]
    assert len(tiles) == 7 and len(figure.axes) == 8
    assert tiles[0].get_title() == "image-0.png\ncat 50%\ndog 30%\nfrog 10%"
    with pytest.raises(ValueError, match="one entry per image"):
        plots.prediction_contact_sheet(images, ["one name"], rankings)


def test_every_figure_function_is_exported_by_the_package():
    modules = (plots.data, plots.training, plots.evaluation, plots.predictions,
               plots.comparison, plots.study)
    defined = {name for module in modules for name, value in vars(module).items()
               if inspect.isfunction(value) and value.__module__ == module.__name__
               and not name.startswith("_")}
    assert defined == set(plots.__all__)
    assert all(getattr(plots, name).__module__.startswith("cifar_cnn.plots.")
               for name in plots.__all__)
