#!/bin/sh
# portenv's benchmark suite (issue 7): one command, writes BENCHMARKS.md + benchmarks.png.
#
#   sh bench/run.sh [--envs S,M,L] [--reps-scale 1.0]
#
#   sh bench/run.sh --only onefile  # one piece (onefile, delta, small): prints its section
#                                   # of BENCHMARKS.md; the next full run shows it too
#
# Needs root (the unpack side runs in a bare rootfs, as the end-to-end tests do), gcc (a
# static timer for the rootfs), and the project venv: $PORTENV_BENCH_PYTHON, else
# .venv/bin/python (made by scripts/bootstrap.sh when missing). The peers and the plotter
# (conda-pack, zstandard, matplotlib, isal: the `bench` extra) go into their own venv in the cache.
# Cache: $PORTENV_BENCH_CACHE (default ~/.cache/portenv-bench); L needs the CPU torch 2.13.0
# wheel for CPython 3.11 on disk (pip's find-links, or $PORTENV_BENCH_TORCH_WHEEL).
# One piece alone: `.venv/bin/python -m bench.first_import --envs S,M` (first start of a user
# who cannot write into the env, with and without bytecode; its section of BENCHMARKS.md).
set -eu
cd "$(dirname "$0")/.."
PY=${PORTENV_BENCH_PYTHON:-.venv/bin/python}
if [ ! -x "$PY" ]; then
    sh scripts/bootstrap.sh --tests
    PY=.venv/bin/python
fi
CACHE=${PORTENV_BENCH_CACHE:-$HOME/.cache/portenv-bench}
TOOLS=$CACHE/tools
mkdir -p "$CACHE"
if [ "${1:-}" = --only ]; then # one piece: no peers, no plot
    "$PY" -m compileall -q src/portenv
    exec "$PY" -m bench --command "sh bench/run.sh $*" "$@"
fi
if [ ! -x "$TOOLS/bin/conda-pack" ] || ! "$TOOLS/bin/python" -c 'import matplotlib, zstandard, isal' 2>/dev/null; then
    "$PY" -m venv --clear "$TOOLS"
    "$TOOLS/bin/python" -m pip install --quiet --disable-pip-version-check \
        'conda-pack==0.9.2' 'zstandard>=0.22' 'matplotlib>=3.8' 'isal>=1.6'
fi
# portenv's bytecode, as an installed wheel has it (conda-pack's is in its venv): with
# PYTHONDONTWRITEBYTECODE set, a checkout would otherwise compile its modules on every run.
"$PY" -m compileall -q src/portenv
CMD="sh bench/run.sh${*:+ $*}"
[ -z "${PORTENV_BENCH_PYTHON:-}" ] || CMD="PORTENV_BENCH_PYTHON=$PORTENV_BENCH_PYTHON $CMD"
exec "$PY" -m bench --tools "$TOOLS" --command "$CMD" "$@"
