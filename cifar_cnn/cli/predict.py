"""``cifar-cnn predict``: classify your own images with a saved model."""

from __future__ import annotations

import argparse
from pathlib import Path

from cifar_cnn.cli.common import (
    EXIT_OK,
    EXIT_SOME_FAILED,
    MODEL_ARGUMENT_HELP,
    HelpFormatter,
    message,
    quiet_tensorflow,
    positive_int,
)
from cifar_cnn.images import RESIZE_MODES

EXIT_CODES_HELP = ("exit codes:\n"
                   "  0  every image was classified\n"
                   "  1  some inputs failed (each named on stderr); the others were\n"
                   "     classified\n"
                   "  2  bad usage, or a model that cannot be loaded or used")


def add_parser(commands) -> None:
    """Add the ``predict`` command.

    Args:
        commands: The subparsers of the ``cifar-cnn`` parser.
    """
    parser = commands.add_parser(
        "predict", help="classify your own images with a saved model",
        formatter_class=HelpFormatter,
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
               + EXIT_CODES_HELP)
    parser.add_argument("model", metavar="MODEL_OR_RUN_FOLDER", help=MODEL_ARGUMENT_HELP)
    parser.add_argument("images", metavar="IMAGE_OR_FOLDER", nargs="+",
                        help="image files and folders of images")
    parser.add_argument("--top-k", type=positive_int, default=3, metavar="K",
                        help="how many classes to show per image, most probable first "
                             "(default: 3)")
    parser.add_argument("--resize", choices=RESIZE_MODES, default="stretch",
                        help="how to bring an image to 32x32 (default: stretch)")
    parser.add_argument("--contact-sheet", default=None, metavar="OUT.png",
                        help="also draw every classified image with its top classes into "
                             "this figure")
    parser.add_argument("--json", default=None, metavar="OUT.json",
                        help="also write every image's probabilities, notes and the failed "
                             "inputs to this JSON file")
    parser.set_defaults(handler=run)


def _load_images(arguments: argparse.Namespace, failures: list[dict]) -> list:
    """The images that could be read, as ``PreparedImage``; each failure noted and kept."""
    from cifar_cnn import images
    from cifar_cnn.progress import ProgressCounter

    paths, problems = images.collect_image_paths(arguments.images)
    for argument, problem in problems:
        message("predict", "error", problem)
        failures.append({"input": str(argument), "error": problem})
    prepared = []
    counter = ProgressCounter("loading images", len(paths), minimum_total=100)
    for done, path in enumerate(paths, start=1):
        try:
            image = images.load_image(path, arguments.resize)
        except images.ImageLoadError as error:
            message("predict", "error", str(error))
            failures.append({"input": str(path), "error": str(error)})
        else:
            for note in image.notes:
                message("predict", "note", f"{path}: {note}")
            prepared.append(image)
        counter.update(done)
    return prepared


def run(arguments: argparse.Namespace) -> int:
    """Classify the images, print each one's top classes, write the optional outputs.

    Args:
        arguments: Parsed by the ``predict`` parser.

    Returns:
        0 when every image was classified, 1 when some inputs failed (bad input, such as
        a model that cannot be loaded, raises ``ValueError``).
    """
    quiet_tensorflow()
    import numpy as np

    from cifar_cnn.data import CLASS_NAMES
    from cifar_cnn.evaluate import predict_probabilities
    from cifar_cnn.predict import load_model, top_k

    loaded = load_model(arguments.model, num_classes=len(CLASS_NAMES))
    if not 1 <= arguments.top_k <= loaded.num_classes:
        raise ValueError(f"--top-k must be between 1 and {loaded.num_classes} (the number of "
                         f"classes), got {arguments.top_k}.")
    for note in loaded.notes:
        message("predict", "note", note)
    failures: list[dict] = []
    prepared = _load_images(arguments, failures)

    results = []
    if prepared:
        pixels = np.stack([image.pixels for image in prepared])
        probabilities = predict_probabilities(loaded.model, pixels, progress_label="predicting")
        for image, image_probabilities in zip(prepared, probabilities):
            ranking = top_k(image_probabilities, arguments.top_k, CLASS_NAMES)
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
        from cifar_cnn.files import write_json

        json_path = Path(arguments.json).expanduser()
        write_json(json_path, {"model": str(loaded.path), "resize": arguments.resize,
                               "images": results, "failed": failures})
        print(f"predictions: {json_path}")
    if arguments.contact_sheet:
        if prepared:
            from cifar_cnn.files import write_figure
            from cifar_cnn.plots import prediction_contact_sheet

            sheet_path = Path(arguments.contact_sheet).expanduser()
            figure = prediction_contact_sheet(
                pixels, [image.path.name for image in prepared],
                [[(entry["class"], entry["probability"]) for entry in result["top_k"]]
                 for result in results])
            write_figure(sheet_path, figure)
            print(f"contact sheet: {sheet_path}")
        else:
            message("predict", "note", "no contact sheet: no image could be classified.")
    if failures:
        message("predict", "error", f"{len(failures)} input(s) failed; "
                                    f"{len(prepared)} image(s) classified.")
        return EXIT_SOME_FAILED
    return EXIT_OK
