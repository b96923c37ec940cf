"""Exercise format: solution stripping, release, checksums, reading bad notebooks, self-check."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from cnnlab.cli import main
from cnnlab.exercises import check, load_exercise
from cnnlab.exercises.notebook import read_submission, strip_solutions

EXERCISE = Path(__file__).resolve().parents[1] / "exercises" / "01_cross_correlation"


def test_strip_solutions_keeps_indentation_and_rejects_unbalanced_markers():
    cell = "def f():\n    x = 1\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n"
    assert (
        strip_solutions(cell)
        == "def f():\n    x = 1\n    # YOUR CODE HERE\n    raise NotImplementedError()"
    )
    with pytest.raises(ValueError, match="without"):
        strip_solutions("### BEGIN SOLUTION\nx = 1")


def test_exercise_loads_with_visible_and_hidden_tests():
    exercise = load_exercise(EXERCISE)
    assert {"corr2d", "conv2d"} == set(exercise.functions)
    assert exercise.visible and len(exercise.visible) < len(exercise.tests)
    assert "scipy.signal.correlate2d" in exercise.forbidden


def test_release_writes_a_student_notebook_without_solutions(tmp_path):
    assert main(["release", str(EXERCISE), "--out", str(tmp_path)]) == 0
    folder = tmp_path / EXERCISE.name
    nb = nbformat.read(str(folder / "student.ipynb"), as_version=4)
    text = json.dumps(nb)
    assert "BEGIN SOLUTION" not in text and "sliding_window_view(x" not in text
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert sum(src.count("raise NotImplementedError()") for src in code) == 2
    assert all(c.outputs == [] for c in nb.cells if c.cell_type == "code")
    locked = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("locked")]
    assert locked and all("checksum" in c.metadata["cnnlab"] for c in locked)
    assert not (folder / "tests.py").exists()
    visible = json.loads((folder / "visible_tests.json").read_text())
    hidden = {t.name for t in load_exercise(EXERCISE).tests if t.hidden}
    assert hidden.isdisjoint(t["name"] for t in visible["tests"])


def test_self_check_in_the_released_folder(tmp_path, capsys):
    main(["release", str(EXERCISE), "--out", str(tmp_path)])
    folder = tmp_path / EXERCISE.name

    def corr2d(image, kernel):  # an independent solution: scipy's valid correlation
        from scipy.signal import correlate2d

        return correlate2d(image, kernel, mode="valid")

    check("corr2d", corr2d, folder=folder)
    report = capsys.readouterr().out
    assert "corr2d: 3/3 points" in report and "FAIL" not in report

    def not_done(image, kernel):
        raise NotImplementedError()

    check("corr2d", not_done, folder=folder)
    assert "0/3 points" in capsys.readouterr().out


def test_read_submission_survives_bad_files(tmp_path):
    bad = tmp_path / "bad.ipynb"
    bad.write_text("{not json")
    assert "not a readable notebook" in read_submission(bad).invalid
    empty = tmp_path / "empty.ipynb"
    empty.write_text(json.dumps({"cells": "nope", "nbformat": 4, "metadata": {}}))
    assert read_submission(empty).invalid is not None


def test_symlinked_and_fifo_submissions_are_invalid(tmp_path):
    import os

    from cnnlab.exercises.grading import find_submissions, grade_submissions

    source = Path(__file__).resolve().parents[1] / "exercises" / "01_cross_correlation"
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "alice.ipynb").symlink_to(source / "source.ipynb")  # the instructor's solution
    (subs / "bob").symlink_to(source, target_is_directory=True)
    os.mkfifo(subs / "carol.ipynb")  # would block a reader forever
    found = dict(find_submissions([subs]))
    assert set(found) == {"alice", "bob", "carol"}
    assert found["alice"] == subs / "alice.ipynb"  # the link itself, not its target
    assert "symbolic link" in read_submission(found["alice"]).invalid
    assert "symbolic link" in read_submission(found["bob"]).invalid
    assert "not a regular file" in read_submission(found["carol"]).invalid
    results = grade_submissions(source, [subs], progress=False)
    assert [(r.id, r.status, r.score) for r in results] == [
        ("alice", "invalid", 0.0),
        ("bob", "invalid", 0.0),
        ("carol", "invalid", 0.0),
    ]


def test_an_unreadable_answer_file_is_an_error_not_a_crash(tmp_path):
    from cnnlab.exercises.grading import read_call_outcomes
    from cnnlab.exercises.protocol import End

    (tmp_path / "answer_0.npy").write_bytes(b"")  # np.load raises EOFError
    (tmp_path / "answer_1.npy").write_bytes(b"\x93NUMPY garbage")
    ended = {0: End(call=0, status="ok"), 1: End(call=1, status="ok")}
    outcomes = read_call_outcomes(tmp_path, [0, 1], ended)
    assert outcomes[0].status == "error" and "could not be read" in outcomes[0].detail
    assert outcomes[1].status == "error"
    assert all(o.answer is None for o in outcomes.values())


def test_odd_nbgrader_metadata_is_read_as_none(tmp_path):
    from cnnlab.exercises.notebook import read_submission

    source = json.loads((EXERCISE / "source.ipynb").read_text())
    odd = json.loads(json.dumps(source))
    for cell in odd["cells"]:
        cell.setdefault("metadata", {})["nbgrader"] = "x"
    path = tmp_path / "odd.ipynb"
    path.write_text(json.dumps(odd))
    code = read_submission(path, source)
    assert code.invalid is None and code.cells
    assert any("locked cell" in note and "missing" in note for note in code.notes)
