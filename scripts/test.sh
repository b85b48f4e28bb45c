#!/usr/bin/env bash
# The test suite from a fresh machine: environment (with torch/torchvision for
# the parity tests) and pytest on every core. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh "test,parity"
# One pytest worker per core (pytest-xdist); a test file's tests stay on one
# worker, so its module fixtures are built once.
exec .venv/bin/python -m pytest -q -n auto --dist loadfile "$@" tests
