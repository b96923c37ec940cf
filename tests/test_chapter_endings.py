"""Every chapter ends the same way: Summary, Exercises (its exercise page, 3 to 5 questions to
predict and a cell that checks them), References (the papers it cites, listed on its page)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "book").glob("*.ipynb"))
EXERCISES = {p.name for p in (ROOT / "exercises").glob("*") if (p / "source.ipynb").is_file()}
BIB_KEYS = set(re.findall(r"@\w+\{([^,\s]+),", (ROOT / "references.bib").read_text()))


def sections(notebook: Path) -> list[tuple[str, list[dict]]]:
    """The chapter's level-two sections, each with its cells (the heading's cell first)."""
    found: list[tuple[str, list[dict]]] = []
    for cell in json.loads(notebook.read_text())["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] != "markdown":
            if found:
                found[-1][1].append(cell)
            continue
        # A Markdown cell may hold several sections: split it at its headings.
        for part in re.split(r"^(?=## )", source, flags=re.M):
            heading = re.match(r"## (.+)", part)
            if heading:
                found.append((heading.group(1).strip(), []))
            if found:
                found[-1][1].append({"cell_type": "markdown", "source": [part]})
    return found


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_ends_with_summary_exercises_and_references(chapter):
    assert [name for name, _ in sections(chapter)][-3:] == ["Summary", "Exercises", "References"]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_exercises_section_links_an_exercise_and_checks_its_questions(chapter):
    cells = dict(sections(chapter))["Exercises"]
    prose = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    linked = set(re.findall(r"\{doc\}`(?:[^`<]*<)?exercises/([\w]+)>?`", prose))
    assert linked and linked <= EXERCISES, f"links {linked}; exercises are {sorted(EXERCISES)}"
    questions = re.findall(r"^\d+\. ", prose, re.M)
    assert 3 <= len(questions) <= 5, f"{len(questions)} questions"
    assert any(c["cell_type"] == "code" for c in cells), "no cell checks the predictions"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_references_list_what_the_chapter_cites(chapter):
    text = chapter.read_text()
    cells = dict(sections(chapter))["References"]
    bibliography = "".join("".join(c["source"]) for c in cells)
    assert "```{bibliography}" in bibliography and ":filter: docname in docnames" in bibliography
    prefix = re.search(r":keyprefix: (\S+)", bibliography).group(1)
    cited = [
        key.strip()
        for keys in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", json.loads(json.dumps(text)))
        for key in keys.split(",")
    ]
    assert cited, "the chapter cites nothing"
    for key in cited:
        assert key.startswith(prefix), f"{key} lacks the chapter's prefix {prefix}"
        assert key[len(prefix) :] in BIB_KEYS, f"{key} is not in references.bib"
