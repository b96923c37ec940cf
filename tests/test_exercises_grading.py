"""The grader against the instructor solution, the released notebook and hostile submissions.

One batch holds every case and is graded once (module fixture), with short limits; each test
then checks one case. The baseline is ``honest_wrong``, an honest attempt whose ``corr2d`` is
right and whose ``conv2d`` flips the kernel (a convolution, not a cross-correlation): no attack
may earn more than it.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import secrets
import select
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest

from cnnlab.exercises import Limits, grade, load_exercise, release
from cnnlab.exercises.removal import remove_tree

ROOT = Path(__file__).resolve().parents[1]
EXERCISE = ROOT / "exercises" / "01_cross_correlation"
LIMITS = Limits(timeout=15, memory_mb=512, nproc=32, fsize_mb=64, disk_mb=64)

_spec = importlib.util.spec_from_file_location("hostile_cases", ROOT / "tests/hostile/cases.py")
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)

HOSTILE = [
    "h_infinite_loop",
    "h_endless_call",
    "h_memory_bomb",
    "h_fork_bomb",
    "h_os_exit",
    "h_sys_exit",
    "h_fake_score",
    "h_write_reports",
    "h_patch_builtins",
    "h_always_equal",
    "h_read_hidden",
    "h_forbidden_import",
    "h_huge_output",
    "h_kill_everything",
    "h_malformed_json",
    "h_renamed_function",
    "h_changed_cell_type",
    "h_forged_events",
    "h_late_answer",
    "h_forbidden_module",
    "h_setsid_escape",
    "h_deep_tree",
    "h_fill_disk",
    "h_bypass_forbidden",
    "h_read_host_files",
    "h_unix_socket",
]


class ProcessWatch:
    """Watch the host's ``/proc`` for processes whose name (``comm``) is ``name``.

    A sandboxed process cannot write anywhere the test can read, but the host sees every
    process, whatever PID namespace it is in: ``seen`` holds the times one was running.
    """

    def __init__(self, name: str) -> None:
        self.name, self.seen, self.stopped = name, [], threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def running(self) -> bool:
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/comm") as handle:
                        if handle.read().strip() == self.name:
                            return True
                except OSError:
                    continue
        return False

    def _poll(self) -> None:
        while not self.stopped.wait(0.05):
            if self.running():
                self.seen.append(time.time())

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()


class SocketServers:
    """Unix sockets of the host a submission might try: under /tmp, under /run, abstract."""

    def __init__(self, tag: str) -> None:
        self.paths, self.sockets, self.accepted = [], [], []
        candidates = [
            os.path.join(tempfile.gettempdir(), f"cnnlab-sock-{tag}"),
            f"/run/cnnlab-{tag}.sock",
            f"\0cnnlab-abstract-{tag}",
        ]
        for path in candidates:
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                server.bind(path)
            except OSError:
                server.close()
                continue
            if not path.startswith("\0"):
                os.chmod(path, 0o777)
            server.listen(8)
            server.setblocking(False)
            self.paths.append(path)
            self.sockets.append(server)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopped.is_set() and self.sockets:
            ready, _, _ = select.select(self.sockets, [], [], 0.1)
            for server in ready:
                try:
                    connection, _ = server.accept()
                except OSError:
                    continue
                self.accepted.append(server.getsockname())
                connection.close()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()
        for server, path in zip(self.sockets, self.paths, strict=True):
            server.close()
            if not path.startswith("\0"):
                try:
                    os.unlink(path)
                except OSError:
                    pass


def plant_host_files(tag: str, beside_submissions: Path) -> tuple[list[str], list[str], list[Path]]:
    """World-readable files a submission must not read: (files, folders, what to remove)."""
    files, folders, created = [], [], []
    for parent in (Path(tempfile.gettempdir()), Path("/srv"), Path("/home")):
        folder = parent / f"cnnlab-secret-{tag}"
        if not parent.is_dir():
            continue
        try:
            (folder / "course2" / "01_other").mkdir(parents=True)
        except OSError:
            continue
        created.append(folder)
        (folder / "gradebook.db").write_text("SECRET gradebook")
        (folder / "course2" / "01_other" / "source.ipynb").write_text("SECRET hidden tests")
        for path in [folder, *folder.rglob("*")]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        files += [str(folder / "gradebook.db"), str(folder / "course2/01_other/source.ipynb")]
        folders.append(str(folder))
    beside = beside_submissions / "gradebook.db"
    beside.write_text("SECRET gradebook beside the submissions")
    os.chmod(beside, 0o644)
    files += [str(beside), str(beside_submissions / "submissions" / "solution_a.ipynb")]
    files += [str(ROOT / ".git" / "HEAD"), str(ROOT / ".git" / "config")]
    files += [str(EXERCISE / "source.ipynb"), str(ROOT / "README.md"), "/etc/shadow"]
    folders += [str(beside_submissions), str(ROOT / ".git"), str(ROOT / "exercises")]
    folders += ["/home", "/srv"]
    return files, folders, created


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("grading")
    subs, out = root / "submissions", root / "out"
    escape = Path(tempfile.mkdtemp(prefix="cnnlab-escape-"))
    os.chmod(escape, 0o777)
    tag = secrets.token_hex(4)
    watch = ProcessWatch(f"esc{tag}")  # comm: 15 characters at most
    servers = SocketServers(tag)
    files, folders, planted = plant_host_files(tag, root)
    try:
        described = cases.write_cases(
            subs,
            EXERCISE,
            out,
            escape,
            escape_name=watch.name,
            host_paths=files,
            host_folders=folders,
            sockets=servers.paths,
            repository=ROOT,
        )
        folder = release(EXERCISE, root / "release")
        shutil.copy(folder / "student.ipynb", subs / "released.ipynb")
        results = grade(EXERCISE, [subs], out, limits=LIMITS, jobs=2, progress=False)
        finished = time.time()
        time.sleep(0.3)
    finally:
        watch.stop()
        servers.stop()
        for path in planted:
            remove_tree(path)
    # A second, clean batch: the same honest notebooks graded without the attackers around.
    clean = root / "clean"
    clean.mkdir()
    for ident in ("solution_a", "honest_wrong"):
        shutil.copy(subs / f"{ident}.ipynb", clean / f"{ident}.ipynb")
    clean_results = grade(EXERCISE, [clean], root / "clean_out", limits=LIMITS, progress=False)
    return {
        "by_id": {r.id: r for r in results},
        "ids": [r.id for r in results],
        "described": described,
        "out": out,
        "clean": {r.id: r for r in clean_results},
        "escape": escape,
        "finished": finished,
        "watch": watch,
        "servers": servers,
    }


def test_every_case_is_graded_and_sorted(graded):
    expected = sorted([*graded["described"], "released"])
    assert graded["ids"] == expected
    assert len(HOSTILE) >= 12 and set(HOSTILE) <= set(graded["described"])


def test_solution_scores_full_marks(graded):
    exercise = load_exercise(EXERCISE)
    for ident in ("solution_a", "solution_z", "solution_with_magics"):
        result = graded["by_id"][ident]
        assert result.status == "ok", (ident, result.notes, result.cell_errors)
        assert result.score == exercise.max_score, [(t.name, t.message) for t in result.tests]


def test_magics_are_skipped_with_a_note(graded):
    notes = " ".join(graded["by_id"]["solution_with_magics"].notes)
    assert "%matplotlib inline" in notes and "%%bash" in notes


def test_released_notebook_scores_zero_not_implemented(graded):
    result = graded["by_id"]["released"]
    assert result.score == 0
    assert {t.status for t in result.tests} == {"not_implemented"}
    assert all("not implemented" in t.message for t in result.tests)


def test_honest_wrong_answer_earns_only_corr2d(graded):
    result = graded["by_id"]["honest_wrong"]
    passed = {t.name for t in result.tests if t.passed}
    assert passed == {t.name for t in load_exercise(EXERCISE).tests if t.function == "corr2d"}
    failing = next(t for t in result.tests if t.name == "conv2d_multichannel_bias")
    assert "first at index" in failing.message and "Hint:" in failing.message


def test_attackers_leave_other_grades_unchanged(graded):
    for ident, clean in graded["clean"].items():
        attacked = graded["by_id"][ident]
        assert [(t.name, t.score, t.status) for t in attacked.tests] == [
            (t.name, t.score, t.status) for t in clean.tests
        ]


@pytest.mark.parametrize("ident", HOSTILE)
def test_attack_earns_no_more_than_an_honest_wrong_answer(graded, ident):
    baseline = graded["by_id"]["honest_wrong"].score
    result = graded["by_id"][ident]
    assert result.score <= baseline, (
        ident,
        result.status,
        [(t.name, t.status) for t in result.tests],
    )


@pytest.mark.parametrize(
    "ident, status",
    [
        ("h_infinite_loop", "timeout"),
        ("h_endless_call", "timeout"),
        ("h_memory_bomb", "memory"),
        ("h_os_exit", "crashed"),
        ("h_malformed_json", "invalid"),
    ],
)
def test_status_names_the_failure(graded, ident, status):
    assert graded["by_id"][ident].status == status


def test_infinite_loop_scores_zero(graded):
    assert graded["by_id"]["h_infinite_loop"].score == 0


def test_endless_call_times_out_alone(graded):
    tests = {t.name: t for t in graded["by_id"]["h_endless_call"].tests}
    assert tests["corr2d_kernel_as_large_as_image"].status == "timeout"
    assert tests["conv2d_stride_padding_ints"].status == "failed"  # ran after the timeout


def test_fork_bomb_is_bounded_and_leaves_no_process(graded):
    result = graded["by_id"]["h_fork_bomb"]
    assert any(
        "BlockingIOError" in e or "Resource temporarily unavailable" in e
        for e in result.cell_errors
    )
    if os.geteuid() == 0:
        # The uids this run's workers had (another grading run on the machine has its own).
        used = {
            int(r.protections["slot_uid"])
            for r in graded["by_id"].values()
            if "slot_uid" in r.protections
        }
        assert int(result.protections["slot_uid"]) in used
        leftovers = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    uid = os.stat(f"/proc/{entry}").st_uid
                except FileNotFoundError:
                    continue
                if uid in used:
                    leftovers.append(entry)
        assert leftovers == []


def test_forbidden_functions_raise_in_the_worker(graded):
    result = graded["by_id"]["h_forbidden_import"]
    assert result.score == 0
    messages = " ".join(t.message for t in result.tests)
    assert "cnnlab.numpy.conv2d is forbidden" in messages
    assert "scipy.signal.correlate2d is forbidden" in messages


def test_hidden_files_are_unreadable(graded):
    result = graded["by_id"]["h_read_hidden"]
    if not any(i.startswith("mount_namespace") for i in result.isolation):
        pytest.skip("no mount namespace here: hiding relies on file permissions (see README)")
    assert result.score == graded["by_id"]["honest_wrong"].score


def test_reports_are_the_graders_own(graded):
    out = graded["out"]
    with open(out / "grades.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["id"] for r in rows] == graded["ids"]
    row = next(r for r in rows if r["id"] == "h_write_reports")
    assert float(row["total"]) == graded["by_id"]["h_write_reports"].score
    assert not (out / "results.json").exists()
    for ident, result in graded["by_id"].items():
        data = json.loads((out / "results" / ident / "results.json").read_text())
        assert data["score"] == result.score
        assert {"name", "score", "max_score", "status", "output", "visibility"} <= set(
            data["tests"][0]
        )


def test_feedback_hides_hidden_details(graded):
    text = (graded["out"] / "feedback" / "honest_wrong.md").read_text()
    assert "conv2d_multichannel_bias" in text and "first at index" in text  # visible, detailed
    hidden_line = next(line for line in text.splitlines() if "conv2d_stride_padding_pairs" in line)
    assert "FAIL" in hidden_line and "index" not in hidden_line
    assert len((graded["out"] / "feedback" / "h_huge_output.md").read_text()) < 50_000


def test_changed_cell_type_is_noted(graded):
    notes = " ".join(graded["by_id"]["h_changed_cell_type"].notes)
    assert "changed type" in notes and "markdown" in notes


@pytest.mark.skipif(os.geteuid() != 0, reason="worker uids are used only when grading as root")
def test_concurrent_grading_runs_reserve_disjoint_uids():
    # Two runs at once (two instructors, or tests beside a benchmark) must not share a worker
    # uid: each run's clean-up kills every process of its uids.
    from cnnlab.exercises.grading import _claim_uids

    with _claim_uids(3, 63000) as first, _claim_uids(3, 63000) as second:
        assert len(set(first)) == 3 and len(set(second)) == 3
        assert not set(first) & set(second)
    with _claim_uids(3, 63000) as again:
        assert again == first  # released when the first run ended


def test_forged_end_events_do_not_lift_the_call_limit(graded):
    # A correct per-pixel loop that pre-sends `end` events: its large layer still times out.
    tests = {t.name: t for t in graded["by_id"]["h_forged_end_slow"].tests}
    assert tests["conv2d_vectorised_large_layer"].status == "timeout"
    assert tests["conv2d_single_channel"].passed  # the same loop, in time, on a small layer


def test_forged_events_never_reach_the_reports(graded):
    out = graded["out"]
    texts = [
        (out / "feedback" / "h_forged_events.md").read_text(),
        (out / "results" / "h_forged_events" / "results.json").read_text(),
        (out / "isolation.json").read_text(),
        (out / "grades.csv").read_text(),
    ]
    result = graded["by_id"]["h_forged_events"]
    texts += (
        result.notes + result.cell_errors + result.isolation + [t.message for t in result.tests]
    )
    for text in texts:
        assert "HIDDEN-INPUT" not in text  # forged during calls, when inputs exist
        assert "FORGED-ISOLATION" not in text and "FORGED-NOTE" not in text


def test_answers_changed_after_their_call_are_refused(graded):
    tests = {t.name: t for t in graded["by_id"]["h_late_answer"].tests}
    conv = [t for t in tests.values() if t.function == "conv2d"]
    assert not any(t.passed for t in conv)
    assert any("changed after its call ended" in t.message for t in conv if not t.hidden)


def test_forbidden_modules_cannot_be_imported(graded):
    result = graded["by_id"]["h_forbidden_module"]
    visible = [t for t in result.tests if not t.hidden]
    assert visible and all("is forbidden" in t.message for t in visible)
    messages = " ".join(t.message for t in visible)
    assert "cnnlab.numpy.direct_conv is forbidden" in messages
    assert "cnnlab.numpy.conv._im2col_gemm is forbidden" in messages
    assert "cnnlab._checks._out_size is forbidden" in messages


def test_a_setsid_escapee_dies_with_its_worker(graded):
    # The escapee cannot reach any folder of the host (its heartbeat file stays unwritten),
    # so the host watches it by name in /proc instead.
    watch = graded["watch"]
    assert watch.seen, "the escapee never ran"
    assert max(watch.seen) < graded["finished"]  # it stopped before grading ended
    assert not watch.running()
    assert not (graded["escape"] / "alive").exists()  # and never reached the host's /tmp
    shutil.rmtree(graded["escape"], ignore_errors=True)


def _has(result, protection: str) -> bool:
    return protection in result.protections


def test_host_files_are_unreadable(graded):
    # World-readable files in /tmp, /srv, /home and beside the submissions, another course's
    # notebook, the repository's .git (git show of the solution): none is there.
    result = graded["by_id"]["h_read_host_files"]
    if not _has(result, "minimal_root"):
        pytest.skip("no minimal root here (see isolation.json)")
    assert cases.report(result, "READ-REPORT") == {}
    assert result.score == graded["by_id"]["honest_wrong"].score


def test_host_unix_sockets_are_unreachable(graded):
    result = graded["by_id"]["h_unix_socket"]
    if not (_has(result, "minimal_root") and _has(result, "network_namespace")):
        pytest.skip("no minimal root or network namespace here")
    assert graded["servers"].paths, "no socket could be made to attack"
    assert cases.report(result, "SOCKET-REPORT") == {}
    assert graded["servers"].accepted == []


def test_forbidden_modules_cannot_be_bypassed(graded):
    # Removing the import hook, exec-ing cnnlab's source, loading it by file location,
    # reading its compiled files: the forbidden modules are not on the worker's disk.
    result = graded["by_id"]["h_bypass_forbidden"]
    if not _has(result, "forbidden_modules_absent"):
        pytest.skip("forbidden modules are not covered here (see isolation.json)")
    assert cases.report(result, "BYPASS-REPORT") == {}
    assert result.score <= graded["by_id"]["honest_wrong"].score


def test_a_3000_deep_tree_loses_no_grade(graded):
    # Clean-up never recurses nor follows links: the run completes and grades.csv has everyone.
    result = graded["by_id"]["h_deep_tree"]
    assert 3000 in cases.report(result, "TREE-REPORT").values()  # the tree was made
    assert result.score == graded["by_id"]["honest_wrong"].score
    with open(graded["out"] / "grades.csv") as handle:
        assert [r["id"] for r in csv.DictReader(handle)] == graded["ids"]
    if _has(result, "slot_uid"):
        assert "scratch_discarded" in result.protections


def test_disk_use_is_bounded(graded):
    result = graded["by_id"]["h_fill_disk"]
    if not _has(result, "disk_limit"):
        pytest.skip("no size-limited tmpfs here (grading as a normal user)")
    report = cases.report(result, "FILL-REPORT")
    assert sum(report["written_mb"].values()) <= LIMITS.disk_mb
    assert set(report["errors"]) == {".", "/tmp", "/var/tmp", "/dev/shm", "/run"}
    assert set(report["errors"].values()) == {28}  # ENOSPC: the bound, not a file-size limit
