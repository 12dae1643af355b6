#!/bin/sh
# Set up everything portenv's development and tests need on a fresh Debian machine:
# the system packages (debootstrap, busybox, dash), and a virtualenv in .venv with portenv
# installed in editable mode plus its test tools. Idempotent: a second run is quick.
set -eu
cd "$(dirname "$0")/.."
sh scripts/install-system-deps.sh
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
