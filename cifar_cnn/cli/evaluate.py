"""``cifar-cnn evaluate``: score a saved model on a test split (see
:func:`cifar_cnn.saved_model_evaluation.evaluate_saved_model`, which does the work)."""

from __future__ import annotations

import argparse

from cifar_cnn.cli.common import (
    EXIT_OK,
    MODEL_ARGUMENT_HELP,
    HelpFormatter,
    message,
    quiet_tensorflow,
    positive_int,
)
from cifar_cnn.config import TEST_TIME_AUGMENTATIONS
from cifar_cnn.saved_model_evaluation import CONFUSION_MATRIX_FIGURE, EVALUATION_FILE
from cifar_cnn.runs import CONFIG_FILE, EVALUATION_FOLDER, METRICS_FILE, MODEL_FILE

EXIT_CODES_HELP = ("exit codes: 0 done; 2 bad usage, a model that cannot be loaded\n"
                   "or used, or a data source that cannot be read.")


def _test_subset_size(text: str) -> int:
    """argparse type: a test subset size, at least 10 as in RunConfig (one per class)."""
    value = positive_int(text)
    if value < 10:
        raise argparse.ArgumentTypeError(f"must be 10 or more (a stratified subset needs "
                                         f"images of every class), got {value}")
    return value


def add_parser(commands) -> None:
    """Add the ``evaluate`` command.

    Args:
        commands: The subparsers of the ``cifar-cnn`` parser.
    """
    parser = commands.add_parser(
        "evaluate", help="score a saved model on a test set",
        formatter_class=HelpFormatter,
        description="Evaluate a saved model on the test split of a CIFAR-10 source: print "
                    "test accuracy and per-class accuracy, and write a confusion-matrix "
                    f"figure with an {EVALUATION_FILE} beside it.",
        epilog="The data source: --data-source, else the one recorded in the run folder's\n"
               f"{CONFIG_FILE}, else $CIFAR10_SOURCE, else the Keras download. A run folder\n"
               "also gives the seed of the --max-test-examples subset and its test-time\n"
               f"augmentation, so its own settings reproduce its {METRICS_FILE}. The model takes\n"
               "raw 0-255 pixels (its first layer preprocesses them).\n\n"
               "example:\n"
               "  cifar-cnn evaluate runs/20250101-120000-seed\n"
               f"  cifar-cnn evaluate {MODEL_FILE} --data-source cifar10-jpeg.tar.gz "
               "--output eval/cm.png\n\n" + EXIT_CODES_HELP)
    parser.add_argument("model", metavar="MODEL_OR_RUN_FOLDER", help=MODEL_ARGUMENT_HELP)
    parser.add_argument("--data-source", default=None, metavar="SOURCE",
                        help="'keras', a local CIFAR-10 archive or folder, or an image "
                             "folder (default: the run's recorded source)")
    parser.add_argument("--max-test-examples", type=_test_subset_size, default=None,
                        metavar="N",
                        help="evaluate a stratified subset of N test images, chosen with "
                             "the run's seed (default: the whole test split)")
    parser.add_argument("--output", default=None, metavar="FIG.png",
                        help=f"where to write the confusion-matrix figure; {EVALUATION_FILE} "
                             "goes in the same folder (default: <model's folder>/"
                             f"{EVALUATION_FOLDER}/{CONFUSION_MATRIX_FIGURE})")
    parser.add_argument("--tta", choices=TEST_TIME_AUGMENTATIONS, default=None,
                        help="test-time augmentation: average each image's prediction over "
                             "its mirror ('flip') or over airbench's six views "
                             "('flip_translate') (default: as the run did, per its "
                             f"{CONFIG_FILE}; 'none' for a bare model file)")
    parser.set_defaults(handler=run)


def _progress(line: str) -> None:
    # Flushed: the next step can take minutes, and the line says what is happening.
    print(line, flush=True)


def run(arguments: argparse.Namespace) -> int:
    """Evaluate, then print the accuracies and where the figure and results went.

    Args:
        arguments: Parsed by the ``evaluate`` parser.

    Returns:
        0 (bad input raises ``ValueError``).
    """
    quiet_tensorflow()
    from cifar_cnn.saved_model_evaluation import evaluate_saved_model

    report = evaluate_saved_model(arguments.model, data_source=arguments.data_source,
                                  max_test_examples=arguments.max_test_examples,
                                  test_time_augmentation=arguments.tta,
                                  output=arguments.output,
                                  progress=_progress)
    for note in report.notes:
        message("evaluate", "note", note)
    evaluation = report.evaluation
    count = report.test_examples
    subset = (f" (a stratified subset of {report.split_size}, seed {report.subset_seed})"
              if report.is_subset else "")
    views = report.test_time_augmentation
    print(f"test images: {count}{subset}{f', {views} TTA' if views != 'none' else ''}")
    print(f"test accuracy: {evaluation.accuracy:.4f} ({int(evaluation.confusion.trace())}/"
          f"{count})")
    print(f"test loss: {evaluation.loss:.4f}")
    print("per-class accuracy:")
    totals = evaluation.confusion.sum(axis=1)
    width = max(len(name) for name in report.class_names)
    for name, accuracy, total in zip(report.class_names, evaluation.per_class_accuracy, totals):
        print(f"  {name.ljust(width)}  {accuracy:.4f}  ({int(total)} images)")
    print(f"confusion matrix: {report.figure_path}")
    print(f"results: {report.results_path}")
    return EXIT_OK
