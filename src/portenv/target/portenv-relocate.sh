#!/bin/sh
# Relocate this environment to the folder it is in now: run it after moving the env.
here=$(cd "$(dirname "$0")/.." && pwd -P) || exit 1
exec "$here/@PYTHON@" "$here/.portenv/relocate.py" "$@"
