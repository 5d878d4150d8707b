"""Where a study lives: an Optuna storage opened from a URL or a journal file path.

- a path (no ``://``): Optuna's journal file, the default, ``<output_dir>/<study>.optuna-journal``.
  Several processes on one machine, or on machines that share the folder, can use it at once;
  it needs nothing but the file.
- ``sqlite:///PATH``: a SQLite database file.
- ``postgresql://USER:PASSWORD@HOST:PORT/DATABASE`` (or ``mysql://...``): a database server,
  for workers on machines that share no file system.

The storage is opened, and a database reached, before anything runs: a bad URL is a one-line
error that names the valid forms, and a server that does not answer is given up on after
``CONNECT_TIMEOUT_SECONDS``. Passwords never appear in messages.
"""

from __future__ import annotations

import time
from pathlib import Path

JOURNAL_SUFFIX = ".optuna-journal"
DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql")
CONNECT_TIMEOUT_SECONDS = 10
TABLE_CREATION_ATTEMPTS = 5
VALID_FORMS = ("a journal file path (e.g. runs/study.optuna-journal), sqlite:///PATH, "
               "postgresql://USER:PASSWORD@HOST:PORT/DATABASE or mysql://...")


def default_storage(runs_dir: Path, study_name: str) -> str:
    """The journal file of a study whose spec names no storage.

    Args:
        runs_dir: The folder of the study's run folders.
        study_name: The study's name.

    Returns:
        ``<runs_dir>/<study_name>.optuna-journal``.
    """
    return str(Path(runs_dir) / f"{study_name}{JOURNAL_SUFFIX}")


def is_database_url(storage: str) -> bool:
    """True for a ``scheme://`` URL, False for a journal file path."""
    return "://" in storage


def display_name(storage: str) -> str:
    """The storage as it may be printed: a URL's password replaced by ``***``.

    Args:
        storage: A URL or path.

    Returns:
        The text to show.
    """
    if not is_database_url(storage):
        return storage
    try:
        from sqlalchemy.engine import make_url

        return make_url(storage).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL: show its scheme only.
        return storage.split("://", 1)[0] + "://..."


def _one_line(error: BaseException) -> str:
    original = getattr(error, "orig", None) or error  # SQLAlchemy wraps the driver's error.
    text = " ".join(str(original).split())
    return f"{type(original).__name__}: {text[:300]}"


def open_storage(storage: str):
    """Open (and for a database, connect to) a study's storage.

    Args:
        storage: A journal file path or a database URL (see the module docstring).

    Returns:
        An ``optuna.storages.BaseStorage``.

    Raises:
        ValueError: An unknown scheme, an unusable path or an unreachable database, in one
            line that does not show the password.
    """
    import optuna

    shown = display_name(storage)
    if is_database_url(storage):
        scheme = storage.split("://", 1)[0]
        if scheme.split("+", 1)[0] not in DATABASE_SCHEMES:
            raise ValueError(f"storage {shown}: unknown kind {scheme!r}; valid: {VALID_FORMS}.")
        connect_arguments = ({"timeout": 60} if scheme.startswith("sqlite")  # Waits for a writer.
                             else {"connect_timeout": CONNECT_TIMEOUT_SECONDS})
        for attempt in range(TABLE_CREATION_ATTEMPTS):
            try:
                return optuna.storages.RDBStorage(
                    storage, engine_kwargs={"connect_args": connect_arguments})
            except Exception as error:  # noqa: BLE001 - drivers raise their own kinds.
                # Workers started together on a new database race to create Optuna's
                # tables; the losers see a duplicate table and find it made on a retry.
                racing = "already exists" in str(error) or "duplicate key" in str(error)
                if not racing or attempt == TABLE_CREATION_ATTEMPTS - 1:
                    raise ValueError(f"cannot open storage {shown}: {_one_line(error)}") \
                        from None
                time.sleep(0.5 * (attempt + 1))
    path = Path(storage).expanduser()
    if path.is_dir():
        raise ValueError(f"storage {shown} is a folder; give a journal file path inside it "
                         f"(e.g. {path / ('study' + JOURNAL_SUFFIX)}) or one of: {VALID_FORMS}.")
    if not path.parent.is_dir():
        raise ValueError(f"storage {shown}: folder {path.parent} does not exist; valid: "
                         f"{VALID_FORMS}.")
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    try:
        return JournalStorage(JournalFileBackend(str(path)))
    except Exception as error:  # noqa: BLE001 - a damaged or unwritable journal.
        raise ValueError(f"cannot open storage {shown}: {_one_line(error)}") from None
