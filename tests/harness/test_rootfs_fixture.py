"""The bare-target rootfs fixtures are what they claim, and their checks can fail.

Needs root, unshare and overlayfs; the first run downloads (~45 s, cached afterwards).
On a machine that cannot do it these tests FAIL with RootfsUnsupportedError: they never skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.support.rootfs import (
    DEFAULT_ENV,
    RootfsBuildError,
    RootfsSetupError,
    build_all,
    busybox_rootfs,
    cache_root,
    debian_rootfs,
    host_debian_mirror,
    rootfs_glibc_version,
    run_in_rootfs,
)

pytestmark = pytest.mark.root  # it builds and enters the bare root filesystems

REPO = Path(__file__).resolve().parents[2]
KINDS = ["busybox", "trixie", "bullseye"]


@pytest.fixture(scope="module")
def rootfs_by_kind() -> dict[str, Path]:
    built = build_all(("trixie", "bullseye"))  # cold: ~30 s in parallel, then cached
    assert built["busybox"] == busybox_rootfs()
    assert built["trixie"] == debian_rootfs("trixie")
    return built


@pytest.fixture(scope="module")
def busybox(rootfs_by_kind: dict[str, Path]) -> Path:
    return rootfs_by_kind["busybox"]


@pytest.fixture(scope="module")
def trixie(rootfs_by_kind: dict[str, Path]) -> Path:
    return rootfs_by_kind["trixie"]


def sh(
    rootfs: Path,
    script: str,
    *,
    binds: Sequence[tuple[Path, str]] = (),
    tmpfs: Sequence[tuple[str, str]] = (),
    timeout: float = 60,
) -> tuple[int, str, str]:
    result = run_in_rootfs(
        rootfs, ["/bin/sh", "-c", script], binds=binds, tmpfs=tmpfs, timeout=timeout
    )
    return result.returncode, result.stdout, result.stderr


# ---------------------------------------------------------------- what the targets are


@pytest.mark.parametrize("kind", KINDS)
def test_sh_echo_works(rootfs_by_kind: dict[str, Path], kind: str) -> None:
    result = run_in_rootfs(rootfs_by_kind[kind], ["sh", "-c", "echo hi"])
    assert (result.returncode, result.stdout, result.stderr) == (0, "hi\n", "")
    assert result.changed == []  # a run that writes nothing leaves no trace, not even noise


def test_busybox_has_no_python_and_no_common_libraries(busybox: Path) -> None:
    code, out, _ = sh(busybox, "command -v python3 python; ls /usr/bin/python3")
    assert code != 0
    assert out == ""
    missing = run_in_rootfs(busybox, ["python3", "-c", "print(1)"])
    assert missing.returncode == 127
    assert not list(busybox.glob("**/python*"))
    libs = {p.name.split(".so")[0] for p in busybox.glob("**/*.so*")}
    assert "libc" in libs
    assert not libs & {"libssl", "libcrypto", "libz", "libffi", "libsqlite3", "libgcc_s"}


def test_trixie_has_no_python_but_common_libraries(trixie: Path) -> None:
    assert run_in_rootfs(trixie, ["python3", "-V"]).returncode == 127
    assert list(trixie.glob("usr/lib/*/libssl.so.3"))  # why it hides missing-library bugs


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("bullseye", "2.31"), ("trixie", "2.41")],
)
def test_glibc_versions(rootfs_by_kind: dict[str, Path], kind: str, expected: str) -> None:
    assert rootfs_glibc_version(rootfs_by_kind[kind]) == expected


def test_busybox_glibc_is_the_hosts_debian_glibc(busybox: Path) -> None:
    host = os.confstr("CS_GNU_LIBC_VERSION") or ""
    assert rootfs_glibc_version(busybox) == host.split()[-1]


# ---------------------------------------------------------------- isolation


@pytest.mark.parametrize("kind", ["busybox", "trixie"])
def test_only_loopback_inside(rootfs_by_kind: dict[str, Path], kind: str) -> None:
    code, out, _ = sh(rootfs_by_kind[kind], "cat /proc/net/dev")
    assert code == 0
    names = {line.split(":")[0].strip() for line in out.splitlines()[2:]}
    assert names == {"lo"}
    host = Path("/proc/net/dev").read_text().splitlines()[2:]
    if len(host) > 1:  # the same check run on the host sees its interfaces: it can fail
        assert {line.split(":")[0].strip() for line in host} != {"lo"}


def test_connect_fails_immediately_busybox(busybox: Path) -> None:
    """ "unreachable" (no route), not a timeout: the namespace has no interface but lo."""
    code, _, err = sh(busybox, "nc -w 5 1.1.1.1 53 </dev/null")
    assert code != 0
    assert "unreachable" in err.lower()


def test_connect_fails_immediately_trixie(trixie: Path) -> None:
    """ "unreachable" (no route), not a timeout: the namespace has no interface but lo."""
    code, _, err = sh(trixie, "exec bash -c 'exec 3<>/dev/tcp/1.1.1.1/53'")
    assert code != 0
    assert "unreachable" in err.lower()


def test_own_pid_namespace_and_proc(busybox: Path) -> None:
    code, out, _ = sh(busybox, "echo $$; readlink /proc/self/exe; ls /proc | grep -c '^[0-9]'")
    assert code == 0
    pid, exe, nprocs = out.split()
    assert (pid, exe) == ("1", "/bin/busybox")
    assert int(nprocs) <= 3


def test_environment_is_exactly_the_default(busybox: Path) -> None:
    result = run_in_rootfs(busybox, ["env"])
    assert dict(line.split("=", 1) for line in result.stdout.splitlines()) == dict(DEFAULT_ENV)
    custom = run_in_rootfs(busybox, ["/usr/bin/env"], env={"A": "x y", "PATH": "/bin"})
    assert custom.stdout.splitlines() == ["A=x y", "PATH=/bin"]


def test_stdin_input(busybox: Path) -> None:
    assert run_in_rootfs(busybox, ["cat"], input=b"abc\n").stdout == "abc\n"
    assert run_in_rootfs(busybox, ["cat"]).stdout == ""  # no input: /dev/null, never the tty


def test_each_run_gets_a_fresh_overlay(busybox: Path) -> None:
    code, out, _ = sh(busybox, "echo one > /tmp/x && echo two > /etc/hosts && cat /tmp/x")
    assert (code, out) == (0, "one\n")
    code, out, _ = sh(busybox, "test ! -e /tmp/x && cat /etc/hosts")
    assert code == 0
    assert "localhost" in out
    assert "localhost" in (busybox / "etc/hosts").read_text()  # the cached tree is untouched


def test_no_mount_leaks_to_the_host(busybox: Path, tmp_path: Path) -> None:
    run_in_rootfs(busybox, ["true"], binds=[(tmp_path, "/mnt/b")], tmpfs=[("/mnt/t", "1m")])
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(cache_root()) not in mounts
    assert str(tmp_path) not in mounts


def test_timeout_kills_everything(busybox: Path) -> None:
    marker = f"portenv-timeout-marker-{os.getpid()}"
    with pytest.raises(subprocess.TimeoutExpired):
        sh(busybox, f"sleep 60; : {marker}", timeout=1)
    time.sleep(0.2)
    alive = [p for p in Path("/proc").glob("[0-9]*/cmdline") if _has(p, marker)]
    assert alive == []


def _has(cmdline: Path, marker: str) -> bool:
    try:
        return marker.encode() in cmdline.read_bytes()
    except OSError:
        return False


# ---------------------------------------------------------------- binds and tmpfs


def test_bind_is_writable_and_visible_on_host(busybox: Path, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("from host\n")
    result = run_in_rootfs(
        busybox,
        ["sh", "-c", "cat /srv/deep/dest/in.txt && echo from-rootfs > /srv/deep/dest/out.txt"],
        binds=[(tmp_path, "/srv/deep/dest")],
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "from host\n"
    assert (tmp_path / "out.txt").read_text() == "from-rootfs\n"
    assert result.changed == []  # mount points the harness made are not the command's writes


def test_bind_a_single_file(busybox: Path, tmp_path: Path) -> None:
    host_file = tmp_path / "payload.bin"
    host_file.write_bytes(b"\x00\x01")
    result = run_in_rootfs(
        busybox, ["sh", "-c", "wc -c < /payload.bin"], binds=[(host_file, "/payload.bin")]
    )
    assert (result.returncode, result.stdout.strip()) == (0, "2")


def test_bind_through_absolute_symlink_stays_inside(trixie: Path, tmp_path: Path) -> None:
    assert os.readlink(trixie / "var/run") == "/run"  # would point at the HOST's /run
    host_run = Path("/run/portenv-rootfs-test")
    assert not host_run.exists()
    code, _, err = sh(
        trixie,
        "echo ok > /var/run/portenv-rootfs-test/f",
        binds=[(tmp_path, "/var/run/portenv-rootfs-test")],
    )
    assert code == 0, err
    assert (tmp_path / "f").read_text() == "ok\n"
    assert not host_run.exists()


def test_tmpfs_fills_up(busybox: Path) -> None:
    small = [("/mnt/small", "1m")]
    code, _, err = sh(busybox, "dd if=/dev/zero of=/mnt/small/f bs=1024 count=2048", tmpfs=small)
    assert code != 0
    assert "no space left" in err.lower()
    code, _, err = sh(busybox, "dd if=/dev/zero of=/mnt/small/f bs=1024 count=512", tmpfs=small)
    assert code == 0, err  # the same command fits when it is small enough


def test_bad_mount_requests(busybox: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        run_in_rootfs(busybox, ["true"], binds=[(tmp_path / "nope", "/x")])
    with pytest.raises(ValueError, match="size"):
        run_in_rootfs(busybox, ["true"], tmpfs=[("/x", "lots")])
    with pytest.raises(ValueError, match="absolute"):
        run_in_rootfs(busybox, ["true"], tmpfs=[("relative", "1m")])
    with pytest.raises(RootfsSetupError, match="/etc/hosts"):
        run_in_rootfs(busybox, ["true"], tmpfs=[("/etc/hosts/sub", "1m")])


# ---------------------------------------------------------------- changed


def test_changed_lists_created_file(busybox: Path) -> None:
    result = run_in_rootfs(busybox, ["sh", "-c", "mkdir -p /opt && echo hi > /opt/foo"])
    assert result.changed == ["/opt/foo"]  # /opt existed: only the new entry counts


def test_changed_lists_new_dirs_modified_deleted_and_chmod(trixie: Path) -> None:
    script = (
        "mkdir -p /srv/a/b && : > /srv/a/b/c && echo x >> /etc/passwd"
        " && rm /etc/issue && chmod 700 /opt && echo t > /tmp/t && ln -s /nowhere /usr/local/l"
    )
    result = run_in_rootfs(trixie, ["sh", "-c", script])
    assert result.returncode == 0, result.stderr
    assert result.changed == [
        "/etc/issue",
        "/etc/passwd",
        "/opt",
        "/srv/a",
        "/srv/a/b",
        "/srv/a/b/c",
        "/usr/local/l",
    ]
    assert result.deleted == ["/etc/issue"]
    assert "/tmp/t" in result.changed_all  # noise roots are only filtered from `changed`


def test_changed_sees_a_replaced_directory(busybox: Path) -> None:
    result = run_in_rootfs(busybox, ["sh", "-c", "rm -rf /home && mkdir /home && : > /home/n"])
    assert result.returncode == 0, result.stderr
    assert result.changed == ["/home", "/home/n"]  # opaque dir: recreated, not the old one


# ---------------------------------------------------------------- cache


def test_cache_layout(busybox: Path, trixie: Path) -> None:
    for tree in (busybox, trixie):
        assert tree.parent == cache_root()
        assert tree.name.startswith("rootfs-")
        assert tree.with_name(tree.name + ".tar").is_file()
        assert REPO not in tree.parents


def test_restore_from_tarball_concurrently(busybox: Path, tmp_path: Path) -> None:
    """Three processes restore one tarball into an empty cache: one tree, no debris."""
    cache = tmp_path / "cache"
    cache.mkdir()
    tarball = busybox.with_name(busybox.name + ".tar")
    shutil.copy(tarball, cache / tarball.name)
    code = "from tests.support.rootfs import busybox_rootfs as b; print(b())"
    env = {**os.environ, "PORTENV_TEST_CACHE": str(cache)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    outs = {p.communicate(timeout=120)[0].strip() for p in procs}
    assert [p.returncode for p in procs] == [0, 0, 0]
    assert outs == {str(cache / busybox.name)}
    assert sorted(p.name for p in cache.iterdir() if p.name.startswith((".", "rootfs"))) == sorted(
        [busybox.name, tarball.name, busybox.name + ".lock"]
    )
    restored = cache / busybox.name
    assert _listing(restored) == _listing(busybox)


def _listing(root: Path) -> list[tuple[str, int, int]]:
    out = []
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        out.append((str(path.relative_to(root)), st.st_mode, st.st_size))
    return out


def test_debian_mirror_comes_from_the_host_apt_sources(tmp_path: Path) -> None:
    """No mirror name is committed: debootstrap takes the one the host's apt uses."""
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.test/debian-security\nSuites: x-security\n\n"
        "Types: deb\nURIs: http://mirror.test/debian/\nSuites: x x-updates\n"
    )
    assert host_debian_mirror(apt) == "http://mirror.test/debian"
    (apt / "sources.list.d" / "debian.sources").unlink()
    (apt / "sources.list").write_text("# comment\ndeb [arch=amd64] http://old.test/debian x main\n")
    assert host_debian_mirror(apt) == "http://old.test/debian"
    (apt / "sources.list").write_text("deb http://example.test/ubuntu x main\n")
    with pytest.raises(RootfsBuildError, match="PORTENV_TEST_DEBIAN_MIRROR"):
        host_debian_mirror(apt)
