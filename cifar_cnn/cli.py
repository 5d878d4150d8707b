"""The ``cifar-cnn`` command line (also ``python -m cifar_cnn``).

Commands: ``train`` and ``notebook`` write a run folder; ``evaluate`` scores a saved model
on a test split; ``predict`` classifies your own images; ``runs`` lists run folders.

The options of ``train`` and ``notebook`` are the notebook's parameters spelled with
dashes (``--batch-size`` for ``batch_size``), generated from ``RunConfig`` so that
nothing has two names.

Exit codes: 0 all went well; 1 some inputs failed but the others were processed
(``predict``); 2 bad usage or unusable input (unknown option, bad value, a model that
cannot be loaded, a missing data source), with a one-line reason on standard error.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import typing
from pathlib import Path

from cifar_cnn.config import RunConfig

EXIT_OK = 0
EXIT_SOME_INPUTS_FAILED = 1
EXIT_BAD_INPUT = 2
FIGURE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")
PREDICT_EXIT_CODES_HELP = ("exit codes:\n"
                           "  0  every image was classified\n"
                           "  1  some inputs failed (each named on stderr); the others were\n"
                           "     classified\n"
                           "  2  bad usage, or a model that cannot be loaded or used")
EVALUATE_EXIT_CODES_HELP = ("exit codes: 0 done; 2 bad usage, a model that cannot be loaded\n"
                            "or used, or a data source that cannot be read.")
RUNS_EXIT_CODES_HELP = "exit codes: 0 done (also when there are no runs); 2 no such folder."


class _HelpFormatter(argparse.HelpFormatter):
    """Wrap one-paragraph texts as usual, but keep the line breaks of a text that has them.

    Epilogs hold lists and examples whose lines must stay as written; descriptions are
    single paragraphs that should follow the terminal's width.
    """

    def _fill_text(self, text, width, indent):
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def _converter(annotation: str):
    """Turn a dataclass field's annotation into an argparse type."""
    if annotation.startswith("int"):
        return int
    if annotation.startswith("float"):
        return float
    return str


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """Add one ``--option`` per ``RunConfig`` field; unset options keep the config default.

    Args:
        parser: The subcommand's parser.
    """
    hints = {field.name: str(field.type) for field in dataclasses.fields(RunConfig)}
    docs = _field_help()
    for field in dataclasses.fields(RunConfig):
        option = "--" + field.name.replace("_", "-")
        help_text = docs.get(field.name, "")
        if hints[field.name] == "bool":
            parser.add_argument(option, dest=field.name, action="store_true",
                                default=argparse.SUPPRESS, help=help_text)
        else:
            default = field.default
            parser.add_argument(option, dest=field.name, type=_converter(hints[field.name]),
                                default=argparse.SUPPRESS, metavar=field.name.upper(),
                                help=f"{help_text} (default: {default})")


def _field_help() -> dict[str, str]:
    """Read each field's description from the RunConfig docstring's Attributes section."""
    helps, current = {}, None
    lines = (RunConfig.__doc__ or "").split("Attributes:", 1)[-1].splitlines()
    for line in lines:
        stripped = line.strip()
        name, separator, text = stripped.partition(": ")
        if separator and name.isidentifier() and len(line) - len(line.lstrip()) <= 8:
            current = name
            helps[name] = text
        elif current and stripped:
            helps[current] += " " + stripped
    return {name: text.replace("``", "").replace("%", "%%") for name, text in helps.items()}


def config_parameters(arguments: argparse.Namespace) -> dict:
    """The RunConfig parameters given on the command line."""
    names = set(RunConfig.parameter_names())
    return {name: value for name, value in vars(arguments).items() if name in names}


def _command_train(arguments) -> int:
    from cifar_cnn.experiment import run_experiment

    config = RunConfig.from_parameters(config_parameters(arguments))
    run_folder, metrics = run_experiment(config)
    print(f"run folder: {run_folder.path}")
    print(f"test accuracy: {metrics['test_accuracy']:.4f}")
    # getattr: the tensorboard field is optional in RunConfig versions without it.
    if getattr(config, "tensorboard", False):
        from cifar_cnn.tensorboard_logging import tensorboard_log_dir

        print(f"tensorboard logs: {tensorboard_log_dir(run_folder.path)} (view with: "
              f"tensorboard --logdir {run_folder.path.parent})")
    return 0


def _command_notebook(arguments) -> int:
    from cifar_cnn.notebook_runner import execute_notebook

    run_folder = execute_notebook(config_parameters(arguments), notebook=arguments.notebook,
                                  progress_bar=False)
    print(f"executed notebook: {run_folder / 'notebook.ipynb'}")
    print(f"run folder: {run_folder}")
    metrics_path = run_folder / "metrics.json"
    if metrics_path.is_file():
        import json

        print(f"test accuracy: {json.loads(metrics_path.read_text())['test_accuracy']:.4f}")
    return 0


def _message(command: str, kind: str, text: str) -> None:
    """Print one ``cifar-cnn COMMAND: KIND: text`` line on standard error."""
    print(f"cifar-cnn {command}: {kind}: {' '.join(text.split())}", file=sys.stderr, flush=True)


def _evaluation_output(model_path: Path, requested: str | None) -> Path:
    """Where the confusion-matrix figure goes: the request, else beside the model.

    ``model.keras`` gets ``evaluation/``; another file such as ``best.keras`` gets
    ``evaluation-best/``, so evaluating two models of a run folder keeps both results.
    """
    if requested:
        return Path(requested).expanduser()
    stem = model_path.stem
    folder = "evaluation" if stem == "model" else f"evaluation-{stem}"
    return model_path.parent / folder / "confusion_matrix.png"


def _command_evaluate(arguments) -> int:
    import datetime
    import time

    from cifar_cnn import data as data_module
    from cifar_cnn import evaluate, plots
    from cifar_cnn.predict import load_model, predict_probabilities, resolve_model_path
    from cifar_cnn.records import write_json

    model_path = resolve_model_path(arguments.model)
    output = _evaluation_output(model_path, arguments.output)
    # Checked before the slow work: matplotlib picks the format from the suffix.
    if output.suffix.lower() not in FIGURE_SUFFIXES:
        raise ValueError(f"--output {output} must end in one of {', '.join(FIGURE_SUFFIXES)}: "
                         "the figure's format follows its suffix.")
    loaded = load_model(model_path, num_classes=len(data_module.CLASS_NAMES))
    for note in loaded.notes:
        _message("evaluate", "note", note)
    run_config = loaded.run_config or {}
    # A run folder knows its data and the seed of its test subset: reuse both, so that
    # evaluating with the run's --max-test-examples reproduces its metrics.json exactly.
    source = arguments.data_source or run_config.get("data_source")
    seed = run_config.get("seed", RunConfig.seed)
    # Likewise the run's test-time augmentation, unless --flip-tta/--no-flip-tta says.
    flip_tta = arguments.flip_tta if arguments.flip_tta is not None \
        else bool(run_config.get("tta", False))
    try:
        resolved = data_module.resolve_source(source)
    except data_module.DataSourceError as error:
        if arguments.data_source or not run_config.get("data_source"):
            raise
        # A relative path recorded at training time may not hold from here: say where it
        # came from and how to override it.
        raise data_module.DataSourceError(
            f"{error} (This is the data_source recorded in {loaded.run_folder}/config.json; "
            "give --data-source to evaluate on another copy.)") from error
    print(f"model: {loaded.path}")
    print(f"loading the test split of {resolved.description} ...", flush=True)
    started = time.perf_counter()
    _, (images, labels) = data_module.load_cifar10(source)
    split_size = len(labels)
    images, labels = data_module.subsample(images, labels, arguments.max_test_examples, seed)
    probabilities = predict_probabilities(loaded.model, images, flip_augmentation=flip_tta)
    evaluation = evaluate.evaluate_probabilities(probabilities, labels)
    seconds = time.perf_counter() - started

    correct = int(evaluation.confusion.trace())
    subset = (f" (a stratified subset of {split_size}, seed {seed})"
              if len(labels) < split_size else "")
    print(f"test images: {len(labels)}{subset}{', flip TTA' if flip_tta else ''}")
    print(f"test accuracy: {evaluation.accuracy:.4f} ({correct}/{len(labels)})")
    print(f"test loss: {evaluation.loss:.4f}")
    print("per-class accuracy:")
    totals = evaluation.confusion.sum(axis=1)
    width = max(len(name) for name in data_module.CLASS_NAMES)
    for name, accuracy, total in zip(data_module.CLASS_NAMES, evaluation.per_class_accuracy,
                                     totals):
        print(f"  {name.ljust(width)}  {accuracy:.4f}  ({int(total)} images)")

    output.parent.mkdir(parents=True, exist_ok=True)
    figure = plots.confusion_matrix_figure(evaluation.confusion, data_module.CLASS_NAMES)
    figure.savefig(output, dpi=110)
    results_path = output.parent / "evaluation.json"
    document = {
        "model": str(loaded.path),
        "run_folder": str(loaded.run_folder) if loaded.run_folder else None,
        "data_source": resolved.description,
        "test_examples": int(len(labels)),
        "max_test_examples": arguments.max_test_examples,
        "subset_seed": seed,
        "flip_tta": flip_tta,
        **evaluation.summary(data_module.CLASS_NAMES),
        "confusion_matrix_figure": str(output),
        "seconds": seconds,
        "evaluated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"),
    }
    write_json(results_path, document)
    print(f"confusion matrix: {output}")
    print(f"results: {results_path}")
    return EXIT_OK


def _command_predict(arguments) -> int:
    import numpy as np

    from cifar_cnn import predict
    from cifar_cnn.data import CLASS_NAMES

    loaded = predict.load_model(arguments.model, num_classes=len(CLASS_NAMES))
    if not 1 <= arguments.top_k <= loaded.num_classes:
        raise ValueError(f"--top-k must be between 1 and {loaded.num_classes} (the number of "
                         f"classes), got {arguments.top_k}.")
    for note in loaded.notes:
        _message("predict", "note", note)
    paths, problems = predict.collect_image_paths(arguments.images)
    failures = []
    for argument, problem in problems:
        _message("predict", "error", problem)
        failures.append({"input": str(argument), "error": problem})
    prepared = []
    counter = predict.ProgressCounter("loading images", len(paths), minimum_total=100)
    for done, path in enumerate(paths, start=1):
        try:
            image = predict.load_image(path, arguments.resize)
        except predict.ImageLoadError as error:
            _message("predict", "error", str(error))
            failures.append({"input": str(path), "error": str(error)})
        else:
            for note in image.notes:
                _message("predict", "note", f"{path}: {note}")
            prepared.append(image)
        counter.update(done)

    results = []
    if prepared:
        pixels = np.stack([image.pixels for image in prepared])
        probabilities = predict.predict_probabilities(loaded.model, pixels)
        for image, image_probabilities in zip(prepared, probabilities):
            ranking = predict.top_k(image_probabilities, arguments.top_k, CLASS_NAMES)
            print(f"{image.path}: " + ", ".join(f"{name} {probability:.1%}"
                                                 for name, probability in ranking))
            results.append({
                "path": str(image.path),
                "original_size": list(image.original_size),
                "original_mode": image.original_mode,
                "notes": image.notes,
                "top_k": [{"class": name, "probability": probability}
                          for name, probability in ranking],
                "probabilities": {name: float(value)
                                  for name, value in zip(CLASS_NAMES, image_probabilities)},
            })
    if arguments.json:
        from cifar_cnn.records import write_json

        json_path = Path(arguments.json).expanduser()
        json_path.parent.mkdir(parents=True, exist_ok=True)
        write_json(json_path, {"model": str(loaded.path), "resize": arguments.resize,
                               "images": results, "failed": failures})
        print(f"predictions: {json_path}")
    if arguments.contact_sheet:
        if prepared:
            from cifar_cnn.prediction_plots import prediction_contact_sheet

            sheet_path = Path(arguments.contact_sheet).expanduser()
            sheet_path.parent.mkdir(parents=True, exist_ok=True)
            figure = prediction_contact_sheet(
                pixels, [image.path.name for image in prepared],
                [[(entry["class"], entry["probability"]) for entry in result["top_k"]]
                 for result in results])
            figure.savefig(sheet_path, dpi=110)
            print(f"contact sheet: {sheet_path}")
        else:
            _message("predict", "note", "no contact sheet: no image could be classified.")
    if failures:
        _message("predict", "error", f"{len(failures)} input(s) failed; "
                                     f"{len(prepared)} image(s) classified.")
        return EXIT_SOME_INPUTS_FAILED
    return EXIT_OK


def _command_runs(arguments) -> int:
    from cifar_cnn.run_listing import format_run_table, list_runs

    summaries = list_runs(arguments.output_dir)
    if not summaries:
        print(f"no run folders in {arguments.output_dir}")
        return EXIT_OK
    print(format_run_table(summaries))
    for summary in summaries:
        if summary.problem:
            _message("runs", "note", f"{summary.path} is unreadable: {summary.problem}")
    return EXIT_OK


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _test_subset_size(text: str) -> int:
    """argparse type: a test subset size, at least 10 as in RunConfig (one per class)."""
    value = _positive_int(text)
    if value < 10:
        raise argparse.ArgumentTypeError(f"must be 10 or more (a stratified subset needs "
                                         f"images of every class), got {value}")
    return value


_MODEL_ARGUMENT_HELP = ("a saved model file (model.keras) or a run folder that holds one, "
                        "e.g. runs/20250101-120000-seed")


def _add_evaluate_parser(commands) -> None:
    evaluate = commands.add_parser(
        "evaluate", help="score a saved model on a test set",
        formatter_class=_HelpFormatter,
        description="Evaluate a saved model on the test split of a CIFAR-10 source: print "
                    "test accuracy and per-class accuracy, and write a confusion-matrix "
                    "figure with an evaluation.json beside it.",
        epilog="The data source: --data-source, else the one recorded in the run folder's\n"
               "config.json, else $CIFAR10_SOURCE, else the Keras download. A run folder\n"
               "also gives the seed of the --max-test-examples subset and whether to use\n"
               "flip TTA, so its own settings reproduce its metrics.json. The model takes\n"
               "raw 0-255 pixels (its first layer preprocesses them).\n\n"
               "example:\n"
               "  cifar-cnn evaluate runs/20250101-120000-seed\n"
               "  cifar-cnn evaluate model.keras --data-source cifar10-jpeg.tar.gz "
               "--output eval/cm.png\n\n" + EVALUATE_EXIT_CODES_HELP)
    evaluate.add_argument("model", metavar="MODEL_OR_RUN_FOLDER", help=_MODEL_ARGUMENT_HELP)
    evaluate.add_argument("--data-source", default=None, metavar="SOURCE",
                          help="'keras', a local CIFAR-10 archive or folder, or an image "
                               "folder (default: the run's recorded source)")
    evaluate.add_argument("--max-test-examples", type=_test_subset_size, default=None,
                          metavar="N",
                          help="evaluate a stratified subset of N test images, chosen with "
                               "the run's seed (default: the whole test split)")
    evaluate.add_argument("--output", default=None, metavar="FIG.png",
                          help="where to write the confusion-matrix figure; evaluation.json "
                               "goes in the same folder (default: <model's folder>/"
                               "evaluation/confusion_matrix.png)")
    evaluate.add_argument("--flip-tta", action=argparse.BooleanOptionalAction, default=None,
                          help="test-time augmentation: average each image's prediction "
                               "with its mirror image's (default: as the run did, per its "
                               "config.json 'tta'; off for a bare model file)")
    evaluate.set_defaults(handler=_command_evaluate)


def _add_predict_parser(commands) -> None:
    from cifar_cnn.predict import RESIZE_MODES

    predict = commands.add_parser(
        "predict", help="classify your own images with a saved model",
        formatter_class=_HelpFormatter,
        description="Classify image files (any size; PNG, JPEG, BMP, GIF, WebP, TIFF or any "
                    "format Pillow opens) or folders of them, and print each image's most "
                    "probable CIFAR-10 classes.",
        epilog="How images are prepared:\n"
               "  - resized to 32x32 with Pillow's Lanczos filter (antialiased). 'stretch'\n"
               "    keeps the whole image and ignores its aspect ratio; 'center-crop' cuts\n"
               "    the largest centred square first. 32x32 images are used unchanged.\n"
               "  - grayscale is copied to R, G and B; transparent pixels (RGBA, LA, GIF)\n"
               "    are composited on white; CMYK is converted to RGB; animated images use\n"
               "    their first frame; EXIF orientation is applied. Each conversion except\n"
               "    resizing prints a note on stderr.\n"
               "  - fed as raw 0-255 pixels: the saved model does its own preprocessing.\n"
               "A folder contributes its image files (by suffix, sorted, not its subfolders).\n"
               "An input that fails (missing, undecodable, empty folder) prints one error\n"
               "line on stderr and the other images are still classified.\n\n"
               "example:\n"
               "  cifar-cnn predict runs/20250101-120000-seed cat.jpg photos/ --top-k 3\n\n"
               + PREDICT_EXIT_CODES_HELP)
    predict.add_argument("model", metavar="MODEL_OR_RUN_FOLDER", help=_MODEL_ARGUMENT_HELP)
    predict.add_argument("images", metavar="IMAGE_OR_FOLDER", nargs="+",
                         help="image files and folders of images")
    predict.add_argument("--top-k", type=_positive_int, default=3, metavar="K",
                         help="how many classes to show per image, most probable first "
                              "(default: 3)")
    predict.add_argument("--resize", choices=RESIZE_MODES, default="stretch",
                         help="how to bring an image to 32x32 (default: stretch)")
    predict.add_argument("--contact-sheet", default=None, metavar="OUT.png",
                         help="also draw every classified image with its top classes into "
                              "this figure")
    predict.add_argument("--json", default=None, metavar="OUT.json",
                         help="also write every image's probabilities, notes and the failed "
                              "inputs to this JSON file")
    predict.set_defaults(handler=_command_predict)


def _add_runs_parser(commands) -> None:
    runs = commands.add_parser(
        "runs", help="list run folders with their results",
        formatter_class=_HelpFormatter,
        description="List the run folders in an output folder, sorted by name, with recipe, "
                    "epochs, test accuracy, status and training time.",
        epilog="status: complete (metrics.json written), incomplete (running, interrupted\n"
               "or failed: epochs show as done/planned) or unreadable (a damaged file).\n\n"
               "example:\n"
               "  cifar-cnn runs\n"
               "  cifar-cnn runs /data/my-runs\n\n" + RUNS_EXIT_CODES_HELP)
    runs.add_argument("output_dir", metavar="OUTPUT_DIR", nargs="?", default="runs",
                      help="the folder runs were written to (default: runs)")
    runs.set_defaults(handler=_command_runs)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, one subparser per command.

    Returns:
        The ``argparse.ArgumentParser`` of ``cifar-cnn``.
    """
    parser = argparse.ArgumentParser(
        prog="cifar-cnn",
        description="Train, evaluate and use CNNs on CIFAR-10. Offline, point --data-source "
                    "(or $CIFAR10_SOURCE) at a local copy such as cifar10-jpeg.tar.gz.",
        formatter_class=_HelpFormatter,
        epilog="Run 'cifar-cnn COMMAND --help' for a command's options and examples.\n"
               "Exit codes: 0 done; 1 some inputs failed, the others were processed\n"
               "(predict); 2 bad usage or unusable input, with a reason on stderr.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a recipe and write a run folder",
                                description="Train a recipe (default: the seed notebook's) "
                                            "and write a run folder with config, history, "
                                            "metrics and model.")
    add_config_options(train)
    train.set_defaults(handler=_command_train)

    notebook = commands.add_parser(
        "notebook", help="execute the main notebook with papermill",
        description="Execute notebooks/cifar10_cnn.ipynb through papermill with these "
                    "parameters; the executed notebook is saved in the run folder.")
    add_config_options(notebook)
    notebook.add_argument("--notebook", default=None,
                          help="notebook to execute (default: the main notebook)")
    notebook.set_defaults(handler=_command_notebook)
    _add_evaluate_parser(commands)
    _add_predict_parser(commands)
    _add_runs_parser(commands)
    _add_sweep_and_compare_parsers(commands)
    return parser


def _add_sweep_and_compare_parsers(commands) -> None:
    from cifar_cnn import compare, sweep

    sweep_parser = commands.add_parser(
        "sweep", help="execute the main notebook once per parameter set (papermill)",
        description="Execute the main notebook once per parameter set from a YAML file and/or "
                    "--set/--grid/--run options; completed runs are skipped on a re-run, "
                    "failures are recorded and the rest go on; ends with a comparison.")
    sweep.add_sweep_arguments(sweep_parser)
    sweep_parser.set_defaults(handler=sweep.command_sweep)
    compare_parser = commands.add_parser(
        "compare", help="compare run folders: table (CSV, Markdown) and figure",
        description="Compare run folders: the parameters that differ, test accuracy, best "
                    "epoch and time, as CSV and Markdown tables and a figure.")
    compare.add_compare_arguments(compare_parser)
    compare_parser.set_defaults(handler=compare.command_compare)


def main(argv: typing.Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code.

    Args:
        argv: Arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        0 on success; 1 when some inputs failed and the others were processed
        (``predict``); 2 on bad usage or unusable input (with a one-line reason on stderr).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # Hide TensorFlow's start-up chatter.
    arguments = build_parser().parse_args(argv)
    try:
        return arguments.handler(arguments)
    except (ValueError, FileNotFoundError) as error:
        print(f"cifar-cnn {arguments.command}: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
