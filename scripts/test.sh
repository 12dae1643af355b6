#!/bin/sh
# The test command: set up, then lint, type-check and run every test (end-to-end included).
set -eu
cd "$(dirname "$0")/.."
sh scripts/bootstrap.sh --tests
.venv/bin/ruff check src tests examples bench
.venv/bin/ruff format --check src tests examples bench
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
