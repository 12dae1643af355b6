"""Which package put each file into an environment: conda-meta, dist-info RECORDs, portenv.

A conda package lists its files in its conda-meta record, a PyPI distribution in its RECORD
(relative to site-packages). A ``__pycache__`` file compiled later belongs to the package of
its source file. portenv's own files (`.portenv/`, the relocation launcher, the activation
script, the certificate hook) and the bundled system libraries are groups of their own; what
is left belongs to the ``--python`` source's interpreter when the inventory has one.
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
import re
from collections.abc import Iterable, Mapping
from email.parser import HeaderParser

from packaging.utils import canonicalize_name

from portenv.seal.inventory import conda_source, license_of_metadata

__all__ = [
    "GROUP_NAMES",
    "LIBRARIES",
    "OTHER",
    "PORTENV",
    "attribute",
    "conda_meta",
    "package_key",
    "record_entries",
]

PORTENV = "group:portenv"
LIBRARIES = "group:libraries"
OTHER = "group:other"
GROUP_NAMES = {
    PORTENV: "portenv's own files",
    LIBRARIES: "bundled libraries",
    OTHER: "files of no package",
}
_PORTENV_FILES = re.compile(
    r"\.portenv/.*|bin/portenv-relocate|bin/activate|"
    r"(.+/)?site-packages/(portenv-certs\.pth|portenv_certs\.py|__pycache__/portenv_certs\..*)"
)
_DIST_INFO = re.compile(r"(?P<site>(.+/)?site-packages)/(?P<folder>[^/]+)\.dist-info/RECORD")
_PYC = re.compile(r"(?P<dir>(.+/)?)__pycache__/(?P<module>[^/.]+)\.[^/]+\.pyc")


def package_key(entry: Mapping[str, object]) -> str:
    """``KIND:NAME`` of an inventory entry (PyPI names normalized, as RECORD folders differ)."""
    kind, name = str(entry.get("kind", "")), str(entry.get("name", ""))
    return f"{kind}:{canonicalize_name(name) if kind == 'pypi' else name}"


def _json(data: bytes) -> dict[str, object]:
    try:
        value = json.loads(data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def conda_meta(records: Mapping[str, bytes]) -> dict[str, dict[str, object]]:
    """conda-meta's records (path -> record) that name a package."""
    found = {}
    for path, data in records.items():
        if path.startswith("conda-meta/"):
            record = _json(data)
            if isinstance(record.get("name"), str):
                found[path] = record
    return found


def _dist_name(folder: str, metadata: bytes | None) -> str:
    """A distribution's name: METADATA's ``Name``, else the dist-info folder's."""
    if metadata is not None:
        name = HeaderParser().parsestr(metadata.decode("utf-8", "replace")).get("Name")
        if name:
            return str(name)
    return folder.rsplit("-", 1)[0]


def _record_rows(data: bytes) -> list[str]:
    return [row[0] for row in csv.reader(io.StringIO(data.decode("utf-8", "replace"))) if row]


def attribute(
    paths: Iterable[str],
    records: Mapping[str, bytes],
    *,
    libraries: Iterable[str] = (),
    rest: str = OTHER,
) -> dict[str, str]:
    """The package key (or group) of every path; `rest` takes what nothing claims."""
    owners: dict[str, str] = {}
    for meta_path, record in conda_meta(records).items():
        key = f"conda:{record['name']}"
        listed = record.get("files")
        for file in listed if isinstance(listed, list) else []:
            owners.setdefault(str(file), key)
        owners.setdefault(meta_path, key)
    for path, data in records.items():
        match = _DIST_INFO.fullmatch(path)
        if match:
            site, folder = match["site"], match["folder"]
            metadata = records.get(f"{site}/{folder}.dist-info/METADATA")
            key = f"pypi:{canonicalize_name(_dist_name(folder, metadata))}"
            for row in _record_rows(data):
                owners.setdefault(posixpath.normpath(f"{site}/{row}"), key)
    for library in libraries:
        owners.setdefault(library, LIBRARIES)
    found: dict[str, str] = {}
    for path in paths:
        found[path] = owners.get(path) or _derived(path, owners) or rest
    return found


def _derived(path: str, owners: Mapping[str, str]) -> str | None:
    """portenv's own files; a compiled module's package is its source's."""
    if _PORTENV_FILES.fullmatch(path):
        return PORTENV
    match = _PYC.fullmatch(path)
    if match:
        return owners.get(f"{match['dir']}{match['module']}.py")
    return None


def record_entries(records: Mapping[str, bytes]) -> list[dict[str, object]]:
    """Inventory entries of the packages an environment's own records describe.

    For an environment without `.portenv/packages.json` (a conda prefix): conda-meta's
    records and the installed distributions' METADATA.
    """
    entries: list[dict[str, object]] = []
    for record in conda_meta(records).values():
        entries.append(_conda_entry(record))
    for path in sorted(records):
        match = _DIST_INFO.fullmatch(path)
        if match:
            base = f"{match['site']}/{match['folder']}.dist-info"
            entries.append(_dist_entry(match["folder"], records, base))
    return entries


def _conda_entry(record: Mapping[str, object]) -> dict[str, object]:
    channel = str(record.get("channel") or "").rstrip("/") or None
    url, subdir = str(record.get("url") or ""), str(record.get("subdir") or "")
    source = conda_source(url, channel, subdir) if url else None
    entry = {
        "kind": "conda",
        **{k: record.get(k) for k in ("name", "version", "build", "subdir", "url", "size")},
        **{k: record.get(k) for k in ("sha256", "md5", "license")},
        "source": source,
        "channel": channel if source == "channel" else None,
    }
    return {k: v for k, v in entry.items() if v not in (None, "")}


def _dist_entry(folder: str, records: Mapping[str, bytes], base: str) -> dict[str, object]:
    metadata = records.get(f"{base}/METADATA")
    text = metadata.decode("utf-8", "replace") if metadata is not None else ""
    headers = HeaderParser().parsestr(text)
    entry: dict[str, object] = {
        "kind": "pypi",
        "name": _dist_name(folder, metadata),
        "version": str(headers.get("Version") or folder.rsplit("-", 1)[-1]),
        "license": license_of_metadata(text),
        "source": _dist_source(records.get(f"{base}/direct_url.json")),
    }
    return {k: v for k, v in entry.items() if v is not None}


def _dist_source(direct_url: bytes | None) -> str:
    """PEP 610: a distribution installed from a direct reference says so; others came from an
    index."""
    if direct_url is None:
        return "index"
    data = _json(direct_url)
    url = str(data.get("url", ""))
    if "vcs_info" in data:
        return "git"
    if url.startswith("file:"):
        return "folder" if "dir_info" in data else "file"
    return "url"
