"""What `.portenv/packages.json` adds to each package: source, licence, installed size and files."""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from portenv.model import CondaPackage, StagedPrefix, Subdir
from portenv.seal.inventory import (
    conda_entry,
    conda_source,
    describe_installed,
    license_of_metadata,
    pypi_source,
    wheel_facts,
)

HEAD = "Metadata-Version: 2.4\nName: demo\nVersion: 1.0\n"
LONG_TEXT = "Copyright (c) someone\n        |\n        | Permission is hereby granted, ..."


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        pytest.param(
            HEAD + "License-Expression: MIT OR Apache-2.0\nLicense: ignored\n",
            "MIT OR Apache-2.0",
            id="pep639-expression",
        ),
        pytest.param(HEAD + "License: BSD-3-Clause\n", "BSD-3-Clause", id="license-field"),
        pytest.param(
            HEAD + f"License: {LONG_TEXT}\nClassifier: License :: OSI Approved :: MIT License\n",
            "MIT License",
            id="licence-text-gives-way-to-classifier",
        ),
        pytest.param(
            HEAD + "License: UNKNOWN\n"
            "Classifier: Programming Language :: Python\n"
            "Classifier: License :: OSI Approved :: BSD License\n"
            "Classifier: License :: OSI Approved :: Apache Software License\n",
            "BSD License; Apache Software License",
            id="several-classifiers",
        ),
        pytest.param(
            HEAD + "Classifier: License :: OSI Approved\n", None, id="classifier-without-name"
        ),
        pytest.param(HEAD, None, id="none"),
    ],
)
def test_licence_of_metadata(metadata: str, expected: str | None) -> None:
    assert license_of_metadata(metadata) == expected


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        pytest.param({"url": "https://files.example.invalid/a-1.whl"}, "index", id="index"),
        pytest.param({"url": "direct+https://example.invalid/a-1.whl"}, "url", id="url"),
        pytest.param({"url": "./wheels/a-1.whl"}, "file", id="relative-path"),
        pytest.param({"url": "direct+file:///w/a-1.whl"}, "file", id="file-url"),
        pytest.param({"url": "git+https://example.invalid/r.git", "commit": "ab"}, "git", id="git"),
        pytest.param({"url": "./src", "source_folder": True}, "folder", id="folder"),
        pytest.param(
            {"url": "ensurepip://lib/python3.12/ensurepip/_bundled/pip-24.0-py3-none-any.whl"},
            "interpreter",
            id="ensurepip",
        ),
    ],
)
def test_pypi_source(entry: dict[str, object], expected: str) -> None:
    assert pypi_source(entry) == expected


@pytest.mark.parametrize(
    ("url", "channel", "expected"),
    [
        pytest.param(
            "https://ch.invalid/c/linux-64/a-1-0.conda", "https://ch.invalid/c", "channel"
        ),
        pytest.param("file:///ch/linux-64/a-1-0.conda", "file:///ch/", "channel"),
        pytest.param("file:///pkgs/a-1-0.conda", "file:///pkgs", "file"),
        pytest.param("https://ch.invalid/a-1-0.conda", None, "url"),
    ],
)
def test_conda_source(url: str, channel: str | None, expected: str) -> None:
    assert conda_source(url, channel, "linux-64") == expected


def write_file(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)


def record_line(root: Path, relative: str, site: Path) -> str:
    data = (site / relative).read_bytes()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{relative},sha256={digest},{len(data)}"


def staged_prefix(root: Path) -> StagedPrefix:
    """A conda package (conda-meta) and a PyPI distribution (dist-info) installed in `root`."""
    write_file(root / "bin" / "greet", 1000)
    write_file(root / "share" / "greet" / "message.txt", 17)
    (root / "conda-meta").mkdir()
    record = {
        "name": "greet",
        "version": "1.0",
        "files": ["bin/greet", "share/greet/message.txt"],
        "license": "MIT",
        "channel": "file:///channel/",
        "md5": "0" * 32,
    }
    (root / "conda-meta" / "greet-1.0-0.json").write_text(json.dumps(record))
    site = root / "lib" / "python3.12" / "site-packages"
    write_file(site / "demo_pkg" / "__init__.py", 300)
    write_file(root / "bin" / "demo", 40)
    dist_info = site / "demo_pkg-2.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.4\nName: Demo.Pkg\nVersion: 2.0\nLicense-Expression: MIT\n"
    )
    rows = [
        record_line(root, relative, site)
        for relative in (
            "demo_pkg/__init__.py",
            "../../../bin/demo",
            "demo_pkg-2.0.dist-info/METADATA",
        )
    ]
    (dist_info / "RECORD").write_text("\n".join([*rows, "demo_pkg-2.0.dist-info/RECORD,,"]) + "\n")
    return StagedPrefix(root, "/placeholder", Subdir("linux-64"), "bin/python3.12")


def test_describe_installed_adds_what_the_files_say(tmp_path: Path) -> None:
    staged = staged_prefix(tmp_path / "prefix")
    metadata_size = staged.path / "lib/python3.12/site-packages/demo_pkg-2.0.dist-info/METADATA"
    record_size = metadata_size.with_name("RECORD").stat().st_size
    inventory: list[dict[str, object]] = [
        {
            "kind": "conda",
            "name": "greet",
            "version": "1.0",
            "subdir": "linux-64",
            "url": "file:///channel/linux-64/greet-1.0-0.conda",
        },
        {"kind": "pypi", "name": "demo-pkg", "version": "2.0", "url": "https://x.invalid/d.whl"},
        {"kind": "pypi", "name": "absent", "version": "1", "url": "direct+https://x.invalid/a.whl"},
    ]
    greet, demo, absent = describe_installed(staged, inventory)
    assert greet == {
        **inventory[0],
        "channel": "file:///channel",
        "license": "MIT",
        "md5": "0" * 32,
        "source": "channel",
        "installed_files": 2,
        "installed_size": 1017,
    }
    assert demo["license"] == "MIT" and demo["source"] == "index"
    assert demo["installed_files"] == 4
    assert demo["installed_size"] == 300 + 40 + metadata_size.stat().st_size + record_size
    assert absent == {**inventory[2], "source": "url"}, "no dist-info: only what the entry says"


def test_describe_installed_keeps_what_an_entry_says(tmp_path: Path) -> None:
    staged = staged_prefix(tmp_path / "prefix")
    entry: dict[str, object] = {"kind": "conda", "name": "greet", "license": "Zlib", "url": "u"}
    (described,) = describe_installed(staged, [entry])
    assert described["license"] == "Zlib" and described["installed_files"] == 2


def test_wheel_facts_read_the_wheel_itself(tmp_path: Path) -> None:
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("demo/__init__.py", "")
        archive.writestr("demo/sub.dist-info/METADATA", HEAD + "License: Not this one\n")
        archive.writestr("demo-1.0.dist-info/METADATA", HEAD + "License: Zlib\n")
    facts = wheel_facts({"url": "https://x.invalid/demo-1.0-py3-none-any.whl"}, wheel)
    assert facts == {"source": "index", "license": "Zlib"}


def test_a_package_read_from_elsewhere_names_no_channel(tmp_path: Path) -> None:
    """A converted pixi-pack's package: conda-meta names the scratch channel it was read from."""
    staged = staged_prefix(tmp_path / "prefix")
    entry: dict[str, object] = {
        "kind": "conda",
        "name": "greet",
        "subdir": "linux-64",
        "url": "channel/linux-64/greet-1.0-0.conda",
    }
    (described,) = describe_installed(staged, [entry])
    assert described["source"] == "file" and described["channel"] is None


def conda_package(url: str, channel: str) -> CondaPackage:
    record = SimpleNamespace(license="BSD-2-Clause", channel=channel)
    return CondaPackage(
        "a", "1", "0", "linux-64", url, "a-1-0.conda", "1" * 64, None, 9, (), record
    )


@pytest.mark.parametrize(
    ("url", "channel", "source", "named"),
    [
        pytest.param(
            "https://c.invalid/ch/linux-64/a-1-0.conda",
            "https://c.invalid/ch/",
            "channel",
            "https://c.invalid/ch",
            id="from-its-channel",
        ),
        pytest.param("file:///x/a-1-0.conda", "file:///x", "file", None, id="injected-file"),
    ],
)
def test_conda_entry_from_the_lock_record(
    url: str, channel: str, source: str, named: str | None
) -> None:
    entry = conda_entry(conda_package(url, channel))
    assert entry["source"] == source and entry["channel"] == named
    assert entry["license"] == "BSD-2-Clause" and entry["sha256"] == "1" * 64
    assert entry["kind"] == "conda" and entry["name"] == "a"


def test_wheel_facts_of_a_file_that_is_no_zip(tmp_path: Path) -> None:
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    wheel.write_bytes(b"not a zip")
    assert wheel_facts({"url": "./demo-1.0-py3-none-any.whl"}, wheel) == {
        "source": "file",
        "license": None,
    }
