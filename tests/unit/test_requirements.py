"""Requirements of the conda-free source: wheel choice for the target, pins, lock entry kinds."""

from __future__ import annotations

from pathlib import Path

import pytest

from portenv.errors import InputError, ResolveError
from portenv.model import PypiPackage
from portenv.source.pylock import LockedFiles, package_of
from portenv.source.pypi import ordered_target_tags
from portenv.source.requirements import RequirementsInput, pinned_hashes, resolve_requirements

A, B, C = "a" * 64, "b" * 64, "c" * 64
NATIVE = "https://h.invalid/fast-1.0-cp312-cp312-manylinux_2_17_x86_64.whl"

PYLOCK = f"""
lock-version = "1.0"
created-by = "test"

[[packages]]
name = "fast"
version = "1.0"
sdist = {{ url = "https://h.invalid/fast-1.0.tar.gz", hashes = {{ sha256 = "{C}" }} }}
wheels = [
  {{ url = "https://h.invalid/fast-1.0-py3-none-any.whl", hashes = {{ sha256 = "{A}" }} }},
  {{ url = "{NATIVE}", hashes = {{ sha256 = "{B}" }} }},
  {{ url = "https://h.invalid/fast-1.0-cp312-cp312-win_amd64.whl", hashes = {{ sha256 = "{C}" }} }},
]

[[packages]]
name = "onlysource"
version = "2.0"
sdist = {{ url = "https://h.invalid/onlysource-2.0.tar.gz", hashes = {{ sha256 = "{C}" }} }}
"""


def project(tmp_path: Path) -> Path:
    (tmp_path / "pylock.toml").write_text(PYLOCK)
    return tmp_path


def test_best_fitting_wheel_wins_and_sdist_is_the_fallback(tmp_path: Path) -> None:
    packages = resolve_requirements(
        RequirementsInput(project=project(tmp_path)), (3, 12), "linux-64"
    )
    fast, only = packages
    assert fast.kind == "wheel" and fast.url.endswith("cp312-cp312-manylinux_2_17_x86_64.whl")
    assert fast.sha256 == B
    assert only.kind == "sdist" and only.sha256 == C
    other = resolve_requirements(RequirementsInput(project=project(tmp_path)), (3, 11), "linux-64")
    assert other[0].url.endswith("py3-none-any.whl"), "no cp311 wheel: the pure one"


def test_pinned_hashes_are_read_across_continued_lines(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        f"Fast==1.0 \\\n    --hash=sha256:{B} \\\n    --hash=sha256:{A.upper()}\n"
        "plain>=1  # no hash\n"
    )
    assert pinned_hashes(requirements) == {"fast": {A, B}}


def test_a_file_outside_the_pins_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uv's resolution is replaced by the fixed lock: only the pin check is under test."""
    from portenv.source import requirements as module

    pins = tmp_path / "requirements.txt"
    source = RequirementsInput((pins,), project(tmp_path))

    def fixed(*_args: object) -> object:
        return module._Resolution(PYLOCK, tmp_path, "uv", pinned_hashes(pins), locked=False)

    monkeypatch.setattr(module, "_compile", fixed)
    pins.write_text(f"fast==1.0 --hash=sha256:{A}\n")
    with pytest.raises(InputError, match="which the requirements do not allow"):
        resolve_requirements(source, (3, 12), "linux-64")
    pins.write_text(f"fast==1.0 --hash=sha256:{B}\n")
    assert resolve_requirements(source, (3, 12), "linux-64")[0].sha256 == B


def test_missing_requirements_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="requirements file not found"):
        resolve_requirements(RequirementsInput((tmp_path / "nope.txt",)), (3, 12), "linux-64")


def files(tmp_path: Path) -> LockedFiles:
    order = {tag: i for i, tag in enumerate(ordered_target_tags((3, 12), "linux-64"))}
    return LockedFiles(tmp_path, order, "CPython 3.12 on linux-64")


def test_archive_vcs_and_folder_entries_map_to_their_kinds(tmp_path: Path) -> None:
    url = "https://h.invalid/d/x-1.0-py3-none-any.whl"
    archive = {"name": "x", "version": "1.0", "archive": {"url": url, "hashes": {"sha256": A}}}
    assert package_of(archive, files(tmp_path)) == PypiPackage(
        "x", "1.0", f"direct+{url}", "wheel", A
    )
    vcs = {"type": "git", "url": "https://h.invalid/r.git", "commit-id": "abc1234"}
    git = package_of({"name": "r", "version": "2", "vcs": vcs}, files(tmp_path))
    assert (git.kind, git.url) == ("git", "git+https://h.invalid/r.git#abc1234")
    folder = {"path": "../src", "subdirectory": "pkg"}
    sub = package_of({"name": "s", "directory": folder}, files(tmp_path / "lock"))
    assert (sub.kind, sub.url, sub.version) == ("path", str(tmp_path / "src" / "pkg"), "")
    sdist = {"path": "s-1.tar.gz", "size": 9}
    local = package_of({"name": "s", "version": "1", "archive": sdist}, files(tmp_path))
    assert (local.kind, local.url, local.size) == ("sdist", str(tmp_path / "s-1.tar.gz"), 9)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        pytest.param(
            {"name": "r", "version": "2", "vcs": {"type": "hg", "url": "https://h.invalid/r"}},
            "r 2: the lock builds it from a hg repository (portenv builds git ones), "
            "which portenv cannot pack",
            id="hg",
        ),
        pytest.param(
            {"name": "a", "archive": {"url": "https://h.invalid/a.zip", "subdirectory": "x"}},
            "a: the lock builds it from a subdirectory of an archive (x), "
            "which portenv cannot pack",
            id="archive-subdirectory",
        ),
    ],
)
def test_entries_portenv_cannot_pack_are_named(
    tmp_path: Path, entry: dict[str, object], message: str
) -> None:
    with pytest.raises(ResolveError) as caught:
        package_of(entry, files(tmp_path))
    assert caught.value.message == message
    assert caught.value.hint == "build a wheel of it and require that file instead"


def test_no_file_for_the_target_names_the_package_its_version_and_why(tmp_path: Path) -> None:
    wheels = [
        {"url": "https://h.invalid/w-1.5-cp312-cp312-win_amd64.whl"},
        {"url": "https://h.invalid/w-1.5-cp312-cp312-macosx_11_0_arm64.whl"},
    ]
    with pytest.raises(ResolveError) as caught:
        package_of({"name": "winonly", "version": "1.5", "wheels": wheels}, files(tmp_path))
    assert caught.value.message == (
        "winonly 1.5 has no wheel for CPython 3.12 on linux-64 (its 2 wheels are for "
        "macosx_11_0_arm64, win_amd64) and no sdist to build"
    )
    assert caught.value.hint == "pin a version that publishes a wheel for the target"
    with pytest.raises(ResolveError) as caught:
        package_of({"name": "empty", "version": "0.1"}, files(tmp_path))
    assert caught.value.message == (
        "empty 0.1: the lock names no file for it (wheel, sdist, archive, folder, vcs)"
    )
