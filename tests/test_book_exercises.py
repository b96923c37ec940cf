"""The book's "Exercises" part: one page per exercise, released for students, never a solution.

Read from the built site (``make book``), as a reader gets it. The solution lines are taken
from each exercise's instructor notebook by its own markers, independently of the release code.
"""

from __future__ import annotations

import html
import io
import json
import re
import zipfile
from pathlib import Path

import pytest
from built_site import ROOT, SITE, require

EXERCISES = sorted(p.parent.name for p in (ROOT / "exercises").glob("*/source.ipynb"))
TAG = re.compile(r"<[^>]+>")


def page_text(name: str) -> str:
    """The text a reader sees on the exercise's page (tags removed, entities decoded)."""
    path = SITE / "book" / "exercises" / f"{name}.html"
    require(path.is_file(), f"{path} is not built: run `make book`")
    return html.unescape(TAG.sub("", path.read_text()))


def source_cells(name: str) -> list[str]:
    notebook = json.loads((ROOT / "exercises" / name / "source.ipynb").read_text())
    return ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]


def solution_lines(name: str) -> set[str]:
    """Lines between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` that appear nowhere else
    in the instructor's notebook, not even inside a longer line (so a line such as
    ``return out`` that the given code also holds is not counted), stripped, of at least 8
    characters."""
    inside, outside = set(), set()
    for source in source_cells(name):
        solving = False
        for line in source.splitlines():
            stripped = line.strip()
            if stripped.startswith("### BEGIN SOLUTION"):
                solving = True
            elif stripped.startswith("### END SOLUTION"):
                solving = False
            elif stripped:
                (inside if solving else outside).add(stripped)
    given = " ".join(" ".join(outside).split())
    return {
        line
        for line in inside - outside
        if len(line) >= 8 and not line.startswith("#") and " ".join(line.split()) not in given
    }


def hidden_test_names(name: str) -> list[str]:
    from cnnlab.exercises.spec import load_exercise

    return [test.name for test in load_exercise(ROOT / "exercises" / name).tests if test.hidden]


def test_every_exercise_has_a_page_in_the_toc():
    require((SITE / "index.html").is_file(), f"the book is not built in {SITE}: run `make book`")
    assert EXERCISES, "no exercise found under exercises/"
    index = (SITE / "intro.html").read_text()
    for name in EXERCISES:
        assert (SITE / "book" / "exercises" / f"{name}.html").is_file(), f"no page for {name}"
        assert f"book/exercises/{name}.html" in index, f"{name} is not in the book's contents"


@pytest.mark.parametrize("name", EXERCISES)
def test_exercise_page_holds_no_solution(name):
    text = page_text(name)
    assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text
    lines = solution_lines(name)
    assert lines, f"{name}: found no solution lines in source.ipynb to look for"
    # Whitespace is collapsed on both sides: the page's code blocks keep their lines, but
    # highlighting may split them into spans.
    flat = " ".join(text.split())
    leaked = sorted(line for line in lines if " ".join(line.split()) in flat)
    assert not leaked, f"{name}: the page shows solution code: {leaked[:5]}"
    assert "NotImplementedError" in text, f"{name}: the page is not the student version"


@pytest.mark.parametrize("name", EXERCISES)
def test_exercise_page_names_no_hidden_test(name):
    text = page_text(name)
    shown = [t for t in hidden_test_names(name) if re.search(rf"\b{re.escape(t)}\b", text)]
    assert not shown, f"{name}: the page names hidden tests {shown}"


@pytest.mark.parametrize("name", EXERCISES)
def test_exercise_download_is_the_student_folder(name):
    page = (SITE / "book" / "exercises" / f"{name}.html").read_text()
    links = re.findall(rf'href="([^"]*/{re.escape(name)}\.zip)"', page)
    assert links, f"{name}: the page links no {name}.zip"
    archive = (SITE / "book" / "exercises" / links[0]).resolve()
    with zipfile.ZipFile(io.BytesIO(archive.read_bytes())) as zipped:
        names = set(zipped.namelist())
        student = json.loads(zipped.read("student.ipynb"))
        visible = json.loads(zipped.read("visible_tests.json"))
    assert names == {"student.ipynb", "visible_tests.json", "visible_tests.npz"}
    code = "\n".join("".join(c["source"]) for c in student["cells"] if c["cell_type"] == "code")
    assert "BEGIN SOLUTION" not in code
    assert not any(line in code for line in solution_lines(name))
    visible_names = {entry["name"] for entry in visible["tests"]}
    assert visible_names and not visible_names & set(hidden_test_names(name))


def test_student_notebook_download_runs_its_checks(tmp_path):
    """Unpacked, the first exercise's student notebook finds its visible tests: ``check`` runs
    and reports the stub as not implemented (not a missing-file error)."""
    from cnnlab.exercises import check

    name = EXERCISES[0]
    page = (SITE / "book" / "exercises" / f"{name}.html").read_text()
    link = re.findall(rf'href="([^"]*/{re.escape(name)}\.zip)"', page)[0]
    with zipfile.ZipFile((SITE / "book" / "exercises" / link).resolve()) as zipped:
        zipped.extractall(tmp_path)
    visible = json.loads((tmp_path / "visible_tests.json").read_text())
    function = visible["tests"][0]["function"]

    def stub(*args, **kwargs):
        raise NotImplementedError()

    out = io.StringIO()
    from contextlib import redirect_stdout

    with redirect_stdout(out):
        check(function, stub, folder=tmp_path)
    assert "not implemented" in out.getvalue().lower(), out.getvalue()


def test_pages_are_written_from_the_exercises_at_build_time():
    """No exercise page is stored in the repository: ``book/exercises/`` is ignored by git."""
    ignored = (ROOT / ".gitignore").read_text().split()
    assert "/book/exercises/" in ignored
    tracked = Path(ROOT / "book" / "exercises")
    if tracked.is_dir():
        import subprocess

        listed = subprocess.run(
            ["git", "ls-files", "book/exercises"], cwd=ROOT, capture_output=True, text=True
        )
        assert listed.returncode != 0 or not listed.stdout.strip()
