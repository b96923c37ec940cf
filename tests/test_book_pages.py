"""What a reader sees on a page is what the notebook stores, and what nbval checks.

The book is built from the outputs stored in ``book/*.ipynb`` (``execute_notebooks: "off"``).
These tests read the built HTML (``make book``) and check that every text output stored in a
chapter appears verbatim on its page, in order, and that the downloadable notebook is the stored
one. Outside CI they skip when the book is not built; in CI that is a failure.
"""

import hashlib
import os
import re
from pathlib import Path

import nbformat
import pytest
from bs4 import BeautifulSoup

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "_build" / "html"
CHAPTERS = sorted(p.stem for p in (ROOT / "book").glob("[0-9][0-9]*_*.ipynb"))
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# myst-nb shows the richest output it can render; text/plain is shown only when nothing richer
# is there.
RICHER_THAN_TEXT = {
    "application/vnd.jupyter.widget-view+json",
    "application/javascript",
    "text/html",
    "image/svg+xml",
    "image/png",
    "image/jpeg",
    "text/markdown",
    "text/latex",
}


def _require_built(chapter: str) -> Path:
    page = SITE / "book" / f"{chapter}.html"
    if not page.is_file():
        reason = f"{page} is not built: run `make book`"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return page


def _shown_texts(notebook) -> list[str]:
    """The text outputs the page must show, in order, with trailing spaces of lines dropped."""
    texts = []
    for cell in notebook.cells:
        if cell.cell_type != "code" or "remove-output" in cell.metadata.get("tags", []):
            continue
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                text = output.text
            elif output.output_type in ("execute_result", "display_data"):
                if "scrapbook" in output.get("metadata", {}):
                    continue  # a glued value: shown where the prose pastes it
                if set(output.data) & RICHER_THAN_TEXT or "text/plain" not in output.data:
                    continue
                text = output.data["text/plain"]
            else:
                continue
            text = _normalise(ANSI.sub("", text))
            if text:
                texts.append(text)
    return texts


def _normalise(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def _page_text(page: Path) -> str:
    soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
    blocks = [
        pre.get_text() for out in soup.select("div.cell_output") for pre in out.find_all("pre")
    ]
    return "\n".join(_normalise(block) for block in blocks)


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_stored_text_output_is_on_the_page(chapter):
    page_text = _page_text(_require_built(chapter))
    notebook = nbformat.read(ROOT / "book" / f"{chapter}.ipynb", as_version=4)
    texts = _shown_texts(notebook)
    assert texts, f"{chapter}: no text outputs stored"
    position = 0
    for text in texts:
        found = page_text.find(text, position)
        assert found >= 0, f"{chapter}: stored output not on the page (in order):\n{text}"
        position = found + len(text)


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_download_is_the_stored_notebook(chapter):
    _require_built(chapter)
    download = SITE / "_sources" / "book" / f"{chapter}.ipynb"
    stored = ROOT / "book" / f"{chapter}.ipynb"
    # Compared by digest: a failing comparison of two multi-megabyte byte strings would make
    # pytest compute their diff for many minutes.
    same = (
        hashlib.sha256(download.read_bytes()).digest()
        == hashlib.sha256(stored.read_bytes()).digest()
    )
    assert same, f"{download} differs from {stored}"


def test_each_chapter_stores_its_outputs():
    """A chapter whose outputs were never stored would build into a page with no outputs."""
    for chapter in CHAPTERS:
        notebook = nbformat.read(ROOT / "book" / f"{chapter}.ipynb", as_version=4)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert code, chapter
        missing = [i for i, cell in enumerate(code) if cell.get("execution_count") is None]
        assert missing == [], f"{chapter}: code cells never executed: {missing}"
