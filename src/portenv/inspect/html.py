"""``portenv inspect --html``: one self-contained page (inline CSS, JS and SVG, no network).

The page is `report.html` with the `--json` document embedded; its script draws the size map
(a squarified treemap: packages, then their folders), the sortable package table and the
facts from that document alone, so the page and `--json` always say the same.
"""

from __future__ import annotations

import html
import json
from importlib import resources
from pathlib import Path

from portenv.inspect._model import Report
from portenv.inspect.jsonout import report_json

__all__ = ["render_html", "write_html"]

_TEMPLATE = "report.html"


def _script_json(document: object) -> str:
    """JSON safe inside a ``<script>`` element: no ``</script>`` or ``<!--`` can appear."""
    text = json.dumps(document, separators=(",", ":"), sort_keys=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(report: Report) -> str:
    """The page, as one string."""
    page = resources.files("portenv.inspect").joinpath(_TEMPLATE).read_text(encoding="utf-8")
    title = html.escape(f"portenv inspect: {report.path}")
    # The data first: the title placeholder still comes first in the page after it.
    page = page.replace("__REPORT_DATA__", _script_json(report_json(report)), 1)
    return page.replace("__TITLE__", title, 1)


def write_html(report: Report, output: Path) -> Path:
    """Write the page to `output` (atomically); its path."""
    from portenv.write import atomic_output

    with atomic_output(output) as sink:
        sink.write(render_html(report).encode("utf-8"))
    return output
