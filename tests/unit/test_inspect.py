"""portenv.inspect on environments built here: a fake env with every record inspect reads.

The env holds a conda package (conda-meta), a PyPI distribution (dist-info RECORD, a compiled
module RECORD does not list, a real ELF file copied from this machine's python), portenv's own
files, a bundled library (bundled.json) and a large data file; it is inspected as a folder and
as env.tar / env.sh archives built with the real container writers (gzip and zstd).
"""

from __future__ import annotations

import gzip
import json
import shutil
import sys
from pathlib import Path

import jsonschema
import pytest

from portenv.elf import scan_elf
from portenv.errors import HashMismatchError, InputError, OutputError
from portenv.inspect import (
    InspectRequest,
    inspect,
    read_report,
    render_html,
    render_text,
    report_json,
)
from portenv.inspect._libraries import read_libraries
from portenv.inspect._model import Report
from portenv.inspect._owners import LIBRARIES, OTHER, PORTENV, attribute
from portenv.inspect._pixipack import _conda_paths, _wheel_paths
from portenv.inspect._tree import size_map
from portenv.inspect.html import _script_json
from portenv.write.container import PAYLOAD_OFFSET
from tests.unit.test_unpack_py import env_tree, payload_of, write_archive

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "docs" / "inspect.schema.json").read_text()
)
SITE = "lib/python3.12/site-packages"


def real_elf() -> Path:
    """An ELF file of this machine that needs versioned glibc symbols: the running python."""
    path = Path(sys.executable).resolve()
    assert scan_elf(path.parent, [path.name]).glibc_floor, path
    return path


def fake_env(root: Path) -> Path:
    """env_tree's files plus a conda package, a PyPI distribution, a bundled library."""
    env_tree(root)
    (root / "share").mkdir()
    big = real_elf().stat().st_size // 2  # the second largest file, whatever the ELF's size
    (root / "share" / "data.bin").write_bytes(b"\0" * big)
    (root / "conda-meta").mkdir()
    record = {
        "name": "pkga",
        "version": "1.0",
        "build": "h0_0",
        "subdir": "linux-64",
        "license": "MIT",
        "files": ["bin/tool", "etc/conf", "share/data.bin"],
    }
    (root / "conda-meta" / "pkga-1.0-h0_0.json").write_text(json.dumps(record))
    package = root / SITE / "demo_pkg"
    (package / "__pycache__").mkdir(parents=True)
    (package / "__init__.py").write_text("X = 1\n")
    (package / "__pycache__" / "__init__.cpython-312.pyc").write_bytes(b"\0" * 100)
    shutil.copyfile(real_elf(), package / "_ext.so")
    info = root / SITE / "demo_pkg-2.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.4\nName: Demo-Pkg\nVersion: 2.0\n")
    rows = ["demo_pkg/__init__.py", "demo_pkg/_ext.so", "demo_pkg-2.0.dist-info/METADATA"]
    (info / "RECORD").write_text("".join(f"{row},,\n" for row in [*rows, "x/RECORD"]))
    (root / "lib" / "libz.so.1").write_bytes(b"z" * 1000)
    bundled = {
        "format": 1,
        "bundled": [
            {"name": "libz.so.1", "path": "lib/libz.so.1", "source": "/usr/lib/libz.so.1"}
            | {"needed_by": ["bin/python3.12"], "size": 1000}
        ],
        "left_to_target": [{"name": "libcuda.so.1", "needed_by": ["x.so"], "reason": "driver"}],
    }
    (root / ".portenv" / "bundled.json").write_text(json.dumps(bundled))
    inventory = [
        {"kind": "conda", "name": "pkga", "version": "1.0", "build": "h0_0", "license": "MIT"},
        {"kind": "pypi", "name": "Demo-Pkg", "version": "2.0", "license": "Apache-2.0"},
    ]
    (root / ".portenv" / "packages.json").write_text(json.dumps(inventory))
    return root


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fake_env(tmp_path_factory.mktemp("inspect") / "env")


def check_report(report: Report, env: Path) -> None:
    """What inspect must say of the fake env, whatever shape it came in."""
    packages = {p.name: p for p in report.packages}
    assert set(packages) == {"pkga", "Demo-Pkg"}
    pkga = packages["pkga"]
    assert (pkga.kind, pkga.version, pkga.license, pkga.files) == ("conda", "1.0", "MIT", 4)
    own = ("bin/tool", "etc/conf", "share/data.bin", "conda-meta/pkga-1.0-h0_0.json")
    assert pkga.size == sum((env / f).stat().st_size for f in own), "its files and its record"
    demo = packages["Demo-Pkg"]
    assert demo.key == "pypi:demo-pkg" and demo.files == 4, "the .pyc is the package's"
    assert report.packages[0].name == "Demo-Pkg", "largest first: the ELF file is large"
    elf = f"{SITE}/demo_pkg/_ext.so"
    assert report.glibc.files[0] == (scan_elf(env, [elf]).glibc_floor, elf)
    assert report.largest[0].path == elf and report.largest[0].owner == "pypi:demo-pkg"
    assert report.largest[1].path == "share/data.bin"
    names = [(lib.name, lib.bundled, lib.reason) for lib in report.libraries]
    assert names == [("libz.so.1", True, None), ("libcuda.so.1", False, "driver")]
    boxes = {node.key: node for node in report.tree.children}
    assert set(boxes) == {"conda:pkga", "pypi:demo-pkg", PORTENV, LIBRARIES, OTHER}
    assert boxes[LIBRARIES].size == 1000
    assert sum(node.size for node in boxes.values()) == report.size
    all_files = [p for p in env.rglob("*") if p.is_file() and not p.is_symlink()]
    assert report.files == len(all_files) and report.links == 1
    jsonschema.validate(report_json(report), SCHEMA)


def test_an_unpacked_env(env: Path) -> None:
    report = read_report(env)
    assert report.kind == "env" and report.archive is None and report.python == "bin/python3.12"
    check_report(report, env)


@pytest.mark.parametrize(
    ("name", "compression"),
    [("env.tar", "gzip"), ("env.sh", "gzip"), ("env.tar", "zstd")],
    ids=["tar-gzip", "sh-gzip", "tar-zstd"],
)
def test_an_archive(env: Path, tmp_path: Path, name: str, compression: str) -> None:
    payload, files = payload_of(env, compression)
    archive = write_archive(tmp_path / name, payload, files, compression=compression)
    report = read_report(archive)
    check_report(report, env)
    assert report.archive is not None
    assert report.archive.shape == name and report.archive.compression == compression
    assert report.archive.size == archive.stat().st_size
    assert report.archive.made_by == "portenv 0.1.0"
    assert report.glibc.recorded == "2.17" and report.platform == "linux-64"


def test_the_text_summary(env: Path) -> None:
    text = render_text(read_report(env))
    assert "glibc >= " in text and f"{SITE}/demo_pkg/_ext.so" in text
    assert "2 packages, largest first:" in text and "(bundled libraries)" in text
    assert "1 bundled libraries (copied from the build machine):" in text
    assert "libcuda.so.1 (driver), needed by x.so" in text


def test_no_library_section_without_a_record(tmp_path: Path) -> None:
    env = fake_env(tmp_path / "env")
    (env / ".portenv" / "bundled.json").unlink()
    report = read_report(env)
    assert report.libraries == ()
    assert "libraries" not in render_text(report)
    assert LIBRARIES not in {node.key for node in report.tree.children}


def test_library_entries_of_the_inventory_are_read_too() -> None:
    """The other record a bundled library may get: an inventory entry of kind library."""
    entry = {"kind": "library", "name": "libssl.so.3", "path": "lib/libssl.so.3", "size": 9}
    bundled = {"bundled": [{"name": "libz.so.1", "path": "lib/libz.so.1"}]}
    records = {".portenv/bundled.json": json.dumps(bundled).encode()}
    found = read_libraries(records, [entry, {"kind": "conda", "name": "x"}])
    assert [(lib.name, lib.size) for lib in found] == [("libssl.so.3", 9), ("libz.so.1", None)]
    assert read_libraries({".portenv/bundled.json": b"not json"}, []) == ()


def test_attribution() -> None:
    records = {
        "conda-meta/a-1-0.json": json.dumps({"name": "a", "files": ["bin/a"]}).encode(),
        f"{SITE}/b-1.dist-info/RECORD": b"b/__init__.py,,\nb-1.dist-info/RECORD,,\n",
    }
    paths = [
        "bin/a",
        "conda-meta/a-1-0.json",
        f"{SITE}/b/__init__.py",
        f"{SITE}/b/__pycache__/__init__.cpython-312.pyc",
        f"{SITE}/b-1.dist-info/RECORD",
        ".portenv/manifest.json",
        "bin/portenv-relocate",
        f"{SITE}/portenv_certs.py",
        "lib/libz.so.1",
        "lib/python3.12/os.py",
    ]
    owners = attribute(paths, records, libraries=["lib/libz.so.1"], rest="cpython:python")
    assert [owners[p] for p in paths] == [
        "conda:a",
        "conda:a",
        "pypi:b",
        "pypi:b",
        "pypi:b",
        PORTENV,
        PORTENV,
        PORTENV,
        LIBRARIES,
        "cpython:python",
    ]


def test_the_size_map_lumps_small_boxes_and_collapses_lone_folders() -> None:
    sizes = {"lib/python3.12/big.so": 1000, "lib/python3.12/tiny.py": 1, "bin/x": 1}
    sizes |= {f"share/doc/{n}.txt": 1 for n in range(5)}
    owners = dict.fromkeys(sizes, "conda:a") | {"bin/x": "conda:b"}
    root = size_map(sizes, owners, {"conda:a": ("a", "package"), "conda:b": ("b", "package")})
    a, b = root.children
    assert (a.name, a.size, a.files, b.name) == ("a", 1006, 7, "b")
    folder = a.children[0]
    assert folder.name == "lib/python3.12" and folder.children[0].name == "big.so"
    assert folder.children[1].kind == "rest" and folder.children[1].name == "1 smaller file"
    doc = a.children[1]
    assert (doc.name, doc.size, [c.name for c in doc.children]) == (
        "share/doc",
        5,
        ["5 smaller files"],
    ), "boxes under 0.2 % of the whole are lumped"


def test_the_page_embeds_the_json_safely(env: Path) -> None:
    hostile = {"name": "</script><script>alert(1)</script>", "amp": "&"}
    text = _script_json(hostile)
    assert "<" not in text and ">" not in text and json.loads(text) == hostile
    page = render_html(read_report(env))
    assert "__REPORT_DATA__" not in page and "__TITLE__" not in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in page and "<link" not in page and "src=" not in page


def test_errors(tmp_path: Path, env: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_report(tmp_path / "missing.sh")
    (tmp_path / "notes.txt").write_text("hello\n")
    with pytest.raises(InputError, match="neither a portenv archive nor a pixi-pack"):
        read_report(tmp_path / "notes.txt")
    (tmp_path / "folder").mkdir()
    with pytest.raises(InputError, match=r"neither \.portenv/ nor conda-meta/"):
        read_report(tmp_path / "folder")
    payload, files = payload_of(env)
    archive = write_archive(tmp_path / "env.tar", payload, files)
    data = bytearray(archive.read_bytes())
    data[PAYLOAD_OFFSET + len(payload) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    with pytest.raises(HashMismatchError):
        read_report(archive)
    archive.write_bytes(bytes(data[: PAYLOAD_OFFSET + 100]))
    with pytest.raises(InputError, match="truncated"):
        read_report(archive)


def test_where_a_pixi_packs_files_are_installed() -> None:
    """A noarch: python package's folders and a wheel's .data/ schemes, as an install maps
    them (the pixi-pack reader measures files that are not installed)."""
    noarch = _conda_paths(True, "python3.12")
    assert noarch("site-packages/a/b.py") == f"{SITE}/a/b.py"
    assert noarch("python-scripts/tool") == "bin/tool"
    assert noarch("info/index.json") is None
    assert _conda_paths(False, "python3.12")("site-packages/x") == "site-packages/x"
    wheel = _wheel_paths("python3.12")
    assert wheel("pkg/__init__.py") == f"{SITE}/pkg/__init__.py"
    assert wheel("pkg-1.0.data/scripts/run") == "bin/run"
    assert wheel("pkg-1.0.data/platlib/ext.so") == f"{SITE}/ext.so"
    assert wheel("pkg-1.0.data/data/share/x") == "share/x"
    assert wheel("pkg-1.0.data/headers/x.h") == "include/python3.12/x.h"


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"not gzip data " * 100, id="not-gzip"),
        pytest.param(gzip.compress(b"\0" * 20000)[:40], id="cut-gzip-stream"),
        pytest.param(gzip.compress(b"no tar header here" * 100), id="gzip-without-a-tar"),
    ],
)
def test_a_payload_that_matches_its_hash_but_is_no_payload(payload: bytes, tmp_path: Path) -> None:
    """The meta's sha256 vouches for bytes that do not decompress to a tar: one clear line."""
    archive = write_archive(tmp_path / "odd.tar", payload, 1)
    with pytest.raises(InputError, match=r"the payload of odd\.tar is damaged"):
        read_report(archive)


def test_the_outputs_are_checked_before_anything_is_read_or_written(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload, files = payload_of(env)
    archive = write_archive(tmp_path / "env.tar", payload, files)
    before = archive.read_bytes()
    with pytest.raises(OutputError, match="is the input"):
        inspect(InspectRequest(archive, sbom=tmp_path / "env.tar"))
    with pytest.raises(OutputError, match="is the input"):
        inspect(InspectRequest(archive, html=archive))
    with pytest.raises(OutputError, match="is a folder"):
        inspect(InspectRequest(archive, html=tmp_path))
    with pytest.raises(OutputError, match="output folder does not exist"):
        inspect(InspectRequest(archive, html=tmp_path / "no" / "r.html"))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "soon")
    with pytest.raises(InputError, match="SOURCE_DATE_EPOCH"):
        inspect(InspectRequest(archive, html=tmp_path / "r.html", sbom_beside=True))
    assert archive.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["env.tar"]
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    done = inspect(InspectRequest(archive, html=tmp_path / "r.html", sbom_beside=True))
    assert done.sbom == tmp_path / "env.tar.cdx.json" and done.html == tmp_path / "r.html"
    sbom = json.loads(done.sbom.read_text())
    assert sbom["metadata"]["timestamp"] == "2023-11-14T22:13:20Z"
    assert {c["name"] for c in sbom["components"]} == {"pkga", "Demo-Pkg", "libz.so.1"}
    [libz] = [c for c in sbom["components"] if c["name"] == "libz.so.1"]
    assert "hashes" not in libz, "the fake libz.so.1 is no ELF file: inspect hashes ELF files"
