"""Pack side: every packer on the same environment, interleaved, repeated, warm cache."""

from __future__ import annotations

import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from bench.envs import Built, log_path, portenv_argv, say
from bench.timing import Sample, run_timed


@dataclass(frozen=True)
class Packer:
    key: str
    label: str
    output: str
    """File name under the timed-output folder (its size is the archive size)."""


PACKERS = (
    Packer(
        "portenv",
        "portenv `pack -o env.sh` (default: zstd level 10, 2 threads, carries its decompressor)",
        "env.sh",
    ),
    Packer(
        "portenv_stdlib",
        "portenv `--bytecode stdlib` (no .pyc for site-packages: compiled where it runs)",
        "env-stdlib.sh",
    ),
    Packer(
        "portenv_fresh", "portenv `--no-reuse` (stages and seals afresh, default codec)", "fresh.sh"
    ),
    Packer("pixipack", "portenv `pack --format pixi-pack` (pixi-pack's layout)", "pp.tar"),
    Packer("condapack", "conda-pack, defaults (gzip -4, 1 thread)", "cp.tar.gz"),
    Packer("condapack_j", "conda-pack `-j -1` (gzip -4, 2 threads)", "cp-j.tar.gz"),
    Packer("condapack_zst", "conda-pack `.tar.zst -j -1` (zstd -4)", "cp.tar.zst"),
    Packer("uvtar", "`tar -czhf` of a uv venv (gzip -6, 1 thread)", "uv.tar.gz"),
    Packer("startup", "`portenv plan --json` (CLI start-up, imports and plan)", ""),
)


@dataclass
class PackResults:
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)


def _argv(packer: Packer, built: Built, conda_pack: Path, dest: Path) -> list[str]:
    out = str(dest / (packer.output or "none"))
    project, pcache = str(built.project), str(built.pcache)
    pack = [*portenv_argv(), "pack", project, "-o", out, "--use-cache", pcache]
    if packer.key == "portenv":
        return pack
    if packer.key == "portenv_stdlib":
        return [*pack, "--bytecode", "stdlib"]
    if packer.key == "portenv_fresh":
        return [*pack, "--no-reuse"]
    if packer.key == "pixipack":
        return [*pack, "--format", "pixi-pack"]
    if packer.key.startswith("condapack"):
        argv = [str(conda_pack), "-p", str(built.prefix), "-o", out, "--force", "-q"]
        return argv if packer.key == "condapack" else [*argv, "-j", "-1"]
    if packer.key == "startup":
        return [*portenv_argv(), "plan", project, "--json"]
    if packer.key == "uvtar":
        return ["tar", "-czhf", out, "-C", str(built.uv_venv.parent), built.uv_venv.name]
    raise ValueError(packer.key)


def measure_packing(built: Built, conda_pack: Path) -> PackResults:
    """Each rep runs every packer once, in turn, so drift hits all of them alike."""
    dest = built.out / "timed"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir()
    results = PackResults({p.key: [] for p in PACKERS})
    reps = built.spec.reps_pack
    for rep in range(reps):
        for packer in PACKERS:
            if packer.output:
                (dest / packer.output).unlink(missing_ok=True)
            sample = run_timed(_argv(packer, built, conda_pack, dest), log=log_path())
            results.samples[packer.key].append(sample)
            failed = f", EXIT {sample.code}" if sample.code else ""
            say(
                f"{built.spec.name} pack {rep + 1}/{reps} {packer.key}: {sample.wall:.2f} s,"
                f" {sample.rss_kib / 1024:.0f} MiB{failed}"
            )
            if packer.output and (dest / packer.output).exists():
                results.sizes[packer.key] = (dest / packer.output).stat().st_size
    shutil.copyfile(dest / "cp.tar.gz", built.out / "cp.tar.gz")
    with tarfile.open(dest / "pp.tar") as pixi_pack:
        results.sizes["pixipack_conda"] = sum(
            m.size for m in pixi_pack.getmembers() if m.name.endswith(".conda")
        )
    results.sizes["tar_gz6"] = (built.out / "payload6.tar.gz").stat().st_size
    for name in ("env.sh", "fresh.sh"):
        if (dest / name).read_bytes() != (built.out / "env-default.sh").read_bytes():
            say(f"{built.spec.name}: WARNING: the timed {name} differs from the instrumented one")
    return results
