"""The only package that imports rattler: it turns rattler's objects and errors into portenv's.

One module per job: `records` (package records and files), `lock` (pixi.lock), `install`
(linking into a prefix) and `solve` (specs and the solver).
"""

from __future__ import annotations

from portenv._rattler.install import install
from portenv._rattler.lock import (
    LockedEnvironment,
    LockedEnvironmentContent,
    LockedPlatform,
    PypiEntry,
    environment_names,
    environment_platforms,
    load_lock,
    lock_platforms,
    locked_environment,
    pypi_kind,
    read_lock,
    rewrite_lock,
    write_lock,
)
from portenv._rattler.records import (
    conda_package_of,
    extract_package,
    package_placeholders,
    read_package_file,
    record_channel,
    record_license,
    repodata_packages,
)
from portenv._rattler.solve import SpecParts, parse_spec, solve, spec_matches

__all__ = [
    "LockedEnvironment",
    "LockedEnvironmentContent",
    "LockedPlatform",
    "PypiEntry",
    "SpecParts",
    "conda_package_of",
    "environment_names",
    "environment_platforms",
    "extract_package",
    "install",
    "load_lock",
    "lock_platforms",
    "locked_environment",
    "package_placeholders",
    "parse_spec",
    "pypi_kind",
    "read_lock",
    "read_package_file",
    "record_channel",
    "record_license",
    "repodata_packages",
    "rewrite_lock",
    "solve",
    "spec_matches",
    "write_lock",
]
