"""`portenv inspect --html` in a real headless browser (chromium): it renders, with no console
error and no network, every package in its table and one box of the size map per package.

Clicks are made by a line of script appended to a copy of the page (the page itself is not
changed), whose results land in the DOM that chromium dumps.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Archives, portenv
from tests.integration.test_unpack_convert import core_pixi_pack
from tests.support.browser import render, screenshot

__all__ = ["core_pixi_pack"]  # a fixture

CLICK_NAME_THEN_PYTHON = """
<script>
document.querySelector('#packages th[data-sort="name"]').click();
document.body.dataset.sorted = Array.from(
  document.querySelectorAll("#packages tbody tr"), (tr) => tr.cells[0].textContent).join(",");
document.querySelector('#map g.pkg[data-name="python"]').dispatchEvent(
  new MouseEvent("click", {bubbles: true}));
document.body.dataset.crumbs = document.getElementById("crumbs").textContent;
</script>
"""


@pytest.fixture(scope="module")
def report(core_archives: Archives, tmp_path_factory: pytest.TempPathFactory) -> Path:
    page = tmp_path_factory.mktemp("html") / "report.html"
    done = portenv("inspect", core_archives.self_extracting, "--html", page)
    assert f"wrote {page}" in done.stderr
    return page


def report_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(portenv("inspect", path, "--json").stdout)
    return data


@pytest.fixture(params=["env.sh", "pixi-pack", "unpacked"])
def inspected(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """Each kind of input: a portenv archive, a pixi-pack tar, an unpacked env."""
    archives: Archives = request.getfixturevalue("core_archives")
    if request.param == "env.sh":
        return archives.self_extracting
    if request.param == "pixi-pack":
        pixi_pack: Path = request.getfixturevalue("core_pixi_pack")
        return pixi_pack
    portenv("unpack", archives.tar, "-o", tmp_path)
    return tmp_path / "env"


def test_the_page_renders_every_package(inspected: Path, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    portenv("inspect", inspected, "--html", page)
    rendered = render(page)
    assert rendered.console == []
    assert 'data-ready="1"' in rendered.dom, "the script ran to its end"
    data = report_json(inspected)
    table = rendered.dom.split('id="packages"')[1].split("</table>")[0]
    for package in data["packages"]:
        assert f"</span>{package['name']}</td>" in table, package["name"]
    boxes = re.findall(r'<g class="box pkg"[^>]*data-key="([^"]+)"', rendered.dom)
    assert sorted(boxes) == sorted(node["key"] for node in data["tree"]["children"])
    assert {p["key"] for p in data["packages"]} <= set(boxes), "one box per package"
    assert "GLIBC_" + data["glibc"]["floor"] in rendered.dom
    if data["archive"] is not None and data["archive"]["sha256"]:
        assert data["archive"]["sha256"] in rendered.dom


def test_sorting_and_zooming(report: Path, core_archives: Archives, tmp_path: Path) -> None:
    clicked = tmp_path / "clicked.html"
    clicked.write_text(report.read_text().replace("</body>", CLICK_NAME_THEN_PYTHON + "</body>"))
    rendered = render(clicked)
    assert rendered.console == []
    sorted_names = re.search(r'data-sorted="([^"]*)"', rendered.dom)
    assert sorted_names is not None
    names = [p["name"] for p in report_json(core_archives.self_extracting)["packages"]]
    packages = [n for n in sorted_names.group(1).split(",") if n in names]
    assert packages == sorted(names), "sorted by name after one click on its header"
    assert re.search(r'<th [^>]*data-sort="name"[^>]*aria-sort="ascending"', rendered.dom)
    crumbs = re.search(r'data-crumbs="([^"]*)"', rendered.dom)
    assert crumbs is not None
    assert "\u203apython (" in crumbs.group(1), "zoomed into python: the crumbs name it"


def test_the_check_catches_a_broken_page(report: Path, tmp_path: Path) -> None:
    """The console check can fail: a page whose script throws is seen as broken."""
    broken = tmp_path / "broken.html"
    broken.write_text(report.read_text().replace('"use strict";', '"use strict"; nope();', 1))
    rendered = render(broken)
    assert any("nope is not defined" in line for line in rendered.console), rendered.console
    assert 'data-ready="1"' not in rendered.dom


def test_a_screenshot(report: Path, tmp_path: Path) -> None:
    png = tmp_path / "report.png"
    screenshot(report, png, 1280, 900)
    width, height = struct.unpack(">II", png.read_bytes()[16:24])
    assert (width, height) == (1280, 900)
