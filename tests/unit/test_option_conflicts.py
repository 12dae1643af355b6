"""Options that cannot apply to what is packed are refused with exit 2, before any work.

Each case would otherwise be silently ignored (e.g. ``--python`` with ``--format pixi-pack``
wrote an archive without the interpreter). The refusal comes before the project, the
interpreter or the network is looked at, so every case runs on an empty folder.
"""

from __future__ import annotations

import sys
import tarfile
from pathlib import Path

import pytest

from portenv.cli import main
from portenv.errors import UsageError
from portenv.pack import PackRequest, PlanRequest, refuse_conflicts

PIXI_PACK = ["--format", "pixi-pack"]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        pytest.param([*PIXI_PACK, "--python", sys.executable], "--python", id="python"),
        pytest.param([*PIXI_PACK, "--with", "idna"], "--python", id="with"),
        pytest.param([*PIXI_PACK, "--entry", "python"], "--entry", id="entry"),
        pytest.param([*PIXI_PACK, "--env-name", "app"], "--env-name", id="env-name"),
        pytest.param([*PIXI_PACK, "--compression", "zstd"], "--compression", id="compression"),
        pytest.param([*PIXI_PACK, "--level", "1"], "--level", id="level"),
        pytest.param([*PIXI_PACK, "--no-reuse"], "--no-reuse", id="no-reuse"),
        pytest.param([*PIXI_PACK, "--no-bytecode"], "--bytecode", id="no-bytecode"),
        pytest.param([*PIXI_PACK, "--bytecode", "stdlib"], "--bytecode", id="bytecode"),
        pytest.param(
            ["--no-bytecode", "--bytecode", "all"], "--no-bytecode", id="bytecode-contradicted"
        ),
        pytest.param([*PIXI_PACK, "--glibc", "2.28"], "--glibc", id="glibc"),
        pytest.param(
            [*PIXI_PACK, "--allow-missing-library", "libX11.so.6"],
            "--allow-missing-library",
            id="allow-missing",
        ),
        pytest.param(["--no-pip"], "--no-pip", id="no-pip-without-python"),
        pytest.param(["--no-install-project"], "--no-install-project", id="no-install-project"),
        pytest.param(["--with", "idna", "-e", "prod"], "-e prod", id="environment-with-python"),
    ],
)
def test_options_that_do_not_apply_are_refused(
    args: list[str], named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / ("env.tar" if "pixi-pack" in args else "env.sh")
    code = main(["pack", *args, "-o", str(output), "--use-cache", str(tmp_path / "cache")])
    err = capsys.readouterr().err.splitlines()
    assert code == 2, err
    assert len(err) == 2 and err[0].startswith("error: ") and named in err[0]
    assert err[1].startswith("  hint: ")
    assert not output.exists() and not (tmp_path / "cache").exists(), "refused before any work"


def test_a_project_folder_is_no_source_of_python_packs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["plan", str(tmp_path), "--with", "idna"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"error: PROJECT {tmp_path} names a pixi project" in err
    assert "hint: drop it, or drop --python" in err
    code = main(["plan", str(tmp_path), "-e", "dev", "--with", "idna"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"error: PROJECT {tmp_path} and -e dev name a pixi project" in err
    assert "hint: drop them, or drop --python" in err


def test_inject_needs_the_pixi_pack_format(tmp_path: Path) -> None:
    request = PackRequest(PlanRequest(tmp_path), tmp_path / "env.sh", inject=(tmp_path / "x",))
    with pytest.raises(UsageError, match="--inject"):
        refuse_conflicts(request)


def test_the_defaults_conflict_with_nothing(tmp_path: Path) -> None:
    refuse_conflicts(PackRequest(PlanRequest(tmp_path), tmp_path / "env.sh"))
    refuse_conflicts(PackRequest(PlanRequest(tmp_path), tmp_path / "env.tar", format="pixi-pack"))


def test_a_python_without_tarfile_filters_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Debian 12's python3 (3.11.2) predates PEP 706: portenv says so instead of crashing
    where it first extracts an archive."""
    monkeypatch.delattr(tarfile, "data_filter")
    assert main(["plan", "--help"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("error: Python ") and "tarfile extraction filters" in err[0]
    assert err[1] == "  hint: run portenv with Python 3.10.12+, 3.11.4+ or 3.12+"
