#!/usr/bin/env bash
# Creates .venv (Python 3.11+) with dre_jax and the extras given as $1
# (default "data"), and installs the Debian packages of the offline data
# (Tux Paint photo cut-outs and backgrounds) when this is a root Debian machine.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-data}"

if [ ! -d /usr/share/tuxpaint/stamps ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "[setup] apt-get install tuxpaint-stamps-default tuxpaint-data"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      tuxpaint-stamps-default tuxpaint-data >/dev/null
  else
    echo "[setup] warning: Tux Paint data missing and apt-get unavailable (not root?);"
    echo "        run: sudo apt-get install -y tuxpaint-stamps-default tuxpaint-data"
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
echo "[setup] pip install -e .[${extras}]"
.venv/bin/pip install -q -e ".[${extras}]"
