"""Install wheels into the staging prefix with pypa/installer; scripts name the placeholder."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from installer import install
from installer.destinations import SchemeDictionaryDestination
from installer.exceptions import InstallerError
from installer.sources import WheelFile

from portenv.errors import StageError
from portenv.model import PypiPackage, PypiSource, StagedPrefix

__all__ = ["FetchedWheel", "install_wheels", "quote_launchers", "site_packages"]


@dataclass(frozen=True)
class FetchedWheel:
    """A wheel ready to install: from the verified cache, or built from a cached sdist."""

    source: PypiSource
    """What the wheel is, or was built from (an sdist, a folder, a checkout)."""
    path: Path
    url: str
    """Where the wheel (or the sdist it was built from) came from, for direct_url.json."""

    @property
    def package(self) -> PypiPackage:
        return self.source.package


def site_packages(staged: StagedPrefix) -> Path:
    """Where the staged interpreter installs packages (lib/pythonX.Y/site-packages unless set)."""
    if staged.site_packages:
        return staged.path / staged.site_packages
    return staged.path / "lib" / Path(staged.python).name / "site-packages"


def _direct_url(wheel: FetchedWheel) -> bytes:
    """PEP 610's record of a direct reference: an archive with its hash, a folder, a commit."""
    url = wheel.url.removeprefix("direct+").partition("#")[0]
    info: dict[str, object]
    source = wheel.source
    if source.origin == "git":
        vcs = {"vcs": "git", "commit_id": source.digest}
        info = {"url": url.removeprefix("git+"), "vcs_info": vcs}
    elif source.origin == "folder":  # built from a local folder, never editable here
        info = {"url": url, "dir_info": {}}
    else:
        info = {"url": url, "archive_info": {"hashes": {"sha256": source.digest}}}
    return json.dumps(info, sort_keys=True).encode()


def _destination(staged: StagedPrefix) -> SchemeDictionaryDestination:
    root = staged.path
    purelib = str(site_packages(staged))
    return SchemeDictionaryDestination(
        scheme_dict={
            "purelib": purelib,
            "platlib": purelib,
            "headers": str(root / "include" / Path(staged.python).name),
            "scripts": str(root / "bin"),
            "data": str(root),
        },
        interpreter=f"{staged.placeholder}/{staged.python}",
        script_kind="posix",
        bytecode_optimization_levels=(),
    )


def quote_launchers(staged: StagedPrefix) -> int:
    """Quote the interpreter in installer's `/bin/sh` launchers, so a path with spaces works.

    installer writes an `exec` line with the bare interpreter path when the `#!` line would be
    too long, which the 255-byte placeholder always makes it; after relocation the path may
    hold spaces.
    """
    interpreter = f"{staged.placeholder}/{staged.python}".encode()
    bare = b"'''exec' " + interpreter + b" "
    quoted = b"'''exec' \"" + interpreter + b'" '
    changed = 0
    for script in sorted((staged.path / "bin").iterdir()):
        if script.is_file() and not script.is_symlink():
            data = script.read_bytes()
            if data.startswith(b"#!/bin/sh\n") and bare in data[:1024]:
                script.unlink()  # a new inode: never write through a hard link into a cache
                script.write_bytes(data.replace(bare, quoted, 1))
                script.chmod(0o755)
                changed += 1
    return changed


class _ScriptsForThisPython(WheelFile):
    """A wheel whose version-named scripts follow the environment's Python, not the builder's.

    pip's wheel declares a `pipX.Y` script for the Python that built the wheel (the 3.12
    ensurepip wheel says `pip3.11`); pip itself names that script after the Python it installs
    into, and so does this. Only the scripts change: the wheel's entry_points.txt and RECORD
    stay as shipped.
    """

    version = ""
    """The environment's X.Y."""

    def read_dist_info(self, filename: str) -> str:
        text = super().read_dist_info(filename)
        if filename != "entry_points.txt" or self.distribution.lower() != "pip":
            return text
        if not re.fullmatch(r"\d+\.\d+", self.version):
            return text
        return _VERSIONED_PIP.sub(f"pip{self.version} =", text)


_VERSIONED_PIP = re.compile(r"^pip\d+\.\d+ *=", re.MULTILINE)


def _python_version(staged: StagedPrefix) -> str:
    """X.Y of the staged interpreter, from its name (``bin/python3.12``)."""
    return Path(staged.python).name.removeprefix("python")


def install_wheels(wheels: Sequence[FetchedWheel], staged: StagedPrefix) -> None:
    """Install each wheel, validating its RECORD first; scripts get the placeholder interpreter.

    Nothing of the target runs: no bytecode is compiled, so cross-platform packing works.
    """
    site_packages(staged).mkdir(parents=True, exist_ok=True)
    for wheel in wheels:
        metadata = {"INSTALLER": b"portenv\n"}
        if wheel.package.is_direct or wheel.package.kind == "git":
            metadata["direct_url.json"] = _direct_url(wheel)
        try:
            with _ScriptsForThisPython.open(wheel.path) as source:
                source.version = _python_version(staged)
                source.validate_record()
                install(source, _destination(staged), additional_metadata=metadata)
        except (InstallerError, FileExistsError, ValueError, KeyError) as exc:
            msg = f"cannot install the wheel of {wheel.package.name}: {exc}"
            raise StageError(msg, hint="check the wheel, or skip it with --skip-pypi") from exc
    quote_launchers(staged)
