"""Sweep specifications: reading sweep files and command-line values, and naming runs.

What a sweep *is* (its base, grid and explicit runs, validated and expanded into parameter
sets, each with a run name made from the parameters that vary) is kept apart from how a
sweep is *executed* (:mod:`cifar_cnn.sweep`), so either can be read on its own. The file
format is described in :mod:`cifar_cnn.sweep`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, Mapping, Sequence

import yaml

SWEEP_KEYS = ("name", "output_dir", "workers", "base", "grid", "runs")

# Short names for run names: "lr0.001-bs32" instead of "learning_rate0.001-batch_size32".
PARAMETER_ABBREVIATIONS = {
    "recipe": "recipe", "epochs": "ep", "batch_size": "bs", "learning_rate": "lr",
    "seed": "seed", "data_source": "data", "validation_split": "val", "preprocessing": "prep",
    "max_train_examples": "ntrain", "max_test_examples": "ntest", "overwrite": "overwrite",
    "mixed_precision": "prec", "xla": "xla", "tta": "tta", "tensorboard": "tb",
}  # Any other parameter is named in full.
MAX_RUN_NAME_LENGTH = 100


# ---------------------------------------------------------------------------------------------
# Reading values and sweep files


class _SweepLoader(yaml.SafeLoader):
    """YAML with two fixes for parameters: ``1e-3`` is a float, ``None`` is null.

    PyYAML follows YAML 1.1, where a float needs a dot (``1e-3`` stays a string, and
    RunConfig would then reject the learning rate), and Python users write ``None``.
    Duplicate keys are an error instead of the last one silently winning.
    """

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str):
                # Parameter names and sweep keys are words; a list or a mapping as a key
                # ({[1, 2]: 3}) is a slip that would otherwise end in a TypeError.
                got = {yaml.SequenceNode: "a list", yaml.MappingNode: "a mapping"}.get(
                    type(key_node), repr(key))
                raise yaml.constructor.ConstructorError(
                    None, None, f"a key must be a name, got {got}", key_node.start_mark)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_SweepLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)?\.?[0-9]+[eE][-+]?[0-9]+$"),
    list("-+0123456789."))
_SweepLoader.add_implicit_resolver("tag:yaml.org,2002:null", re.compile(r"^None$"), ["N"])


def _yaml_error_message(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
    return f"{problem}{where}"


def parse_value(text: str) -> Any:
    """Read one command-line value as a YAML scalar (``1`` int, ``1e-3`` float, ``null``).

    Args:
        text: The value as typed.

    Returns:
        An int, float, bool, None or str.
    """
    try:
        value = yaml.load(text, Loader=_SweepLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as error:
        raise ValueError(f"Cannot read the value {text!r}: {_yaml_error_message(error)}.") \
            from error
    if isinstance(value, (dict, list)):
        raise ValueError(f"Expected a single value, got {text!r}; lists belong in --grid "
                         "(NAME=V1,V2) and whole parameter sets in --run or a sweep file.")
    return value


def parse_assignment(text: str) -> tuple[str, Any]:
    """Split ``NAME=VALUE`` and read the value with :func:`parse_value`.

    Args:
        text: E.g. ``"epochs=1"``.

    Returns:
        ``(name, value)``.
    """
    name, separator, value = text.partition("=")
    name = name.strip()
    if not separator or not name.isidentifier():
        raise ValueError(f"Expected NAME=VALUE (e.g. epochs=1), got {text!r}.")
    return name, parse_value(value.strip())


def parse_grid_assignment(text: str) -> tuple[str, list]:
    """Split ``NAME=V1,V2,...`` (or ``NAME=[V1, V2]``) into a name and its list of values.

    Args:
        text: E.g. ``"learning_rate=0.001,0.003"``.

    Returns:
        ``(name, values)``.
    """
    name, separator, values = text.partition("=")
    name = name.strip()
    if not separator or not name.isidentifier() or not values.strip():
        raise ValueError(f"Expected NAME=V1,V2,... (e.g. learning_rate=0.001,0.003), "
                         f"got {text!r}.")
    values = values.strip()
    if values.startswith("["):
        try:
            parsed = yaml.load(values, Loader=_SweepLoader)  # noqa: S506
        except yaml.YAMLError as error:
            raise ValueError(f"Cannot read the list in {text!r}: "
                             f"{_yaml_error_message(error)}.") from error
        return name, _grid_values(name, parsed, where="--grid")
    return name, [parse_value(value.strip()) for value in values.split(",")]


def parse_run_mapping(text: str) -> dict[str, Any]:
    """Read one ``--run`` parameter set, a YAML mapping such as ``{learning_rate: 0.01}``.

    Args:
        text: The mapping as typed (flow style, or ``NAME=VALUE`` pairs split by commas).

    Returns:
        The parameter set.
    """
    stripped = text.strip()
    if not stripped.startswith("{"):
        # NAME=VALUE,NAME=VALUE is easier to type than a YAML mapping.
        return dict(parse_assignment(part) for part in stripped.split(",") if part.strip())
    try:
        parsed = yaml.load(stripped, Loader=_SweepLoader)  # noqa: S506
    except yaml.YAMLError as error:
        raise ValueError(f"Cannot read the run {text!r}: {_yaml_error_message(error)}.") \
            from error
    return parameter_mapping(parsed, where="--run")


def _grid_values(name: str, values, where: str) -> list:
    if not isinstance(values, list):
        raise ValueError(f"{where}: the grid values of {name!r} must be a list, got "
                         f"{values!r}; a single value belongs in base.")
    if not values:
        raise ValueError(f"{where}: the grid values of {name!r} are an empty list, which "
                         "would make an empty sweep; give at least one value.")
    return values


def check_document_keys(document, valid_keys: Sequence[str], source: str, what: str,
                        hint: str = "") -> None:
    """Check that a sweep or search document is a mapping of known keys.

    Args:
        document: The parsed YAML.
        valid_keys: The keys it may have.
        source: How to name the document in error messages (e.g. its path).
        what: ``"a sweep"`` or ``"a search"``.
        hint: A sentence added to the unknown-key message.
    """
    if not isinstance(document, Mapping):
        raise ValueError(f"{source}: {what} must be a mapping with keys "
                         f"{', '.join(valid_keys)}; got {type(document).__name__}.")
    unknown = sorted(set(document) - set(valid_keys), key=str)
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {', '.join(map(str, unknown))}; valid "
                         f"keys: {', '.join(valid_keys)}.{hint}")


def parameter_mapping(value, where: str) -> dict[str, Any]:
    """Check that a document part maps parameter names to values (None: empty).

    Args:
        value: The part, as parsed.
        where: Its place, for the error message.

    Returns:
        A new dictionary.
    """
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise ValueError(f"{where} must be a mapping of parameter names to values, "
                         f"got {value!r}.")
    return dict(value)


@dataclass
class SweepSpec:
    """What a sweep file (or the command line) describes.

    Attributes:
        base: Parameters shared by every run.
        grid: Parameter name -> list of values; every combination is one run.
        runs: Explicit parameter sets, each on top of ``base``.
        name: Optional prefix of every run name (and of the sweep's status file).
        output_dir: Folder of the run folders (default: ``base['output_dir']``, else "runs").
        workers: Executions side by side (default:
            :func:`cifar_cnn.sweep_workers.default_workers`).
    """

    base: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    name: str | None = None
    output_dir: str | None = None
    workers: int | None = None

    @classmethod
    def from_mapping(cls, document: Mapping[str, Any], source: str = "sweep") -> "SweepSpec":
        """Check the structure of a sweep document and build the spec.

        Parameter names and values are not checked here: each set is validated on its own
        by :func:`cifar_cnn.sweep_plan.plan_sweep`, so one bad set does not stop the others.

        Args:
            document: The parsed YAML (or an equivalent dictionary).
            source: How to name the document in error messages (e.g. its path).

        Returns:
            The :class:`SweepSpec`.
        """
        check_document_keys(document, SWEEP_KEYS, source, "a sweep",
                            hint=" Parameters go under base, grid or runs.")
        base = parameter_mapping(document.get("base"), where=f"{source}: base")
        grid_document = parameter_mapping(document.get("grid"), where=f"{source}: grid")
        grid = {name: _grid_values(name, values, where=f"{source}: grid")
                for name, values in grid_document.items()}
        runs_document = document.get("runs") or []
        if not isinstance(runs_document, list):
            raise ValueError(f"{source}: runs must be a list of parameter mappings, got "
                             f"{runs_document!r}.")
        runs = [parameter_mapping(entry, where=f"{source}: runs[{index}]")
                for index, entry in enumerate(runs_document)]
        name = document.get("name")
        if name is not None and (not isinstance(name, str) or not sanitize(name)):
            raise ValueError(f"{source}: name must be a non-empty string, got {name!r}.")
        output_dir = document.get("output_dir")
        if output_dir is not None and (not isinstance(output_dir, str) or not output_dir.strip()):
            raise ValueError(f"{source}: output_dir must be a non-empty path, got "
                             f"{output_dir!r}.")
        workers = document.get("workers")
        if workers is not None:
            check_workers(workers, where=f"{source}: workers")
        return cls(base=base, grid=grid, runs=runs, name=name, output_dir=output_dir,
                   workers=workers)

    def parameter_sets(self) -> list[dict[str, Any]]:
        """Expand base, grid and runs (see :func:`expand_parameter_sets`)."""
        return expand_parameter_sets(self.base, self.grid, self.runs)


def load_sweep_file(path: str | Path) -> SweepSpec:
    """Read a YAML sweep file.

    Args:
        path: The file (format in this module's docstring).

    Returns:
        The :class:`SweepSpec`.
    """
    return SweepSpec.from_mapping(read_yaml_file(path, "sweep", needs="base, grid and/or runs"),
                                  source=str(path))


# A sweep or search file is a few hundred bytes; anything far larger is not one.
MAX_SPEC_FILE_BYTES = 1_000_000


def read_yaml_file(path: str | Path, kind: str, needs: str) -> Any:
    """Read a sweep or search file as YAML, with this module's value rules.

    Args:
        path: The file.
        kind: ``"sweep"`` or ``"search"``, for error messages.
        needs: What an empty file lacks, for its error message.

    Returns:
        The parsed document (not None).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{kind.capitalize()} file {path} does not exist.")
    size = path.stat().st_size
    if size > MAX_SPEC_FILE_BYTES:
        raise ValueError(f"{path} is {size} bytes, more than the {MAX_SPEC_FILE_BYTES} a "
                         f"{kind} file may be.")
    try:
        document = yaml.load(path.read_text(), Loader=_SweepLoader)  # noqa: S506
    except yaml.YAMLError as error:
        raise ValueError(f"{path} is not valid YAML: {_yaml_error_message(error)}.") from error
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not a text file ({error.reason}).") from error
    if document is None:
        raise ValueError(f"{path} is empty; a {kind} needs {needs}.")
    return document


def check_workers(workers, where: str = "workers") -> int:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"{where} must be an integer >= 1, got {workers!r}.")
    return workers


def expand_parameter_sets(base: Mapping[str, Any], grid: Mapping[str, Sequence],
                          runs: Sequence[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """The sweep's parameter sets: base + each grid combination, then base + each run.

    Args:
        base: Shared parameters (grid and run values override them).
        grid: Name -> values; the cartesian product, first name varying slowest.
        runs: Explicit parameter sets.

    Returns:
        The parameter sets, in execution order; ``[base]`` when there is no grid and no run.
    """
    sets = []
    if grid:
        names = list(grid)
        for values in itertools.product(*(grid[name] for name in names)):
            sets.append({**base, **dict(zip(names, values))})
    sets.extend({**base, **run} for run in runs)
    return sets or [dict(base)]


# ---------------------------------------------------------------------------------------------
# Naming


def _replace_unsafe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def sanitize(text: str) -> str:
    """Make text a safe folder name: letters, digits, ``.``, ``_`` and ``-`` only.

    Args:
        text: Anything.

    Returns:
        The text with every run of other characters replaced by ``_``, without a leading
        ``.`` or ``-`` (hidden files, option-like names) and without edge ``_``.
    """
    return _replace_unsafe(text).lstrip(".-").strip("_")


def format_value(value: Any) -> str:
    """A parameter value as it appears in a run name: short, exact and filesystem-safe.

    Args:
        value: A parameter value.

    Returns:
        ``repr`` for floats (shortest exact form: ``0.001``, ``1e-05``), ``true``/``false``,
        ``none``, the last path component of a path, sanitised.
    """
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _replace_unsafe(repr(value).replace("+", ""))
    if isinstance(value, str) and ("/" in value or "\\" in value):
        value = PurePath(value.replace("\\", "/")).name or value  # A path: its file name.
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    # Not sanitize(): a leading "-" or "." is part of the value here, not of the name.
    return _replace_unsafe(text).strip("_") or "x"


def varying_parameters(parameter_sets: Sequence[Mapping[str, Any]]) -> list[str]:
    """The parameters whose values are not the same in every set (a missing one differs).

    Args:
        parameter_sets: The sweep's sets.

    Returns:
        Names in order of first appearance (``run_name`` and ``output_dir`` excluded).
    """
    names: list[str] = []
    for parameters in parameter_sets:
        names.extend(name for name in parameters if name not in names)
    missing = object()
    return [name for name in names if name not in ("run_name", "output_dir")
            and len({json.dumps(parameters.get(name, missing), sort_keys=True, default=repr)
                     for parameters in parameter_sets}) > 1]


def _short_hash(parameters: Mapping[str, Any]) -> str:
    canonical = json.dumps(dict(parameters), sort_keys=True, default=repr)
    return hashlib.sha1(canonical.encode()).hexdigest()[:6]


def run_name_for(parameters: Mapping[str, Any], names: Sequence[str],
                 prefix: str | None = None) -> str:
    """Name one run from some of its parameters: ``[prefix-]lr0.001-bs32``.

    Args:
        parameters: The run's parameter set.
        names: Which parameters make the name, in order (usually the varying ones).
        prefix: Optional sweep name put in front.

    Returns:
        The name; ``run`` when there is nothing to name it by. Names longer than
        ``MAX_RUN_NAME_LENGTH`` are cut and end in a hash of the parameters.
    """
    parts = [sanitize(prefix)] if prefix else []
    for name in names:
        if name not in parameters:
            continue
        value = parameters[name]
        abbreviation = PARAMETER_ABBREVIATIONS.get(name, sanitize(name))
        text = format_value(value)
        # Numbers read well glued to their name (bs32); words need a separator (prep_scale).
        glue = "" if re.match(r"^[-0-9.]", text) and not isinstance(value, (bool, str)) else "_"
        parts.append(f"{abbreviation}{glue}{text}")
    name = sanitize("-".join(part for part in parts if part)) or "run"
    if len(name) > MAX_RUN_NAME_LENGTH:
        name = name[:MAX_RUN_NAME_LENGTH - 7].rstrip("-_.") + "-" + _short_hash(parameters)
    return name


def run_names(parameter_sets: Sequence[Mapping[str, Any]], prefix: str | None = None) -> list[str]:
    """Name every run of a sweep from the parameters that vary across it.

    The same sets always give the same names. An explicit ``run_name`` in a set is kept.
    With a single set, all its parameters name it (nothing varies). Two sets whose names
    would collide (e.g. two data sources with the same file name) both get a hash of their
    parameters appended.

    Args:
        parameter_sets: The sweep's sets.
        prefix: Optional sweep name put in front of every name.

    Returns:
        One name per set, in order.
    """
    naming = varying_parameters(parameter_sets)
    if len(parameter_sets) == 1:
        naming = [name for name in parameter_sets[0] if name not in ("run_name", "output_dir")]
    names = [parameters["run_name"] if "run_name" in parameters
             else run_name_for(parameters, naming, prefix) for parameters in parameter_sets]
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    names = [name if counts[name] == 1 or "run_name" in parameters
             else f"{name}-{_short_hash(parameters)}"
             for name, parameters in zip(names, parameter_sets)]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"Two parameter sets would share the run folder(s) "
                         f"{', '.join(duplicates)}: remove the duplicate set or give each a "
                         "different run_name.")
    return names
