"""nbgrader end to end: nbgrader releases and collects, cnnlab grades, the scores land in
nbgrader's gradebook, and ``nbgrader export`` shows them.

The course is run by the nbgrader block of ``exercises/README.md``, executed as written there
(bash, in a fresh course folder): the exercise's ``source.ipynb`` and its visible tests in
``source/ps1/``, ``nbgrader generate_assignment``; then, at the collection step, three
submissions in nbgrader's ``submitted/<student>/ps1/`` layout made from the released notebook
(the solution, the untouched stub, an honest wrong answer) and ``nbgrader autograde`` on the
stub; then ``cnnlab grade ... --nbgrader-gradebook gradebook.db --assignment ps1`` and
``nbgrader export``.
The fast tests below check the layout rules, the refusals and the notebooks' metadata alone.
"""

from __future__ import annotations

import copy
import csv
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import nbformat
import pytest

from cnnlab.cli import main
from cnnlab.exercises.submissions import (
    NoSubmissionsError,
    assignment_folders,
    find_submissions,
)

ROOT = Path(__file__).resolve().parents[1]
EXERCISE = ROOT / "exercises" / "01_cross_correlation"
BIN = Path(sys.executable).parent  # nbgrader calls `alembic` by name: this folder on PATH
NOTEBOOK = "cross_correlation"
STAMP = "2026-12-01 09:00:00.000000 UTC"

WRONG_CORR2D = """def corr2d(image, kernel):
    image, kernel = np.asarray(image, float), np.asarray(kernel, float)[::-1, ::-1]
    kh, kw = kernel.shape
    out = np.zeros((image.shape[0] - kh + 1, image.shape[1] - kw + 1))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = np.sum(image[i : i + kh, j : j + kw] * kernel)
    return out
"""


def _env(course: Path) -> dict[str, str]:
    """The environment of the course's commands: this venv first, no user Jupyter config."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    env.update(EX=str(EXERCISE), JUPYTER_CONFIG_DIR=str(course.parent / "jupyter_config"))
    return env


def _nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [str(BIN / "nbgrader"), *args],
        cwd=course,
        env=_env(course),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _export(course: Path, name: str) -> dict[str, dict[str, str]]:
    _nbgrader(course, "export", "--to", name)
    with open(course / name, newline="") as handle:
        return {row["student_id"]: row for row in csv.DictReader(handle)}


def _by_grade_id(nb: nbformat.NotebookNode) -> dict[str, nbformat.NotebookNode]:
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells if "nbgrader" in c.metadata}


def _submit(course: Path, student: str, nb: nbformat.NotebookNode) -> None:
    folder = course / "submitted" / student / "ps1"
    folder.mkdir(parents=True)
    nbformat.write(nb, str(folder / f"{NOTEBOOK}.ipynb"))
    (folder / "timestamp.txt").write_text(STAMP)


def _guide_steps() -> tuple[str, str]:
    """The nbgrader block of the exercises guide, split at its collection step."""
    text = (ROOT / "exercises" / "README.md").read_text()
    block = text.split("## 5. nbgrader")[1].split("```bash\n")[1].split("```")[0]
    lines = block.splitlines()
    (collect,) = [i for i, line in enumerate(lines) if line.startswith("#")]
    return "\n".join(lines[:collect]), "\n".join(lines[collect + 1 :])


def _bash(course: Path, script: str) -> None:
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=course,
        env=_env(course),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"{script}\n{done.stdout}{done.stderr}"


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A course run by the exercises guide's nbgrader block: released with nbgrader, three
    students' notebooks collected, the stub autograded by nbgrader, the class graded by cnnlab
    into the gradebook, the gradebook exported."""
    course = tmp_path_factory.mktemp("nbgrader") / "course"
    course.mkdir()
    (course / "nbgrader_config.py").write_text(
        f'c = get_config()\nc.CourseDirectory.root = r"{course}"\n'
        'c.CourseDirectory.course_id = "cnnlab-test"\n'
    )
    release_steps, grade_steps = _guide_steps()
    assert "--nbgrader-gradebook gradebook.db --assignment ps1" in grade_steps
    if os.geteuid() != 0:  # CI grades as root, with every protection
        grade_steps = grade_steps.replace(
            "--assignment ps1", "--assignment ps1 --allow-weak-isolation"
        )
    _bash(course, release_steps)
    stub = nbformat.read(str(course / "release" / "ps1" / f"{NOTEBOOK}.ipynb"), as_version=4)

    # Students fill in the released notebook: alice with the solution, bob not at all, carol
    # with a correct conv2d and a corr2d that flips the kernel (a convolution).
    source = _by_grade_id(nbformat.read(str(EXERCISE / "source.ipynb"), as_version=4))
    solved, wrong = copy.deepcopy(stub), copy.deepcopy(stub)
    for grade_id, cell in _by_grade_id(solved).items():
        if cell.metadata["nbgrader"].get("solution"):
            cell.source = source[grade_id].source
    _by_grade_id(wrong)["conv2d"].source = source["conv2d"].source
    _by_grade_id(wrong)["corr2d"].source = WRONG_CORR2D
    _submit(course, "alice", solved)
    _submit(course, "bob", stub)
    _submit(course, "carol", wrong)

    # nbgrader's own autograde on the untouched stub, before cnnlab grades.
    _nbgrader(course, "autograde", "ps1", "--student", "bob")
    autograded = _export(course, "after_autograde.csv")

    _bash(course, grade_steps)
    with open(course / "grades" / "grades.csv", newline="") as handle:
        cnnlab = {row["id"]: row for row in csv.DictReader(handle)}
    with open(course / "grades.csv", newline="") as handle:
        exported = {row["student_id"]: row for row in csv.DictReader(handle)}
    return {"autograded": autograded, "cnnlab": cnnlab, "exported": exported, "dir": course}


def test_nbgrader_autograde_gives_the_stub_nothing(course):
    row = course["autograded"]["bob"]
    assert float(row["score"]) == 0.0
    assert float(row["max_score"]) == 0.0  # the notebook has no nbgrader grade cell


def test_cnnlab_grades_the_nbgrader_layout_by_student(course):
    cnnlab = course["cnnlab"]
    assert set(cnnlab) == {"alice", "bob", "carol"}
    full = float(cnnlab["alice"]["max_score"])
    assert full == 14.0
    assert float(cnnlab["alice"]["total"]) == full
    assert float(cnnlab["bob"]["total"]) == 0.0
    assert 0.0 < float(cnnlab["carol"]["total"]) < full


def test_nbgrader_export_shows_cnnlab_totals(course):
    exported, cnnlab = course["exported"], course["cnnlab"]
    assert set(exported) == {"alice", "bob", "carol"}
    for student, row in exported.items():
        assert row["assignment"] == "ps1"
        assert float(row["max_score"]) == float(cnnlab[student]["max_score"]) == 14.0
        assert float(row["raw_score"]) == float(cnnlab[student]["total"]), student
        assert float(row["score"]) == float(cnnlab[student]["total"]), student
        assert row["timestamp"].startswith("2026-12-01 09:00:00")


def test_gradebook_holds_each_test_as_a_grade(course):
    from nbgrader.api import Gradebook

    from cnnlab.exercises import load_exercise

    tests = load_exercise(EXERCISE).tests
    cnnlab = course["cnnlab"]
    with Gradebook(f"sqlite:///{course['dir'] / 'gradebook.db'}", course_id="") as gb:
        for student in ("alice", "bob", "carol"):
            for test in tests:
                grade = gb.find_grade(f"cnnlab-{test.name}", NOTEBOOK, "ps1", student)
                assert grade.max_score == test.points
                assert grade.auto_score == float(cnnlab[student][test.name])
                assert not grade.needs_manual_grade


def test_a_second_write_keeps_manual_scores_and_retires_old_tests(course, tmp_path):
    from types import SimpleNamespace

    from nbgrader.api import Gradebook

    from cnnlab.exercises import load_exercise
    from cnnlab.exercises.nbgrader_gradebook import write_gradebook

    gradebook = tmp_path / "gradebook.db"
    shutil.copy(course["dir"] / "gradebook.db", gradebook)
    url = f"sqlite:///{gradebook}"
    with Gradebook(url, course_id="") as gb:  # a person overrides one of carol's grades
        gb.find_grade("cnnlab-corr2d_random", NOTEBOOK, "ps1", "carol").manual_score = 1.5
        gb.db.commit()
    exercise = load_exercise(EXERCISE)
    renamed = exercise.tests[0]  # the exercise now calls its first test by another name
    tests = [replace(renamed, name=f"{renamed.name}_v2"), *exercise.tests[1:]]
    exercise = replace(exercise, tests=tests)
    carol = [
        SimpleNamespace(name=t.name, score=float(course["cnnlab"]["carol"].get(t.name, 0)))
        for t in tests
    ]
    result = SimpleNamespace(id="carol", path="carol.ipynb", tests=carol)
    (row,) = write_gradebook(gradebook, "ps1", exercise, [result])
    assert row.max_score == 14.0  # the retired test counts for nothing
    with Gradebook(url, course_id="") as gb:
        kept = gb.find_grade("cnnlab-corr2d_random", NOTEBOOK, "ps1", "carol")
        assert kept.manual_score == 1.5 and kept.needs_manual_grade
        old = gb.find_grade(f"cnnlab-{renamed.name}", NOTEBOOK, "ps1", "carol")
        assert old.max_score == 0.0 and old.auto_score == 0.0
        assert gb.find_submission("ps1", "carol").score == row.score
    assert row.score == float(course["cnnlab"]["carol"]["total"]) + 1.5


# Fast checks: layout rules, refusals, metadata.


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")
    return path


def test_nbgrader_layout_ids_are_students(tmp_path):
    course = tmp_path / "course"
    (course / "source").mkdir(parents=True)
    a = _touch(course / "submitted" / "alice smith" / "ps1" / "nb.ipynb")
    b = _touch(course / "submitted" / "bob" / "ps1" / "nb.ipynb")
    _touch(course / "submitted" / "bob" / "ps2" / "nb.ipynb")
    assert find_submissions([course / "submitted"], "ps1") == [("alice smith", a), ("bob", b)]
    assert find_submissions([course], "ps1") == [("alice smith", a), ("bob", b)]
    assert find_submissions([a.parent]) == [("alice smith", a)]
    with pytest.raises(ValueError, match="several assignments .*ps1, ps2"):
        find_submissions([course / "submitted"])
    expanded = assignment_folders([course], "ps1")
    assert find_submissions(expanded) == find_submissions([course], "ps1")
    with pytest.raises(NoSubmissionsError, match="assignment 'ps3'"):
        find_submissions([course], "ps3")


def test_linked_student_folders_are_listed_not_followed(tmp_path):
    secret = _touch(tmp_path / "instructor" / "ps1" / "nb.ipynb")
    submitted = tmp_path / "submitted"
    _touch(submitted / "alice" / "ps1" / "nb.ipynb")
    (submitted / "mallory").symlink_to(secret.parent.parent, target_is_directory=True)
    found = dict(find_submissions([submitted], "ps1"))
    assert found["mallory"] == submitted / "mallory"
    again = dict(find_submissions(assignment_folders([submitted], "ps1")))
    assert again == found


def test_other_layouts_still_work(tmp_path):
    a = _touch(tmp_path / "class" / "alice.ipynb")
    b = _touch(tmp_path / "class" / "bob" / "work.ipynb")
    assert find_submissions([tmp_path / "class"]) == [("alice", a), ("bob", b)]


def test_zero_submissions_is_an_error_naming_the_paths(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NoSubmissionsError, match="no submitted notebook") as error:
        find_submissions([empty])
    assert str(empty) in str(error.value)
    out = tmp_path / "grades"
    assert main(["grade", str(EXERCISE), str(empty), "--out", str(out)]) == 2
    assert str(empty) in capsys.readouterr().err
    assert not (out / "grades.csv").exists()


def test_gradebook_options_are_refused_clearly(tmp_path, capsys):
    subs = _touch(tmp_path / "subs" / "alice.ipynb").parent
    out = str(tmp_path / "grades")
    gradebook = tmp_path / "gradebook.db"
    argv = ["grade", str(EXERCISE), str(subs), "--out", out]
    assert main([*argv, "--nbgrader-gradebook", str(gradebook)]) == 2
    assert "needs --assignment" in capsys.readouterr().err
    assert main([*argv, "--nbgrader-gradebook", str(gradebook), "--assignment", "ps1"]) == 2
    assert "no nbgrader gradebook" in capsys.readouterr().err


def test_unknown_assignment_is_refused_before_grading(tmp_path, capsys, monkeypatch):
    from nbgrader.api import Gradebook

    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")  # alembic
    gradebook = tmp_path / "gradebook.db"
    with Gradebook(f"sqlite:///{gradebook}") as gb:
        gb.add_assignment("ps1")
    subs = _touch(tmp_path / "subs" / "alice.ipynb").parent
    argv = ["grade", str(EXERCISE), str(subs), "--out", str(tmp_path / "grades")]
    assert main([*argv, "--nbgrader-gradebook", str(gradebook), "--assignment", "ps9"]) == 2
    err = capsys.readouterr().err
    assert "'ps9' is not in the nbgrader gradebook" in err and "ps1" in err
    assert not (tmp_path / "grades").exists()


def test_no_exercise_notebook_has_an_nbgrader_grade_cell():
    # The check cells print FAIL but never raise: as nbgrader grade cells, nbgrader's autograde
    # would give every stub full marks. Grading is cnnlab's; the cells are locked read-only.
    notebooks = sorted((ROOT / "exercises").glob("*/source.ipynb"))
    assert len(notebooks) >= 6
    for path in notebooks:
        nb = nbformat.read(str(path), as_version=4)
        for cell in nb.cells:
            info = cell.metadata.get("nbgrader", {})
            assert not info.get("grade") and "points" not in info, (path, info)
            if cell.source.startswith("check("):
                assert info.get("locked"), (path, cell.source)


def test_a_timestamp_file_is_read_only_when_it_is_a_plain_time(tmp_path):
    from types import SimpleNamespace

    from cnnlab.exercises.nbgrader_gradebook import _timestamp

    folder = tmp_path / "submitted" / "alice" / "ps1"
    folder.mkdir(parents=True)
    result = SimpleNamespace(path=str(folder / f"{NOTEBOOK}.ipynb"))
    stamp = folder / "timestamp.txt"
    stamp.write_text(STAMP)
    assert _timestamp(result).isoformat() == "2026-12-01T09:00:00"
    stamp.write_text("next tuesday, honest")  # the student's hands touched it: no timestamp
    assert _timestamp(result) is None
    stamp.unlink()
    os.mkfifo(stamp)  # would block a reader
    assert _timestamp(result) is None
    stamp.unlink()
    stamp.symlink_to(tmp_path / "elsewhere.txt")
    assert _timestamp(result) is None
    assert _timestamp(SimpleNamespace(path=str(tmp_path / "alice.ipynb"))) is None


def test_a_folder_merely_named_submitted_loses_nothing(tmp_path):
    a = _touch(tmp_path / "submitted" / "alice.ipynb")
    b = _touch(tmp_path / "submitted" / "bob" / "work.ipynb")
    c = _touch(tmp_path / "submitted" / "carol" / "ps1" / "work.ipynb")
    found = [("alice", a), ("bob", b), ("carol", c)]
    assert find_submissions([tmp_path / "submitted"]) == found
    assert find_submissions([tmp_path / "submitted"], "ps1") == [("carol", c)]  # only ps1
    assert find_submissions(assignment_folders([tmp_path / "submitted"], "ps1")) == [("carol", c)]
