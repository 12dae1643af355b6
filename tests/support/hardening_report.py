"""Render docs/hardening.md from the figures the hardening tests recorded (tests/support/hardening).

Run by `sh scripts/hardening-report.sh`, after pytest:
``python -m tests.support.hardening_report FIGURES.jsonl JUNIT.xml OUTPUT.md``.
The page opens with the threat model, then the headline figures, the machine, and one table per
category. Figures a test may record, by the name the totals read:
``archives`` (hostile archives tried; a case without it counts as one), ``injections`` (faults
injected; likewise), ``cases`` (fuzz cases run), ``outside_writes`` (files written outside a
destination, from a rootfs snapshot), ``destination`` (what a fault left at DEST: one label,
which counts the case's injections, or ``"LABEL: N; LABEL: N"``; labels hold no ``;``).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Run", "main", "render"]

ORDER = ("hostile archive", "fault", "fuzz", "bad input", "network")
COMMAND = "sh scripts/hardening-report.sh"
Figures = dict[str, int | str]

THREAT_MODEL = """\
## Threat model

Users unpack archives on production machines, often as root, with `sh env.sh -o DIR` or
`sh portenv-unpack env.tar -o DIR` (both run the same POSIX sh code). What the unpacker
guarantees, and what this page proves with figures:

- **Nothing lands outside `DEST`** (`DIR/NAME`). The payload is extracted into a temporary
  folder beside `DEST` (`DIR/.portenv-tmp.NAME.PID`, same file system, never `/tmp`); members
  that would write elsewhere (absolute paths, `..`, links resolving outside, devices, fifos,
  setuid/setgid bits, duplicates) are refused before anything is renamed into place. Each run
  below compares a snapshot of the target's root file system before and after (an overlay
  diff): the count of files written outside a destination is reported for every run.
- **`DEST` is replaced atomically, or not at all.** The new env is complete and relocated in
  the temporary folder first, then renamed into place; `--force` moves the old env aside and
  removes it only after the rename. A run that dies at any point (SIGKILL included) leaves the
  previous env untouched or the complete new one; the one window between the two renames is
  repaired by the next run, which restores the env it finds set aside. The next run also
  removes every stale `.portenv-tmp.*`, `.portenv-lock.*` and `.portenv-old.*` of a dead run.
  A lock (`DIR/.portenv-lock.NAME`) lets one unpack at a time into a `DEST`; the other says so.
- **Checks before code runs.** The target (architecture, C library, glibc floor) and the
  destination (writable, free space, path length, an existing env needs `--force`) are
  checked before anything is written; the payload's sha256 from the archive's meta block is
  computed while tar extracts into the temporary folder, and it and the members are checked
  before the env's own interpreter runs `relocate.py` on them.

What it does **not** guarantee:

- **Authenticity.** An archive is code you are about to run. The payload hash in the meta
  block proves only that the payload was not damaged in transit: whoever made or altered the
  archive wrote that hash too. Authenticity comes from `--sha256 HEX`, compared with a hash
  published out of band (`portenv pack` prints it and writes `OUTPUT.sha256`): the unpacker
  refuses a file whose sha256 differs before it extracts anything.
- **Safety of the env's own code.** Relocation runs the env's python, and everything in the
  env runs with the rights of whoever starts it: the checks keep the files inside `DEST`, they
  do not make a hostile env harmless.
- **Protection from other writers.** A process that writes into `DIR` while an unpack runs, or
  a file system that lies about free space, is outside its control: it fails cleanly (exit 8,
  `DEST` as it was) where it can detect the damage.
"""


@dataclass(frozen=True)
class Run:
    """What one report run saw: the recorded cases and pytest's verdict."""

    records: list[Figures]
    tests: int
    failed: list[str]
    skipped: int


def load(figures: Path, junit: Path) -> Run:
    """Read the JSON-lines figures and the junit XML pytest wrote."""
    records: list[Figures] = []
    if figures.is_file():
        lines = figures.read_text(encoding="utf-8").splitlines()
        records = [json.loads(line) for line in lines if line.strip()]
    root = ET.parse(junit).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    tests = sum(int(s.get("tests", "0")) for s in suites)
    skipped = sum(int(s.get("skipped", "0")) for s in suites)
    failed = [
        f"{case.get('classname', '')}::{case.get('name', '')}"
        for case in root.iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    ]
    return Run(records, tests, failed, skipped)


def _total(records: Sequence[Figures], key: str, *, default: int = 0) -> int:
    return sum(int(r[key]) if isinstance(r.get(key), int) else default for r in records)


def _category(records: Sequence[Figures], name: str) -> list[Figures]:
    return [r for r in records if r.get("category") == name]


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _figures(record: Figures) -> str:
    skip = {"category", "case", "outcome"}
    return "; ".join(f"{k}={_cell(v)}" for k, v in record.items() if k not in skip)


def destinations(faults: Sequence[Figures]) -> str:
    """What the faults left at DEST, summed by label over every case, most frequent first."""
    counts: Counter[str] = Counter()
    for record in faults:
        text = record.get("destination")
        if not isinstance(text, str):
            continue
        parts = [part.strip() for part in text.split(";") if part.strip()]
        for part in parts:
            label, colon, count = part.rpartition(": ")
            if colon and count.isdigit():
                counts[label] += int(count)
            else:
                counts[part] += _total([record], "injections", default=1) if len(parts) == 1 else 1
    return "; ".join(f"{label}: {n}" for label, n in counts.most_common()) or "-"


def summary(run: Run) -> list[str]:
    """The headline figures the issue asks for."""
    records = run.records
    hostile = _category(records, "hostile archive")
    faults = _category(records, "fault")
    checked = [r for r in records if "outside_writes" in r]
    outside = _total(checked, "outside_writes")
    verdict = f"{run.tests - len(run.failed) - run.skipped} passed, {len(run.failed)} failed"
    rows = [
        ("hardening tests run", f"{run.tests}: {verdict}, {run.skipped} skipped"),
        ("hostile archives tried and refused", str(_total(hostile, "archives", default=1))),
        ("fault injections survived", str(_total(faults, "injections", default=1))),
        ("what faults left at the destination", destinations(faults)),
        ("fuzz cases run", str(_total(_category(records, "fuzz"), "cases"))),
        (
            "files written outside a destination",
            f"{outside}, summed over the {len(checked)} recorded cases that checked it "
            "(a snapshot of the rootfs or of the folders around the destination)",
        ),
    ]
    lines = ["## Figures", "", "| figure | value |", "|---|---|"]
    lines += [f"| {name} | {_cell(value)} |" for name, value in rows]
    if run.failed:
        lines += ["", "**Failing hardening tests** (their cases are not counted above):", ""]
        lines += [f"- `{name}`" for name in run.failed]
    return lines


def tables(records: Sequence[Figures]) -> list[str]:
    """One table per category: case, outcome, the figures it recorded."""
    names = {str(r.get("category", "?")) for r in records}
    ordered = [c for c in ORDER if c in names] + sorted(names - set(ORDER))
    lines: list[str] = []
    for name in ordered:
        rows = [r for r in records if r.get("category") == name]
        lines += ["", f"## {name[:1].upper()}{name[1:]} ({len(rows)} cases)", ""]
        lines += ["| case | outcome | figures |", "|---|---|---|"]
        lines += [
            f"| {_cell(r.get('case', ''))} | {_cell(r.get('outcome', ''))} | {_figures(r)} |"
            for r in rows
        ]
    return lines


def _quiet(probe: Callable[[], str]) -> str:
    try:
        return probe()
    except Exception as exc:  # a report must render even where a fixture cannot run
        return f"unknown ({type(exc).__name__}: {exc})"


def _in_rootfs(kind: str, command: str) -> str:
    from tests.support.rootfs import busybox_rootfs, debian_rootfs, run_in_rootfs

    root = busybox_rootfs() if kind == "busybox" else debian_rootfs(kind)
    result = run_in_rootfs(root, ["/bin/sh", "-c", command], timeout=60)
    return (result.stdout + result.stderr).strip().splitlines()[0]


def _os_release() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return "unknown"


def machine() -> list[str]:
    """Where the run happened: the host, and the tools inside the target rootfs fixtures."""
    from tests.support.rootfs import busybox_rootfs, debian_rootfs, rootfs_glibc_version

    rows = [
        ("architecture (`uname -m`)", platform.machine()),
        ("kernel", f"{platform.system()} {platform.release()}"),
        ("host", _quiet(_os_release)),
        ("cores", str(os.cpu_count())),
        ("busybox target", _quiet(lambda: _in_rootfs("busybox", "busybox | head -n 1"))),
        ("busybox target glibc", _quiet(lambda: rootfs_glibc_version(busybox_rootfs()))),
        ("Debian 13 target tar", _quiet(lambda: _in_rootfs("trixie", "tar --version"))),
        (
            "Debian 13 target sh",
            _quiet(lambda: _in_rootfs("trixie", "dpkg-query -W -f '${Package} ${Version}' dash")),
        ),
        ("Debian 13 target glibc", _quiet(lambda: rootfs_glibc_version(debian_rootfs("trixie")))),
    ]
    lines = ["## Machine", "", "| | |", "|---|---|"]
    return lines + [f"| {name} | {_cell(value)} |" for name, value in rows]


def render(run: Run, machine_lines: Sequence[str], when: str) -> str:
    """The whole page."""
    head = [
        "# Hardening report",
        "",
        f"Generated on {when} by `{COMMAND}`, which runs the tests marked",
        "`@pytest.mark.hardening` and renders this page from the figures they record after",
        "their assertions passed (`tests/support/hardening.py`). Do not edit it by hand.",
        "",
    ]
    body = [*summary(run), "", *machine_lines, *tables(run.records)]
    return "\n".join([*head, THREAT_MODEL, *body]) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """FIGURES.jsonl JUNIT.xml OUTPUT.md: write the page."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3:
        print(
            "usage: python -m tests.support.hardening_report FIGURES JUNIT OUTPUT", file=sys.stderr
        )
        return 2
    figures, junit, output = map(Path, args)
    run = load(figures, junit)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    output.write_text(render(run, machine(), when), encoding="utf-8")
    print(f"wrote {output}: {len(run.records)} cases, {len(run.failed)} failing tests")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
