"""Shared machinery of the per-exercise grading tests (``tests/test_exercise_0*.py``).

Each of those modules grades one batch of notebooks once (a module-scoped fixture): the
instructor solution, the released student notebook and a few variants of the solution in which
some solution cells are rewritten (an honest wrong answer, a submission that calls forbidden
functions). The helpers here load an exercise, make those variants, grade the batch and check
the verdicts that every exercise shares; what an exercise's own variants must earn stays in its
test module.
"""

from __future__ import annotations

import copy
import importlib.util
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import nbformat
import numpy as np
import pytest
from nbformat import NotebookNode

from cnnlab.exercises import Limits, check, grade, load_exercise, release
from cnnlab.exercises.compare import compare
from cnnlab.exercises.grading import SubmissionResult
from cnnlab.exercises.spec import draw_inputs

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = ROOT / "exercises"


def exercise_dir(name: str) -> Path:
    """The folder of the exercise ``name`` (e.g. ``"02_shapes"``) under ``exercises/``.

    Examples
    --------
    >>> exercise_dir("02_shapes").name
    '02_shapes'
    """
    return EXERCISES / name


def load_module(path: str | Path, name: str) -> ModuleType:
    """Import the Python file ``path`` as a module called ``name`` (e.g. an exercise's tests.py)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_source(exercise: str | Path) -> NotebookNode:
    """The instructor notebook ``source.ipynb`` of an exercise: a folder (Path) or a name (str).

    Examples
    --------
    >>> nb = load_source("02_shapes")
    >>> any(cell.metadata.get("nbgrader", {}).get("solution") for cell in nb.cells)
    True
    """
    folder = exercise if isinstance(exercise, Path) else exercise_dir(exercise)
    return nbformat.read(str(folder / "source.ipynb"), as_version=4)


def _grade_id(cell: NotebookNode) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def replace_solution(notebook: NotebookNode, replacements: Mapping[str, str]) -> NotebookNode:
    r"""A copy of ``notebook`` whose cells with the given nbgrader grade ids hold new code.

    ``replacements`` maps a grade id (the solution cell of a function has the function's name
    as its grade id) to the cell's new source, stripped of surrounding blank lines. A grade id
    that the notebook lacks raises ``KeyError``, so a variant cannot silently equal the
    solution. ``notebook`` itself is left unchanged.

    Examples
    --------
    >>> nb = load_source("02_shapes")
    >>> wrong = replace_solution(nb, {"same_padding": "def same_padding(k, d=1):\n    return 0\n"})
    >>> [c.source for c in wrong.cells if c.metadata["nbgrader"]["grade_id"] == "same_padding"]
    ['def same_padding(k, d=1):\n    return 0']
    >>> replace_solution(nb, {"no_such_cell": ""})
    Traceback (most recent call last):
    ...
    KeyError: "no cell with grade id 'no_such_cell'"
    """
    variant = copy.deepcopy(notebook)
    missing = set(replacements) - {_grade_id(cell) for cell in variant.cells}
    if missing:
        raise KeyError(f"no cell with grade id {', '.join(map(repr, sorted(missing)))}")
    for cell in variant.cells:
        if _grade_id(cell) in replacements:
            cell.source = replacements[_grade_id(cell)].strip()
    return variant


def solution_namespace(notebook: NotebookNode) -> dict:
    """Run the notebook's code cells in this process (not its ``check(...)`` cells).

    Returns the namespace they leave: the notebook's imports and its functions, by name.
    Only for the project's own notebooks and variants of them (the code is ``exec``-ed here,
    outside the grader's sandbox).
    """
    namespace: dict = {}
    for cell in notebook.cells:
        if cell.cell_type == "code" and not cell.source.startswith("check("):
            exec(cell.source, namespace)  # noqa: S102 (our own notebook)
    return namespace


@dataclass(frozen=True)
class GradedBatch:
    """The results of one graded batch, by submission id, and the released student folder.

    ``batch["solution"]`` is the instructor notebook's result, ``batch["released"]`` the
    released student notebook's, and ``batch[name]`` that of the variant ``name``.
    """

    results: dict[str, SubmissionResult]
    release: Path

    def __getitem__(self, submission_id: str) -> SubmissionResult:
        return self.results[submission_id]


def grade_batch(
    exercise: Path,
    variants: Mapping[str, NotebookNode],
    root: Path,
    limits: Limits,
) -> GradedBatch:
    """Release ``exercise`` and grade the solution, the released notebook and ``variants``.

    Parameters
    ----------
    exercise : Path
        The exercise folder.
    variants : mapping of str to NotebookNode
        Extra submissions by id (``"solution"`` and ``"released"`` are taken).
    root : Path
        An empty scratch folder: the release, the submissions and the reports go below it.
    limits : Limits
        The worker's limits (tests use short ones).

    Returns
    -------
    GradedBatch
        The results by submission id (``solution``, ``released`` and every variant) and the
        released student folder. All are graded in one call, two workers at a time.
    """
    taken = {"solution", "released"} & set(variants)
    if taken:
        raise ValueError(f"variants: the ids {sorted(taken)} are the batch's own")
    subs = root / "submissions"
    subs.mkdir()
    shutil.copy(exercise / "source.ipynb", subs / "solution.ipynb")
    folder = release(exercise, root / "release")
    shutil.copy(folder / "student.ipynb", subs / "released.ipynb")
    for ident, notebook in variants.items():
        nbformat.write(notebook, str(subs / f"{ident}.ipynb"))
    results = grade(exercise, [subs], root / "out", limits=limits, jobs=2, progress=False)
    return GradedBatch({r.id: r for r in results}, folder)


def batch_fixture(exercise: Path, limits: Limits, **replacements: Mapping[str, str]):
    """A module-scoped pytest fixture that grades the exercise's batch once for the module.

    Each keyword names a variant of the solution: the variant's id and the ``replacements``
    that ``replace_solution`` makes in ``source.ipynb``. The fixture returns ``grade_batch``'s
    ``GradedBatch`` (the solution, the released notebook and every variant). Assign it in a
    test module as ``graded = batch_fixture(EXERCISE, LIMITS, honest_wrong=WRONG)``.
    """

    @pytest.fixture(scope="module")
    def graded(tmp_path_factory) -> GradedBatch:
        source = load_source(exercise)
        variants = {ident: replace_solution(source, cells) for ident, cells in replacements.items()}
        return grade_batch(exercise, variants, tmp_path_factory.mktemp(exercise.name), limits)

    return graded


def passed_names(result: SubmissionResult) -> set[str]:
    """Names of the tests that ``result`` passed."""
    return {t.name for t in result.tests if t.passed}


def local_verdicts(exercise: Path, functions: Mapping[str, Callable]) -> set[str]:
    """Names of the exercise's tests that ``functions`` pass when compared in this process.

    Each test's inputs are drawn as the grader draws them, the reference and the function are
    called here, and the results are compared by the exercise's own rule: an independent
    prediction of the grader's verdicts for a notebook whose functions these are.
    """
    passed = set()
    for test in load_exercise(exercise).tests:
        args, kwargs = draw_inputs(test)
        reference = np.asarray(test.reference(*args, **kwargs), dtype=float)
        got = np.asarray(functions[test.function](*args, **kwargs), dtype=float)
        if compare(test, reference, got)[0]:
            passed.add(test.name)
    return passed


def assert_grader_agrees_with_this_process(
    result: SubmissionResult, exercise: Path, replacements: Mapping[str, str]
) -> set[str]:
    """The grader passed exactly the tests that the variant's functions pass run here.

    ``result`` is the grade of the solution with ``replacements`` made (see
    ``replace_solution``); that variant's functions are run in this process and compared
    with the references (``local_verdicts``). Returns the names of the tests they pass, for
    the caller's own expectations about which tests a wrong answer gets right.
    """
    functions = solution_namespace(replace_solution(load_source(exercise), replacements))
    expected_pass = local_verdicts(exercise, functions)
    assert result.status == "ok", result.cell_errors
    assert passed_names(result) == expected_pass
    return expected_pass


def assert_full_marks(result: SubmissionResult, exercise: Path) -> None:
    """The submission ran cleanly and earned the exercise's maximum score."""
    assert result.status == "ok", (result.notes, result.cell_errors)
    assert result.score == load_exercise(exercise).max_score, [
        (t.name, t.message) for t in result.tests if not t.passed
    ]


def assert_not_implemented(result: SubmissionResult) -> None:
    """The submission scored zero, every test reporting its function as not implemented."""
    assert result.score == 0
    assert {t.status for t in result.tests} == {"not_implemented"}


def not_implemented(*args: object, **kwargs: object) -> None:
    """A function as the released notebook leaves it: it raises NotImplementedError."""
    raise NotImplementedError()


def self_check_report(name: str, function: Callable, folder: Path, capsys) -> str:
    """What ``check(name, function)`` prints in the released folder ``folder``.

    ``capsys`` is pytest's fixture; output printed before the call is discarded.
    """
    capsys.readouterr()
    check(name, function, folder=folder)
    return capsys.readouterr().out
