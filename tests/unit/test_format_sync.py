"""Every side of the archive format says what portenv.format says.

The sh unpacker, the relocation engine (both run on the target and import nothing of portenv),
the meta writer and docs/format.md each restate part of the format; these tests read them and
compare, so that a change made in one place and not the others fails here.
"""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from portenv.format import FORBIDDEN_IN_DESTINATION, META_KEYS, UPDATE_KEYS, Exit
from portenv.model import PackMeta
from portenv.target import relocate

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = (ROOT / "src/portenv/target/portenv-unpack.sh").read_text(encoding="utf-8")
DOC = (ROOT / "docs/format.md").read_text(encoding="utf-8")


def _function(name: str) -> str:
    """The body of the sh function `name`."""
    found = re.search(rf"^{name}\(\) {{.*?^}}$", SCRIPT, re.MULTILINE | re.DOTALL)
    assert found is not None, name
    return found.group(0)


def test_the_sh_unpacker_reads_known_keys() -> None:
    read = set(re.findall(r"^\s+([a-z0-9_]+)=\*\)", _function("parse_head"), re.MULTILINE))
    assert read, "parse_head reads no key"
    assert read <= set(META_KEYS), read - set(META_KEYS)
    validated = {key for key, pattern in META_KEYS.items() if pattern is not None}
    assert validated <= read, "the sh unpacker must read every key it has to validate"


def test_the_sh_unpacker_reads_the_update_keys() -> None:
    read = set(re.findall(r"\bupdate_key ([a-z0-9_]+)", SCRIPT))
    assert read, "the sh unpacker reads no update key"
    assert read <= set(UPDATE_KEYS), read - set(UPDATE_KEYS)


def test_the_sh_unpacker_exits_with_known_codes() -> None:
    used = {int(code) for code in re.findall(r"\bdie ([0-9]+) ", SCRIPT)}
    used |= {int(code) for code in re.findall(r"\bexit ([0-9]+)\b", SCRIPT)}
    known = {int(code) for code in Exit}
    signals = {129, 130, 143}  # 128 + HUP, INT, TERM: the shell's own convention
    assert used - {1} - signals <= known, used - known
    assert {Exit.ARCHIVE, Exit.TARGET, Exit.DESTINATION, Exit.DISK, Exit.INTEGRITY} <= used


def test_the_documented_exit_codes_are_the_format_modules() -> None:
    section = DOC.split("## Exit codes of the unpacker", 1)[1]
    documented = {int(code) for code in re.findall(r"^\| ([0-9]+) \|", section, re.MULTILINE)}
    assert documented == {int(code) for code in Exit} - {Exit.FAILED}


def test_the_meta_is_written_in_the_format_modules_order() -> None:
    every = PackMeta(
        platform="linux-64",
        arch="x86_64",
        glibc_floor="2.17",
        unpacked_kib=1,
        files=1,
        prefix_max=255,
        python="bin/python",
        payload_size=1,
        payload_sha256="0" * 64,
        portenv_version="0",
        payload_cuts=((1, 1),),
        glibc_floor_files=(("2.17", "lib/x.so"),),
        unzstd_size=1,
        unzstd_sha256="0" * 64,
    )
    written = [line.split("=", 1)[0] for line in every.lines()]
    assert written == [key for key in META_KEYS if key in written]
    assert set(written) == set(META_KEYS), set(META_KEYS) ^ set(written)
    assert len(fields(PackMeta)) >= len(written) - 2, "format and libc are constants"


def test_every_side_forbids_the_same_characters() -> None:
    assert relocate.FORBIDDEN == FORBIDDEN_IN_DESTINATION
    check = _function("check_dest")
    for char in FORBIDDEN_IN_DESTINATION:
        shown = {"\n": '"$PORTENV_NL"', '"': "'\"'", "$": "'$'", "`": "'`'", "\\": "\\\\"}[char]
        assert shown in check, repr(char)


def test_every_option_of_the_sh_unpacker_is_documented() -> None:
    """What `--help` lists is in docs/format.md, and the options the unpacker passes on to the
    relocation engine (`compile_opts`) are ones that engine reads."""
    options = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", _function("usage")))
    assert "--compile" in options
    missing = {o for o in options if not re.search(rf"{re.escape(o)}(?![\w-])", DOC)}
    assert not missing, missing
    passed = re.findall(r"--[a-z]+", _function("compile_opts").split("\n", 1)[1])
    assert passed == ["--compile", "--jobs"]
    for option in passed:
        assert option in relocate.USAGE
