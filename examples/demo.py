"""The README's main job, end to end, on any machine with a CPython and PyPI (or a mirror).

1. `portenv pack --python <this interpreter> -r examples/python/requirements.txt -o app.sh`:
   the interpreter running this script is made portable, requests + httpx are resolved for it
   and installed, all hash-verified;
2. in a glibc + busybox root filesystem with no network and no Python:
   `sh app.sh -o /app`, then `/app/env/bin/python test_venv.py` (imports, versions, where
   Python runs from, TLS trust);
3. the second path, a pixi project: examples/hello solved against the conda channel the test
   suite builds locally (conda-forge is not reachable where portenv is developed), packed and
   run the same way.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.support.channel import build_local_channel, write_project  # noqa: E402
from tests.support.rootfs import busybox_rootfs, run_in_rootfs  # noqa: E402


def portenv(*args: str) -> None:
    """Run the CLI and show what it prints."""
    print(f"$ portenv {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, "-m", "portenv", *args], check=True)


def on_bare_target(dist: Path, archive: str, script: str) -> int:
    """Unpack and run inside a fresh glibc + busybox rootfs, no network."""
    print(f"$ (bare glibc+busybox target, no network) sh {archive} -o /app && ... {script}")
    result = run_in_rootfs(
        busybox_rootfs(),
        ["/bin/sh", "-c", f"sh /dist/{archive} -o /app && /app/env/bin/python /dist/{script}"],
        binds=[(dist, "/dist")],
        env={"PATH": "/usr/bin:/bin", "EXPECTED_PREFIX": "/app/env"},
    )
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode


def conda_free(dist: Path) -> int:
    """The main job: a plain CPython + PyPI requirements."""
    requirements = HERE / "python" / "requirements.txt"
    portenv("pack", "--python", sys.executable, "-r", str(requirements), "-o", str(dist / "app.sh"))
    shutil.copy(HERE / "seed" / "test_venv.py", dist / "test_venv.py")
    return on_bare_target(dist, "app.sh", "test_venv.py")


def pixi_project(dist: Path, out: Path) -> int:
    """The second path: a pixi project (conda packages) from the local channel."""
    specs = [
        line.strip()
        for line in (HERE / "hello" / "specs.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    project = write_project(out / "hello", build_local_channel(), specs)
    shutil.copy(HERE / "hello" / "app.py", dist / "app.py")
    portenv("plan", str(project))
    portenv("pack", str(project), "-o", str(dist / "env.sh"))
    return on_bare_target(dist, "env.sh", "app.py")


def main() -> int:
    """Run both paths; the exit code is the first failure's."""
    out = HERE.parent / "out" / "demo"
    shutil.rmtree(out, ignore_errors=True)
    dist = out / "dist"
    dist.mkdir(parents=True)
    return conda_free(dist) or pixi_project(dist, out)


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # py-rattler may crash at interpreter exit (FIELD-NOTES)
