"""Unpack side: every measurement inside one bare rootfs run, no network, per environment.

The rootfs (tests/support/rootfs.py: debootstrap minbase trixie, GNU tar and gzip, no
python) gets the archives bound at /in, a results folder at /res and a tmpfs at /t where
everything is unpacked (so the figures are CPU work and page-cache writes, not the disk's
writeback). ``ptime`` (bench/ptime.c, static) times each command and reads its peak RSS
with wait4(). One loop iteration runs every method once, so drift hits all alike.
"""

from __future__ import annotations

import shlex
from collections import defaultdict
from pathlib import Path

from bench.envs import Built, say
from bench.timing import Sample, parse_line, ptime_binary

#: label -> what it is (in the order the script runs them).
STEPS = {
    "tar_xzf": "limit: `tar -xzf payload.tar.gz` into the same place",
    "tar_xzf6": "limit of issue 17: `tar -xzf` of a gzip -6 tarball of the same tree",
    "envsh_default": "portenv default archive `sh env.sh -o DIR` (zstd + its decompressor)",
    "envsh": "portenv `--compression gzip` `sh env.sh -o DIR` (checks + sha256 + extract +"
    " relocate)",
    "envsh_j1": "portenv `sh env.sh -o DIR -j 1` (one stream, as before `payload_cuts`)",
    "import_cold": "first import after `env.sh` (as root, with the shipped .pyc files)",
    "import_warm": "second import (warm)",
    "relocate_moved": "`bin/portenv-relocate` after `mv env moved`",
    "import_moved": "import in the moved env (relocation check)",
    "unpacker": "portenv `sh portenv-unpack env.tar -o DIR`",
    "cp_tar": "conda-pack: `tar -xzf env.tar.gz`",
    "cp_unpack": "conda-pack: `bin/python bin/conda-unpack`",
    "cp_import_cold": "first import after conda-unpack",
    "ph_info": "unpacker phase: `env.sh --info` (archive checks, meta read)",
    "ph_check": "unpacker phase: `env.sh --check` (all checks incl. sha256, no write)",
    "ph_sha256": "unpacker phase: `tail | head | sha256sum` of the payload (alone)",
    "ph_gunzip": "unpacker phase: `gzip -dc payload > /dev/null`",
    "ph_extract": "unpacker phase: extraction in 2 pieces (first piece streamed into"
    " `tar -xvf -`, second decompressed into a file meanwhile) + sha256 beside",
    "ph_extract_1": "unpacker phase: extraction in one stream `tail | head | gzip -dc |"
    " tar -xvf -` + sha256 beside",
    "ph_count": "unpacker phase: the member checks (one `find` with `ls` of the symlinks, `awk`)",
    "ph_relocate": "unpacker phase: `python relocate.py --to DEST` on the fresh payload",
    "bb_tar_xzf6": "glibc + busybox rootfs: busybox `tar -xzf` of the gzip -6 tarball",
    "bb_envsh_default": "glibc + busybox rootfs: busybox `sh env.sh -o DIR`, the default archive",
}

LOOP_HEAD = r"""
set -u
A=/in T=/t R=/res/times.txt
p() { "$A/ptime" "$R" "$@"; }
i=1
while [ "$i" -le {reps} ]; do
    rm -rf "$T/u"; mkdir -p "$T/u/env"
"""
LOOP_TAIL = r"""    i=$((i + 1))
done
echo done >/res/finished
"""

SCRIPT = (
    LOOP_HEAD
    + r"""    p tar_xzf tar -xzf "$A/payload.tar.gz" -C "$T/u/env"
    rm -rf "$T/u"
    rm -rf "$T/u"; mkdir -p "$T/u/env"
    p tar_xzf6 tar -xzf "$A/payload6.tar.gz" -C "$T/u/env"
    rm -rf "$T/u"
    p envsh_default sh "$A/env-default.sh" -o "$T/u" 2>>/res/unpack.log
    rm -rf "$T/u"
    p envsh sh "$A/env.sh" -o "$T/u" 2>>/res/unpack.log
    rm -rf "$T/u"
    p envsh_j1 sh "$A/env.sh" -o "$T/u" -j 1 2>>/res/unpack.log
    p import_cold "$T/u/env/{py}" -c {imports} 2>>/res/import.log
    p import_warm "$T/u/env/{py}" -c {imports} 2>>/res/import.log
    mv "$T/u/env" "$T/u/moved"
    p relocate_moved "$T/u/moved/bin/portenv-relocate" >/dev/null 2>>/res/unpack.log
    p import_moved "$T/u/moved/{py}" -c {imports} 2>>/res/import.log
    rm -rf "$T/u"
    p unpacker sh "$A/portenv-unpack" "$A/env.tar" -o "$T/u" 2>>/res/unpack.log
    rm -rf "$T/u"; mkdir -p "$T/u/env"
    p cp_tar tar -xzf "$A/cp.tar.gz" -C "$T/u/env"
    p cp_unpack "$T/u/env/{py}" "$T/u/env/bin/conda-unpack" 2>>/res/unpack.log
    p cp_import_cold "$T/u/env/{py}" -c {imports} 2>>/res/import.log
    rm -rf "$T/u"
    p ph_info sh "$A/env.sh" --info >/dev/null 2>>/res/unpack.log
    p ph_check sh "$A/env.sh" --check -o "$T/u" 2>>/res/unpack.log
    p ph_sha256 sh -c 'tail -c +{start} "$1" | head -c {size} | sha256sum >/dev/null' - "$A/env.sh"
    p ph_gunzip sh -c 'gzip -dc <"$1" >/dev/null' - "$A/payload.tar.gz"
    mkdir -p "$T/u/tmp"
    p ph_extract sh -c 'tail -c +{start} "$1" | head -c {size} | sha256sum >/dev/null &
        { (tail -c +{start2} "$1" | head -c {size2} | gzip -dc >"$3") &
        tail -c +{start} "$1" | head -c {size1} | gzip -dc; wait; cat "$3"; rm -f "$3"; } |
        tar -xvf - -C "$2" | awk "END { print NR }" >/dev/null; wait' \
        - "$A/env.sh" "$T/u/tmp" "$T/u/piece"
    rm -rf "$T/u/tmp"; mkdir -p "$T/u/tmp"
    p ph_extract_1 sh -c 'tail -c +{start} "$1" | head -c {size} | sha256sum >/dev/null &
        tail -c +{start} "$1" | head -c {size} | gzip -dc | tar -xvf - -C "$2" |
        awk "END { print NR }" >/dev/null; wait' - "$A/env.sh" "$T/u/tmp"
    p ph_count sh -c 'l=$(find "$1" \( -type b -o -type c -o -type p -o -type s -o -perm -4000 \
        -o -perm -2000 -o -perm -1000 -o \( ! -type d -links +1 \) -o -name "* -> *" \) \
        -print -o -type l -exec ls -ldn {} +) || exit 1
        printf "%s\n" "$l" | awk "END { print NR }"' - "$T/u/tmp" >/dev/null
    p ph_relocate "$T/u/tmp/{py}" -I -S -B "$T/u/tmp/.portenv/relocate.py" --to "$T/u/env" \
        --quiet >/dev/null 2>>/res/unpack.log
    rm -rf "$T/u"
"""
    + LOOP_TAIL
)


BUSYBOX_SCRIPT = (
    LOOP_HEAD
    + r"""    p bb_tar_xzf6 tar -xzf "$A/payload6.tar.gz" -C "$T/u/env"
    rm -rf "$T/u"
    p bb_envsh_default sh "$A/env-default.sh" -o "$T/u" 2>>/res/unpack-busybox.log
    rm -rf "$T/u"
"""
    + LOOP_TAIL
)
"""The default archive against busybox's own `tar -xzf` in the glibc + busybox rootfs (no
GNU tools, no zstd): issue 17's second kind of target."""


def half_cut(meta: dict[str, str]) -> int:
    """The payload offset where the unpacker cuts it on 2 cores: of the meta's payload_cuts,
    the one nearest to half of the tar (docs/format.md)."""
    pairs = [tuple(int(n) for n in pair.split(":")) for pair in meta["payload_cuts"].split()]
    tar_size = pairs[-1][1]
    return min(pairs[:-1], key=lambda pair: abs(pair[1] - tar_size / 2))[0]


def script_for(built: Built) -> str:
    start = built.offset + 5120 + 1  # tail -c +N is 1-based
    cut = half_cut(built.meta)
    return (
        SCRIPT.replace("{reps}", str(built.spec.reps_unpack))
        .replace("{start2}", str(start + cut))
        .replace("{size2}", str(int(built.meta["payload_size"]) - cut))
        .replace("{size1}", str(cut))
        .replace("{py}", built.meta["python"])
        .replace("{imports}", shlex.quote(built.spec.imports))
        .replace("{start}", str(start))
        .replace("{size}", built.meta["payload_size"])
    )


def run_script(rootfs: Path, folder: Path, name: str) -> dict[str, list[Sample]]:
    """Run ``folder/name`` in the rootfs (``folder`` at /in, ``folder/res`` at /res, a tmpfs
    at /t); the ``ptime`` samples it appended to /res/times.txt, label -> samples."""
    from tests.support.rootfs import run_in_rootfs

    res = folder / "res"
    result = run_in_rootfs(
        rootfs,
        ["sh", f"/in/{name}"],
        binds=[(folder, "/in"), (res, "/res")],
        tmpfs=[("/t", "12g")],
        timeout=3600,
    )
    if result.returncode != 0 or not (res / "finished").exists():
        msg = f"the rootfs run failed ({result.returncode}): {result.stderr[-2000:]}"
        raise RuntimeError(msg)
    samples: dict[str, list[Sample]] = defaultdict(list)
    for line in (res / "times.txt").read_text().splitlines():
        label, sample = parse_line(line)
        samples[label].append(sample)
    return dict(samples)


def measure_unpacking(
    built: Built, rootfs: Path, busybox: Path | None = None
) -> dict[str, list[Sample]]:
    """Run the script in the rootfs, then the busybox one in `busybox` if given; return
    label -> samples (in run order)."""
    res = built.out / "res"
    res.mkdir(exist_ok=True)
    for old in res.iterdir():
        old.unlink()
    binary = ptime_binary()
    (built.out / "ptime").write_bytes(binary.read_bytes())
    (built.out / "ptime").chmod(0o755)
    script = built.out / "unpack-bench.sh"
    script.write_text(script_for(built))
    say(f"{built.spec.name}: unpack measurements in the rootfs ({built.spec.reps_unpack} reps)")
    samples = run_script(rootfs, built.out, script.name)
    if busybox is not None:
        (res / "finished").unlink()
        script = built.out / "unpack-busybox.sh"
        script.write_text(BUSYBOX_SCRIPT.replace("{reps}", str(built.spec.reps_unpack)))
        say(f"{built.spec.name}: the default archive in the glibc + busybox rootfs")
        samples |= run_script(busybox, built.out, script.name)
    failed = sorted({k for k, v in samples.items() if any(s.code for s in v)})
    if failed:
        say(f"{built.spec.name}: FAILED in the rootfs: {failed}; see {res}/*.log")
    return dict(samples)
