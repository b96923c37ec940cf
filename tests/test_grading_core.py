"""The grader's core: the typed protocol, scoring as a pure function, report file names,
Gradescope's output format, and the preloaded zygote (same grades as fresh interpreters, and
nothing of a job in a student process's memory)."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
from pathlib import Path

import nbformat
import numpy as np
import pytest

from cnnlab.exercises import Limits, grade, grade_submissions, protocol
from cnnlab.exercises.releasing import release
from cnnlab.exercises.reports import gradescope_json, report_names
from cnnlab.exercises.scoring import CallOutcome, PreparedTest, RunOutcome, score_submission
from cnnlab.exercises.spec import Test as SpecTest
from cnnlab.exercises.zygote import Zygote

ROOT = Path(__file__).resolve().parents[1]
EXERCISE = ROOT / "exercises" / "01_cross_correlation"
LIMITS = Limits(timeout=30, memory_mb=512, nproc=64, fsize_mb=64, disk_mb=128)

_spec = importlib.util.spec_from_file_location(
    "hostile_sandbox_cases_core", ROOT / "tests/hostile/sandbox_cases.py"
)
attacks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(attacks)


# --- protocol ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        protocol.Ready(isolation={"pid_namespace": ""}),
        protocol.Refused(isolation={}, missing=["minimal_root"]),
        protocol.CellStarted(cell=3),
        protocol.CellError(cell=2, error="Traceback ...", memory=True),
        protocol.CellsDone(seconds=0.25),
        protocol.Note(text="could not preload torch"),
        protocol.Begin(call=4),
        protocol.End(call=4, status="ok", seconds=0.5, sha256="ab" * 32),
        protocol.Done(keys_cleared=True),
        protocol.Limits(address_space=True, keyrings_blocked=True, forbidden={"patched": 3}),
        protocol.Reply(nonce="f" * 32, status="not_implemented"),
    ],
    ids=lambda m: type(m).__name__,
)
def test_every_message_survives_its_line(message):
    line = protocol.encode(message)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert protocol.decode(line) == message


@pytest.mark.parametrize(
    "line",
    [
        b"not json",
        b"[]",
        b'{"e": "unknown"}',
        b'{"e": "begin"}',  # a required field missing
        b'{"e": "begin", "call": "3"}',  # a string where an int belongs
        b'{"e": "begin", "call": true}',  # a bool is not an int
        b'{"e": "end", "call": 1, "status": "passed"}',  # not a call status
        b'{"e": "cells_done", "seconds": NaN}',
        b'{"e": "ready", "isolation": ["minimal_root"]}',
    ],
)
def test_a_malformed_line_is_no_message(line):
    assert protocol.decode(line) is None


def test_long_text_is_cut_on_decoding():
    line = protocol.encode(protocol.CellError(cell=1, error="x" * 10_000))
    assert len(protocol.decode(line).error) == protocol.MAX_TEXT


# --- scoring ----------------------------------------------------------------------------------


def _prepared(*points_hidden: tuple[float, bool]) -> list[PreparedTest]:
    prepared = []
    for index, (points, hidden) in enumerate(points_hidden):
        test = SpecTest(f"t{index}", f"f{index}", (), lambda: 0, points=points, hidden=hidden)
        prepared.append(PreparedTest(test, (), {}, np.array([1.0, 2.0])))
    return prepared


RIGHT = CallOutcome("ok", "", np.array([1.0, 2.0]))
WRONG = CallOutcome("ok", "", np.array([1.0, 3.0]))
TESTS = _prepared((1, False), (2, False), (3, True))


def _outcome(**fields) -> RunOutcome:
    return RunOutcome(runs=1, **fields)


def test_score_is_the_points_of_the_passed_tests():
    result = score_submission("a", "a.ipynb", TESTS, _outcome(calls={0: RIGHT, 1: WRONG, 2: RIGHT}))
    assert [t.status for t in result.tests] == ["passed", "failed", "passed"]
    assert (result.score, result.max_score, result.status) == (4.0, 6.0, "ok")


def test_an_invalid_notebook_scores_zero_with_its_reason():
    result = score_submission("a", "a.ipynb", TESTS, RunOutcome(), invalid="not JSON")
    assert result.status == "invalid" and result.score == 0
    assert all(t.status == "error" and t.message == "not JSON" for t in result.tests)


def test_a_refusal_is_not_graded_whatever_else_happened():
    outcome = _outcome(refused=("minimal_root",), timeout="the submission ran out", crashed="x")
    result = score_submission("a", "a.ipynb", TESTS, outcome)
    assert result.status == "error" and result.score == 0
    assert any("not graded" in n and "minimal_root" in n for n in result.notes)
    assert all(t.message == "not run" for t in result.tests)


def test_a_timeout_names_what_ran_out_in_every_test_not_run():
    where = "the submission ran out of its 5 s in cell 7 of the notebook"
    result = score_submission("a", "a.ipynb", TESTS, _outcome(calls={0: RIGHT}, timeout=where))
    assert result.status == "timeout" and result.score == 1
    assert [t.message for t in result.tests[1:]] == [f"not run: {where}"] * 2
    assert where in result.notes


def test_precedence_of_statuses():
    memory = score_submission("a", "p", TESTS, _outcome(memory=True, crashed="ended"))
    assert memory.status == "memory"
    crashed = score_submission("a", "p", TESTS, _outcome(calls={0: RIGHT}, crashed="ended"))
    assert crashed.status == "crashed" and "ended" in crashed.notes
    assert crashed.tests[1].status == "crashed"
    cell = _outcome(calls={0: RIGHT, 1: RIGHT, 2: RIGHT}, cell_errors=("cell 1: boom",))
    assert score_submission("a", "p", TESTS, cell).status == "error"
    calls = {0: RIGHT, 1: CallOutcome("not_implemented"), 2: CallOutcome("missing", "gone")}
    result = score_submission("a", "p", TESTS, _outcome(calls=calls))
    assert [t.status for t in result.tests] == ["passed", "not_implemented", "missing"]
    assert result.status == "error"  # a missing function is an error, not a wrong answer
    assert "define `f2` with this exact name" in result.tests[2].message


def test_runs_combine():
    first = _outcome(calls={0: RIGHT}, cell_errors=("cell 0: a",), student_seconds=1.0)
    later = _outcome(calls={1: WRONG}, cell_errors=("cell 0: b",), student_seconds=2.0)
    both = first.then(later)
    assert set(both.calls) == {0, 1} and both.runs == 2 and both.student_seconds == 3.0
    assert both.cell_errors == ("cell 0: a",)  # a restarted worker has seen hidden inputs
    assert RunOutcome().then(first).cell_errors == ("cell 0: a",)


# --- reports ----------------------------------------------------------------------------------


def test_report_names_never_collide():
    ids = ["alice smith", "alice_smith", "Alice_Smith", "alice_smith-2", "../etc", ".hidden", ""]
    names = report_names(ids)
    assert len({n.casefold() for n in names.values()}) == len(ids)
    # A safe id keeps its name (the first in sorted order where two differ only in case).
    assert names["Alice_Smith"] == "Alice_Smith" and names["alice_smith-2"] == "alice_smith-2"
    assert all("/" not in n and not n.startswith(".") and n for n in names.values())
    assert report_names(list(reversed(ids))) == names


def test_gradescope_output_is_plain_text():
    result = score_submission("a", "p", TESTS, _outcome(calls={0: RIGHT}, crashed="ended"))
    data = gradescope_json(result)
    assert data["output_format"] == "text" and data["test_output_format"] == "text"
    assert all(t["output_format"] == "text" for t in data["tests"])
    assert [t["visibility"] for t in data["tests"]] == ["visible", "visible", "after_published"]


# --- the zygote -------------------------------------------------------------------------------


def test_the_zygote_is_single_threaded_and_refuses_to_hold_a_forbidden_module():
    env = {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    clean = Zygote(["numpy"], ["cnnlab.shapes"], env)
    try:
        assert clean.tainted == [] and clean.threads == 1 and clean.failed == {}
    finally:
        clean.close()
    tainted = Zygote(["numpy", "cnnlab.shapes"], ["cnnlab.shapes"], env)
    tainted.close()
    assert tainted.tainted == ["cnnlab.shapes"]


@pytest.fixture(scope="module")
def class_of_three(tmp_path_factory):
    """A solution, the released stub and an honest wrong answer of exercise 01."""
    folder = tmp_path_factory.mktemp("class")
    release(EXERCISE, folder / "release")
    stub = next((folder / "release").rglob("student.ipynb"))
    subs = folder / "subs"
    subs.mkdir()
    (subs / "solution.ipynb").write_bytes((EXERCISE / "source.ipynb").read_bytes())
    (subs / "stub.ipynb").write_bytes(stub.read_bytes())
    wrong = attacks._wrong(EXERCISE)
    (subs / "wrong.ipynb").write_text(json.dumps(wrong))
    return subs


def _table(results):
    return [(r.id, r.status, r.score, [(t.name, t.status) for t in r.tests]) for r in results]


def test_zygote_workers_grade_as_fresh_interpreters_do(class_of_three):
    options = dict(limits=LIMITS, progress=False, allow_weak_isolation=os.geteuid() != 0)
    forked = grade_submissions(EXERCISE, [class_of_three], zygote=True, **options)
    fresh = grade_submissions(EXERCISE, [class_of_three], zygote=False, **options)
    assert _table(forked) == _table(fresh)
    scores = {r.id: r.score for r in forked}
    assert scores["solution"] == forked[0].max_score and scores["stub"] == 0
    assert 0 < scores["wrong"] < forked[0].max_score
    if os.geteuid() == 0:
        assert all(r.missing_protections == [] for r in forked)


@pytest.mark.skipif(os.geteuid() != 0, reason="the full sandbox needs root")
def test_a_student_process_holds_no_call_no_input_and_no_other_path(tmp_path):
    subs = tmp_path / "subs"
    other = "zz-other-student-7c1e"
    (subs / other).mkdir(parents=True)
    (subs / other / "nb.ipynb").write_bytes((EXERCISE / "source.ipynb").read_bytes())
    attacks.memory_snoop(subs / "snoop" / "nb.ipynb", EXERCISE, other)
    results = {
        r.id: r
        for r in grade_submissions(EXERCISE, [subs], limits=LIMITS, progress=False, zygote=True)
    }
    found = attacks.cases.report(results["snoop"], "SNOOP-REPORT")
    assert found["call_dicts"] == 0 and found["npy_blobs"] == 0
    assert found["secret_paths"] == 0 and found["hide_lists"] == 0
    extra = {int(fd): target for fd, target in found["fds"].items() if int(fd) > 4}
    assert all(t.startswith("/scratch") or t.startswith("/proc") for t in extra.values()), extra
    assert results[other].score == results[other].max_score


def test_reports_keep_ids_verbatim_and_files_apart(tmp_path):
    subs = tmp_path / "subs"
    for ident, source in [
        ("alice smith", EXERCISE / "source.ipynb"),
        ("alice_smith", None),
    ]:
        (subs / ident).mkdir(parents=True)
        target = subs / ident / "nb.ipynb"
        if source is None:
            target.write_text(json.dumps(attacks._wrong(EXERCISE)))
        else:
            target.write_bytes(source.read_bytes())
    out = tmp_path / "out"
    results = grade(
        EXERCISE,
        [subs],
        out,
        limits=LIMITS,
        progress=False,
        allow_weak_isolation=os.geteuid() != 0,
    )
    with open(out / "grades.csv", newline="") as handle:
        rows = {row["id"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"alice smith", "alice_smith"}
    files = json.loads((out / "files.json").read_text())
    by_id = {r.id: r for r in results}
    for ident in rows:
        feedback = (out / files[ident]["feedback"]).read_text()
        assert f"submission `{ident}`" in feedback
        gradescope = json.loads((out / files[ident]["results"]).read_text())
        assert gradescope["score"] == by_id[ident].score == float(rows[ident]["total"])
    assert by_id["alice smith"].score == by_id["alice smith"].max_score
    assert by_id["alice_smith"].score < by_id["alice_smith"].max_score


def test_a_timeout_names_the_cell_it_happened_in(tmp_path):
    notebook = attacks._wrong(EXERCISE)
    notebook.cells.append(nbformat.v4.new_code_cell("import time\ntime.sleep(60)"))
    path = tmp_path / "slow.ipynb"
    path.write_text(json.dumps(notebook))
    limits = Limits(timeout=4, memory_mb=512, nproc=64, fsize_mb=64, disk_mb=128)
    (result,) = grade_submissions(
        EXERCISE, [path], limits=limits, progress=False, allow_weak_isolation=os.geteuid() != 0
    )
    last = len(notebook.cells) - 1
    expected = f"the submission ran out of its 4 s in cell {last} of the notebook"
    assert result.status == "timeout" and expected in result.notes
    assert all(t.message == f"not run: {expected}" for t in result.tests)


def test_a_dead_zygote_costs_no_grade(class_of_three):
    from cnnlab.exercises.grading import GradingSession
    from cnnlab.exercises.submissions import find_submissions

    found = find_submissions([class_of_three])
    options = dict(limits=LIMITS, allow_weak_isolation=os.geteuid() != 0)
    with GradingSession(EXERCISE, hide=[str(class_of_three)], **options) as session:
        first = session.grade(found)
        assert session.grader.zygote is not None
        session.grader.zygote.process.kill()
        session.grader.zygote.process.wait()
        with pytest.warns(UserWarning, match="fresh interpreters"):
            second = session.grade(found)
    assert _table(second) == _table(first)


def test_hidden_paths_cover_an_nbgrader_course(tmp_path):
    from cnnlab.exercises.grading import hidden_paths
    from cnnlab.exercises.spec import load_exercise

    notebook = tmp_path / "course" / "submitted" / "alice" / "ps1" / "nb.ipynb"
    out = tmp_path / "out"
    hide = hidden_paths(load_exercise(EXERCISE), [notebook], out)
    assert str(tmp_path / "course") in hide  # its source/ holds the solutions
    assert {str(notebook.parent), str(notebook), str(out), str(EXERCISE)} <= set(hide)


# --- what an independent attack found ---------------------------------------------------------


def _notebook_with(cell: str) -> str:
    return json.dumps(attacks.cases._append(attacks._wrong(EXERCISE), cell))


def test_reports_survive_what_a_student_controls(tmp_path):
    """A lone surrogate in an error, a file name that is not UTF-8, a 250-byte name and an id
    that would break out of Markdown: every submission gets its row, feedback and results."""
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "control.ipynb").write_bytes((EXERCISE / "source.ipynb").read_bytes())
    (subs / "surrogate.ipynb").write_text(_notebook_with('raise RuntimeError("bad \\udcff x")'))
    odd = os.fsencode(subs) + b"/bad\xffname.ipynb"
    with open(odd, "w") as handle:
        handle.write(_notebook_with("pass"))
    (subs / "long").mkdir()  # two notebooks: ids long/x and long/aaa... (254 characters)
    (subs / "long" / "x.ipynb").write_text(_notebook_with("pass"))
    (subs / "long" / ("a" * 249 + ".ipynb")).write_text(_notebook_with("pass"))
    (subs / "x`<img src=x onerror=alert(1)>`.ipynb").write_text(_notebook_with("pass"))
    out = tmp_path / "out"
    results = grade(
        EXERCISE, [subs], out, limits=LIMITS, progress=False, allow_weak_isolation=os.geteuid() != 0
    )
    assert len(results) == 6
    with open(out / "grades.csv", encoding="utf-8", newline="") as handle:
        rows = {row["id"]: row for row in csv.DictReader(handle)}
    assert "bad\\xffname" in rows and float(rows["control"]["total"]) == 14
    files = json.loads((out / "files.json").read_text())
    assert set(files) == set(rows)
    for entry in files.values():
        assert "error" not in entry
        assert (out / entry["feedback"]).is_file() and (out / entry["results"]).is_file()
        assert len(Path(entry["feedback"]).name.encode()) < 255
    surrogate = (out / files["surrogate"]["feedback"]).read_text()
    assert "\\udcff" in surrogate
    tricky = (out / files["x`<img src=x onerror=alert(1)>`"]["feedback"]).read_text()
    assert "submission `` x`<img src=x onerror=alert(1)>` ``" in tricky


def test_a_student_cannot_take_another_students_id(tmp_path):
    from cnnlab.exercises.submissions import find_submissions

    course = tmp_path / "course"
    for student, names in [("li", ["cross_correlation", "wei", "wei-2"]), ("li-wei", ["x"])]:
        folder = course / "submitted" / student / "ps1"
        folder.mkdir(parents=True)
        for name in names:
            (folder / f"{name}.ipynb").write_text("{}")
    (course / "nbgrader_config.py").write_text("")
    ids = dict(find_submissions([course], "ps1"))
    assert ids["li-wei"].parent.parent.name == "li-wei"
    assert {i for i in ids if i.startswith("li/")} == {"li/cross_correlation", "li/wei", "li/wei-2"}
    flat = tmp_path / "flat"
    (flat / "bob").mkdir(parents=True)
    (flat / "bob" / "nb.ipynb").write_text("{}")
    for name in ("bob", "bob-2"):
        (flat / f"{name}.ipynb").write_text("{}")
    found = find_submissions([flat])
    assert len({i for i, _ in found}) == 3 and "bob-2" in dict(found)


def test_a_hidden_call_that_hangs_is_not_named(tmp_path):
    cell = (
        "_fast = conv2d\n"
        "def conv2d(x, weight, bias=None, stride=1, padding=0):\n"
        "    if np.shape(x)[-1] == 512:\n"
        "        while True:\n"
        "            pass\n"
        "    return _fast(x, weight, bias, stride, padding)\n"
    )
    path = tmp_path / "hang.ipynb"
    path.write_text(_notebook_with(cell))
    (result,) = grade_submissions(
        EXERCISE, [path], limits=LIMITS, progress=False, allow_weak_isolation=os.geteuid() != 0
    )
    assert result.status == "timeout"
    assert "a hidden test's call took longer than its time limit" in result.notes
    assert not any("conv2d_vectorised_large_layer" in n for n in result.notes)


def test_a_hidden_seed_changes_the_hidden_inputs_only(monkeypatch):
    from cnnlab.exercises.grading import _prepare
    from cnnlab.exercises.spec import load_exercise

    def inputs(seed):
        if seed is None:
            monkeypatch.delenv("CNNLAB_HIDDEN_SEED", raising=False)
        else:
            monkeypatch.setenv("CNNLAB_HIDDEN_SEED", seed)
        return {p.test.name: (p.test.hidden, p.args) for p in _prepare(load_exercise(EXERCISE))}

    plain, term1, term1_again, term2 = inputs(None), inputs("t1"), inputs("t1"), inputs("t2")

    def same(a, b):
        return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b, strict=True))

    for name, (hidden, args) in plain.items():
        assert same(term1[name][1], term1_again[name][1])  # still reproducible
        if not hidden:
            assert same(args, term1[name][1])
    randomised = [
        n
        for n, (h, a) in plain.items()
        if h and callable(next(t for t in load_exercise(EXERCISE).tests if t.name == n).args)
    ]
    assert randomised and all(not same(term1[n][1], term2[n][1]) for n in randomised)


KILLED_RUN = """
import sys
from cnnlab.exercises import Limits, grade_submissions
grade_submissions(sys.argv[1], [sys.argv[2]], progress=False,
                  limits=Limits(timeout=60, memory_mb=512, nproc=64, fsize_mb=64, disk_mb=64))
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts and cgroups are made as root")
def test_what_a_killed_run_leaves_is_swept_by_the_next(tmp_path):
    import signal
    import subprocess
    import sys
    import tempfile
    import time

    from cnnlab.exercises import leftovers
    from cnnlab.exercises.grading import GradingSession

    def runs() -> set[str]:
        return {p.name for p in Path(tempfile.gettempdir()).glob(f"{leftovers.RUN_PREFIX}*")}

    slow = tmp_path / "slow.ipynb"
    slow.write_text(_notebook_with("import time\ntime.sleep(50)"))
    before = runs()
    with GradingSession(EXERCISE, hide=[], limits=LIMITS) as live:  # a live run beside it
        process = subprocess.Popen(
            [sys.executable, "-c", KILLED_RUN, str(EXERCISE), str(slow)],
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # until its worker's scratch is mounted
                mine = runs() - before - {live.workdir.name}
                mounted = [m for r in mine for m in leftovers._mounts_under(f"/tmp/{r}")]
                if mounted:
                    break
                time.sleep(0.2)
            assert mounted, "the run never started a worker"
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        (killed,) = mine
        assert (Path(tempfile.gettempdir()) / killed / "inputs").is_dir()  # hidden inputs left
        groups = [g for g in leftovers._stale_cgroups() if f"{process.pid}." in g]
        assert groups
        # The student's code died with the grading process (parent-death signals down the chain).
        deadline = time.monotonic() + 10
        while any(Path(g, "cgroup.procs").read_text().split() for g in groups):
            assert time.monotonic() < deadline, "the killed run's worker outlived it"
            time.sleep(0.2)
        swept = leftovers.sweep()
        assert swept["folders"] >= 1 and swept["mounts"] >= 1 and swept["cgroups"] >= 1
        assert killed not in runs() and live.workdir.is_dir()  # the live run is untouched
        assert not [g for g in leftovers._stale_cgroups() if f"{process.pid}." in g]
        assert not leftovers._mounts_under(f"/tmp/{killed}")


def test_student_text_cannot_drive_markdown_or_a_terminal(tmp_path):
    from cnnlab.exercises.reports import feedback_markdown
    from cnnlab.exercises.spec import load_exercise

    link = '<a href="javascript:alert(1)">full marks</a>'
    cell = f"!a` {link} `\nraise SystemExit('\\x1b]52;c;AAAA\\x07 \\x1b[2J')"
    path = tmp_path / "x\x1b[2J.ipynb"
    path.write_text(_notebook_with(cell))
    (result,) = grade_submissions(
        EXERCISE, [path], limits=LIMITS, progress=False, allow_weak_isolation=os.geteuid() != 0
    )
    text = feedback_markdown(result, load_exercise(EXERCISE))
    assert "\x1b" not in text and "\\x1b" in text  # escapes shown, never sent
    (note,) = [line for line in text.splitlines() if "IPython line" in line]
    assert note.endswith(f"IPython line `` !a` {link} ` `` skipped")  # one unbroken code span


def test_uid_reservations_refuse_a_folder_others_can_change(tmp_path):
    from cnnlab.exercises.grading import _private_folder, _same_file

    shared = tmp_path / "open" / "uids"
    shared.parent.mkdir()
    shared.mkdir(mode=0o777)
    os.chmod(shared, 0o777)
    with pytest.raises(RuntimeError, match="no one else may write"):
        _private_folder(shared)
    mine = tmp_path / "mine" / "uids"
    _private_folder(mine)
    assert mine.is_dir() and not mine.stat().st_mode & 0o077
    lock = mine / "1.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        assert _same_file(fd, lock)
        lock.unlink()
        lock.write_text("")
        assert not _same_file(fd, lock)  # a lock file replaced under a holder is no reservation
    finally:
        os.close(fd)


def test_a_made_up_id_never_lands_on_a_gradebook_student():
    from cnnlab.exercises.nbgrader_gradebook import _students
    from cnnlab.exercises.scoring import SubmissionResult

    def result(ident, path):
        return SubmissionResult(ident, path, "ok", 1.0, 1.0)

    ok = _students([result("bob", "/a/bob.ipynb")], "ps1", "nb")
    assert list(ok) == ["bob"]
    with pytest.raises(ValueError, match="names no student"):
        _students([result("bob", "/a/bob.ipynb"), result("bob-2", "/b/bob.ipynb")], "ps1", "nb")
