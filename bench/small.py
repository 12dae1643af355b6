"""The fixed cost of an unpack, on the core test project (issue 17, target 2).

On a large environment the unpacker's fixed steps (the shell's start, the header and meta read,
the target checks, the decompressor's install and the relocation's python start) vanish in
the extraction; on a small one they are what a user waits for. The core test project (python +
a C program with a compiled-in prefix + a library pair + a noarch entry point, from the test
suite's local channel) is packed with the default codec and with gzip (whose payload, cut from
the archive and recompressed by ``gzip -6``, is the plain tarball of the same tree). In the bare
Debian 13 minbase rootfs and in the glibc + busybox one, ptime times, interleaved:

- ``tar -xzf`` of that tarball, and ``sh env.sh -o DIR`` of the default archive;
- the unpacker's fixed steps one by one, as the unpacker runs them.

The fixed cost is the unpack's time minus ``tar -xzf``'s: the target is <= 30 ms, and the unpack
<= 1.15x ``tar -xzf`` of its own payload.
"""

from __future__ import annotations

import shutil
import statistics
from pathlib import Path
from typing import Any

from bench.config import cache_root
from bench.envs import (
    cut_env_tar,
    embedded_offset,
    extract_payload,
    gzip6_of,
    pack_quietly,
    read_meta,
    say,
)
from bench.target import LOOP_HEAD, LOOP_TAIL, run_script
from bench.timing import Sample, ptime_binary

__all__ = ["FIXED_MS", "STEPS", "measure_small", "small_section"]

FIXED_MS = 30.0
"""Issue 17: the fixed cost of an unpack on the core test project."""
RATIO = 1.15
"""Issue 17: the unpack of the core project against `tar -xzf` of its own payload."""
CORE_SPECS = ["python 3.12.*", "greet", "libbar", "hello-py"]
"""tests/conftest.py's core project."""

STEPS = {
    "tar_xzf6": "`tar -xzf` of a gzip -6 tarball of the same tree",
    "envsh": "`sh env.sh -o DIR`, the default archive (zstd + its decompressor)",
    "sh": "a shell's start: `sh -c :`",
    "info": "`sh env.sh --info`: the header read, the meta parsed and shown",
    "check": "`sh env.sh --check -o DIR`: every check, the payload's and the decompressor's"
    " sha256, nothing written",
    "unzstd": "the decompressor installed (`gzip -dc` of it) and run into `tar -xf -`",
    "relocate": "`python relocate.py --to DEST` on the extracted tree (its start included)",
}

SCRIPT = (
    LOOP_HEAD
    + r"""    p {prefix}tar_xzf6 tar -xzf "$A/payload6.tar.gz" -C "$T/u/env"
    rm -rf "$T/u"
    p {prefix}envsh sh "$A/env.sh" -o "$T/u" 2>>/res/unpack.log
    rm -rf "$T/u"
    p {prefix}sh sh -c :
    p {prefix}info sh "$A/env.sh" --info >/dev/null
    p {prefix}check sh "$A/env.sh" --check -o "$T/u" 2>>/res/unpack.log
    mkdir -p "$T/w"
    p {prefix}unzstd sh -c 'gzip -dc <"$1" >"$3/z" && chmod 700 "$3/z" &&
        "$3/z" <"$2" | tar -xf - -C "$3"' - "$A/unzstd.gz" "$A/payload.zst" "$T/w"
    rm -rf "$T/w" "$T/v"; mkdir -p "$T/v"
    tar -xzf "$A/payload6.tar.gz" -C "$T/v"
    p {prefix}relocate "$T/v/{py}" -I -S -B "$T/v/.portenv/relocate.py" --to "$T/x/env" \
        --quiet >/dev/null 2>>/res/unpack.log
"""
    + LOOP_TAIL
)


def _core_project() -> Path:
    """The core test project on the test suite's local channel (cached with the projects)."""
    from tests.support.channel import build_local_channel, write_project

    project = cache_root() / "projects" / "core-suite"
    if not (project / "pixi.lock").is_file():
        tmp = project.with_name(project.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        write_project(tmp, build_local_channel(), CORE_SPECS)
        tmp.rename(project)
    return project


def _cut(env_sh: Path, out: Path) -> dict[str, str]:
    """From a default archive: the decompressor (gzipped) and the zstd payload, for the
    phase runs; returns its meta."""
    tar = out / "default.tar"
    cut_env_tar(env_sh, tar, embedded_offset(env_sh))
    meta = read_meta(tar)
    size = int(meta["payload_size"])
    extract_payload(tar, out / "payload.zst", size)
    start = 5120 + size + (512 - size % 512) % 512 + 512
    with tar.open("rb") as src, (out / "unzstd.gz").open("wb") as dst:
        src.seek(start)
        dst.write(src.read(int(meta["unzstd_size"])))
    tar.unlink()
    return meta


def measure_small(debian: Path, busybox: Path, reps: int = 31) -> dict[str, Any]:
    """Pack the core project, time its unpack and fixed steps in both rootfs."""
    out = cache_root() / "run" / "small"
    res = out / "res"
    res.mkdir(parents=True, exist_ok=True)
    project = _core_project()
    say("small: packing the core test project (default, gzip, pixi-pack)")
    pack_quietly(project, out / "env.sh")
    pack_quietly(project, out / "env-gz.sh", "--compression", "gzip")
    pack_quietly(project, out / "pp.tar", "--format", "pixi-pack")
    gz_tar = out / "env-gz.tar"
    cut_env_tar(out / "env-gz.sh", gz_tar, embedded_offset(out / "env-gz.sh"))
    gz_meta = read_meta(gz_tar)
    extract_payload(gz_tar, out / "payload.tar.gz", int(gz_meta["payload_size"]))
    gzip6_of(out / "payload.tar.gz", out / "payload6.tar.gz")
    gz_tar.unlink()
    meta = _cut(out / "env.sh", out)
    (out / "ptime").write_bytes(ptime_binary().read_bytes())
    (out / "ptime").chmod(0o755)
    samples: dict[str, list[dict[str, float]]] = {}
    for prefix, rootfs in (("", debian), ("bb_", busybox)):
        for old in res.iterdir():
            old.unlink()
        script = SCRIPT.replace("{reps}", str(reps)).replace("{prefix}", prefix)
        (out / "small-bench.sh").write_text(script.replace("{py}", meta["python"]))
        say(f"small: {reps} interleaved runs in the {'busybox' if prefix else 'Debian'} rootfs")
        for label, run in run_script(rootfs, out, "small-bench.sh").items():
            samples[label] = [sample.__dict__ for sample in run]
    sizes = {name: (out / name).stat().st_size for name in ("env.sh", "pp.tar", "payload6.tar.gz")}
    return {"meta": meta, "samples": samples, "sizes": sizes, "reps": reps}


def _median_ms(piece: dict[str, Any], label: str) -> float:
    runs = [Sample(**s) for s in piece["samples"].get(label, [])]
    failed = [s for s in runs if s.code != 0]
    if not runs or failed:
        msg = f"small: {label} has {len(failed)} failed runs of {len(runs)}"
        raise RuntimeError(msg)
    return 1000 * statistics.median(s.wall for s in runs)


def small_section(piece: dict[str, Any]) -> list[str]:
    """The "Small environments" section of BENCHMARKS.md."""
    sizes = piece["sizes"]
    lines = [
        "## Small environments: the fixed cost of an unpack (issue 17)",
        "",
        "The core test project (python 3.12 + a C program with a compiled-in prefix + a library"
        " pair + a noarch entry point, from the test suite's local channel), the default archive"
        " against `tar -xzf` of a gzip -6 tarball of the same tree, in both bare rootfs, every"
        f" step interleaved, {piece['reps']} runs, medians; measured by",
        "",
        "```sh",
        piece["command"],
        "```",
        "",
        f"(load average {piece['load average']} at its end). Sizes: `env.sh`"
        f" {sizes['env.sh'] / 2**20:.2f} MiB ="
        f" {sizes['env.sh'] / sizes['pp.tar']:.2f}x the pixi-pack format"
        f" ({sizes['pp.tar'] / 2**20:.2f} MiB) and"
        f" {sizes['env.sh'] / sizes['payload6.tar.gz']:.2f}x `tar -czf` (gzip -6) of the tree"
        f" ({sizes['payload6.tar.gz'] / 2**20:.2f} MiB).",
        "",
        "| step | Debian 13 minbase (ms) | glibc + busybox (ms) |",
        "|---|---|---|",
    ]
    for label, what in STEPS.items():
        lines.append(
            f"| {what} | {_median_ms(piece, label):.1f} | {_median_ms(piece, 'bb_' + label):.1f} |"
        )
    verdicts = []
    for name, prefix in (("Debian 13 minbase", ""), ("glibc + busybox", "bb_")):
        tar, envsh = _median_ms(piece, prefix + "tar_xzf6"), _median_ms(piece, prefix + "envsh")
        fixed, ratio = envsh - tar, envsh / tar
        own = envsh - _median_ms(piece, prefix + "unzstd")
        met = "met" if fixed <= FIXED_MS and ratio <= RATIO else "missed"
        verdicts.append(
            f"{name}: fixed cost {fixed:.1f} ms (target <= {FIXED_MS:.0f} ms), {ratio:.2f}x"
            f" `tar -xzf` (target <= {RATIO}x): {met} (beyond its own extraction, the unpack"
            f" spends {own:.0f} ms: the steps above, partly beside the extraction)"
        )
    return [*lines, "", "Targets: " + "; ".join(verdicts) + ".", ""]
