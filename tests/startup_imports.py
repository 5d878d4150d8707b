"""A pytest plugin loaded before all others (``-p startup_imports`` in pyproject.toml).

nbval imports nbformat as soon as pytest loads it, before any conftest.py runs, so the skip of
jsonschema's unused and slow format checker (``cifar_cnn.notebook_imports``) must come first
to save its two seconds in every pytest process.
"""

from cifar_cnn.notebook_imports import skip_unused_format_checker

skip_unused_format_checker()
