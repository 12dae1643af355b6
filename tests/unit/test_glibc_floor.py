"""The glibc floor explained and controllable: which files set it, --glibc, what plan knows."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from portenv._uv import python_platform
from portenv.cli import main
from portenv.elf import ElfFacts, scan_elf
from portenv.errors import CompatibilityError, InputError
from portenv.model import CondaPackage, PackMeta, Plan, PypiAction, PypiPackage, Subdir
from portenv.pack import check_glibc_option
from portenv.seal.checks import check_glibc_ceiling
from portenv.source.glibc import plan_glibc_sources, wheel_glibc
from portenv.write.container import meta_block

FACTS = ElfFacts(
    "2.34",
    "bin/python3.12",
    {},
    {
        "bin/python3.12": "2.34",
        "lib/libstdc++.so.6": "2.34",
        "lib/libz.so.1": "2.14",
        "lib/libssl.so.3": "2.33",
    },
)


def test_floor_files_are_ordered_by_version_then_name() -> None:
    assert FACTS.floor_files(3) == [
        ("2.34", "bin/python3.12"),
        ("2.34", "lib/libstdc++.so.6"),
        ("2.33", "lib/libssl.so.3"),
    ]
    assert FACTS.floor_files(above="2.33") == [
        ("2.34", "bin/python3.12"),
        ("2.34", "lib/libstdc++.so.6"),
    ]


def test_scan_records_each_files_own_highest_version(tmp_path: Path) -> None:
    """The running interpreter is a real ELF file needing some GLIBC_ version."""
    real = Path(sys.executable).resolve()
    (tmp_path / "python").write_bytes(real.read_bytes())
    (tmp_path / "notes.txt").write_text("not an ELF file")
    facts = scan_elf(tmp_path, ["python", "notes.txt"])
    assert set(facts.glibc_needs) == {"python"}
    assert facts.glibc_needs["python"] == facts.glibc_floor


def test_a_ceiling_below_the_floor_is_refused_naming_the_files() -> None:
    with pytest.raises(CompatibilityError) as caught:
        check_glibc_ceiling(FACTS, "2.28", None, ["__glibc >=2.17"])
    message = caught.value.message
    assert "needs glibc 2.34, above --glibc 2.28" in message
    for named in ("bin/python3.12 (GLIBC_2.34)", "lib/libstdc++.so.6 (GLIBC_2.34)"):
        assert named in message
    assert "lib/libssl.so.3 (GLIBC_2.33)" in message
    assert "libz" not in message and "2.17" not in message, "what fits is not named"
    assert "--glibc" in str(caught.value.hint)


def test_the_lock_can_set_the_floor_above_the_ceiling_too() -> None:
    low = ElfFacts("2.17", "bin/x", {}, {"bin/x": "2.17"})
    with pytest.raises(CompatibilityError) as caught:
        check_glibc_ceiling(low, "2.28", "2.31", ["__glibc >=2.30"])
    assert "the lock's __glibc (GLIBC_2.31)" in caught.value.message
    assert "__glibc >=2.30 (GLIBC_2.30)" in caught.value.message
    check_glibc_ceiling(low, "2.31", "2.31", ["__glibc >=2.30"])  # at the ceiling: fine


@pytest.mark.parametrize("value", ["2", "2.x", "3.1", "2.28.1", "glibc 2.28", ""])
def test_bad_glibc_options_are_refused(value: str) -> None:
    with pytest.raises(InputError):
        check_glibc_option(value)


@pytest.mark.parametrize(
    ("glibc", "platform"),
    [
        (None, "x86_64-manylinux_2_28"),
        ("2.17", "x86_64-manylinux_2_17"),
        ("2.27", "x86_64-manylinux_2_17"),
        ("2.28", "x86_64-manylinux_2_28"),
        ("2.30", "x86_64-manylinux_2_28"),
        ("2.34", "x86_64-manylinux_2_34"),
        ("2.41", "x86_64-manylinux_2_40"),
    ],
)
def test_uv_resolves_for_the_manylinux_level_of_glibc(glibc: str | None, platform: str) -> None:
    assert python_platform("linux-64", glibc) == platform


def test_a_glibc_below_manylinux_is_refused_for_pypi() -> None:
    with pytest.raises(InputError) as caught:
        python_platform("linux-64", "2.12")
    assert "2.17" in caught.value.message


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a-1-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", "2.17"),
        ("a-1-cp312-cp312-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl", "2.27"),
        ("a-1-cp312-cp312-manylinux2010_x86_64.whl", "2.12"),
        ("a-1-cp312-cp312-manylinux1_x86_64.whl", "2.5"),
        ("a-1-py3-none-any.whl", None),
        ("a-1-cp312-cp312-linux_x86_64.whl", None),
    ],
)
def test_a_wheels_floor_is_its_lowest_manylinux_tag(name: str, expected: str | None) -> None:
    assert wheel_glibc(name) == expected


def conda(name: str, *depends: str) -> CondaPackage:
    return CondaPackage(
        name, "1", "0", "linux-64", f"u/{name}", f"{name}.conda", None, None, None, depends
    )


def wheel(file_name: str, action: PypiAction = "install") -> PypiPackage:
    return PypiPackage(
        file_name.split("-")[0], "1", f"https://x/{file_name}", "wheel", None, action
    )


def a_plan() -> Plan:
    return Plan(
        Path("."),
        "default",
        "linux-64",
        Subdir("linux-64"),
        (conda("python", "__glibc >=2.17,<3.0.a0", "libzlib"), conda("libzlib")),
        (
            wheel("numpy-2-cp312-cp312-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl"),
            wheel("idna-3-py3-none-any.whl"),
            wheel("old-1-cp312-cp312-manylinux_2_39_x86_64.whl", action="skip"),
        ),
        (),
        lock_glibc="2.28",
    )


def test_plan_names_what_sets_the_floor() -> None:
    sources = plan_glibc_sources(a_plan(), [("2.35", "lib/libpython3.12.so.1.0")])
    assert sources == (
        ("2.35", "interpreter lib/libpython3.12.so.1.0"),
        ("2.28", "the lock's __glibc"),
        ("2.27", "wheel numpy-2-cp312-cp312-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl"),
        ("2.17", "a package's dependency __glibc >=2.17,<3.0.a0"),
    ), "a skipped wheel and a pure one set nothing"


def test_plan_command_of_a_python_names_the_interpreters_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`portenv plan --python` scans the base interpreter's own ELF files (no requirements)."""
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("")
    assert main(["plan", "--python", sys.executable, "-r", str(requirements), "--json"]) == 0
    sources = json.loads(capsys.readouterr().out)["glibc_floor_sources"]
    assert sources and all(s["source"].startswith("interpreter ") for s in sources)
    assert any("python" in s["source"] for s in sources)
    assert main(["plan", "--python", sys.executable, "-r", str(requirements)]) == 0
    out = capsys.readouterr().out
    assert f"glibc floor: at least {sources[0]['version']}" in out
    assert sources[0]["source"] in out


def test_meta_block_carries_the_floor_files_within_its_budget() -> None:
    long = "lib/python3.12/site-packages/" + "x" * 150 + "/with space.so"
    files = tuple(("2.34", f"{long}{i}") for i in range(5))
    meta = PackMeta(
        "linux-64", "x86_64", "2.34", 1, 1, 255, "bin/python3.12", glibc_floor_files=files
    )
    block = meta_block(meta).decode()
    line = next(x for x in block.splitlines() if x.startswith("glibc_floor_files="))
    assert line.count(" ") == 4 and "with%20space.so0" in line
    assert PackMeta.from_json(json.loads(json.dumps(meta.__dict__))) == meta


def test_pack_refuses_a_too_new_interpreter_before_staging(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The base interpreter's own floor is known at once: nothing is downloaded or staged."""
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("")
    out = tmp_path / "app.sh"
    argv = ["pack", "--python", sys.executable, "-r", str(requirements), "-o", str(out)]
    cache = tmp_path / "cache"
    assert main([*argv, "--glibc", "2.17", "--use-cache", str(cache)]) == 1
    error = capsys.readouterr().err.splitlines()[0]
    assert error.startswith("error: the environment needs glibc 2.")
    assert "above --glibc 2.17: interpreter " in error
    assert not out.exists() and not (cache / "staging").exists()
