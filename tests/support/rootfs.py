"""Bare Linux target rootfs fixtures: built once, cached as tarballs, run in a fresh overlay.

Kinds of target
  busybox_rootfs()          glibc (host's Debian libc6) + busybox-static only, ~15 MB. Strict:
                            no python, no libssl/libz/libffi, not even libgcc_s; no ld.so.cache.
  busybox_rootfs("aarch64") the same of Debian arm64 (libc6 + busybox-static of that arch, via
                            tests/support/debarch.py), ~20 MB; its programs run through qemu-user
                            (binfmt_misc, registered by the fixture). Key: the .deb file names.
  debian_rootfs("trixie")   debootstrap --variant=minbase, glibc 2.41, ~215 MB. Has libssl,
                            libsqlite3, libz... so it HIDES missing-library bugs.
  debian_rootfs("bullseye") same, glibc 2.31: the "glibc too old" target.
  debian_rootfs("trixie", "aarch64")  Debian 13 minbase of arm64 (dash, GNU tar and gzip, no
                            zstd): debootstrap --foreign, then its second stage in a chroot
                            whose programs run through qemu-user (~3 min once a month).

Cache (outside the repo), under ``$PORTENV_TEST_CACHE`` or ``~/.cache/portenv-tests``:
  rootfs-<kind>-<key>.tar   the built tree (plain tar, numeric owners, device nodes); copy this
                            between machines/CI runs. Restoring it takes ~1 s.
  rootfs-<kind>-<key>/      the extracted tree; only ever used as a read-only overlay lowerdir.
                            It appears by an atomic rename, so "exists" means "complete".
  rootfs-<kind>-<key>.lock  flock(2) held while building/restoring: concurrent pytest processes
                            (xdist, parallel CI jobs sharing a cache) wait instead of racing.
  scratch/run-*/            per-run overlay upper/work dirs, removed after each run.
Keys: busybox = the exact apt candidate versions of libc6 and busybox-static (what
``apt-get download`` fetches, pinned with ``pkg=version``); debian-<suite> = the UTC month
(debootstrap takes whatever the mirror has, so the tree is rebuilt monthly). Both end in
``-r<RECIPE>``; bump RECIPE when a build recipe changes. Entries of the same kind with another key
are pruned once they are more than a day old.

How a run works (``run_in_rootfs``): Python creates scratch/run-X/{lower -> cached tree, upper,
work, root} and runs a generated sh script under ``unshare --mount --propagation private`` with
cwd=run-X (relative paths, so ``:`` or ``,`` in the cache path cannot break mount options). The
script mounts the overlay on ``root``, then the binds and tmpfs mounts, a tmpfs on /dev/shm, and
``exec env -i <env> unshare --net --ipc --uts --pid --fork --kill-child --mount-proc=/proc
--root=root --wd=<cwd> -- argv``. Every mount lives in the private namespace and dies with it, so
nothing leaks to the host even on SIGKILL. /proc is mounted (glibc needs /proc/self/exe for
$ORIGIN); /sys is not. The network namespace has only a down ``lo``. /dev is the rootfs's own
static nodes (null zero full random urandom tty console ptmx, fd/std* symlinks).

After the run, ``changed`` is computed by walking the overlay upperdir and comparing with the
lowerdir: created and modified files, created directories, directories whose mode/owner changed
or that were replaced, and deletions (overlay whiteouts, also listed in ``deleted``).
A pre-existing directory that only got a new entry is NOT listed (its child is). Harness
artefacts (bind/tmpfs mount points and the directories made for them) are never listed.
``changed`` also drops the noise roots /dev /proc /sys /tmp; ``changed_all`` keeps them.
Paths are the real paths in the upperdir (symlinks such as /var/run -> /run resolved).
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import re
import shlex
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import MappingProxyType

from tests.support import debarch
from tests.support.host import HOST_ENV, cache_root, locked, run_host

__all__ = [
    "DEFAULT_ENV",
    "NOISE_ROOTS",
    "RootfsBuildError",
    "RootfsError",
    "RootfsResult",
    "RootfsSetupError",
    "RootfsUnsupportedError",
    "build_all",
    "busybox_rootfs",
    "cache_root",
    "check_rootfs_support",
    "debian_rootfs",
    "rootfs_glibc_version",
    "run_in_rootfs",
]

RECIPE = 1
DEFAULT_ENV: Mapping[str, str] = MappingProxyType(
    {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root"}
)
NOISE_ROOTS = ("/dev", "/proc", "/sys", "/tmp")
APT_SOURCES = Path("/etc/apt")
"""Where the host's apt sources are: debootstrap uses the host's Debian mirror (no mirror name
is written in the repository); $PORTENV_TEST_DEBIAN_MIRROR overrides it."""


def host_debian_mirror(apt: Path = APT_SOURCES) -> str:
    """The first Debian archive URI the host's apt sources name (not the security archive)."""
    found: list[str] = []
    for sources in sorted((apt / "sources.list.d").glob("*.sources")):
        for line in sources.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("URIs:"):
                found += line.split()[1:]
    for lists in [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*.list"))]:
        if lists.is_file():
            for line in lists.read_text(encoding="utf-8", errors="replace").splitlines():
                words = line.split()
                if words[:1] == ["deb"]:
                    found += [w for w in words[1:] if "://" in w][:1]
    for uri in found:
        if uri.rstrip("/").endswith("/debian"):
            return uri.rstrip("/")
    msg = f"no Debian archive in the apt sources under {apt}: set PORTENV_TEST_DEBIAN_MIRROR"
    raise RootfsBuildError(msg)


_SETUP_FAILED = 125
_SETUP_MARK = "portenv-rootfs-setup-failed:"
_DEV_NODES = {
    "null": (1, 3),
    "zero": (1, 5),
    "full": (1, 7),
    "random": (1, 8),
    "urandom": (1, 9),
    "tty": (5, 0),
    "console": (5, 1),
    "ptmx": (5, 2),
}
_DEV_LINKS = {
    "fd": "/proc/self/fd",
    "stdin": "/proc/self/fd/0",
    "stdout": "/proc/self/fd/1",
    "stderr": "/proc/self/fd/2",
}


class RootfsError(RuntimeError):
    """Base class: the fixture itself failed (not the command under test)."""


class RootfsUnsupportedError(RootfsError):
    """This machine cannot build or run rootfs fixtures (not root, no unshare, no overlayfs)."""


class RootfsBuildError(RootfsError):
    """Building a rootfs failed (download, debootstrap, tar)."""


class RootfsSetupError(RootfsError):
    """The sandbox could not be set up for a run (overlay/bind/tmpfs mount failed)."""


@dataclass(frozen=True)
class RootfsResult:
    """Outcome of one run_in_rootfs call; see the module docstring for ``changed``."""

    returncode: int
    stdout: str
    stderr: str
    changed: list[str]
    deleted: list[str]
    changed_all: list[str]
    argv: tuple[str, ...] = ()

    def check(self) -> RootfsResult:
        """Return self, or raise AssertionError showing argv, exit code and output."""
        if self.returncode != 0:
            msg = (
                f"command failed in rootfs with exit code {self.returncode}: {self.argv!r}\n"
                f"--- stdout ---\n{self.stdout}--- stderr ---\n{self.stderr}"
            )
            raise AssertionError(msg)
        return self


# --------------------------------------------------------------------------- cache


def busybox_rootfs(machine: str | None = None) -> Path:
    """Path of the cached glibc + busybox tree (build it on first use).

    ``machine`` (``aarch64``) other than this machine's: the tree of that architecture, from
    Debian's packages for it (``debarch``); its programs run through qemu (registered here).
    """
    if machine is not None and machine != platform.machine():
        debarch.register_qemu(machine)
        debs = debarch.foreign_debs(machine, ["libc6", "busybox-static"])
        wanted = (debs.named("libc6"), debs.named("busybox-static"))
        kind = f"busybox-{debarch.DEBIAN_ARCH[machine]}"
        build = functools.partial(_build_busybox_from, wanted)
        return _cached_rootfs(kind, f"{debs.key}-r{RECIPE}", build)
    libc, busybox = _busybox_versions()
    key = f"libc6_{_safe(libc)}-busybox_{_safe(busybox)}-r{RECIPE}"
    return _cached_rootfs("busybox", key, functools.partial(_build_busybox, libc, busybox))


def debian_rootfs(suite: str = "trixie", machine: str | None = None) -> Path:
    """Path of the cached ``debootstrap --variant=minbase SUITE`` tree, rebuilt monthly.

    ``machine`` (``aarch64``) other than this machine's: the tree of that architecture, its
    programs run through qemu (registered here), as busybox_rootfs's."""
    if not re.fullmatch(r"[a-z]+", suite):
        msg = f"not a Debian suite name: {suite!r}"
        raise ValueError(msg)
    key = f"{time.strftime('%Y%m', time.gmtime())}-r{RECIPE}"
    if machine is not None and machine != platform.machine():
        debarch.register_qemu(machine)
        arch = debarch.DEBIAN_ARCH[machine]
        build = functools.partial(_build_debian, suite, arch=arch)
        return _cached_rootfs(f"debian-{suite}-{arch}", key, build)
    return _cached_rootfs(f"debian-{suite}", key, functools.partial(_build_debian, suite))


def build_all(suites: Sequence[str] = ("trixie", "bullseye")) -> dict[str, Path]:
    """Build/restore the busybox tree and the given Debian suites in parallel."""
    jobs: dict[str, Callable[[], Path]] = {"busybox": busybox_rootfs}
    jobs.update({s: functools.partial(debian_rootfs, s) for s in suites})
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        return {name: fut.result() for name, fut in futures.items()}


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+_-]", "_", text)


def _cached_rootfs(kind: str, key: str, build: Callable[[Path], None]) -> Path:
    root = cache_root()
    name = f"rootfs-{kind}-{key}"
    tree = root / name
    if tree.is_dir():
        return tree
    check_rootfs_support()
    root.mkdir(parents=True, exist_ok=True)
    with locked(root / f"{name}.lock"):
        if tree.is_dir():
            return tree
        tarball = root / f"{name}.tar"
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
        try:
            if tarball.is_file():
                _run(
                    [
                        "tar",
                        "-C",
                        str(tmp),
                        "--numeric-owner",
                        "--xattrs",
                        "--xattrs-include=*",
                        "-xpf",
                        str(tarball),
                    ],
                    what=f"restoring {tarball}",
                )
            else:
                build(tmp)
                tmp.chmod(0o755)
                partial = tarball.with_name(f"{tarball.name}.{os.getpid()}.partial")
                _run(
                    [
                        "tar",
                        "-C",
                        str(tmp),
                        "--numeric-owner",
                        "--xattrs",
                        "-cf",
                        str(partial),
                        ".",
                    ],
                    what=f"writing {tarball}",
                )
                os.replace(partial, tarball)
            os.rename(tmp, tree)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _prune(root, kind, name)
    return tree


def _prune(root: Path, kind: str, keep: str) -> None:
    """Drop trees/tarballs of the same kind with another key, once older than a day."""
    cutoff = time.time() - 86400
    stale = [*root.glob(f"rootfs-{kind}-*"), *root.glob(f".rootfs-{kind}-*")]
    for entry in stale:
        if entry.name.startswith((keep, f".{keep}")):
            continue
        with contextlib.suppress(OSError):
            if entry.lstat().st_mtime < cutoff:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()


def _run(argv: Sequence[str], *, what: str, cwd: Path | None = None) -> str:
    return run_host(argv, what=what, cwd=cwd, error=RootfsBuildError)


# --------------------------------------------------------------------------- builders


@functools.cache
def _busybox_versions() -> tuple[str, str]:
    out = _run(["apt-cache", "policy", "libc6", "busybox-static"], what="asking apt")
    found = dict(re.findall(r"^(\S+):\n(?:\s+Installed:.*\n)?\s+Candidate: (\S+)", out, re.M))
    libc, busybox = found.get("libc6", "(none)"), found.get("busybox-static", "(none)")
    if "(none)" in (libc, busybox):
        msg = (
            "apt knows no candidate for libc6/busybox-static; run `apt-get update` "
            "(scripts/install-system-deps.sh does)"
        )
        raise RootfsBuildError(msg)
    return libc, busybox


def _build_busybox(libc: str, busybox: str, dest: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="portenv-debs-") as dl:
        _run(
            [
                "apt-get",
                "-q",
                "-o",
                "APT::Sandbox::User=root",
                "download",
                f"libc6={libc}",
                f"busybox-static={busybox}",
            ],
            what="apt-get download",
            cwd=Path(dl),
        )
        _build_busybox_from(sorted(Path(dl).glob("*.deb")), dest)


def _build_busybox_from(debs: Sequence[Path], dest: Path) -> None:
    """Lay out the glibc + busybox tree from the libc6 and busybox-static packages."""
    for deb in debs:
        _run(["dpkg-deb", "-x", str(deb), str(dest)], what=f"extracting {deb.name}")
    for sub in (
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "usr/local/bin",
        "etc",
        "root",
        "tmp",
        "var/tmp",
        "proc",
        "sys",
        "run",
        "home",
        "opt",
        "mnt",
    ):
        (dest / sub).mkdir(parents=True, exist_ok=True)
    _run(["chroot", str(dest), "/bin/busybox", "--install", "-s"], what="busybox --install")
    (dest / "root").chmod(0o700)
    for sticky in ("tmp", "var/tmp"):
        (dest / sticky).chmod(0o1777)
    (dest / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    )
    (dest / "etc/group").write_text("root:x:0:\nnogroup:x:65534:\n")
    (dest / "etc/hosts").write_text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n")
    _ensure_dev(dest)


def _build_debian(suite: str, dest: Path, arch: str | None = None) -> None:
    """debootstrap minbase of `suite` into `dest`; for a foreign `arch` (Debian's name), its
    first stage here, then the second inside the tree, run through qemu-user."""
    mirror = os.environ.get("PORTENV_TEST_DEBIAN_MIRROR") or host_debian_mirror()
    if shutil.which("debootstrap", path=HOST_ENV["PATH"]) is None:
        msg = "debootstrap not found (run scripts/install-system-deps.sh --tests)"
        raise RootfsBuildError(msg)
    # Own mount namespace: debootstrap mounts /proc and /sys in the target; if it dies half-way
    # they vanish with the namespace instead of staying mounted under the cache dir.
    private = ["unshare", "--mount", "--propagation", "private"]
    first = [*private, "debootstrap", "--variant=minbase"]
    if arch is not None:
        first += [f"--arch={arch}", "--foreign"]
    try:
        _run([*first, suite, str(dest), mirror], what=f"debootstrap {suite}")
        if arch is not None:
            second = [*private, "chroot", str(dest), "/debootstrap/debootstrap", "--second-stage"]
            _run(second, what=f"debootstrap {suite} {arch} (second stage, through qemu)")
    except RootfsBuildError as exc:
        log = dest / "debootstrap" / "debootstrap.log"
        if log.is_file():
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
            msg = f"{exc}\n--- {log.name} ---\n{tail}"
            raise RootfsBuildError(msg) from exc
        raise
    for copied_from_host in ("etc/hostname", "etc/resolv.conf"):
        (dest / copied_from_host).unlink(missing_ok=True)
    _ensure_dev(dest)


def _ensure_dev(dest: Path) -> None:
    dev = dest / "dev"
    (dev / "shm").mkdir(parents=True, exist_ok=True)
    (dev / "pts").mkdir(exist_ok=True)
    for name, (major, minor) in _DEV_NODES.items():
        if not os.path.lexists(dev / name):
            os.mknod(dev / name, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
            (dev / name).chmod(0o666)
    for name, target in _DEV_LINKS.items():
        if not os.path.lexists(dev / name):
            (dev / name).symlink_to(target)


# --------------------------------------------------------------------------- running


@functools.cache
def _support_problem() -> str | None:
    if os.geteuid() != 0:
        return "rootfs fixtures need root (mount namespaces, overlayfs, chroot)"
    for tool in ("unshare", "mount", "chroot", "tar", "env", "sh"):
        if shutil.which(tool, path=HOST_ENV["PATH"]) is None:
            return f"{tool} not found (run scripts/install-system-deps.sh --tests)"
    scratch = _scratch_dir()
    probe = Path(tempfile.mkdtemp(prefix="probe-", dir=scratch))
    try:
        for sub in ("l", "u", "w", "m"):
            (probe / sub).mkdir()
        proc = subprocess.run(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "mount",
                "-t",
                "overlay",
                "overlay",
                "-o",
                "lowerdir=l,upperdir=u,workdir=w",
                "m",
            ],
            cwd=probe,
            env=HOST_ENV,
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        shutil.rmtree(probe, ignore_errors=True)
    if proc.returncode != 0:
        return (
            f"cannot mount overlayfs in a private mount namespace with upperdir in {scratch} "
            f"(PORTENV_TEST_CACHE must not be on overlayfs): {proc.stderr.strip()}"
        )
    return None


def check_rootfs_support() -> None:
    """Raise RootfsUnsupportedError saying why this machine cannot run the fixtures."""
    problem = _support_problem()
    if problem is not None:
        raise RootfsUnsupportedError(problem)


@functools.cache
def _scratch_dir() -> Path:
    scratch = cache_root() / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - 12 * 3600  # leftovers of killed runs: plain files, no mounts
    for old in scratch.iterdir():
        with contextlib.suppress(OSError):
            if old.lstat().st_mtime < cutoff:
                shutil.rmtree(old)
    return scratch


def _resolve_in_root(root: Path, inside: str) -> str:
    """Resolve symlinks in ``inside`` as if ``root`` were /, never leaving ``root``."""
    if not inside.startswith("/") or "\0" in inside:
        msg = f"path inside the rootfs must be absolute: {inside!r}"
        raise ValueError(msg)
    todo = [p for p in inside.split("/") if p not in ("", ".")]
    done: list[str] = []
    hops = 0
    while todo:
        part = todo.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        here = root.joinpath(*done, part)
        if here.is_symlink():
            hops += 1
            if hops > 40:
                msg = f"too many symlinks resolving {inside!r} in {root}"
                raise ValueError(msg)
            target = os.readlink(here)
            if target.startswith("/"):
                done = []
            todo[:0] = [p for p in target.split("/") if p not in ("", ".")]
        else:
            done.append(part)
    return "/" + "/".join(done)


@dataclass(frozen=True)
class _Mount:
    inside: str  # resolved, absolute
    lines: tuple[str, ...]


def _plan_mounts(
    root: Path, binds: Sequence[tuple[Path, str]], tmpfs: Sequence[tuple[str, str]]
) -> list[_Mount]:
    mounts: list[_Mount] = []
    for host, inside in binds:
        src = Path(host).absolute()
        if not src.exists():
            msg = f"bind source does not exist: {src}"
            raise ValueError(msg)
        real = _resolve_in_root(root, inside)
        tgt = shlex.quote("root" + real)
        if src.is_dir():
            make = f"mkdir -p {tgt}"
        else:
            make = f"mkdir -p {shlex.quote('root' + str(Path(real).parent))} && touch {tgt}"
        mounts.append(_Mount(real, (make, f"mount --bind {shlex.quote(str(src))} {tgt}")))
    for inside, size in tmpfs:
        if not re.fullmatch(r"[0-9]+[kmgKMG%]?", size):
            msg = f"tmpfs size must look like 8m, 512k, 1g: {size!r}"
            raise ValueError(msg)
        real = _resolve_in_root(root, inside)
        tgt = shlex.quote("root" + real)
        mounts.append(
            _Mount(
                real, (f"mkdir -p {tgt}", f"mount -t tmpfs -o size={size},mode=0755 tmpfs {tgt}")
            )
        )
    if any(m.inside in ("/", "/proc") or m.inside.startswith("/proc/") for m in mounts):
        msg = "cannot mount over / or /proc inside the rootfs"
        raise ValueError(msg)
    return sorted(mounts, key=lambda m: m.inside.count("/"))  # parents first


def _script(mounts: Sequence[_Mount], env: Mapping[str, str], cwd: str, shm: bool) -> str:
    for k, v in env.items():
        if not k or "=" in k or "\0" in k + v:
            msg = f"invalid environment entry: {k!r}={v!r}"
            raise ValueError(msg)
    lines = [
        "set -u",
        f'fail() {{ echo "{_SETUP_MARK} $*" >&2; exit {_SETUP_FAILED}; }}',
        "mount -t overlay overlay -o lowerdir=lower,upperdir=upper,workdir=work root"
        " || fail overlay mount",
    ]
    if shm:
        lines.append("mount -t tmpfs -o mode=1777,size=64m shm root/dev/shm || fail /dev/shm")
    for m in mounts:
        lines.append(f"{{ {' && '.join(m.lines)}; }} || fail {shlex.quote(m.inside)}")
    assignments = " ".join(shlex.quote(f"{k}={v}") for k, v in env.items())
    lines.append(
        f"exec env -i {assignments} unshare --net --ipc --uts --pid --fork --kill-child"
        f' --mount-proc=/proc --root=root --wd={shlex.quote(cwd)} -- "$@"'
    )
    return "\n".join(lines) + "\n"


def run_in_rootfs(
    rootfs: Path,
    argv: list[str],
    *,
    binds: Sequence[tuple[Path, str]] = (),
    tmpfs: Sequence[tuple[str, str]] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
    input: bytes | None = None,
    cwd: str = "/",
) -> RootfsResult:
    """Run argv inside a fresh overlay copy of rootfs: no network, own pid namespace, /proc.

    binds: (host path, absolute inside path), read-write; tmpfs: (inside path, size like "8m").
    env replaces the environment (default DEFAULT_ENV). Raises subprocess.TimeoutExpired after
    killing everything on timeout, RootfsSetupError if a mount failed.
    """
    check_rootfs_support()
    if not argv:
        msg = "argv must not be empty"
        raise ValueError(msg)
    lower = Path(rootfs).absolute()
    mounts = _plan_mounts(lower, binds, tmpfs)
    shm = (lower / "dev/shm").is_dir() and not (lower / "dev/shm").is_symlink()
    script = _script(mounts, DEFAULT_ENV if env is None else env, cwd, shm)
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=_scratch_dir()))
    try:
        for sub in ("upper", "work", "root"):
            (run_dir / sub).mkdir()
        (run_dir / "lower").symlink_to(lower)
        cmd = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "portenv-rootfs",
            *argv,
        ]
        code, out, err = _communicate(cmd, run_dir, input, timeout, argv)
        if code == _SETUP_FAILED and _SETUP_MARK in err:
            msg = f"sandbox setup failed for {lower}: {err.strip()}"
            raise RootfsSetupError(msg)
        artefacts = {a for m in mounts for a in _ancestors(m.inside)}
        changed_all, deleted = _diff_upper(run_dir / "upper", lower, artefacts)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    changed = [p for p in changed_all if not _under(p, NOISE_ROOTS)]
    kept = set(changed)
    return RootfsResult(
        code, out, err, changed, [p for p in deleted if p in kept], changed_all, tuple(argv)
    )


def _communicate(
    cmd: list[str], cwd: Path, data: bytes | None, timeout: float, argv: list[str]
) -> tuple[int, str, str]:
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=HOST_ENV,
        start_new_session=True,
        stdin=subprocess.DEVNULL if data is None else subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = proc.communicate(data, timeout=timeout)
    except BaseException as exc:
        # The whole tree shares our new process group; --kill-child and the pid namespace
        # take care of anything that left it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        if isinstance(exc, subprocess.TimeoutExpired):
            raise subprocess.TimeoutExpired(argv, timeout, out, err) from exc
        raise
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def _ancestors(path: str) -> Iterator[str]:
    pure = PurePosixPath(path)
    for p in (pure, *pure.parents):
        if str(p) != "/":
            yield str(p)


def _under(path: str, roots: Sequence[str]) -> bool:
    return any(path == r or path.startswith(r + "/") for r in roots)


def _diff_upper(upper: Path, lower: Path, artefacts: set[str]) -> tuple[list[str], list[str]]:
    """Read the overlay upperdir: (changed paths incl. deletions, deleted paths)."""
    changed: list[str] = []
    deleted: list[str] = []

    def walk(rel: str, lower_matches: bool) -> None:
        with os.scandir(upper / rel.lstrip("/")) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            child = f"{rel}/{entry.name}"
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:  # whiteout
                deleted.append(child)
                changed.append(child)
                continue
            low = _lstat(lower / child.lstrip("/")) if lower_matches else None
            if not stat.S_ISDIR(st.st_mode):
                if child not in artefacts:
                    changed.append(child)
                continue
            same = low is not None and stat.S_ISDIR(low.st_mode) and not _opaque(entry.path)
            differs = not same or (
                low is not None
                and (st.st_mode, st.st_uid, st.st_gid) != (low.st_mode, low.st_uid, low.st_gid)
            )
            if differs and child not in artefacts:
                changed.append(child)
            walk(child, same)

    walk("", True)
    return sorted(changed), sorted(deleted)


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return path.lstat()
    except OSError:
        return None


def _opaque(path: str) -> bool:
    try:
        return os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


# --------------------------------------------------------------------------- glibc


_TRIPLETS = {
    "x86_64": "x86_64-linux-gnu",
    "aarch64": "aarch64-linux-gnu",
    "ppc64le": "powerpc64le-linux-gnu",
    "s390x": "s390x-linux-gnu",
}


@functools.cache
def rootfs_glibc_version(rootfs: Path) -> str:
    """glibc version of a rootfs ("2.41"), by executing its libc.so.6 inside it.

    ``ldd``/``getconf`` are absent on busybox targets and ``ld.so --version`` fails on 2.31, but
    libc.so.6 itself prints "... release version 2.NN." on every glibc tested.
    """
    root = Path(rootfs).absolute()
    triplet = _TRIPLETS.get(platform.machine(), f"{platform.machine()}-linux-gnu")
    candidates = [
        f"/lib/{triplet}/libc.so.6",
        f"/usr/lib/{triplet}/libc.so.6",
        "/lib64/libc.so.6",
        "/usr/lib64/libc.so.6",
        "/lib/libc.so.6",
    ]
    for inside in candidates:
        real = _resolve_in_root(root, inside)
        if (root / real.lstrip("/")).is_file():
            result = run_in_rootfs(root, [real], timeout=60)
            found = re.search(r"release version (\d+\.\d+)", result.stdout)
            if found is None:
                msg = f"{inside} in {root} printed no version: {result.stdout!r}{result.stderr!r}"
                raise RootfsError(msg)
            return found.group(1)
    msg = f"no libc.so.6 in {root} (looked at {', '.join(candidates)})"
    raise RootfsError(msg)


if __name__ == "__main__":  # python -m tests.support.rootfs: warm the cache, print timings
    start = time.monotonic()
    for name, path in build_all().items():
        print(f"{name}: {path} glibc {rootfs_glibc_version(path)}")
    print(f"ready in {time.monotonic() - start:.1f} s")
