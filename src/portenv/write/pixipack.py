"""Write the pixi-pack archive format, so teams using ``pixi-unpack`` can install portenv's output.

The layout follows Quantco/pixi-pack (README "Usage" and ``src/pack.rs``; what is read back is
``src/unpack.rs``): one plain, uncompressed tar holding

* ``pixi-pack.json``: ``{"version": "1", "pixi-pack-version": ..., "platform": <subdir>}``;
  pixi-unpack refuses any format version but ``"1"`` and any platform but its own, and only
  warns when ``pixi-pack-version`` is not its own version, so portenv names itself there;
* ``environment.yml``: the local channel plus ``nodefaults`` and one ``name=version=build`` pin
  per conda package, then a ``pip:`` list (``--no-index``, ``--find-links ./pypi``, one
  ``name==version`` pin per wheel) when there are wheels. pixi-unpack ignores this file; it is
  for ``conda``/``micromamba`` on targets without pixi-unpack;
* ``channel/<subdir>/<file>``: each conda package with the bytes as downloaded, and one
  ``channel/<subdir>/repodata.json`` per subdir, built from the LOCK's records (so repodata
  patches recorded in the lock survive), without the record-only keys ``fn``/``url``/``channel``;
* ``pypi/<wheel>``: each wheel, under its PEP 427 file name (pixi-unpack parses every file name
  there as a wheel name, and needs a conda ``python`` package once ``pypi/`` exists).

Same inputs, same bytes: members sorted (parents first), mtime 0, owner 0/0 without names,
modes 0755/0644, JSON with sorted keys and a fixed indent.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from portenv import __version__
from portenv.errors import OutputError
from portenv.model import FetchedPackage, PypiPackage
from portenv.platforms import SUBDIR_ARCH

__all__ = [
    "CHANNEL_DIR",
    "ENVIRONMENT_FILE",
    "METADATA_FILE",
    "PIXI_PACK_FORMAT",
    "PIXI_PACK_VERSION",
    "PYPI_DIR",
    "write_pixi_pack",
]

PIXI_PACK_FORMAT = "1"
"""The pack format version; pixi-unpack refuses any other."""
PIXI_PACK_VERSION = f"portenv/{__version__}"
"""What writes the pack. pixi-unpack only warns when this is not its own version."""
METADATA_FILE = "pixi-pack.json"
ENVIRONMENT_FILE = "environment.yml"
CHANNEL_DIR = "channel"
PYPI_DIR = "pypi"
REPODATA_FILE = "repodata.json"

_RECORD_ONLY_KEYS = ("fn", "url", "channel")
"""Keys a lock's RepoDataRecord has beyond the repodata.json PackageRecord."""
_PLAIN_YAML = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+!=<>*,-]*")

Content = bytes | Path | None
"""A member: bytes to write, a file to copy, or None for a folder."""


def _refuse(message: str, hint: str) -> OutputError:
    return OutputError(message, hint=hint)


def _plain_name(name: str, what: str) -> str:
    """A file name that stays one member inside its folder."""
    if not name or name in {".", ".."} or "/" in name or "\\" in name or "\0" in name:
        msg = f"{what} has an unusable file name: {name!r}"
        raise _refuse(msg, "re-create the lock file; its file names are not plain names")
    return name


def _record_json(fetched: FetchedPackage) -> dict[str, Any]:
    """The lock's record as repodata.json holds it: every field but the record-only keys."""
    package = fetched.package
    if package.record is None:
        msg = f"conda package {package.name} has no lock record"
        raise ValueError(msg)
    raw = package.record.to_json()
    data: dict[str, Any] = json.loads(raw) if isinstance(raw, str) else dict(raw)
    for key in _RECORD_ONLY_KEYS:
        data.pop(key, None)
    if data.get("subdir") != package.subdir:
        msg = f"the lock record of {package.file_name} names subdir {data.get('subdir')!r}"
        raise _refuse(msg, "re-create the lock file; it is inconsistent")
    return data


def _map_key(file_name: str) -> str:
    """``packages.conda`` for ``.conda`` files, ``packages`` for ``.tar.bz2`` (conda's layout)."""
    if file_name.endswith(".conda"):
        return "packages.conda"
    if file_name.endswith(".tar.bz2"):
        return "packages"
    msg = f"{file_name} is neither a .conda nor a .tar.bz2 package"
    raise _refuse(msg, "re-create the lock file; it names an unknown package type")


def _json_bytes(value: object, *, sort_keys: bool) -> bytes:
    return json.dumps(value, indent=2, sort_keys=sort_keys, ensure_ascii=False).encode("utf-8")


def _conda_members(platform: str, conda: Sequence[FetchedPackage]) -> dict[str, Content]:
    """Package files and one repodata.json per subdir (noarch always, so conda sees a channel)."""
    subdirs: dict[str, dict[str, dict[str, Any]]] = {
        subdir: {"packages": {}, "packages.conda": {}} for subdir in (platform, "noarch")
    }
    members: dict[str, Content] = {CHANNEL_DIR: None}
    for fetched in conda:
        package = fetched.package
        name = _plain_name(package.file_name, f"conda package {package.name}")
        if package.subdir not in subdirs:
            msg = f"conda package {name} is for {package.subdir}, not {platform} or noarch"
            raise _refuse(msg, f"re-create the lock file for {platform}")
        path = f"{CHANNEL_DIR}/{package.subdir}/{name}"
        if path in members:
            msg = f"conda package {name} is listed twice for {package.subdir}"
            raise _refuse(msg, "re-create the lock file; it names the same file twice")
        members[path] = fetched.path
        subdirs[package.subdir][_map_key(name)][name] = _record_json(fetched)
    for subdir, maps in subdirs.items():
        repodata = {"info": {"subdir": subdir}, **maps, "repodata_version": 2}
        members[f"{CHANNEL_DIR}/{subdir}"] = None
        members[f"{CHANNEL_DIR}/{subdir}/{REPODATA_FILE}"] = _json_bytes(repodata, sort_keys=True)
    return members


def _wheel_file_name(package: PypiPackage) -> str:
    """The wheel's file name as the lock locates it (percent-decoded for URLs)."""
    name = package.file_name
    return urllib.parse.unquote(name) if "://" in package.url else name


def _not_a_wheel(package: PypiPackage, detail: str) -> OutputError:
    msg = f"PyPI package {package.name} {package.version} is not a wheel ({detail})"
    return _refuse(
        msg,
        "the pixi-pack format installs wheels only: lock a wheel for it, "
        f"or leave it out with --skip-pypi {package.name}",
    )


def _pypi_members(
    wheels: Sequence[tuple[PypiPackage, Path]], conda: Sequence[FetchedPackage]
) -> dict[str, Content]:
    if not wheels:
        return {}
    members: dict[str, Content] = {PYPI_DIR: None}
    for package, path in wheels:
        if package.kind != "wheel":
            raise _not_a_wheel(package, f"{package.kind}: {package.file_name}")
        name = _plain_name(_wheel_file_name(package), f"PyPI package {package.name}")
        try:
            parse_wheel_filename(name)
        except InvalidWheelFilename as exc:
            raise _not_a_wheel(package, str(exc)) from exc
        if f"{PYPI_DIR}/{name}" in members:
            msg = f"wheel {name} is listed twice"
            raise _refuse(msg, "re-create the lock file; it names the same wheel twice")
        members[f"{PYPI_DIR}/{name}"] = path
    if not any(f.package.name == "python" for f in conda):
        msg = "the environment has PyPI wheels but no conda python package"
        raise _refuse(msg, "add python to the environment: pixi-unpack installs wheels with it")
    return members


def _yaml_scalar(text: str) -> str:
    """The text as a YAML plain scalar when it is one, else double-quoted."""
    return text if _PLAIN_YAML.fullmatch(text) else json.dumps(text)


def environment_yml(
    conda: Sequence[FetchedPackage], wheels: Sequence[tuple[PypiPackage, Path]]
) -> str:
    """Exact conda pins from the local channel, then the wheels through pip without an index."""
    lines = ["channels:", f"  - ./{CHANNEL_DIR}", "  - nodefaults", "dependencies:"]
    packages = sorted((f.package for f in conda), key=lambda p: (p.name, p.version, p.build))
    lines += [f"  - {_yaml_scalar(f'{p.name}={p.version}={p.build}')}" for p in packages]
    if wheels:
        lines += ["  - pip:", "    - --no-index", f"    - --find-links ./{PYPI_DIR}"]
        pins = sorted(f"{canonicalize_name(p.name)}=={p.version}" for p, _path in wheels)
        lines += [f"    - {_yaml_scalar(pin)}" for pin in pins]
    return "\n".join(lines) + "\n"


def _header(name: str, content: Content) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if content is None:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.mode = 0o644
    return info


def _write_tar(members: Mapping[str, Content], sink: BinaryIO) -> None:
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.GNU_FORMAT) as archive:
        for name in sorted(members, key=lambda n: n.split("/")):
            content = members[name]
            info = _header(name, content)
            if content is None:
                archive.addfile(info)
            elif isinstance(content, bytes):
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
            else:
                try:
                    stream = content.open("rb")
                except OSError as exc:
                    msg = f"cannot read {content} for {name}: {exc.strerror}"
                    raise _refuse(msg, "run the pack again to fetch it anew") from exc
                with stream:
                    info.size = os.fstat(stream.fileno()).st_size
                    archive.addfile(info, stream)


def write_pixi_pack(
    *,
    platform: str,
    conda: Sequence[FetchedPackage],
    wheels: Sequence[tuple[PypiPackage, Path]],
    sink: BinaryIO,
) -> None:
    """Write a pixi-pack archive of the locked environment to `sink`.

    `platform` is the conda subdir of the target (``linux-64``, ...): pixi-unpack installs the
    pack only on a machine of that platform. `wheels` are (lock entry, wheel file) pairs; any
    entry that is not a wheel is refused.
    """
    if platform not in SUBDIR_ARCH:
        msg = f"platform {platform!r} is not a Linux platform portenv can pack for"
        raise _refuse(msg, f"choose one of: {', '.join(SUBDIR_ARCH)}")
    metadata = {
        "version": PIXI_PACK_FORMAT,
        "pixi-pack-version": PIXI_PACK_VERSION,
        "platform": platform,
    }
    members: dict[str, Content] = {
        METADATA_FILE: _json_bytes(metadata, sort_keys=False),
        ENVIRONMENT_FILE: environment_yml(conda, wheels).encode("utf-8"),
    }
    members.update(_conda_members(platform, conda))
    members.update(_pypi_members(wheels, conda))
    _write_tar(members, sink)
