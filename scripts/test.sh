#!/usr/bin/env bash
# The whole test suite: set up .venv, then run pytest (unit tests, papermill and nbval runs of the
# notebook, multi-process tests). Offline: tests build their own tiny data fixtures.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_env.sh
# Two or more workers (at most 4: each test may start TensorFlow processes of its own).
workers=$(nproc 2>/dev/null || echo 2)
workers=$(( workers < 2 ? 2 : (workers > 4 ? 4 : workers) ))
exec .venv/bin/python -m pytest -n "$workers" --dist worksteal "$@"
