"""--python packs: the same inputs give the same bytes; a warm pack reuses the sealed prefix."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import portenv
from tests.integration.test_pack import payload_of
from tests.integration.test_pack_reuse import sealed_entries
from tests.support.pyrelocate import installed_pythons

REUSED = "reusing the sealed environment"


@pytest.fixture(scope="module")
def pythons() -> dict[str, Path]:
    found = installed_pythons(["3.12", "3.13"])
    if len(found) < 2:
        pytest.fail(f"CPython 3.12 and 3.13 are needed (pyenv or PATH), found {sorted(found)}")
    return found


def requirements(folder: Path, *names: str) -> Path:
    path = folder / f"requirements-{'-'.join(names)}.txt"
    path.write_text("".join(f"{name}\n" for name in names))
    return path


def pack(python: Path, reqs: Path, out: Path, cache: Path, *extra: str) -> str:
    return portenv("pack", "--python", python, "-r", reqs, "-o", out, "--use-cache", cache,
                   *extra).stderr  # fmt: skip


def test_two_cold_packs_are_byte_identical(pythons: dict[str, Path], tmp_path: Path) -> None:
    reqs = requirements(tmp_path, "idna")
    first, second = tmp_path / "1.tar", tmp_path / "2.tar"
    pack(pythons["3.12"], reqs, first, tmp_path / "cache-a")
    pack(pythons["3.12"], reqs, second, tmp_path / "cache-b")
    assert first.read_bytes() == second.read_bytes()
    names = payload_of(first).getnames()
    assert "lib/python3.12/site-packages/pip/__init__.py" in names, "pip is carried"
    sysconfig = [n for n in names if "__pycache__/_sysconfigdata_" in n]
    assert sysconfig, "the rewritten sysconfigdata has its bytecode, made reproducibly"


CHECK = r"""
import importlib.util, os, sys
root, good, bad = sys.argv[1], 0, []
for dirpath, dirnames, filenames in os.walk(root):
    dirnames[:] = [d for d in dirnames if d != ".portenv"]
    for name in filenames:
        if name.endswith(".py"):
            source = os.path.join(dirpath, name)
            try:
                with open(importlib.util.cache_from_source(source), "rb") as pyc:
                    head = pyc.read(16)
            except OSError:
                head = b""
            with open(source, "rb") as stream:
                text = stream.read()
            if b"/portenv_placehold" in text:
                continue  # compiled by the relocation, once rewritten
            hashed = importlib.util.source_hash(text)
            ok = head[:4] == importlib.util.MAGIC_NUMBER and head[4:8] == b"\3\0\0\0"
            if ok and head[8:] == hashed:
                good += 1
            else:
                bad.append(os.path.relpath(source, root))
print(good, sorted(bad))
"""


def test_every_source_has_valid_checked_hash_bytecode(
    pythons: dict[str, Path], tmp_path: Path
) -> None:
    """Checked by the env's CPython itself: the source hash is keyed by its magic number."""
    out = tmp_path / "app.tar"
    pack(pythons["3.12"], requirements(tmp_path, "idna"), out, tmp_path / "cache", "--no-pip")
    payload = payload_of(out)
    payload.extractall(tmp_path / "env", filter="data")
    assert not [n for n in payload.getnames() if n.endswith(".opt-1.pyc")]
    done = subprocess.run(
        [str(pythons["3.12"]), "-I", "-c", CHECK, str(tmp_path / "env")],
        capture_output=True,
        text=True,
        check=True,
    )
    good, bad = done.stdout.split(" ", 1)
    assert int(good) > 500
    assert bad.strip() == "[]"


def test_a_warm_pack_reuses_and_other_inputs_miss(pythons: dict[str, Path], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    idna = requirements(tmp_path, "idna")
    cold = pack(pythons["3.12"], idna, tmp_path / "cold.tar", cache, "--no-pip")
    assert REUSED not in cold
    warm = pack(pythons["3.12"], idna, tmp_path / "warm.tar", cache, "--no-pip")
    assert REUSED in warm
    assert (tmp_path / "warm.tar").read_bytes() == (tmp_path / "cold.tar").read_bytes()
    assert len(sealed_entries(cache)) == 1
    more = requirements(tmp_path, "idna", "certifi")
    assert REUSED not in pack(pythons["3.12"], more, tmp_path / "more.tar", cache, "--no-pip")
    assert REUSED not in pack(pythons["3.13"], idna, tmp_path / "313.tar", cache, "--no-pip")
    assert REUSED not in pack(pythons["3.12"], idna, tmp_path / "pip.tar", cache)
    assert len(sealed_entries(cache)) == 3
    assert REUSED in pack(pythons["3.13"], idna, tmp_path / "again.tar", cache, "--no-pip")
