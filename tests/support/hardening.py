"""Figures for docs/hardening.md: hardening tests record what they tried and what happened.

A test calls `record(...)` after its assertions passed, so a recorded case is a proven case.
Recording is a no-op unless PORTENV_HARDENING_LOG names a JSON-lines file: the report command
(`sh scripts/hardening-report.sh`) sets it, runs the hardening tests and renders the figures.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["LOG_VARIABLE", "record"]

LOG_VARIABLE = "PORTENV_HARDENING_LOG"


def record(category: str, case: str, outcome: str, **figures: int | str) -> None:
    """Append one proven case: its category, its name, what happened, and any counts.

    `category` groups the report's tables ("hostile archive", "fault", "fuzz", "bad input",
    "network"); `outcome` is what the user saw (e.g. "refused, exit 3"); `figures` carries
    counts such as `outside_writes=0` or `cases=500`.
    """
    target = os.environ.get(LOG_VARIABLE)
    if not target:
        return
    line = json.dumps({"category": category, "case": case, "outcome": outcome, **figures})
    with Path(target).open("a", encoding="utf-8") as log:
        log.write(line + "\n")
