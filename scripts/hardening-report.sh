#!/bin/sh
# The hardening report: run the tests marked @pytest.mark.hardening (they need root, like the
# end-to-end tests) with PORTENV_HARDENING_LOG set, then render docs/hardening.md from the
# figures they recorded (tests/support/hardening_report.py). Extra arguments go to pytest.
# Exits with pytest's status; the page is written either way and lists failing tests.
#   PORTENV_PYTHON=/path/to/python   use this interpreter instead of setting up .venv
set -eu
cd "$(dirname "$0")/.."
if [ -z "${PORTENV_PYTHON:-}" ]; then
    sh scripts/bootstrap.sh --tests
    PORTENV_PYTHON=.venv/bin/python
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONPATH
status=0
PORTENV_HARDENING_LOG="$work/figures.jsonl" "$PORTENV_PYTHON" -m pytest -m hardening \
    -p no:cacheprovider --junitxml="$work/junit.xml" "$@" || status=$?
"$PORTENV_PYTHON" -m tests.support.hardening_report "$work/figures.jsonl" "$work/junit.xml" \
    docs/hardening.md
exit "$status"
