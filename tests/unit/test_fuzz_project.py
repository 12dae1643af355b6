"""A fuzz campaign on real pixi projects: hostile locks and manifests never crash portenv.

Seeded from the real files in tests/data/realdata/pixi-projects (copied to a temporary folder
for every case), hypothesis edits pixi.lock or the manifest (tests/support/mutations) and
runs `portenv plan` and `portenv lock --check` in-process through the CLI's error boundary,
`main(argv)`. The property (tests/support/realdata.check_outcome): a documented exit code; a failure
prints exactly one `error:` line and at most one `hint:` line (a stale-lock listing may
follow the error as `  - ` lines), never a traceback; and no file of the project changes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.hardening import record
from tests.support.mutations import mutate_bytes, mutate_lock, mutate_manifest
from tests.support.realdata import (
    REALDATA,
    SEEDS,
    check_outcome,
    copied,
    manifest_name,
    run_cli,
    snapshot,
)

pytestmark = pytest.mark.hardening

PLATFORMS = [None, "linux-64", "linux-aarch64", "osx-arm64", "linux-sparc", "win-64", ""]
ENVIRONMENTS = ["default", "prod", "py311", "cuda", "", "é"]
EXAMPLES = 100
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_the_seeds_are_there() -> None:
    """The campaign is only worth its figures if it ran on the real files."""
    assert {"v6-simple-python", "v7-named-platforms", "webserver"} <= set(SEEDS), REALDATA


def run_commands(project: Path, cache: Path, platform: str | None, env: str, what: str) -> int:
    """plan (text and JSON) and lock --check on one mutated project; the cases run."""
    commands = [
        ["plan", str(project), "-e", env, "--use-cache", str(cache)],
        ["plan", str(project), "--json", "--use-cache", str(cache)],
        ["lock", "--check", "--project", str(project), "--use-cache", str(cache)],
    ]
    if platform is not None:
        commands[0] += ["-p", platform]
    before = snapshot(project)
    for argv in commands:
        code, stderr = run_cli(argv)
        check_outcome(argv, code, stderr, what)
    assert snapshot(project) == before, f"the project changed after {what}"
    return len(commands)


class Campaign:
    """One hypothesis test's cases: each damages one file of a copied seed and runs the CLI."""

    def __init__(self) -> None:
        self.examples = 0
        self.commands = 0

    def run(
        self,
        data: st.DataObject,
        mutation: Callable[[bytes], st.SearchStrategy[tuple[bytes, str]]],
        *,
        seed: str,
        target: str,
        pyproject: bool = False,
        platform: str | None = None,
        env: str = "default",
    ) -> None:
        """Damage `target` ("lock" or "manifest") with a drawn mutation, run, check."""
        with copied(seed, pyproject=pyproject) as project:
            path = project / ("pixi.lock" if target == "lock" else manifest_name(project))
            mutated, what = data.draw(mutation(path.read_bytes()), label="mutation")
            path.write_bytes(mutated)
            what = f"{seed}/{path.name}: {what}"
            self.commands += run_commands(project, project.parent / "cache", platform, env, what)
            self.examples += 1

    def report(self, case: str) -> None:
        """Record the figures once the whole campaign passed."""
        assert self.examples >= EXAMPLES // 2, self.examples
        outcome = "no crash, one error line, project unchanged"
        record("fuzz", case, outcome, cases=self.examples, commands=self.commands)


def test_fuzzed_locks_fail_cleanly() -> None:
    campaign = Campaign()

    @FUZZ
    @given(
        seed=st.sampled_from(SEEDS),
        data=st.data(),
        platform=st.sampled_from(PLATFORMS),
        env=st.sampled_from(ENVIRONMENTS),
    )
    def case(seed: str, data: st.DataObject, platform: str | None, env: str) -> None:
        campaign.run(data, mutate_lock, seed=seed, target="lock", platform=platform, env=env)

    case()
    campaign.report("pixi.lock (YAML edits, then bytes)")


def test_fuzzed_manifests_fail_cleanly() -> None:
    campaign = Campaign()

    @FUZZ
    @given(seed=st.sampled_from(SEEDS), data=st.data(), pyproject=st.booleans())
    def case(seed: str, data: st.DataObject, pyproject: bool) -> None:
        campaign.run(data, mutate_manifest, seed=seed, target="manifest", pyproject=pyproject)

    case()
    campaign.report("pixi.toml / pyproject.toml (TOML edits, then bytes)")


def test_fuzzed_raw_bytes_fail_cleanly() -> None:
    """Byte-level damage to either file, without parsing first (e.g. a non-UTF-8 lock)."""
    campaign = Campaign()

    @FUZZ
    @given(
        seed=st.sampled_from(SEEDS),
        data=st.data(),
        target=st.sampled_from(["lock", "manifest"]),
        pyproject=st.booleans(),
    )
    def case(seed: str, data: st.DataObject, target: str, pyproject: bool) -> None:
        campaign.run(data, mutate_bytes, seed=seed, target=target, pyproject=pyproject)

    case()
    campaign.report("raw bytes of either file (truncation, non-UTF-8, lines)")
