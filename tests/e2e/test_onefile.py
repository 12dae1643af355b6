"""One-file apps on bare targets: `./tool.sh` (packed with --entry) and `sh env.sh --run CMD`.

Everything runs inside the glibc + busybox rootfs with no network (one case on the arm64 rootfs
through qemu): first and warm runs from the per-user cache, arguments, stdin and exit status,
16 concurrent first runs, SIGKILL at timed and exact points of a first run, unsafe caches, no HOME,
PORTENV=unpack and a truncated file.
"""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import pytest

from tests.conftest import Archives, portenv
from tests.e2e.test_core import assert_only_under, expect_ok, script
from tests.support.faults import facts, make_kit
from tests.support.hardening import record
from tests.support.rootfs import RootfsResult, run_in_rootfs

pytestmark = [pytest.mark.e2e, pytest.mark.hardening]

CACHE = "/home/u/.cache/portenv"
SHOW = "import json, os, sys; print(json.dumps(sys.argv[1:])); print(sys.stdin.read()); sys.exit(3)"
TRICKY = ["a b", "", "*", "$HOME", "-o", "--run", "x\ny"]


@pytest.fixture(scope="module")
def tools(
    core_project: Path,
    core_archives: Archives,
    package_cache: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """/dist: env.sh, tool.sh (--entry hello-py), a cut copy of tool.sh, and its cache key."""
    dist = tmp_path_factory.mktemp("onefile")
    shutil.copy(core_archives.self_extracting, dist / "env.sh")
    tool = dist / "tool.sh"
    portenv("pack", core_project, "-o", tool, "--entry", "hello-py", "--use-cache", package_cache)
    data = tool.read_bytes()
    (dist / "cut.sh").write_bytes(data[: len(data) - 1000])
    line = next(x for x in data[:8192].split(b"\n") if x.startswith(b"PORTENV_PAYLOAD_SHA256="))
    (dist / "key").write_text(line.split(b"=", 1)[1].decode())
    return dist


def run(root: Path, dist: Path, *lines: str, **kwargs: object) -> RootfsResult:
    """Sh lines in a fresh copy of `root`, as a user whose HOME is /home/u, /dist bound."""
    return run_in_rootfs(
        root,
        script("export HOME=/home/u", "mkdir -p $HOME", *lines),
        binds=[(dist, "/dist")],
        **kwargs,  # type: ignore[arg-type]
    )


def test_tool_first_and_warm_runs(busybox_root: Path, tools: Path) -> None:
    key = (tools / "key").read_text()
    entry = f"{CACHE}/{key}"
    result = run(
        busybox_root,
        tools,
        "/dist/tool.sh; echo first=$?",
        f"echo mine >{entry}/sentinel",  # a new unpack would not keep it
        "/dist/tool.sh; echo warm=$?",
        f"cat {entry}/sentinel; ls -A {CACHE}; ls -ld {CACHE} | cut -c1-10",
    )
    out = expect_ok(result).splitlines()
    assert out == [
        f"hello-py {entry}",
        "first=0",
        f"hello-py {entry}",
        "warm=0",
        "mine",
        key,
        "drwx------",
    ], result.stderr
    assert result.stderr == ""
    assert_only_under(result, ["/home/u"])


@pytest.mark.parametrize("warm", [False, True], ids=["first", "warm"])
def test_run_arguments_stdin_and_status(busybox_root: Path, tools: Path, warm: bool) -> None:
    args = " ".join(shlex.quote(a) for a in TRICKY)
    result = run(
        busybox_root,
        tools,
        *(["sh /dist/env.sh --run python -c pass"] if warm else []),
        "set +e",
        f"printf 'in put' | sh /dist/env.sh --run python -c {shlex.quote(SHOW)} {args}",
        "echo rc=$?",
    )
    out = expect_ok(result).splitlines()
    assert json.loads(out[0]) == TRICKY
    assert out[1:] == ["in put", "rc=3"]


def test_concurrent_first_runs_make_one_entry(busybox_root: Path, tools: Path) -> None:
    key = (tools / "key").read_text()
    result = run(
        busybox_root,
        tools,
        "mkdir /h; i=0; while [ $i -lt 16 ]; do /dist/tool.sh >/h/out.$i 2>&1 & i=$((i + 1)); done",
        "ok=0; for p in $(jobs -p); do wait $p && ok=$((ok + 1)); done; echo ok=$ok",
        "cat /h/out.* | sort | uniq -c | sed 's/^ *//'",
        f"ls -A {CACHE}",
    )
    out = expect_ok(result).splitlines()
    assert out == ["ok=16", f"16 hello-py {CACHE}/{key}", key], result.stderr
    record(
        "fault",
        "16 first runs of a one-file app at once (busybox sh, empty cache)",
        "all exit 0 and run the command; the others wait for the one that unpacks",
        injections=16,
        destination="one cache entry, no leftover",
    )


DRIVER = r"""
CACHE=/home/u/.cache/portenv
key=$(cat /dist/key)
listing() { (cd "$1" 2>/dev/null && find . ! -path '*__pycache__*' ! -name cache-ready |
    sort | md5sum); }
t0=$(now_cs); /dist/tool.sh >/dev/null || exit 1; DUR=$(($(now_cs) - t0))
REF=$(listing "$CACHE/$key")
rm -rf "$CACHE"
set -f
for point in $POINTS; do
    run_killed "$point" /dist/tool.sh
    ready=$(find "$CACHE" -name cache-ready 2>/dev/null | wc -l)
    complete=no
    [ "$(listing "$CACHE/$key")" != "$REF" ] || complete=yes
    next=$(/dist/tool.sh 2>&1); rc=$?
    after=no
    [ "$(listing "$CACHE/$key")" != "$REF" ] || after=yes
    echo "point $point rc=$RC ready=$ready complete=$complete next=$rc after=$after" \
        "out=$(echo $next | tr ' ' _) left=$(ls -A "$CACHE" | tr '\n' ,)"
    rm -rf "$CACHE"
done
"""
CAMPAIGNS = {  # target: kill points (faults.sh run_killed), what the case name says
    "busybox": (
        "p:tar p:python3.12 t:50 t:200 t:350 t:500 t:650 t:800 t:950",
        "busybox sh, 7 timed points, tar, relocation",
    ),
    "trixie": (  # exact steps through fault-shim.sh (dash runs mv, mkdir, find, rm from PATH)
        "h:after:mkdir:*/.portenv-lock.* h:after:find:*/.portenv-tmp.* h:before:mv:*/.portenv-tmp.*"
        " h:after:mv:*/.portenv-tmp.* h:before:rm:*/.portenv-lock.KEY",
        "dash, the lock taken, extracted, relocated, renamed without its marker, marker written",
    ),
}


@pytest.mark.parametrize("target", sorted(CAMPAIGNS))
def test_sigkill_during_a_first_run(
    request: pytest.FixtureRequest, tools: Path, tmp_path: Path, target: str
) -> None:
    """Kill every process at timed and exact points: no entry is trusted that is not complete,
    and the next run cleans up, makes it complete and runs."""
    kit = make_kit(tmp_path / "kit")
    key = (tools / "key").read_text()
    at, title = CAMPAIGNS[target]
    at = at.replace("KEY", key)  # the lock's own removal, not that of a piece inside it
    driver = f"export HOME=/home/u POINTS='{at}'; mkdir -p $HOME; . /faults/faults.sh\n{DRIVER}"
    result = run_in_rootfs(
        request.getfixturevalue(f"{target}_root"),
        ["/bin/sh", "-c", driver],
        binds=[(tools, "/dist"), (kit, "/faults")],
        tmpfs=[("/h", "16m")],
        timeout=600,
    )
    points = [facts(line) for line in result.stdout.splitlines() if line.startswith("point ")]
    assert [
        line.split()[1] for line in result.stdout.splitlines() if line.startswith("point ")
    ] == at.split(), f"{result.stdout}\n{result.stderr}"
    for point in points:
        assert point["rc"] in ("137", "0"), point
        assert point["ready"] == "0" or point["complete"] == "yes", point
        assert (point["next"], point["after"]) == ("0", "yes"), point
        assert point["out"] == f"hello-py_{CACHE}/{key}", point
        # killed after the marker, before the lock's removal: warm runs take no lock, so the
        # stale lock stays (the next first run or PORTENV=prune removes it)
        stale = f".portenv-lock.{key}," if point["ready"] == "1" and point["rc"] == "137" else ""
        assert point["left"] in (f"{key},", f"{stale}{key},"), point
    assert any(p["rc"] == "137" and p["ready"] == "0" for p in points)
    if target == "trixie":  # renamed into place, killed before the marker: not trusted
        renamed = points[3]
        assert (renamed["rc"], renamed["ready"], renamed["complete"]) == ("137", "0", "yes")
        assert (points[4]["rc"], points[4]["ready"]) == ("137", "1")
    record(
        "fault",
        f"SIGKILL of a one-file app's first run ({title})",
        "no incomplete entry trusted; the next run cleaned up and ran",
        injections=len(points),
        killed_before_the_marker=sum(p["ready"] == "0" for p in points),
        destination="one complete cache entry, no leftover",
    )


def test_unsafe_cache_no_home_unpack_and_truncated(busybox_root: Path, tools: Path) -> None:
    key = (tools / "key").read_text()
    result = run(
        busybox_root,
        tools,
        "set +e",
        "mkdir -m 777 /shared; PORTENV_CACHE=/shared /dist/tool.sh; echo world=$? $(ls -A /shared)",
        "/dist/tool.sh >/dev/null && chmod g+w $HOME/.cache/portenv",
        "/dist/tool.sh; echo group=$?",
        "(unset HOME; /dist/tool.sh; echo nohome=$?)",
        "ls -ld /tmp/portenv-cache-0 | cut -c1-10; ls -A /tmp/portenv-cache-0",
        "PORTENV=unpack sh /dist/tool.sh -o /srv/app 2>&1; /srv/app/env/bin/hello-py",
        "PORTENV=info sh /dist/tool.sh | tail -n 1",
        "rm -rf /tmp/portenv-cache-0; (unset HOME; sh /dist/cut.sh; echo cut=$?); ls -A /tmp",
    )
    out = result.stdout.splitlines()
    err = result.stderr.splitlines()
    assert out == [
        "world=5",
        "group=5",
        f"hello-py /tmp/portenv-cache-0/{key}",
        "nohome=0",
        "drwx------",
        key,
        "portenv: unpacked " + out[6].split("unpacked ", 1)[1],
        "hello-py /srv/app/env",
        "entry=hello-py",
        "cut=3",
    ], result.stderr
    assert out[6].endswith(" files into /srv/app/env")
    assert err[:4] == [
        "error: the cache folder /shared is writable by other users",
        "  hint: nothing was run from it; chmod go-w /shared, or set PORTENV_CACHE to a folder "
        "that only you can write to",
        f"error: the cache folder {CACHE} is writable by other users",
        f"  hint: nothing was run from it; chmod go-w {CACHE}, or set PORTENV_CACHE to a folder "
        "that only you can write to",
    ]
    assert err[4].startswith("error: /dist/cut.sh is truncated or damaged: it is not ")


def test_run_on_aarch64(cross_archives: Archives, arm64_root: Path) -> None:
    code = "import platform, sys; print(platform.machine(), sys.prefix)"
    result = run_in_rootfs(
        arm64_root,
        script(
            "export HOME=/home/u && mkdir -p $HOME",
            f"sh /dist/env.sh --run python -c {shlex.quote(code)}",
            f"sh /dist/env.sh --run python -c {shlex.quote(code)}",
        ),
        binds=[(cross_archives.folder, "/dist")],
        timeout=600,
    )
    lines = expect_ok(result).splitlines()
    assert len(lines) == 2 and lines[0] == lines[1]
    machine, prefix = lines[0].split()
    assert machine == "aarch64" and prefix.startswith(f"{CACHE}/")
