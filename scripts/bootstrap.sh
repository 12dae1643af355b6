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
# portenv needs tarfile's extraction filters (PEP 706: 3.10.12+, 3.11.4+, 3.12+); Debian 12's
# python3 (3.11.2) lacks them, so take the first python on PATH that has them.
has_filters() {
    "$1" -c 'import sys, tarfile; sys.exit(sys.version_info < (3, 10) or not hasattr(tarfile, "data_filter"))' 2>/dev/null
}
if [ -z "${PYTHON:-}" ]; then
    for candidate in python3 python3.13 python3.12 python3.11 python3.10; do
        if command -v "$candidate" >/dev/null 2>&1 && has_filters "$candidate"; then
            PYTHON=$candidate
            break
        fi
    done
fi
if [ -z "${PYTHON:-}" ] || ! has_filters "$PYTHON"; then
    echo "error: no Python 3.10+ with tarfile's extraction filters (3.10.12+, 3.11.4+, 3.12+) found" >&2
    echo "  hint: install CPython 3.12 (pyenv, uv python install), or pass PYTHON=/path/to/python3.12" >&2
    exit 1
fi
# A .venv without pip is what `python3 -m venv` leaves when it fails half-way (Debian without
# python3-venv): make it again rather than fail in it forever.
if [ -x .venv/bin/python ] && ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
    echo "remaking .venv: it has no pip (an earlier set-up failed half-way)"
    rm -rf .venv
elif [ -x .venv/bin/python ] && ! has_filters .venv/bin/python; then
    echo "remaking .venv with $PYTHON: its python has no tarfile extraction filters"
    rm -rf .venv
fi
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[$EXTRA]"
# The default archive carries portenv-unzstd, built from zstd's source (package data, not in
# git): for this machine's arch, and with --tests for aarch64 too (the cross tests pack it).
if [ "$EXTRA" = test ]; then sh scripts/build-unzstd.sh; else sh scripts/build-unzstd.sh "$(uname -m)"; fi
