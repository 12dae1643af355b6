"""Regressions the fuzz campaign found: damaged manifests that crashed plan or lock --check.

Each case starts from a real project (v6-simple-python), damages its manifest the way the
fuzzer did, and expects one clear `error:` line naming the problem, and no traceback.
"""

from __future__ import annotations

import pytest

from tests.support.hardening import record
from tests.support.realdata import check_outcome, copied, run_cli

pytestmark = pytest.mark.hardening

SEED = "v6-simple-python"

CASES = {
    # tomlkit errors escaped from editable_names() in plan:
    "unterminated string": (b'[project]\nname = "', "is not valid TOML"),
    "duplicate key": (b'[project]\nname = "a"\nname = "b"\n', "is not valid TOML"),
    "NUL byte": (b'[project]\nname = "a\x00"\n', "is not valid TOML"),
    # a UnicodeDecodeError escaped from read_text() in both commands:
    "not UTF-8": (b'[project]\nname = "\xff\xfe"\n', "is not UTF-8 text"),
    # TypeError / AttributeError / KeyError in portenv.project.environments (lock --check):
    "platforms is a number": (
        b'[project]\nname = "a"\nchannels = []\nplatforms = 5\n',
        "project.platforms must be a list, not a number",
    ),
    "workspace is a string": (b'workspace = "x"\n', "workspace must be a table, not a string"),
    "channels is a number": (
        b'[workspace]\nchannels = 1\nplatforms = ["linux-64"]\n',
        "workspace.channels must be a list, not a number",
    ),
    "channel table without channel": (
        b'[workspace]\nchannels = [{ priority = 1 }]\nplatforms = ["linux-64"]\n',
        "a channel table has no channel key",
    ),
    "feature is a number": (b"[feature]\ndev = 3\n", "feature.dev must be a table, not a number"),
    "target table is a string": (
        b'[target]\nlinux-64 = "x"\n',
        "target.linux-64 must be a table, not a string",
    ),
    "environment is a number": (b"[environments]\nprod = 5\n", "environments.prod must be a table"),
    "odd key quoted on one line": (
        b'[feature."a\\nb"]\ndependencies = 1\n',
        "feature.'a\\nb'.dependencies must be a table, not a number",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_damaged_manifest_is_one_clear_error(case: str) -> None:
    text, expected = CASES[case]
    with copied(SEED) as project:
        (project / "pixi.toml").write_bytes(text)
        for argv in (["plan", str(project)], ["lock", "--check", "--project", str(project)]):
            code, stderr = run_cli(argv)
            check_outcome(argv, code, stderr, case)
            if argv[0] == "lock" or "TOML" in expected or "UTF-8" in expected:
                assert code == 1 and expected in stderr.splitlines()[0], stderr
    record("bad input", f"manifest: {case}", "refused, exit 1, one error line")


@pytest.mark.parametrize(
    ("tool", "expected"),
    [
        ('[tool]\npixi = "x"\n', "tool.pixi must be a table, not a string"),
        ("tool = 3\n", "[tool.pixi]"),
    ],
)
def test_a_damaged_pyproject_is_one_clear_error(tool: str, expected: str) -> None:
    with copied(SEED) as project:
        (project / "pixi.toml").unlink()
        (project / "pyproject.toml").write_text('[project]\nname = "a"\n' + tool)
        for argv in (["plan", str(project)], ["lock", "--check", "--project", str(project)]):
            code, stderr = run_cli(argv)
            check_outcome(argv, code, stderr, expected)
            assert code == 1 and expected in stderr.splitlines()[0], stderr
    record("bad input", f"pyproject.toml: {expected}", "refused, exit 1, one error line")
