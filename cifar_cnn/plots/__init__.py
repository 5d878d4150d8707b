"""Matplotlib figures built from arrays. Each function returns a Figure and never calls show().

Figures are created with ``matplotlib.figure.Figure`` rather than ``pyplot``, so building
them has no global side effects and works headless; Jupyter displays a returned Figure.
Every figure function is importable from here (``plots.sample_grid``); the modules group
them by what they show:

- :mod:`cifar_cnn.plots.data`: sample images, images per class;
- :mod:`cifar_cnn.plots.training`: loss and accuracy per epoch;
- :mod:`cifar_cnn.plots.evaluation`: confusion matrix, per-class accuracy, mistakes, one
  prediction;
- :mod:`cifar_cnn.plots.predictions`: the ``predict`` command's contact sheet;
- :mod:`cifar_cnn.plots.comparison`: several runs' validation curves and test accuracies;
- :mod:`cifar_cnn.plots.study`: a search's study: history, trial curves, importances.
"""

from cifar_cnn.plots.comparison import (
    accuracy_bars_figure,
    comparison_figure,
    validation_curves_figure,
)
from cifar_cnn.plots.data import class_balance, sample_grid
from cifar_cnn.plots.evaluation import (
    confusion_matrix_figure,
    misclassified_gallery,
    per_class_accuracy_figure,
    prediction_figure,
)
from cifar_cnn.plots.predictions import prediction_contact_sheet
from cifar_cnn.plots.study import study_figure
from cifar_cnn.plots.training import training_curves

__all__ = [
    "accuracy_bars_figure",
    "class_balance",
    "comparison_figure",
    "confusion_matrix_figure",
    "misclassified_gallery",
    "per_class_accuracy_figure",
    "prediction_contact_sheet",
    "prediction_figure",
    "sample_grid",
    "study_figure",
    "training_curves",
    "validation_curves_figure",
]
