"""pack() and convert() through a fake Source: the real chain (stage, seal, write), no network.

The fake source yields a plan of one conda package made in the test: a "python" whose
bin/python3.12 is this machine's `true` executable (a linked ELF, which is what staging and
sealing need; nothing runs it with --no-bytecode). So every writer runs for real in well under
a second, and the tests see what the runner does with a source: the writer it picks, the
refusals before any fetch, the warnings that reach the Reporter, no output half-written.
"""

from __future__ import annotations

import contextlib
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from portenv import _rattler
from portenv.convert import ConvertRequest, convert
from portenv.errors import CompatibilityError, InputError, OutputError, StageError, UsageError
from portenv.model import FetchedPackage, Plan, PypiPackage, StagedPrefix, Subdir
from portenv.pack import (
    Fetched,
    OpenedSource,
    PackRequest,
    PixiLockSource,
    PixiPackRequest,
    PixiPackSource,
    PlanRequest,
    PythonRequest,
    PythonSource,
    pack,
    source_for,
)
from portenv.platforms import host_subdir
from portenv.reporting import Reporter
from portenv.stage.wheels import FetchedWheel
from tests.support.condapkg import PackageFile, make_conda_package
from tests.unit.test_author_manifest import copy_project
from tests.unit.test_fetch import RecordingReporter

WARNING = "fake source: the lock is stale"
NOTE = "installed the fake folder as a copy"


def _fake_package(folder: Path, name: str, files: list[PackageFile]) -> FetchedPackage:
    path = make_conda_package(folder, name, files, version="3.12.1", subdir=host_subdir())
    return FetchedPackage(_rattler.read_package_file(path), path)


@pytest.fixture
def python(tmp_path: Path) -> FetchedPackage:
    """A conda "python" that stages and seals: bin/python3.12 is a real ELF executable."""
    true = shutil.which("true")
    assert true is not None
    files = [
        PackageFile("bin/python3.12", Path(true).read_bytes(), executable=True),
        PackageFile("lib/python3.12/os.py", b"# the stdlib's marker\n"),
    ]
    return _fake_package(tmp_path / "channel", "python", files)


@dataclass
class FakeOpened:
    """An OpenedSource whose answers the test sets, counting the fetches."""

    plan: Plan
    fetched: Fetched
    glibc: tuple[tuple[str, str], ...] = ()
    fetches: list[int] = field(default_factory=list)
    base: None = None
    unchecked: None = None

    def glibc_sources(self, limit: int) -> tuple[tuple[str, str], ...]:
        return self.glibc

    def fetch(self, jobs: int) -> Fetched:
        self.fetches.append(jobs)
        return self.fetched

    def seal_inputs(self, fetched: Fetched) -> dict[str, object] | None:
        return None

    def wheels(self, fetched: Fetched, staged: StagedPrefix) -> list[FetchedWheel]:
        return []

    def inventory(self, fetched: Fetched, wheels: list[FetchedWheel]) -> list[dict[str, object]]:
        return [{"kind": "conda", **f.package.to_json()} for f in fetched.conda]


@dataclass
class FakeSource:
    """A Source that warns through the reporter when opened, and knows whether it was closed."""

    opened: FakeOpened
    state: list[str] = field(default_factory=list)

    @contextlib.contextmanager
    def open(self, cache: Path, reporter: Reporter) -> Iterator[OpenedSource]:
        self.state.append("open")
        reporter.on_warning(WARNING)
        try:
            yield self.opened
        finally:
            self.state.append("closed")


def fake_source(tmp_path: Path, *packages: FetchedPackage, **plan: object) -> FakeSource:
    subdir = Subdir(host_subdir())
    the_plan = Plan(tmp_path, "fake", subdir, subdir, tuple(p.package for p in packages), (), ())
    the_plan = replace(the_plan, notes=(NOTE,), **plan)  # type: ignore[arg-type]
    return FakeSource(FakeOpened(the_plan, Fetched(tuple(packages), ())))


def request(source: FakeSource, output: Path, **options: object) -> PackRequest:
    """No bytecode (nothing could compile it), an option the pixi-pack writer refuses."""
    cache = output.parent / "cache"
    bytecode = "all" if options.get("format") == "pixi-pack" else "none"
    return PackRequest(source, output, cache=cache, bytecode=bytecode, **options)  # type: ignore[arg-type]


def test_the_portenv_writer_stages_seals_and_writes(tmp_path: Path, python: FetchedPackage) -> None:
    source = fake_source(tmp_path, python)
    reporter = RecordingReporter()
    written = pack(request(source, tmp_path / "env.sh", sbom=True), reporter)
    assert written.path.read_bytes().startswith(b"#!/bin/sh")
    assert written.meta is not None and written.meta.python == "bin/python3.12"
    assert [e["name"] for e in written.inventory] == ["python"]
    assert (tmp_path / "env.sh.sha256").read_text().split()[0] == written.sha256
    assert written.sbom is not None and written.sbom.is_file()
    assert ("warning", WARNING) in reporter.calls and ("info", f"note: {NOTE}") in reporter.calls
    assert source.state == ["open", "closed"] and source.opened.fetches == [8]
    assert not any((tmp_path / "cache" / "staging").iterdir()), "the scratch prefix is gone"


def test_the_plain_writer_is_chosen_by_the_format(tmp_path: Path, python: FetchedPackage) -> None:
    written = pack(request(fake_source(tmp_path, python), tmp_path / "env.tar.gz", format="tar.gz"))
    assert written.format_name == "tar.gz"
    with tarfile.open(written.path) as archive:
        assert "bin/python3.12" in [m.name.removeprefix("./") for m in archive.getmembers()]


def test_the_pixi_pack_writer_writes_the_fetched_files_and_stages_nothing(
    tmp_path: Path, python: FetchedPackage
) -> None:
    written = pack(request(fake_source(tmp_path, python), tmp_path / "env.tar", format="pixi-pack"))
    assert written.meta is None
    with tarfile.open(written.path) as archive:
        names = set(archive.getnames())
    assert {"pixi-pack.json", f"channel/{host_subdir()}/{python.path.name}"} <= names
    assert not (tmp_path / "cache" / "staging").exists()


def test_convert_runs_the_same_chain_from_a_pixi_pack(
    tmp_path: Path, python: FetchedPackage
) -> None:
    """A pixi-pack written by pack() converts, offline, into what pack() writes itself."""
    archive = tmp_path / "environment.tar"
    pack(request(fake_source(tmp_path, python), archive, format="pixi-pack"))
    cache = tmp_path / "cache"
    written = convert(ConvertRequest(archive, tmp_path / "env.sh", cache=cache))
    assert written.meta is not None and written.meta.python == "bin/python3.12"
    assert [(e["name"], e["from"]) for e in written.inventory] == [("python", "pixi-pack")]
    assert not any((cache / "staging").iterdir()), "the extracted pixi-pack is gone"


def test_convert_refuses_a_platform_before_extracting(tmp_path: Path) -> None:
    folder = tmp_path / "pack"
    folder.mkdir()
    (folder / "pixi-pack.json").write_text('{"version": "1", "platform": "win-64"}')
    with pytest.raises(InputError):
        convert(ConvertRequest(folder, tmp_path / "env.sh", cache=tmp_path / "cache"))
    assert not (tmp_path / "env.sh").exists() and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("output", ["env.sh", "env.tar"])
def test_problems_are_refused_before_any_fetch(
    tmp_path: Path, python: FetchedPackage, output: str
) -> None:
    source = fake_source(tmp_path, python, problems=("pypi package x: no wheel", "another"))
    options = {"format": "pixi-pack"} if output == "env.tar" else {}
    with pytest.raises(InputError, match=r"no wheel \(and 1 more\)"):
        pack(request(source, tmp_path / output, **options))
    assert source.opened.fetches == [] and source.state == ["open", "closed"]
    assert not (tmp_path / output).exists()


def test_a_glibc_above_the_ceiling_is_refused_before_any_fetch(
    tmp_path: Path, python: FetchedPackage
) -> None:
    source = fake_source(tmp_path, python)
    source.opened.glibc = (("2.34", "libfake.so"),)
    with pytest.raises(CompatibilityError, match=r"above --glibc 2\.28: libfake\.so"):
        pack(request(source, tmp_path / "env.sh", glibc="2.28"))
    assert source.opened.fetches == []


def test_the_pixi_pack_writer_refuses_what_must_be_built(tmp_path: Path) -> None:
    url = "https://example.invalid/fake-1.0.tar.gz"
    sdist = PypiPackage("fake", "1.0", url, "sdist", None, action="build")
    source = fake_source(tmp_path, pypi=(sdist,))
    with pytest.raises(InputError, match="fake must be built"):
        pack(request(source, tmp_path / "env.tar", format="pixi-pack"))
    assert source.opened.fetches == [] and not (tmp_path / "env.tar").exists()


def test_a_failed_stage_leaves_nothing_half_written(tmp_path: Path) -> None:
    """No python package: staging fails after the fetch; no output, no scratch left."""
    other = _fake_package(tmp_path / "channel", "other", [PackageFile("share/x", b"x\n")])
    source = fake_source(tmp_path, other)
    (tmp_path / "out").mkdir()
    with pytest.raises(StageError, match="no python package"):
        pack(request(source, tmp_path / "out" / "env.sh"))
    assert source.opened.fetches == [8] and source.state == ["open", "closed"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["cache"]
    assert not any((tmp_path / "out" / "cache" / "staging").iterdir())


def test_options_the_writer_ignores_are_refused_before_the_source_opens(tmp_path: Path) -> None:
    source = fake_source(tmp_path)
    with pytest.raises(UsageError, match="--entry"):
        pack(request(source, tmp_path / "env.tar", format="pixi-pack", entry="python"))
    assert source.state == []


def test_a_bad_output_is_refused_before_the_source_opens(tmp_path: Path) -> None:
    source = fake_source(tmp_path)
    with pytest.raises(OutputError, match="unknown output type"):
        pack(request(source, tmp_path / "env.zip.gz"))
    assert source.state == []


@pytest.mark.parametrize(
    ("made", "kind"),
    [
        pytest.param(PlanRequest(Path("p")), PixiLockSource, id="pixi-lock"),
        pytest.param(PythonRequest(Path("python3")), PythonSource, id="python"),
        pytest.param(PixiPackRequest(Path("environment.tar")), PixiPackSource, id="pixi-pack"),
    ],
)
def test_source_for_names_one_source_per_request(made: object, kind: type) -> None:
    assert type(source_for(made)) is kind  # type: ignore[arg-type]


def test_source_for_keeps_a_source_of_the_callers_own(tmp_path: Path) -> None:
    source = fake_source(tmp_path)
    assert source_for(source) is source


@pytest.mark.parametrize(
    "made",
    [
        pytest.param(PythonRequest(Path("python3")), id="python"),
        pytest.param(PixiPackRequest(Path("environment.tar")), id="pixi-pack"),
    ],
)
def test_only_a_lock_takes_injected_packages(made: PythonRequest | PixiPackRequest) -> None:
    with pytest.raises(UsageError, match="--inject"):
        source_for(made, inject=(Path("addon.conda"),))


def test_a_stale_lock_warns_through_the_reporter_when_opened(tmp_path: Path) -> None:
    """Library callers get the warning the CLI prints: the lock source reports it itself."""
    project = copy_project("webserver", tmp_path)
    manifest = project / "pixi.toml"
    manifest.write_text(manifest.read_text().replace('uvicorn = "*"', 'uvicorn = "*"\nzlib = "*"'))
    reporter = RecordingReporter()
    lock = PlanRequest(project, environment="prod", platform="linux-64")
    with source_for(lock).open(tmp_path / "cache", reporter) as opened:
        assert opened.plan.environment == "prod" and opened.base is None
    warnings = [str(m) for kind, m in reporter.calls if kind == "warning"]
    assert warnings and all(w.startswith("pixi.lock is stale: ") for w in warnings), warnings
    assert any("zlib" in w for w in warnings), warnings
