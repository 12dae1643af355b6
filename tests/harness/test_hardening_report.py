"""docs/hardening.md is rendered from recorded figures and pytest's junit verdict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import hardening, hardening_report

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="5" failures="1" errors="0" skipped="1">
<testcase classname="tests.e2e.test_faults" name="test_a"/>
<testcase classname="tests.e2e.test_faults" name="test_b"><failure message="x"/></testcase>
</testsuite></testsuites>
"""


def write_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    log = tmp_path / "figures.jsonl"
    monkeypatch.setenv(hardening.LOG_VARIABLE, str(log))
    hardening.record(
        "fault",
        "SIGKILL | everywhere",
        "survived",
        injections=30,
        outside_writes=0,
        destination="previous env intact: 20; nothing at DEST: 10",
    )
    hardening.record(
        "fault",
        "read-only",
        "exit 5",
        injections=3,
        outside_writes=0,
        destination="nothing at DEST",
    )
    hardening.record("hostile archive", "../ member", "refused, exit 3", outside_writes=0)
    hardening.record("hostile archive", "links", "refused", archives=12)
    hardening.record("fuzz", "pixi.lock", "one line each", cases=500)
    junit = tmp_path / "junit.xml"
    junit.write_text(JUNIT)
    return log, junit


def test_figures_and_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log, junit = write_run(tmp_path, monkeypatch)
    assert len(log.read_text().splitlines()) == 5
    assert json.loads(log.read_text().splitlines()[0])["injections"] == 30
    run = hardening_report.load(log, junit)
    page = hardening_report.render(run, ["## Machine", "| arch | x |"], "2024-01-01 00:00 UTC")
    assert page.startswith("# Hardening report\n")
    assert "## Threat model" in page and "--sha256 HEX" in page
    rows = {
        cells[0]: cells[1]
        for cells in (line.strip("| ").split(" | ") for line in page.splitlines())
        if len(cells) == 2
    }
    assert rows["hardening tests run"] == "5: 3 passed, 1 failed, 1 skipped"
    assert rows["hostile archives tried and refused"] == "13"
    assert rows["fault injections survived"] == "33"
    assert rows["what faults left at the destination"] == (
        "previous env intact: 20; nothing at DEST: 13"
    )
    assert rows["fuzz cases run"] == "500"
    assert rows["files written outside a destination"].startswith(
        "0, summed over the 3 recorded cases"
    )
    assert "- `tests.e2e.test_faults::test_b`" in page
    assert "## Fault (2 cases)" in page and "## Fuzz (1 cases)" in page
    assert page.index("## Hostile archive") < page.index("## Fault") < page.index("## Fuzz")
    assert "| SIGKILL \\| everywhere | survived | injections=30; outside_writes=0;" in page


def test_a_write_outside_shows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log, junit = write_run(tmp_path, monkeypatch)
    hardening.record("fault", "bad", "wrote outside", outside_writes=2)
    page = hardening_report.render(hardening_report.load(log, junit), [], "now")
    assert "| files written outside a destination | 2, summed over the 4 recorded cases" in page


def test_no_log_without_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(hardening.LOG_VARIABLE, raising=False)
    hardening.record("fault", "x", "y")
    assert list(tmp_path.iterdir()) == []
