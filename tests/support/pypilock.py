"""Pixi projects that also have PyPI dependencies, locked the way pixi locks them.

pixi is not installable here, so portenv's own authoring code (``portenv.author``) plays
its part, and this module composes test projects from it:

* the conda half is solved against the local test channel (``tests.support.channel``);
* the PyPI half is resolved for the TARGET by portenv's resolver (uv with the target's
  platform and the solved python's version, so environment markers are evaluated for the
  target even when the test process runs another Python);
* pixi.lock is written by portenv's lock writer: py-rattler's ``LockFile`` plus the
  ``sha256``, ``requires_dist``, ``requires_python`` and ``indexes`` fields py-rattler
  0.28 cannot write (see ``portenv.project.lockfile``).

Local wheels and sdists are copied into the project and recorded as ``./<file>`` entries
without resolving their own dependencies (list those in the requirements).
``make_wheel`` and ``make_sdist`` write tiny distributions for the local-file cases.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import shutil
import tarfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from email.message import Message
from pathlib import Path, PurePosixPath

import rattler
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from portenv._rattler import LockedEnvironmentContent, PypiEntry, conda_package_of
from portenv.author.pypi import dist_metadata as read_dist_metadata
from portenv.author.pypi import resolve
from portenv.platforms import DEFAULT_GLIBC, platform_tags
from portenv.project.environments import DEFAULT_INDEX, Platform
from portenv.project.environments import virtual_packages as default_virtual_packages
from portenv.project.lockfile import LockState, write_state
from portenv.project.specs import PypiRequirement, inline_table, pypi_value
from portenv.project.targets import PypiTarget
from tests.support.channel import (
    _toml_key,
    _toml_str,
    lock_platform,
    pixi_toml,
    solve,
)
from tests.support.host import cache_root

ENVIRONMENT = "default"
#: A fixed, post-1980 mtime for archive members (zip cannot store earlier dates).
_MTIME = 1_577_836_800  # 2020-01-01T00:00:00Z

#: One PyPI distribution as the lock records it (portenv's own type; ``key`` is the
#: normalised name rattler writes).
PypiDist = PypiEntry


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
        index_url=DEFAULT_INDEX if dists else None,
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
        value = pypi_value(req, Path("/"))
        spelled = _toml_str(value) if isinstance(value, str) else value.as_string()
        lines.append(f"{_toml_key(req.name)} = {spelled}")
    for dist in local:
        path = inline_table({"path": dist.location}).as_string()
        lines.append(f"{_toml_key(dist.name)} = {path}")
    return lines


# --- resolving the PyPI half for the target ---------------------------------------------


def pip_platform_tags(platform: str) -> list[str]:
    """Platform tags a glibc ``platform`` target accepts, newest first (portenv's ranking).

    The glibc and architecture come from the same virtual packages the conda half is
    solved with.
    """
    if not platform.startswith("linux-"):
        msg = f"only linux (glibc) targets are supported, not {platform}"
        raise ValueError(msg)
    target = _target(platform, "3.12")
    return platform_tags(platform, target.virtual("__glibc") or DEFAULT_GLIBC)


def _target(platform: str, python_version: str) -> PypiTarget:
    return PypiTarget(
        Platform(platform, platform, default_virtual_packages(platform, {})), python_version
    )


def resolve_pypi(
    requirements: Sequence[str], *, python_version: str, platform: str, cache: Path | None = None
) -> list[PypiDist]:
    """Resolve ``requirements`` to files for the target with portenv's resolver (uv)."""
    if not requirements:
        return []
    wanted = [PypiRequirement(str(canonicalize_name(Requirement(r).name)), r) for r in requirements]
    return list(
        resolve(
            wanted,
            _target(platform, python_version),
            indexes=(DEFAULT_INDEX,),
            cache=cache or cache_root() / "pypi",
        )
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
    if not path.name.endswith((".whl", ".tar.gz")):
        msg = f"not a wheel or .tar.gz sdist: {path.name}"
        raise ValueError(msg)
    return read_dist_metadata(path)


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
    """Write pixi.lock (v7) with portenv's lock writer, then verify it independently."""
    written = [d if with_hashes else replace(d, sha256=None) for d in dists]
    state = LockState(
        (lock_platform(platform),),
        {
            ENVIRONMENT: LockedEnvironmentContent(
                channels=(channel.as_uri(),),
                conda={platform: tuple(conda_package_of(r) for r in records)},
                pypi={platform: tuple(written)},
                sources={},
            )
        },
        {ENVIRONMENT: (index_url,)} if index_url else {},
    )
    write_state(path, state, path.parent)
    verify_lock(path, platform, records, dists, with_hashes=with_hashes)


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
        got = (
            locked_sha256(package),
            _specifier(package.requires_python),
            len(package.requires_dist),
        )
        want = (
            dist.sha256 if with_hashes else None,
            _specifier(dist.requires_python),
            len(dist.requires_dist),
        )
        if got != want:
            msg = f"{path}: {dist.key} reads back as (sha256, requires_python, #deps) {got}"
            raise AssertionError(msg + f", expected {want}")


def _specifier(text: str | None) -> SpecifierSet | None:
    """A requires_python as a set of clauses: rattler may reorder `>=3.11, !=3.14.1`."""
    return SpecifierSet(text) if text else None


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
    files: Mapping[str, str | bytes],
    console_scripts: Mapping[str, str] | None = None,
    requires_dist: Sequence[str] = (),
    requires_python: str | None = None,
) -> Path:
    """Write a minimal valid wheel; ``tag`` may be anything (e.g. a foreign platform).

    ``files`` maps archive paths (``pkg/__init__.py``) to text or bytes; ``console_scripts``
    maps a command to ``module:function``. The wheel has METADATA, WHEEL (one ``Tag:`` per
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
        members[_safe_member(member)] = text.encode() if isinstance(text, str) else text
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
