"""Notebook handling: solution markers, release to students, checksums, code extraction.

The instructor notebook carries nbgrader-compatible cell metadata::

    {"nbgrader": {"grade": false, "solution": true, "locked": false,
                  "grade_id": "corr2d", "schema_version": 3}}

and marks solution code with ``### BEGIN SOLUTION`` / ``### END SOLUTION`` lines. Release
replaces each marked block by ``raise NotImplementedError()`` at the block's indentation, clears
outputs and records a checksum of every locked cell in ``metadata.cnnlab.checksum``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cnnlab.exercises.safetext import code_span

if TYPE_CHECKING:  # nbformat takes most of a second to import: only where it is needed
    import nbformat

__all__ = [
    "strip_solutions",
    "cell_checksum",
    "release_notebook",
    "read_submission",
    "SubmissionCode",
    "MAX_NOTEBOOK_BYTES",
]

MAX_NOTEBOOK_BYTES = 20 * 1024 * 1024
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
_MAGIC = re.compile(r"^\s*[%!]")


def strip_solutions(source: str) -> str:
    r"""Replace each ``### BEGIN/END SOLUTION`` block by ``raise NotImplementedError()``.

    Examples
    --------
    >>> cell = "def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION"
    >>> print(strip_solutions(cell))
    def f(x):
        # YOUR CODE HERE
        raise NotImplementedError()
    """
    out: list[str] = []
    inside = False
    for line in source.splitlines():
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError(f"nested {BEGIN!r} in cell:\n{source}")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out += [f"{indent}# YOUR CODE HERE", f"{indent}raise NotImplementedError()"]
        elif stripped == END:
            if not inside:
                raise ValueError(f"{END!r} without {BEGIN!r} in cell:\n{source}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{BEGIN!r} without {END!r} in cell:\n{source}")
    return "\n".join(out)


def cell_checksum(cell: dict) -> str:
    r"""SHA-256 of a cell's type and source (whitespace at the ends ignored).

    Examples
    --------
    >>> a = cell_checksum({"cell_type": "code", "source": "x = 1\n"})
    >>> a == cell_checksum({"cell_type": "code", "source": "x = 1"})
    True
    >>> a == cell_checksum({"cell_type": "markdown", "source": "x = 1"})
    False
    """
    source = cell.get("source", "")
    if isinstance(source, list):
        source = "".join(source)
    return hashlib.sha256(f"{cell.get('cell_type')}\n{source.strip()}".encode()).hexdigest()


def _nbgrader(cell: dict) -> dict:
    """A cell's nbgrader metadata; empty where it is missing or not a mapping (a submission may
    hold anything there)."""
    meta = cell.get("metadata", {})
    info = meta.get("nbgrader", {}) if isinstance(meta, dict) else {}
    return info if isinstance(info, dict) else {}


def release_notebook(source_path: str | Path, exercise_name: str) -> nbformat.NotebookNode:
    """Return the student version of the instructor notebook ``source_path``.

    Solutions are replaced by ``raise NotImplementedError()``, outputs and execution counts are
    cleared, and every locked cell gets ``metadata.cnnlab.checksum``.
    """
    import nbformat

    nb = nbformat.read(str(source_path), as_version=4)
    for cell in nb.cells:
        info = _nbgrader(cell)
        if cell.cell_type == "code":
            if info.get("solution") or BEGIN in cell.source:
                cell.source = strip_solutions(cell.source)
            cell.outputs = []
            cell.execution_count = None
        if info.get("locked") or info.get("grade"):
            cell.metadata.setdefault("cnnlab", {})["checksum"] = cell_checksum(cell)
    nb.metadata["cnnlab"] = {"exercise": exercise_name}
    return nb


@dataclass
class SubmissionCode:
    """The code of a submitted notebook, ready for the worker, and what was noticed reading it."""

    cells: list[tuple[int, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    invalid: str | None = None


def _strip_magics(index: int, source: str, notes: list[str]) -> str:
    lines = source.splitlines()
    if lines and lines[0].lstrip().startswith("%%"):
        notes.append(f"cell {index}: cell magic {code_span(lines[0].strip()[:60])} skipped")
        return ""
    kept = []
    for line in lines:
        if _MAGIC.match(line):
            notes.append(f"cell {index}: IPython line {code_span(line.strip()[:60])} skipped")
            kept.append(line[: len(line) - len(line.lstrip())] + "pass")
        else:
            kept.append(line)
    return "\n".join(kept)


def _read_regular_file(path: Path) -> bytes:
    """The bytes of ``path``, which must be a regular file itself (not a symbolic link, FIFO,
    device or folder) of at most ``MAX_NOTEBOOK_BYTES``; ``ValueError`` says why not."""
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise ValueError(
            f"the submission is a symbolic link (to {os.readlink(path)!r}), not a notebook file"
        )
    if not stat.S_ISREG(info.st_mode):
        raise ValueError("the submission is not a regular file (a FIFO, device or folder)")
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # swapped after the lstat
            raise ValueError("the submission is not a regular file")
        if info.st_size > MAX_NOTEBOOK_BYTES:
            raise ValueError(
                f"notebook is {info.st_size} bytes, over the {MAX_NOTEBOOK_BYTES} byte limit"
            )
        chunks, total = [], 0
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
            total += len(chunk)
            if total > MAX_NOTEBOOK_BYTES:
                raise ValueError(f"notebook is over the {MAX_NOTEBOOK_BYTES} byte limit")
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_submission(path: str | Path, source: Mapping | None = None) -> SubmissionCode:
    """Read a submitted notebook; never raises on bad input (``invalid`` says why).

    Code cells are returned in order, with IPython magics and shell lines skipped (noted).
    When ``source`` (the instructor notebook) is given, locked cells that are missing, edited or
    of another type are noted.
    """
    result = SubmissionCode()
    path = Path(path)
    try:
        data = _read_regular_file(path)
    except ValueError as error:
        result.invalid = str(error)
        return result
    except OSError as error:
        result.invalid = f"not a readable notebook: {type(error).__name__}: {str(error)[:300]}"
        return result
    try:
        nb = json.loads(data.decode("utf-8"))
        if not isinstance(nb, dict):
            raise ValueError("the notebook is not a JSON object")
        if nb.get("nbformat", 0) < 4:  # only then is nbformat (slow to import) needed
            import nbformat

            nb = nbformat.convert(nbformat.from_dict(nb), 4)
        cells = nb["cells"]
        if not isinstance(cells, list):
            raise ValueError("'cells' is not a list")
    except Exception as error:  # noqa: BLE001 (any malformed file)
        result.invalid = f"not a readable notebook: {type(error).__name__}: {str(error)[:300]}"
        return result
    by_id: dict[str, dict] = {}
    for index, cell in enumerate(cells):
        if not isinstance(cell, dict):
            result.notes.append(f"cell {index}: not a cell object, ignored")
            continue
        grade_id = _nbgrader(cell).get("grade_id")
        if isinstance(grade_id, str):
            by_id[grade_id] = cell
        source_text = cell.get("source", "")
        if isinstance(source_text, list):
            source_text = "".join(str(s) for s in source_text)
        if cell.get("cell_type") == "code" and isinstance(source_text, str):
            code = _strip_magics(index, source_text, result.notes)
            if code.strip():
                result.cells.append((index, code))
    source_cells = [c for c in (source or {}).get("cells", []) if isinstance(c, dict)]
    if source is not None:
        for cell in source_cells:
            info = _nbgrader(cell)
            if not (info.get("locked") or info.get("grade")) or "grade_id" not in info:
                continue
            grade_id = info["grade_id"]
            theirs = by_id.get(grade_id)
            if theirs is None:
                result.notes.append(f"locked cell `{grade_id}` is missing")
            elif theirs.get("cell_type") != cell.get("cell_type"):
                result.notes.append(
                    f"locked cell `{grade_id}` changed type from {cell.get('cell_type')} "
                    f"to {theirs.get('cell_type')}"
                )
            elif cell_checksum(theirs) != cell_checksum(cell):
                result.notes.append(f"locked cell `{grade_id}` was edited")
        for cell in source_cells:
            info = _nbgrader(cell)
            theirs = by_id.get(info.get("grade_id", ""))
            if info.get("solution") and theirs is not None and theirs.get("cell_type") != "code":
                result.notes.append(
                    f"answer cell `{info['grade_id']}` was changed to a "
                    f"{theirs.get('cell_type')} cell"
                )
    return result
