"""Requirements-file lines: local paths made absolute from the right folder, pins, bad paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from portenv.errors import InputError
from portenv.source.reqfiles import absolute_requirements, logical_lines, pinned_hashes

A, B = "a" * 64, "b" * 64


def project(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "pyproject.toml").write_text('[project]\nname = "p"\nversion = "1"\n')
    return folder


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """app/ (a project with requirements.txt), lib/, wheels/, other/nested.txt."""
    project(tmp_path / "app")
    project(tmp_path / "lib")
    project(tmp_path / "other" / "sub")
    (tmp_path / "wheels").mkdir()
    (tmp_path / "wheels" / "tool-1.0-py3-none-any.whl").write_bytes(b"zip")
    (tmp_path / "other" / "nested.txt").write_text("./sub\n")
    return tmp_path


def copied(tree: Path, text: str, cwd: Path | None = None) -> str:
    requirements = tree / "app" / "requirements.txt"
    requirements.write_text(text)
    scratch = tree / "scratch"
    scratch.mkdir(exist_ok=True)
    found = absolute_requirements([requirements], [], cwd or tree, scratch)
    return found.files[0].read_text()


def test_paths_are_taken_from_the_file_s_folder(tree: Path) -> None:
    text = (
        ".\n"
        "-e ../lib\n"
        "--editable=../lib[dev]\n"
        "../wheels/tool-1.0-py3-none-any.whl --hash=sha256:" + A + "\n"
        "tool2 @ ../lib\n"
        "--find-links ../wheels\n"
        "idna>=3 ; python_version >= '3.8'\n"
        "--index-url https://index.invalid/simple\n"
    )
    assert copied(tree, text).splitlines() == [
        f"{tree / 'app'}",
        f"-e {tree / 'lib'}",
        f"--editable {tree / 'lib'}[dev]",
        f"{tree / 'wheels' / 'tool-1.0-py3-none-any.whl'} --hash=sha256:{A}",
        f"tool2 @ {tree / 'lib'}",
        f"--find-links {tree / 'wheels'}",
        "idna>=3 ; python_version >= '3.8'",
        "--index-url https://index.invalid/simple",
    ]


def test_an_included_file_is_copied_with_its_own_folder_as_base(tree: Path) -> None:
    line = copied(tree, "-r ../other/nested.txt\n").strip()
    option, nested = line.split()
    assert option == "-r" and Path(nested).parent == tree / "scratch"
    assert Path(nested).read_text() == f"{tree / 'other' / 'sub'}\n"


def test_with_lines_are_taken_from_the_current_folder(tree: Path) -> None:
    scratch = tree / "scratch"
    scratch.mkdir()
    found = absolute_requirements([], ["./lib", "-e lib", "idna"], tree, scratch)
    assert found.files[0].read_text().splitlines() == [
        str(tree / "lib"),
        f"-e {tree / 'lib'}",
        "idna",
    ]
    assert found.originals == {str(found.files[0]): "--with"}


@pytest.mark.parametrize(
    ("line", "error", "hint"),
    [
        pytest.param(
            "-e ./nothere",
            "{req}:2: local path does not exist: {tree}/app/nothere",
            "fix the path; it is taken relative to the folder of {req}",
            id="editable",
        ),
        pytest.param(
            "./gone-1.0-py3-none-any.whl",
            "{req}:2: local path does not exist: {tree}/app/gone-1.0-py3-none-any.whl",
            "fix the path; it is taken relative to the folder of {req}",
            id="wheel",
        ),
        pytest.param(
            "../wheels",
            "{req}:2: {tree}/wheels is not a Python project (no pyproject.toml or setup.py)",
            "name the folder that holds the project's pyproject.toml",
            id="not-a-project",
        ),
        pytest.param(
            "x @ file:///nowhere/x-1.0.tar.gz",
            "{req}:2: local path does not exist: /nowhere/x-1.0.tar.gz",
            "fix the path; it is taken relative to the folder of {req}",
            id="file-url",
        ),
    ],
)
def test_a_bad_local_path_is_named_with_its_line(
    tree: Path, line: str, error: str, hint: str
) -> None:
    req = tree / "app" / "requirements.txt"
    with pytest.raises(InputError) as caught:
        copied(tree, f"idna\n{line}\n")
    assert caught.value.message == error.format(req=req, tree=tree)
    assert caught.value.hint == hint.format(req=req)


def test_pins_come_from_hash_options_and_url_fragments(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        f"Fast==1.0 \\\n    --hash=sha256:{B} \\\n    --hash=sha256:{A.upper()}\n"
        f"six @ https://files.invalid/six-1.17.0-py3-none-any.whl#sha256={B}\n"
        f"./dist/Tool_X-2.0-py3-none-any.whl --hash=sha256:{A}\n"
        f"./dist/sdisty-3.0.tar.gz#sha256={B}\n"
        "plain>=1  # no hash\n"
        "-e ./folder\n"
    )
    assert pinned_hashes(requirements) == {
        "fast": {A, B},
        "six": {B},
        "tool-x": {A},
        "sdisty": {B},
    }


def test_logical_lines_join_continuations_and_drop_comments() -> None:
    text = "# head\nidna \\\n  >=3  # why\n\nfoo @ https://h.invalid/f.whl#sha256=abc\n"
    assert logical_lines(text) == [
        (2, "idna    >=3"),
        (5, "foo @ https://h.invalid/f.whl#sha256=abc"),
    ]
