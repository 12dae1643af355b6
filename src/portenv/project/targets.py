"""What a lock's PyPI half is for: a platform of the workspace and the Python solved for it."""

from __future__ import annotations

from dataclasses import dataclass

from packaging.tags import Tag

from portenv._rattler import LockedPlatform
from portenv.platforms import DEFAULT_GLIBC, platform_tags, wheel_tags

__all__ = ["PypiTarget", "ordered_tags"]


@dataclass(frozen=True)
class PypiTarget:
    """What the PyPI half is resolved for: a platform and the Python the conda half solved."""

    platform: LockedPlatform
    python_version: str
    """The full version, e.g. ``3.12.1`` (markers may test python_full_version)."""

    @property
    def major_minor(self) -> tuple[int, int]:
        """(3, 12) for 3.12.1."""
        major, minor = self.python_version.split(".")[:2]
        return int(major), int(minor)

    def virtual(self, name: str) -> str | None:
        """The version of one virtual package (``__glibc`` -> ``2.28``)."""
        for entry in self.platform.virtual_packages:
            key, _, rest = entry.partition("=")
            if key == name:
                return rest.split("=", 1)[0]
        return None


def ordered_tags(target: PypiTarget) -> list[Tag]:
    """Every wheel tag the target accepts, most specific first (as installers rank them): on
    Linux manylinux up to the platform's ``__glibc`` (pixi's default 2.28 when unset)."""
    glibc = target.virtual("__glibc") or DEFAULT_GLIBC
    platforms = platform_tags(target.platform.subdir, glibc, target.virtual("__osx"))
    return wheel_tags(target.major_minor, platforms)
