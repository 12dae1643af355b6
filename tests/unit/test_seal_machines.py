"""The ELF scan of a staged prefix, for the target's machine whatever this machine is."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from portenv.elf import scan_elf
from portenv.errors import CompatibilityError
from portenv.seal.checks import check_machines
from tests.integration.test_pack import readelf_glibc_floor
from tests.support.crosschannel import CROSS_COMPILERS

PROGRAM = '#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n'


@pytest.fixture(scope="module")
def aarch64_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prefix with one aarch64 program, linked against the cross compiler's glibc."""
    root = tmp_path_factory.mktemp("aarch64-prefix")
    (root / "bin").mkdir()
    source = root / "hi.c"
    source.write_text(PROGRAM)
    compiler = CROSS_COMPILERS["aarch64"]
    subprocess.run([compiler, "-O2", "-o", str(root / "bin" / "hi"), str(source)], check=True)
    source.unlink()
    return root


def test_the_glibc_floor_comes_from_aarch64_symbol_versions(aarch64_tree: Path) -> None:
    facts = scan_elf(aarch64_tree, ["bin/hi"])
    assert facts.machines == {"bin/hi": "aarch64"}
    assert facts.glibc_floor == readelf_glibc_floor(aarch64_tree)
    assert facts.floor_file == "bin/hi"


def test_an_aarch64_prefix_passes_the_aarch64_check(aarch64_tree: Path) -> None:
    check_machines(scan_elf(aarch64_tree, ["bin/hi"]), "aarch64")


def test_a_host_binary_in_an_aarch64_prefix_is_named(aarch64_tree: Path, tmp_path: Path) -> None:
    root = tmp_path / "prefix"
    shutil.copytree(aarch64_tree, root)
    shutil.copy(Path(sys.executable).resolve(), root / "bin" / "tool")
    facts = scan_elf(root, ["bin/hi", "bin/tool"])
    with pytest.raises(CompatibilityError, match=r"holds binaries of another machine") as caught:
        check_machines(facts, "aarch64")
    assert f"bin/tool ({facts.machines['bin/tool']})" in str(caught.value)
    assert "bin/hi" not in str(caught.value)
