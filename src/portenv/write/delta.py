"""What an update from one environment to the next carries, and the update file itself.

The trees are compared in the payload's form (docs/format.md, "Updates"): a file is shipped
when it is new, its content or kind changed, or its relocation entry changed; the relocation
manifest and the files it lists as text (small: scripts and configuration) are always shipped,
so that every file kept is a hard link of the old one. The update is a portenv container like
an archive (the same meta block and payload code, `format=update1`), whose payload holds the
plan, the files shipped and the two target scripts that apply it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from portenv.format import UPDATE_KEYS
from portenv.model import PackMeta, RelocationManifest
from portenv.reporting import Reporter
from portenv.seal import SealedPrefix
from portenv.target.update import MANIFEST, PLAN, drop_derived, identity
from portenv.write import WrittenArchive, write_archive

__all__ = ["DeltaPlan", "Tree", "plan_delta", "write_update"]

Listing = Sequence[Sequence[str]]
"""``[path, kind, digest or link target]`` per path, as portenv.target.update lists a tree."""


@dataclass(frozen=True)
class Tree:
    """One environment as its payload holds it: the listing and the relocation manifest."""

    listing: Listing
    manifest: Mapping[str, object]

    def comparable(self) -> list[list[str]]:
        """The listing the target computes for this tree once unpacked (no derived bytecode)."""
        return drop_derived([list(e) for e in self.listing], dict(self.manifest))

    def entries(self) -> dict[str, object]:
        files = self.manifest.get("files", [])
        assert isinstance(files, list)
        return {str(f["path"]): f for f in files}


@dataclass(frozen=True)
class DeltaPlan:
    """What the update does: `new` lists the new tree, each file marked ``old`` (kept from the
    old tree) or ``update`` (shipped in `ship`)."""

    from_id: str
    to_id: str
    old: list[list[str]]
    new: list[list[str]]
    ship: tuple[str, ...]
    adds: int
    changes: int
    removes: int

    def to_json(self) -> dict[str, object]:
        return {
            "format": 1,
            "from": self.from_id,
            "to": self.to_id,
            "old": self.old,
            "new": self.new,
        }


def plan_delta(old: Tree, new: Tree) -> DeltaPlan:
    """Compare two trees: what the new one keeps, what the update must carry."""
    before, after = old.comparable(), new.comparable()
    was = {p: (k, d) for p, k, d in before}
    now = {p: (k, d) for p, k, d in after}
    old_entries, new_entries = old.entries(), new.entries()
    listed: list[list[str]] = []
    ship: list[str] = []
    for path, kind, digest in after:
        source = "old"
        entry = new_entries.get(path)
        if kind in "fx" and (
            was.get(path) != (kind, digest)
            or path == MANIFEST
            or old_entries.get(path) != entry
            or (isinstance(entry, dict) and entry.get("mode") == "text")
        ):
            source = "update"
            ship.append(path)
        listed.append([path, kind, digest, source])
    return DeltaPlan(
        from_id=identity(before),
        to_id=identity(after),
        old=before,
        new=listed,
        ship=tuple(ship),
        adds=sum(p not in was for p in now),
        changes=sum(p in was and was[p] != now[p] for p in now),
        removes=sum(p not in now for p in was),
    )


def _target_script(name: str) -> bytes:
    return resources.files("portenv.target").joinpath(name).read_bytes()


def stage_update(stage: Path, plan: DeltaPlan) -> None:
    """Add the plan and the scripts that apply it to `stage`, which holds the files shipped
    under ``.portenv-update/files/``."""
    folder = stage / ".portenv-update"
    folder.mkdir(parents=True, exist_ok=True)
    (stage / PLAN).write_text(json.dumps(plan.to_json(), separators=(",", ":")), encoding="utf-8")
    (folder / "apply.py").write_bytes(_target_script("update.py"))
    (folder / "relocate.py").write_bytes(_target_script("relocate.py"))


@dataclass(frozen=True)
class UpdateFacts:
    """The two archives' facts the update's meta block carries."""

    old_meta: Mapping[str, str]
    new_meta: Mapping[str, str]


def write_update(
    stage: Path,
    plan: DeltaPlan,
    facts: UpdateFacts,
    output: Path,
    *,
    reporter: Reporter | None = None,
) -> WrittenArchive:
    """Write the update (an `update.sh` or `update.tar`) of the staged files and `plan`."""
    stage_update(stage, plan)
    new, old = facts.new_meta, facts.old_meta
    shipped = sum((stage / ".portenv-update" / "files" / p).stat().st_size for p in plan.ship)
    meta = PackMeta(
        platform=new["platform"],
        arch=new["arch"],
        glibc_floor=new["glibc_floor"],
        unpacked_kib=-(-shipped // 1024) + 64,
        files=sum(1 for _ in stage.rglob("*")),
        prefix_max=int(new["prefix_max"]),
        python=old["python"],
        env_name=new.get("env_name", "env"),
        portenv_version=new.get("portenv_version", ""),
        update=tuple(
            zip(
                UPDATE_KEYS,
                (
                    old["payload_sha256"],
                    new["payload_sha256"],
                    plan.from_id,
                    plan.to_id,
                    str(plan.adds),
                    str(plan.changes),
                    str(plan.removes),
                    new["python"],
                ),
                strict=True,
            )
        ),
    )
    manifest = RelocationManifest(prefix="", prefix_max=meta.prefix_max, python="", files=())
    written = write_archive(
        SealedPrefix(stage, manifest, meta),
        output,
        env_name=meta.env_name,
        compression=new.get("compression", "gzip"),
        reporter=reporter,
    )
    return replace(written, inventory=())


def copy_shipped(source: Path, stage: Path, path: str) -> None:
    """Put one shipped file (extracted from the new archive at `source`) into the stage."""
    target = stage / ".portenv-update" / "files" / path
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(source, target)
