"""portenv's benchmark suite (issue 7): portenv against its peers and the physical limit.

Run it with ``sh bench/run.sh`` (see ``BENCHMARKS.md`` for what it measures and how). It
builds three environments (S, M, L) from real content, packs each with portenv, conda-pack,
portenv's pixi-pack writer and ``tar -czhf`` of a uv venv, unpacks them inside a bare
Debian rootfs with no network, and writes ``BENCHMARKS.md`` plus ``benchmarks.png``.
Everything it builds is cached outside the repository (``$PORTENV_BENCH_CACHE``, default
``~/.cache/portenv-bench``).
"""
