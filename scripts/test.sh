#!/bin/sh
# The test command: set up, then lint, type-check and run every test (end-to-end included).
#   sh scripts/test.sh [PYTEST ARGS]   everything (what .ci/run runs)
#   sh scripts/test.sh --fast [ARGS]   the quick loop (about a minute): tests/unit on every core,
#                                      no slow, end-to-end, network or root tests
set -eu
cd "$(dirname "$0")/.."
FAST=
if [ "${1:-}" = --fast ]; then
    FAST=1
    shift
fi
sh scripts/bootstrap.sh --tests
.venv/bin/ruff check src tests examples bench backend
.venv/bin/ruff format --check src tests examples bench backend
.venv/bin/mypy
if [ -n "$FAST" ]; then
    # The unit tests share no session fixture worth building twice, so they split across
    # cores; the integration and end-to-end tests share the local channel and the rootfs
    # targets, built once per session, and run in the full command only.
    exec .venv/bin/python -m pytest -n auto -m "not slow and not e2e and not network and not root" \
        tests/unit "$@"
fi
exec .venv/bin/python -m pytest "$@"
