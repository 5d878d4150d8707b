"""Where progress goes: a line that updates in place where a person watches, nothing in logs.

Long work (an epoch, the first load of an image archive) shows how far it has come while
it runs, in the one place a person watches it:

- in a Jupyter kernel (JupyterLab, Notebook, VS Code, Colab): one display that is updated
  in place (``display(..., display_id=True)`` and ``handle.update``), an HTML progress bar
  with a text line;
- in a terminal (standard output is a TTY): one ``\\r``-redrawn line;
- anywhere else (output piped to a file, CI, pytest's capture, papermill's log, a sweep):
  nothing. Work that also prints one line per step of its own (``training_callbacks.EpochLine``) keeps
  printing it there; the in-place line adds nothing to a log.

``$CIFAR_CNN_PROGRESS`` overrides the choice: ``0`` (or ``off``, ``false``, ``no``) turns
progress off everywhere, ``1`` (or ``on``, ``true``, ``yes``) shows it also where the choice
would be quiet: on standard output as a ``\\r`` line, or as a display in a kernel.

papermill runs notebooks in a Jupyter kernel too. There the display is harmless: a display
update is an ``update_display_data`` message, not stream output, so papermill's
``--log-output`` and ``stdout_file`` never copy it, and the executed notebook keeps each
display's last state only (the first message of a display carries no ``text/plain``, so
``--log-output`` logs nothing of it either). The project's own runners
(``cifar_cnn.notebook_runner``, and so ``cifar-cnn notebook`` and sweeps) still turn it off
for their kernels with :func:`quiet_in_child_processes`, so their executed notebooks hold no
display at all.

Updates are throttled (at most one per ``MINIMUM_INTERVAL`` seconds unless forced), so
calling :meth:`ProgressLine.due` on every training step or every decoded image costs a
clock read.
"""

from __future__ import annotations

import contextlib
import html
import os
import shutil
import sys
import threading
import time
from typing import Callable, Iterator, Mapping, Protocol

ENVIRONMENT_VARIABLE = "CIFAR_CNN_PROGRESS"
NOTEBOOK, TERMINAL, QUIET = "notebook", "terminal", "quiet"
MODES = (NOTEBOOK, TERMINAL, QUIET)
# Seconds between two redraws: often enough to look alive, rare enough to cost nothing.
MINIMUM_INTERVAL = 0.5
_OFF_VALUES = ("0", "off", "false", "no")
_ON_VALUES = ("1", "on", "true", "yes")
_NO_SHELL = object()


def jupyter_shell():
    """The running IPython shell when this process is a Jupyter kernel, else None.

    IPython is not imported here: a process that has not imported it is no kernel.
    """
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return None
    try:
        shell = ipython.get_ipython()
    except Exception:  # noqa: BLE001 - a broken or partial IPython means "no kernel".
        return None
    return shell if is_kernel_shell(shell) else None


def is_kernel_shell(shell) -> bool:
    """Whether ``shell`` is a Jupyter kernel's shell (ipykernel's ``ZMQInteractiveShell``
    or a subclass, as Colab's), not the terminal IPython."""
    return shell is not None and any(cls.__name__ == "ZMQInteractiveShell"
                                     for cls in type(shell).__mro__)


def display_mode(*, environ: Mapping[str, str] | None = None, stdout=None,
                 shell=_NO_SHELL) -> str:
    """Decide where progress goes: ``"notebook"``, ``"terminal"`` or ``"quiet"``.

    Args:
        environ: The environment to read ``$CIFAR_CNN_PROGRESS`` from (default
            ``os.environ``).
        stdout: The stream a terminal line would go to (default ``sys.stdout``).
        shell: The IPython shell (default: the running one, if any); tests pass fakes.

    Returns:
        ``"notebook"`` in a Jupyter kernel, ``"terminal"`` when ``stdout`` is a TTY,
        ``"quiet"`` otherwise, or what ``$CIFAR_CNN_PROGRESS`` asks.
    """
    environ = os.environ if environ is None else environ
    stdout = sys.stdout if stdout is None else stdout
    shell = jupyter_shell() if shell is _NO_SHELL else shell
    setting = environ.get(ENVIRONMENT_VARIABLE, "").strip().lower()
    if setting in _OFF_VALUES:
        return QUIET
    if is_kernel_shell(shell):
        return NOTEBOOK
    if _is_tty(stdout) or setting in _ON_VALUES:
        return TERMINAL
    return QUIET


def _is_tty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # No isatty, or a closed stream.
        return False


@contextlib.contextmanager
def quiet_in_child_processes() -> Iterator[None]:
    """Set ``$CIFAR_CNN_PROGRESS=0`` while the block runs, for the processes it starts.

    A papermill kernel inherits it: its executed notebook holds no progress display.
    The previous value (or its absence) comes back afterwards.
    """
    previous = os.environ.get(ENVIRONMENT_VARIABLE)
    os.environ[ENVIRONMENT_VARIABLE] = "0"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(ENVIRONMENT_VARIABLE, None)
        else:
            os.environ[ENVIRONMENT_VARIABLE] = previous


class _RawHandle:
    """An IPython ``DisplayHandle`` whose updates are raw MIME bundles, like its display."""

    def __init__(self, handle):
        self._handle = handle

    def update(self, bundle: dict) -> None:
        self._handle.update(bundle, raw=True)


def _ipython_display(bundle: dict, display_id: bool = True):
    """Show a raw MIME bundle with IPython, returning a handle whose ``update`` takes one."""
    from IPython.display import display  # Only reached inside a kernel.

    handle = display(bundle, raw=True, display_id=display_id)
    return _RawHandle(handle) if handle is not None else None


class ProgressLine:
    """One line of progress, redrawn in place where a person watches, silent elsewhere.

    Typical use: ``if line.due(): line.show(text, fraction)`` on every unit of work, then
    ``line.close()``. :meth:`due` is a clock read, so it can be asked every step.

    Args:
        mode: ``"notebook"``, ``"terminal"`` or ``"quiet"``; default :func:`display_mode`.
        interval: Seconds between two redraws (:meth:`due` is False in between).
        delay: Seconds after creation before anything is drawn, so work that ends sooner
            (a cached load) leaves no trace.
        stream: Where a terminal line goes (default ``sys.stdout`` at creation).
        display: ``IPython.display.display``'s stand-in for the notebook mode, called as
            ``display(bundle, display_id=True)`` and returning a handle with
            ``update(bundle)``; tests pass fakes.
        clock: Seconds, monotonic (tests pass fakes).
    """

    def __init__(self, mode: str | None = None, *, interval: float = MINIMUM_INTERVAL,
                 delay: float = 0.0, stream=None, display: Callable | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.stream = sys.stdout if stream is None else stream
        self.mode = mode or display_mode(stdout=self.stream)
        if self.mode not in MODES:
            raise ValueError(f"Unknown progress mode {self.mode!r}; valid: {', '.join(MODES)}.")
        self.interval, self.clock = interval, clock
        self._display = display or _ipython_display
        self._not_before = clock() + delay
        self._last_drawn: float | None = None
        self._handle = None
        self._width = 0  # Characters of the terminal line drawn last.
        self._closed = False
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        """Whether anything can be drawn (False in the quiet mode and once closed)."""
        return self.mode != QUIET and not self._closed

    @property
    def shown(self) -> bool:
        """Whether anything has been drawn yet."""
        return self._last_drawn is not None

    def due(self, force: bool = False) -> bool:
        """Whether a redraw now would be drawn: active, past the delay, and ``interval``
        seconds after the last one (or ``force``, which skips only the interval)."""
        if not self.active:
            return False
        now = self.clock()
        if now < self._not_before:
            return False
        return force or self._last_drawn is None or now - self._last_drawn >= self.interval

    def update(self, text: str, fraction: float | None = None, force: bool = False) -> bool:
        """Draw ``text`` when :meth:`due` says so.

        Args:
            text: One line.
            fraction: How much is done, 0 to 1, for the notebook's bar (None: unknown).
            force: Draw even within ``interval`` of the last redraw.

        Returns:
            Whether it was drawn.
        """
        if not self.due(force):
            return False
        self.show(text, fraction)
        return True

    def show(self, text: str, fraction: float | None = None) -> None:
        """Draw ``text`` now (nothing in the quiet mode or once closed).

        Args:
            text: One line.
            fraction: How much is done, 0 to 1, for the notebook's bar (None: unknown).
        """
        if not self.active:
            return
        with self._lock:
            self._last_drawn = self.clock()
            if self.mode == TERMINAL:
                self._draw_terminal(text)
            else:
                self._draw_notebook(_html_line(text, fraction), text)

    def close(self, text: str | None = None) -> None:
        """End the line: leave ``text`` as its last state, or remove it.

        In a terminal ``text`` stays on its own line (a newline follows it); without it the
        line is wiped, so what is printed next starts on a clean line. In a notebook the
        display keeps ``text``, or is emptied (it then takes no room). Nothing happens when
        nothing was drawn, so quiet or short work leaves no trace.

        Args:
            text: The final line, or None to remove the line.
        """
        if self._closed:
            return
        with self._lock:
            self._closed = True
            if self._last_drawn is None:
                return
            if self.mode == TERMINAL:
                if text is None:
                    self._write("\r" + " " * self._width + "\r")
                else:
                    self._draw_terminal(text)
                    self._write("\n")
            elif self._handle is None:
                return
            elif text is None:
                self._handle.update({})
            else:
                self._handle.update({"text/html": _html_line(text, None, bar=False),
                                     "text/plain": text})

    def clear(self) -> None:
        """Make room for a line printed next: a terminal's line is wiped (and redrawn by the
        next :meth:`show`); a notebook's display, apart from printed output, stays."""
        if self.mode != TERMINAL or self._closed:
            return
        with self._lock:
            if self._width:
                self._write("\r" + " " * self._width + "\r")
                self._width = 0
                self._last_drawn = None

    def __enter__(self) -> ProgressLine:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # A closed or broken terminal: progress is optional.
            self._closed = True

    def _draw_terminal(self, text: str) -> None:
        # Shorter than the terminal, so the line never wraps (a wrapped line cannot be
        # redrawn with a carriage return).
        columns = shutil.get_terminal_size((80, 24)).columns
        text = text[:max(10, columns - 1)]
        self._write("\r" + text.ljust(self._width))
        self._width = len(text)

    def _draw_notebook(self, html_text: str, text: str) -> None:
        if self._handle is None:
            # The first message carries no text/plain: papermill's --log-output logs the
            # text/plain of a new display (never of an update).
            self._handle = self._display({"text/html": html_text}, display_id=True)
            if self._handle is None:  # No display to update: nothing more can be shown.
                self._closed = True
        else:
            self._handle.update({"text/html": html_text, "text/plain": text})


def _html_line(text: str, fraction: float | None, bar: bool = True) -> str:
    """A progress bar (indeterminate when ``fraction`` is None) and the text, on one line."""
    parts = ['<div style="font-family: var(--jp-code-font-family, monospace); '
             'font-size: var(--jp-code-font-size, 13px); white-space: pre">']
    if bar:
        value = "" if fraction is None else f' value="{min(max(fraction, 0.0), 1.0):.4f}"'
        parts.append(f'<progress max="1"{value} style="width: 12em; '
                     'vertical-align: middle"></progress> ')
    parts.append(html.escape(text) + "</div>")
    return "".join(parts)


class StageReporter(Protocol):
    """What long data work calls to report how far it has come (see :class:`Stages`)."""

    def __call__(self, stage: str, done: float, total: float | None = None,
                 unit: str = "") -> None:
        ...


def format_quantity(value: float, unit: str) -> str:
    """``value`` with its unit: bytes as MB, counts with thousands separators."""
    if unit == "bytes":
        return f"{value / 1e6:,.1f} MB"
    return f"{int(value):,}" + (f" {unit}" if unit else "")


def format_seconds(seconds: float) -> str:
    """``"42.3 s"`` below a minute, ``"3 min 05 s"`` from then on."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes} min {seconds:02d} s"


class Stages:
    """A :class:`StageReporter` drawing ``"label: stage done/total unit, time, ~time left"``.

    Each stage (checking, reading, decoding...) keeps its own clock for the estimate; the
    line is redrawn at most every ``line.interval`` seconds, and at once when a stage starts.

    Args:
        line: Where to draw.
        label: What the whole work is, e.g. ``"loading cifar10-jpeg.tar.gz"``.
    """

    def __init__(self, line: ProgressLine, label: str):
        self.line, self.label = line, label
        self.started = line.clock()
        self._stage: str | None = None
        self._stage_started = self.started

    def __call__(self, stage: str, done: float, total: float | None = None,
                 unit: str = "") -> None:
        new_stage = stage != self._stage
        if new_stage:
            self._stage, self._stage_started = stage, self.line.clock()
        if not self.line.due(force=new_stage):
            return
        self.line.show(*self.describe(stage, done, total, unit))

    def describe(self, stage: str, done: float, total: float | None = None,
                 unit: str = "") -> tuple[str, float | None]:
        """The line for ``done`` of ``total`` in ``stage``, and the fraction done."""
        now = self.line.clock()
        text = f"{self.label}: {stage}"
        if total:
            text += f" {format_quantity(done, unit).split(' ')[0]}/{format_quantity(total, unit)}"
        else:
            text += f" {format_quantity(done, unit)}" if done else ""
        text += f", {format_seconds(now - self.started)}"
        elapsed = now - self._stage_started
        if total and 0 < done < total and elapsed >= 1:
            text += f", ~{format_seconds(elapsed * (total - done) / done)} left"
        return text, done / total if total else None

    def close(self, text: str | None = None) -> None:
        """End the line with ``text`` (or remove it); see :meth:`ProgressLine.close`."""
        self.line.close(text)


class ProgressCounter:
    """A one-line "label: done/total" counter on a terminal's standard error; else silent.

    For commands whose standard output is their result (``cifar-cnn predict``,
    ``evaluate``): the count goes to standard error, and only on a terminal.

    Args:
        label: What is counted, e.g. ``"predicting"``.
        total: How many items there are.
        stream: Where to draw (default standard error, so standard output stays clean).
        minimum_total: Draw nothing for fewer items than this: short jobs need no bar.
    """

    def __init__(self, label: str, total: int, stream=None, minimum_total: int = 2):
        self.label, self.total = label, total
        self.stream = stream or sys.stderr
        self.active = total >= minimum_total and getattr(self.stream, "isatty", lambda: False)()

    def update(self, done: int) -> None:
        """Redraw the counter after ``done`` items.

        Args:
            done: Items finished so far.
        """
        if self.active:
            self.stream.write(f"\r{self.label}: {done}/{self.total}")
            if done >= self.total:
                self.stream.write("\n")
            self.stream.flush()


def no_report(stage: str, done: float, total: float | None = None, unit: str = "") -> None:
    """A :class:`StageReporter` that reports nothing (the default of the data functions)."""


__all__ = ["ENVIRONMENT_VARIABLE", "MINIMUM_INTERVAL", "MODES", "NOTEBOOK",
           "ProgressCounter", "ProgressLine", "QUIET", "StageReporter", "Stages",
           "TERMINAL", "display_mode", "format_quantity", "format_seconds",
           "is_kernel_shell", "jupyter_shell", "no_report", "quiet_in_child_processes"]
