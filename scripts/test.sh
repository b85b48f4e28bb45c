#!/usr/bin/env bash
# The test suite from a fresh machine: environment (with torch/torchvision for
# the parity tests) and pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh "test,parity"
exec .venv/bin/python -m pytest -q "$@" tests
