"""Checking portenv's SBOMs: CycloneDX 1.6 schema validity, and agreement with the archive.

The schema check is cyclonedx-python-lib's strict JSON validator with the schema it bundles
(formats such as date-time and iri-reference included), so nothing is fetched.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

__all__ = ["by_name", "read_sbom", "schema_errors", "sha256_of_file"]


def schema_errors(text: str) -> str | None:
    """What makes `text` not a valid CycloneDX 1.6 JSON document, or None when it is one."""
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if error is None:
        return None
    data: Any = error.data
    path = "/".join(str(p) for p in getattr(data, "absolute_path", ()))
    return f"{getattr(data, 'message', data)} (at /{path})"


def read_sbom(path: Path) -> dict[str, Any]:
    """The document at `path`, after checking it against the schema."""
    text = path.read_text(encoding="utf-8")
    problem = schema_errors(text)
    assert problem is None, problem
    document: dict[str, Any] = json.loads(text)
    return document


def by_name(components: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """Components by name (each name once)."""
    found = {str(c["name"]): c for c in components}
    assert len(found) == len(components), "two components share a name"
    return found


def sha256_of_file(path: Path) -> str:
    """The sha256 of a file, hex."""
    return hashlib.sha256(path.read_bytes()).hexdigest()
