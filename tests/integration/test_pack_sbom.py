"""`portenv pack --sbom`: a CycloneDX 1.6 document beside the archive, true to what it holds.

Each source is checked against what the archive itself says: `.portenv/packages.json` of a
portenv archive, the package files of a pixi-pack archive, and the archive's own sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from packageurl import PackageURL

from tests.conftest import portenv
from tests.integration.test_pack import payload_of
from tests.integration.test_pack_pypi import packages_json
from tests.support.pypilock import make_wheel, write_pypi_project
from tests.support.sbom import by_name, read_sbom, sha256_of_file

TEST_CHANNEL_LICENCES = {
    "python": [{"license": {"id": "Python-2.0"}}],
    "greet": [{"license": {"id": "MIT"}}],
    "libfoo": [{"license": {"id": "BSD-3-Clause"}}],
    "libbar": [{"expression": "Apache-2.0 OR MIT"}],
    "hello-py": [{"expression": "LicenseRef-Hello-Test"}],
}
"""What tests/support/recipes declare, as CycloneDX puts it."""


def hashes(component: Mapping[str, Any]) -> dict[str, str]:
    return {h["alg"]: h["content"] for h in component.get("hashes", [])}


def pack_with_sbom(*args: str | Path, env: Mapping[str, str] | None = None) -> str:
    """Run `portenv pack ARGS --sbom`; its stdout (the sha256 line)."""
    argv = [sys.executable, "-m", "portenv", "pack", *map(str, args), "--sbom"]
    done = subprocess.run(
        argv, capture_output=True, text=True, check=False, env={**os.environ, **(env or {})}
    )
    assert done.returncode == 0, done.stderr
    assert ".cdx.json (CycloneDX SBOM," in done.stderr
    return done.stdout


def check_archive_component(sbom: Mapping[str, Any], archive: Path, stdout: str) -> None:
    """metadata.component is the archive: its name and the sha256 pack printed."""
    component = sbom["metadata"]["component"]
    sha256 = sha256_of_file(archive)
    assert stdout == f"{sha256}  {archive}\n"
    assert component["name"] == archive.name
    assert hashes(component) == {"SHA-256": sha256}
    assert sbom["serialNumber"].startswith("urn:uuid:")


def check_against_inventory(sbom: Mapping[str, Any], inventory: list[dict[str, Any]]) -> None:
    """One component per package, with the inventory's name, version, hashes and licence
    (the bundled libraries are checked by `check_bundled_libraries`)."""
    components = {
        name: c
        for name, c in by_name(sbom["components"]).items()
        if {"name": "portenv:kind", "value": "library"} not in c["properties"]
    }
    assert set(components) == {e["name"] for e in inventory}
    for entry in inventory:
        component = components[entry["name"]]
        assert component["version"] == entry["version"]
        assert hashes(component).get("SHA-256") == entry.get("sha256"), entry["name"]
        assert hashes(component).get("MD5") == entry.get("md5"), entry["name"]
        if entry.get("license"):
            assert component["licenses"], entry["name"]


def check_bundled_libraries(sbom: Mapping[str, Any], archive: Path) -> int:
    """One component per library `.portenv/bundled.json` lists, with the sha256 of its file
    in the payload; returns how many."""
    payload = payload_of(archive)
    listed = payload.extractfile(".portenv/bundled.json")
    assert listed is not None
    bundled = json.loads(listed.read())["bundled"]
    libraries = {
        c["name"]: c
        for c in sbom["components"]
        if {"name": "portenv:kind", "value": "library"} in c["properties"]
    }
    assert set(libraries) == {b["name"] for b in bundled}
    for entry in bundled:
        file = payload.extractfile(entry["path"])
        assert file is not None
        assert hashes(libraries[entry["name"]]) == {
            "SHA-256": hashlib.sha256(file.read()).hexdigest()
        }
        assert "purl" not in libraries[entry["name"]]
    return len(bundled)


def test_pixi_project_sbom(core_project: Path, package_cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "env.tar"
    epoch = {"SOURCE_DATE_EPOCH": "1700000000"}
    stdout = pack_with_sbom(core_project, "-o", out, "--use-cache", package_cache, env=epoch)
    sbom = read_sbom(tmp_path / "env.tar.cdx.json")
    check_archive_component(sbom, out, stdout)
    assert sbom["metadata"]["timestamp"] == "2023-11-14T22:13:20Z"
    inventory: list[dict[str, Any]] = packages_json(out)
    check_against_inventory(sbom, inventory)
    components = by_name(sbom["components"])
    for name, licences in TEST_CHANNEL_LICENCES.items():
        assert components[name]["licenses"] == licences, name
    for entry in inventory:
        assert entry["source"] == "channel" and entry["channel"]
        assert entry["installed_files"] > 0 and entry["installed_size"] > 0, entry
        purl = PackageURL.from_string(components[entry["name"]]["purl"])
        assert (purl.type, purl.name, purl.version) == ("conda", entry["name"], entry["version"])
        assert purl.qualifiers == {
            "build": entry["build"],
            "channel": entry["channel"],
            "subdir": entry["subdir"],
            "type": "conda",
        }
    python = next(e for e in inventory if e["name"] == "python")
    assert python["installed_files"] > 1000, "the interpreter's standard library is counted"
    again = tmp_path / "again" / "env.tar"
    again.parent.mkdir()
    pack_with_sbom(core_project, "-o", again, "--use-cache", tmp_path / "cache2", env=epoch)
    assert (
        again.with_name("env.tar.cdx.json").read_bytes()
        == (tmp_path / "env.tar.cdx.json").read_bytes()
    ), "the same lock gives the same SBOM"


def test_bad_source_date_epoch_stops_before_any_work(core_project: Path, tmp_path: Path) -> None:
    out = tmp_path / "env.tar"
    argv = [sys.executable, "-m", "portenv", "pack", str(core_project), "-o", str(out), "--sbom"]
    env = {**os.environ, "SOURCE_DATE_EPOCH": "last tuesday"}
    done = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert lines[0].startswith("error: SOURCE_DATE_EPOCH is not a number of seconds")
    assert lines[1].startswith("  hint: ") and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_python_source_sbom(package_cache: Path, tmp_path: Path) -> None:
    """--python: the PyPI packages, licence from a real PyPI wheel's METADATA (idna)."""
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("idna\n")
    out = tmp_path / "app.tar"
    stdout = pack_with_sbom(
        "--python", sys.executable, "-r", requirements, "-o", out, "--use-cache", package_cache
    )
    sbom = read_sbom(tmp_path / "app.tar.cdx.json")
    check_archive_component(sbom, out, stdout)
    inventory: list[dict[str, Any]] = packages_json(out)
    ensurepip = ["pip"] if sys.version_info >= (3, 12) else ["pip", "setuptools"]
    assert sorted(e["name"] for e in inventory) == sorted(["idna", "python", *ensurepip])
    pip = next(e for e in inventory if e["name"] == "pip")
    assert pip["source"] == "interpreter" and pip["url"].startswith("ensurepip://")
    assert by_name(sbom["components"])["pip"]["purl"] == f"pkg:pypi/pip@{pip['version']}"
    check_against_inventory(sbom, inventory)
    assert check_bundled_libraries(sbom, out) > 5, "libssl, libffi ... come from this machine"
    idna = next(e for e in inventory if e["name"] == "idna")
    python = next(e for e in inventory if e["kind"] == "cpython")
    version = "{}.{}.{}".format(*sys.version_info[:3])
    assert python == {
        "kind": "cpython",
        "name": "python",
        "version": version,
        "license": "Python-2.0",
        "source": "file",
    }
    interpreter = by_name(sbom["components"])["python"]
    assert interpreter["cpe"] == f"cpe:2.3:a:python:python:{version}:*:*:*:*:*:*:*"
    assert idna["license"], "idna's METADATA declares its licence"
    assert idna["source"] == "index" and idna["installed_files"] > 5
    component = by_name(sbom["components"])["idna"]
    assert component["purl"] == f"pkg:pypi/idna@{idna['version']}"
    licence = component["licenses"][0]
    assert idna["license"] in (licence.get("expression"), *licence.get("license", {}).values())


def test_pixi_pack_format_sbom(local_channel: Path, package_cache: Path, tmp_path: Path) -> None:
    """--format pixi-pack: the components are the package files inside the tar."""
    wheel = make_wheel(tmp_path, "localtool", "1.0", files={"localtool.py": "X = 1\n"})
    project = write_pypi_project(
        tmp_path / "p", local_channel, ["python 3.12.*", "greet"], ["idna"], local_wheels=[wheel]
    )
    out = tmp_path / "environment.tar"
    args = ("--format", "pixi-pack", "--use-cache", package_cache)
    stdout = pack_with_sbom(project, "-o", out, *args)
    sbom = read_sbom(tmp_path / "environment.tar.cdx.json")
    check_archive_component(sbom, out, stdout)
    plan = json.loads(portenv("plan", project, "--json").stdout)
    with tarfile.open(out) as archive:
        files = {
            Path(m.name).name: sha256_of_file_in(archive, m)
            for m in archive.getmembers()
            if m.isfile() and m.name.endswith((".conda", ".tar.bz2", ".whl"))
        }
    components = by_name(sbom["components"])
    wanted = {p["name"]: p for p in [*plan["conda"], *plan["pypi"]]}
    assert set(components) == set(wanted)
    for name, package in wanted.items():
        assert components[name]["version"] == package["version"]
        file_name = package["url"].rsplit("/", 1)[-1]
        assert hashes(components[name])["SHA-256"] == files[file_name], name
    assert components["greet"]["licenses"] == TEST_CHANNEL_LICENCES["greet"]
    assert components["idna"]["licenses"], "the wheel's METADATA is read"
    assert components["idna"]["purl"].startswith("pkg:pypi/idna@")
    assert "purl" not in components["localtool"], "a file next to the lock has no purl"
    properties = {p["name"]: p["value"] for p in components["localtool"]["properties"]}
    assert properties["portenv:source"] == "file"


def sha256_of_file_in(archive: tarfile.TarFile, member: tarfile.TarInfo) -> str:
    stream = archive.extractfile(member)
    assert stream is not None
    return hashlib.sha256(stream.read()).hexdigest()
