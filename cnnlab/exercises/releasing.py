"""``cnnlab release``: write the student version of an exercise."""

from __future__ import annotations

from pathlib import Path

import nbformat

from cnnlab.exercises.notebook import release_notebook
from cnnlab.exercises.selfcheck import write_visible_tests
from cnnlab.exercises.spec import load_exercise

__all__ = ["release"]


def release(exercise_dir: str | Path, out_dir: str | Path) -> Path:
    """Write ``OUT/NAME/student.ipynb`` and the visible tests; return that folder.

    The student notebook has its solutions replaced by ``raise NotImplementedError()``, its
    outputs cleared and checksums of its locked cells recorded. Only the visible tests are
    written (``visible_tests.json`` and ``visible_tests.npz``, plain data); ``tests.py`` and the
    hidden tests are not.
    """
    exercise = load_exercise(exercise_dir)
    folder = Path(out_dir) / exercise.name
    folder.mkdir(parents=True, exist_ok=True)
    notebook = release_notebook(exercise.source, exercise.name)
    nbformat.write(notebook, str(folder / "student.ipynb"))
    write_visible_tests(exercise.tests, folder)
    return folder
