"""First start on the target: root unpacks, a user who cannot write into the env imports.

``python -m bench.first_import [--envs S,M] [--reps N]`` packs each benchmark environment
twice (with its bytecode, and ``--no-bytecode``) from the suite's warm caches, then in the
bare trixie rootfs unpacks each as root into a tmpfs and times, as the user ``nobody``
(``setpriv``), the environment's import line twice: the first start after the unpack and the
second. It writes ``first-import.json`` in the bench cache and replaces the "First start"
section of BENCHMARKS.md (the rest of the file is the full suite's, ``sh bench/run.sh``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from bench.config import REPO, EnvSpec, cache_root, environments
from bench.envs import log_path, portenv_argv, project_for, read_meta, say
from bench.target import run_script
from bench.timing import median, ptime_binary, run_timed

VARIANTS = {"bytecode": (), "none": ("--no-bytecode",)}
"""Archive name -> extra `portenv pack` options."""
SCRIPT = r"""
set -u
A=/in R=/res/times.txt
i=1
while [ "$i" -le {reps} ]; do
    for v in {variants}; do
        rm -rf "/t/$v"
        sh "$A/$v.sh" -o "/t/$v" 2>>/res/unpack.log
        for when in first second; do
            "$A/ptime" "$R" "${v}_$when" setpriv --reuid=65534 --regid=65534 --clear-groups \
                "/t/$v/env/{py}" -c {imports} 2>>/res/import.log
        done
    done
    "/t/bytecode/env/{py}" "$A/hash_cost.py" {imports} >>/res/hash_cost.txt 2>>/res/import.log
    i=$((i + 1))
done
echo done >/res/finished
"""
HASH_COST = """\
import importlib.util, sys, time
exec(sys.argv[1])
files = [m.__spec__.origin for m in list(sys.modules.values())
         if getattr(m, "__spec__", None) and (m.__spec__.origin or "").endswith(".py")]
start, size = time.perf_counter(), 0
for path in files:
    with open(path, "rb") as stream:
        data = stream.read()
    size += len(data)
    importlib.util.source_hash(data)
print(len(files), size, time.perf_counter() - start)
"""
"""What a checked-hash .pyc costs more than a timestamp one: reading and hashing the source of
each imported module (a timestamp .pyc is checked with the stat an import makes anyway)."""
BEGIN, END = "<!-- first-import: begin -->", "<!-- first-import: end -->"


def pack_variants(spec: EnvSpec, out: Path) -> dict[str, dict[str, object]]:
    """env.sh with and without bytecode; their sizes and what the meta says."""
    project = project_for(spec)
    pcache = cache_root() / "pcache"
    facts: dict[str, dict[str, object]] = {}
    for name, extra in VARIANTS.items():
        archive = out / f"{name}.sh"
        argv = [*portenv_argv(), "pack", str(project), "-o", str(archive)]
        sample = run_timed([*argv, "--use-cache", str(pcache), *extra], log=log_path())
        if sample.code != 0:
            msg = f"portenv pack {' '.join(extra)} failed for {spec.name} (see {log_path()})"
            raise RuntimeError(msg)
        tar = out / f"{name}.tar"
        data = archive.read_bytes()
        offset = data.index(b"PORTENV_EMBEDDED_OFFSET=") + len(b"PORTENV_EMBEDDED_OFFSET=")
        tar.write_bytes(data[int(data[offset : offset + 10]) :])
        meta = read_meta(tar)
        tar.unlink()
        facts[name] = {
            "archive_bytes": archive.stat().st_size,
            "unpacked_kib": int(meta["unpacked_kib"]),
            "files": int(meta["files"]),
            "python": meta["python"],
        }
    return facts


def measure(spec: EnvSpec, rootfs: Path, reps: int) -> dict[str, object]:
    """Pack both variants of ``spec`` and time their first and second start as nobody."""
    out = cache_root() / "run" / "first-import" / spec.name
    res = out / "res"
    res.mkdir(parents=True, exist_ok=True)
    for old in res.iterdir():
        old.unlink()
    say(f"{spec.name}: packing with and without bytecode")
    facts = pack_variants(spec, out)
    (out / "ptime").write_bytes(ptime_binary().read_bytes())
    (out / "ptime").chmod(0o755)
    python = str(facts["bytecode"]["python"])
    script = SCRIPT.replace("{reps}", str(reps)).replace("{variants}", " ".join(VARIANTS))
    script = script.replace("{py}", python).replace("{imports}", shlex.quote(spec.imports))
    (out / "first-import.sh").write_text(script)
    (out / "hash_cost.py").write_text(HASH_COST)
    say(f"{spec.name}: first and second start as nobody ({reps} reps)")
    samples = run_script(rootfs, out, "first-import.sh")
    failed = sorted(label for label, got in samples.items() if any(s.code for s in got))
    if failed:
        msg = f"{spec.name}: imports failed in the rootfs: {failed} (see {res}/import.log)"
        raise RuntimeError(msg)
    walls = {label: [s.wall for s in got] for label, got in samples.items()}
    cpus = {label: [s.cpu for s in got] for label, got in samples.items()}
    costs = [line.split() for line in (res / "hash_cost.txt").read_text().splitlines()]
    hashing = {"modules": int(costs[0][0]), "bytes": int(costs[0][1])}
    hashing["seconds"] = median([float(c[2]) for c in costs])  # type: ignore[assignment]
    return {
        "imports": spec.imports,
        "reps": reps,
        "facts": facts,
        "walls": walls,
        "cpus": cpus,
        **hashing,
    }


def section(results: dict[str, dict[str, object]], command: str) -> str:
    """The BENCHMARKS.md section, between its markers."""
    lines = [
        BEGIN,
        "## First start: a user who cannot write into the environment",
        "",
        "Root unpacks (`sh env.sh -o /t/V`), then `nobody` runs the environment's import line"
        " twice: the first start after the unpack, and the second. Without bytecode (`pack"
        " --no-bytecode`, as before issue 14) that user compiles every module at every start,"
        " since no .pyc can be written; with it, the shipped checked-hash .pyc files are used"
        " as they are. Medians of wall seconds, and of CPU seconds (user + system: what a"
        " machine shared with other work does not inflate); measured with",
        "",
        "```sh",
        command,
        "```",
        "",
        "| env | import | bytecode | first (s) | second (s) | first/second | CPU first/second"
        " (s) | CPU ratio | archive (MB) | unpacked (MB) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, data in results.items():
        walls: dict[str, list[float]] = data["walls"]  # type: ignore[assignment]
        cpus: dict[str, list[float]] = data["cpus"]  # type: ignore[assignment]
        facts: dict[str, dict[str, int]] = data["facts"]  # type: ignore[assignment]
        for variant in VARIANTS:
            first, second = median(walls[f"{variant}_first"]), median(walls[f"{variant}_second"])
            cpu1, cpu2 = median(cpus[f"{variant}_first"]), median(cpus[f"{variant}_second"])
            size = facts[variant]["archive_bytes"] / 1e6
            unpacked = facts[variant]["unpacked_kib"] / 1024
            lines.append(
                f"| {name} | `{data['imports']}` | {'yes' if variant == 'bytecode' else 'no'} |"
                f" {first:.2f} | {second:.2f} | {first / second:.2f}x | {cpu1:.2f} / {cpu2:.2f}"
                f" | {cpu1 / cpu2:.2f}x | {size:.1f} | {unpacked:.0f} |"
            )
    lines += [
        "",
        "Why checked-hash .pyc files (PEP 552) and not timestamp ones whose recorded mtime is 0,"
        " as the payload's: a timestamp .pyc is valid only while the tool that unpacks or"
        " copies the environment keeps that mtime (`cp -r`, `tar -m`, a zip for Spark or Ray do"
        " not), and then every start of such a user compiles again. What checked-hash costs"
        " more, reading and hashing the source of each imported module, measured in the same"
        " run:",
        "",
        "| env | modules imported | their sources (MB) | read + hash (ms) | of the second start |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, data in results.items():
        walls = data["walls"]  # type: ignore[assignment]
        seconds = float(data["seconds"])  # type: ignore[arg-type]
        share = seconds / median(walls["bytecode_second"])
        lines.append(
            f"| {name} | {data['modules']} | {int(data['bytes']) / 1e6:.1f} |"  # type: ignore[call-overload]
            f" {seconds * 1000:.0f} | {share:.1%} |"
        )
    lines += ["", END]
    return "\n".join(lines)


def update_report(report: Path, text: str) -> None:
    """Replace the section in ``report`` (or append it)."""
    old = report.read_text() if report.exists() else ""
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        new = head + text + rest.split(END, 1)[1]
    else:
        new = old.rstrip() + "\n\n" + text + "\n"
    report.write_text(new)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.first_import", description=__doc__)
    parser.add_argument("--envs", default="S,M", help="comma-separated subset of S,M,L")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--output", default=str(REPO / "BENCHMARKS.md"))
    args = parser.parse_args(argv)
    from tests.support.rootfs import debian_rootfs

    wanted = [e.strip() for e in args.envs.split(",") if e.strip()]
    rootfs = debian_rootfs("trixie")
    results = {s.name: measure(s, rootfs, args.reps) for s in environments() if s.name in wanted}
    (cache_root() / "first-import.json").write_text(json.dumps(results, indent=1))
    command = f"python -m bench.first_import --envs {','.join(results)} --reps {args.reps}"
    update_report(Path(args.output), section(results, command))
    say(f"wrote the first-start section of {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
