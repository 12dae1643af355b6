"""Plain archives: launchers and activate that find their own location, refusals, the writer."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
import zlib
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from portenv.errors import InputError, OutputError, RelocationError
from portenv.model import PackMeta, RelocationManifest, RelocFile
from portenv.seal import SealedPrefix
from portenv.seal.listing import listing
from portenv.seal.plain import (
    DROPPED,
    compile_rewritten,
    plain_activate,
    plain_changes,
    relative_launcher,
    self_locating,
)
from portenv.stage.cpython_sysconfig import sysconfigdata_source
from portenv.write.payload import PayloadMismatchError, listed_tar_digest
from portenv.write.plain import check_plain_options, write_plain

PH = "/portenv_placehold" * 3
INSTALLER = f"#!/bin/sh\n'''exec' \"{PH}/bin/python3.12\" \"$0\" \"$@\"\n' '''\nimport sys\n"
RATTLER = f"#!/bin/sh\n'''exec' \"{PH}/bin/python3.12\" \"$0\" \"$@\" #'''\nimport sys\n"
BARE = f"#!/bin/sh\n'''exec' {PH}/bin/python3.12 \"$0\" \"$@\"\n' '''\nimport sys\n"
SHEBANG = f"#!{PH}/bin/python3.12\nimport sys\n"
SHEBANG_ARGS = f"#!{PH}/bin/python3.12 -E -s\nimport sys\n"
SHELLS = [s for s in ("dash", "bash", "busybox", "zsh", "mksh") if shutil.which(s)]


def shell_argv(shell: str) -> list[str]:
    return ["busybox", "sh"] if shell == "busybox" else [shell]


@pytest.mark.parametrize(
    ("text", "where", "args"),
    [
        pytest.param(INSTALLER, "bin/tool", "", id="installer"),
        pytest.param(RATTLER, "bin/tool", "", id="rattler"),
        pytest.param(BARE, "bin/tool", "", id="unquoted"),
        pytest.param(SHEBANG, "bin/tool", "", id="shebang"),
        pytest.param(SHEBANG_ARGS, "bin/tool", "-E -s", id="shebang-args"),
        pytest.param(SHEBANG, "libexec/sub/tool", "", id="other-folder"),
    ],
)
def test_launchers_run_the_python_beside_them(
    tmp_path: Path, text: str, where: str, args: str
) -> None:
    """Each launcher form, made relative, runs the env's python from two places, also when
    reached through a symlink from elsewhere; the Python part after the header is kept."""
    new = relative_launcher(text.encode(), where, PH)
    assert new is not None
    assert PH.encode() not in new
    assert new.endswith(b"import sys\n")
    for place in ("one", "two with space"):
        env = tmp_path / place
        python = env / "bin" / "python3.12"
        python.parent.mkdir(parents=True)
        python.write_text('#!/bin/sh\necho "ran $0 with: $*"\n')
        python.chmod(0o755)
        script = env / where
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_bytes(new)
        script.chmod(0o755)
        link = tmp_path / f"link-{place}"
        link.symlink_to(script)
        for started in (script, link):
            out = subprocess.run(
                [str(started), "a b"], capture_output=True, text=True, check=True
            ).stdout
            ran, _, given = out.strip().removeprefix("ran ").partition(" with: ")
            assert os.path.realpath(ran) == str(python.resolve())
            assert given == f"{args + ' ' if args else ''}{started} a b"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(f"#!{PH}/bin/perl\nprint 1;\n", id="not-python"),
        pytest.param(f"#!/usr/bin/python3\nP = '{PH}'\n", id="other-python"),
        pytest.param(SHEBANG + f"HOME = '{PH}'\n", id="prefix-inside"),
        pytest.param(f"prefix={PH}\n", id="config"),
        pytest.param(f'#!{PH}/bin/py"thon3\n', id="unsafe-name"),
    ],
)
def test_what_is_not_a_launcher_is_left_alone(text: str) -> None:
    assert relative_launcher(text.encode(), "bin/tool", PH) is None


@pytest.mark.parametrize("shell", SHELLS)
def test_activate_finds_its_own_location(tmp_path: Path, shell: str) -> None:
    """Sourced by path (relative, absolute, with a space), from a script or a subshell."""
    for place in ("first", "second place"):
        env = tmp_path / place / "env"
        (env / "bin").mkdir(parents=True)
        (env / "bin" / "activate").write_bytes(plain_activate())
    lines = [
        'cd "$1"',
        ". first/env/bin/activate",
        'echo "A=$PORTENV_PREFIX"',
        '. "$1/second place/env/bin/activate"',
        'echo "B=$PORTENV_PREFIX"',
        '( . "./second place/env/bin/activate"; echo "C=$PATH" )',
        "deactivate",
        'echo "D=${PORTENV_PREFIX:-unset}"',
    ]
    done = subprocess.run(
        [*shell_argv(shell), "-c", "\n".join(lines), "sh", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    real = tmp_path.resolve()
    assert done.stdout.splitlines() == [
        f"A={real}/first/env",
        f"B={real}/second place/env",
        f"C={real}/second place/env/bin:{os.environ['PATH']}",
        "D=unset",
    ]


def test_activate_refuses_when_it_cannot_find_itself(tmp_path: Path) -> None:
    """Read from stdin, no shell can tell the file: one error and a hint, no PATH change."""
    done = subprocess.run(
        ["dash", "-c", '. /dev/stdin; echo "status $? $PATH"'],
        input=plain_activate(),
        capture_output=True,
        check=False,
    )
    assert done.stdout.decode() == f"status 1 {os.environ['PATH']}\n"
    assert done.stderr.decode().splitlines() == [
        "error: cannot tell where this activate script is",
        "  hint: source it from bash, zsh, dash or busybox sh on Linux (with /proc mounted)",
    ]


def make_prefix(root: Path, binary_files: int = 0) -> SealedPrefix:
    """A small sealed-looking prefix: python, a launcher, activate, relocation files, links."""
    (root / "bin").mkdir(parents=True)
    (root / "lib" / "pkg").mkdir(parents=True)
    (root / ".portenv").mkdir()
    python = root / "bin" / "python3.12"
    python.write_text("#!/bin/sh\necho python\n")
    python.chmod(0o755)
    (root / "bin" / "python").symlink_to("python3.12")
    (root / "lib" / "pkg" / "mod.py").write_text("X = 1\n")
    (root / "lib" / "linked").symlink_to("pkg")
    (root / "bin" / "tool").write_text(INSTALLER)
    (root / "bin" / "tool").chmod(0o755)
    (root / "bin" / "activate").write_text(f'PORTENV_PREFIX="{PH}"\n')
    files = [RelocFile("bin/activate", "text"), RelocFile("bin/tool", "text")]
    for name in sorted(DROPPED):
        (root / name).write_text(f"{PH}\n")
        if name == "bin/portenv-relocate":
            files.append(RelocFile(name, "text"))
    for index in range(binary_files):
        (root / "lib" / f"lib{index}.so").write_bytes(b"\x7fELF\0" + PH.encode() + b"\0")
        files.append(RelocFile(f"lib/lib{index}.so", "binary", ((5, len(PH)),)))
    manifest = RelocationManifest(PH, len(PH), "bin/python3.12", tuple(files))
    meta = PackMeta("linux-64", "x86_64", "2.17", 100, 10, len(PH), "bin/python3.12")
    return SealedPrefix(root, manifest, meta)


def test_refusal_names_a_few_files_and_counts_the_rest(tmp_path: Path) -> None:
    sealed = make_prefix(tmp_path / "p", binary_files=7)
    with pytest.raises(RelocationError) as caught:
        plain_changes(sealed.path, sealed.manifest)
    message = str(caught.value)
    assert message.startswith("7 files of the environment name its install path")
    assert "lib/lib0.so (binary)" in message and "lib/lib4.so (binary)" in message
    assert "lib/lib5.so" not in message and message.endswith("and 2 more")
    assert "env.sh or env.tar" in (caught.value.hint or "")


def test_changes_drop_the_relocation_machinery(tmp_path: Path) -> None:
    sealed = make_prefix(tmp_path / "p")
    changes = plain_changes(sealed.path, sealed.manifest)
    assert sorted(changes.replaced) == ["bin/activate", "bin/tool"]
    assert changes.dropped == DROPPED


def tar_members(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as archive:
        return {m.name: m for m in archive.getmembers()}


@pytest.mark.parametrize("dereference", [False, True], ids=["links", "dereference"])
def test_tar_gz_is_reproducible_and_plain(tmp_path: Path, dereference: bool) -> None:
    sealed = make_prefix(tmp_path / "p")
    first, second = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    for output in (first, second):
        write_plain(sealed, output, archive_format="tar.gz", dereference=dereference)
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes()[4:8] == b"\0\0\0\0", "gzip mtime must be 0"
    one = zlib.decompressobj(wbits=31)
    one.decompress(first.read_bytes())
    assert one.eof and one.unused_data == b"", "one gzip member: any reader reads it whole"
    sidecar = (tmp_path / "a.tar.gz.sha256").read_text()
    assert sidecar == f"{hashlib.sha256(first.read_bytes()).hexdigest()}  a.tar.gz\n"
    members = tar_members(first)
    assert not DROPPED & set(members)
    assert {m.uid for m in members.values()} == {0} and {m.mtime for m in members.values()} == {0}
    with tarfile.open(first) as archive:
        tool = archive.extractfile("bin/tool")
        assert tool is not None and PH.encode() not in tool.read()
    python, linked = members["bin/python"], members["lib/linked"]
    if dereference:
        assert python.isfile() and python.mode == 0o755 and python.size > 0
        assert linked.isdir() and members["lib/linked/mod.py"].isfile()
    else:
        assert python.issym() and python.linkname == "python3.12"
        assert linked.issym() and "lib/linked/mod.py" not in members


def test_zip_always_copies_links_and_keeps_modes(tmp_path: Path) -> None:
    sealed = make_prefix(tmp_path / "p")
    output = tmp_path / "env.zip"
    write_plain(sealed, output, archive_format="zip")
    with zipfile.ZipFile(output) as archive:
        infos = {i.filename: i for i in archive.infolist()}
        assert archive.read("bin/python") == (sealed.path / "bin/python3.12").read_bytes()
        assert archive.read("lib/linked/mod.py") == b"X = 1\n"
    assert infos["bin/python"].external_attr >> 16 == 0o100755
    assert infos["lib/pkg/mod.py"].external_attr >> 16 == 0o100644
    assert {i.date_time for i in infos.values()} == {(1980, 1, 1, 0, 0, 0)}
    copy = tmp_path / "again.zip"
    write_plain(sealed, copy, archive_format="zip")
    assert copy.read_bytes() == output.read_bytes()


def test_a_link_out_of_the_env_is_refused_with_dereference(tmp_path: Path) -> None:
    sealed = make_prefix(tmp_path / "p")
    (sealed.path / "lib" / "outside").symlink_to("/etc")
    output = tmp_path / "env.tar.gz"
    with pytest.raises(OutputError, match="symlink lib/outside points outside"):
        write_plain(sealed, output, archive_format="tar.gz", dereference=True)
    assert not output.exists() and not list(tmp_path.glob(".env.tar.gz*"))


def test_a_changed_cached_prefix_is_not_written(tmp_path: Path) -> None:
    sealed = make_prefix(tmp_path / "p")
    entries = listing(sealed.path)
    recorded = listed_tar_digest(sealed.path, entries)
    (sealed.path / "lib" / "pkg" / "mod.py").write_text("X = 2\n")  # same size, new bytes
    output = tmp_path / "env.tar.gz"
    with pytest.raises(PayloadMismatchError):
        write_plain(
            sealed,
            output,
            archive_format="tar.gz",
            entries=entries,
            expect_tar_sha256=recorded,
        )
    assert not output.exists()


@pytest.mark.parametrize(
    ("archive_format", "name", "entry", "compression", "problem"),
    [
        pytest.param("tar.gz", "env.tar", "", "gzip", "must be named", id="name"),
        pytest.param("zip", "env.tar.gz", "", "gzip", "must be named", id="zip-name"),
        pytest.param("tar.gz", "env.tgz", "tool", "gzip", "--entry", id="entry"),
        pytest.param("tar.gz", "env.tar.gz", "", "zstd", "zstd", id="zstd"),
    ],
)
def test_plain_options_are_checked_first(
    archive_format: str, name: str, entry: str, compression: str, problem: str
) -> None:
    options = SimpleNamespace(entry=entry, dereference=False)
    with pytest.raises((InputError, OutputError), match=problem):
        check_plain_options(archive_format, Path(name), options, compression)


def test_meta_reports_the_plain_archive(tmp_path: Path) -> None:
    sealed = make_prefix(tmp_path / "p")
    written = write_plain(sealed, tmp_path / "env.tgz", archive_format="tar.gz")
    assert written.format_name == "tar.gz" and written.meta is not None
    assert written.meta.prefix_max == 0 and written.meta.glibc_floor == "2.17"
    assert written.meta.files == len(tar_members(tmp_path / "env.tgz"))
    assert replace(written.meta, files=0).payload_size == (tmp_path / "env.tgz").stat().st_size


SYSCONFIG_LITERAL = (
    "build_time_vars = {'prefix': '%(p)s', 'LIBDIR': '%(p)s/lib', 'CC': 'gcc',"
    " 'WASM_STDLIB': '.%(p)s/lib/os.py', 'CONFIG_ARGS': \"'--prefix=%(p)s'\", 'X': 1}\n"
)
CONFIG_SCRIPT = (
    '#!/bin/sh\nprefix_real=$(installed_prefix "$0")\nprefix="%(p)s"\necho "-L%(p)s/lib"\n'
)


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(SYSCONFIG_LITERAL % {"p": PH}, id="as-built"),
        pytest.param(
            sysconfigdata_source(
                {
                    "prefix": "/b",
                    "LIBDIR": "/b/lib",
                    "CC": "gcc",
                    "WASM_STDLIB": "./b/lib/os.py",
                    "CONFIG_ARGS": "'--prefix=/b'",
                    "X": 1,
                },
                "/b",
            ).replace("/b", PH),
            id="made-portable",
        ),
    ],
)
def test_sysconfigdata_follows_the_prefix_everywhere(source: str) -> None:
    """Also CONFIG_ARGS and the `./PREFIX` of 3.12's WASM paths: nothing may name the path."""
    where = "lib/python3.12/_sysconfigdata__linux_x86_64-linux-gnu.py"
    new = self_locating(source.encode(), where, PH)
    assert new is not None and PH.encode() not in new
    namespace: dict[str, object] = {}
    exec(new.decode(), namespace)  # the module just generated
    variables = namespace["build_time_vars"]
    base = sys.base_prefix
    assert variables == {
        "prefix": base,
        "LIBDIR": f"{base}/lib",
        "CC": "gcc",
        "WASM_STDLIB": f".{base}/lib/os.py",
        "CONFIG_ARGS": f"'--prefix={base}'",
        "X": 1,
    }


def test_config_script_and_pkgconfig_name_their_own_place() -> None:
    script = self_locating((CONFIG_SCRIPT % {"p": PH}).encode(), "bin/python3.12-config", PH)
    assert script is not None and b'prefix="${prefix_real}"' in script
    assert b'"-L${prefix_real}/lib"' in script
    pc = self_locating(f"prefix={PH}\nlibdir={PH}/lib\n".encode(), "lib/pkgconfig/x.pc", PH)
    assert pc == b"prefix=${pcfiledir}/../..\nlibdir=${pcfiledir}/../../lib\n"
    elsewhere = self_locating(f"prefix={PH}\n".encode(), "share/x.pc", PH)
    assert elsewhere is None, "only lib/pkgconfig's .pc files are two folders down"


@pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")
def test_config_makefile_computes_its_prefix(tmp_path: Path) -> None:
    where = "lib/python3.12/config-3.12-x86_64-linux-gnu/Makefile"
    text = f"prefix=\t\t{PH}\nLIBDIR=\t\t{PH}/lib\nall:\n\t@false\n"
    new = self_locating(text.encode(), where, PH)
    assert new is not None
    for env in (tmp_path / "one" / "env", tmp_path / "two" / "env"):
        (env / where).parent.mkdir(parents=True)
        (env / where).write_bytes(new)
        done = subprocess.run(
            ["make", "-s", "-f", str(env / where), "--eval", "show: ; @echo $(LIBDIR)", "show"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert done.stdout == f"{env}/lib\n"


def test_a_sysconfigdata_of_another_shape_is_refused(tmp_path: Path) -> None:
    sealed = make_prefix(tmp_path / "p")
    odd = "lib/python3.12/_sysconfigdata_x.py"
    (sealed.path / odd).parent.mkdir(parents=True)
    (sealed.path / odd).write_text(f"build_time_vars = dict(prefix='{PH}')\n")
    files = (*sealed.manifest.files, RelocFile(odd, "text"))
    with pytest.raises(RelocationError, match=f"1 files .*: {odd} \\(text\\)$"):
        plain_changes(sealed.path, replace(sealed.manifest, files=files))


class Progress:
    """Records the compressing task: its total and every advance."""

    def __init__(self) -> None:
        self.total: int | None = None
        self.advanced = 0
        self.done = False

    def on_task_start(self, label: str, total: int | None) -> int:
        self.total = total
        return 1

    def on_task_advance(self, token: int, amount: int) -> None:
        self.advanced += amount

    def on_task_complete(self, token: int) -> None:
        self.done = True

    def on_warning(self, message: str) -> None:
        raise AssertionError(message)

    def on_info(self, message: str) -> None:
        raise AssertionError(message)


@pytest.mark.parametrize("archive_format", ["tar.gz", "zip"])
def test_progress_adds_up_to_the_total(tmp_path: Path, archive_format: str) -> None:
    sealed = make_prefix(tmp_path / "p")
    (sealed.path / "lib" / "big.bin").write_bytes(os.urandom(5 << 20))
    progress = Progress()
    output = tmp_path / f"env.{archive_format}"
    write_plain(sealed, output, archive_format=archive_format, reporter=progress)  # type: ignore[arg-type]
    assert progress.done and progress.total is not None and progress.total > 5 << 20
    assert progress.advanced == progress.total


@pytest.mark.parametrize(
    ("args", "problem", "status"),
    [
        pytest.param(["--dereference", "-o", "env.sh"], "--dereference applies", 2, id="deref"),
        pytest.param(
            ["--format", "pixi-pack", "--dereference", "-o", "e.tar"],
            "--dereference",
            2,
            id="deref-pixi-pack",
        ),
        pytest.param(["--format", "zip", "-o", "env.tar.gz"], "must be named", 1, id="name"),
        pytest.param(
            ["--format", "tar.gz", "--entry", "x", "-o", "e.tgz"], "--entry", 2, id="entry"
        ),
        pytest.param(
            ["--format", "tar.gz", "--compression", "zstd", "-o", "e.tgz"], "zstd", 2, id="zstd"
        ),
    ],
)
def test_pack_refuses_bad_plain_options_first(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    problem: str,
    status: int,
) -> None:
    from portenv.cli import main

    monkeypatch.chdir(tmp_path)
    code = main(["pack", "--python", sys.executable, *args])
    error, hint = capsys.readouterr().err.strip().splitlines()[-2:]
    assert code == status and problem in error and error.startswith("error: ")
    assert hint.startswith("  hint: ")
    assert list(tmp_path.iterdir()) == []


def test_rewritten_sources_get_checked_hash_bytecode(tmp_path: Path) -> None:
    """By the env's python (here: this one); none when it cannot run."""
    sealed = make_prefix(tmp_path / "p")
    sources = {"lib/pkg/fixed.py": b"X = 2\n", "bin/tool": b"#!/bin/sh\n"}
    assert compile_rewritten(sealed.path, sealed.manifest, sources) == {}  # a sh script
    (sealed.path / "bin" / "python3.12").unlink()
    (sealed.path / "bin" / "python3.12").symlink_to(sys.executable)
    compiled = compile_rewritten(sealed.path, sealed.manifest, sources)
    tag = sys.implementation.cache_tag
    assert list(compiled) == [f"lib/pkg/__pycache__/fixed.{tag}.pyc"]
    pyc = compiled[f"lib/pkg/__pycache__/fixed.{tag}.pyc"]
    assert pyc[4:8] == b"\x03\0\0\0" and pyc[8:16] == importlib.util.source_hash(b"X = 2\n")


def test_plain_activate_is_shellcheck_clean(tmp_path: Path) -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.fail("shellcheck is not installed: run scripts/install-system-deps.sh --tests")
    script = tmp_path / "activate"
    script.write_bytes(plain_activate())
    done = subprocess.run(
        [shellcheck, "-s", "sh", "--severity=warning", "-e", "SC1090", str(script)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout
