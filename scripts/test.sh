#!/usr/bin/env bash
# The whole test suite: set up .venv, then run pytest (unit tests, papermill and nbval runs of the
# notebook, multi-process tests). Offline: tests build their own tiny data fixtures.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_env.sh
exec .venv/bin/python -m pytest "$@"
