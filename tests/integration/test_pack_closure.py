"""Packing a wheel whose extension needs a library: bundled, refused, or left to the target.

The wheel is built here: its extension module is linked against a throwaway library that is
then deleted (or that never existed for the target's machine), so no machine has it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Archives, portenv
from tests.e2e.test_closure_pypi import assert_no_absolute_search_path
from tests.integration.test_pack import meta_of, payload_of
from tests.support.crosschannel import cross_python_spec
from tests.support.pypilock import make_wheel, write_pypi_project

MODULE = "gone/_ext.so"


def build_extension(folder: Path, soname: str, compiler: str = "gcc") -> bytes:
    """An extension module linked against ``soname``, which is deleted again."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dep.c").write_text("int dep(void) { return 1; }\n")
    (folder / "ext.c").write_text("int dep(void); int entry(void) { return dep(); }\n")
    lib = folder / soname
    shared: list[str | Path] = [compiler, "-shared", "-fPIC"]
    subprocess.run([*shared, f"-Wl,-soname,{soname}", "-o", lib, folder / "dep.c"], check=True)
    ext = folder / "_ext.so"
    argv: list[str | Path] = [*shared, "-o", ext, folder / "ext.c", f"-L{folder}", f"-l:{soname}"]
    subprocess.run(argv, check=True)
    lib.unlink()
    return ext.read_bytes()


def project_with_extension(
    tmp_path: Path, channel: Path, python: str, tag: str, data: bytes, platform: str = "linux-64"
) -> Path:
    wheel = make_wheel(
        tmp_path / "wheels", "gone", "1.0", tag=tag,
        files={"gone/__init__.py": "", MODULE: data},
    )  # fmt: skip
    return write_pypi_project(
        tmp_path / "project", channel, [python], [], local_wheels=[wheel], platform=platform
    )


@pytest.fixture(scope="module")
def missing_project(local_channel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("missing")
    data = build_extension(folder / "build", "libportenvgone.so.1")
    return project_with_extension(
        folder, local_channel, "python 3.12.*", "cp312-cp312-linux_x86_64", data
    )


def test_a_library_no_machine_has_is_refused_naming_it(
    missing_project: Path, package_cache: Path, tmp_path: Path
) -> None:
    out = tmp_path / "env.sh"
    done = portenv("pack", missing_project, "-o", out, "--use-cache", package_cache, check=False)
    assert done.returncode == 1, done.stderr
    error, hint = done.stderr.strip().splitlines()[-2:]
    assert error.startswith("error: ") and "libportenvgone.so.1" in error
    assert f"lib/python3.12/site-packages/{MODULE}" in error
    assert hint.startswith("  hint: ") and "--allow-missing-library libportenvgone.so.1" in hint
    assert "Traceback" not in done.stderr
    assert not out.exists() and not out.with_name("env.sh.sha256").exists()


def test_allow_missing_library_leaves_it_to_the_target(
    missing_project: Path, package_cache: Path, tmp_path: Path
) -> None:
    out = tmp_path / "env.tar"
    argv: list[str | Path] = ["pack", missing_project, "-o", out, "--use-cache", package_cache]
    done = portenv(*argv, "--allow-missing-library", "libportenvgone.so.1")
    assert "libportenvgone.so.1 is left to the target" in done.stderr
    member = payload_of(out).extractfile(".portenv/bundled.json")
    assert member is not None
    record = json.loads(member.read())
    assert record["left_to_target"] == [
        {
            "name": "libportenvgone.so.1",
            "needed_by": [f"lib/python3.12/site-packages/{MODULE}"],
            "reason": "allowed",
        }
    ]


def test_no_elf_file_of_a_packed_env_has_an_absolute_search_path(
    core_archives: Archives, tmp_path: Path
) -> None:
    payload_of(core_archives.tar).extractall(tmp_path / "env", filter="data")
    assert_no_absolute_search_path(tmp_path / "env")


def test_meta_names_the_files_that_set_the_glibc_floor(core_archives: Archives) -> None:
    meta = meta_of(core_archives.tar)
    pairs = [item.split(":", 1) for item in meta["glibc_floor_files"].split()]
    assert pairs and pairs[0][0] == meta["glibc_floor"]
    names = set(payload_of(core_archives.tar).getnames())
    assert all(path in names for _version, path in pairs)


@pytest.mark.parametrize(
    ("ceiling", "named"),
    [
        pytest.param("2.17", "the lock's __glibc (GLIBC_2.28)", id="lock-before-staging"),
        pytest.param("2.28", "bin/python3.12 (GLIBC_2.", id="elf-files-after-staging"),
    ],
)
def test_glibc_ceiling_refuses_naming_what_is_above_it(
    core_project: Path, package_cache: Path, tmp_path: Path, ceiling: str, named: str
) -> None:
    """The test lock is solved for __glibc 2.28; the test python needs this machine's glibc."""
    out = tmp_path / "env.sh"
    argv: list[str | Path] = ["pack", core_project, "-o", out, "--use-cache", package_cache]
    argv += ["--glibc", ceiling]
    done = portenv(*argv, check=False)
    assert done.returncode == 1, done.stderr
    error = done.stderr.strip().splitlines()[-2]
    assert f"above --glibc {ceiling}: " in error and named in error
    assert not out.exists()


def test_cross_pack_takes_no_library_from_this_machine(
    cross_channel: Path, package_cache: Path, tmp_path: Path
) -> None:
    """An aarch64 extension needing libpq.so.5: this x86_64 machine has one, the env does not."""
    data = build_extension(tmp_path / "build", "libpq.so.5", "aarch64-linux-gnu-gcc")
    tag = "cp311-cp311-linux_aarch64"
    project = project_with_extension(
        tmp_path, cross_channel, cross_python_spec(), tag, data, platform="linux-aarch64"
    )
    out = tmp_path / "env.sh"
    argv: list[str | Path] = ["pack", project, "-p", "linux-aarch64", "-o", out]
    argv += ["--use-cache", package_cache]
    done = portenv(*argv, check=False)
    assert done.returncode == 1, done.stderr
    error, hint = done.stderr.strip().splitlines()[-2:]
    assert "libpq.so.5" in error and "another machine" in hint
    assert not out.exists()


def test_info_shows_the_files_that_set_the_floor(core_archives: Archives) -> None:
    """Both the sh unpacker's --info and `portenv unpack --info` print the meta key."""
    meta = meta_of(core_archives.tar)
    expected = f"glibc_floor_files={meta['glibc_floor_files']}"
    shell = subprocess.run(
        ["sh", str(core_archives.self_extracting), "--info"], capture_output=True, text=True
    )
    assert shell.returncode == 0 and expected in shell.stdout.splitlines()
    python = portenv("unpack", "--info", core_archives.tar)
    assert expected in python.stdout.splitlines()


def test_a_changed_bundled_library_is_bundled_again(
    local_channel: Path, package_cache: Path, tmp_path: Path
) -> None:
    """A sealed prefix holds copies of this machine's libraries: the cache checks them before
    reuse (size and mtime in its record), so an upgraded library is bundled afresh."""
    build = tmp_path / "build"
    build.mkdir()
    (build / "ext.c").write_text("int entry(void) { return 1; }\n")
    ext = build / "_ext.so"
    argv: list[str | Path] = ["gcc", "-shared", "-fPIC", "-o", ext, build / "ext.c"]
    subprocess.run([*argv, "-Wl,--no-as-needed", "-l:libstdc++.so.6"], check=True)
    project = project_with_extension(
        tmp_path, local_channel, "python 3.12.*", "cp312-cp312-linux_x86_64", ext.read_bytes()
    )
    cache = tmp_path / "cache"
    cold = portenv("pack", project, "-o", tmp_path / "cold.tar", "--use-cache", cache).stderr
    assert "libstdc++.so.6" in cold, "bundled from this machine"
    member = payload_of(tmp_path / "cold.tar").extractfile(".portenv/bundled.json")
    assert member is not None
    sources = {entry["source"] for entry in json.load(member)["bundled"]}
    (entry,) = [p for p in (cache / "sealed").iterdir() if not p.name.startswith(".")]
    record = json.loads((entry / "record.json").read_text())
    assert sources <= {str(source[0]) for source in record["sources"]}
    warm = portenv("pack", project, "-o", tmp_path / "warm.tar", "--use-cache", cache).stderr
    assert "reusing the sealed environment" in warm
    for source in record["sources"]:
        source[2] -= 1  # as if each library had been replaced by an upgrade
    (entry / "record.json").write_text(json.dumps(record))
    again = portenv("pack", project, "-o", tmp_path / "again.tar", "--use-cache", cache).stderr
    assert "reusing the sealed environment" not in again
