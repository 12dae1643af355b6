"""The README's main job, end to end: make the example project, pack it, run it on a bare target.

1. build the local conda channel (a relocatable CPython, a C program, a noarch package),
2. write examples/hello as a pixi project (pixi.toml + pixi.lock) solved against it,
3. `portenv plan` and `portenv pack -o env.sh`,
4. in a glibc + busybox rootfs with no network and no python: `sh env.sh -o /app`, then
   `/app/env/bin/python app.py`.
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


def main() -> int:
    """Run the demo; returns the target's exit code."""
    out = HERE.parent / "out" / "demo"
    shutil.rmtree(out, ignore_errors=True)
    dist = out / "dist"
    dist.mkdir(parents=True)
    specs = [
        line.strip()
        for line in (HERE / "hello" / "specs.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    project = write_project(out / "hello", build_local_channel(), specs)
    shutil.copy(HERE / "hello" / "app.py", dist / "app.py")
    portenv("plan", str(project))
    portenv("pack", str(project), "-o", str(dist / "env.sh"))
    print(
        "$ (bare glibc+busybox target, no network) sh env.sh -o /app && /app/env/bin/python app.py"
    )
    result = run_in_rootfs(
        busybox_rootfs(),
        ["/bin/sh", "-c", "sh /dist/env.sh -o /app && /app/env/bin/python /dist/app.py"],
        binds=[(dist, "/dist")],
    )
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # py-rattler may crash at interpreter exit (FIELD-NOTES)
