"""`portenv inspect` on what portenv and pixi-pack really write, through the command line.

Every input kind (a pixi project's env.sh and env.tar, a `--python` pack, a pixi-pack tar and
folder, the environments unpacked from them) and every output (text, `--json` against
docs/inspect.schema.json, `--html`, `--sbom` against CycloneDX 1.6), each checked against what
the archive itself records: `.portenv/packages.json`, the meta block, the pixi-pack's records.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.conftest import Archives, portenv
from tests.integration.test_pack import meta_of, payload_of
from tests.integration.test_pack_pypi import packages_json
from tests.integration.test_pack_user_code import python
from tests.integration.test_unpack_convert import core_pixi_pack, extracted
from tests.support.pypilock import make_wheel
from tests.support.sbom import by_name, read_sbom, sha256_of_file

__all__ = ["core_pixi_pack", "inspect_json", "python"]  # two fixtures shared with other tests

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs/inspect.schema.json").read_text())
CORE = {"python", "greet", "libbar", "libfoo", "hello-py"}
EPOCH = {"SOURCE_DATE_EPOCH": "1700000000"}


def inspect_json(path: Path, *args: str | Path) -> dict[str, Any]:
    """`portenv inspect PATH --json ARGS`, checked against the documented schema."""
    done = portenv("inspect", path, "--json", *args)
    report: dict[str, Any] = json.loads(done.stdout)
    jsonschema.validate(report, SCHEMA)
    return report


def run(*args: str | Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "portenv", *map(str, args)]
    environ = {**os.environ, **env}
    return subprocess.run(argv, capture_output=True, text=True, check=False, env=environ)


def packages(report: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {p["name"]: p for p in report["packages"]}


def check_sizes_add_up(report: Mapping[str, Any]) -> None:
    """Every file is in one box: the packages and groups make the whole."""
    boxes = report["tree"]["children"]
    assert sum(b["size"] for b in boxes) == report["size"]
    assert sum(b["files"] for b in boxes) == report["files"]
    measured = {b["key"]: b for b in boxes}
    for package in report["packages"]:
        assert measured[package["key"]]["size"] == package["size"], package["name"]


def test_a_pixi_projects_archives(core_archives: Archives) -> None:
    reports = [inspect_json(core_archives.self_extracting), inspect_json(core_archives.tar)]
    for report, archive in zip(
        reports, [core_archives.self_extracting, core_archives.tar], strict=True
    ):
        inventory = {str(e["name"]): e for e in packages_json(core_archives.tar)}
        assert set(packages(report)) == set(inventory) == CORE
        for name, package in packages(report).items():
            entry = inventory[name]
            assert (package["version"], package["license"]) == (entry["version"], entry["license"])
            listed = int(
                str(entry["installed_files"])
            )  # symlinks included; inspect counts them apart
            # + its record, and at most one .pyc (sealed bytecode) per file it lists
            assert listed - report["links"] <= package["files"] <= 2 * listed + 1
        assert report["packages"][0]["name"] == "python", "largest first"
        meta = meta_of(core_archives.tar)
        facts = report["archive"]
        assert facts["sha256"] == sha256_of_file(archive)
        assert (facts["compression"], facts["meta"]) == ("zstd", meta)
        assert facts["made_by"] == f"portenv {meta['portenv_version']}"
        assert report["glibc"]["recorded"] == meta["glibc_floor"] == report["glibc"]["floor"]
        assert report["files"] + report["links"] < int(meta["files"]), "folders count there"
        check_sizes_add_up(report)
        assert report["libraries"] == [], "no record of bundled libraries, none shown"
    sh, tar = reports
    assert (sh["archive"]["shape"], tar["archive"]["shape"]) == ("env.sh", "env.tar")
    assert sh["tree"] == tar["tree"] and sh["packages"] == tar["packages"]


def test_the_text_summary(core_archives: Archives) -> None:
    done = portenv("inspect", core_archives.tar)
    text = done.stdout
    meta = meta_of(core_archives.tar)
    assert text.startswith(f"{core_archives.tar}: portenv archive (env.tar), ")
    assert f"glibc >= {meta['glibc_floor']} (the archive records {meta['glibc_floor']})" in text
    assert "5 packages, largest first:" in text and "10 largest files:" in text
    rows = text.split("5 packages, largest first:\n")[1].split("\n\n")[0].splitlines()[1:6]
    assert rows[0].split()[4] == "python"
    assert {row.split()[4] for row in rows} == CORE
    assert done.stderr == ""


def test_the_sbom_is_the_one_pack_writes(
    core_project: Path, package_cache: Path, tmp_path: Path
) -> None:
    out = tmp_path / "env.sh"
    packing = run(
        "pack", core_project, "-o", out, "--use-cache", package_cache, "--sbom", env=EPOCH
    )
    assert packing.returncode == 0, packing.stderr
    packed = (tmp_path / "env.sh.cdx.json").read_bytes()
    done = run("inspect", out, "--sbom=" + str(tmp_path / "again.json"), env=EPOCH)
    assert done.returncode == 0, done.stderr
    assert f"wrote {tmp_path / 'again.json'} (CycloneDX SBOM, 5 components)" in done.stderr
    assert (tmp_path / "again.json").read_bytes() == packed
    copy = tmp_path / "copy" / "env.sh"
    copy.parent.mkdir()
    shutil.copyfile(out, copy)
    assert run("inspect", copy, "--sbom", env=EPOCH).returncode == 0
    assert (copy.parent / "env.sh.cdx.json").read_bytes() == packed, "beside the input"
    read_sbom(copy.parent / "env.sh.cdx.json")


def test_a_pixi_pack_tar_and_folder(
    core_pixi_pack: Path, core_archives: Archives, tmp_path: Path
) -> None:
    folder = extracted(core_pixi_pack, tmp_path / "folder")
    from_tar, from_folder = inspect_json(core_pixi_pack), inspect_json(folder)
    packed = inspect_json(core_archives.tar)
    for report in (from_tar, from_folder):
        assert report["input"]["kind"] == "pixi-pack" and set(packages(report)) == CORE
        assert all(p["source"] == "file" and p["license"] for p in report["packages"])
        assert report["glibc"]["floor"] == packed["glibc"]["floor"], "the same ELF files"
        assert report["python"] == "bin/python3.12" and report["platform"] == "linux-64"
        check_sizes_add_up(report)
        python, installed = packages(report)["python"], packages(packed)["python"]
        assert installed["files"] * 0.95 < python["files"] < installed["files"], "no conda-meta"
        assert installed["size"] * 0.95 < python["size"] < installed["size"]
    assert from_tar["archive"]["sha256"] == sha256_of_file(core_pixi_pack)
    assert from_folder["archive"]["sha256"] is None
    assert from_tar["packages"] == from_folder["packages"]
    for path in (core_pixi_pack, folder):
        assert portenv("inspect", path, "--sbom").returncode == 0
    tar_sbom = read_sbom(core_pixi_pack.with_name("environment.tar.cdx.json"))
    folder_sbom = read_sbom(tmp_path / "folder.cdx.json")
    assert set(by_name(tar_sbom["components"])) == set(by_name(folder_sbom["components"])) == CORE
    assert "hashes" not in folder_sbom["metadata"]["component"], "a folder has no sha256"


def test_unpacked_environments(
    core_archives: Archives, core_pixi_pack: Path, tmp_path: Path
) -> None:
    """A portenv env (.portenv/ and conda-meta) and a conda prefix (pixi-pack's, unpacked)."""
    portenv("unpack", core_archives.tar, "-o", tmp_path, "--env-name", "portenv-env")
    portenv("unpack", core_pixi_pack, "-o", tmp_path / "pp")
    packed = inspect_json(core_archives.tar)
    for env in (tmp_path / "portenv-env", tmp_path / "pp" / "env"):
        report = inspect_json(env)
        assert report["input"]["kind"] == "env" and report["archive"] is None
        assert set(packages(report)) == CORE and report["python"] == "bin/python3.12"
        assert report["glibc"]["floor"] == packed["glibc"]["floor"]
        assert report["platform"] == "linux-64"
        check_sizes_add_up(report)
        for name, package in packages(report).items():
            assert package["license"] == packages(packed)[name]["license"], name
    unpacked = inspect_json(tmp_path / "portenv-env")
    before = {p["name"]: p["files"] for p in packed["packages"]}
    after = {p["name"]: p["files"] for p in unpacked["packages"]}
    assert set(after) == set(before)
    # the relocation compiled what it rewrote (those sources ship without bytecode)
    shipped = {m.name for m in payload_of(core_archives.tar).getmembers()}
    env = tmp_path / "portenv-env"
    compiled = [p for p in env.rglob("*.pyc") if str(p.relative_to(env)) not in shipped]
    assert all(after[name] >= before[name] for name in before)
    assert sum(after.values()) - sum(before.values()) == len(compiled)
    sbom_path = tmp_path / "env.cdx.json"
    portenv("inspect", tmp_path / "pp" / "env", f"--sbom={sbom_path}")
    assert set(by_name(read_sbom(sbom_path)["components"])) == CORE


def test_a_python_source_pack(python: Path, package_cache: Path, tmp_path: Path) -> None:
    """--python with local wheels (offline): the interpreter is a package of its own."""
    links = tmp_path / "links"
    make_wheel(links, "bigdata", "2.0", files={"bigdata/blob.py": "#" * 500_000 + "\n"})
    make_wheel(links, "small-tool", "1.0", files={"small_tool.py": "X = 1\n"})
    source = ["--with=--no-index", f"--with=--find-links {links}"]
    source += ["--with=bigdata", "--with=small-tool"]
    out = tmp_path / "app.tar"
    args: list[str | Path] = ["pack", "--python", python, *source, "-o", out]
    packing = run(*args, "--use-cache", package_cache, "--sbom", env=EPOCH)
    assert packing.returncode == 0, packing.stderr
    report = inspect_json(out)
    found = packages(report)
    assert set(found) == {"python", "pip", "bigdata", "small-tool"}, "pip from ensurepip"
    assert found["pip"]["source"] == "interpreter"
    assert found["python"]["kind"] == "cpython" and report["packages"][0]["name"] == "python"
    assert found["bigdata"]["size"] > 500_000 > found["small-tool"]["size"]
    blob = "lib/python3.12/site-packages/bigdata/blob.py"
    assert {"path": blob, "size": 500_001, "package": "bigdata", "group": None} in report[
        "largest_files"
    ]
    assert report["glibc"]["floor"] == meta_of(out)["glibc_floor"]
    check_sizes_add_up(report)
    member = payload_of(out).extractfile(".portenv/bundled.json")
    assert member is not None
    bundled = {lib["name"]: lib for lib in json.loads(member.read())["bundled"]}
    shown = {lib["name"]: lib for lib in report["libraries"] if lib["bundled"]}
    assert set(shown) == set(bundled) and shown, "the interpreter's libraries, as recorded"
    for name, library in shown.items():
        assert (library["path"], library["source"]) == (
            bundled[name]["path"],
            bundled[name]["source"],
        )
    [group] = [g for g in report["groups"] if g["key"] == "group:libraries"]
    assert group["size"] == sum(lib["size"] for lib in shown.values())
    done = run("inspect", out, f"--sbom={tmp_path / 'again.json'}", env=EPOCH)
    assert done.returncode == 0, done.stderr
    again = (tmp_path / "again.json").read_bytes()
    assert again == (tmp_path / "app.tar.cdx.json").read_bytes(), "with the libraries' sha256"
    assert set(bundled) <= set(by_name(read_sbom(tmp_path / "again.json")["components"]))


@pytest.mark.network
def test_real_pypi_wheels(python: Path, package_cache: Path, tmp_path: Path) -> None:
    """A real wheel from the index: its licence, its source and its files."""
    out = tmp_path / "app.tar"
    portenv("pack", "--python", python, "--with=idna", "-o", out, "--use-cache", package_cache)
    report = inspect_json(out)
    idna = packages(report)["idna"]
    inventory = {e["name"]: e for e in packages_json(out)}
    assert (idna["source"], idna["license"]) == ("index", inventory["idna"]["license"])
    names = payload_of(out).getnames()
    compiled = [n for n in names if "/site-packages/idna/__pycache__/" in n and n.endswith(".pyc")]
    assert compiled, "the seal compiled idna's modules"
    listed = int(str(inventory["idna"]["installed_files"]))
    assert idna["files"] == listed + len(compiled), "+ bytecode"


def lines(stderr: str) -> list[str]:
    return stderr.splitlines()


@pytest.mark.parametrize(
    ("make", "error", "hint"),
    [
        pytest.param(lambda d: d / "missing.sh", "does not exist", "give an env.sh", id="missing"),
        pytest.param(
            lambda d: _write(d / "notes.txt", b"hello\n"),
            "is neither a portenv archive nor a pixi-pack archive",
            "give an env.sh, an env.tar",
            id="not-an-archive",
        ),
        pytest.param(
            lambda d: _write(d / "fake.tar", _tar_of(d)),
            "is neither a portenv archive nor a pixi-pack archive",
            "give an env.sh, an env.tar",
            id="a-plain-tar",
        ),
    ],
)
def test_bad_inputs(make: Any, error: str, hint: str, tmp_path: Path) -> None:
    path = make(tmp_path)
    done = portenv("inspect", path, "--html", tmp_path / "r.html", check=False)
    assert done.returncode == 1 and done.stdout == ""
    first, second = lines(done.stderr)
    assert first.startswith("error: ") and error in first
    assert second.startswith("  hint: ") and hint in second
    assert not (tmp_path / "r.html").exists()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _tar_of(folder: Path) -> bytes:
    (folder / "a.txt").write_text("a\n")
    with tarfile.open(folder / "t.tar", "w") as tar:
        tar.add(folder / "a.txt", "a.txt")
    return (folder / "t.tar").read_bytes()


def test_a_damaged_archive(core_archives: Archives, tmp_path: Path) -> None:
    damaged = tmp_path / "env.sh"
    data = bytearray(core_archives.self_extracting.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    done = portenv("inspect", damaged, check=False)
    assert done.returncode == 1 and done.stdout == ""
    first, second = lines(done.stderr)
    assert first.startswith("error: hash mismatch for the payload")
    assert second == "  hint: the archive is damaged: copy it again"
    damaged.write_bytes(bytes(data[: len(data) // 3]))
    done = portenv("inspect", damaged, check=False)
    assert done.returncode == 1
    first, second = lines(done.stderr)
    assert first.startswith(f"error: {damaged} is truncated ({len(data) // 3} bytes, needs ")
    assert second == "  hint: copy it again"
