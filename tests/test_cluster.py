"""Grading on a Dask cluster, with real components started here: a ``dask scheduler`` and two
``dask worker`` processes on 127.0.0.1 (one thread each), from this virtualenv.

One class of 30 notebooks of exercise 01 (solutions, released stubs, honest wrong answers and
hostile ones) is graded locally and on the cluster: the reports must be byte-identical. Then a
Dask worker is killed (SIGKILL to its whole process group: a machine lost) while it grades,
and the client is killed mid-run and rerun: every submission is graded, once, and a rerun
grades only what the journal lacks.
"""

from __future__ import annotations

import contextlib
import csv
import glob
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from cnnlab.exercises import Limits, grade, release
from cnnlab.exercises.cluster import (
    ClusterError,
    _ClusterRun,
    exercise_bundle,
    grade_batch,
    grade_on_cluster,
    grader_digest,
    worker_sessions,
)
from cnnlab.exercises.grading import IsolationError
from cnnlab.exercises.journal import JOURNAL_NAME, Journal, JournalError
from cnnlab.exercises.scoring import SubmissionResult
from cnnlab.exercises.scoring import TestResult as _TestResult

distributed = pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[1]
EXERCISE = ROOT / "exercises" / "01_cross_correlation"
LIMITS = Limits(timeout=30, memory_mb=512, nproc=64, fsize_mb=64, disk_mb=128)
LIMIT_ARGS = ["--timeout", "30", "--memory-mb", "512", "--nproc", "64", "--fsize-mb", "64"]
LIMIT_ARGS += ["--disk-mb", "128"]
WEAK = [] if os.geteuid() == 0 else ["--allow-weak-isolation"]
DASK = Path(sys.executable).parent / "dask"

_spec = importlib.util.spec_from_file_location("hostile_cases", ROOT / "tests/hostile/cases.py")
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)

HOSTILE = [
    "h_infinite_loop",
    "h_os_exit",
    "h_fake_score",
    "h_memory_bomb",
    "h_malformed_json",
    "h_renamed_function",
]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = "1"
    return env


class Cluster:
    """A scheduler and its workers, each `dask` command in a process group of its own."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.workers = folder, {}
        self.file = folder / "scheduler.json"
        self.scheduler = self._start(
            "scheduler",
            [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"]
            + ["--scheduler-file", str(self.file)],
        )
        deadline = time.monotonic() + 60
        while not self.file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.address = json.loads(self.file.read_text())["address"]
        self.client = distributed.Client(self.address, set_as_default=False, timeout=30)

    def _start(self, name: str, command: list[str]) -> subprocess.Popen:
        log = open(self.folder / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        return subprocess.Popen(
            command, cwd=ROOT, env=_env(), stdout=log, stderr=log, start_new_session=True
        )

    def start_worker(self, name: str) -> None:
        before = set(self.client.scheduler_info()["workers"])
        self.workers[name] = self._start(
            name,
            [str(DASK), "worker", self.address, "--nthreads", "1", "--nworkers", "1"]
            + ["--host", "127.0.0.1", "--no-dashboard", "--name", name]
            + ["--preload", "cnnlab.exercises.cluster"],  # the grader, loaded at the start
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            workers = self.client.scheduler_info()["workers"]
            if any(w.get("name") == name for a, w in workers.items() if a not in before):
                return
            time.sleep(0.2)
        raise RuntimeError(f"worker {name} did not register: {self.log(name)}")

    def address_of(self, name: str) -> str:
        workers = self.client.scheduler_info()["workers"]
        return next(a for a, w in workers.items() if w.get("name") == name)

    def kill_worker(self, name: str) -> None:
        """A machine lost: SIGKILL to the worker's whole process group (nanny and worker)."""
        process = self.workers.pop(name)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        self.client.close()
        for group in (list(self.workers.values()), [self.scheduler]):  # workers first
            for process in group:  # a nanny closes its worker, which closes its sessions
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in group:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("dask"))
    try:
        cluster.start_worker("a")
        cluster.start_worker("b")
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def klass(tmp_path_factory) -> Path:
    """30 notebooks: 10 solutions, 6 released stubs, 8 honest wrong answers, 6 hostile."""
    folder = tmp_path_factory.mktemp("class")
    source = nbformat.read(str(EXERCISE / "source.ipynb"), as_version=4)
    stub = release(EXERCISE, tmp_path_factory.mktemp("release")) / "student.ipynb"
    for number in range(10):
        nbformat.write(source, str(folder / f"solution_{number:02d}.ipynb"))
    for number in range(6):
        shutil.copy(stub, folder / f"stub_{number:02d}.ipynb")
    wrong = cases._wrong(source)
    half = nbformat.from_dict(json.loads(json.dumps(source)))
    cases._cell(half, "corr2d").source = cases.WRONG_CORR2D  # one function wrong
    for number in range(4):
        nbformat.write(wrong, str(folder / f"wrong_{number:02d}.ipynb"))
        nbformat.write(half, str(folder / f"half {number:02d}.ipynb"))  # ids with a space
    hostile = tmp_path_factory.mktemp("hostile")
    cases.write_cases(hostile, EXERCISE, tmp_path_factory.mktemp("unused"))
    for name in HOSTILE:
        shutil.copy(hostile / f"{name}.ipynb", folder / f"{name}.ipynb")
    assert len(list(folder.glob("*.ipynb"))) == 30
    return folder


@pytest.fixture(scope="module")
def local_reports(klass, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local")
    grade(EXERCISE, [klass], out, limits=LIMITS, jobs=2, progress=False, **_weak())
    return out


def _weak() -> dict:
    return {"allow_weak_isolation": os.geteuid() != 0}


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _journal(out: Path) -> list[dict]:
    lines = (out / JOURNAL_NAME).read_bytes().splitlines()
    return [json.loads(line) for line in lines[1:]]


def _rows(path: Path) -> dict[str, list[str]]:
    with open(path, newline="") as handle:
        return {row[0]: row for row in list(csv.reader(handle))[1:]}


def _cli(out: Path, submissions: list[Path], scheduler: str, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "cnnlab.cli", "grade", str(EXERCISE)]
    command += [*map(str, submissions), "--out", str(out), "--scheduler", scheduler]
    command += [*LIMIT_ARGS, *WEAK, *extra]
    return subprocess.Popen(
        command, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _bury(held: dict) -> None:
    """Tidy up after a worker process killed outright, as losing its machine would: kill what
    is left in its cgroups, unmount its scratch tmpfs, remove its folders and cgroups."""
    groups = glob.glob(f"/sys/fs/cgroup/*/cnnlab/{held['pid']}.*")
    groups += glob.glob(f"/sys/fs/cgroup/cnnlab/{held['pid']}.*")
    deadline = time.monotonic() + 10
    for group in groups:
        while time.monotonic() < deadline:
            try:
                pids = Path(group, "cgroup.procs").read_text().split()
            except OSError:
                break
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            time.sleep(0.05)
        with contextlib.suppress(OSError):
            os.rmdir(group)
    for session in held["sessions"]:
        workdir = session["workdir"]
        with open("/proc/self/mounts") as handle:
            mounts = [line.split()[1] for line in handle]
        for mount in sorted((m for m in mounts if m.startswith(workdir + "/")), reverse=True):
            subprocess.run(["umount", "-l", mount], check=False)
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(session["folder"], ignore_errors=True)


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


# ------------------------------------------------------------------------------------------


def test_cluster_reports_are_byte_identical_to_local_grading(
    cluster, klass, local_reports, tmp_path
):
    results = grade_on_cluster(
        EXERCISE, [klass], tmp_path, scheduler=cluster.address, limits=LIMITS, progress=False,
        **_weak(),
    )  # fmt: skip
    assert len(results) == 30
    local, remote = _tree(local_reports), _tree(tmp_path)
    for name in ("grades.csv", "files.json"):
        assert remote[name] == local[name], name
    reports = [n for n in local if n.startswith(("feedback/", "results/"))]
    assert len(reports) == 60
    assert [n for n in remote if n.startswith(("feedback/", "results/"))] == reports
    for name in reports:
        assert remote[name] == local[name], name

    rows = _rows(tmp_path / "grades.csv")
    assert {rows[f"solution_{i:02d}"][-2] for i in range(10)} == {"14"}
    assert {rows[f"stub_{i:02d}"][-2] for i in range(6)} == {"0"}
    assert rows["h_infinite_loop"][1] == "timeout" and rows["h_os_exit"][1] == "crashed"
    assert rows["h_malformed_json"][1] == "invalid"
    honest = float(rows["wrong_00"][-2])
    assert all(float(rows[name][-2]) <= honest for name in HOSTILE)

    # Every submission graded once, by the workers of this cluster, with every protection.
    journal = _journal(tmp_path)
    assert sorted(e["id"] for e in journal) == sorted(rows)
    workers = {cluster.address_of("a"), cluster.address_of("b")}
    assert {e["worker"] for e in journal} == workers  # both workers took part
    isolation = json.loads((tmp_path / "isolation.json").read_text())
    assert sorted(isolation["submissions"]) == sorted(rows)
    if os.geteuid() == 0:
        for ident, record in isolation["submissions"].items():
            assert record["missing"] == [], ident
            if ident != "h_malformed_json":
                assert "minimal_root" in record["had"] and "slot_uid" in record["had"], ident


def test_interrupted_client_resumes_and_grades_only_what_is_missing(cluster, klass, local_reports, tmp_path):  # fmt: skip
    notebooks = sorted(p for p in klass.glob("*.ipynb") if p.stem.startswith(("solution", "stub", "wrong")))  # fmt: skip
    out = tmp_path / "out"
    journal = out / JOURNAL_NAME

    def journaled() -> int:
        return journal.read_bytes().count(b"\n") - 1 if journal.exists() else 0

    # Ctrl-C: the client stops at once, says what it kept, and exits with status 130.
    first = _cli(out, notebooks, cluster.address, "--no-progress")
    _wait_for(lambda: journaled() >= 2, 120, "results")
    first.send_signal(signal.SIGINT)
    _, errors = first.communicate(timeout=60)
    assert first.returncode == 130, errors[-3000:]
    assert f"interrupted: {journaled()} of {len(notebooks)} graded and kept in" in errors
    assert not (out / "grades.csv").exists()

    # Killed outright, with a line torn: the journal keeps every whole line.
    interrupted = journaled()
    killed = _cli(out, notebooks, cluster.address, "--no-progress")
    _wait_for(lambda: journaled() >= interrupted + 2, 120, "results")
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    done_before = _journal(out)
    assert 4 <= len(done_before) < len(notebooks), "interrupt earlier: the class was done"
    kept = journal.read_bytes()
    with open(journal, "ab") as handle:  # a line torn by the kill
        handle.write(b'{"id":"stub_00","sha256":"')

    second = _cli(out, notebooks, cluster.address)
    output, errors = second.communicate(timeout=180)
    assert second.returncode == 0, errors[-3000:]
    graded_before = {e["id"] for e in done_before}
    missing = len(notebooks) - len(graded_before)
    assert f"{len(graded_before)} of {len(notebooks)} already graded, {missing} to grade" in errors

    # The journal kept the first run's lines as they were, dropped the torn one, and the rerun
    # added exactly the missing submissions, once each, all in one run.
    after = journal.read_bytes()
    assert after.startswith(kept) and b'"sha256":"{"' not in after
    added = _journal(out)[len(done_before) :]
    assert sorted(e["id"] for e in added) == sorted({p.stem for p in notebooks} - graded_before)
    assert len({e["run"] for e in added}) == 1
    assert {e["run"] for e in added}.isdisjoint(e["run"] for e in done_before)
    assert len({e["run"] for e in done_before}) == 2  # the interrupted run and the killed one

    # The reports cover the whole class, as local grading has it.
    local = _rows(local_reports / "grades.csv")
    assert _rows(out / "grades.csv") == {p.stem: local[p.stem] for p in notebooks}
    assert len(output.splitlines()) == len(notebooks) + 1

    # A finished run, rerun, grades nothing; another exercise's run is refused.
    third = _cli(out, notebooks, cluster.address)
    _, errors = third.communicate(timeout=120)
    assert third.returncode == 0 and f"{len(notebooks)} of {len(notebooks)} already" in errors
    assert _journal(out)[len(done_before) :] == added
    other = ROOT / "exercises" / "02_shapes"
    command = [sys.executable, "-m", "cnnlab.cli", "grade", str(other), str(notebooks[0])]
    command += ["--out", str(out), "--scheduler", cluster.address]
    refused = subprocess.run(command, cwd=ROOT, env=_env(), capture_output=True, text=True)
    assert refused.returncode == 2
    assert "journal of exercise '01_cross_correlation'" in refused.stderr
    assert "not of '02_shapes'" in refused.stderr


def test_a_dead_worker_s_submissions_are_graded_elsewhere_once(cluster, klass, local_reports, tmp_path):  # fmt: skip
    cluster.start_worker("victim")
    victim = cluster.address_of("victim")
    notebooks = sorted(p for p in klass.glob("*.ipynb") if not p.stem.startswith("h_"))
    out = tmp_path / "out"
    client = _cli(out, notebooks, cluster.address, "--no-progress")
    journal = out / JOURNAL_NAME

    running: list[str] = []

    def victim_grading() -> bool:
        if not (journal.exists() and journal.read_bytes().count(b"\n") >= 3):
            return False
        keys = cluster.client.processing().get(victim, ())
        running[:] = [str(k) for k in keys if "cnnlab-grade" in str(k)]
        return bool(running)

    _wait_for(victim_grading, 120, "the victim to grade")
    held = cluster.client.run(worker_sessions, workers=[victim])[victim]
    cluster.kill_worker("victim")
    _bury(held)
    output, errors = client.communicate(timeout=180)
    assert client.returncode == 0, errors[-3000:]

    journal = _journal(out)
    ids = [e["id"] for e in journal]
    assert sorted(ids) == sorted(p.stem for p in notebooks)  # each once
    assert victim not in {e["worker"] for e in journal[-5:]}  # the rest went elsewhere
    # What the victim was grading when it died was graded again, on another worker.
    order = sorted(p.stem for p in notebooks)
    lost = {order[int(key.rsplit("-", 1)[1])] for key in running}
    assert all(e["worker"] != victim for e in journal if e["id"] in lost), (lost, journal)
    local = _rows(local_reports / "grades.csv")
    assert _rows(out / "grades.csv") == {p.stem: local[p.stem] for p in notebooks}
    assert "grader error" not in (out / "grades.csv").read_text()


# ------------------------------------------------------------------------------------------
# The parts alone


def test_bad_scheduler_addresses_are_refused_with_a_reason(klass, tmp_path):
    with pytest.raises(ClusterError, match="tcp://HOST:PORT"):
        grade_on_cluster(EXERCISE, [klass / "stub_00.ipynb"], tmp_path, scheduler="localhost:1")
    with pytest.raises(ClusterError, match="TLS settings"):
        grade_on_cluster(EXERCISE, [klass / "stub_00.ipynb"], tmp_path, scheduler="tls://x:1")
    command = [sys.executable, "-m", "cnnlab.cli", "grade", str(EXERCISE), str(klass)]
    command += ["--out", str(tmp_path / "o"), "--scheduler", "tcp://127.0.0.1:9"]
    command += ["--no-progress"]
    env = {**_env(), "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 2 and "cannot reach the Dask scheduler" in done.stderr


def test_exercise_bundle_holds_every_file_and_its_digest_follows_them(tmp_path):
    folder = tmp_path / "01_cross_correlation"
    shutil.copytree(EXERCISE, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "data").mkdir()
    (folder / "data" / "table.csv").write_text("1,2\n")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "tests.pyc").write_bytes(b"x")
    bundle = exercise_bundle(folder)
    assert sorted(bundle["files"]) == ["data/table.csv", "source.ipynb", "tests.py"]
    assert bundle["files"]["tests.py"] == (EXERCISE / "tests.py").read_bytes()
    (folder / "data" / "table.csv").write_text("1,3\n")
    assert exercise_bundle(folder)["digest"] != bundle["digest"]
    assert exercise_bundle(EXERCISE)["digest"] == exercise_bundle(EXERCISE)["digest"]


def test_worker_refuses_other_code_and_reports_isolation_as_plain_data(monkeypatch):
    bundle = {"name": "x", "files": {}, "digest": "0"}
    options = {"limits": {}, "allow_weak_isolation": False, "grader": "other"}
    assert "runs other cnnlab code" in grade_batch(bundle, [], options)["refused"]

    from cnnlab.exercises import cluster as module

    def lacking(*args, **kwargs):
        raise IsolationError("root", {"mount_namespace": "unshare: EPERM"})

    monkeypatch.setattr(module, "_session_for", lacking)
    options["grader"] = grader_digest()
    answer = grade_batch(bundle, [], options)
    assert answer["isolation_error"]["missing"] == ["mount_namespace"]
    json.dumps(answer)  # plain data

    class Done:
        def result(self):
            return answer

    run = _ClusterRun(None, bundle, None, "run", options, {})
    with pytest.raises(IsolationError, match="mount_namespace \\(unshare: EPERM\\)"):
        run._take(Done(), [])


def _result(ident: str, score: float) -> SubmissionResult:
    test = _TestResult("t", "f", False, 1.0, score, score == 1.0, "passed", "")
    return SubmissionResult(ident, f"{ident}.ipynb", "ok", score, 1.0, tests=[test])


def test_journal_keeps_whole_lines_refuses_other_runs_and_regrades_changed_notebooks(tmp_path):
    settings = {"timeout": 30.0}
    with Journal(tmp_path, exercise="ex", digest="d1", settings=settings) as journal:
        journal.record(_result("alice", 1.0), "sha-a")
        journal.record(_result("bob", 0.0), "sha-b")
        with pytest.raises(JournalError, match="in use by another grading run"):
            Journal(tmp_path, exercise="ex", digest="d1", settings=settings)
    with open(tmp_path / JOURNAL_NAME, "ab") as handle:
        handle.write(b'{"id": "carol", "resu')  # torn
    with Journal(tmp_path, exercise="ex", digest="d1", settings=settings) as journal:
        assert sorted(journal.entries) == ["alice", "bob"]
        assert journal.done("alice", "sha-a") == _result("alice", 1.0)
        assert journal.done("alice", "changed") is None and journal.done("carol", None) is None
        journal.record(_result("carol", 1.0), "sha-c")
    assert (tmp_path / JOURNAL_NAME).read_bytes().count(b"\n") == 4
    with Journal(tmp_path, exercise="ex", digest="d1", settings=settings) as journal:
        assert sorted(journal.entries) == ["alice", "bob", "carol"]
    with pytest.raises(JournalError, match="journal of exercise 'ex'"):
        Journal(tmp_path, exercise="ex", digest="d2", settings=settings)
    with pytest.raises(JournalError, match=r"other limits \(timeout 30.0 then, 60.0 now\)"):
        Journal(tmp_path, exercise="ex", digest="d1", settings={"timeout": 60.0})
