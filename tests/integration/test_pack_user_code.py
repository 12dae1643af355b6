"""`pack --python`: the user's own code (files, URLs, indexes, find-links) and what it says.

A direct https URL is a real wheel whose address is looked up at run time from the index's
JSON API; everything else is local. Every message of a bad input is checked line by line.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from portenv._uv import run_uv
from portenv.project.environments import DEFAULT_INDEX
from tests.conftest import portenv
from tests.integration.test_pack import payload_of
from tests.integration.test_pack_pypi import packages_json
from tests.support.pypilock import make_sdist, make_wheel
from tests.support.pyrelocate import installed_pythons
from tests.unit.test_user_code import folder_project

SMALL = "six"
"""A small pure-Python project on the index, one py3 wheel per release."""


@pytest.fixture(scope="module")
def python() -> Path:
    found = installed_pythons(["3.12"])
    if "3.12" not in found:
        pytest.fail("CPython 3.12 not found (pyenv or PATH), the test needs it")
    return found["3.12"]


def real_wheel() -> tuple[str, str]:
    """The URL and sha256 of the newest wheel of SMALL, from the index's JSON API."""
    api = f"{DEFAULT_INDEX.removesuffix('/simple')}/pypi/{SMALL}/json"
    with urllib.request.urlopen(api, timeout=60) as response:
        files = json.load(response)["urls"]
    wheel = next(f for f in files if f["filename"].endswith(".whl"))
    return str(wheel["url"]), str(wheel["digests"]["sha256"])


def lines(stderr: str) -> list[str]:
    """The error and hint lines (progress and notes filtered out)."""
    return [line for line in stderr.splitlines() if line.startswith(("error:", "  hint:"))]


def refused_pack(python: Path, tmp_path: Path, *source: str | Path) -> list[str]:
    """Run a pack that must fail: exit 1, nothing written; its error and hint lines."""
    out = tmp_path / "refused.sh"
    done = portenv("pack", "--python", python, *source, "-o", out, check=False)
    assert done.returncode == 1, done.stderr
    assert not out.exists()
    return lines(done.stderr)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_urls_files_and_find_links_are_fetched_verified_and_recorded(
    python: Path, package_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, digest = real_wheel()
    pinned = make_wheel(tmp_path / "dist", "pinned", "1.0", files={"pinned.py": ""})
    make_wheel(tmp_path / "links", "linked", "1.5", files={"linked.py": ""})
    sdist = make_sdist(tmp_path / "dist", "sdisty", "2.0", module_source="Y = 2\n")
    monkeypatch.chdir(tmp_path)
    with_lines = [
        f"{SMALL} @ {url}",
        f"pinned @ {pinned.as_uri()}#sha256={sha256(pinned)}",
        "--find-links ./links",
        "linked",
        f"./dist/{sdist.name}",
    ]
    argv = [f"--with={line}" for line in with_lines]
    plan = json.loads(portenv("plan", "--python", python, *argv, "--json").stdout)
    assert {p["name"]: (p["kind"], p["action"], p["sha256"]) for p in plan["pypi"]} == {
        SMALL: ("wheel", "install", None),
        "pinned": ("wheel", "install", sha256(pinned)),
        "linked": ("wheel", "install", sha256(tmp_path / "links" / "linked-1.5-py3-none-any.whl")),
        "sdisty": ("sdist", "build", None),
    }
    out = tmp_path / "env.tar"
    portenv("pack", "--python", python, *argv, "-o", out, "--use-cache", package_cache)
    entries = {e["name"]: e for e in packages_json(out) if e["kind"] == "pypi"}
    assert (entries[SMALL]["sha256"], entries[SMALL]["sha256_from"]) == (digest, "computed")
    assert entries[SMALL]["url"] == f"direct+{url}"
    assert (entries["pinned"]["sha256"], entries["pinned"]["sha256_from"]) == (
        sha256(pinned),
        "lock",
    )
    assert entries["sdisty"]["built_from_source"] is True
    names = payload_of(out).getnames()
    assert f"lib/python3.12/site-packages/{SMALL}.py" in names
    info = next(n for n in names if n.endswith(".dist-info/direct_url.json") and SMALL in n)
    member = payload_of(out).extractfile(info)
    assert member is not None
    assert json.loads(member.read()) == {"url": url, "archive_info": {"hashes": {"sha256": digest}}}


def test_a_wrong_pin_on_a_url_is_refused(python: Path, tmp_path: Path) -> None:
    url, digest = real_wheel()
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"{SMALL} @ {url} --hash=sha256:{'0' * 64}\n")
    done = portenv("plan", "--python", python, "-r", requirements, check=False)
    assert done.returncode == 1
    version = url.rsplit("/", 1)[1].split("-")[1]
    assert lines(done.stderr) == [
        f"error: {SMALL} {version}: the file for the target has sha256 {digest}, "
        "which the requirements do not allow",
        "  hint: add that hash to the requirements, or re-pin",
    ]


def simple_index(folder: Path, name: str, version: str) -> str:
    """A PEP 503 index in a folder, holding one wheel; its file:// URL."""
    wheel = make_wheel(folder / name, name, version, files={f"{name}.py": ""})
    page = f'<html><body><a href="{wheel.name}">{wheel.name}</a></body></html>\n'
    (folder / name / "index.html").write_text(page)
    return folder.as_uri()


def test_index_urls_in_a_requirements_file_are_honoured(python: Path, tmp_path: Path) -> None:
    main = simple_index(tmp_path / "main", "frommain", "1.0")
    extra = simple_index(tmp_path / "extra", "fromextra", "2.0")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"--index-url {main}\n--extra-index-url {extra}\nfrommain\nfromextra\n")
    plan = json.loads(portenv("plan", "--python", python, "-r", requirements, "--json").stdout)
    assert {p["name"]: p["url"] for p in plan["pypi"]} == {
        "frommain": f"{main}/frommain/frommain-1.0-py3-none-any.whl",
        "fromextra": f"{extra}/fromextra/fromextra-2.0-py3-none-any.whl",
    }


def test_an_unreachable_index_says_so(
    python: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")
    index = "https://pypi.portenv-test.invalid/simple"
    done = portenv(
        "plan", "--python", python, f"--with=--index-url {index}", "--with=idna", check=False
    )
    assert done.returncode == 1
    error, hint = lines(done.stderr)
    assert error.startswith(
        f"error: cannot reach {index}/idna/ to resolve the requirements for Python 3.12: "
    )
    assert hint == (
        "  hint: check the network connection, and the index URL if one is given (--index-url)"
    )
    assert "relax" not in done.stderr


def test_a_local_path_that_does_not_exist_is_named(python: Path, tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("idna\n-e ./mypkg\n")
    assert refused_pack(python, tmp_path, "-r", requirements) == [
        f"error: {requirements}:2: local path does not exist: {tmp_path / 'mypkg'}",
        f"  hint: fix the path; it is taken relative to the folder of {requirements}",
    ]


def test_a_conflict_keeps_the_relax_hint(python: Path, tmp_path: Path) -> None:
    make_wheel(tmp_path / "links", "linked", "1.5", files={"linked.py": ""})
    argv = ["--with=--no-index", f"--with=--find-links {tmp_path / 'links'}", "--with=linked>=9"]
    done = portenv("plan", "--python", python, *argv, check=False)
    assert done.returncode == 1
    assert done.stderr.startswith("error: cannot resolve the requirements for Python 3.12:\n")
    assert done.stderr.rstrip().endswith("\n  hint: relax the requirement uv names")


def test_a_stale_uv_lock_with_an_uncached_dependency_is_stale(python: Path, tmp_path: Path) -> None:
    make_wheel(tmp_path / "links", "linked", "1.5", files={"linked.py": ""})
    extra = '[tool.uv]\nno-index = true\nfind-links = ["../links"]\n'
    project = folder_project(tmp_path / "app", "appx", extra=extra)
    assert run_uv(["lock", "--offline", "--python", str(python)], cwd=project).returncode == 0
    text = (project / "pyproject.toml").read_text()
    (project / "pyproject.toml").write_text(text.replace("[]", '["portenv-never-published"]'))
    assert refused_pack(python, tmp_path, "--project", project) == [
        f"error: uv.lock is stale: it no longer matches {project / 'pyproject.toml'}",
        f"  hint: run `uv lock` in {project}, then pack again",
    ]


def test_the_bare_interpreter_is_packed_with_a_note(
    python: Path, package_cache: Path, tmp_path: Path
) -> None:
    planned = portenv("plan", "--python", python)
    note = "note: no requirements given (-r, --with or --project): packing the bare interpreter"
    assert note in planned.stdout.splitlines()
    assert "pypi packages: 0\ndownload size: 0 bytes\n" in planned.stdout
    out = tmp_path / "bare.sh"
    done = portenv("pack", "--python", python, "-o", out, "--use-cache", package_cache)
    assert note in done.stderr.splitlines()
    dest = tmp_path / "deployed"
    subprocess.run(["sh", str(out), "-o", str(dest)], check=True, capture_output=True)
    code = "import json, os, sys, sysconfig; print(json.dumps([sys.prefix, os.listdir("
    code += "sysconfig.get_path('purelib'))]))"
    ran = subprocess.run(
        [str(dest / "env/bin/python"), "-c", code], capture_output=True, text=True, check=True
    )
    prefix, site = json.loads(ran.stdout)
    assert prefix == str(dest / "env")
    installed = sorted(name.split("-")[0] for name in site if name.endswith(".dist-info"))
    assert installed == ["pip"], "only ensurepip's pip (python 3.12 bundles no setuptools)"
    assert not [name for name in site if name.endswith(".py")], site


def test_plan_says_what_the_lock_records_of_download_sizes(python: Path, tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    entry = '[[packages]]\nname = "{0}"\nversion = "1.0"\nwheels = [{{ url = "{1}"{2} }}]\n'
    wheel = "https://files.invalid/{0}-1.0-py3-none-any.whl"
    entries = [
        entry.format(name, wheel.format(name), size)
        for name, size in (("a", ", size = 1000"), ("b", ", size = 234"), ("c", ""))
    ]
    (folder / "pylock.toml").write_text('lock-version = "1.0"\n\n' + "\n".join(entries))
    planned = portenv("plan", "--python", python, "--project", folder)
    assert "download size: 1,234 bytes + 1 file of unknown size\n" in planned.stdout
    as_json = json.loads(portenv("plan", "--python", python, "--project", folder, "--json").stdout)
    assert (as_json["download_size"], as_json["download_size_unknown"]) == (1234, 1)
    (folder / "pylock.toml").write_text('lock-version = "1.0"\n\n' + entries[2])
    planned = portenv("plan", "--python", python, "--project", folder)
    assert "download size: unknown (the lock records no size for the 1 file)\n" in planned.stdout


def test_no_install_project_goes_with_project(python: Path) -> None:
    done = portenv("plan", "--python", python, "--no-install-project", check=False)
    assert done.returncode == 2
    assert "error: --no-install-project goes with --project DIR" in done.stderr


def test_the_running_interpreter_is_the_default(tmp_path: Path) -> None:
    """--with alone packs the interpreter running portenv, as -r alone does."""
    project = folder_project(tmp_path / "p", "withonly")
    plan = json.loads(portenv("plan", "--with", str(project), "--json").stdout)
    major, minor = sys.version_info[:2]
    assert plan["environment"] == f"python{major}.{minor}"
    assert [(p["name"], p["kind"], p["action"]) for p in plan["pypi"]] == [
        ("withonly", "path", "build")
    ]
