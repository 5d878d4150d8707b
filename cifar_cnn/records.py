"""Small helpers for the JSON records runs and sweeps write. Imports nothing heavy.

Kept apart from ``runs`` (which needs Keras for checkpoints) so that a sweep's own
process, which never trains, can write its records without importing TensorFlow.
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path


def utc_now() -> str:
    """The current UTC time as an ISO 8601 string, to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def write_json(path: Path, document) -> None:
    """Write JSON atomically (temporary file, then rename), so no reader sees half a file.

    Args:
        path: Destination file.
        document: Anything ``json.dumps`` accepts (other objects are written as strings).
    """
    path = Path(path)
    temporary = path.with_name(path.name + ".partial")
    temporary.write_text(json.dumps(document, indent=2, default=str) + "\n")
    os.replace(temporary, path)
