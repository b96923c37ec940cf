"""Feedback that lets a student fix their code, end to end through ``cnnlab grade``.

A small exercise is written here: ``double`` (hints in two levels), ``quad`` (which calls the
student's ``double``: ``uses=("double",)``) and ``pick``, each with visible and hidden tests.
Three notebooks are graded: the solution, an honest wrong ``double`` (so ``quad`` fails too),
and a ``pick`` that raises: a ``ValueError`` on the visible test, and on the hidden tests an
exception whose class is named after the hidden input (a channel the student controls) and an
allowlisted ``IndexError`` whose message holds the input. Checked: hint levels (grading shows
the nudge only; the self-check shows more on request and says how to ask), which test's call
raised and its type, the hidden input never in any report, dependency notes, and
``--hidden-feedback none``.
"""

from __future__ import annotations

import builtins
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import numpy as np
import pytest

from cnnlab.exercises import check, load_exercise
from cnnlab.exercises.reports import dependency_notes, raised_lines
from cnnlab.exercises.scoring import (
    SHOWN_HIDDEN_ERRORS,
    CallOutcome,
    PreparedTest,
    RunOutcome,
    raised_text,
    score_submission,
)
from cnnlab.exercises.selfcheck import write_visible_tests
from cnnlab.exercises.spec import Test as SpecTest

ROOT = Path(__file__).resolve().parents[1]
CNNLAB = [sys.executable, "-m", "cnnlab.cli"]

NUDGE = "look at the factor the input is multiplied by"
FORMULA = "double(x) = 2 x, element by element"
SECRET = "Secret_seven_7"  # the hidden input of pick_secret, as a student could name a class

TESTS_PY = f"""
import numpy as np

from cnnlab.exercises.spec import Test


def _double(x):
    return 2 * np.asarray(x, dtype=float)


def _quad(x):
    return 4 * np.asarray(x, dtype=float)


def _pick(x):
    return np.asarray(x, dtype=float)[:1]


TESTS = [
    Test("double_small", "double", (np.arange(3.0),), _double, hint=({NUDGE!r}, {FORMULA!r})),
    Test("double_more", "double", (np.arange(4.0),), _double, hidden=True),
    Test("quad_small", "quad", (np.arange(3.0),), _quad, uses=("double",), hint="apply double twice"),
    Test("quad_secret", "quad", (np.full(2, 7.0),), _quad, hidden=True, uses=("double",)),
    Test("pick_small", "pick", (np.arange(3.0),), _pick, points=2, hint=("keep one", "x[:1]")),
    Test("pick_secret", "pick", (np.full(5, 7.0),), _pick, hidden=True, hint=("keep one", "x")),
    Test("pick_index", "pick", (np.full(4, 9.0),), _pick, hidden=True),
]
"""

SOLUTION = {
    "double": "def double(x):\n    return 2 * np.asarray(x, dtype=float)\n",
    "quad": "def quad(x):\n    return double(double(x))\n",
    "pick": "def pick(x):\n    return np.asarray(x, dtype=float)[:1]\n",
}
WRONG_DOUBLE = dict(SOLUTION, double="def double(x):\n    return 3 * np.asarray(x, dtype=float)\n")
RAISING_PICK = dict(
    SOLUTION,
    pick=textwrap.dedent(
        f"""
        {SECRET} = type({SECRET!r}, (Exception,), {{}})

        def pick(x):
            x = np.asarray(x, dtype=float)
            if x.size == 3:
                raise ValueError("pick needs <b>five</b> values\\x1b[2J")
            if x.size == 5:
                raise {SECRET}("the input is " + repr(x.tolist()))
            raise IndexError("input " + repr(x.tolist()))
        """
    ),
)


def _notebook(functions: dict[str, str]) -> nbformat.NotebookNode:
    cells = [nbformat.v4.new_code_cell("import numpy as np")]
    cells += [nbformat.v4.new_code_cell(code) for code in functions.values()]
    return nbformat.v4.new_notebook(cells=cells)


@pytest.fixture(scope="module")
def exercise(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("feedback") / "99_feedback"
    folder.mkdir()
    (folder / "tests.py").write_text(TESTS_PY)
    nbformat.write(_notebook(SOLUTION), str(folder / "source.ipynb"))
    return folder


@pytest.fixture(scope="module")
def submissions(exercise) -> Path:
    subs = exercise.parent / "subs"
    subs.mkdir()
    for name, functions in [
        ("solution", SOLUTION),
        ("wrong_double", WRONG_DOUBLE),
        ("raising_pick", RAISING_PICK),
    ]:
        nbformat.write(_notebook(functions), str(subs / f"{name}.ipynb"))
    return subs


def _grade(exercise: Path, submissions: Path, out: Path, *extra: str) -> dict:
    """Run ``cnnlab grade``; return {id: (feedback text, results.json)}."""
    command = [*CNNLAB, "grade", str(exercise), str(submissions), "--out", str(out)]
    command += ["--no-progress", "--timeout", "60", *extra]
    if os.geteuid() != 0:
        command.append("--allow-weak-isolation")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    files = json.loads((out / "files.json").read_text())
    return {
        ident: (
            (out / entry["feedback"]).read_text(),
            json.loads((out / entry["results"]).read_text()),
        )
        for ident, entry in files.items()
    }


@pytest.fixture(scope="module")
def names_reports(exercise, submissions) -> dict:
    return _grade(exercise, submissions, exercise.parent / "out_names")


@pytest.fixture(scope="module")
def none_reports(exercise, submissions) -> dict:
    return _grade(exercise, submissions, exercise.parent / "out_none", "--hidden-feedback", "none")


def _tests(results: dict) -> dict[str, dict]:
    return {t["name"]: t for t in results["tests"]}


# --- the spec ---------------------------------------------------------------------------------


def test_a_hint_is_a_string_or_levels_and_uses_must_name_a_tested_function(tmp_path):
    one = SpecTest("t", "f", (), None, hint="look")
    levels = SpecTest("t", "f", (), None, hint=["look", "formula"])  # a list reads as levels
    assert one.hints == ("look",) and levels.hints == ("look", "formula")
    assert (levels.hint_at(1), levels.hint_at(2), levels.hint_at(5)) == ("look",) + ("formula",) * 2
    assert SpecTest("t", "f", (), None).hint_at(3) == ""
    assert SpecTest("t", "f", (), None, uses="g").uses == ("g",)
    with pytest.raises(TypeError, match="hint"):
        SpecTest("t", "f", (), None, hint=("a", 1))
    (tmp_path / "tests.py").write_text(
        "from cnnlab.exercises.spec import Test\nTESTS = [Test('t', 'f', (1,), abs, uses=('g',))]\n"
    )
    with pytest.raises(ValueError, match="uses"):
        load_exercise(tmp_path)


def test_every_exercise_still_loads():
    for folder in sorted((ROOT / "exercises").glob("0*_*")):
        assert load_exercise(folder).tests


# --- scoring and reports, without a worker ------------------------------------------------------


def test_a_hidden_call_shows_at_most_an_allowlisted_type():
    raised = CallOutcome("error", "tb", error_type="ValueError", error_message="x = 7")
    named = CallOutcome("error", "tb", error_type="x_is_7", error_message="x = 7")
    assert raised_text(False, raised) == "ValueError: x = 7"
    assert raised_text(True, raised) == "ValueError"
    assert raised_text(True, named) == "an exception"
    assert raised_text(True, CallOutcome("failed")) == ""
    long = CallOutcome("error", "", error_type="E", error_message="m" * 5000)
    assert len(raised_text(False, long)) < 400
    assert {"ValueError", "TypeError", "IndexError"} <= SHOWN_HIDDEN_ERRORS
    assert all(issubclass(getattr(builtins, n), BaseException) for n in SHOWN_HIDDEN_ERRORS)


def test_dependency_notes_follow_uses_and_hidden_feedback():
    tests = [
        SpecTest("a_visible", "a", (), None),
        SpecTest("a_hidden", "a", (), None, hidden=True),
        SpecTest("b_visible", "b", (), None, uses=("a",)),
        SpecTest("b_hidden", "b", (), None, hidden=True, uses=("a",)),
    ]
    prepared = [PreparedTest(t, (), {}, np.array([1.0])) for t in tests]
    right, wrong = CallOutcome("ok", "", np.array([1.0])), CallOutcome("ok", "", np.array([2.0]))
    only_hidden = RunOutcome(calls={0: right, 1: wrong, 2: wrong, 3: wrong}, runs=1)
    result = score_submission("s", "s.ipynb", prepared, only_hidden)
    b_visible, b_hidden = result.tests[2], result.tests[3]
    assert b_visible.failing_uses == ["a"] and b_hidden.failing_uses == ["a"]
    (note,) = dependency_notes(b_visible, result, "names")
    assert note == "this test calls `a`, which fails its own tests (`a_hidden`): fix that first"
    assert dependency_notes(b_visible, result, "none") == []  # a fails only hidden tests
    assert dependency_notes(b_hidden, result, "none") == []
    passing_a = RunOutcome(calls={0: right, 1: right, 2: wrong, 3: wrong}, runs=1)
    assert score_submission("s", "s.ipynb", prepared, passing_a).tests[2].failing_uses == []
    assert raised_lines(result) == []


# --- end to end ---------------------------------------------------------------------------------


def test_the_solution_gets_full_marks_and_no_extra_feedback(names_reports):
    feedback, results = names_reports["solution"]
    assert results["score"] == 8
    assert "Calls that raised" not in feedback and "fix that first" not in feedback


def test_grading_shows_the_nudge_only(names_reports):
    feedback, results = names_reports["wrong_double"]
    assert NUDGE in feedback and FORMULA not in feedback
    assert NUDGE in _tests(results)["double_small"]["output"]
    assert FORMULA not in json.dumps(results)


def test_a_failing_test_names_the_function_it_depends_on(names_reports):
    feedback, results = names_reports["wrong_double"]
    note = (
        "this test calls `double`, which fails its own tests (`double_small`, `double_more`): "
        "fix that first"
    )
    assert (
        "This test calls `double`, which fails its own tests (`double_small`, `double_more`)"
        in (feedback)
    )
    tests = _tests(results)
    assert note in tests["quad_small"]["output"]
    assert note in tests["quad_secret"]["output"]  # hidden test, names allowed
    assert "fix that first" not in tests["double_small"]["output"]
    assert "fix that first" not in names_reports["raising_pick"][0]


def test_an_error_names_the_test_and_the_exception_type(names_reports):
    feedback, results = names_reports["raising_pick"]
    assert "(status: error)" in feedback
    assert "## Calls that raised" in feedback
    # visible: type and message, escaped (no raw escape character, HTML shown in a code span)
    assert (
        "- test `pick_small` (visible): the call raised "
        "`ValueError: pick needs <b>five</b> values\\x1b[2J`"
    ) in feedback
    outputs = [results["output"], *(t["output"] for t in results["tests"])]
    assert "\x1b" not in feedback and not any("\x1b" in output for output in outputs)
    # hidden: an allowlisted builtin type at most, never the message or the input
    assert "- test `pick_index` (hidden): the call raised IndexError" in feedback
    assert feedback.count("Hint: keep one") == 1 and "x[:1]" not in feedback  # the nudge, once
    assert "- test `pick_secret` (hidden): the call raised an exception" in feedback
    tests = _tests(results)
    assert tests["pick_small"]["output"].startswith(
        "the call raised ValueError: pick needs <b>five</b> values\\x1b[2J"
    )
    assert tests["pick_small"]["output"].endswith("Hint: keep one")
    assert tests["pick_index"]["output"] == "failed\nthe call raised IndexError"
    assert tests["pick_secret"]["output"] == "failed\nthe call raised an exception"
    assert "test `pick_secret` (hidden): the call raised an exception" in results["output"]


def test_no_report_holds_a_hidden_input(names_reports, none_reports):
    for reports in (names_reports, none_reports):
        feedback, results = reports["raising_pick"]
        for text in (feedback, json.dumps(results)):
            assert SECRET not in text
            assert "7.0" not in text and "9.0" not in text


def test_hidden_feedback_none_says_nothing_of_hidden_tests(none_reports):
    feedback, results = none_reports["raising_pick"]
    assert "- test `pick_small` (visible): the call raised `ValueError" in feedback
    assert "pick_index" not in feedback and "pick_secret" not in feedback
    assert "IndexError" not in feedback and "an exception" not in feedback
    tests = _tests(results)
    assert tests["pick_index"]["output"] == "failed" and tests["pick_secret"]["output"] == "failed"
    assert "IndexError" not in results["output"]
    wrong_feedback, wrong_results = none_reports["wrong_double"]
    # the dependency note names the visible failing test of double only
    assert "This test calls `double`, which fails its own tests (`double_small`)" in wrong_feedback
    assert "double_more" not in wrong_feedback
    assert _tests(wrong_results)["quad_secret"]["output"] == "failed"


# --- the student's self-check ------------------------------------------------------------------


def _student(functions: dict[str, str]) -> dict:
    namespace: dict = {"np": np}
    for code in functions.values():
        exec(code, namespace)  # the notebook's namespace: quad finds the student's double
    return namespace


def test_the_self_check_gives_hint_levels_on_request(exercise, tmp_path, capsys):
    write_visible_tests(load_exercise(exercise).tests, tmp_path)  # as released: plain JSON
    student = _student(WRONG_DOUBLE)
    check("double", student["double"], folder=tmp_path)
    first = capsys.readouterr().out
    assert NUDGE in first and FORMULA not in first
    assert 'check("double", double, hint=2) shows more' in first
    check("double", student["double"], folder=tmp_path, hint=2)
    second = capsys.readouterr().out
    assert FORMULA in second and NUDGE not in second and "shows more" not in second
    check("double", _student(SOLUTION)["double"], folder=tmp_path)
    assert "shows more" not in capsys.readouterr().out
    with pytest.raises(ValueError, match="hint"):
        check("double", student["double"], folder=tmp_path, hint=0)
    check("pick", _student(RAISING_PICK)["pick"], folder=tmp_path)
    raised = capsys.readouterr().out
    assert "raised ValueError: pick needs" in raised and "Hint: keep one" in raised
    assert 'check("pick", pick, hint=2) shows more' in raised


def test_the_self_check_names_a_failing_dependency(exercise, tmp_path, capsys):
    write_visible_tests(load_exercise(exercise).tests, tmp_path)
    check("quad", _student(WRONG_DOUBLE)["quad"], folder=tmp_path)
    out = capsys.readouterr().out
    assert "this test calls double, which fails its own tests (double_small): fix that first" in out
    check("quad", _student(SOLUTION)["quad"], folder=tmp_path)
    assert "fix that first" not in capsys.readouterr().out
