#!/usr/bin/env bash
# The main job: set up .venv, then execute notebooks/cifar10_cnn.ipynb through papermill with its
# default parameters (the seed recipe). Extra arguments are passed on as notebook parameters,
# e.g. `bash scripts/main.sh --epochs 1`. Offline, set CIFAR10_SOURCE to a local copy of the data.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_env.sh
exec .venv/bin/python -m cifar_cnn notebook "$@"
