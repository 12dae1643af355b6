"""pixi-pack interoperability, reading side: unpack a pixi-pack here, convert it for a bare target.

The core project (python 3.12 + greet, a C program with a compiled-in prefix + libbar/libfoo +
hello-py, a noarch entry point) is packed with ``--format pixi-pack``, then unpacked on this
machine and run, and converted to ``env.sh`` that is unpacked inside the busybox rootfs with
no network and run there. The refusals leave the output folder as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from portenv.convert import ConvertRequest, convert
from portenv.errors import (
    CompatibilityError,
    HashMismatchError,
    InputError,
    OutputError,
    OutputExistsError,
    StageError,
)
from portenv.unpack import UnpackRequest, unpack
from tests.conftest import portenv
from tests.support.pypilock import make_wheel, write_pypi_project
from tests.support.rootfs import run_in_rootfs

PY = ["python 3.12.*"]
RUN_CORE = """\
set -e
E="$1"
"$E/bin/python3.12" -c 'import sys, ssl, sqlite3, ctypes; print("python ok", sys.prefix)'
"$E/bin/greet"
"$E/bin/hello-py"
"$E/bin/barcli"
"""


def pack_pixi_pack(project: Path, cache: Path, out: Path) -> Path:
    portenv("pack", project, "--format", "pixi-pack", "-o", out, "--use-cache", cache)
    return out


@pytest.fixture(scope="module")
def core_pixi_pack(
    core_project: Path, package_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The core project as pixi-pack's environment.tar."""
    return pack_pixi_pack(
        core_project, package_cache, tmp_path_factory.mktemp("pixipack") / "environment.tar"
    )


def extracted(archive: Path, folder: Path) -> Path:
    """The pixi-pack tar extracted to a folder (what `tar -xf` gives a user)."""
    folder.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    return folder


def run_core(env: Path) -> str:
    done = subprocess.run(
        ["sh", "-c", RUN_CORE, "sh", str(env)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_unpack_pixi_pack_here_and_run(core_pixi_pack: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = unpack(UnpackRequest(core_pixi_pack, out))
    env = out / "env"
    assert (result.kind, result.path, result.activate) == ("pixi-pack", env, out / "activate.sh")
    assert sorted(os.listdir(out)) == ["activate.sh", "env"], "no lock or work folder is left"
    stdout = run_core(env)
    assert f"python ok {env}" in stdout
    assert "hello from greet" in stdout, "the compiled-in prefix names the destination"
    assert f"hello-py {env}" in stdout and "bar=43" in stdout
    assert (out / "activate.sh").read_text().splitlines()[:3] == [
        f'export PATH="{env}/bin:${{PATH}}"',
        "export CONDA_SHLVL=1",
        f"export CONDA_PREFIX={env}",
    ]
    sourced = subprocess.run(
        ["sh", "-c", f". {out}/activate.sh && greet && command -v python3.12"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert sourced.stdout.splitlines() == ["hello from greet", f"{env}/bin/python3.12"]
    assert (env / "conda-meta" / "history").is_file()
    assert not (env / "CACHEDIR.TAG").exists()


def test_unpack_an_extracted_folder_with_a_name(core_pixi_pack: Path, tmp_path: Path) -> None:
    folder = extracted(core_pixi_pack, tmp_path / "pack")
    before = sorted(p.name for p in folder.rglob("*"))
    result = unpack(UnpackRequest(folder, tmp_path / "o", env_name="tools"))
    assert result.path == tmp_path / "o" / "tools"
    assert f"python ok {result.path}" in run_core(result.path)
    assert sorted(p.name for p in folder.rglob("*")) == before, "the folder is only read"


def test_existing_destination_needs_force(core_pixi_pack: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    unpack(UnpackRequest(core_pixi_pack, out))
    (out / "env" / "mark").write_text("old")
    with pytest.raises(OutputExistsError, match="already exists") as info:
        unpack(UnpackRequest(core_pixi_pack, out))
    assert info.value.hint is not None and "--force" in info.value.hint
    assert (out / "env" / "mark").exists()
    unpack(UnpackRequest(core_pixi_pack, out, force=True))
    assert not (out / "env" / "mark").exists()
    assert sorted(os.listdir(out)) == ["activate.sh", "env"]
    (out / "env").rename(out / "moved")
    with pytest.raises(OutputExistsError, match=r"activate\.sh already exists"):
        unpack(UnpackRequest(core_pixi_pack, out))


def test_tampered_package_is_refused_before_writing(core_pixi_pack: Path, tmp_path: Path) -> None:
    folder = extracted(core_pixi_pack, tmp_path / "pack")
    [greet] = (folder / "channel" / "linux-64").glob("greet-*.conda")
    data = bytearray(greet.read_bytes())
    data[len(data) // 2] ^= 0xFF
    greet.write_bytes(bytes(data))
    with pytest.raises(HashMismatchError, match="hash mismatch for greet: expected sha256:"):
        unpack(UnpackRequest(folder, tmp_path / "out" / "deeper"))
    assert not (tmp_path / "out").exists()
    with pytest.raises(HashMismatchError):
        convert(ConvertRequest(folder, tmp_path / "env.sh", cache=tmp_path / "cache"))
    assert not (tmp_path / "env.sh").exists()
    assert not list((tmp_path / "cache" / "staging").iterdir())


def test_wrong_platform_is_refused(core_pixi_pack: Path, tmp_path: Path) -> None:
    folder = extracted(core_pixi_pack, tmp_path / "pack")
    meta = json.loads((folder / "pixi-pack.json").read_text())
    (folder / "pixi-pack.json").write_text(json.dumps({**meta, "platform": "linux-aarch64"}))
    with pytest.raises(CompatibilityError, match="is for linux-aarch64, this machine is linux-64"):
        unpack(UnpackRequest(folder, tmp_path / "out"))
    unchecked = UnpackRequest(folder, tmp_path / "out", platform_check=False)
    with pytest.raises(InputError, match="channel/linux-64 is for another platform"):
        unpack(unchecked)
    assert not (tmp_path / "out").exists()
    meta["version"] = "2"
    (folder / "pixi-pack.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="pixi-pack format '2'"):
        unpack(UnpackRequest(folder, tmp_path / "out"))


def test_wheels_are_installed_with_the_final_python(
    local_channel: Path, package_cache: Path, tmp_path: Path
) -> None:
    wheel = make_wheel(
        tmp_path / "wheels",
        "tool",
        "1.0",
        files={"tool/__init__.py": "import sys\ndef main():\n    print('tool', sys.prefix)\n"},
        console_scripts={"tool": "tool:main"},
    )
    project = write_pypi_project(tmp_path / "p", local_channel, PY, [], local_wheels=[wheel])
    archive = pack_pixi_pack(project, package_cache, tmp_path / "environment.tar")
    result = unpack(UnpackRequest(archive, tmp_path / "out"))
    env = result.path
    script = env / "bin" / "tool"
    assert script.read_text().startswith(f"#!{env}/bin/python3.12\n")
    done = subprocess.run([str(script)], capture_output=True, text=True, check=True)
    assert done.stdout == f"tool {env}\n"
    [info] = (env / "lib" / "python3.12" / "site-packages").glob("tool-1.0.dist-info")
    assert (info / "INSTALLER").read_text() == "portenv\n"
    assert not (info / "direct_url.json").exists(), "installed like pip --find-links ./pypi"
    converted = convert(ConvertRequest(archive, tmp_path / "env.tar", cache=package_cache))
    unpacked = unpack(UnpackRequest(converted.path, tmp_path / "from-convert"))
    done = subprocess.run(
        [str(unpacked.path / "bin" / "tool")], capture_output=True, text=True, check=True
    )
    assert done.stdout == f"tool {unpacked.path}\n"
    inventory = json.loads((unpacked.path / ".portenv" / "packages.json").read_text())
    pypi = [e for e in inventory if e["kind"] == "pypi"]
    [record] = (unpacked.path / "lib" / "python3.12" / "site-packages").glob("tool-*/RECORD")
    assert pypi[0].pop("installed_files") == len(record.read_text().splitlines())
    assert pypi[0].pop("installed_size") > 0
    assert pypi == [
        {
            "built_from_source": False,
            "from": "pixi-pack",
            "kind": "pypi",
            "license": None,
            "name": "tool",
            "sha256": wheel_sha(archive),
            "sha256_from": "computed",
            "source": "file",
            "url": "pypi/tool-1.0-py3-none-any.whl",
            "version": "1.0",
        }
    ]


def test_failure_after_installing_leaves_nothing(
    local_channel: Path, package_cache: Path, tmp_path: Path
) -> None:
    """A wheel whose RECORD does not match its content fails after rattler installed."""
    wheel = make_wheel(tmp_path / "wheels", "tool", "1.0", files={"tool/__init__.py": "X = 1\n"})
    project = write_pypi_project(tmp_path / "p", local_channel, PY, [], local_wheels=[wheel])
    archive = pack_pixi_pack(project, package_cache, tmp_path / "environment.tar")
    folder = extracted(archive, tmp_path / "pack")
    packed = folder / "pypi" / wheel.name
    with zipfile.ZipFile(packed) as source:
        members = {name: source.read(name) for name in source.namelist()}
    members["tool/__init__.py"] = b"X = 2\n"
    with zipfile.ZipFile(packed, "w") as target:
        for name, data in members.items():
            target.writestr(name, data)
    with pytest.raises(StageError, match="cannot install the wheel of tool"):
        unpack(UnpackRequest(folder, tmp_path / "out" / "deeper"))
    assert not (tmp_path / "out").exists()


def wheel_sha(archive: Path) -> str:
    with tarfile.open(archive) as tar:
        stream = tar.extractfile("pypi/tool-1.0-py3-none-any.whl")
        assert stream is not None
        return hashlib.sha256(stream.read()).hexdigest()


def test_convert_refuses_an_unknown_output(core_pixi_pack: Path, tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="unknown output type"):
        convert(ConvertRequest(core_pixi_pack, tmp_path / "env.zip"))
    with pytest.raises(InputError, match=r"cannot read .*missing\.tar"):
        convert(ConvertRequest(tmp_path / "missing.tar", tmp_path / "env.sh"))


@pytest.mark.e2e
def test_convert_then_unpack_in_a_bare_rootfs(
    core_pixi_pack: Path, package_cache: Path, busybox_root: Path, tmp_path: Path
) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    written = convert(ConvertRequest(core_pixi_pack, dist / "env.sh", cache=package_cache))
    assert written.meta is not None and written.meta.python == "bin/python3.12"
    (dist / "run.sh").write_text(RUN_CORE)
    result = run_in_rootfs(
        busybox_root,
        ["/bin/sh", "-c", "sh /dist/env.sh -o /opt/envs && sh /dist/run.sh /opt/envs/env"],
        binds=[(dist, "/dist")],
    )
    assert result.returncode == 0, result.stderr
    assert "python ok /opt/envs/env" in result.stdout
    assert "hello from greet" in result.stdout
    assert "hello-py /opt/envs/env" in result.stdout and "bar=43" in result.stdout
    here = unpack(UnpackRequest(dist / "env.sh", tmp_path / "here"))
    inventory = json.loads((here.path / ".portenv" / "packages.json").read_text())
    assert {e["name"] for e in inventory} == {"greet", "hello-py", "libbar", "libfoo", "python"}
    assert all(e["from"] == "pixi-pack" for e in inventory)
    assert "hello from greet" in run_core(here.path)


@pytest.mark.e2e
def test_converted_one_file_app_runs_in_a_bare_rootfs(
    core_pixi_pack: Path, package_cache: Path, busybox_root: Path, tmp_path: Path
) -> None:
    """`convert --entry`: the pixi-pack's console script runs from the per-user cache."""
    dist = tmp_path / "dist"
    dist.mkdir()
    portenv(
        "convert",
        core_pixi_pack,
        "-o",
        dist / "tool.sh",
        "--entry",
        "hello-py",
        "--use-cache",
        package_cache,
    )
    result = run_in_rootfs(
        busybox_root,
        ["/bin/sh", "-c", "export HOME=/home/u; mkdir -p $HOME; /dist/tool.sh && /dist/tool.sh"],
        binds=[(dist, "/dist")],
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and lines[0] == lines[1]
    assert lines[0].startswith("hello-py /home/u/.cache/portenv/")


def _cli_has(command: str) -> bool:
    return portenv(command, "--help", check=False).returncode == 0


@pytest.mark.skipif(not _cli_has("unpack"), reason="portenv unpack is not wired into the CLI yet")
def test_cli_unpack_and_convert(core_pixi_pack: Path, tmp_path: Path) -> None:
    done = portenv("unpack", core_pixi_pack, "-o", tmp_path / "out")
    assert "hello from greet" in run_core(tmp_path / "out" / "env"), done.stderr
    portenv("convert", core_pixi_pack, "-o", tmp_path / "env.tar")
    portenv("unpack", tmp_path / "env.tar", "-o", tmp_path / "again")
    assert "bar=43" in run_core(tmp_path / "again" / "env")
    refused = portenv("unpack", core_pixi_pack, "-o", tmp_path / "out", check=False)
    assert refused.returncode != 0
    assert refused.stderr.startswith(f"error: {tmp_path / 'out' / 'env'} already exists")
    shutil.rmtree(tmp_path / "out")


def test_cli_unpack_compile_of_a_pixi_pack(core_pixi_pack: Path, tmp_path: Path) -> None:
    """`portenv unpack --compile` of a pixi-pack (no relocation manifest): the env's python
    compiles the noarch package rattler installed without bytecode."""
    portenv("unpack", core_pixi_pack, "-o", tmp_path / "plain")
    portenv("unpack", core_pixi_pack, "-o", tmp_path / "compiled", "--compile")
    found = {}
    for where in ("plain", "compiled"):
        site = tmp_path / where / "env/lib/python3.12/site-packages/hello_py"
        found[where] = sorted(p.name for p in site.glob("__pycache__/*.pyc"))
    assert found["plain"] == []
    assert found["compiled"] == ["__init__.cpython-312.pyc"]
    source = tmp_path / "compiled/env/lib/python3.12/site-packages/hello_py/__init__.py"
    head = (source.parent / "__pycache__" / found["compiled"][0]).read_bytes()[:16]
    assert head[4:8] == (0b11).to_bytes(4, "little")
    assert "hello-py" in run_core(tmp_path / "compiled" / "env")
