"""The CycloneDX document of an archive: schema-valid, one component per package, stable."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest
from packageurl import PackageURL

from portenv.errors import InputError
from portenv.write.sbom import publish_sbom, sbom_document, sbom_timestamp
from tests.support.sbom import by_name, read_sbom, schema_errors

SHA = "ab" * 32
CHANNEL = "https://example.invalid/my channel"
INVENTORY: list[dict[str, object]] = [
    {
        "kind": "conda",
        "name": "python",
        "version": "3.12.1",
        "build": "h1_0",
        "subdir": "linux-64",
        "url": f"{CHANNEL}/linux-64/python-3.12.1-h1_0.conda",
        "channel": CHANNEL,
        "source": "channel",
        "sha256": "01" * 32,
        "md5": "02" * 16,
        "license": "Python-2.0",
        "installed_size": 1234,
        "installed_files": 10,
    },
    {
        "kind": "conda",
        "name": "mine",
        "version": "0.1",
        "build": "0",
        "subdir": "noarch",
        "url": "file:///tmp/mine-0.1-0.tar.bz2",
        "channel": "file:///tmp",
        "source": "file",
        "sha256": "03" * 32,
        "license": "Apache-2.0 OR MIT",
    },
    {
        "kind": "pypi",
        "name": "Foo_Bar",
        "version": "1.0+local",
        "url": "https://example.invalid/files/Foo_Bar-1.0-py3-none-any.whl",
        "source": "index",
        "sha256": "04" * 32,
        "sha256_from": "lock",
        "built_from_source": False,
        "license": "MIT License",
    },
    {
        "kind": "pypi",
        "name": "tool",
        "version": "2.0",
        "url": "direct+https://example.invalid/dl/tool-2.0.whl",
        "source": "url",
        "sha256": "05" * 32,
        "license": "mit",
    },
    {
        "kind": "pypi",
        "name": "from-git",
        "version": "0.3",
        "url": "git+https://example.invalid/repo.git?rev=main#" + "c0ffee" * 6 + "abcd",
        "source": "git",
        "license": "Apache-2.0+",
        "commit": "c0ffee" * 6 + "abcd",
        "built_from_source": True,
    },
    {
        "kind": "pypi",
        "name": "local",
        "version": "1",
        "url": "./wheels/local-1-py3-none-any.whl",
        "source": "file",
        "sha256": "06" * 32,
        "license": "LicenseRef-Mine",
    },
    {"kind": "pypi", "name": "folder", "version": "1", "url": "./src", "source": "folder"},
    {
        "kind": "pypi",
        "name": "pip",
        "version": "24.0",
        "url": "ensurepip://lib/python3.12/ensurepip/_bundled/pip-24.0-py3-none-any.whl",
        "source": "interpreter",
        "sha256": "ab" * 32,
    },
    {"kind": "library", "name": "libssl.so.3", "version": "3.0.15", "sha256": "07" * 32},
    {"kind": "cpython", "name": "cpython", "version": "3.12.8", "license": "Python-2.0"},
]


def document(
    inventory: list[dict[str, object]] = INVENTORY,
    sha256: str = SHA,
    *,
    name: str = "env.sh",
    properties: dict[str, str] | None = None,
    timestamp: str | None = None,
) -> dict[str, object]:
    return sbom_document(
        inventory,
        archive_name=name,
        archive_sha256=sha256,
        properties=properties,
        timestamp=timestamp,
    )


def components(doc: Mapping[str, object]) -> dict[str, Mapping[str, object]]:
    found = doc["components"]
    assert isinstance(found, list)
    return dict(by_name(found))


def test_document_is_valid_cyclonedx_1_6_with_one_component_per_package() -> None:
    doc = document(properties={"platform": "linux-64"}, timestamp="2024-01-02T03:04:05Z")
    assert schema_errors(json.dumps(doc)) is None
    assert doc["specVersion"] == "1.6" and doc["bomFormat"] == "CycloneDX"
    assert set(components(doc)) == {str(e["name"]) for e in INVENTORY}
    metadata = doc["metadata"]
    assert isinstance(metadata, dict)
    assert metadata["timestamp"] == "2024-01-02T03:04:05Z"
    archive = metadata["component"]
    assert archive["name"] == "env.sh" and archive["type"] == "file"
    assert archive["hashes"] == [{"alg": "SHA-256", "content": SHA}]
    refs = [c["bom-ref"] for c in components(doc).values()]
    assert doc["dependencies"] == [{"ref": archive["bom-ref"], "dependsOn": refs}]


def test_the_schema_check_can_fail() -> None:
    """The validator the tests rely on does reject a broken document."""
    doc = document()
    doc["serialNumber"] = "not-a-urn"
    assert schema_errors(json.dumps(doc)) is not None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param(
            "python",
            (
                "conda",
                "python",
                "3.12.1",
                {"build": "h1_0", "channel": CHANNEL, "subdir": "linux-64", "type": "conda"},
            ),
            id="conda-channel",
        ),
        pytest.param("mine", None, id="conda-local-file"),
        pytest.param("Foo_Bar", ("pypi", "foo-bar", "1.0+local", {}), id="pypi-index"),
        pytest.param(
            "tool",
            ("pypi", "tool", "2.0", {"download_url": "https://example.invalid/dl/tool-2.0.whl"}),
            id="pypi-url",
        ),
        pytest.param(
            "from-git",
            (
                "pypi",
                "from-git",
                "0.3",
                {"vcs_url": "git+https://example.invalid/repo.git@" + "c0ffee" * 6 + "abcd"},
            ),
            id="pypi-git",
        ),
        pytest.param("local", None, id="pypi-local-file"),
        pytest.param("folder", None, id="pypi-folder"),
        pytest.param("pip", ("pypi", "pip", "24.0", {}), id="pypi-ensurepip"),
        pytest.param("libssl.so.3", None, id="bundled-library"),
        pytest.param("cpython", None, id="interpreter"),
    ],
)
def test_purls_follow_the_purl_spec(
    name: str, expected: tuple[str, str, str, dict[str, str]] | None
) -> None:
    component = components(document())[name]
    if expected is None:
        assert "purl" not in component
        return
    purl = PackageURL.from_string(str(component["purl"]))
    assert (purl.type, purl.name, purl.version, purl.qualifiers) == expected
    assert purl.namespace is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("python", [{"license": {"id": "Python-2.0"}}], id="spdx-id"),
        pytest.param("tool", [{"license": {"id": "MIT"}}], id="spdx-id-canonical-case"),
        pytest.param("mine", [{"expression": "Apache-2.0 OR MIT"}], id="expression"),
        pytest.param("local", [{"expression": "LicenseRef-Mine"}], id="license-ref"),
        pytest.param("Foo_Bar", [{"license": {"name": "MIT License"}}], id="not-spdx"),
        pytest.param("from-git", [{"expression": "Apache-2.0+"}], id="or-later"),
        pytest.param("folder", None, id="unknown"),
    ],
)
def test_licences_are_spdx_when_they_can_be(
    name: str, expected: list[dict[str, object]] | None
) -> None:
    assert components(document())[name].get("licenses") == expected


def test_hashes_are_the_package_files() -> None:
    found = components(document())
    assert found["python"]["hashes"] == [
        {"alg": "SHA-256", "content": "01" * 32},
        {"alg": "MD5", "content": "02" * 16},
    ]
    assert found["Foo_Bar"]["hashes"] == [{"alg": "SHA-256", "content": "04" * 32}]
    assert "hashes" not in found["from-git"] and "hashes" not in found["folder"]
    broken: list[dict[str, object]] = [
        {"kind": "pypi", "name": "x", "version": "1", "sha256": "zz"}
    ]
    assert "hashes" not in components(document(broken))["x"]


def test_inventory_facts_become_properties() -> None:
    properties = components(document())["python"]["properties"]
    assert isinstance(properties, list)
    values = {p["name"]: p["value"] for p in properties}
    assert values["portenv:kind"] == "conda" and values["portenv:source"] == "channel"
    assert values["portenv:installed_size"] == "1234"
    assert values["portenv:installed_files"] == "10"
    git = components(document())["from-git"]["properties"]
    assert isinstance(git, list)
    assert {"name": "portenv:built_from_source", "value": "true"} in git


def test_serial_number_is_derived_from_the_archive() -> None:
    first, again, other = document(), document(), document(sha256="cd" * 32)
    assert first == again
    assert first["serialNumber"] != other["serialNumber"]
    assert str(first["serialNumber"]).startswith("urn:uuid:")


def test_same_name_twice_gets_distinct_refs() -> None:
    entry: dict[str, object] = {"kind": "pypi", "name": "dup", "version": "1"}
    doc = document([entry, dict(entry)])
    found = doc["components"]
    assert isinstance(found, list)
    assert len({c["bom-ref"] for c in found}) == 2
    assert schema_errors(json.dumps(doc)) is None


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        pytest.param({}, None, id="unset"),
        pytest.param({"SOURCE_DATE_EPOCH": ""}, None, id="empty"),
        pytest.param({"SOURCE_DATE_EPOCH": "0"}, "1970-01-01T00:00:00Z", id="epoch"),
        pytest.param({"SOURCE_DATE_EPOCH": "1700000000"}, "2023-11-14T22:13:20Z", id="later"),
    ],
)
def test_timestamp_comes_from_source_date_epoch(
    environ: dict[str, str], expected: str | None
) -> None:
    assert sbom_timestamp(environ) == expected


def test_a_bad_source_date_epoch_is_refused() -> None:
    with pytest.raises(InputError, match="SOURCE_DATE_EPOCH") as caught:
        sbom_timestamp({"SOURCE_DATE_EPOCH": "yesterday"})
    assert caught.value.hint


def test_publish_writes_beside_the_archive(tmp_path: Path) -> None:
    archive = tmp_path / "env.tar"
    archive.write_bytes(b"archive")
    path = publish_sbom(archive, INVENTORY, SHA, timestamp="2024-01-02T03:04:05Z")
    assert path == tmp_path / "env.tar.cdx.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["env.tar", "env.tar.cdx.json"]
    written = read_sbom(path)
    expected = document(name="env.tar", timestamp="2024-01-02T03:04:05Z")
    assert written == json.loads(json.dumps(expected))


def test_the_interpreter_is_a_platform_with_a_cpe() -> None:
    """The conda-free source's CPython: no purl, but the CPE scanners match CPython by."""
    found = components(document())
    component = found.pop("cpython")
    assert component["type"] == "platform"
    assert component["cpe"] == "cpe:2.3:a:python:python:3.12.8:*:*:*:*:*:*:*"
    assert component["licenses"] == [{"license": {"id": "Python-2.0"}}]
    others = found.values()
    assert all("cpe" not in c and c["type"] == "library" for c in others)
