"""Requirements of the conda-free source: wheel choice for the target, and --hash pins."""

from __future__ import annotations

from pathlib import Path

import pytest

from portenv.errors import InputError
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
    pins.write_text(f"fast==1.0 --hash=sha256:{A}\n")
    source = RequirementsInput((pins,), project(tmp_path))
    monkeypatch.setattr(module, "_compile", lambda *_args: PYLOCK)
    with pytest.raises(InputError, match="does not allow"):
        resolve_requirements(source, (3, 12), "linux-64")
    pins.write_text(f"fast==1.0 --hash=sha256:{B}\n")
    assert resolve_requirements(source, (3, 12), "linux-64")[0].sha256 == B


def test_missing_requirements_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="requirements file not found"):
        resolve_requirements(RequirementsInput((tmp_path / "nope.txt",)), (3, 12), "linux-64")
