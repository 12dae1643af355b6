"""The user's own code, packed with a plain CPython and run on a bare glibc + busybox target.

One pack takes every local form at once: a project folder named `.` in a requirements file
(taken relative to that file, not to where portenv runs), a local wheel, an `-e` folder
(installed as a normal copy), and `--project DIR` (installed itself, with its dependency).
The projects' console scripts are then run by name inside the rootfs, with no network.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import portenv
from tests.e2e.test_python_source import interpreters
from tests.support.pypilock import make_wheel
from tests.support.rootfs import run_in_rootfs
from tests.unit.test_user_code import FLIT

pytestmark = pytest.mark.e2e

SITE = "/opt/uc/env/lib/python3.12/site-packages"


def project(folder: Path, name: str, body: str, dependencies: str = "") -> None:
    """A flit project with one module and a console script of the same name."""
    (folder / name).mkdir(parents=True)
    (folder / name / "__init__.py").write_text(body)
    (folder / "pyproject.toml").write_text(
        f'{FLIT}[project]\nname = "{name}"\nversion = "0.2"\ndescription = "d"\n'
        f'dependencies = [{dependencies}]\n[project.scripts]\n{name} = "{name}:main"\n'
    )


@pytest.fixture(scope="module")
def user_code(package_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dist/app.sh from --project proj -r app/requirements.txt (`.`, a wheel, `-e`)."""
    python = interpreters(["3.12"])["3.12"]
    src = tmp_path_factory.mktemp("user-code")
    project(src / "app", "appcli", "def main():\n    print('appcli runs')\n")
    project(src / "editpkg", "editpkg", "def main():\n    print('editpkg runs')\n")
    project(
        src / "proj",
        "projcli",
        "import idna\ndef main():\n    print('projcli runs', idna.encode('b\\u00fccher.de'))\n",
        '"idna"',
    )
    make_wheel(src / "wheels", "tinytool", "1.0", files={"tinytool.py": "VALUE = 'tinytool'\n"})
    requirements = src / "app" / "requirements.txt"
    requirements.write_text(".\n../wheels/tinytool-1.0-py3-none-any.whl\n-e ../editpkg\n")
    dist = src / "dist"
    dist.mkdir()
    done = portenv(
        "pack",
        "--python",
        python,
        "--project",
        src / "proj",
        "-r",
        requirements,
        "-o",
        dist / "app.sh",
        "--use-cache",
        package_cache,
    )
    note = f"note: editpkg ({src / 'editpkg'}) is editable in the source: installed as a normal"
    assert note in done.stderr, done.stderr
    return src


def test_the_user_s_code_runs_by_its_console_scripts(user_code: Path, busybox_root: Path) -> None:
    lines = [
        "sh /dist/app.sh -o /opt/uc > /dev/null",
        ". /opt/uc/env/bin/activate",
        "appcli",
        "projcli",
        "editpkg",
        "/opt/uc/env/bin/python -c 'import tinytool, editpkg; print(tinytool.VALUE, "
        "editpkg.__file__)'",
        f"ls {SITE}",
        f"echo pth: $(find {SITE} -name '*.pth' -exec cat {{}} +)",
    ]
    script = "set -e\n" + "\n".join(lines)
    result = run_in_rootfs(
        busybox_root, ["/bin/sh", "-c", script], binds=[(user_code / "dist", "/dist")]
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    out = result.stdout
    assert "appcli runs\n" in out and "editpkg runs\n" in out
    assert "projcli runs b'xn--bcher-kva.de'\n" in out, "the project and its dependency"
    assert f"tinytool {SITE}/editpkg/__init__.py\n" in out, "editpkg is a copy in site-packages"
    listed = out.split()
    assert "editpkg" in listed and "editpkg-0.2.dist-info" in listed
    assert not [name for name in listed if "__editable__" in name], listed
    pth = next(line for line in out.splitlines() if line.startswith("pth:"))
    assert str(user_code) not in pth, "no .pth points back to the build host's source"
