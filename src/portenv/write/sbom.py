"""The CycloneDX 1.6 SBOM of an archive (``OUTPUT.cdx.json``), made from its inventory alone.

One component per inventory entry (the `.portenv/packages.json` of a portenv archive, the
packages of a pixi-pack archive), the archive itself as ``metadata.component``. The document
is as reproducible as the archive: its serial number is derived from the archive's sha256,
and its timestamp is ``SOURCE_DATE_EPOCH``'s, or absent when that is not set. See
docs/format.md ("The SBOM") for the purl and licence rules.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import urllib.parse
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

from packaging.licenses import InvalidLicenseExpression, canonicalize_license_expression
from packaging.utils import canonicalize_name

from portenv import __version__
from portenv.errors import InputError
from portenv.write.atomic import atomic_output

__all__ = [
    "SBOM_SUFFIX",
    "inventory_entries",
    "publish_sbom",
    "read_inventory",
    "sbom_document",
    "sbom_timestamp",
    "shipped_inventory",
]

SBOM_SUFFIX = ".cdx.json"
SPEC_VERSION = "1.6"
ARCHIVE_REF = "archive"
"""The bom-ref of ``metadata.component``, the archive."""
_SERIALS = uuid.uuid5(uuid.NAMESPACE_URL, "urn:portenv:sbom")
"""Namespace of the serial numbers: the same archive always gets the same one."""
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MD5 = re.compile(r"[0-9a-f]{32}")
_PROPERTIES = (
    "source",
    "path",
    "channel",
    "build",
    "subdir",
    "installed_size",
    "installed_files",
    "built_from_source",
    "sha256_from",
    "commit",
)
"""Inventory keys carried as ``portenv:KEY`` properties when an entry has them."""


def read_inventory(prefix: Path) -> list[dict[str, object]]:
    """The inventory a sealed prefix ships: `.portenv/packages.json`, then one entry of kind
    ``library`` per shared library `.portenv/bundled.json` says was copied from the build
    machine (name, its path in the env, the sha256 of that file), which `sbom_document` turns
    into components without a purl."""
    records = [prefix / ".portenv" / name for name in ("packages.json", "bundled.json")]
    packages, bundled = (path.read_bytes() if path.is_file() else None for path in records)
    return shipped_inventory(packages, bundled, lambda relative: _sha256_of(prefix / relative))


def _sha256_of(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def shipped_inventory(
    packages: bytes | None, bundled: bytes | None, sha256_of: Callable[[str], str | None]
) -> list[dict[str, object]]:
    """`read_inventory` from the two records' bytes, for readers of archives that are not
    unpacked; `sha256_of` gives the digest of a file of the environment (path relative)."""
    return inventory_entries(packages) + _library_entries(bundled, sha256_of)


def inventory_entries(data: bytes | None) -> list[dict[str, object]]:
    """The entries of a `.portenv/packages.json` (none when it is missing or not a JSON list)."""
    try:
        entries = json.loads(data) if data is not None else []
    except ValueError:
        return []
    return [dict(e) for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def _library_entries(
    data: bytes | None, sha256_of: Callable[[str], str | None]
) -> list[dict[str, object]]:
    try:
        record = json.loads(data) if data is not None else {}
    except ValueError:
        return []
    listed = record.get("bundled", []) if isinstance(record, dict) else []
    entries: list[dict[str, object]] = []
    for library in listed if isinstance(listed, list) else []:
        if not isinstance(library, dict):
            continue
        entries.append(
            {
                "kind": "library",
                "name": str(library.get("name", "")),
                "path": str(library.get("path", "")),
                "source": "file",
                "sha256": sha256_of(str(library.get("path", ""))),
                "installed_size": library.get("size"),
            }
        )
    return entries


def sbom_timestamp(environ: Mapping[str, str] | None = None) -> str | None:
    """``SOURCE_DATE_EPOCH`` as an ISO 8601 UTC time, or None when it is not set."""
    value = (os.environ if environ is None else environ).get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return None
    try:
        moment = datetime.fromtimestamp(int(value), tz=timezone.utc)
    except (ValueError, OverflowError, OSError) as exc:
        msg = f"SOURCE_DATE_EPOCH is not a number of seconds: {value!r}"
        hint = "set it to a Unix time, e.g. $(git log -1 --format=%ct), or unset it"
        raise InputError(msg, hint=hint) from exc
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _quote(text: str) -> str:
    """Percent-encode a purl part (``:`` and ``/`` stay, as the purl spec allows in values)."""
    return urllib.parse.quote(text, safe=":/")


def _purl(entry: Mapping[str, object]) -> str | None:
    """The package URL of an entry that can be fetched again from where it came from.

    Files and source folders of the build machine get none: their hashes identify them. The
    wheels an interpreter bundles (ensurepip's pip) are PyPI's own, so they keep theirs.
    """
    kind, source = entry.get("kind"), entry.get("source")
    name, version = str(entry.get("name", "")), str(entry.get("version", ""))
    qualifiers: dict[str, str] = {}
    if kind == "conda" and source == "channel":
        base = f"pkg:conda/{_quote(name)}@{_quote(version)}"
        file_name = str(entry.get("url", "")).rsplit("/", 1)[-1]
        qualifiers = {
            "build": str(entry.get("build", "")),
            "channel": str(entry.get("channel", "")),
            "subdir": str(entry.get("subdir", "")),
            "type": "tar.bz2" if file_name.endswith(".tar.bz2") else "conda",
        }
    elif kind == "pypi" and source in ("index", "url", "git", "interpreter"):
        base = f"pkg:pypi/{_quote(canonicalize_name(name))}@{_quote(version)}"
        url = str(entry.get("url", "")).removeprefix("direct+")
        if source == "url":
            qualifiers = {"download_url": url}
        elif source == "git":
            repository = url.split("#", 1)[0].split("?", 1)[0]
            qualifiers = {"vcs_url": f"{repository}@{entry.get('commit', '')}"}
    else:
        return None
    pairs = "&".join(f"{k}={_quote(v)}" for k, v in sorted(qualifiers.items()) if v)
    return f"{base}?{pairs}" if pairs else base


def _licenses(text: object) -> list[dict[str, object]]:
    """A declared licence: an SPDX id, an SPDX expression, or else a name as declared.

    ``ID+`` ("or later") is an expression, not an id of the SPDX list CycloneDX checks ids
    against.
    """
    if not isinstance(text, str) or not text.strip():
        return []
    try:
        expression = canonicalize_license_expression(text)
    except InvalidLicenseExpression:
        return [{"license": {"name": text.strip()}}]
    if re.fullmatch(r"[A-Za-z0-9.-]+", expression) and not expression.startswith("LicenseRef-"):
        return [{"license": {"id": expression}}]
    return [{"expression": expression}]


def _hashes(entry: Mapping[str, object]) -> list[dict[str, str]]:
    found = []
    for key, alg, pattern in (("sha256", "SHA-256", _SHA256), ("md5", "MD5", _MD5)):
        value = entry.get(key)
        if isinstance(value, str) and pattern.fullmatch(value):
            found.append({"alg": alg, "content": value})
    return found


def _reference(entry: Mapping[str, object]) -> list[dict[str, str]]:
    """Where the package file came from, when that is a URL (a path is left to properties)."""
    url = str(entry.get("url", "")).removeprefix("direct+").split("#", 1)[0]
    if not re.match(r"[a-z][a-z0-9+.-]*://", url):
        return []
    kind = "vcs" if entry.get("source") == "git" else "distribution"
    return [{"type": kind, "url": urllib.parse.quote(url, safe=":/?#[]@!$&'()*+,;=%~")}]


def _cpe(entry: Mapping[str, object]) -> str | None:
    """The interpreter of the conda-free source has no purl; its CPE (NVD's name for CPython)
    lets vulnerability scanners match it."""
    version = str(entry.get("version", ""))
    if entry.get("kind") != "cpython" or not re.fullmatch(r"[0-9.]+", version):
        return None
    return f"cpe:2.3:a:python:python:{version}:*:*:*:*:*:*:*"


def _component(entry: Mapping[str, object], ref: str) -> dict[str, object]:
    kind = "platform" if entry.get("kind") == "cpython" else "library"
    component: dict[str, object] = {"type": kind, "bom-ref": ref}
    component["name"] = str(entry.get("name", ""))
    if entry.get("version"):
        component["version"] = str(entry["version"])
    optional: list[tuple[str, object]] = [
        ("hashes", _hashes(entry)),
        ("licenses", _licenses(entry.get("license"))),
        ("cpe", _cpe(entry)),
        ("purl", _purl(entry)),
        ("externalReferences", _reference(entry)),
    ]
    component.update((key, value) for key, value in optional if value)
    properties = [{"name": "portenv:kind", "value": str(entry.get("kind", ""))}]
    properties += [
        {"name": f"portenv:{key}", "value": str(entry[key]).lower()}
        if isinstance(entry[key], bool)
        else {"name": f"portenv:{key}", "value": str(entry[key])}
        for key in _PROPERTIES
        if entry.get(key) not in (None, "")
    ]
    component["properties"] = properties
    return component


def _ref_of(entry: Mapping[str, object], taken: set[str]) -> str:
    """A bom-ref unique within the document: kind:name@version[-build]."""
    ref = f"{entry.get('kind', '')}:{entry.get('name', '')}@{entry.get('version', '')}"
    if entry.get("build"):
        ref += f"-{entry['build']}"
    unique, number = ref, 1
    while unique in taken or unique == ARCHIVE_REF:
        number += 1
        unique = f"{ref}#{number}"
    taken.add(unique)
    return unique


def sbom_document(
    inventory: Sequence[Mapping[str, object]],
    *,
    archive_name: str,
    archive_sha256: str | None,
    properties: Mapping[str, str] | None = None,
    timestamp: str | None = None,
) -> dict[str, object]:
    """The CycloneDX 1.6 document of an archive and the packages its inventory lists.

    `archive_sha256` is None for what has no file to hash (an unpacked environment, a
    pixi-pack folder): the archive component then has no hash, and the serial number derives
    from the components instead, so it stays reproducible.
    """
    ordered = sorted(
        inventory, key=lambda e: (str(e.get("kind")), str(e.get("name")), str(e.get("version")))
    )
    taken: set[str] = set()
    components = [_component(entry, _ref_of(entry, taken)) for entry in ordered]
    archive: dict[str, object] = {
        "type": "file",
        "bom-ref": ARCHIVE_REF,
        "name": archive_name,
    }
    if archive_sha256 is not None:
        archive["hashes"] = [{"alg": "SHA-256", "content": archive_sha256}]
    if properties:
        archive["properties"] = [
            {"name": f"portenv:{k}", "value": v} for k, v in sorted(properties.items())
        ]
    metadata: dict[str, object] = {} if timestamp is None else {"timestamp": timestamp}
    metadata["tools"] = {
        "components": [{"type": "application", "name": "portenv", "version": __version__}]
    }
    metadata["component"] = archive
    return {
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": f"urn:uuid:{uuid.uuid5(_SERIALS, archive_sha256 or _digest(components))}",
        "version": 1,
        "metadata": metadata,
        "components": components,
        "dependencies": [
            {"ref": ARCHIVE_REF, "dependsOn": [str(c["bom-ref"]) for c in components]}
        ],
    }


def _digest(components: Sequence[Mapping[str, object]]) -> str:
    """A stand-in for the archive's sha256 in the serial number: that of the components."""
    return hashlib.sha256(json.dumps(components, sort_keys=True).encode()).hexdigest()


def publish_sbom(
    written: Path,
    inventory: Sequence[Mapping[str, object]],
    sha256: str | None,
    *,
    properties: Mapping[str, str] | None = None,
    timestamp: str | None = None,
    output: Path | None = None,
) -> Path:
    """Write ``OUTPUT.cdx.json`` beside the archive `written` (atomically, like OUTPUT.sha256),
    or to `output`.

    `timestamp` comes from `sbom_timestamp`, read before any work so that a bad
    ``SOURCE_DATE_EPOCH`` stops the pack before anything is written.
    """
    document = sbom_document(
        inventory,
        archive_name=written.name,
        archive_sha256=sha256,
        properties=properties,
        timestamp=timestamp,
    )
    path = output or written.with_name(written.name + SBOM_SUFFIX)
    with atomic_output(path) as stream:
        stream.write((json.dumps(document, indent=2) + "\n").encode())
    return path
