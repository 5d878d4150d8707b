"""Search specifications: what an Optuna study of notebook runs is, checked before it runs.

A search file (YAML) names a study, a base, a search space in Optuna's own terms, the
objective, the sampler and the pruner::

    name: lr-bs                    # the study's name; runs are <name>-t000, <name>-t001, ...
    output_dir: runs               # optional; default: base's output_dir, else the runs folder
    trials: 12                     # finished trials (complete or pruned) the study needs
    workers: 1                     # optional; trials side by side in this process
    storage: null                  # optional; default: <output_dir>/<name>.optuna-journal
    base: {recipe: seed, epochs: 5, validation_split: 0.1}
    space:
      learning_rate: {type: float, low: 1e-4, high: 1e-2, log: true}
      batch_size: {type: categorical, choices: [32, 64, 128, 256]}
      # {type: int, low: 1, high: 9, step: 2} also, as optuna's suggest_int
    enqueue:                       # optional; trials to run first (e.g. the default settings)
      - {learning_rate: 1e-3, batch_size: 32}
    objective: best_monitored_accuracy   # or test_accuracy; maximised
    sampler: {type: tpe, seed: 42}       # tpe or random, with their optuna arguments
    pruner: {type: median, n_startup_trials: 2, n_warmup_steps: 1}  # median,
                                         # successive_halving or none
    heartbeat_seconds: 30          # a running trial's worker says it is alive this often

Parameter values are read as in sweep files (``1e-3`` is a number, ``None`` is null). Every
parameter of the space, at both ends of its range and at every choice, is checked with
``RunConfig`` on top of the base before anything runs, so a search that cannot run fails
in one line. The sampler and pruner stay plain values here; :func:`make_sampler` and
:func:`make_pruner` build their Optuna objects, in the search process and in each trial's
kernel alike.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from cifar_cnn.config import RunConfig
from cifar_cnn.runs import runs_folder
from cifar_cnn.sweep_spec import (
    check_document_keys,
    check_workers,
    parameter_mapping,
    read_yaml_file,
    sanitize,
)

SEARCH_KEYS = ("name", "output_dir", "trials", "workers", "storage", "base", "space", "enqueue",
               "objective", "sampler", "pruner", "heartbeat_seconds")
DISTRIBUTION_TYPES = ("float", "int", "categorical")
# Metrics of metrics.json a study may maximise. The per-epoch value a trial reports to its
# pruner is always the monitored (validation, else test) accuracy, which both follow.
OBJECTIVES = ("best_monitored_accuracy", "test_accuracy")
DEFAULT_OBJECTIVE = "best_monitored_accuracy"
SAMPLERS = {"tpe": "TPESampler", "random": "RandomSampler"}
PRUNERS = {"median": "MedianPruner", "successive_halving": "SuccessiveHalvingPruner",
           "none": "NopPruner"}
DEFAULT_SAMPLER = {"type": "tpe", "seed": 42}
DEFAULT_PRUNER = {"type": "median", "n_startup_trials": 2, "n_warmup_steps": 1}
DEFAULT_HEARTBEAT_SECONDS = 30
# Parameters that place or name a run rather than change it: the search sets them.
SEARCH_OWNED_PARAMETERS = ("output_dir", "run_name", "overwrite")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Dimension:
    """One parameter of the search space, as optuna's ``suggest_float/int/categorical``.

    Attributes:
        name: The notebook parameter (a ``RunConfig`` field).
        type: ``"float"``, ``"int"`` or ``"categorical"``.
        low: Lower end (float and int).
        high: Upper end, included (float and int).
        log: Sample on a log scale.
        step: Distance between values, or None.
        choices: The values of a categorical dimension.
    """

    name: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple = ()

    @classmethod
    def from_mapping(cls, name: str, document, source: str) -> "Dimension":
        """Check one entry of ``space`` and build it.

        Args:
            name: The parameter.
            document: Its mapping (``type`` and the distribution's arguments).
            source: Where it comes from, for error messages.

        Returns:
            The :class:`Dimension`.
        """
        where = f"{source}: space: {name}"
        if not isinstance(document, Mapping):
            raise ValueError(f"{where} must be a mapping such as {{type: float, low: 1e-4, "
                             f"high: 1e-2, log: true}}, got {document!r}.")
        kind = document.get("type")
        if kind not in DISTRIBUTION_TYPES:
            raise ValueError(f"{where}: type must be one of {', '.join(DISTRIBUTION_TYPES)}, "
                             f"got {kind!r}.")
        allowed = {"float": ("type", "low", "high", "log", "step"),
                   "int": ("type", "low", "high", "log", "step"),
                   "categorical": ("type", "choices")}[kind]
        unknown = sorted(set(document) - set(allowed))
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)} for type {kind}; "
                             f"valid: {', '.join(allowed)}.")
        if kind == "categorical":
            choices = document.get("choices")
            if not isinstance(choices, list) or not choices:
                raise ValueError(f"{where}: choices must be a non-empty list, got {choices!r}.")
            if not all(choice is None or isinstance(choice, (bool, int, float, str))
                       for choice in choices):
                raise ValueError(f"{where}: choices must be single values (numbers, words, "
                                 f"true/false or null), got {choices!r}.")
            if len(set(map(repr, choices))) != len(choices):
                raise ValueError(f"{where}: choices {choices!r} repeat a value.")
            return cls(name=name, type=kind, choices=tuple(choices))
        low, high = document.get("low"), document.get("high")
        log, step = document.get("log", False), document.get("step")
        integer = kind == "int"
        for key, value in (("low", low), ("high", high)):
            if not _number(value) or (integer and not isinstance(value, int)):
                raise ValueError(f"{where}: {key} must be {'a whole' if integer else 'a'} "
                                 f"number, got {value!r}.")
        if not isinstance(log, bool):
            raise ValueError(f"{where}: log must be true or false, got {log!r}.")
        if low >= high:
            what = "a single value (put it in base)" if low == high else "empty"
            raise ValueError(f"{where}: the range low={low!r} to high={high!r} is {what}; "
                             "low must be below high.")
        if log and low <= 0:
            raise ValueError(f"{where}: a log range needs low > 0, got low={low!r}.")
        if step is not None:
            if not _number(step) or step <= 0 or (integer and not isinstance(step, int)):
                raise ValueError(f"{where}: step must be a positive number, got {step!r}.")
            if log:
                raise ValueError(f"{where}: step and log cannot be combined (as in optuna).")
        return cls(name=name, type=kind, low=low, high=high, log=log, step=step)

    def to_record(self) -> dict[str, Any]:
        """The dimension as JSON-ready values (a study's record of its space, results files)."""
        return {**vars(self), "choices": list(self.choices)}

    def corner_values(self) -> tuple:
        """The values to check before the search runs: both ends, or every choice."""
        return self.choices if self.type == "categorical" else (self.low, self.high)

    def suggest(self, trial) -> Any:
        """Draw this parameter's value for an optuna trial.

        Args:
            trial: An ``optuna.trial.Trial``.

        Returns:
            The value.
        """
        if self.type == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        suggest = trial.suggest_float if self.type == "float" else trial.suggest_int
        if self.step is not None:
            return suggest(self.name, self.low, self.high, step=self.step)
        return suggest(self.name, self.low, self.high, log=self.log)


def _component(document, kinds: Mapping[str, str], default: Mapping[str, Any], what: str,
               source: str) -> dict[str, Any]:
    """Check a sampler or pruner entry: a type and keyword arguments of its optuna class."""
    if document is None:
        return dict(default)
    if isinstance(document, str):
        document = {"type": document}
    if not isinstance(document, Mapping) or document.get("type") not in kinds:
        raise ValueError(f"{source}: {what} must be one of {', '.join(kinds)} (or a mapping "
                         f"with type: and its optuna arguments), got {document!r}.")
    import importlib

    module = importlib.import_module(f"optuna.{what}s")
    parameters = inspect.signature(getattr(module, kinds[document["type"]])).parameters
    valid = [name for name in parameters if name != "self"]
    unknown = sorted(set(document) - {"type"} - set(valid))
    if unknown:
        raise ValueError(f"{source}: {what} {document['type']}: unknown argument(s) "
                         f"{', '.join(unknown)}; valid: {', '.join(valid) or 'none'}.")
    return dict(document)


@dataclass
class SearchSpec:
    """What a search file (or the command line) describes; see the module docstring.

    Attributes:
        name: The study's name, and the prefix of its run folders.
        base: Parameters shared by every trial.
        space: The dimensions searched, in order.
        trials: Finished trials (complete or pruned) the study needs.
        enqueue: Parameter sets tried first, in order.
        objective: The ``metrics.json`` value maximised.
        sampler: ``{"type": ..., **optuna arguments}``.
        pruner: ``{"type": ..., **optuna arguments}``.
        output_dir: Folder of the run folders, or None (base's, else the runs folder).
        workers: Trials side by side in one process (None: one per two cores).
        storage: Optuna storage URL or journal file path, or None (the default journal).
        heartbeat_seconds: How often a worker marks its running trial alive.
    """

    name: str
    base: dict[str, Any] = field(default_factory=dict)
    space: list[Dimension] = field(default_factory=list)
    trials: int = 10
    enqueue: list[dict[str, Any]] = field(default_factory=list)
    objective: str = DEFAULT_OBJECTIVE
    sampler: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_SAMPLER))
    pruner: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_PRUNER))
    output_dir: str | None = None
    workers: int | None = None
    storage: str | None = None
    heartbeat_seconds: float = DEFAULT_HEARTBEAT_SECONDS

    @classmethod
    def from_mapping(cls, document: Mapping[str, Any], source: str = "search") -> "SearchSpec":
        """Check the structure of a search document and build the spec.

        Args:
            document: The parsed YAML (or an equivalent dictionary).
            source: How to name the document in error messages (e.g. its path).

        Returns:
            The :class:`SearchSpec` (call :meth:`validate` before running it).
        """
        check_document_keys(document, SEARCH_KEYS, source, "a search")
        name = document.get("name")
        if not isinstance(name, str) or not sanitize(name) or sanitize(name) != name:
            raise ValueError(f"{source}: name (the study's) must be a plain name of letters, "
                             f"digits, '.', '_' and '-', got {name!r}.")
        space_document = document.get("space")
        if not isinstance(space_document, Mapping) or not space_document:
            raise ValueError(f"{source}: space must map at least one parameter to its range, "
                             "e.g. learning_rate: {type: float, low: 1e-4, high: 1e-2, log: "
                             "true}.")
        space = [Dimension.from_mapping(name, entry, source)
                 for name, entry in space_document.items()]
        enqueue_document = document.get("enqueue") or []
        if not isinstance(enqueue_document, list):
            raise ValueError(f"{source}: enqueue must be a list of parameter mappings, got "
                             f"{enqueue_document!r}.")
        spec = cls(
            name=name,
            base=parameter_mapping(document.get("base"), where=f"{source}: base"),
            space=space,
            enqueue=[parameter_mapping(entry, where=f"{source}: enqueue[{index}]")
                     for index, entry in enumerate(enqueue_document)],
            objective=document.get("objective") or DEFAULT_OBJECTIVE,
            sampler=_component(document.get("sampler"), SAMPLERS, DEFAULT_SAMPLER, "sampler",
                               source),
            pruner=_component(document.get("pruner"), PRUNERS, DEFAULT_PRUNER, "pruner", source),
            output_dir=document.get("output_dir"),
            storage=document.get("storage"),
        )
        if "trials" in document:
            spec.trials = check_workers(document["trials"], where=f"{source}: trials")
        if document.get("workers") is not None:
            spec.workers = check_workers(document["workers"], where=f"{source}: workers")
        if "heartbeat_seconds" in document:
            spec.heartbeat_seconds = document["heartbeat_seconds"]
        return spec

    @property
    def dimensions(self) -> dict[str, Dimension]:
        """The space by parameter name."""
        return {dimension.name: dimension for dimension in self.space}

    def validate(self) -> None:
        """Check everything a trial will need, before any trial runs.

        The objective, the heartbeat and the output folder; that no searched parameter is
        also in base or is one the search sets itself; and that base with each dimension
        at both ends of its range (every choice of a categorical one), and base with each
        enqueued set, make valid ``RunConfig``\\ s.

        Raises:
            ValueError: The first problem found, in one line.
        """
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)} (maximised), "
                             f"got {self.objective!r}.")
        if not _number(self.heartbeat_seconds) or self.heartbeat_seconds <= 0:
            raise ValueError(f"heartbeat_seconds must be a positive number, got "
                             f"{self.heartbeat_seconds!r}.")
        if self.output_dir is not None and (not isinstance(self.output_dir, str)
                                            or not self.output_dir.strip()):
            raise ValueError(f"output_dir must be a non-empty path, got {self.output_dir!r}.")
        if self.storage is not None and (not isinstance(self.storage, str)
                                         or not self.storage.strip()):
            raise ValueError(f"storage must be a URL or a journal file path, got "
                             f"{self.storage!r}.")
        for name in SEARCH_OWNED_PARAMETERS:
            if name in self.dimensions or (name in self.base and name != "output_dir"):
                raise ValueError(f"{name} cannot be set in a search's base or space: the "
                                 "search names and places every trial's run folder (use "
                                 "output_dir at the top level).")
        both = [name for name in self.dimensions if name in self.base]
        if both:
            raise ValueError(f"{', '.join(both)} is both in base and in space; a searched "
                             "parameter belongs in space only.")
        base = {name: value for name, value in self.base.items() if name != "output_dir"}
        lows = {dimension.name: dimension.corner_values()[0] for dimension in self.space}
        checks = [({**base, **lows, dimension.name: value}, f"{dimension.name}={value!r}")
                  for dimension in self.space for value in dimension.corner_values()]
        if len(self.enqueue) > self.trials:
            raise ValueError(f"enqueue lists {len(self.enqueue)} trials, more than the "
                             f"study's {self.trials}; raise trials or enqueue fewer.")
        for index, entry in enumerate(self.enqueue):
            outside = sorted(set(entry) - set(self.dimensions))
            if outside:
                raise ValueError(f"enqueue[{index}]: {', '.join(outside)} not in the search "
                                 f"space ({', '.join(self.dimensions)}); fixed values go in base.")
            checks.append(({**base, **lows, **entry}, f"enqueue[{index}]"))
        for what, settings, make in (("sampler", self.sampler, make_sampler),
                                     ("pruner", self.pruner, make_pruner)):
            try:
                make(settings)
            except (ValueError, TypeError) as error:
                raise ValueError(f"{what} {settings}: {error}") from None
        for parameters, what in checks:
            try:
                RunConfig.from_parameters(parameters)
            except (ValueError, TypeError) as error:
                raise ValueError(f"search {self.name!r}, {what}: {error}") from None

    @property
    def runs_dir(self) -> Path:
        """The folder of the trials' run folders."""
        return runs_folder(self.output_dir or self.base.get("output_dir"))

    def run_name(self, trial_number: int) -> str:
        """The run folder name of a trial: ``<study>-t007``."""
        return f"{self.name}-t{trial_number:03d}"


def load_search_file(path: str | Path) -> SearchSpec:
    """Read a YAML search file (format in this module's docstring).

    Args:
        path: The file.

    Returns:
        The :class:`SearchSpec` (not yet validated: see :meth:`SearchSpec.validate`).
    """
    return SearchSpec.from_mapping(read_yaml_file(path, "search", needs="a name and a space"),
                                   source=str(path))


def make_sampler(settings: Mapping[str, Any]):
    """The optuna sampler a spec names.

    Args:
        settings: ``{"type": "tpe" | "random", **arguments}``.

    Returns:
        An ``optuna.samplers.BaseSampler``.
    """
    import optuna

    arguments = {key: value for key, value in settings.items() if key != "type"}
    return getattr(optuna.samplers, SAMPLERS[settings["type"]])(**arguments)


def make_pruner(settings: Mapping[str, Any]):
    """The optuna pruner a spec names.

    Args:
        settings: ``{"type": "median" | "successive_halving" | "none", **arguments}``.

    Returns:
        An ``optuna.pruners.BasePruner``.
    """
    import optuna

    arguments = {key: value for key, value in settings.items() if key != "type"}
    return getattr(optuna.pruners, PRUNERS[settings["type"]])(**arguments)
