"""Exercise 06 (atrous convolution): the instructor solution earns full marks, the released
notebook zero, and the hidden tests sweep rates and sizes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cnnlab.exercises import Limits, grade, load_exercise, release

EXERCISE = Path(__file__).resolve().parents[1] / "exercises" / "06_atrous"
LIMITS = Limits(timeout=60, memory_mb=1024, nproc=32, fsize_mb=64)
FUNCTIONS = {
    "dilate_kernel",
    "effective_kernel_size",
    "stack_receptive_field",
    "count_valid_weights",
    "aspp_branch_shapes",
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("grading06")
    subs = root / "submissions"
    subs.mkdir()
    shutil.copy(EXERCISE / "source.ipynb", subs / "solution.ipynb")
    folder = release(EXERCISE, root / "release")
    shutil.copy(folder / "student.ipynb", subs / "released.ipynb")
    results = grade(EXERCISE, [subs], root / "out", limits=LIMITS, jobs=2, progress=False)
    return {r.id: r for r in results}


def test_exercise_has_every_function_and_hidden_sweeps():
    exercise = load_exercise(EXERCISE)
    assert set(exercise.functions) == FUNCTIONS
    hidden = [t for t in exercise.tests if t.hidden]
    for function in FUNCTIONS:
        assert any(t.function == function for t in exercise.visible), function
        assert sum(t.function == function for t in hidden) >= 4, function
    assert "cnnlab.atrous.dilate_kernel" in exercise.forbidden


def test_solution_scores_full_marks(graded):
    result = graded["solution"]
    assert result.status == "ok", (result.notes, result.cell_errors)
    assert result.score == load_exercise(EXERCISE).max_score, [
        (t.name, t.message) for t in result.tests if t.score < t.max_score
    ]


def test_released_notebook_scores_zero(graded):
    result = graded["released"]
    assert result.score == 0
    assert {t.status for t in result.tests} == {"not_implemented"}
