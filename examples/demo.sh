#!/bin/sh
# One command: install portenv and its test ground, then pack the example and run it on a
# bare target. Usage: sh examples/demo.sh
set -eu
cd "$(dirname "$0")/.."
sh scripts/bootstrap.sh
exec .venv/bin/python examples/demo.py
