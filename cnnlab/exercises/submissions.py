"""Find the submitted notebooks of a class: files, folders of them, one folder per student,
or nbgrader's course layout ``submitted/<student>/<assignment>/<notebook>.ipynb``.

Every submission gets an id, kept verbatim (the reports make it safe as a file name):

======================================================  ==================================
given                                                   id of ``.../x.ipynb``
======================================================  ==================================
a notebook ``x.ipynb``                                  ``x``
a folder holding ``x.ipynb``                            ``x``
a folder holding ``alice/x.ipynb`` (one notebook)       ``alice`` (several: ``alice/x``)
nbgrader's ``submitted/`` folder, or the course root    ``alice`` for
holding it                                              ``submitted/alice/ps1/x.ipynb``
``submitted/alice/ps1`` itself                          ``alice``
======================================================  ==================================

Finding nothing to grade is an error (:class:`NoSubmissionsError`), never an empty class.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "find_submissions",
    "assignment_folders",
    "NoSubmissionsError",
    "nbgrader_student",
    "display_id",
    "SUBMITTED",
]

#: The name of nbgrader's folder of collected submissions (``CourseDirectory.submitted_directory``).
SUBMITTED = "submitted"

#: Files that mark a folder holding ``submitted/`` as an nbgrader course root.
_COURSE_MARKERS = ("nbgrader_config.py", "gradebook.db", "source", "release")


class NoSubmissionsError(ValueError):
    """No notebook was found in the paths given to grade."""


def _visible_dirs(folder: Path, links: bool) -> list[Path]:
    """The non-hidden sub-folders of ``folder`` that are (``links``) or are not symbolic links."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_dir() and p.is_symlink() == links and not p.name.startswith(".")
    )


def _is_course_root(folder: Path) -> bool:
    return (folder / SUBMITTED).is_dir() and any(
        (folder / marker).exists() for marker in _COURSE_MARKERS
    )


def nbgrader_student(path: str | Path) -> tuple[str, str] | None:
    """``(student, assignment)`` when ``path`` is ``.../submitted/<student>/<assignment>/x.ipynb``.

    Examples
    --------
    >>> nbgrader_student("/course/submitted/alice/ps1/cross_correlation.ipynb")
    ('alice', 'ps1')
    >>> nbgrader_student("/class/alice/cross_correlation.ipynb") is None
    True
    """
    parts = Path(path).parts
    if len(parts) >= 4 and parts[-4] == SUBMITTED:
        return parts[-3], parts[-2]
    return None


def _one_folder(folder: Path, ident: str, found: list[tuple[str, Path]]) -> None:
    """The notebooks of one student's folder: id ``ident``, or ``ident/stem`` when several.

    The ``/`` cannot be part of a folder's name, so what a student puts in their own folder can
    never produce another student's id.
    """
    notebooks = sorted(folder.glob("*.ipynb"))
    for nb in notebooks:
        found.append((ident if len(notebooks) == 1 else f"{ident}/{nb.stem}", nb))


def _nbgrader_layout(
    submitted: Path, assignment: str | None, found: list[tuple[str, Path]]
) -> None:
    """``submitted/<student>/<assignment>/*.ipynb``; id = the student.

    Without ``assignment``, notebooks that sit where the other layouts put them
    (``submitted/x.ipynb``, ``submitted/alice/x.ipynb``) are found as those layouts find them:
    a folder that merely happens to be called ``submitted`` loses nothing. With it, only that
    assignment's folders count.
    """
    if assignment is None:
        found += [(nb.stem, nb) for nb in sorted(submitted.glob("*.ipynb"))]
    for student in _visible_dirs(submitted, links=True):
        found.append((student.name, student))  # read_submission refuses a link: invalid
    for student in _visible_dirs(submitted, links=False):
        if assignment is None:
            _one_folder(student, student.name, found)
        assignments = _visible_dirs(student, links=False)
        if assignment is not None:
            assignments = [a for a in assignments if a.name == assignment]
        elif len(assignments) > 1:
            names = ", ".join(a.name for a in assignments)
            raise ValueError(
                f"{student} holds several assignments ({names}): say which one to grade "
                "(--assignment NAME, or assignment= in Python)"
            )
        for folder in assignments:
            _one_folder(folder, student.name, found)
        for link in _visible_dirs(student, links=True):
            if assignment is None or link.name == assignment:
                found.append((student.name, link))  # invalid, as above


def assignment_folders(paths: list[str | Path], assignment: str) -> list[Path]:
    """``paths`` with nbgrader's ``submitted/`` folders (or course roots) replaced by the
    folders ``submitted/<student>/<assignment>`` they hold (linked ones as the link).

    ``find_submissions(assignment_folders(paths, a))`` finds what
    ``find_submissions(paths, a)`` finds, with the same ids; other paths are kept as given.
    """
    expanded: list[Path] = []
    for raw in paths:
        path = Path(os.path.abspath(raw))
        if path.is_dir() and not path.is_symlink() and _is_course_root(path):
            path = path / SUBMITTED
        elif not (path.is_dir() and not path.is_symlink() and path.name == SUBMITTED):
            expanded.append(path)
            continue
        expanded += _visible_dirs(path, links=True)
        for student in _visible_dirs(path, links=False):
            folder = student / assignment
            if folder.is_dir() and not folder.name.startswith("."):
                expanded.append(folder)
    return expanded


def find_submissions(
    paths: list[str | Path], assignment: str | None = None
) -> list[tuple[str, Path]]:
    """Expand files and folders into ``(id, notebook path)`` pairs, sorted by id.

    A folder contributes its ``*.ipynb`` files (id: the file's stem) and the notebooks one level
    down (``student/notebook.ipynb``, id: the folder's name). nbgrader's course layout is
    recognised by its folder name: a folder named ``submitted`` (or a course root holding it
    beside ``nbgrader_config.py``, ``gradebook.db``, ``source/`` or ``release/``) contributes
    ``submitted/<student>/<assignment>/*.ipynb`` with id ``<student>`` (and, without
    ``assignment``, any notebook placed as the other layouts place them), and a folder
    ``submitted/<student>/<assignment>`` given alone contributes its notebooks with id
    ``<student>``. A student folder with several notebooks gives ``<student>/<stem>`` (a
    ``/`` no folder name holds, so no student can take another's id). Repeated ids (the same
    file name given twice) get ``-2``, ``-3``, ... that no other id of the class has. Names
    that are not UTF-8 are escaped (:func:`display_id`). Symbolic links are not followed inside a
    folder: a linked notebook or student folder is listed as it is and graded ``invalid`` (a
    link could point at the instructor's solution).

    Parameters
    ----------
    paths : list of paths
        Notebooks and folders, as above.
    assignment : str, optional
        In nbgrader's layout, grade only this assignment's folders. Required there when a
        student's folder holds several assignments.

    Returns
    -------
    list of (str, Path)
        ``(id, notebook)``, sorted by id; ids are kept verbatim (spaces and all).

    Raises
    ------
    ValueError
        A path does not exist, or a student's nbgrader folder holds several assignments and
        ``assignment`` does not say which.
    NoSubmissionsError
        Nothing to grade was found; the message names every path searched.
    """
    found: list[tuple[str, Path]] = []
    for raw in paths:
        path = Path(os.path.abspath(raw))
        if path.is_symlink() and SUBMITTED in (path.parent.name, path.parent.parent.name):
            # a linked student or assignment folder in nbgrader's layout: listed, never followed
            student = path.name if path.parent.name == SUBMITTED else path.parent.name
            found.append((student, path))
        elif path.is_dir() and not path.is_symlink() and _is_course_root(path):
            _nbgrader_layout(path / SUBMITTED, assignment, found)
        elif path.is_dir() and path.name == SUBMITTED:
            _nbgrader_layout(path, assignment, found)
        elif path.is_dir() and path.parent.parent.name == SUBMITTED:
            if assignment is not None and path.name != assignment:
                raise ValueError(
                    f"{path} is a submission of assignment {path.name!r}, not {assignment!r}"
                )
            _one_folder(path, path.parent.name, found)
        elif path.is_dir():
            for nb in sorted(path.glob("*.ipynb")):
                found.append((nb.stem, nb))
            for sub in _visible_dirs(path, links=True):
                found.append((sub.name, sub))  # read_submission refuses it: invalid
            for sub in _visible_dirs(path, links=False):
                _one_folder(sub, sub.name, found)
        elif path.exists() or path.is_symlink():
            found.append((path.stem, path))
        else:
            raise ValueError(f"submission path {str(path)!r} does not exist")
    if not found:
        searched = ", ".join(repr(os.path.abspath(p)) for p in paths) or "(no path given)"
        where = f" of assignment {assignment!r}" if assignment is not None else ""
        raise NoSubmissionsError(
            f"no submitted notebook{where} found in {searched}: looked for *.ipynb files, "
            "folders of them, one folder per student (student/*.ipynb) and nbgrader's "
            f"{SUBMITTED}/<student>/<assignment>/*.ipynb"
        )
    return sorted(_unique_ids([(display_id(ident), nb) for ident, nb in found]))


def display_id(name: str) -> str:
    r"""A file or folder name as printable text: bytes that are not UTF-8 (which Python keeps
    as lone surrogates) become ``\xff`` escapes, so every report can write the id, and a
    backslash becomes two, so no other name gives the same id.

    Examples
    --------
    >>> display_id(os.fsdecode(b"bad\xffname"))
    'bad\\xffname'
    >>> display_id("alice smith")
    'alice smith'
    >>> display_id("bad\\xffname")  # a name with a real backslash: another id
    'bad\\\\xffname'
    """
    return os.fsencode(name).replace(b"\\", b"\\\\").decode("utf-8", "backslashreplace")


def _unique_ids(found: list[tuple[str, Path]]) -> list[tuple[str, Path]]:
    """Make repeated ids unique: the first (by path) keeps it, the others get ``-2``, ``-3``,
    ... each checked against every id of the class, so no suffix can take another's id."""
    taken = {ident for ident, _ in found}
    kept: set[str] = set()
    unique = []
    for ident, nb in sorted(found, key=lambda pair: (pair[0], str(pair[1]))):
        if ident not in kept:
            kept.add(ident)
            unique.append((ident, nb))
            continue
        count = 2
        while f"{ident}-{count}" in taken:
            count += 1
        taken.add(f"{ident}-{count}")
        kept.add(f"{ident}-{count}")
        unique.append((f"{ident}-{count}", nb))
    return unique
