"""The book's first page links every chapter and every exercise, by the title each one has."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INTRO = (ROOT / "intro.md").read_text()
LINKS = dict((target, text) for text, target in re.findall(r"\[([^\]]+)\]\(([^)]+)\)", INTRO))


def title(notebook: Path) -> str:
    """The notebook's first level-one heading."""
    cells = json.loads(notebook.read_text())["cells"]
    for cell in cells:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    raise AssertionError(f"{notebook} has no title")


@pytest.mark.parametrize("chapter", sorted((ROOT / "book").glob("*.ipynb")), ids=lambda p: p.stem)
def test_intro_links_each_chapter_by_its_title(chapter):
    target = f"book/{chapter.name}"
    assert target in LINKS, f"intro.md does not link {target}"
    assert LINKS[target] == title(chapter), f"intro.md calls {target} {LINKS[target]!r}"


@pytest.mark.parametrize(
    "source", sorted((ROOT / "exercises").glob("*/source.ipynb")), ids=lambda p: p.parent.name
)
def test_intro_links_each_exercise_by_its_title(source):
    target = f"book/exercises/{source.parent.name}.ipynb"
    assert target in LINKS, f"intro.md does not link {target}"
    assert LINKS[target] == title(source), f"intro.md calls {target} {LINKS[target]!r}"


def test_intro_says_what_a_reader_needs_first():
    section = INTRO.split("## What you need first", 1)[-1]
    for topic in ("NumPy", "PyTorch", "autograd", "optimiser step"):
        assert topic in section, f"the prerequisites do not mention {topic}"
