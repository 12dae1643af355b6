"""A --python env on a bare target: its bytecode is used as shipped, and pip works after moves.

Root unpacks (the normal deployment), a user who cannot write into the env imports: no
module may be compiled (a compile would be repeated at every start of that user). Then pip,
which the env carries, installs a local wheel with a console script; the env is moved and
relocated, and the script still runs.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from tests.conftest import portenv
from tests.support.pypilock import make_wheel
from tests.support.pyrelocate import installed_pythons
from tests.support.rootfs import RootfsResult, run_in_rootfs

pytestmark = pytest.mark.e2e

IMPORTS = ["idna", "certifi", "pip._internal.cli.main", "json", "email.parser", "decimal"]
PROBE = r"""
import importlib._bootstrap_external as bootstrap, importlib.util, json, sys, traceback
compiled = []
original = bootstrap.SourceLoader.source_to_code
def source_to_code(self, data, path, *args, **kwargs):
    compiled.append(path)  # only called when no valid .pyc was found
    return original(self, data, path, *args, **kwargs)
bootstrap.SourceLoader.source_to_code = source_to_code
for name in sys.argv[1:]:
    importlib.import_module(name)
checked, stale = 0, []
for module in list(sys.modules.values()):
    spec = getattr(module, "__spec__", None)
    if spec is None or not spec.cached or not (spec.origin or "").endswith(".py"):
        continue
    try:
        with open(spec.origin, "rb") as source, open(spec.cached, "rb") as pyc:
            head, text = pyc.read(16), source.read()
    except OSError:
        head, text = b"", b""
    ok = head[4:8] == (3).to_bytes(4, "little") and head[8:] == importlib.util.source_hash(text)
    checked += 1
    stale += [] if ok else [spec.cached]
try:
    json.loads("{")
except ValueError as exc:
    frames = [f.filename for f in traceback.extract_tb(exc.__traceback__)]
print(json.dumps({"compiled": compiled, "checked": checked, "stale": stale, "frames": frames}))
"""


@pytest.fixture(scope="module")
def dist(package_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """app.sh (CPython 3.12 + idna + certifi, and pip), the probe, a wheel with a script."""
    python = installed_pythons(["3.12"]).get("3.12")
    if python is None:
        pytest.fail("CPython 3.12 not found (pyenv or PATH), the test needs it")
    folder = tmp_path_factory.mktemp("first-start")
    (folder / "probe.py").write_text(PROBE)
    (folder / "requirements.txt").write_text("idna\ncertifi\n")
    files = {"hello.py": "import sys\ndef main():\n    print('hello from', sys.prefix)\n"}
    make_wheel(folder, "hello", "1.0", files=files, console_scripts={"hello": "hello:main"})
    out = folder / "app.sh"
    portenv("pack", "--python", python, "-r", folder / "requirements.txt", "-o", out,
            "--use-cache", package_cache)  # fmt: skip
    return folder


def probe_line(result: RootfsResult) -> dict[str, list[str] | int]:
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines, f"{result.stdout}\n{result.stderr}"
    return dict(json.loads(lines[0]))


def test_a_user_who_cannot_write_the_env_compiles_nothing(dist: Path, busybox_root: Path) -> None:
    env = "/opt/app/env"
    probe = f"{env}/bin/python /tmp/probe.py {' '.join(IMPORTS)}"
    script = [
        "set -e",
        "sh /dist/app.sh -o /opt/app",
        "cp /dist/probe.py /tmp/probe.py && chmod 644 /tmp/probe.py",
        f"su -s /bin/sh nobody -c {shlex.quote(probe)}",
        f"su -s /bin/sh nobody -c 'touch {env}/w' 2>/dev/null && echo WRITABLE || true",
    ]
    result = run_in_rootfs(
        busybox_root, ["/bin/sh", "-c", "\n".join(script)], binds=[(dist, "/dist")]
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert "WRITABLE" not in result.stdout, "the env must be read-only for that user"
    found = probe_line(result)
    assert found["compiled"] == [], "modules compiled at start: their .pyc is missing or stale"
    assert isinstance(found["checked"], int) and found["checked"] > 300, found["checked"]
    assert found["stale"] == []
    frames = found["frames"]
    assert isinstance(frames, list) and f"{env}/lib/python3.12/json/decoder.py" in frames


def test_pip_installs_and_its_script_survives_a_move(dist: Path, busybox_root: Path) -> None:
    env, moved = "/opt/app/env", "/srv/other place/env"
    script = [
        "set -e",
        "sh /dist/app.sh -o /opt/app",
        f"{env}/bin/pip --version",
        f"{env}/bin/python -m pip install -q --no-index /dist/hello-1.0-py3-none-any.whl",
        f"{env}/bin/hello",
        "mkdir -p '/srv/other place'",
        f"mv {env} '{moved}'",
        f"'{moved}/bin/portenv-relocate'",
        f"'{moved}/bin/hello'",
        f"'{moved}/bin/pip' --version",
        f"'{moved}/bin/python' -m pip uninstall -q -y hello",
        f"test ! -e '{moved}/bin/hello' && echo uninstalled",
    ]
    result = run_in_rootfs(
        busybox_root, ["/bin/sh", "-c", "\n".join(script)], binds=[(dist, "/dist")]
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert f"hello from {env}\n" in result.stdout
    assert f"hello from {moved}\n" in result.stdout, "the script pip installed was relocated"
    for where in (env, moved):
        assert f"from {where}/lib/python3.12/site-packages/pip (python 3.12)" in result.stdout
    assert "uninstalled" in result.stdout
    assert "portenv: relocated" in result.stderr


@pytest.fixture(scope="module")
def stdlib_only(dist: Path, package_cache: Path) -> Path:
    """app.sh's environment with the standard library's bytecode only (--bytecode stdlib):
    site-packages is what --compile must make up for."""
    python = installed_pythons(["3.12"])["3.12"]
    out = dist / "stdlib.sh"
    portenv("pack", "--python", python, "-r", dist / "requirements.txt", "-o", out,
            "--bytecode", "stdlib", "--use-cache", package_cache, "-q")  # fmt: skip
    return out


def test_unpack_compile_spares_every_user_the_compiling(
    stdlib_only: Path, busybox_root: Path
) -> None:
    """Root unpacks with --compile; a user who cannot write into the env then compiles
    nothing, where the same archive unpacked without it has that user compile every import."""
    compiled, plain = "/opt/app/env", "/opt/plain/env"
    script = [
        "set -e",
        "sh /dist/stdlib.sh -o /opt/plain",
        "sh /dist/stdlib.sh -o /opt/app --compile",
        "cp /dist/probe.py /tmp/probe.py && chmod 644 /tmp/probe.py",
        *(
            f"su -s /bin/sh nobody -c {shlex.quote(f'{env}/bin/python /tmp/probe.py idna json')}"
            for env in (compiled, plain)
        ),
        f"su -s /bin/sh nobody -c 'touch {compiled}/w' 2>/dev/null && echo WRITABLE || true",
    ]
    result = run_in_rootfs(
        busybox_root, ["/bin/sh", "-c", "\n".join(script)], binds=[(stdlib_only.parent, "/dist")]
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert "WRITABLE" not in result.stdout, "the env must be read-only for that user"
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 2, result.stdout
    assert lines[0]["compiled"] == [], "modules compiled at start: --compile left them out"
    assert lines[0]["checked"] > 30 and lines[0]["stale"] == []
    assert f"{plain}/lib/python3.12/site-packages/idna/__init__.py" in lines[1]["compiled"]
    outside = [p for p in lines[1]["compiled"] if "/site-packages/" not in p]
    assert outside == [], "--bytecode stdlib ships the standard library's bytecode"
