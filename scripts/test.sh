#!/usr/bin/env bash
# The whole test suite: set up .venv, then run pytest (unit tests, papermill and nbval runs of the
# notebook, multi-process tests). Offline: tests build their own tiny data fixtures.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_env.sh
# One worker more than there are cores (many tests spend seconds waiting on a kernel or a
# subprocess to start), at most 4: each test may start TensorFlow processes of its own.
cores=$(nproc 2>/dev/null || echo 2)
workers=$(( cores + 1 > 4 ? 4 : cores + 1 ))
exec .venv/bin/python -m pytest -n "$workers" --dist worksteal "$@"
