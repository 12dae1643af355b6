"""Faults on the target: SIGKILL anywhere, a full disk, read-only and foreign file systems,
two unpacks at once, and an env in use while --force replaces it.

Each case runs a driver (sh, tests/support/faults.sh) inside a bare rootfs without network.
Destinations live on tmpfs mounts (/srv and the case's own), so the overlay diff of the rootfs
must come out empty: zero files written outside a destination, /tmp included
(tests/support/faults.py `run_driver`). After every fault the destination holds nothing, the
previous env untouched (same listing, content hashes, inodes and mtimes, marker included) or the
complete new one (the same listing as a reference unpack, which is checked against the payload),
and the next run cleans every `.portenv-*` leftover and succeeds.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import Archives
from tests.support.faults import (
    Payload,
    check_reference,
    facts,
    make_kit,
    points,
    run_driver,
    spread,
    unknown_leftovers,
)
from tests.support.hardening import record

pytestmark = [pytest.mark.e2e, pytest.mark.hardening]

SEED = 8_03  # issue 8, item 3: the timed kill points are drawn from this seed
ENV_SH = "sh /dist/env.sh"
UNPACKER = "sh /dist/portenv-unpack /dist/env.tar"
EXISTS = "error:_/srv/app/env_already_exists"
HOOKS = [  # exact points inside the unpacker, through fault-shim.sh (dash runs PATH commands)
    "h:after:mkdir:*/.portenv-lock.*",  # lock taken, its pid file not written yet
    "h:after:mkdir:*/.portenv-tmp.*",  # nothing extracted yet
    "h:after:find:*/.portenv-tmp.*",  # extracted, not relocated
    "h:before:mv:*/.portenv-old.*",  # relocated, the old env still in place
    "h:after:mv:*/.portenv-old.*",  # the old env moved aside, the new one not yet in place
    "h:after:mv:*/.portenv-tmp.*",  # the new env in place, the old one not yet removed
    "h:after:rm:*/.portenv-old.*",  # all done but the lock
]
CAMPAIGNS = {
    "first": (
        "first install, busybox sh, env.sh",
        ENV_SH,
        [*(f"t:{p}" for p in spread(14, SEED)), "p:tar", "p:python3.12"],
    ),
    "replace": (
        "--force over an env, Debian 13 dash, portenv-unpack env.tar",
        UNPACKER,
        [
            *(f"t:{p}" for p in spread(16, SEED + 1)),
            "p:gzip",
            "p:python3.12",
            "p:rm",
            "p:rm:1",
            *HOOKS,
        ],
    ),
}
ALLOWED = {  # (DEST, folders set aside) after a SIGKILL
    ("absent", "-"): "nothing at DEST",
    ("new", "-"): "new env complete",
    ("previous", "-"): "previous env intact",
    ("new", "previous"): "new env complete, old copy aside, removed by the next run",
    ("new", "broken"): "new env complete, old copy partly removed, removed by the next run",
    # rm -rf may have removed just the old copy's marker: what is left lists like the new env
    ("new", "new"): "new env complete, old copy partly removed, removed by the next run",
    ("absent", "previous"): "previous env set aside intact, restored by the next run",
}
PHASES = (  # the first of these processes alive at the kill names the phase
    ("python3.12", "relocating"),
    ("tar", "extracting"),
    ("gzip", "extracting"),
    ("portenv-unzstd", "extracting"),
    ("sha256sum", "verifying the payload"),
    ("mv", "renaming"),
    ("rm", "removing the old env"),  # the unpacker's only rm once no stale folder is left
)


@pytest.fixture
def kit(tmp_path: Path) -> Path:
    return make_kit(tmp_path / "kit")


@pytest.fixture(scope="module")
def payload(core_archives: Archives) -> Payload:
    return Payload.from_tar(core_archives.tar)


def tally(values: Iterable[str]) -> str:
    """'a: 2; b: 1', most frequent first: a figure for the report."""
    return "; ".join(f"{value}: {n}" for value, n in Counter(values).most_common())


def phase(point: dict[str, str]) -> str:
    """What the unpacker was doing when the kill landed."""
    if point["at"].startswith("h:"):
        when, command, pattern = point["at"][2:].split(":", 2)
        return f"{when} {command} {pattern.strip('*/').rstrip('.*')}"
    if point["rc"] == "0":
        return "after it finished"
    alive = point["procs"].split(",")
    return next((name for proc, name in PHASES if proc in alive), "checks")


def check_point(kind: str, point: dict[str, str]) -> None:
    """A killed unpack left an allowed state, and the next runs cleaned up and succeeded."""
    where = f"{kind} campaign, point {point['n']} {point['at']}: {point}"
    late = point["at"].startswith("t:") or point["at"].count(":") == 2  # a delay may overshoot
    assert point["rc"] in (("0", "137") if late else ("137",)), where
    assert (point["dest"], point["aside"]) in ALLOWED, where
    assert kind == "replace" or point["aside"] == "-", where
    assert point["rc"] == "137" or (point["dest"], point["left"]) == ("new", "env"), where
    assert unknown_leftovers(point["left"]) == [], where
    if kind == "first" and point["dest"] == "absent":
        assert point["plain"] == "0", where
    else:
        assert (point["plain"], point["plain_error"]) == ("5", EXISTS), where
        assert point["force"] == "0", where
    if point["dest"] == "absent" and kind == "replace":
        assert point.get("plain_restored") == "previous", where
    assert (point["after"], point["after_left"]) == ("new", "env"), where


def test_sigkill_campaign(
    core_archives: Archives, busybox_root: Path, trixie_root: Path, kit: Path, payload: Payload
) -> None:
    """SIGKILL every process of the unpack at timed, seeded points and at exact steps."""
    roots = {"first": busybox_root, "replace": trixie_root}
    for kind, (_, _, at) in CAMPAIGNS.items():
        (kit / f"points-{kind}").write_text("\n".join(at) + "\n")
    with ThreadPoolExecutor(max_workers=2) as pool:  # one campaign per core
        futures = {
            kind: pool.submit(
                run_driver,
                roots[kind],
                core_archives.folder,
                kit,
                f"campaign {kind} /faults/points-{kind} {unpack}",
                timeout=600,
            )
            for kind, (_, unpack, _) in CAMPAIGNS.items()
        }
        results = {kind: future.result() for kind, future in futures.items()}
    for kind, result in results.items():
        title, _, at = CAMPAIGNS[kind]
        check_reference(result.stdout, payload, "/srv/app/env")
        found = points(result.stdout)
        assert [p["at"] for p in found] == at, result.stdout[-3000:]
        for point in found:
            check_point(kind, point)
        assert "final python ok /srv/app/env" in result.stdout.splitlines()
        record(
            "fault",
            f"SIGKILL of the whole unpack, {title}",
            "every state allowed; next run cleaned up and succeeded",
            injections=len(found),
            seed=SEED,
            destination=tally(ALLOWED[p["dest"], p["aside"]] for p in found),
            phases=tally(phase(p) for p in found),
            outside_writes=0,
        )


def cases(stdout: str) -> dict[str, dict[str, str]]:
    """The `case NAME k=v...` lines of a driver, by name."""
    return {
        line.split()[1]: facts(line) for line in stdout.splitlines() if line.startswith("case ")
    }


FULL_AT = {
    "extraction": "before:tar:*/.portenv-tmp.*",  # the disk is full as tar starts
    "relocation": "after:find:*/.portenv-tmp.*",  # extracted; full as relocation starts
}


def full_disk(root: Path, dist: Path, kit: Path, payload: Payload, step: str) -> None:
    """Another process fills the disk at `step`: exit 8, and DEST as it was before."""
    script = f"full_disk '{FULL_AT[step]}' {UNPACKER}"
    result = run_driver(
        root, dist, kit, script, tmpfs=[("/small", "160m")], top={"/srv": "-", "/small": "app"}
    )
    check_reference(result.stdout, payload, "/small/app/env")
    found = cases(result.stdout)
    assert sorted(found) == ["first", "replace"], result.stdout[-2000:]
    word = "extracting_into" if step == "extraction" else "relocating_the_environment"
    for kind, case in found.items():
        assert case["rc"] == "8" and word in case["error"], (step, kind, case)
        assert case["traceback"] == "0", (step, kind, case)
        expected = ("absent", "-") if kind == "first" else ("previous", "env")
        assert (case["state"], case["left"]) == expected, (step, kind, case)
        assert (case["next"], case["after"], case["after_left"]) == ("0", "new", "env"), case
        record(
            "fault",
            f"disk full during {step} ({'first install' if kind == 'first' else '--force'})",
            "exit 8, DEST as it was; the next run succeeds",
            injections=1,
            destination="nothing at DEST" if kind == "first" else "previous env intact",
            outside_writes=0,
        )


def test_full_disk_during_relocation(
    core_archives: Archives, trixie_root: Path, kit: Path, payload: Payload
) -> None:
    full_disk(trixie_root, core_archives.folder, kit, payload, "relocation")


READ_ONLY_PLACES = {  # case: (unpack arguments, the read-only folder an error must name)
    "ro-tmpfs": ("-o /ro/app", "/ro"),
    "ro-tmpfs-env": ("-o /ro2/app --force", "/ro2/app"),
    "ro-bind": ("-o $H/bound --force", "/h/bound"),
}


def read_only(root: Path, dist: Path, kit: Path, extra: str) -> dict[str, dict[str, str]]:
    """Try each READ_ONLY_PLACES unpack with `extra` arguments; the envs there stay intact."""
    attempts = "".join(
        f"attempt {name} {ENV_SH} {args} {extra}\n" for name, (args, _) in READ_ONLY_PLACES.items()
    )
    result = run_driver(
        root,
        dist,
        kit,
        f"read_only_setup {ENV_SH}\n{attempts}read_only_after {ENV_SH}\n",
        tmpfs=[("/ro", "160m"), ("/ro2", "160m")],
        top={"/srv": "app", "/ro": "-", "/ro2": "app"},
    )
    assert "state bound=previous ro=- ro2=env" in result.stdout.splitlines()
    assert "writable-again env python ok /ro2/app/env" in result.stdout.splitlines()
    found = cases(result.stdout)
    assert sorted(found) == sorted(READ_ONLY_PLACES), result.stdout
    return found


@pytest.mark.parametrize("target", ["busybox", "trixie"])
def test_read_only_destination(
    request: pytest.FixtureRequest, core_archives: Archives, kit: Path, target: str
) -> None:
    """A read-only tmpfs, empty or holding an env, and a read-only bind mount of an env."""
    root = request.getfixturevalue(f"{target}_root")
    found = read_only(root, core_archives.folder, kit, "")
    for name, (_, place) in READ_ONLY_PLACES.items():
        assert found[name]["rc"] == "5", (name, found[name])
        assert re.fullmatch(f"error:_cannot_[a-z_]*{place}(/.*)?", found[name]["error"]), found
    record(
        "fault",
        f"read-only destination ({target}): tmpfs remounted ro, empty or with an env; ro bind",
        "exit 5, one error line; nothing written",
        injections=len(found),
        destination="nothing written, the envs there intact",
        outside_writes=0,
    )


def test_two_unpacks_at_once(core_archives: Archives, busybox_root: Path, kit: Path) -> None:
    """env.sh and portenv-unpack race for one DEST: one wins, the other says so, never a mix."""
    script = f"reference {ENV_SH} >/dev/null\nrm -rf $OUT\nrace 1\nrace 2 --force\nrace 3 --force\n"
    result = run_driver(busybox_root, core_archives.folder, kit, script)
    rounds = [facts(line) for line in result.stdout.splitlines() if line.startswith("round ")]
    assert len(rounds) == 3, result.stdout
    busy = re.compile(r"error:_another_unpack_into_/srv/app/env_is_running_\(pid_\d+\)")
    for n, race in enumerate(rounds, 1):
        codes = sorted((race["a"], race["b"]))
        assert codes == ["0", "5"], (n, race)
        loser = "a" if race["a"] == "5" else "b"
        assert busy.fullmatch(race[f"{loser}_error"]), (n, race)
        assert race[f"{loser}_lines"] == "2", (n, race)  # the error and its hint, nothing else
        assert (race["state"], race["left"]) == ("new", "env"), (n, race)
    record(
        "fault",
        "two unpacks into one DEST at once (env.sh against portenv-unpack; plain, --force)",
        "one exit 0; the other exit 5 'another unpack ... is running'",
        injections=len(rounds),
        destination="new env complete",
        outside_writes=0,
    )


def test_env_in_use_while_force_replaces_it(
    core_archives: Archives, busybox_root: Path, kit: Path, payload: Payload
) -> None:
    """A python of the old env runs (cwd inside it, a file open) while --force replaces it."""
    result = run_driver(busybox_root, core_archives.folder, kit, f"in_use {ENV_SH}")
    lines = [line for line in result.stdout.splitlines() if not line.startswith("top ")]
    assert lines[0] == "force=0 error= old-running state=new left=env", result.stdout
    size = payload.members["./lib/python3.12/os.py"].size  # read through the old inode
    assert lines[1:] == ["old-exit=0", f"old-python read {size} libpython-deleted 1"], lines
    record(
        "fault",
        "env in use while --force replaces it (its python running, cwd inside, a file open)",
        "exit 0; the old process kept running and exited 0",
        injections=1,
        destination="new env complete, old folder removed",
        outside_writes=0,
    )


def test_destinations_on_other_file_systems(
    core_archives: Archives, trixie_root: Path, kit: Path
) -> None:
    """DEST on tmpfs mounts (through a symlink, at a mount's root, a mount point, a link out)."""
    result = run_driver(
        trixie_root,
        core_archives.folder,
        kit,
        f"elsewhere {UNPACKER}",
        tmpfs=[("/other", "160m"), ("/tmp", "64k")],
        top={"/srv": "mp,real,sl", "/other": "env", "/tmp": "-"},
    )
    found = cases(result.stdout)
    lines = result.stdout.splitlines()
    assert {k: v["rc"] for k, v in found.items()} == {
        "via-symlink": "0",
        "fs-root": "0",
        "fs-root-force": "0",
        "mount-point": "5",
        "symlink-dest": "5",
    }, result.stdout
    prefix = "via-symlink env python ok /srv/real/app/env hello from greet "
    assert prefix in lines, lines
    assert "fs-root env python ok /other/env hello from greet " in lines
    mount_point = "error:_/srv/mp/env_is_a_mount_point:_--force_cannot_replace_it"
    assert found["mount-point"]["error"] == mount_point
    assert "mount-point env -" in lines
    assert found["symlink-dest"]["error"].endswith(
        "is_not_an_environment:_--force_will_not_replace_it"
    )
    assert "symlink-dest env previous env" in lines
    record(
        "fault",
        "DEST on another file system than /tmp (a full one): via a symlink, at a mount's root, "
        "a mount point (refused), a symlink to an env elsewhere (refused)",
        "unpacked or refused with exit 5; /tmp never used",
        injections=len(found),
        destination="new env complete or the env there intact",
        outside_writes=0,
    )


def test_full_disk_during_extraction(
    core_archives: Archives, trixie_root: Path, kit: Path, payload: Payload
) -> None:
    """The disk is full when tar starts: exit 8, nothing at DEST / the previous env intact.

    Fails with the unpacker of this commit: `echo "tar exit $?" >>"$st"` cannot write the
    failure into the lock's status file on the full disk, GNU tar has created every member
    (empty) so the file count passes, and the empty bin/python3.12 is run by sh as an empty
    script (ENOEXEC), which "succeeds": exit 0 and an env of empty files renamed into place,
    over the previous env with --force.
    """
    full_disk(trixie_root, core_archives.folder, kit, payload, "extraction")


@pytest.mark.parametrize("target", ["busybox", "trixie"])
def test_check_refuses_read_only_destination(
    request: pytest.FixtureRequest, core_archives: Archives, kit: Path, target: str
) -> None:
    """`--check` fails where the unpack would: a read-only destination is exit 5.

    Fails on busybox with the unpacker of this commit: busybox's `[ -w DIR ]` is true for root
    on a read-only mount, so `--check` says "all checks passed" and the unpack then stops at
    `mkdir` (exit 5): the check that --check promises does not run there.
    """
    root = request.getfixturevalue(f"{target}_root")
    found = read_only(root, core_archives.folder, kit, "--check")
    for name, (_, place) in READ_ONLY_PLACES.items():
        assert found[name]["rc"] == "5", (name, found[name])
        assert found[name]["error"] == f"error:_cannot_write_into_{place}", (name, found)
    record(
        "fault",
        f"--check on a read-only destination ({target})",
        "exit 5, one error line; nothing written",
        injections=len(found),
        destination="nothing written, the envs there intact",
        outside_writes=0,
    )
