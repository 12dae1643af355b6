#!/bin/sh
# Set up what portenv's demo needs on a fresh Debian machine, or with --tests what its test
# suite needs: the system packages (scripts/install-system-deps.sh), and a virtualenv in .venv
# with portenv installed in editable mode plus the demo's (or the tests') Python packages.
# Idempotent: a second run is quick.
set -eu
cd "$(dirname "$0")/.."
case ${1:-} in
--tests) EXTRA="test" ;;
'') EXTRA="demo" ;;
*) echo "usage: sh scripts/bootstrap.sh [--tests]" >&2; exit 2 ;;
esac
sh scripts/install-system-deps.sh ${1:-}
PYTHON=${PYTHON:-python3}
# A .venv without pip is what `python3 -m venv` leaves when it fails half-way (Debian without
# python3-venv): make it again rather than fail in it forever.
if [ -x .venv/bin/python ] && ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
    echo "remaking .venv: it has no pip (an earlier set-up failed half-way)"
    rm -rf .venv
fi
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[$EXTRA]"
