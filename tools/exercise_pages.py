"""Sphinx extension: the book's "Exercises" part, written from each exercise at build time.

Loaded by ``_config.yml`` (``sphinx.local_extensions``). Before Sphinx reads any page, every
``exercises/NN_name/`` folder with a ``source.ipynb`` is released exactly as ``cnnlab release``
releases it for students (solutions replaced by ``raise NotImplementedError()``, outputs
cleared, hidden tests absent), and written to:

- ``book/exercises/NN_name.ipynb``: the student notebook, shown as the exercise's page, with one
  Markdown cell added at the top that links the download below;
- ``book/exercises/NN_name.zip``: the student notebook and its visible tests
  (``visible_tests.json``, ``visible_tests.npz``), the folder a student unpacks and opens in
  Jupyter, where ``check(...)`` finds its tests.

Nothing under ``book/exercises/`` is stored in the repository (``.gitignore``): the pages cannot
drift from the exercises, and no instructor source is ever copied into the book. A file is
rewritten only when its bytes change, so an unchanged exercise does not rebuild its page.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import nbformat
from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.util import logging

logger = logging.getLogger(__name__)

PAGES = Path("book") / "exercises"
# A fixed timestamp for the zip's entries, so the same exercise gives the same bytes.
ZIP_DATE = (2026, 1, 1, 0, 0, 0)


def download_cell(name: str) -> nbformat.NotebookNode:
    """The Markdown cell put at the top of an exercise's page: how to get and run it."""
    return nbformat.v4.new_markdown_cell(
        f"To solve this exercise, download {{download}}`{name}.zip <{name}.zip>` (this notebook "
        "and its visible tests), unpack it, and open `student.ipynb` in Jupyter in the unpacked "
        "folder, with `cnnlab` installed. Each `check(...)` cell then runs the visible tests of "
        "the function above it.",
        id="download",
    )


def student_files(exercise_dir: Path) -> dict[str, bytes]:
    """The files ``cnnlab release`` writes for ``exercise_dir``, by name."""
    import tempfile

    from cnnlab.exercises.releasing import release

    with tempfile.TemporaryDirectory() as tmp:
        folder = release(exercise_dir, tmp)
        return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def zipped(files: dict[str, bytes]) -> bytes:
    """``files`` as a zip archive with fixed timestamps (the same files give the same bytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=ZIP_DATE), data)
    return buffer.getvalue()


def page(name: str, student_notebook: bytes) -> bytes:
    """The exercise's page: the student notebook with the download cell after its title."""
    notebook = nbformat.reads(student_notebook.decode(), as_version=4)
    notebook.cells.insert(1, download_cell(name))
    return nbformat.writes(notebook).encode() + b"\n"


def write_if_changed(path: Path, data: bytes) -> None:
    if not path.is_file() or path.read_bytes() != data:
        path.write_bytes(data)


def write_exercise_pages(app: Sphinx, config: Config) -> None:
    """Release every exercise into ``book/exercises/`` (see the module docstring)."""
    source = Path(app.srcdir)
    out = source / PAGES
    out.mkdir(parents=True, exist_ok=True)
    exercises = sorted(p.parent for p in (source / "exercises").glob("*/source.ipynb"))
    wanted = set()
    for exercise_dir in exercises:
        name = exercise_dir.name
        files = student_files(exercise_dir)
        write_if_changed(out / f"{name}.ipynb", page(name, files["student.ipynb"]))
        write_if_changed(out / f"{name}.zip", zipped(files))
        wanted |= {f"{name}.ipynb", f"{name}.zip"}
    for stale in out.iterdir():
        if stale.is_file() and stale.name not in wanted:
            stale.unlink()
    logger.info(f"exercise pages: {len(exercises)} released into {PAGES}")


def setup(app: Sphinx) -> dict:
    # Before sphinx-external-toc reads _toc.yml (priority 900), so the pages it lists exist.
    app.connect("config-inited", write_exercise_pages, priority=800)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
