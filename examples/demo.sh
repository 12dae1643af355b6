#!/bin/sh
# One command: install portenv and its test ground, then pack the example and run it on a
# bare target. Usage: sh examples/demo.sh
set -eu
cd "$(dirname "$0")/.."
sh scripts/bootstrap.sh
# The pixi half makes its local channel's python package from a CPython 3.12 of this machine
# (pyenv's, python3.12 on PATH, or PORTENV_TEST_PYTHON). Debian 12 has only 3.11: say so now,
# not after the first half.
if ! .venv/bin/python -c 'from tests.support.pyrelocate import find_base_python as f; f("3.12")' \
    >/dev/null 2>&1; then
    echo "warning: no CPython 3.12 here (pyenv, python3.12 on PATH, PORTENV_TEST_PYTHON): the demo's pixi half will fail" >&2
    echo "  hint: install one (pyenv install 3.12) or set PORTENV_TEST_PYTHON=/path/to/python3.12" >&2
fi
exec .venv/bin/python examples/demo.py
