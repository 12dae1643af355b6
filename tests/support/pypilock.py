"""Pixi projects that also have PyPI dependencies, locked the way pixi locks them.

pixi is not installable here, so this module plays its part for tests:

* the conda half is solved against the local test channel (``tests.support.channel``);
* the PyPI half is resolved for the TARGET with pip's resolver in report mode
  (``pip install --dry-run --report``): wheels only, for the solved python's
  ``major.minor``, CPython ABI and the manylinux tags the target's glibc allows. pip
  evaluates environment markers with the interpreter it runs on, so pip's code is run by
  a CPython of the target's ``major.minor`` (the one the channel's python package was
  made from) even when the test process runs another version;
* pixi.lock is written with py-rattler's ``LockFile``. py-rattler 0.28 cannot record a
  PyPI package's hash, ``requires_dist`` or ``requires_python``, so they are added to the
  YAML afterwards, then the file is read and rewritten by rattler (the writer pixi uses)
  so field order, name normalisation and ``requires_dist`` formatting are rattler's own.

The resolved URLs and hashes are whatever pip's report says (nothing here names a host);
pip runs with ``--isolated`` so a machine's pip.conf (find-links, local mirrors) cannot
put ``file://`` URLs into a lock that is meant to look like one made against the index.

``make_wheel`` and ``make_sdist`` write tiny distributions for the local-file cases.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib
import importlib.util
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser
from pathlib import Path, PurePosixPath
from typing import Any

import rattler
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support import pyrelocate
from tests.support.channel import _toml_key, _toml_str, pixi_toml, solve, virtual_packages

ENVIRONMENT = "default"
#: The oldest glibc that PEP 600 manylinux tags are generated down to.
_OLDEST_MANYLINUX_MINOR = 5
#: Legacy manylinux names and the glibc minor version each is an alias of.
_LEGACY_MANYLINUX = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
#: A fixed, post-1980 mtime for archive members (zip cannot store earlier dates).
_MTIME = 1_577_836_800  # 2020-01-01T00:00:00Z


@dataclass(frozen=True)
class PypiDist:
    """One PyPI distribution as the lock records it."""

    name: str
    version: str
    location: str  # an index URL, or a ``./`` path relative to the project
    sha256: str
    requires_dist: tuple[str, ...] = ()
    requires_python: str | None = None

    @property
    def key(self) -> str:
        """The normalised name (PEP 503), which is what rattler writes as ``name``."""
        return canonicalize_name(self.name)


# --- the project -------------------------------------------------------------------


def write_pypi_project(
    project_dir: Path,
    channel: Path,
    conda_specs: list[str],
    pypi_requirements: list[str],
    *,
    platform: str = "linux-64",
    local_wheels: Sequence[Path] = (),
    local_sdists: Sequence[Path] = (),
    with_hashes: bool = True,
) -> Path:
    """Write pixi.toml + pixi.lock with conda AND PyPI packages; return ``project_dir``.

    ``pypi_requirements`` are PEP 508 strings resolved (with their dependencies) from the
    index for ``platform``. ``local_wheels``/``local_sdists`` are copied into the project
    and recorded as ``./<file>`` path entries (their own dependencies are not resolved:
    list those in ``pypi_requirements``). ``with_hashes=False`` leaves every PyPI entry
    without ``sha256``.
    """
    project_dir.mkdir(parents=True, exist_ok=True)
    records = solve(channel, conda_specs, platform)
    python = target_python_version(records)
    local = [copy_local_dist(project_dir, path) for path in [*local_wheels, *local_sdists]]
    pypi_table = pypi_dependency_lines(pypi_requirements, local)  # refuses before resolving
    resolved = resolve_pypi(pypi_requirements, python_version=python, platform=platform)
    dists = _merge(resolved, local)
    manifest = pixi_toml(project_dir.name, channel, platform, conda_specs, {})
    manifest += "\n" + "\n".join(pypi_table) + "\n"
    (project_dir / "pixi.toml").write_text(manifest)
    write_lock(
        project_dir / "pixi.lock",
        channel,
        platform,
        records,
        dists,
        with_hashes=with_hashes,
        index_url=default_index_url() if dists else None,
    )
    return project_dir


def target_python_version(records: Iterable[rattler.RepoDataRecord]) -> str:
    """``3.12`` for a solved ``python 3.12.x`` record: what the PyPI half is resolved for."""
    for record in records:
        if record.name.normalized == "python":
            return ".".join(str(record.version).split(".")[:2])
    msg = "PyPI dependencies need a python among the conda packages (add 'python 3.12.*')"
    raise ValueError(msg)


def _merge(resolved: Sequence[PypiDist], local: Sequence[PypiDist]) -> list[PypiDist]:
    """All distributions sorted by name; one per name, as in one locked environment."""
    merged: dict[str, PypiDist] = {}
    for dist in [*resolved, *local]:
        if dist.key in merged:
            msg = f"{dist.key} appears twice among the resolved and local distributions"
            raise ValueError(msg)
        merged[dist.key] = dist
    return [merged[key] for key in sorted(merged)]


def pypi_dependency_lines(requirements: Sequence[str], local: Sequence[PypiDist]) -> list[str]:
    """The ``[pypi-dependencies]`` table in pixi's form (``requests = ">=2"``)."""
    lines = ["[pypi-dependencies]"]
    for text in requirements:
        req = Requirement(text)
        if req.marker is not None:
            msg = f"pixi.toml has no place for environment markers: {text!r}"
            raise ValueError(msg)
        fields: list[str] = []
        if req.url:
            fields.append(f"url = {_toml_str(req.url)}")
        elif req.extras:
            fields.append(f"version = {_toml_str(str(req.specifier) or '*')}")
        if req.extras:
            extras = ", ".join(_toml_str(extra) for extra in sorted(req.extras))
            fields.append(f"extras = [{extras}]")
        value = f"{{ {', '.join(fields)} }}" if fields else _toml_str(str(req.specifier) or "*")
        lines.append(f"{_toml_key(req.name)} = {value}")
    lines += [f"{_toml_key(d.name)} = {{ path = {_toml_str(d.location)} }}" for d in local]
    return lines


# --- resolving the PyPI half for the target ---------------------------------------------


def pip_platform_tags(platform: str) -> list[str]:
    """manylinux platform tags a ``platform`` target accepts, newest first.

    The glibc and architecture come from the same virtual packages the conda half is
    solved with; pip expands none of the PEP 600 names itself, so all are listed.
    """
    virtual = {v.name.normalized: v for v in virtual_packages(platform)}
    if "__glibc" not in virtual:
        msg = f"only linux (glibc) targets are supported, not {platform}"
        raise ValueError(msg)
    arch = str(virtual["__archspec"].build_string)
    glibc_minor = int(str(virtual["__glibc"].version).split(".")[1])
    tags: list[str] = []
    for minor in range(glibc_minor, _OLDEST_MANYLINUX_MINOR - 1, -1):
        tags.append(f"manylinux_2_{minor}_{arch}")
        if minor in _LEGACY_MANYLINUX:
            tags.append(f"{_LEGACY_MANYLINUX[minor]}_{arch}")
    return tags


def pip_command(python_version: str) -> list[str]:
    """argv prefix that runs this environment's pip under a CPython ``python_version``.

    pip evaluates environment markers (``python_version < "3.12"``) with the running
    interpreter, whatever ``--python-version`` says; the pip package runs as a directory
    under the target-version interpreter (its ``__main__`` puts it on ``sys.path``).
    """
    spec = importlib.util.find_spec("pip")
    if spec is None or not spec.submodule_search_locations:
        msg = "pip is not installed in the test environment"
        raise RuntimeError(msg)
    if "{}.{}".format(*sys.version_info[:2]) == python_version:
        return [sys.executable, "-I", "-m", "pip"]
    base = pyrelocate.find_base_python(python_version)
    interpreter = base.prefix / "bin" / f"python{python_version}"
    return [str(interpreter), "-I", str(spec.submodule_search_locations[0])]


def default_index_url() -> str:
    """The index pip resolves from with ``--isolated``: its built-in default."""
    index_module: Any = importlib.import_module("pip._internal.models.index")
    return str(index_module.PyPI.simple_url)


def resolve_pypi(
    requirements: Sequence[str], *, python_version: str, platform: str
) -> list[PypiDist]:
    """Resolve ``requirements`` to wheels for the target with pip's resolver (no install)."""
    if not requirements:
        return []
    abi = "cp" + python_version.replace(".", "")
    with tempfile.TemporaryDirectory(prefix="portenv-pip-") as tmp:
        report = Path(tmp) / "report.json"
        argv = [
            *pip_command(python_version),
            "install",
            "--isolated",
            "--disable-pip-version-check",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--report",
            str(report),
            "--target",
            str(Path(tmp) / "target"),  # pip insists on it with --platform; nothing is written
            "--only-binary=:all:",
            "--python-version",
            python_version,
            "--implementation",
            "cp",
            "--abi",
            abi,
            *[arg for tag in pip_platform_tags(platform) for arg in ("--platform", tag)],
            "--",
            *requirements,
        ]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            msg = f"pip could not resolve {list(requirements)} for {platform}:\n{done.stderr}"
            raise RuntimeError(msg)
        items: list[dict[str, Any]] = json.loads(report.read_text())["install"]
    return [_dist_from_report(item) for item in items]


def _dist_from_report(item: Mapping[str, Any]) -> PypiDist:
    """One ``install`` item of pip's installation report (format version 1)."""
    info = item["download_info"]
    metadata = item["metadata"]
    hashes: dict[str, str] = info.get("archive_info", {}).get("hashes", {})
    if "sha256" not in hashes:
        msg = f"pip's report has no sha256 for {info['url']}"
        raise RuntimeError(msg)
    return PypiDist(
        name=str(metadata["name"]),
        version=str(metadata["version"]),
        location=str(info["url"]),
        sha256=hashes["sha256"],
        requires_dist=tuple(metadata.get("requires_dist") or ()),
        requires_python=metadata.get("requires_python"),
    )


# --- local wheels and sdists ---------------------------------------------------------------


def copy_local_dist(project_dir: Path, source: Path) -> PypiDist:
    """Copy a wheel or sdist into the project; describe it as a ``./<file>`` entry."""
    target = project_dir / source.name
    if target.resolve() != source.resolve():
        shutil.copyfile(source, target)
    metadata = dist_metadata(target)
    return PypiDist(
        name=str(metadata["Name"]),
        version=str(metadata["Version"]),
        location=f"./{target.name}",
        sha256=hashlib.sha256(target.read_bytes()).hexdigest(),
        requires_dist=tuple(metadata.get_all("Requires-Dist") or ()),
        requires_python=metadata.get("Requires-Python"),
    )


def dist_metadata(path: Path) -> Message:
    """Core metadata of a wheel (``*.dist-info/METADATA``) or an sdist (``PKG-INFO``)."""
    if path.name.endswith(".whl"):
        with zipfile.ZipFile(path) as archive:
            found = [n for n in archive.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
            if len(found) != 1:
                msg = f"{path.name}: expected one .dist-info/METADATA, found {found}"
                raise ValueError(msg)
            text = archive.read(found[0]).decode()
    elif path.name.endswith(".tar.gz"):
        with tarfile.open(path, "r:gz") as archive:
            infos = [m for m in archive.getmembers() if re.fullmatch(r"[^/]+/PKG-INFO", m.name)]
            handle = archive.extractfile(infos[0]) if len(infos) == 1 else None
            if handle is None:
                msg = f"{path.name}: expected one top-level <dir>/PKG-INFO"
                raise ValueError(msg)
            text = handle.read().decode()
    else:
        msg = f"not a wheel or .tar.gz sdist: {path.name}"
        raise ValueError(msg)
    return HeaderParser().parsestr(text)


# --- the lock --------------------------------------------------------------------------


def write_lock(
    path: Path,
    channel: Path,
    platform: str,
    records: Sequence[rattler.RepoDataRecord],
    dists: Sequence[PypiDist],
    *,
    with_hashes: bool,
    index_url: str | None,
) -> None:
    """Write pixi.lock (v7, via rattler) holding ``records`` and ``dists``, then verify it."""
    lock_platform = rattler.LockPlatform(platform)
    lock = rattler.LockFile([lock_platform])
    lock.set_channels(ENVIRONMENT, [rattler.LockChannel(channel.as_uri())])
    for record in records:
        lock.add_conda_package(ENVIRONMENT, lock_platform, record)
    for dist in dists:
        lock.add_pypi_package(ENVIRONMENT, lock_platform, dist.name, dist.version, dist.location)
    lock.to_path(path)
    by_key = {dist.key: dist for dist in dists}
    doc = _load(path)
    for entry in _pypi_entries(doc):
        entry.update(_extra_fields(by_key[entry["name"]], with_hashes=with_hashes))
    _dump(doc, path)
    # rattler's own reader and writer: the fields land in its order and format, and a
    # field that it did not understand would be dropped here (and caught below).
    rattler.LockFile.from_path(path).to_path(path)
    if index_url is not None:
        doc = _load(path)
        _add_indexes(doc, index_url)
        _dump(doc, path)
    verify_lock(path, platform, records, dists, with_hashes=with_hashes)


def _extra_fields(dist: PypiDist, *, with_hashes: bool) -> dict[str, Any]:
    """The fields py-rattler 0.28 cannot set, named and ordered as pixi's lock has them."""
    fields: dict[str, Any] = {}
    if with_hashes:
        fields["sha256"] = dist.sha256
    if dist.requires_dist:
        fields["requires_dist"] = list(dist.requires_dist)
    if dist.requires_python:
        fields["requires_python"] = dist.requires_python
    return fields


def _add_indexes(doc: dict[str, Any], index_url: str) -> None:
    """``indexes:`` right after ``channels:``, as pixi writes it for an environment with PyPI
    packages (added after rattler's rewrite: rattler 0.28 copies it into every entry)."""
    env: dict[str, Any] = doc["environments"][ENVIRONMENT]
    rebuilt: dict[str, Any] = {}
    for key, value in env.items():
        rebuilt[key] = value
        if key == "channels":
            rebuilt["indexes"] = [index_url]
    doc["environments"][ENVIRONMENT] = rebuilt


def _pypi_entries(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``- pypi:`` entries of the top-level ``packages:`` list."""
    return [entry for entry in doc.get("packages") or [] if "pypi" in entry]


def _load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def _dump(doc: Mapping[str, Any], path: Path) -> None:
    """Dump keeping key order; no line folding (long URLs and requirements stay whole)."""
    path.write_text(yaml.safe_dump(dict(doc), sort_keys=False, width=1 << 16))


def verify_lock(
    path: Path,
    platform: str,
    records: Sequence[rattler.RepoDataRecord],
    dists: Sequence[PypiDist],
    *,
    with_hashes: bool,
) -> None:
    """Read the lock back with rattler: every conda record and PyPI field must be there."""
    env = rattler.LockFile.from_path(path).environment(ENVIRONMENT)
    if env is None:
        msg = f"{path}: no {ENVIRONMENT!r} environment"
        raise AssertionError(msg)
    conda = env.conda_repodata_records().get(platform, [])  # a standalone LockPlatform panics
    got_conda = sorted(str(r.url) for r in conda)
    want_conda = sorted(str(r.url) for r in records)
    if got_conda != want_conda:
        msg = f"{path}: conda packages changed: {got_conda} != {want_conda}"
        raise AssertionError(msg)
    read = {str(canonicalize_name(p.name)): p for p in env.pypi_packages().get(platform, [])}
    if sorted(read) != sorted(d.key for d in dists):
        msg = f"{path}: PyPI packages {sorted(read)} != {sorted(d.key for d in dists)}"
        raise AssertionError(msg)
    for dist in dists:
        package = read[dist.key]
        got = (locked_sha256(package), package.requires_python, len(package.requires_dist))
        want = (dist.sha256 if with_hashes else None, dist.requires_python, len(dist.requires_dist))
        if got != want:
            msg = f"{path}: {dist.key} reads back as (sha256, requires_python, #deps) {got}"
            raise AssertionError(msg + f", expected {want}")


def locked_sha256(package: rattler.LockedPackage) -> str | None:
    """A locked package's sha256 as hex, or None.

    py-rattler 0.28's ``hashes`` is never None: for a package locked without hashes it
    wraps None, and reading ``.sha256`` from that raises AttributeError.
    """
    try:
        digest = package.hashes.sha256 if package.hashes is not None else None
    except AttributeError:
        return None
    return digest.hex() if digest else None


# --- tiny distributions ------------------------------------------------------------------


def dist_filename_name(name: str) -> str:
    """A project name as wheel and sdist file names spell it (PEP 491 / PEP 625)."""
    return canonicalize_name(name).replace("-", "_")


def make_wheel(
    folder: Path,
    name: str,
    version: str,
    *,
    tag: str = "py3-none-any",
    files: Mapping[str, str],
    console_scripts: Mapping[str, str] | None = None,
    requires_dist: Sequence[str] = (),
    requires_python: str | None = None,
) -> Path:
    """Write a minimal valid wheel; ``tag`` may be anything (e.g. a foreign platform).

    ``files`` maps archive paths (``pkg/__init__.py``) to text; ``console_scripts`` maps a
    command to ``module:function``. The wheel has METADATA, WHEEL (one ``Tag:`` per
    expanded tag), entry_points.txt and a RECORD with sha256 digests and sizes.
    """
    stem = f"{dist_filename_name(name)}-{version}"
    dist_info = f"{stem}.dist-info"
    interpreters, abis, platforms = (part.split(".") for part in tag.split("-"))
    purelib = "true" if platforms == ["any"] else "false"
    wheel_lines = ["Wheel-Version: 1.0", "Generator: portenv-tests", f"Root-Is-Purelib: {purelib}"]
    wheel_lines += [f"Tag: {i}-{a}-{p}" for i in interpreters for a in abis for p in platforms]
    metadata = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    metadata += [f"Requires-Dist: {req}" for req in requires_dist]
    metadata += [f"Requires-Python: {requires_python}"] if requires_python else []
    members: dict[str, bytes] = {}
    for member, text in files.items():
        members[_safe_member(member)] = text.encode()
    members[f"{dist_info}/METADATA"] = ("\n".join(metadata) + "\n").encode()
    members[f"{dist_info}/WHEEL"] = ("\n".join(wheel_lines) + "\n").encode()
    if console_scripts:
        scripts = [f"{cmd} = {target}" for cmd, target in console_scripts.items()]
        members[f"{dist_info}/entry_points.txt"] = "\n".join(
            ["[console_scripts]", *scripts, ""]
        ).encode()
    members[f"{dist_info}/RECORD"] = _record(members, f"{dist_info}/RECORD")
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{stem}-{tag}.whl"
    with zipfile.ZipFile(wheel, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member, data in members.items():
            info = zipfile.ZipInfo(member, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return wheel


def _safe_member(member: str) -> str:
    """Archive paths must stay inside the archive."""
    path = PurePosixPath(member)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        msg = f"not a relative archive path: {member!r}"
        raise ValueError(msg)
    return path.as_posix()


def _record(members: Mapping[str, bytes], record_name: str) -> bytes:
    """RECORD: ``path,sha256=<urlsafe b64, unpadded>,size`` per file, itself unhashed."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for member, data in members.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        writer.writerow([member, f"sha256={digest}", len(data)])
    writer.writerow([record_name, "", ""])
    return out.getvalue().encode()


#: The PEP 517 backend of ``make_sdist`` packages (fetched from PyPI at build time).
SDIST_BUILD_REQUIRES = "flit_core>=3.4,<5"


def make_sdist(
    folder: Path,
    name: str,
    version: str,
    *,
    module_source: str,
    console_script: str | None = None,
) -> Path:
    """Write an sdist-only package ``<name>-<version>.tar.gz`` built with flit_core.

    The package is one module, ``<name with _>.py``, holding ``module_source``;
    ``console_script`` names a command that runs the module's ``main()``.
    """
    module = dist_filename_name(name)
    lines = [
        "[build-system]",
        f"requires = [{_toml_str(SDIST_BUILD_REQUIRES)}]",
        'build-backend = "flit_core.buildapi"',
        "",
        "[project]",
        f"name = {_toml_str(name)}",
        f"version = {_toml_str(version)}",
        f"description = {_toml_str(f'{name}, a test package built from source')}",
    ]
    if console_script:
        lines += [
            "",
            "[project.scripts]",
            f"{_toml_key(console_script)} = {_toml_str(module + ':main')}",
        ]
    pkg_info = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    top = f"{module}-{version}"
    members = {
        f"{top}/pyproject.toml": "\n".join(lines) + "\n",
        f"{top}/PKG-INFO": pkg_info,
        f"{top}/{module}.py": module_source,
    }
    folder.mkdir(parents=True, exist_ok=True)
    sdist = folder / f"{top}.tar.gz"
    with tarfile.open(sdist, "w:gz", format=tarfile.PAX_FORMAT) as archive:
        archive.addfile(_tar_dir(top))
        for member, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(member)
            info.size, info.mtime, info.mode = len(data), _MTIME, 0o644
            archive.addfile(info, io.BytesIO(data))
    return sdist


def _tar_dir(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mtime, info.mode = tarfile.DIRTYPE, _MTIME, 0o755
    return info
