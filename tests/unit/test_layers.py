"""Data flows forward: a module imports only from its own stage or an earlier one."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "portenv"
SHARED = {
    "portenv",
    "portenv.errors",
    "portenv.format",
    "portenv.model",
    "portenv.reporting",
    "portenv.platforms",
    "portenv.elf",
}
ORDER = [
    "_rattler",
    "_uv",
    "project",
    "source",
    "fetch",
    "stage",
    "seal",
    "write",
    "pack",
    "convert",
    "unpack",
    "delta",
    "author",
    "inspect",
    "cli",
    "__main__",
]


def stage_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] == "portenv"}


MODULES = sorted(p for p in SRC.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(SRC)) for p in MODULES])
def test_imports_flow_forward(path: Path) -> None:
    relative = path.relative_to(SRC).with_suffix("")
    module = ".".join(["portenv", *relative.parts]).removesuffix(".__init__")
    own = stage_of(module)
    for imported in imports(path):
        if own == "target":
            pytest.fail(f"{module} runs on the target and must not import {imported}")
        if (
            imported in SHARED
            or imported == "portenv.__version__"
            or any(imported.startswith(s + ".") for s in SHARED - {"portenv"})
        ):
            continue
        other = stage_of(imported)
        if other in ORDER and own in ORDER:
            assert ORDER.index(other) <= ORDER.index(own), f"{module} reaches back to {imported}"
        elif other == "target":
            continue  # the target code is shipped as data by seal and write
        else:
            assert other == own, f"{module} imports {imported} from an unknown stage"


def third_party(path: Path) -> set[str]:
    """The top-level names of what `path` imports from outside portenv."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
    return found


def test_only_the_rattler_package_imports_rattler() -> None:
    """rattler's objects and errors are translated in one place (portenv._rattler)."""
    importers = {str(p.relative_to(SRC)) for p in MODULES if "rattler" in third_party(p)}
    assert importers, "nothing imports rattler: the check itself is broken"
    assert all(name.startswith("_rattler/") for name in importers), importers


def test_only_the_cli_imports_inspect() -> None:
    """inspect reads what the pipeline wrote, at its end: no stage may depend on it."""
    importers = {
        str(p.relative_to(SRC))
        for p in MODULES
        if stage_of(".".join(["portenv", *p.relative_to(SRC).parts])) != "inspect"
        and any(name.split(".")[:2] == ["portenv", "inspect"] for name in imports(p))
    }
    assert importers == {"cli/inspect.py"}, importers


def test_only_the_uv_adapter_imports_uv() -> None:
    """uv is located, run and told the target's platform in one place (portenv._uv)."""
    importers = {str(p.relative_to(SRC)) for p in MODULES if "uv" in third_party(p)}
    assert importers == {"_uv.py"}, importers
