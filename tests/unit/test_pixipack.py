"""The pixi-pack writer: layout, field values, lock-sourced repodata, reproducible bytes.

The conda packages are built in code; the lock is written and read back with rattler, so the
records the writer gets are the lock's (with a `depends` the package itself does not have).
Finally the extracted channel is read the way pixi-unpack reads it: repodata.json per subdir,
solved and installed with rattler.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import io
import json
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import rattler
import yaml

from portenv._rattler import load_lock, locked_environment
from portenv.errors import OutputError
from portenv.model import FetchedPackage, PypiPackage
from portenv.write.pixipack import PIXI_PACK_VERSION, environment_yml, write_pixi_pack
from tests.support.condapkg import PackageFile, make_conda_package

PLATFORM = "linux-64"
CHANNEL_URL = "https://conda.example.org/test-channel/"
WHEEL_URL = "https://files.example.org/packages/tiny_wheel-1.0-py3-none-any.whl"
LOCK_DEPENDS = ["bar >=2", "python"]
"""foo's depends as the lock records them (a repodata patch); the package says `bar >=1`."""


# --- inputs ------------------------------------------------------------------------------


def _zstd_stored(data: bytes) -> bytes:
    """A valid zstd frame of raw (uncompressed) blocks: enough for a .conda without zstd."""
    frame = bytearray(b"\x28\xb5\x2f\xfd")  # magic number, little endian
    frame.append(0xE0)  # 8-byte content size, single segment, no checksum, no dictionary
    frame += len(data).to_bytes(8, "little")
    size = 128 * 1024
    blocks = [data[i : i + size] for i in range(0, len(data), size)] or [b""]
    for index, block in enumerate(blocks):
        last = int(index == len(blocks) - 1)
        frame += ((len(block) << 3) | last).to_bytes(3, "little") + block  # type 0: raw
    return bytes(frame)


def _tar(members: list[tarfile.TarInfo], source: tarfile.TarFile) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for member in members:
            archive.addfile(member, source.extractfile(member))
    return buffer.getvalue()


def make_conda_v2(folder: Path, name: str, files: list[PackageFile], **kwargs: Any) -> Path:
    """The package of `make_conda_package`, as a .conda (zip of zstd tars) beside it."""
    legacy = make_conda_package(folder, name, files, **kwargs)
    stem = legacy.name.removesuffix(".tar.bz2")
    with tarfile.open(legacy, "r:bz2") as source:
        members = source.getmembers()
        info = _tar([m for m in members if m.name.startswith("info/")], source)
        pkg = _tar([m for m in members if not m.name.startswith("info/")], source)
    target = legacy.with_name(f"{stem}.conda")
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("metadata.json", json.dumps({"conda_pkg_format_version": 2}))
        archive.writestr(f"pkg-{stem}.tar.zst", _zstd_stored(pkg))
        archive.writestr(f"info-{stem}.tar.zst", _zstd_stored(info))
    legacy.unlink()
    return target


def make_wheel(folder: Path, name: str, version: str) -> Path:
    """A minimal pure-Python wheel: one module, METADATA, WHEEL and RECORD."""
    dist_info = f"{name}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    members = {
        f"{name}.py": b"VALUE = 1\n",
        f"{dist_info}/METADATA": metadata.encode(),
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for member, data in members.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        writer.writerow([member, f"sha256={digest}", len(data)])
    writer.writerow([f"{dist_info}/RECORD", "", ""])
    members[f"{dist_info}/RECORD"] = record.getvalue().encode()
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for member, data in members.items():
            archive.writestr(zipfile.ZipInfo(member, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return wheel


def _record(path: Path, subdir: str) -> Any:
    """The record a lock holds for `path`: index.json fields, hashes, url and channel."""
    record = asyncio.run(rattler.RepoDataRecord.from_package_archive(path))
    url = f"{CHANNEL_URL}{subdir}/{path.name}"
    return rattler.RepoDataRecord(record, path.name, url, CHANNEL_URL)


@dataclass(frozen=True)
class Inputs:
    """What the caller hands the writer, and where the package files are."""

    conda: list[FetchedPackage]
    wheels: list[tuple[PypiPackage, Path]]
    files: dict[str, Path]
    lock: Path


def locked_inputs(root: Path, *, with_noarch: bool = True) -> Inputs:
    """foo (linux-64, .tar.bz2), python (linux-64), bar (noarch, .conda), one wheel."""
    cache = root / "cache"
    files = {
        "foo": make_conda_package(
            cache,
            "foo",
            [PackageFile("bin/foo", b"#!/bin/sh\necho foo\n", executable=True)],
            depends=("bar >=1", "python"),
        ),
        "python": make_conda_package(
            cache,
            "python",
            [PackageFile("bin/python3.12", b"not really python\n")],
            version="3.12.0",
        ),
    }
    if with_noarch:
        files["bar"] = make_conda_v2(
            cache, "bar", [PackageFile("share/bar.txt", b"bar\n")], version="2.0", subdir="noarch"
        )
    lock = rattler.LockFile([rattler.LockPlatform(PLATFORM)])
    lock.set_channels("default", [rattler.LockChannel(CHANNEL_URL)])
    for name, path in files.items():
        record = _record(path, path.parent.name)
        if name == "foo":
            record.depends = LOCK_DEPENDS
        lock.add_conda_package("default", rattler.LockPlatform(PLATFORM), record)
    lock_path = root / "pixi.lock"
    lock.to_path(lock_path)
    locked = locked_environment(load_lock(lock_path), "default", PLATFORM, lock_path.parent)
    by_file = {p.name: p for p in files.values()}
    conda = [FetchedPackage(p, by_file[p.file_name]) for p in locked.conda]
    wheel = make_wheel(root / "wheels", "tiny_wheel", "1.0")
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    pypi = PypiPackage("Tiny.Wheel", "1.0", f"{WHEEL_URL}#sha256={sha}", "wheel", sha)
    return Inputs(conda, [(pypi, wheel)], files, lock_path)


@pytest.fixture
def inputs(tmp_path: Path) -> Inputs:
    return locked_inputs(tmp_path)


def pack_bytes(inputs: Inputs, *, wheels: bool = True) -> bytes:
    sink = io.BytesIO()
    write_pixi_pack(
        platform=PLATFORM, conda=inputs.conda, wheels=inputs.wheels if wheels else [], sink=sink
    )
    return sink.getvalue()


def members_of(data: bytes) -> dict[str, bytes | None]:
    """Member name -> content (None for folders), in archive order."""
    found: dict[str, bytes | None] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        for member in archive:
            stream = archive.extractfile(member) if member.isfile() else None
            found[member.name] = stream.read() if stream else None
    return found


def read_json(data: bytes, name: str) -> Any:
    content = members_of(data)[name]
    assert content is not None
    return json.loads(content)


def lock_fields(package: FetchedPackage) -> dict[str, Any]:
    record = json.loads(package.package.record.to_json())
    return {k: v for k, v in record.items() if k not in ("fn", "url", "channel")}


# --- layout ------------------------------------------------------------------------------


def test_members_are_sorted_and_normalized(inputs: Inputs) -> None:
    data = pack_bytes(inputs)
    assert data[:2] != b"\x1f\x8b" and len(data) % 10240 == 0  # plain tar, whole records
    assert list(members_of(data)) == [
        "channel",
        "channel/linux-64",
        "channel/linux-64/foo-1.0-0.tar.bz2",
        "channel/linux-64/python-3.12.0-0.tar.bz2",
        "channel/linux-64/repodata.json",
        "channel/noarch",
        "channel/noarch/bar-2.0-0.conda",
        "channel/noarch/repodata.json",
        "environment.yml",
        "pixi-pack.json",
        "pypi",
        "pypi/tiny_wheel-1.0-py3-none-any.whl",
    ]
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        for member in archive.getmembers():
            assert (member.mtime, member.uid, member.gid) == (0, 0, 0)
            assert (member.uname, member.gname) == ("", "")
            assert member.mode == (0o755 if member.isdir() else 0o644)
            assert member.isdir() or member.isfile()


def test_package_and_wheel_bytes_are_unchanged(inputs: Inputs) -> None:
    members = members_of(pack_bytes(inputs))
    for path in inputs.files.values():
        assert members[f"channel/{path.parent.name}/{path.name}"] == path.read_bytes()
    wheel = inputs.wheels[0][1]
    assert members[f"pypi/{wheel.name}"] == wheel.read_bytes()


def test_metadata(inputs: Inputs) -> None:
    data = pack_bytes(inputs)
    assert members_of(data)["pixi-pack.json"] == (
        b'{\n  "version": "1",\n'
        + f'  "pixi-pack-version": "{PIXI_PACK_VERSION}",\n'.encode()
        + b'  "platform": "linux-64"\n}'
    )
    assert PIXI_PACK_VERSION.startswith("portenv/")
    assert str(rattler.Subdir(read_json(data, "pixi-pack.json")["platform"])) == PLATFORM


def test_environment_yml_pins_everything(inputs: Inputs) -> None:
    content = members_of(pack_bytes(inputs))["environment.yml"]
    assert content is not None
    assert yaml.safe_load(content) == {
        "channels": ["./channel", "nodefaults"],
        "dependencies": [
            "bar=2.0=0",
            "foo=1.0=0",
            "python=3.12.0=0",
            {"pip": ["--no-index", "--find-links ./pypi", "tiny-wheel==1.0"]},
        ],
    }


def test_without_wheels_there_is_no_pip_section_and_no_pypi_folder(inputs: Inputs) -> None:
    members = members_of(pack_bytes(inputs, wheels=False))
    assert not any(name == "pypi" or name.startswith("pypi/") for name in members)
    content = members["environment.yml"]
    assert content is not None
    assert "pip" not in content.decode()
    assert yaml.safe_load(content)["dependencies"] == ["bar=2.0=0", "foo=1.0=0", "python=3.12.0=0"]


def test_environment_yml_quotes_what_yaml_would_misread(tmp_path: Path) -> None:
    odd = PypiPackage("odd", "1.0: #x", "https://files.example.org/odd.whl", "wheel", None)
    text = environment_yml([], [(odd, tmp_path / "odd.whl")])
    assert '"odd==1.0: #x"' in text
    assert yaml.safe_load(text)["dependencies"][0]["pip"][-1] == "odd==1.0: #x"


# --- repodata ----------------------------------------------------------------------------


def test_repodata_holds_the_lock_records(inputs: Inputs) -> None:
    data = pack_bytes(inputs)
    by_name = {f.package.name: f for f in inputs.conda}
    assert read_json(data, "channel/linux-64/repodata.json") == {
        "info": {"subdir": "linux-64"},
        "packages": {
            "foo-1.0-0.tar.bz2": lock_fields(by_name["foo"]),
            "python-3.12.0-0.tar.bz2": lock_fields(by_name["python"]),
        },
        "packages.conda": {},
        "repodata_version": 2,
    }
    assert read_json(data, "channel/noarch/repodata.json") == {
        "info": {"subdir": "noarch"},
        "packages": {},
        "packages.conda": {"bar-2.0-0.conda": lock_fields(by_name["bar"])},
        "repodata_version": 2,
    }
    foo = read_json(data, "channel/linux-64/repodata.json")["packages"]["foo-1.0-0.tar.bz2"]
    assert foo["depends"] == LOCK_DEPENDS  # the lock's, not the package's `bar >=1`
    assert foo["sha256"] == hashlib.sha256(inputs.files["foo"].read_bytes()).hexdigest()
    assert not {"fn", "url", "channel"} & set(foo)


def test_noarch_repodata_is_written_even_when_empty(tmp_path: Path) -> None:
    data = pack_bytes(locked_inputs(tmp_path, with_noarch=False))
    assert read_json(data, "channel/noarch/repodata.json") == {
        "info": {"subdir": "noarch"},
        "packages": {},
        "packages.conda": {},
        "repodata_version": 2,
    }


# --- determinism and refusals ------------------------------------------------------------


def test_same_inputs_give_the_same_bytes(inputs: Inputs) -> None:
    first = pack_bytes(inputs)
    assert pack_bytes(inputs) == first
    reordered = Inputs(inputs.conda[::-1], inputs.wheels, inputs.files, inputs.lock)
    assert pack_bytes(reordered) == first


@pytest.mark.parametrize(
    ("kind", "url"),
    [
        ("sdist", "https://files.example.org/tiny_wheel-1.0.tar.gz"),
        ("git", "git+https://example.org/tiny.git@abc"),
        ("wheel", "https://files.example.org/not-a-wheel-name.whl"),
    ],
)
def test_a_pypi_entry_that_is_not_a_wheel_is_refused(inputs: Inputs, kind: Any, url: str) -> None:
    entry = PypiPackage("tiny-wheel", "1.0", url, kind, None)
    sink = io.BytesIO()
    with pytest.raises(OutputError) as caught:
        write_pixi_pack(
            platform=PLATFORM, conda=inputs.conda, wheels=[(entry, inputs.wheels[0][1])], sink=sink
        )
    assert "not a wheel" in caught.value.message and "\n" not in caught.value.message
    assert caught.value.hint and "--skip-pypi tiny-wheel" in caught.value.hint
    assert sink.getvalue() == b""  # refused before anything is written


def test_wheels_without_python_are_refused(inputs: Inputs) -> None:
    conda = [f for f in inputs.conda if f.package.name != "python"]
    with pytest.raises(OutputError, match="no conda python"):
        write_pixi_pack(platform=PLATFORM, conda=conda, wheels=inputs.wheels, sink=io.BytesIO())


def test_a_platform_that_is_not_a_subdir_is_refused(inputs: Inputs) -> None:
    with pytest.raises(OutputError, match="not a Linux platform"):
        write_pixi_pack(platform="linux", conda=inputs.conda, wheels=[], sink=io.BytesIO())


# --- read back as pixi-unpack does -------------------------------------------------------


def extract(data: bytes, target: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        archive.extractall(target, filter="data")


def test_rattler_reads_solves_and_installs_the_channel(inputs: Inputs, tmp_path: Path) -> None:
    unpacked = tmp_path / "unpacked"
    extract(pack_bytes(inputs), unpacked)
    channel = unpacked / "channel"

    # pixi-unpack: every folder of channel/ has a repodata.json; a record's file sits in the
    # folder its `subdir` names.
    listed: dict[str, Any] = {}
    for subdir in sorted(p for p in channel.iterdir() if p.is_dir()):
        repodata = rattler.RepoData.from_path(subdir / "repodata.json")
        for record in repodata.into_repo_data(rattler.Channel(channel.as_uri())):
            assert (channel / str(record.subdir) / record.file_name).is_file()
            listed[record.file_name] = record
    assert sorted(listed) == sorted(p.name for p in inputs.files.values())

    # conda/micromamba on environment.yml: the exact pins solve from ./channel alone.
    environment = yaml.safe_load((unpacked / "environment.yml").read_text())
    pins = [d for d in environment["dependencies"] if isinstance(d, str)]
    solved = asyncio.run(
        rattler.solve(
            [channel.as_uri()],
            [rattler.MatchSpec(pin) for pin in pins],  # lenient, as conda parses them
            gateway=rattler.Gateway(),
            platforms=[rattler.Subdir(PLATFORM), rattler.Subdir("noarch")],
            virtual_packages=[],
        )
    )
    assert sorted(f"{r.name.normalized}={r.version}={r.build}" for r in solved) == pins
    foo = next(r for r in solved if r.name.normalized == "foo")
    assert list(foo.depends) == LOCK_DEPENDS

    prefix = tmp_path / "env"
    asyncio.run(rattler.install(solved, prefix, cache_dir=tmp_path / "pkgs", show_progress=False))
    assert (prefix / "bin" / "foo").read_bytes() == b"#!/bin/sh\necho foo\n"
    assert (prefix / "share" / "bar.txt").read_bytes() == b"bar\n"  # from the .conda
