"""A STAND-IN for a python-build-standalone (PBS) archive, made from a local CPython.

Real PBS archives are published on GitHub only, which this machine cannot reach, and no
package on PyPI, npm or Debian's archive ships one. So the tests build an archive of the
same shape from a pyenv CPython, following PBS's documented distribution format:

- ``install_only`` (``cpython-X.Y.Z+TAG-TRIPLE-install_only.tar.gz``): every member under
  ``python/``: ``bin/python3.X`` (``python3``, ``python`` link to it) with an
  ``$ORIGIN/../lib`` rpath, ``lib/libpython3.X.so.1.0``, ``lib/python3.X/`` (the standard
  library with ``lib-dynload/``, and pip pre-installed in ``site-packages``), ``include/``, and
  a ``_sysconfigdata_*.py`` that records PBS's build prefix ``/install``. An install_only
  archive has no PYTHON.json: PBS's release tool keeps only the members of ``python/install/``.
- ``full`` (``...-TRIPLE-pgo+lto-full.tar.zst``): ``python/PYTHON.json`` first, then the same
  tree under ``python/install/``; PYTHON.json's ``python_exe`` names the interpreter.

Where it differs from a real PBS build: PBS links OpenSSL, SQLite, libffi... statically into
libpython; the stand-in keeps them as shared libraries in ``python/lib`` (found through the
same ``$ORIGIN`` rpaths), because it is portenv's own portable copy of a pyenv build.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sys
import tarfile
import zipfile
from pathlib import Path

import zstandard

from portenv.stage.cpython import inspect_interpreter, make_portable
from tests.support.host import cache_root
from tests.support.pyrelocate import installed_pythons

__all__ = ["TRIPLE", "full_archive", "install_only_archive", "python_json", "standalone_tree"]

TRIPLE = "x86_64-unknown-linux-gnu"
BUILD_PREFIX = "/install"
_FORMAT = "1"
"""Bumped when the stand-in's shape changes, so cached archives are rebuilt."""


def _key(python: Path) -> str:
    source = Path(__file__).read_bytes() + str(python.resolve()).encode() + _FORMAT.encode()
    return hashlib.sha256(source).hexdigest()[:16]


def standalone_tree(minor: str, dest: Path) -> str:
    """Write the install tree of a PBS-shaped CPython ``minor`` into ``dest``; its version."""
    python = installed_pythons([minor]).get(minor)
    if python is None:
        msg = f"CPython {minor} not found (pyenv or PATH): the stand-in is made from it"
        raise RuntimeError(msg)
    base = inspect_interpreter(python)
    make_portable(base, dest)
    for path in dest.rglob("_sysconfigdata_*.py"):
        original = base.prefix / path.relative_to(dest)
        text = original.read_text(encoding="utf-8").replace(base.build_prefix, BUILD_PREFIX)
        path.write_text(text, encoding="utf-8")
        shutil.rmtree(path.parent / "__pycache__", ignore_errors=True)
    site = dest / "lib" / f"python{base.short_version}" / "site-packages"
    for wheel in sorted(dest.rglob("ensurepip/_bundled/pip-*.whl"))[:1]:
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(site)
    return ".".join(map(str, base.version))


def python_json(version: str, *, prefix: str = "install/") -> dict[str, object]:
    """The PYTHON.json keys PBS documents that a consumer reads to find the interpreter."""
    major_minor = ".".join(version.split(".")[:2])
    tag = "cp" + major_minor.replace(".", "")
    return {
        "version": "8",
        "target_triple": TRIPLE,
        "build_options": "pgo+lto",
        "python_tag": tag,
        "python_abi_tag": tag,
        "python_platform_tag": "linux_x86_64",
        "python_version": version,
        "python_major_minor_version": major_minor,
        "python_exe": f"{prefix}bin/python{major_minor}",
        "python_paths": {"stdlib": f"{prefix}lib/python{major_minor}"},
        "libpython_link_mode": "shared",
        "crt_features": ["glibc-dynamic"],
    }


def _add_tree(archive: tarfile.TarFile, tree: Path, under: str) -> None:
    for path in sorted(tree.rglob("*")):
        archive.add(path, f"{under}/{path.relative_to(tree)}", recursive=False)


def _built(minor: str, name: str, write: str) -> Path:
    python = installed_pythons([minor]).get(minor)
    folder = cache_root() / f"standalone-{minor}-{_key(python or Path(sys.executable))}"
    done = next(iter(folder.glob(f"cpython-*-{name}")), None) if folder.is_dir() else None
    if done is not None:
        return done
    scratch = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(scratch, ignore_errors=True)
    tree = scratch / "tree"
    version = standalone_tree(minor, tree)
    target = scratch / f"cpython-{version}+standin-{TRIPLE}-{name}"
    if write == "gz":
        with tarfile.open(target, "w:gz") as archive:
            _add_tree(archive, tree, "python")
    else:
        data = json.dumps(python_json(version), indent=2).encode()
        with (
            target.open("wb") as raw,
            zstandard.ZstdCompressor().stream_writer(raw) as out,
            tarfile.open(fileobj=out, mode="w|") as archive,
        ):
            info = tarfile.TarInfo("python/PYTHON.json")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
            _add_tree(archive, tree, "python/install")
    shutil.rmtree(tree)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / target.name
    target.rename(final)
    shutil.rmtree(scratch, ignore_errors=True)
    return final


def install_only_archive(minor: str = "3.12") -> Path:
    """``cpython-X.Y.Z+standin-x86_64-unknown-linux-gnu-install_only.tar.gz`` (cached)."""
    return _built(minor, "install_only.tar.gz", "gz")


def full_archive(minor: str = "3.12") -> Path:
    """``cpython-X.Y.Z+standin-x86_64-unknown-linux-gnu-pgo+lto-full.tar.zst`` (cached)."""
    return _built(minor, "pgo+lto-full.tar.zst", "zst")
