#!/usr/bin/env bash
# The whole test suite: set up .venv, then run pytest (unit tests, papermill and nbval runs of the
# notebook, multi-process tests). Offline: tests build their own tiny data fixtures.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_env.sh
# The search tests start a PostgreSQL server of their own from Debian's package (never a
# mock). Installed here when missing and this is a Debian machine run as root (CI); elsewhere
# those tests skip and say why.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null \
    && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing PostgreSQL (Debian package postgresql) for the search tests"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
# One worker more than there are cores (many tests spend seconds waiting on a kernel or a
# subprocess to start), at most 4: each test may start TensorFlow processes of its own.
cores=$(nproc 2>/dev/null || echo 2)
workers=$(( cores + 1 > 4 ? 4 : cores + 1 ))
exec .venv/bin/python -m pytest -n "$workers" --dist worksteal "$@"
