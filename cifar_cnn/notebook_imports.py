"""Importing papermill and nbformat without two seconds of work nobody uses.

nbformat validates notebooks with ``jsonschema``, whose format checkers import every optional
backend they find when ``jsonschema`` is first imported. One of them, ``rfc3987_syntax`` (pulled in
by ``jsonschema[format-nongpl]``, which Jupyter's own packages require), builds about 35 Earley
parsers at import: 2.0 s of CPU per process on a 2-core AVX2 machine, paid by every notebook
runner, sweep child and pytest process (python-jsonschema/jsonschema#1428). It checks only the
``iri`` and ``iri-reference`` formats, which no notebook schema uses, and ``jsonschema`` skips a
backend that cannot be imported. So the processes that run notebooks mark it as unavailable
before they import nbformat.
"""

from __future__ import annotations

import sys

UNUSED_SLOW_MODULE = "rfc3987_syntax"


def skip_unused_format_checker() -> None:
    """Keep ``jsonschema`` from importing ``rfc3987_syntax`` in this process.

    Has no effect once ``jsonschema``'s format checkers or ``rfc3987_syntax`` are imported (the
    time is spent by then), so call it before importing papermill, nbformat or nbclient.
    ``import rfc3987_syntax`` raises ``ImportError`` in this process afterwards.
    """
    if "jsonschema._format" not in sys.modules:
        sys.modules.setdefault(UNUSED_SLOW_MODULE, None)


def import_papermill():
    """Import papermill after :func:`skip_unused_format_checker`.

    Returns:
        The ``papermill`` module.
    """
    skip_unused_format_checker()
    import papermill

    return papermill
