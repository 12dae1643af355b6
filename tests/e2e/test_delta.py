"""Updates (`portenv delta`) applied in bare rootfs targets with no network: the updated env is
the tree a fresh unpack of NEW gives at the same place; a changed or already updated env is
refused and left as it was; a moved and relocated env is updated; updates chain; a SIGKILL at
any moment of the apply leaves the old env or the complete new one, and a rerun completes."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from tests.support.deltas import conda_updates, python_updates, snapshot
from tests.support.faults import make_kit
from tests.support.pyrelocate import installed_pythons
from tests.support.rootfs import RootfsResult, run_in_rootfs

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def conda_dist(
    local_channel: Path, package_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    dist = tmp_path_factory.mktemp("delta") / "dist"
    dist.mkdir()
    return conda_updates(dist, local_channel, package_cache)


def run(root: Path, dist: Path, srv: Path, *lines: str, **kwargs: object) -> RootfsResult:
    """Sh lines (stopping at the first failure) with /dist and a host folder at /srv."""
    srv.mkdir(exist_ok=True)
    argv = ["/bin/sh", "-c", "set -e\n" + "\n".join(lines)]
    return run_in_rootfs(root, argv, binds=[(dist, "/dist"), (srv, "/srv")], **kwargs)  # type: ignore[arg-type]


def ok(result: RootfsResult) -> str:
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result.stdout


def same_as_fresh(srv: Path, updated: str, fresh: str) -> None:
    """The updated tree is the fresh one, and nothing was left beside it."""
    assert snapshot(srv / updated / "env") == snapshot(srv / fresh / "env")
    assert sorted(p.name for p in (srv / updated).iterdir()) == ["env"]


APPLY = {
    "update.sh": "sh /dist/AB.sh -o /srv/u",
    "portenv-unpack update.tar": "sh /dist/portenv-unpack /dist/AB.tar -o /srv/u",
}


@pytest.mark.parametrize("target", ["busybox", "trixie"])
@pytest.mark.parametrize("how", sorted(APPLY))
def test_update_gives_a_fresh_unpack_of_new(
    request: pytest.FixtureRequest, conda_dist: Path, tmp_path: Path, target: str, how: str
) -> None:
    """A conda package added (greet, a C program with a compiled-in prefix): the updated
    env runs it, and is the tree an unpack of B gives at that place."""
    srv = tmp_path / "srv"
    out = ok(
        run(
            request.getfixturevalue(f"{target}_root"),
            conda_dist,
            srv,
            "sh /dist/A.sh -o /srv/run 2>/dev/null && sh /dist/AB.sh -o /srv/run",
            "/srv/run/env/bin/greet && /srv/run/env/bin/hello-py",
            "sh /dist/A.sh -o /srv/u 2>/dev/null",
            APPLY[how] + " 2>/srv/apply.err",
            "mv /srv/u /srv/updated",
            "sh /dist/B.sh -o /srv/u 2>/dev/null && mv /srv/u /srv/fresh",
        )
    )
    assert "hello from greet" in out and "hello-py /srv/run/env" in out
    assert (
        srv / "apply.err"
    ).read_text() == "portenv: updated /srv/u/env (4 added, 4 changed, 0 removed)\n" or (
        "portenv: updated /srv/u/env" in (srv / "apply.err").read_text()
    )
    same_as_fresh(srv, "updated", "fresh")


def test_refusals_leave_the_env_untouched(
    busybox_root: Path, conda_dist: Path, tmp_path: Path
) -> None:
    """A changed env, the wrong env, an env already updated: one error and hint line, exit 5,
    nothing changed; --check passes on the right env and writes nothing; --info says from/to."""
    srv = tmp_path / "srv"
    kit = make_kit(tmp_path / "kit")
    lines = [
        ". /faults/faults.sh",
        "sum() { listing $1 | md5sum; }",
        "sh /dist/A.sh -o /srv/t 2>/dev/null && sh /dist/A.sh -o /srv/ok 2>/dev/null",
        "sh /dist/C.sh -o /srv/c 2>/dev/null",
        "echo edited >> /srv/t/env/bin/hello-py && touch /srv/t/env/lib/added.txt",
        "before=$(sum /srv/t) c=$(sum /srv/c) k=$(sum /srv/ok)",
        "for d in t c; do sh /dist/AB.sh -o /srv/$d 2>/srv/$d.err && exit 9 || echo $d=$?; done",
        "sh /dist/AB.sh -o /srv/ok --check 2>/srv/check.err",
        '[ "$(sum /srv/ok)" = "$k" ] && [ "$(ls -A /srv/ok)" = env ] && echo check-wrote-nothing',
        "sh /dist/AB.sh -o /srv/ok 2>/dev/null && after=$(sum /srv/ok)",
        "sh /dist/AB.sh -o /srv/ok 2>/srv/twice.err && exit 9 || echo twice=$?",
        '[ "$(sum /srv/ok)" = "$after" ] && [ "$(ls -A /srv/ok)" = env ] && echo twice-unchanged',
        '[ "$(sum /srv/t)" = "$before" ] && [ "$(sum /srv/c)" = "$c" ] && echo untouched',
        '[ "$(ls -A /srv/t)" = env ] && echo no-leftover',
        "sh /dist/AB.sh --info | tail -1",
    ]
    result = run_in_rootfs(
        busybox_root,
        ["/bin/sh", "-c", "set -e\n" + "\n".join(lines)],
        binds=[(conda_dist, "/dist"), (kit, "/faults"), (_made(srv), "/srv")],
    )
    out = ok(result).splitlines()
    assert out[:3] == ["t=5", "c=5", "check-wrote-nothing"], result.stdout + result.stderr
    assert out[3:7] == ["twice=5", "twice-unchanged", "untouched", "no-leftover"]
    assert out[7].startswith("update from ") and out[7].endswith(" removes 0 files")
    tampered = (srv / "t.err").read_text().splitlines()
    assert len(tampered) == 2 and tampered[1].startswith("  hint: ")
    assert tampered[0] == (
        "error: /srv/t/env is not the environment this update was made from: "
        "bin/hello-py (changed), lib/added.txt (added)"
    )
    assert "is not the environment this update was made from: " in (srv / "c.err").read_text()
    assert "already updated" in (srv / "twice.err").read_text()
    assert "all checks passed" in (srv / "check.err").read_text()


def _made(path: Path) -> Path:
    path.mkdir(exist_ok=True)
    return path


def test_a_moved_relocated_env_takes_chained_updates(
    busybox_root: Path, conda_dist: Path, tmp_path: Path
) -> None:
    """A moved to a path with a space and portenv-relocated, then A->B and B->C: the tree an
    unpack of C gives there (the space makes every python script a /bin/sh trampoline)."""
    srv = tmp_path / "srv"
    place = "/srv/moved place"
    q = shlex.quote(place)
    ok(
        run(
            busybox_root,
            conda_dist,
            srv,
            "sh /dist/A.sh -o /srv/a 2>/dev/null",
            f"mkdir {q} && mv /srv/a/env {q}/env2 && {q}/env2/bin/portenv-relocate 2>/dev/null",
            f"sh /dist/AB.sh -o {q} --env-name env2 && sh /dist/BC.sh -o {q} --env-name env2",
            f"{q}/env2/bin/barcli && {q}/env2/bin/greet",
            f"mv {q} /srv/updated && mkdir {q}",
            f"sh /dist/C.sh -o {q} --env-name env2 2>/dev/null && mv {q} /srv/fresh",
        )
    )
    assert snapshot(srv / "updated" / "env2") == snapshot(srv / "fresh" / "env2")
    assert sorted(p.name for p in (srv / "updated").iterdir()) == ["env2"]


@pytest.fixture(scope="module")
def python_dist(package_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    found = installed_pythons(["3.12"])
    if "3.12" not in found:
        pytest.fail("CPython 3.12 not found (pyenv or PATH), the test needs it")
    dist = tmp_path_factory.mktemp("delta-python") / "dist"
    dist.mkdir()
    return python_updates(dist, found["3.12"], package_cache)


@pytest.mark.parametrize("update", ["P12.sh", "P12-pack.sh"])
def test_a_pypi_only_change(
    busybox_root: Path, python_dist: Path, tmp_path: Path, update: str
) -> None:
    """tiny 1.0 -> 1.1 in a --python env (made by `delta` and by `pack --delta-from`)."""
    srv = tmp_path / "srv"
    out = ok(
        run(
            busybox_root,
            python_dist,
            srv,
            f"sh /dist/P1.sh -o /srv/run 2>/dev/null && sh /dist/{update} -o /srv/run",
            "/srv/run/env/bin/python -c 'import tiny; print(tiny.VALUE)'",
            f"sh /dist/P1.sh -o /srv/u 2>/dev/null && sh /dist/{update} -o /srv/u",
            "mv /srv/u /srv/updated",
            "sh /dist/P2.sh -o /srv/u 2>/dev/null && mv /srv/u /srv/fresh",
        )
    )
    assert out.strip() == "tiny 1.1"
    same_as_fresh(srv, "updated", "fresh")


KILL_DRIVER = r"""
. /faults/faults.sh
D=/srv/k
sh /dist/B.sh -o $D 2>/dev/null; NEW=$(listing $D/env | md5sum); rm -rf $D
sh /dist/A.sh -o $D 2>/dev/null; OLD=$(listing $D/env | md5sum)
t0=$(now_cs); sh /dist/AB.sh -o $D 2>/dev/null; DUR=$(($(now_cs) - t0))
[ "$(listing $D/env | md5sum)" = "$NEW" ] || { echo "the update is not B"; exit 1; }
set -f
for point in $POINTS; do
    rm -rf $D
    sh /dist/A.sh -o $D 2>/dev/null
    run_killed "$point" sh /dist/AB.sh -o $D
    state=other
    [ "$(listing $D/env | md5sum)" != "$OLD" ] || state=old
    [ "$(listing $D/env | md5sum)" != "$NEW" ] || state=new
    sh /dist/AB.sh -o $D 2>/dev/null; next=$?
    final=other
    [ "$(listing $D/env | md5sum)" != "$NEW" ] || final=new
    echo "point $point rc=$RC state=$state next=$next final=$final left=$(ls -A $D | tr '\n' ,)"
done
"""


KILL_POINTS = {
    "busybox": "t:50 t:200 t:400 t:600 t:800 p:python3.12 p:python3.12:3 p:python3.12:10",
    # exact steps through fault-shim.sh (dash runs mkdir, tar and rm from PATH): the lock
    # taken, the update extracted, the new env swapped in but the old one not yet removed
    "trixie": "h:after:mkdir:*/.portenv-lock.* h:after:tar:*/.portenv-tmp.*"
    " h:before:rm:*/.portenv-old.*",
}


@pytest.mark.parametrize("target", sorted(KILL_POINTS))
def test_sigkill_during_the_apply(
    request: pytest.FixtureRequest, conda_dist: Path, tmp_path: Path, target: str
) -> None:
    """Every process killed at timed points, while the engine runs, and at exact steps: the
    env is A or the complete B, never anything else; the next run completes the update (or
    finds it done) and leaves nothing beside the env."""
    kit = make_kit(tmp_path / "kit")
    points = KILL_POINTS[target]
    result = run_in_rootfs(
        request.getfixturevalue(f"{target}_root"),
        ["/bin/sh", "-c", f"export POINTS='{points}'\n{KILL_DRIVER}"],
        binds=[(conda_dist, "/dist"), (kit, "/faults"), (_made(tmp_path / "srv"), "/srv")],
        tmpfs=[("/h", "16m")],
        timeout=600,
    )
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("point ")]
    assert [row[1] for row in rows] == points.split(), result.stdout + result.stderr
    states = []
    for row in rows:
        fields = dict(field.split("=", 1) for field in row[2:])
        assert fields["rc"] in ("0", "137"), row
        assert fields["state"] in ("old", "new"), row
        # the rerun applies it (0) or finds it applied (5: already updated)
        assert (fields["next"], fields["state"]) in (("0", "old"), ("5", "new")), row
        assert (fields["final"], fields["left"]) == ("new", "env,"), row
        states.append((fields["rc"], fields["state"]))
    assert ("137", "old") in states, "no point killed the apply before it was done"
    if target == "trixie":  # killed after the swap, before the old tree was removed
        assert states[-1] == ("137", "new"), rows


def test_an_env_unpacked_with_compile_takes_its_update_with_compile(
    busybox_root: Path, python_dist: Path, tmp_path: Path
) -> None:
    """Root unpacks with --compile and applies the update with --compile (its engine compiles
    the new tree with NEW's python): a user who cannot write into the env then loads the
    updated module from bytecode."""
    probe = "/opt/c/env/bin/python -v -c 'import tiny; print(tiny.VALUE)'"
    out = ok(
        run(
            busybox_root,
            python_dist,
            tmp_path / "srv",
            "sh /dist/P1.sh -o /opt/c --compile 2>/dev/null",
            "sh /dist/P12.sh -o /opt/c --compile",
            f"su -s /bin/sh nobody -c {shlex.quote(probe)} 2>&1",
        )
    )
    assert "tiny 1.1" in out
    assert "site-packages/__pycache__/tiny.cpython-312.pyc matches" in out, out[-2000:]
