"""``python -m bench``: build S/M/L, measure everything side by side, write BENCHMARKS.md.

Use ``sh bench/run.sh`` (it prepares the tool venv with conda-pack and matplotlib first).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import first_import
from bench.config import REPO, cache_root, environments
from bench.envs import build, say
from bench.facts import load_average, machine_facts
from bench.onefile import measure_onefile
from bench.packing import measure_packing
from bench.report import onefile_section, write_report
from bench.small import measure_small, small_section
from bench.target import measure_unpacking


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sh bench/run.sh", description=__doc__)
    parser.add_argument("--envs", default="S,M,L", help="comma-separated subset of S,M,L")
    parser.add_argument(
        "--reps-scale", type=float, default=1.0, help="multiply every repetition count"
    )
    parser.add_argument("--tools", help="the bench tool venv (conda-pack etc.)")
    parser.add_argument(
        "--only",
        choices=["onefile", "delta", "small"],
        help="run one piece: measure it, store it in results.json and print its report section",
    )
    parser.add_argument("--output", default=str(REPO / "BENCHMARKS.md"))
    parser.add_argument("--command", default="sh bench/run.sh", help="shown in the report")
    return parser.parse_args(argv)


def only_onefile(args: argparse.Namespace) -> int:
    """The one-file piece alone: measured, merged into results.json, its section printed."""
    from tests.support.rootfs import debian_rootfs

    spec = next(s for s in environments(args.reps_scale) if s.name == "S")
    piece = measure_onefile(spec, debian_rootfs("trixie"), round(201 * args.reps_scale) | 1)
    piece["command"] = args.command
    piece["load average"] = load_average()
    _store_piece("onefile", piece)
    sys.stdout.write("\n".join(onefile_section(piece)) + "\n")
    return 0


def _stored() -> dict[str, Any]:
    stored = cache_root() / "results.json"
    return dict(json.loads(stored.read_text())) if stored.is_file() else {}


def _store_piece(name: str, piece: dict[str, Any]) -> None:
    """A piece measured alone joins the stored results; the next full run's report shows it."""
    results = _stored()
    results[name] = piece
    (cache_root() / "results.json").write_text(json.dumps(results, indent=1))


def only_small(args: argparse.Namespace) -> int:
    """The small-environment piece alone: measured, stored, its section printed."""
    piece = _measure_small(args)
    sys.stdout.write("\n".join(small_section(piece)) + "\n")
    return 0


def _measure_small(args: argparse.Namespace) -> dict[str, Any]:
    from tests.support.rootfs import busybox_rootfs, debian_rootfs

    piece = measure_small(debian_rootfs("trixie"), busybox_rootfs(), round(31 * args.reps_scale))
    piece["command"] = args.command
    piece["load average"] = load_average()
    _store_piece("small", piece)
    return piece


def only_delta(args: argparse.Namespace) -> int:
    """The update piece alone (S and M): measured, merged into results.json, section printed."""
    from bench.delta import delta_section, measure_delta
    from tests.support.rootfs import debian_rootfs

    specs = [s for s in environments(args.reps_scale) if s.name in ("S", "M")]
    pieces = [measure_delta(spec, debian_rootfs("trixie")) for spec in specs]
    piece = {"pieces": pieces, "command": args.command, "load average": load_average()}
    _store_piece("delta", piece)
    sys.stdout.write("\n".join(delta_section(piece)) + "\n")
    return 0


def main(argv: list[str]) -> int:
    args = parse(argv)
    if args.only == "onefile":
        return only_onefile(args)
    if args.only == "delta":
        return only_delta(args)
    if args.only == "small":
        return only_small(args)
    if not args.tools:
        sys.stderr.write("bench: --tools is needed to run the whole suite\n")
        return 2
    from tests.support.rootfs import busybox_rootfs, debian_rootfs

    started = time.time()
    tools = Path(args.tools)
    wanted = [e.strip() for e in args.envs.split(",") if e.strip()]
    specs = [s for s in environments(args.reps_scale) if s.name in wanted]
    skipped = [name for name in wanted if name not in {s.name for s in specs}]
    for name in skipped:
        say(f"{name}: skipped (for L: no CPU torch 2.13.0 wheel for CPython 3.11 on disk)")
    rootfs, busybox = debian_rootfs("trixie"), busybox_rootfs()
    pieces = {k: v for k, v in _stored().items() if k in ("onefile", "delta")}
    results: dict[str, Any] = {
        "command": args.command,
        "facts": machine_facts(tools, rootfs),
        "envs": {},
        "skipped": skipped,
        **pieces,  # measured alone (--only), shown until measured again
    }
    results["small"] = _measure_small(args)
    envs: dict[str, object] = {}
    for spec in specs:
        built = build(spec)
        packing = measure_packing(built, tools / "bin" / "conda-pack")
        unpacking = measure_unpacking(built, rootfs, busybox)
        say(f"{spec.name}: codec study on the payload tar (single thread)")
        codecs = subprocess.run(
            [
                str(tools / "bin" / "python"),
                str(REPO / "bench" / "codec_study.py"),
                str(built.out / "payload.tar.gz"),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        envs[spec.name] = {
            "spec": {
                "what": spec.what,
                "python": spec.python,
                "pypi": list(spec.pypi),
                "imports": spec.imports,
                "reps_pack": spec.reps_pack,
                "reps_unpack": spec.reps_unpack,
                "local_wheels": [p.name for p in spec.local_wheels],
            },
            "meta": built.meta,
            "phases": built.phases,
            "largest_file": list(built.largest_file),
            "versions": built.versions,
            "uv_install_seconds": built.uv_install_seconds,
            "manifest_files": built.manifest_files,
            "codecs": json.loads(codecs.stdout),
            "pack": {k: [dataclasses.asdict(s) for s in v] for k, v in packing.samples.items()},
            "sizes": packing.sizes,
            "unpack": {k: [dataclasses.asdict(s) for s in v] for k, v in unpacking.items()},
        }
        results["envs"] = envs
        (cache_root() / "results.json").write_text(json.dumps(results, indent=1))
    results["elapsed"] = time.time() - started
    results["facts"]["load average at the end"] = load_average()
    (cache_root() / "results.json").write_text(json.dumps(results, indent=1))
    write_report(results, Path(args.output), tools)
    first = {spec.name: first_import.measure(spec, rootfs, spec.reps_unpack) for spec in specs}
    first_import.update_report(Path(args.output), first_import.section(first, args.command))
    say(f"wrote {args.output} in {results['elapsed'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # py-rattler's runtime may crash at interpreter exit (FIELD-NOTES)
