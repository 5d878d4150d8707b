"""What a run folder holds, for the tests that compare the folders of two ways to start a run."""

from pathlib import Path


def files_in(folder: Path) -> set[str]:
    """Every file under ``folder``, as paths relative to it."""
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()}
