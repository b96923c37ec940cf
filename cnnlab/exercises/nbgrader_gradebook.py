"""Scores of a grading run into nbgrader's gradebook, through nbgrader's own API.

nbgrader releases and collects the notebooks; ``cnnlab grade`` grades them; this module writes
the scores where nbgrader keeps its own (``gradebook.db``), so that ``nbgrader export`` and
nbgrader's gradebook views show them.

How cnnlab's tests fit nbgrader's schema. nbgrader scores an assignment as the sum, over its
notebooks' *grade cells*, of each student's ``Grade`` (``manual_score`` when a person set one,
else ``auto_score``), out of the sum of the cells' ``max_score``. cnnlab's tests (visible and
hidden) are not cells of the notebook: they call the student's functions from outside. So each
test is registered as one autograded grade cell of the assignment's notebook, named
``cnnlab-<test name>``, with ``max_score`` = the test's points and ``cell_type`` ``code``; it
exists in the gradebook only, never in a released notebook (the notebook itself has no grade
cells, so nbgrader's own autograde scores nothing and cannot give a stub marks). Each student's
``Grade`` of such a cell gets ``auto_score`` = the points that test earned. A ``manual_score``
a person set is kept (and wins, as in nbgrader); the grade is then flagged
``needs_manual_grade``, as nbgrader's autograde does.

Students and submissions are created when missing (``timestamp.txt`` of nbgrader's collect
sets the submission's timestamp); grade cells of an earlier cnnlab test that the exercise no
longer has are kept (nbgrader cannot drop a cell that has grades) with ``max_score`` 0 and
every grade 0.
"""

from __future__ import annotations

import os
import re
import stat
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cnnlab.exercises.spec import Exercise
from cnnlab.exercises.submissions import nbgrader_student

__all__ = ["CELL_PREFIX", "GradebookRow", "gradebook_url", "check_gradebook", "write_gradebook"]

#: Prefix of the gradebook-only grade cells that hold cnnlab's tests.
CELL_PREFIX = "cnnlab-"
_CELL_NAME = re.compile(r"[A-Za-z0-9_\-]{1,120}")


@dataclass(frozen=True)
class GradebookRow:
    """What the gradebook holds for one student after the write, read back from it."""

    student: str
    submission: str  # the cnnlab id of the graded notebook
    score: float
    max_score: float


def gradebook_url(gradebook: str | Path) -> str:
    """The SQLAlchemy URL of an existing gradebook: a ``gradebook.db`` path, or a URL as is.

    Raises ``ValueError`` when the file does not exist: nbgrader would silently create an empty
    gradebook there.

    Examples
    --------
    >>> gradebook_url("postgresql://grader@db/course")
    'postgresql://grader@db/course'
    >>> gradebook_url("/no/such/course/gradebook.db")
    Traceback (most recent call last):
    ...
    ValueError: no nbgrader gradebook at '/no/such/course/gradebook.db': give the course's gradebook.db (written by `nbgrader generate_assignment`)
    """
    text = str(gradebook)
    if "://" in text:
        return text
    path = Path(text)
    if not path.is_file():
        raise ValueError(
            f"no nbgrader gradebook at {text!r}: give the course's gradebook.db "
            "(written by `nbgrader generate_assignment`)"
        )
    return f"sqlite:///{path.resolve()}"


def _open(gradebook: str | Path):
    try:
        from nbgrader.api import Gradebook
    except ImportError as error:
        raise ValueError(
            f"writing an nbgrader gradebook needs nbgrader 0.9 installed ({error})"
        ) from None

    # course_id "" : open without adding a course row (nbgrader's own API app does the same)
    return Gradebook(gradebook_url(gradebook), course_id="")


def _notebook_name(gb, assignment: str, notebook: str | None) -> str:
    from nbgrader.api import MissingEntry

    try:
        found = gb.find_assignment(assignment)
    except MissingEntry:
        known = ", ".join(sorted(a.name for a in gb.assignments)) or "none"
        raise ValueError(
            f"assignment {assignment!r} is not in the nbgrader gradebook (its assignments: "
            f"{known}); run `nbgrader generate_assignment {assignment}` first"
        ) from None
    names = sorted(nb.name for nb in found.notebooks)
    if notebook is not None:
        if notebook not in names:
            raise ValueError(
                f"assignment {assignment!r} has no notebook {notebook!r} (it has {names})"
            )
        return notebook
    if len(names) != 1:
        raise ValueError(
            f"assignment {assignment!r} has {len(names)} notebooks ({names}); cnnlab grades "
            "one notebook per assignment: say which (notebook=)"
        )
    return names[0]


def check_gradebook(gradebook: str | Path, assignment: str, notebook: str | None = None) -> str:
    """Check, before grading, that the gradebook holds ``assignment``; return its notebook."""
    with _open(gradebook) as gb:
        return _notebook_name(gb, assignment, notebook)


def _students(results: Sequence, assignment: str, notebook: str) -> dict[str, object]:
    """Map each student to the result of their notebook.

    In nbgrader's layout the student is the folder ``submitted/<student>/<assignment>/``;
    otherwise the submission's id, which must then be its file's or folder's own name (an id
    that :func:`cnnlab.exercises.submissions.find_submissions` suffixed to keep it unique could
    be another student's: refused). When a student submitted several notebooks, the one named
    like the assignment's notebook counts.
    """
    by_student: dict[str, list] = {}
    for result in results:
        where = nbgrader_student(result.path)
        if where is not None and where[1] == assignment:
            student = where[0]
        elif result.id in (Path(result.path).stem, Path(result.path).parent.name):
            student = result.id
        else:  # an id made unique with a suffix, or escaped: it may be another student's name
            raise ValueError(
                f"submission {result.id!r} ({result.path}) has an id that is not its file's or "
                "folder's name, so it names no student: give each student one notebook in "
                "nbgrader's submitted/<student>/<assignment>/ layout"
            )
        by_student.setdefault(student, []).append(result)
    chosen = {}
    for student, candidates in by_student.items():
        named = [r for r in candidates if Path(r.path).stem == notebook]
        if len(candidates) > 1 and len(named) != 1:
            paths = ", ".join(str(r.path) for r in candidates)
            raise ValueError(
                f"student {student!r} has {len(candidates)} graded notebooks ({paths}) and not "
                f"exactly one named {notebook}.ipynb: which one counts is unclear"
            )
        chosen[student] = named[0] if len(candidates) > 1 else candidates[0]
    return chosen


def _timestamp(result) -> datetime | None:
    """The time nbgrader's collect recorded beside the notebook (``timestamp.txt``), if any.

    The file passed through the student's hands (``nbgrader submit`` writes it), so anything
    but a short regular file holding a time nbgrader can parse counts as no timestamp.
    """
    from nbgrader.utils import parse_utc

    if nbgrader_student(result.path) is None:
        return None
    stamp = Path(result.path).parent / "timestamp.txt"
    try:
        fd = os.open(stamp, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        text = os.read(fd, 200).decode("utf-8").strip()
        return parse_utc(text) if text else None
    except (OSError, ValueError, OverflowError):
        return None
    finally:
        os.close(fd)


def _register_tests(gb, notebook: str, assignment: str, exercise: Exercise) -> dict[str, str]:
    """Make each test a grade cell of ``notebook``; retire earlier cnnlab cells.

    Returns ``{cell name: test name}``, retired cells mapped to ``""`` (they score 0 of 0).
    """
    cells = {f"{CELL_PREFIX}{test.name}": test.name for test in exercise.tests}
    for cell, name in cells.items():
        if not _CELL_NAME.fullmatch(cell):
            raise ValueError(f"test name {name!r} cannot name an nbgrader grade cell")
    points = {test.name: float(test.points) for test in exercise.tests}
    for cell, name in cells.items():
        gb.update_or_create_grade_cell(
            cell, notebook, assignment, max_score=points[name], cell_type="code"
        )
    for cell in gb.find_notebook(notebook, assignment).grade_cells:
        if cell.name.startswith(CELL_PREFIX) and cell.name not in cells:
            cell.max_score = 0.0
            cells[cell.name] = ""
    gb.db.commit()
    return cells


def _write_student(
    gb, notebook: str, assignment: str, student: str, result, cells: dict[str, str]
) -> None:
    """Create ``student``'s submission where missing; set each cnnlab grade's auto score."""
    from nbgrader.api import Grade, MissingEntry
    from sqlalchemy.exc import SAWarning

    gb.update_or_create_student(student)
    stamp = _timestamp(result)
    with warnings.catch_warnings():
        # nbgrader's add_submission builds its rows while SQLAlchemy autoflushes, which warns
        # that it cannot cascade them yet; they are added right after.
        warnings.simplefilter("ignore", SAWarning)
        gb.update_or_create_submission(
            assignment, student, **({"timestamp": stamp} if stamp else {})
        )
    try:
        submitted = gb.find_submission_notebook(notebook, assignment, student)
    except MissingEntry:
        raise ValueError(
            f"the gradebook has {student!r}'s submission of {assignment!r} without its "
            f"notebook {notebook!r}; remove that submission and grade again"
        ) from None
    grades = {grade.cell.name: grade for grade in submitted.grades}
    master = {cell.name: cell for cell in submitted.notebook.grade_cells}
    earned = {test.name: float(test.score) for test in result.tests}
    for cell, name in cells.items():
        grade = grades.get(cell)
        if grade is None:  # a cell registered after this submission was created
            grade = Grade(cell_id=master[cell].id, notebook=submitted)
            gb.db.add(grade)
        grade.auto_score = earned.get(name, 0.0)  # a retired cell: name "", 0
        grade.needs_manual_grade = grade.manual_score is not None
    gb.db.commit()


def write_gradebook(
    gradebook: str | Path,
    assignment: str,
    exercise: Exercise,
    results: Sequence,
    notebook: str | None = None,
) -> list[GradebookRow]:
    """Write each student's per-test scores into nbgrader's gradebook; return what it holds.

    Parameters
    ----------
    gradebook : path or URL
        The course's ``gradebook.db`` (or an SQLAlchemy URL), written by
        ``nbgrader generate_assignment``.
    assignment : str
        The nbgrader assignment, which must exist in the gradebook.
    exercise : Exercise
        The graded exercise: its tests become the assignment's grade cells.
    results : sequence of SubmissionResult
        The graded submissions (``id``, ``path``, ``tests`` with ``name`` and ``score``).
    notebook : str, optional
        The assignment's notebook; needed only when it has several.

    Returns
    -------
    list of GradebookRow
        Per student, sorted, read back from the gradebook: the total and the maximum as
        nbgrader computes them, ``sum(score of each grade)`` over
        ``sum(max_score of each grade cell)``.
    """
    with _open(gradebook) as gb:
        notebook = _notebook_name(gb, assignment, notebook)
        chosen = _students(results, assignment, notebook)
        cells = _register_tests(gb, notebook, assignment, exercise)
        for student, result in sorted(chosen.items()):
            _write_student(gb, notebook, assignment, student, result, cells)
        rows = []
        for student, result in sorted(chosen.items()):
            submission = gb.find_submission(assignment, student)
            score, most = float(submission.score), float(submission.max_score)
            rows.append(GradebookRow(student, result.id, score, most))
    return rows
