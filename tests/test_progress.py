"""Progress: where it goes (notebook, terminal, nowhere), throttling, training and data loads."""

import contextlib
import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from cifar_cnn import progress
from cifar_cnn.data import load_cifar10


class FakeClock:
    def __init__(self, now=100.0):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


class ZMQInteractiveShell:  # Named as ipykernel's shell: the test's stand-in for a kernel.
    pass


class ColabShell(ZMQInteractiveShell):
    pass


class TerminalInteractiveShell:  # IPython in a terminal: no kernel.
    pass


class FakeDisplay:
    """Records what a notebook would receive: the first bundle, then every update."""

    def __init__(self):
        self.shown = []  # ("display" | "update", bundle)

    def __call__(self, bundle, display_id=False):
        assert display_id is True, "progress must be displayed with a display id to update it"
        self.shown.append(("display", bundle))
        return self

    def update(self, bundle):
        self.shown.append(("update", bundle))


def terminal_text(stream: io.StringIO) -> str:
    """What a terminal shows once each carriage return has taken the line back."""
    lines = []
    for line in stream.getvalue().split("\n"):
        lines.append(line.split("\r")[-1].rstrip())
    return "\n".join(lines)


# Where progress goes ---------------------------------------------------------------------

@pytest.mark.parametrize("shell, stdout, environ, expected", [
    (ZMQInteractiveShell(), io.StringIO(), {}, "notebook"),
    (ColabShell(), io.StringIO(), {}, "notebook"),
    (None, FakeTerminal(), {}, "terminal"),
    (TerminalInteractiveShell(), FakeTerminal(), {}, "terminal"),
    (None, io.StringIO(), {}, "quiet"),  # A pipe, a log file, pytest's capture, CI.
    (TerminalInteractiveShell(), io.StringIO(), {}, "quiet"),
    (ZMQInteractiveShell(), io.StringIO(), {"CIFAR_CNN_PROGRESS": "0"}, "quiet"),
    (None, FakeTerminal(), {"CIFAR_CNN_PROGRESS": "off"}, "quiet"),
    (None, io.StringIO(), {"CIFAR_CNN_PROGRESS": "1"}, "terminal"),
    (ZMQInteractiveShell(), io.StringIO(), {"CIFAR_CNN_PROGRESS": "1"}, "notebook"),
])
def test_display_mode_follows_kernel_terminal_and_environment(shell, stdout, environ, expected):
    assert progress.display_mode(environ=environ, stdout=stdout, shell=shell) == expected


def test_without_ipython_a_process_is_no_kernel(monkeypatch):
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    assert progress.jupyter_shell() is None
    assert progress.display_mode(environ={}, stdout=io.StringIO()) == "quiet"


def test_runners_turn_progress_off_for_the_kernels_they_start(monkeypatch):
    monkeypatch.delenv(progress.ENVIRONMENT_VARIABLE, raising=False)
    child = [sys.executable, "-c",
             "import os; print(os.environ.get('CIFAR_CNN_PROGRESS', 'unset'))"]
    with progress.quiet_in_child_processes():
        seen = subprocess.run(child, capture_output=True, text=True, check=True).stdout
    assert seen.strip() == "0"
    assert progress.ENVIRONMENT_VARIABLE not in os.environ  # Restored afterwards.

    monkeypatch.setenv(progress.ENVIRONMENT_VARIABLE, "1")
    with progress.quiet_in_child_processes():
        assert os.environ[progress.ENVIRONMENT_VARIABLE] == "0"
    assert os.environ[progress.ENVIRONMENT_VARIABLE] == "1"


# The line itself -----------------------------------------------------------------------

def test_updates_are_throttled_and_forced_ones_go_through():
    clock, stream = FakeClock(), FakeTerminal()
    line = progress.ProgressLine("terminal", stream=stream, clock=clock, interval=0.5)
    drawn = []
    for step in range(100):  # 100 updates over 1 s: one every 10 ms.
        if line.update(f"step {step}"):
            drawn.append(step)
        clock.advance(0.01)
    assert drawn == [0, 50]  # At most one redraw per half second.
    assert stream.getvalue().count("\r") == 2
    assert line.update("stage change", force=True)
    assert terminal_text(stream) == "stage change"


def test_delay_keeps_short_work_silent():
    clock, stream = FakeClock(), FakeTerminal()
    line = progress.ProgressLine("terminal", stream=stream, clock=clock, delay=1.0)
    assert not line.update("at once", force=True)
    clock.advance(0.5)
    assert not line.update("still short", force=True)
    line.close("done")  # Nothing was drawn: nothing to end.
    assert stream.getvalue() == ""

    late = progress.ProgressLine("terminal", stream=stream, clock=clock, delay=1.0)
    clock.advance(1.0)
    assert late.update("a second in")
    assert terminal_text(stream) == "a second in"


def test_terminal_line_is_redrawn_in_place_then_kept_or_wiped():
    stream = FakeTerminal()
    line = progress.ProgressLine("terminal", stream=stream, interval=0.0)
    line.show("a long first state of the line")
    line.show("short")
    # The shorter text is padded over the longer one: no leftovers on screen.
    assert stream.getvalue().endswith("\rshort" + " " * (len("a long first state of the line")
                                                          - len("short")))
    line.clear()  # Room for an epoch line.
    print("epoch 1/2 - 1.0s - loss 1.0000", file=stream)
    line.show("epoch 2/2: starting...")
    line.close("finished")
    assert terminal_text(stream) == "epoch 1/2 - 1.0s - loss 1.0000\nfinished\n"
    assert stream.getvalue().endswith("\n")

    wiped = FakeTerminal()
    line = progress.ProgressLine("terminal", stream=wiped)
    line.show("working")
    line.close()
    assert terminal_text(wiped) == ""


def test_notebook_display_is_updated_in_place_and_its_first_state_has_no_plain_text():
    display = FakeDisplay()
    line = progress.ProgressLine("notebook", display=display, interval=0.0)
    line.show("epoch 1/8: starting (compiling)...")
    line.show("epoch 1/8: 12/25 steps", 12 / 25)
    line.show("a < b & c")
    line.close()
    kinds = [kind for kind, _ in display.shown]
    assert kinds == ["display", "update", "update", "update"]  # One display, updated.
    first = display.shown[0][1]
    # papermill --log-output logs the text/plain of a new display (never of an update).
    assert set(first) == {"text/html"} and "starting (compiling)" in first["text/html"]
    second = display.shown[1][1]
    assert second["text/plain"] == "epoch 1/8: 12/25 steps"
    assert '<progress max="1" value="0.4800"' in second["text/html"]
    assert "a &lt; b &amp; c" in display.shown[2][1]["text/html"]
    assert display.shown[-1] == ("update", {})  # Emptied: it takes no room afterwards.

    kept = FakeDisplay()
    line = progress.ProgressLine("notebook", display=kept)
    line.show("loading: decoding 10/60,000 images")
    line.close("loaded 60,000 images in 37.0 s")
    assert kept.shown[-1][1]["text/plain"] == "loaded 60,000 images in 37.0 s"
    assert "<progress" not in kept.shown[-1][1]["text/html"]


def test_quiet_mode_draws_nothing():
    stream, display = FakeTerminal(), FakeDisplay()
    line = progress.ProgressLine("quiet", stream=stream, display=display)
    assert not line.active and not line.due(force=True)
    assert not line.update("anything", force=True)
    line.show("anything")
    line.clear()
    line.close("the end")
    assert stream.getvalue() == "" and display.shown == []


def test_stages_show_counts_estimates_and_bytes():
    clock, stream = FakeClock(), FakeTerminal()
    stages = progress.Stages(progress.ProgressLine("terminal", stream=stream, clock=clock),
                             "loading x.tar.gz")
    stages("checking the archive", 0, 19_400_000, "bytes")
    assert terminal_text(stream) == "loading x.tar.gz: checking the archive 0.0/19.4 MB, 0.0 s"
    clock.advance(2.0)
    stages("decoding", 0, 60_000, "images")  # A new stage is drawn at once...
    clock.advance(0.1)
    stages("decoding", 100, 60_000, "images")  # ...then not again within the interval.
    assert terminal_text(stream) == "loading x.tar.gz: decoding 0/60,000 images, 2.0 s"
    clock.advance(1.9)
    stages("decoding", 30_000, 60_000, "images")
    assert terminal_text(stream) == \
        "loading x.tar.gz: decoding 30,000/60,000 images, 4.0 s, ~2.0 s left"
    clock.advance(1.0)
    stages("writing the cache", 0)
    assert terminal_text(stream) == "loading x.tar.gz: writing the cache, 5.0 s"
    assert progress.format_seconds(185) == "3 min 05 s"


# Training ------------------------------------------------------------------------------

class RecordingLine(progress.ProgressLine):
    """A terminal line that also keeps every text it drew, in order."""

    def __init__(self, **kwargs):
        super().__init__("terminal", stream=FakeTerminal(), interval=0.0, **kwargs)
        self.texts = []

    def show(self, text, fraction=None):
        self.texts.append((text, fraction))
        super().show(text, fraction)


def test_epoch_progress_says_starting_at_once_before_a_slow_first_step():
    from cifar_cnn import training_callbacks

    clock = FakeClock()
    line = RecordingLine()
    callback = training_callbacks.EpochProgress(8, line=line, clock=clock)
    callback.set_params({"epochs": 8, "steps": 25})
    callback.on_train_begin()
    callback.on_epoch_begin(0)
    # Drawn at the epoch's first moment: nothing waits for the first (traced) step.
    assert line.texts == [("epoch 1/8: starting (compiling)...", 0.0)]
    callback.on_train_batch_begin(0)
    clock.advance(12.0)  # Tracing makes the first step long.
    callback.on_train_batch_end(0, {"loss": 2.3, "accuracy": 0.11, "learning_rate": 0.1})
    callback.on_train_batch_begin(1)
    text, fraction = line.texts[-1]
    assert text.startswith("epoch 1/8: 1/25 steps - 12.0 s, 12.00 s/step, ~4 min 48 s left")
    assert text.endswith(" - loss 2.3000 - accuracy 0.1100") and "learning_rate" not in text
    assert fraction == pytest.approx(1 / 25)
    clock.advance(1.0)  # Traced: the next steps are fast, and the estimate follows them.
    callback.on_train_batch_end(1, {"loss": 2.2, "accuracy": 0.12})
    callback.on_train_batch_begin(2)
    assert line.texts[-1][0].startswith("epoch 1/8: 2/25 steps - 13.0 s, 1.00 s/step, "
                                        "~23.0 s left")
    callback.on_test_begin()
    assert line.texts[-1][0] == ("epoch 1/8: trained 2 steps in 13.0 s; validating (compiling)"
                                 " - 0.0 s - loss 2.2000 - accuracy 0.1200")
    callback.on_test_batch_begin(0)
    callback.on_test_batch_end(0)
    callback.on_test_batch_begin(1)
    assert "validating 1 batches" in line.texts[-1][0]
    callback.on_test_end()
    callback.on_epoch_end(0, {"loss": 2.0})
    callback.on_epoch_begin(1)
    assert line.texts[-1][0] == "epoch 2/8: starting..."  # Traced by now.
    callback.on_train_end()
    assert not line.active


def test_unknown_steps_per_epoch_are_counted_then_learnt():
    from cifar_cnn import training_callbacks

    clock, line = FakeClock(), RecordingLine()
    callback = training_callbacks.EpochProgress(2, line=line, clock=clock)
    callback.set_params({"epochs": 2, "steps": None})  # A tf.data set of unknown size.
    callback.on_train_begin()
    callback.on_epoch_begin(0)
    assert line.texts[-1] == ("epoch 1/2: starting (compiling)...", None)
    for step in range(3):
        callback.on_train_batch_begin(step)
        clock.advance(0.5)
        callback.on_train_batch_end(step, {"loss": 1.0})
    callback.on_epoch_end(0)
    drawn = [text for text, _ in line.texts]
    assert drawn[-2:] == ["epoch 1/2: 1 step - 0.5 s, 2.0 steps/s - loss 1.0000",
                          "epoch 1/2: 2 steps - 1.0 s, 2.0 steps/s - loss 1.0000"]
    callback.on_epoch_begin(1)
    callback.on_train_batch_begin(0)
    callback.on_train_batch_end(0, {"loss": 1.0})
    callback.on_train_batch_begin(1)
    assert line.texts[-1][0].startswith("epoch 2/2: 1/3 steps")


def _tiny_fit(tmp_path, dataset_of, epochs=2, print_epochs=True, extra_callbacks=()):
    from cifar_cnn import models, train
    from cifar_cnn.data import make_dataset
    from cifar_cnn.recipes import get_recipe

    generator = np.random.default_rng(0)
    images = generator.integers(0, 256, (64, 32, 32, 3)).astype(np.uint8)
    labels = np.arange(64) % 10
    train.set_seeds(0)
    model = models.build_model("seed_cnn")
    recipe = get_recipe("seed")
    train.compile_model(model, train.make_optimizer(recipe, 4), train.make_loss(recipe))
    dataset = dataset_of(make_dataset(images, labels, batch_size=16, shuffle=True, seed=0))
    validation = make_dataset(images[:32], labels[:32], batch_size=16)
    return train.fit(model, dataset, epochs, tmp_path, validation_dataset=validation,
                     print_epochs=print_epochs, extra_callbacks=extra_callbacks)


EPOCH_LINE = re.compile(r"^epoch \d+/\d+ - \d+\.\ds - accuracy \d\.\d{4} - loss \d+\.\d{4}"
                        r" - val_accuracy \d\.\d{4} - val_loss \d+\.\d{4}$")


@pytest.mark.filterwarnings("ignore:Your input ran out of data")
@pytest.mark.parametrize("size", ["known", "unknown"])
def test_tiny_fit_draws_progress_within_each_epoch(tmp_path, monkeypatch, size):
    from cifar_cnn import training_callbacks

    lines = []

    class Recorded(RecordingLine):
        def __init__(self, *args, **kwargs):
            super().__init__()
            lines.append(self)

    # The callback makes its line when training starts: make it a recording terminal line.
    monkeypatch.setattr(progress, "ProgressLine", Recorded)
    callback = training_callbacks.EpochProgress(2)
    # filter() hides the size: Keras then passes steps=None to the callbacks.
    dataset_of = (lambda dataset: dataset) if size == "known" else \
        (lambda dataset: dataset.filter(lambda x, y: True))
    _tiny_fit(tmp_path, dataset_of, print_epochs=False, extra_callbacks=[callback])
    texts = [text for text, _ in lines[0].texts]
    assert texts[0] == "epoch 1/2: starting (compiling)..."
    assert "epoch 2/2: starting..." in texts
    first = [text for text in texts if text.startswith("epoch 1/2: 1")]
    one_step = "1/4 steps" if size == "known" else "1 step"
    assert first and first[0].startswith(f"epoch 1/2: {one_step} - "), texts
    # The second epoch knows its length either way (learnt from the first one).
    assert any(text.startswith("epoch 2/2: 1/4 steps - ") for text in texts), texts
    steps = [text for text in texts if re.match(r"epoch \d/2: \d(/4)? steps? - ", text)]
    assert len(steps) >= 4
    assert all(" - loss " in text and " - accuracy " in text for text in steps)
    assert any("validating" in text for text in texts)
    assert not lines[0].active  # Closed at the end of training.


@pytest.mark.filterwarnings("ignore:Your input ran out of data")
def test_fit_in_quiet_mode_prints_only_one_line_per_epoch(tmp_path, capsys):
    # pytest's capture is no terminal and no kernel: what papermill, sweeps and CI get.
    assert progress.display_mode() == "quiet"
    _tiny_fit(tmp_path, lambda dataset: dataset.filter(lambda x, y: True))  # Unknown size.
    output = capsys.readouterr().out
    assert "\r" not in output
    lines = output.splitlines()
    assert len(lines) == 2 and all(EPOCH_LINE.match(line) for line in lines), lines


def test_run_callbacks_put_progress_before_the_epoch_line(tmp_path):
    from cifar_cnn import train, training_callbacks

    _, callbacks = train.run_callbacks(tmp_path, 3, 0)
    kinds = [type(callback) for callback in callbacks]
    assert kinds.index(training_callbacks.EpochProgress) == kinds.index(training_callbacks.EpochLine) - 1
    _, quiet = train.run_callbacks(tmp_path, 3, 0, print_epochs=False)
    assert not any(isinstance(callback, (training_callbacks.EpochProgress, training_callbacks.EpochLine))
                   for callback in quiet)
    assert training_callbacks.EpochProgress.async_safe  # Keras keeps dispatching batch ends in the background.


# Data loads ----------------------------------------------------------------------------

class StageRecorder:
    def __init__(self):
        self.calls = []
        self.closed = "not closed"

    def __call__(self, stage, done, total=None, unit=""):
        self.calls.append((stage, done, total, unit))

    def close(self, text=None):
        self.closed = text

    def stages(self):
        return list(dict.fromkeys(stage for stage, *_ in self.calls))

    def last(self, stage):
        return [call for call in self.calls if call[0] == stage][-1]


def test_image_archive_load_reports_each_pass(make_cifar_fixture, tiny_arrays):
    source = make_cifar_fixture("image_folder", "tar.gz", "jpeg")
    recorder = StageRecorder()
    (x_train, _), (x_test, _) = load_cifar10(source, progress=recorder)
    images = len(x_train) + len(x_test)
    assert recorder.stages() == ["checking the archive", "reading", "decoding",
                                 "writing the cache"]
    _, checked, archive_bytes, unit = recorder.last("checking the archive")
    assert unit == "bytes" and archive_bytes == source.stat().st_size and 0 < checked
    assert recorder.last("reading") == ("reading", images, images, "files")
    assert recorder.last("decoding") == ("decoding", images, images, "images")
    decoded = [done for stage, done, *_ in recorder.calls if stage == "decoding"]
    assert decoded == list(range(images + 1))  # Every image counted, in order.
    assert recorder.closed == f"loaded {images:,} images from {source.name} in " \
        + recorder.closed.rsplit(" in ", 1)[1]

    cached = StageRecorder()
    load_cifar10(source, progress=cached)  # From the cache: no pass to report.
    assert cached.calls == [] and cached.closed.startswith(f"loaded {images:,} images")


def test_official_batches_report_reading_and_decoding(make_cifar_fixture):
    recorder = StageRecorder()
    load_cifar10(make_cifar_fixture("python", "tar.gz"), progress=recorder, use_cache=False)
    assert recorder.stages() == ["checking the archive", "reading", "decoding"]
    assert recorder.last("reading") == ("reading", 6, 6, "files")
    assert [call for call in recorder.calls if call[0] == "decoding"] == \
        [("decoding", index, 6, "batches") for index in range(6)]


def test_a_failed_load_removes_its_line(make_cifar_fixture, tmp_path):
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(make_cifar_fixture("image_folder", "tar.gz").read_bytes()[:300])
    recorder = StageRecorder()
    with pytest.raises(Exception):
        load_cifar10(broken, progress=recorder)
    assert recorder.closed is None


def test_loads_draw_nothing_where_nobody_watches(make_cifar_fixture, capsys):
    load_cifar10(make_cifar_fixture("image_folder", "tar.gz"), use_cache=False)
    assert capsys.readouterr() == ("", "")


def test_a_long_load_draws_a_terminal_line_then_leaves_its_result(
        make_cifar_fixture, monkeypatch):
    terminal = FakeTerminal()
    clock = FakeClock()
    real_line = progress.ProgressLine

    def slow_line(*args, **kwargs):  # Every clock read is a second later: a long load.
        def ticking():
            clock.advance(1.0)
            return clock.now
        return real_line(*args, **{**kwargs, "stream": terminal, "clock": ticking})

    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setattr(progress, "ProgressLine", slow_line)
    load_cifar10(make_cifar_fixture("image_folder", "tar.gz"), use_cache=False)
    shown = terminal_text(terminal)
    assert re.fullmatch(r"loaded 50 images from \S+\.tar\.gz in [\d.]+ s\n", shown), shown
    assert "decoding" in terminal.getvalue()  # Drawn while it ran, then replaced.


@pytest.mark.parametrize("watched", [True, False])
def test_keras_download_bar_only_where_a_person_watches(monkeypatch, watched):
    import keras

    from cifar_cnn.data import sources

    seen = []

    def fake_load_data():
        seen.append(keras.config.is_interactive_logging_enabled())
        images = np.zeros((10, 32, 32, 3), np.uint8)
        return (images, np.zeros((10, 1), np.uint8)), (images, np.zeros((10, 1), np.uint8))

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", fake_load_data)
    monkeypatch.setattr(progress, "display_mode", lambda **kwargs: "terminal" if watched
                        else "quiet")
    assert keras.config.is_interactive_logging_enabled()
    sources.load_cifar10("keras")
    assert seen == [watched]
    assert keras.config.is_interactive_logging_enabled()  # Restored.


# papermill -----------------------------------------------------------------------------

PAPERMILL_CELL = """\
import time
from cifar_cnn import progress
print("mode", progress.display_mode())
line = progress.ProgressLine(interval=0.0)
for step in range(200):
    line.update(f"epoch 1/1: {step + 1}/200 steps", (step + 1) / 200)
    time.sleep(0.001)
line.clear()
print("epoch 1/1 - 0.2s - loss 1.0000")
line.close("finished")
"""


@pytest.mark.parametrize("runner_quiet", [False, True])
def test_papermill_logs_and_keeps_only_the_lines_never_the_updates(
        tmp_path, caplog, monkeypatch, runner_quiet):
    """The claim behind showing progress in every kernel: a display's updates never reach
    papermill's logs (--log-output, stdout_file) and the executed notebook keeps only the
    last state; the project's runners (``quiet_in_child_processes``) leave no display."""
    import logging

    import nbformat
    import papermill

    monkeypatch.delenv(progress.ENVIRONMENT_VARIABLE, raising=False)
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(PAPERMILL_CELL)]
    source, executed = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(notebook, source)
    stdout = io.StringIO()
    caplog.set_level(logging.INFO, logger="papermill")
    quiet = progress.quiet_in_child_processes() if runner_quiet else contextlib.nullcontext()
    with quiet:
        papermill.execute_notebook(str(source), str(executed), kernel_name="python3",
                                   log_output=True, stdout_file=stdout, progress_bar=False)
    mode = "quiet" if runner_quiet else "notebook"
    # What a log gets: the printed lines, not one of the 200 redraws.
    assert stdout.getvalue() == f"mode {mode}\nepoch 1/1 - 0.2s - loss 1.0000\n"
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "epoch 1/1 - 0.2s" in logged and "steps" not in logged and "finished" not in logged
    # What the executed notebook keeps: the display's last state only.
    outputs = nbformat.read(executed, as_version=4).cells[0].outputs
    displays = [output for output in outputs if output.output_type == "display_data"]
    if runner_quiet:
        assert displays == []
    else:
        assert len(displays) == 1 and displays[0].data["text/plain"] == "finished"
    assert all("steps" not in json.dumps(output) for output in outputs)
