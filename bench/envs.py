"""Build the benchmark environments and every archive the measurements need.

All of it is cached under ``cache_root()``: the python 3.11 channel (the test suite's
channel builder, fed another CPython), the pixi projects (locked once, then reused so every
run packs the same versions), portenv's package cache, and per run the archives.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.config import REPO, EnvSpec, cache_root
from bench.timing import run_timed


@dataclass
class Built:
    """What one environment gives the measurements (paths on the build host)."""

    spec: EnvSpec
    project: Path
    pcache: Path
    out: Path
    """Folder with env.sh, env.tar, portenv-unpack, payload.tar.gz (bound into the rootfs)."""
    prefix: Path
    """The sealed staged prefix, relocated onto itself: a conda env conda-pack can pack."""
    uv_venv: Path
    meta: dict[str, str]
    offset: int
    """Where env.tar starts inside env.sh."""
    phases: dict[str, object]
    largest_file: tuple[str, int]
    versions: list[str]
    uv_install_seconds: float
    manifest_files: int
    """Files the relocation manifest lists (what relocation rewrites)."""


def log_path() -> Path:
    return cache_root() / "bench.log"


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def portenv_argv() -> list[str]:
    script = Path(sys.executable).parent / "portenv"
    return [str(script)] if script.exists() else [sys.executable, "-m", "portenv"]


def channel_for(minor: str) -> Path:
    """The local conda channel whose python is CPython ``minor`` (built once, cached)."""
    from tests.support import channel, pyrelocate

    if minor == "3.12":
        return channel.build_local_channel()  # the test suite's own, shared cache
    base = pyrelocate.find_base_python(minor)
    key = channel.channel_key(base)
    final = cache_root() / f"channel-py{minor}-{key[:16]}"
    if (final / channel.MANIFEST).is_file():
        return final
    say(f"building a local channel with python {base.version} (once, ~30 s)")
    with tempfile.TemporaryDirectory(dir=cache_root(), prefix=".building-") as tmp:
        built = channel._build_into(Path(tmp), base, key)
        os.rename(built, final)
    return final


def project_for(spec: EnvSpec) -> Path:
    """The pixi project of ``spec``, locked once (the lock pins what every run packs)."""
    from tests.support.pypilock import write_pypi_project

    chan = channel_for(spec.python)
    ident = json.dumps(
        [str(chan), spec.python, spec.pypi, [p.name for p in spec.local_wheels], 1]
    ).encode()
    project = cache_root() / "projects" / f"{spec.name}-{hashlib.sha256(ident).hexdigest()[:12]}"
    if (project / "pixi.lock").is_file():
        return project
    say(f"{spec.name}: locking python {spec.python} + {', '.join(spec.pypi)}")
    tmp = project.with_name(project.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    write_pypi_project(
        tmp,
        chan,
        [f"python {spec.python}.*"],
        list(spec.pypi),
        local_wheels=list(spec.local_wheels),
    )
    os.rename(tmp, project)
    return project


def pack_quietly(project: Path, output: Path, *extra: str) -> None:
    """`portenv pack PROJECT -o OUTPUT` from the suite's package cache, its output to the log."""
    pcache = cache_root() / "pcache"
    argv = [*portenv_argv(), "pack", str(project), "-o", str(output), "--use-cache", str(pcache)]
    with log_path().open("ab") as log:
        subprocess.run([*argv, *extra], stdout=log, stderr=log, check=True)


def read_meta(env_tar: Path) -> dict[str, str]:
    with env_tar.open("rb") as f:
        f.seek(512)
        block = f.read(4096).decode("ascii").strip("\n\0")
    return dict(line.split("=", 1) for line in block.splitlines() if "=" in line)


def embedded_offset(env_sh: Path) -> int:
    with env_sh.open("rb") as f:
        head = f.read(65536)
    for line in head.split(b"\n"):
        if line.startswith(b"PORTENV_EMBEDDED_OFFSET="):
            return int(line.split(b"=", 1)[1])
    msg = f"{env_sh} has no PORTENV_EMBEDDED_OFFSET line"
    raise RuntimeError(msg)


def cut_env_tar(env_sh: Path, env_tar: Path, offset: int) -> None:
    """env.sh is the unpacker padded to ``offset`` + env.tar unchanged (docs/format.md)."""
    with env_sh.open("rb") as src, env_tar.open("wb") as dst:
        src.seek(offset)
        shutil.copyfileobj(src, dst, 1 << 20)
    with tarfile.open(env_tar) as archive:
        names = archive.getnames()
    zstd = ["portenv/payload.tar.zst", "portenv/unzstd.gz", "portenv/LICENSE-zstd"]
    if names not in (["portenv/meta", "portenv/payload.tar.gz"], ["portenv/meta", *zstd]):
        msg = f"{env_tar} cut from {env_sh} holds {names}"
        raise RuntimeError(msg)


def gzip6_of(payload: Path, dest: Path) -> None:
    """`gzip -6` of the payload's tar: the plain tarball of the same tree that issue 17's
    unpack target compares the default archive with."""
    with payload.open("rb") as src, dest.open("wb") as dst:
        tar = subprocess.Popen(["gzip", "-dc"], stdin=src, stdout=subprocess.PIPE)
        assert tar.stdout is not None
        gz = subprocess.run(["gzip", "-6", "-n"], stdin=tar.stdout, stdout=dst, check=False)
        tar.stdout.close()
        if tar.wait() != 0 or gz.returncode != 0:
            msg = f"cannot recompress {payload} with gzip -6"
            raise RuntimeError(msg)


def extract_payload(env_tar: Path, payload: Path, size: int) -> None:
    with env_tar.open("rb") as src, payload.open("wb") as dst:
        src.seek(5120)
        left = size
        while left:
            chunk = src.read(min(left, 1 << 20))
            dst.write(chunk)
            left -= len(chunk)


def make_conda_env(prefix: Path, meta: dict[str, str], rattler_cache: Path) -> None:
    """Turn the kept sealed prefix into an ordinary conda env at its own path.

    conda-pack reads conda-meta's ``link.source`` (the extracted package in the package
    cache; portenv scrubs it from what it ships) and takes conda files from there, with
    their build-time placeholder; everything else (the wheels) it takes from the prefix
    and looks for the prefix's own path in it. So: relocate the prefix onto itself with
    portenv's engine (placeholder -> real path), and point ``link.source`` back at
    portenv's rattler cache.
    """
    python = prefix / meta["python"]
    subprocess.run(
        [str(python), "-E", "-s", "-B", str(prefix / ".portenv/relocate.py"), "--to", str(prefix)],
        check=True,
        capture_output=True,
    )
    for record in (prefix / "conda-meta").glob("*.json"):
        data = json.loads(record.read_text())
        source = rattler_cache / record.name.removesuffix(".json")
        if not (source / "info").is_dir():
            msg = f"no extracted package {source} for {record.name}"
            raise RuntimeError(msg)
        link = data.get("link") if isinstance(data.get("link"), dict) else {}
        link["source"] = str(source)
        link.setdefault("type", 1)
        data["link"] = link
        data["extracted_package_dir"] = str(source)
        record.write_text(json.dumps(data, indent=1))


def wheels_of(project: Path, pcache: Path) -> tuple[list[Path], list[str]]:
    """The exact wheel files portenv installed (from its verified cache), and name==version."""
    from portenv.pack import PlanRequest, plan

    the_plan = plan(PlanRequest(project))
    files, versions = [], []
    for package in the_plan.pypi:
        hits = sorted((pcache / "pypi" / str(package.sha256)).glob("*.whl"))
        if not hits:
            msg = f"{package.name}: no cached wheel under {pcache / 'pypi' / str(package.sha256)}"
            raise RuntimeError(msg)
        files.append(hits[0])
        versions.append(f"{package.name}=={package.version}")
    conda = [f"{p.name}=={p.version} (conda, local channel)" for p in the_plan.conda]
    return files, conda + sorted(versions)


def make_uv_venv(spec: EnvSpec, wheels: list[Path], where: Path) -> float:
    """The seed's alternative: a uv venv with the same wheel files; returns the install time."""
    from tests.support import pyrelocate

    base = pyrelocate.find_base_python(spec.python)
    uv = Path(sys.executable).parent / "uv"
    env = dict(os.environ, UV_CACHE_DIR=str(cache_root() / "uv-cache"), UV_NO_CONFIG="1")
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    venv = where / "venv"
    python = base.prefix / "bin" / f"python{spec.python}"
    subprocess.run([str(uv), "venv", "-q", "--python", str(python), str(venv)], check=True, env=env)
    sample = run_timed(
        [
            str(uv),
            "pip",
            "install",
            "-q",
            "--offline",
            "--no-deps",
            "--python",
            str(venv / "bin" / "python"),
            *map(str, wheels),
        ],
        env=env,
        log=log_path(),
    )
    if sample.code != 0:
        msg = f"uv pip install failed for {spec.name} (see {log_path()})"
        raise RuntimeError(msg)
    return sample.wall


def largest_file(root: Path) -> tuple[str, int]:
    best = ("", 0)
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath, name)
            if not path.is_symlink():
                size = path.stat().st_size
                if size > best[1]:
                    best = (str(path.relative_to(root)), size)
    return best


def build(spec: EnvSpec) -> Built:
    """Everything the measurements of ``spec`` need, made fresh from the warm cache."""
    project = project_for(spec)
    pcache = cache_root() / "pcache"
    out = cache_root() / "run" / spec.name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    marker = project / ".bench-cache-warm"
    if not marker.exists():
        say(f"{spec.name}: first pack fills the package cache (downloads, not timed)")
        sample = run_timed(
            [
                *portenv_argv(),
                "pack",
                str(project),
                "-o",
                str(out / "env.sh"),
                "--use-cache",
                str(pcache),
            ],
            log=log_path(),
        )
        if sample.code != 0:
            msg = f"portenv pack failed for {spec.name} (see {log_path()})"
            raise RuntimeError(msg)
        marker.write_text("")
    prefix = out / "prefix"
    phases: dict[str, object] = {}
    for mode in ("fresh", "reuse"):
        if mode == "reuse":
            say(f"{spec.name}: a pack that keeps the sealed prefix in the cache (not timed)")
            warm = [*portenv_argv(), "pack", str(project), "-o", str(out / "warm.sh")]
            if run_timed([*warm, "--use-cache", str(pcache)], log=log_path()).code != 0:
                msg = f"portenv pack failed for {spec.name} (see {log_path()})"
                raise RuntimeError(msg)
        say(f"{spec.name}: instrumented pack, {mode}")
        phases_json = out / f"phases-{mode}.json"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.instrumented",
                str(project),
                str(out / "env.sh"),
                str(pcache),
                str(prefix),
                str(phases_json),
                mode,
            ],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=log_path().open("ab"),
            check=False,
        )
        if done.returncode != 0:
            msg = f"instrumented pack failed for {spec.name} (see {log_path()})"
            raise RuntimeError(msg)
        phases[mode] = json.loads(phases_json.read_text())
    offset = embedded_offset(out / "env.sh")
    cut_env_tar(out / "env.sh", out / "env.tar", offset)
    meta = read_meta(out / "env.tar")
    extract_payload(out / "env.tar", out / "payload.tar.gz", int(meta["payload_size"]))
    gzip6_of(out / "payload.tar.gz", out / "payload6.tar.gz")
    say(f"{spec.name}: the default archive (zstd + its decompressor)")
    default_sh, cache = str(out / "env-default.sh"), str(pcache)
    default = run_timed(
        [*portenv_argv(), "pack", str(project), "-o", default_sh, "--use-cache", cache]
    )
    if default.code != 0:
        msg = f"portenv pack (default codec) failed for {spec.name}"
        raise RuntimeError(msg)
    unpacker = run_timed([*portenv_argv(), "unpacker", "-o", str(out / "portenv-unpack")])
    if unpacker.code != 0:
        msg = "portenv unpacker failed"
        raise RuntimeError(msg)
    biggest = largest_file(prefix)
    manifest = json.loads((prefix / ".portenv" / "manifest.json").read_text())
    make_conda_env(prefix, meta, pcache / "rattler")
    wheels, versions = wheels_of(project, pcache)
    say(f"{spec.name}: uv venv with the same {len(wheels)} wheels")
    uv_seconds = make_uv_venv(spec, wheels, out / "uv")
    return Built(
        spec,
        project,
        pcache,
        out,
        prefix,
        out / "uv" / "venv",
        meta,
        offset,
        phases,
        biggest,
        versions,
        uv_seconds,
        len(manifest["files"]),
    )
