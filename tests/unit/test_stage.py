"""Staging: the placeholder fits every package's binary placeholder, and seal finds it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from portenv.errors import RelocationError
from portenv.model import CondaPackage, FetchedPackage
from portenv.stage import DEFAULT_PREFIX_MAX, make_placeholder, prefix_capacity
from tests.support.condapkg import PackageFile, make_conda_package


def fetched(path: Path, name: str) -> FetchedPackage:
    data = path.read_bytes()
    package = CondaPackage(
        name=name,
        version="1.0",
        build="0",
        subdir="linux-64",
        url=path.as_uri(),
        file_name=path.name,
        sha256=hashlib.sha256(data).hexdigest(),
        md5=None,
        size=len(data),
    )
    return FetchedPackage(package, path)


def binary_with(placeholder: str) -> bytes:
    return b"\x7fELF\0\0" + placeholder.encode() + b"/share/data\0" + b"\0" * 8


@pytest.mark.parametrize("length", [255, 100, 40, 16])
def test_placeholder_has_the_exact_length(length: int) -> None:
    placeholder = make_placeholder(length)
    assert len(placeholder) == length
    assert placeholder.startswith("/portenv_placehold"[:length])


def test_capacity_is_the_shortest_binary_placeholder(tmp_path: Path) -> None:
    old = "/opt/anaconda1anaconda2anaconda3/and_some_more_x"
    long = "/" + "p" * 254
    short = make_conda_package(
        tmp_path, "old-tool", [PackageFile("bin/old", binary_with(old), old, "binary")]
    )
    modern = make_conda_package(
        tmp_path, "new-tool", [PackageFile("bin/new", binary_with(long), long, "binary")]
    )
    text_only = make_conda_package(
        tmp_path, "conf", [PackageFile("etc/c", b"/x/y\n", "/x", "text")]
    )
    packages = [fetched(modern, "new-tool"), fetched(text_only, "conf")]
    assert prefix_capacity(packages) == DEFAULT_PREFIX_MAX
    assert prefix_capacity([*packages, fetched(short, "old-tool")]) == len(old)


def test_a_tiny_binary_placeholder_is_refused(tmp_path: Path) -> None:
    tiny = "/opt/x"
    archive = make_conda_package(
        tmp_path, "tiny", [PackageFile("bin/t", binary_with(tiny), tiny, "binary")]
    )
    with pytest.raises(RelocationError, match="reserves only 6 bytes"):
        prefix_capacity([fetched(archive, "tiny")])
