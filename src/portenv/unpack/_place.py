"""Where an unpacked environment goes, and putting it there so that a failure leaves nothing.

The protocol is portenv-unpack.sh's (docs/format.md), with the same names, so the sh unpacker
and this one respect each other's locks and clean up each other's leftovers: the lock folder
``DIR/.portenv-lock.NAME`` (holding a ``pid`` file), the work folder
``DIR/.portenv-tmp.NAME.PID`` beside the destination (same file system: the final rename is
atomic), and ``DIR/.portenv-old.NAME.PID`` for an environment that ``--force`` replaces.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from portenv.errors import DiskSpaceError, ExtractionError, OutputError, OutputExistsError
from portenv.format import FORBIDDEN_IN_DESTINATION, env_name_problem

__all__ = [
    "Destination",
    "Placement",
    "check_env_name",
    "check_existing",
    "check_free_space",
    "check_path",
    "is_environment",
    "resolve_destination",
    "write_failed",
]

_OTHER_HINT = "choose another -o DIR or --env-name"


@dataclass(frozen=True)
class Destination:
    """``DIR/NAME`` made absolute: `folder` is DIR, `base` its deepest folder that exists."""

    folder: Path
    base: Path
    name: str

    @property
    def path(self) -> Path:
        """The environment's folder."""
        return self.folder / self.name

    def sibling(self, kind: str) -> Path:
        """``DIR/.portenv-KIND.NAME`` (the lock), ``...NAME.PID`` for tmp and old."""
        if kind == "lock":
            return self.folder / f".portenv-lock.{self.name}"
        return self.folder / f".portenv-{kind}.{self.name}.{os.getpid()}"


def check_env_name(name: str) -> None:
    """A plain folder name (format.env_name_problem): a destination problem, as in sh."""
    if env_name_problem(name) is not None:
        msg = f"bad environment name '{name}'"
        raise OutputError(msg, hint="give --env-name a plain folder name")


def resolve_destination(output: Path, name: str) -> Destination:
    """DIR made absolute: what exists resolved physically, the rest appended by name."""
    check_env_name(name)
    folder = Path(os.path.realpath(os.path.join(os.getcwd(), output)))
    base = folder
    while not os.path.lexists(base) and base != base.parent:
        base = base.parent
    if not base.is_dir():
        msg = f"{base} is not a folder"
        raise OutputError(msg, hint="choose another -o DIR")
    return Destination(folder, base, name)


def check_path(dest: Destination, prefix_max: int) -> None:
    """The environment can live at the destination: plain characters, short enough, writable."""
    text = str(dest.path)
    if any(c in FORBIDDEN_IN_DESTINATION for c in text):
        msg = f'the destination {text!r} holds a newline, ", $, ` or \\'
        raise OutputError(msg, hint="choose a -o DIR and --env-name without them")
    length = len(text.encode())
    if length > prefix_max:
        msg = (
            f"the destination {text} is {length} bytes long, "
            f"the environment accepts at most {prefix_max}"
        )
        raise OutputError(msg, hint="choose a shorter -o DIR or --env-name")
    if not os.access(dest.base, os.W_OK | os.X_OK):
        msg = f"cannot write into {dest.base}"
        raise OutputError(msg, hint="choose a -o DIR you can write to, or run as a user who can")


def is_environment(path: Path) -> bool:
    """An environment portenv may replace: a portenv or conda env, or an empty folder."""
    if path.is_symlink() or not path.is_dir():
        return False
    marks = (path / ".portenv", path / "conda-meta")
    return any(m.is_dir() and not m.is_symlink() for m in marks) or not any(path.iterdir())


def check_existing(path: Path, *, force: bool) -> None:
    """The destination is free, or `force` and it holds an environment."""
    if not os.path.lexists(path):
        return
    if not force:
        msg = f"{path} already exists"
        raise OutputExistsError(msg, hint=f"pass --force to replace it, or {_OTHER_HINT}")
    if not is_environment(path):
        msg = f"{path} exists and is not an environment: --force will not replace it"
        raise OutputError(msg, hint=f"remove it yourself, or {_OTHER_HINT}")


def check_free_space(dest: Destination, kib: int) -> None:
    """At least `kib` KiB free where the environment goes."""
    free = shutil.disk_usage(dest.base).free // 1024
    if free < kib:
        msg = f"{dest.base} has {free} KiB free, the environment needs {kib} KiB"
        raise DiskSpaceError(msg, hint="free some space, or choose a -o DIR on another file system")


def write_failed(dest: Destination, exc: OSError) -> ExtractionError:
    """The one-line error for a file that could not be written while building the env."""
    msg = f"writing the environment beside {dest.path} failed: {exc.strerror or exc}"
    return ExtractionError(msg, hint=f"check the free space and permissions of {dest.folder}")


def _alive(pid: int) -> bool:
    """A process other than this one runs under `pid`."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True
    except OSError:
        return os.path.isdir(f"/proc/{pid}")
    return True


def _pid_of(path: Path, prefix: str) -> int | None:
    tail = path.name.removeprefix(prefix)
    return int(tail) if tail.isdigit() else None


def _lock_owner(lock: Path) -> int | None:
    try:
        first = (lock / "pid").read_text(encoding="ascii").split("\n", 1)[0]
    except (OSError, UnicodeDecodeError):
        return None
    return int(first) if first.isdigit() else None


class Placement:
    """Build an environment in a work folder beside its destination, then rename it into place.

    ``with Placement(dest, force=...) as work:`` takes the lock and returns the empty work
    folder; ``commit(built)`` renames `built` (the work folder or a folder in it) to the
    destination, replacing an old environment when forced. Leaving the block without a
    commit removes the work folder and every folder created for DIR, and puts back an old
    environment that was moved aside.
    """

    def __init__(self, dest: Destination, *, force: bool) -> None:
        self.dest = dest
        self.force = force
        self.work = dest.sibling("tmp")
        self._created: list[Path] = []
        self._locked = False
        self._old: Path | None = None
        self._committed = False

    def __enter__(self) -> Path:
        try:
            self._make_folder()
            self._take_lock()
            self._sweep()
            check_existing(self.dest.path, force=self.force)
            self.work.mkdir()
        except OSError as exc:
            self._cleanup()
            msg = f"cannot prepare the unpack into {self.dest.folder}: {exc.strerror or exc}"
            raise OutputError(msg, hint="check its permissions and free space") from exc
        except BaseException:
            self._cleanup()
            raise
        return self.work

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._cleanup()

    def _make_folder(self) -> None:
        missing = []
        folder = self.dest.folder
        while folder != self.dest.base and not os.path.lexists(folder):
            missing.append(folder)
            folder = folder.parent
        try:
            for path in reversed(missing):
                path.mkdir()
                self._created.append(path)
        except OSError as exc:
            msg = f"cannot create {self.dest.folder}: {exc.strerror}"
            raise OutputError(msg, hint="check the permissions of its parent folder") from exc

    def _take_lock(self) -> None:
        lock = self.dest.sibling("lock")
        for attempt in range(3):
            try:
                lock.mkdir()
                break
            except FileExistsError:
                pid = _lock_owner(lock)
                if pid is None and attempt == 0:  # its owner may be writing the pid file
                    time.sleep(1)
                    continue
                if pid is not None and _alive(pid):
                    msg = f"another unpack into {self.dest.path} is running (pid {pid})"
                    hint = f"wait for it to finish, or remove {lock} if no unpack is running"
                    raise OutputError(msg, hint=hint) from None
                shutil.rmtree(lock, ignore_errors=True)
            except OSError as exc:
                msg = f"cannot create the lock {lock}: {exc.strerror}"
                raise OutputError(msg, hint=f"check that {self.dest.folder} is writable") from exc
        else:
            msg = f"cannot create the lock {lock}"
            raise OutputError(msg, hint=f"check that {self.dest.folder} is writable")
        self._locked = True
        (lock / "pid").write_text(f"{os.getpid()}\n", encoding="ascii")

    def _sweep(self) -> None:
        """Remove what dead unpacks into the same destination left behind."""
        name = self.dest.name
        for leftover in sorted(self.dest.folder.glob(f".portenv-tmp.{name}.*")):
            pid = _pid_of(leftover, f".portenv-tmp.{name}.")
            if pid is not None and not _alive(pid):
                shutil.rmtree(leftover, ignore_errors=True)
        for old in sorted(self.dest.folder.glob(f".portenv-old.{name}.*")):
            pid = _pid_of(old, f".portenv-old.{name}.")
            if pid is None or _alive(pid):
                continue
            if os.path.lexists(self.dest.path):
                shutil.rmtree(old, ignore_errors=True)
            else:  # a --force unpack died between its two renames
                with contextlib.suppress(OSError):
                    os.rename(old, self.dest.path)

    def keep_aside(self, old: Path | None) -> None:
        """An update moves the environment to `old` itself (when it cannot swap the two
        folders at once): leaving the block without the new one in place puts it back."""
        self._old = old

    def commit(self, built: Path, extras: Mapping[str, Path] | None = None) -> None:
        """Rename `built` to the destination, then each extra file to ``DIR/<name>``."""
        target = self.dest.path
        check_existing(target, force=self.force)
        try:
            if os.path.lexists(target):
                self._old = self.dest.sibling("old")
                os.rename(target, self._old)
            os.rename(built, target)
        except OSError as exc:
            msg = f"cannot rename the new environment to {target}: {exc.strerror or exc}"
            raise OutputError(msg, hint=f"check the permissions of {self.dest.folder}") from exc
        try:
            for name, path in (extras or {}).items():
                os.replace(path, self.dest.folder / name)
        except OSError as exc:
            os.rename(target, built)
            msg = f"cannot write {self.dest.folder / name}: {exc.strerror or exc}"
            raise OutputError(msg, hint=f"check the permissions of {self.dest.folder}") from exc
        self._committed = True
        if self._old is not None:
            shutil.rmtree(self._old, ignore_errors=True)
            self._old = None

    def _cleanup(self) -> None:
        _ignore(lambda: shutil.rmtree(self.work))
        if self._old is not None and not os.path.lexists(self.dest.path):
            _ignore(lambda: os.rename(self._old or "", self.dest.path))
        if self._locked:
            _ignore(lambda: shutil.rmtree(self.dest.sibling("lock")))
            self._locked = False
        if not self._committed:
            for path in reversed(self._created):
                _ignore(path.rmdir)
        self._created = []


def _ignore(action: Callable[[], object]) -> None:
    """Best effort cleanup: a step that fails must not hide the error being handled."""
    with contextlib.suppress(OSError):
        action()
