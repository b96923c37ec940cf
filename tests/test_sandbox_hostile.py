"""Attacks on what submissions could share, and the refusal to grade without protections.

Each batch is graded in runs of its own (the attacks need an order, or company):

- shared state (``tests/hostile/sandbox_cases.py``): a submission plants System V and POSIX
  IPC objects, keys in every keyring of its uid, files in ``/tmp``, ``/var/tmp``, ``/dev/shm``,
  ``/run`` and its home, and stashes its call inputs; a probe looks for all of it in the same
  run under the same uid, beside it at the same time, and in a later run;
- CPU: 48 busy processes, each in its own session, beside an honest neighbour with timed calls;
- fail closed: a run that cannot have a promised protection refuses before any student code
  runs (API and CLI), and grades, recording what is missing, with ``allow_weak_isolation``.

Attacks on one submission's own sandbox (files of the host, sockets, ``.git``, forbidden
modules, a 3000-deep tree, a full disk) are in the main batch of
``tests/test_exercises_grading.py``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cnnlab import cli
from cnnlab.exercises import Limits, cgroups, grade, load_exercise
from cnnlab.exercises.grading import IsolationError
from cnnlab.exercises.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
EXERCISE = ROOT / "exercises" / "01_cross_correlation"
LIMITS = Limits(timeout=30, memory_mb=512, nproc=64, fsize_mb=64, disk_mb=128)

_spec = importlib.util.spec_from_file_location(
    "hostile_sandbox_cases", ROOT / "tests/hostile/sandbox_cases.py"
)
attacks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(attacks)

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="slot uids, cgroups and the scratch tmpfs need root"
)
needs_syscalls = pytest.mark.skipif(
    platform.machine() not in attacks.SYSCALLS, reason="keyring syscall numbers unknown here"
)


def _sysv_keys() -> set[int]:
    """The keys of the host's System V IPC objects (the test runs in the host's namespace)."""
    keys = set()
    for kind in ("shm", "msg", "sem"):
        try:
            with open(f"/proc/sysvipc/{kind}") as handle:
                lines = handle.read().splitlines()[1:]
        except OSError:
            continue
        keys.update(int(line.split()[0]) for line in lines if line.split())
    return keys


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    root = tmp_path_factory.mktemp("shared")
    tag = secrets.token_hex(4)
    key = 0x3C000000 + int(tag[:5], 16)
    runs = {}
    # 1. In order, one slot: a plant, then a probe under the same uid.
    attacks.plant(root / "seq" / "a_plant.ipynb", EXERCISE, tag, key)
    attacks.probe(root / "seq" / "b_probe.ipynb", EXERCISE, tag, key)
    runs["sequential"] = grade(
        EXERCISE, [root / "seq"], root / "out_seq", limits=LIMITS, jobs=1, progress=False
    )
    # 2. At the same time: the plant holds everything while the probe looks.
    attacks.plant(root / "con" / "a_plant.ipynb", EXERCISE, tag, key, hold=5.0)
    attacks.probe(root / "con" / "b_probe.ipynb", EXERCISE, tag, key, wait=2.0)
    runs["concurrent"] = grade(
        EXERCISE, [root / "con"], root / "out_con", limits=LIMITS, jobs=2, progress=False
    )
    # 3. A later grading run, probing under every slot uid.
    attacks.probe(root / "later" / "b_probe.ipynb", EXERCISE, tag, key)
    attacks.probe(root / "later" / "c_probe.ipynb", EXERCISE, tag, key)
    runs["later"] = grade(
        EXERCISE, [root / "later"], root / "out_later", limits=LIMITS, jobs=2, progress=False
    )
    return {
        "runs": {name: {r.id: r for r in results} for name, results in runs.items()},
        "root": root,
        "tag": tag,
        "key": key,
        "host_keys": _sysv_keys(),
    }


@needs_syscalls
def test_the_plant_planted_everything(shared):
    # Otherwise an empty probe would prove nothing.
    for run in ("sequential", "concurrent"):
        plant = shared["runs"][run]["a_plant"]
        planted = attacks.cases.report(plant, "PLANT-REPORT")
        for kind in ("shm", "msg", "sem", "mq"):
            assert kind in planted, (run, kind, planted)
        for place in ("/tmp", "/var/tmp", "/dev/shm", "/run"):
            assert f"file {place}" in planted, (run, place, planted)
        keys = [k for k in planted if k.startswith("key ")]
        if "keyrings_blocked" in plant.protections:
            assert keys == []  # the filter: no key could even be added
        else:
            assert len(keys) == 4, planted


@needs_syscalls
@pytest.mark.parametrize(
    "run, probe",
    [
        ("sequential", "b_probe"),
        ("concurrent", "b_probe"),
        ("later", "b_probe"),
        ("later", "c_probe"),
    ],
)
def test_nothing_planted_is_found(shared, run, probe):
    result = shared["runs"][run][probe]
    for protection in ("ipc_namespace", "private_tmp"):
        if protection not in result.protections:
            pytest.skip(f"no {protection} here (see isolation.json)")
    found = attacks.cases.report(result, "PROBE-REPORT")
    assert found == {}, found


@needs_root
@needs_syscalls
def test_a_slot_uid_keeps_no_key_and_no_file(shared):
    # The same slot uid graded both, one after the other: its keyrings and /tmp start empty.
    run = shared["runs"]["sequential"]
    uids = {run[ident].protections.get("slot_uid") for ident in ("a_plant", "b_probe")}
    assert len(uids) == 1 and None not in uids
    found = attacks.cases.report(run["b_probe"], "PROBE-REPORT")
    assert not [k for k in found if k.startswith(("key", "request_key", "left in", "/"))]


_KEY_AS = (
    "import ctypes, os, sys; sys.path.insert(0, sys.argv[1]); uid = int(sys.argv[2]); "
    "from cnnlab.exercises import linux; os.setgid(uid); os.setuid(uid); "
    "lib = ctypes.CDLL(None); lib.syscall.restype = ctypes.c_long; "
    "print(linux.add_key('user', 'left-behind', b'secret', -4) if sys.argv[3] == 'add' else "
    "lib.syscall(ctypes.c_long(linux._number('keyctl')), ctypes.c_long(10), ctypes.c_long(-4), "
    "b'user', b'left-behind', ctypes.c_long(0)))"
)


@needs_root
@needs_syscalls
def test_keys_left_for_a_slot_uid_are_cleared(tmp_path):
    # A key some earlier process of the slot uid left (a run with weaker isolation, another
    # tool): the worker clears its uid's keyrings before the student's code and after it.
    uid_base = 64000 + secrets.randbelow(1000) * 4
    shutil.copy(EXERCISE / "source.ipynb", tmp_path / "solution.ipynb")

    def key(action: str) -> int:
        command = [sys.executable, "-I", "-S", "-c", _KEY_AS, str(ROOT), str(uid_base), action]
        return int(subprocess.run(command, capture_output=True, text=True).stdout)

    assert key("add") > 0 and key("search") > 0
    limits = Limits(timeout=30, memory_mb=512, nproc=64, fsize_mb=64, uid_base=uid_base)
    (result,) = grade(EXERCISE, [tmp_path / "solution.ipynb"], tmp_path / "out", limits=limits)
    assert result.protections["slot_uid"] == str(uid_base)
    assert "uid_keys_cleared" in result.protections
    assert key("search") == -1


@needs_syscalls
def test_planted_ipc_never_reaches_the_host(shared):
    assert shared["key"] not in shared["host_keys"]
    mqueue = Path("/dev/mqueue") / f"cnnlab_mq_{shared['tag']}"
    assert not mqueue.exists()
    for place in ("/tmp", "/var/tmp", "/dev/shm", "/run"):
        assert not (Path(place) / f"stash-{shared['tag']}").exists()
        assert not (Path(place) / f"inputs-{shared['tag']}.npy").exists()


def test_stashed_inputs_never_reach_a_feedback(shared):
    for out in ("out_seq", "out_con", "out_later"):
        for feedback in (shared["root"] / out / "feedback").glob("*probe.md"):
            text = feedback.read_text()
            assert "SECRET" not in text and "inputs-" not in text


@needs_root
def test_busy_processes_do_not_fail_an_honest_neighbour(tmp_path):
    # 48 busy processes in their own sessions against one honest worker with timed calls:
    # with a cgroup per worker, each worker gets the same CPU share however many it runs.
    hold = 12.0
    subs = tmp_path / "subs"
    attacks.hog(subs / "a_hog.ipynb", EXERCISE, hold=hold)
    shutil.copy(EXERCISE / "source.ipynb", subs / "b_honest.ipynb")
    results = {
        r.id: r
        for r in grade(EXERCISE, [subs], tmp_path / "out", limits=LIMITS, jobs=2, progress=False)
    }
    honest, hog = results["b_honest"], results["a_hog"]
    assert "cpu_fair_share" in honest.protections and "cpu_fair_share" in hog.protections
    assert attacks.cases.report(hog, "HOG-REPORT") == 48
    assert honest.wall_seconds < hold  # graded while the hog's processes were busy
    assert honest.score == load_exercise(EXERCISE).max_score, [
        (t.name, t.status, t.message) for t in honest.tests if not t.passed
    ]


@needs_root
def test_a_forking_submission_cannot_take_the_machines_memory(tmp_path):
    # RLIMIT_AS bounds each process; 8 children of 200 MiB each would hold 1.6 GiB together.
    # The worker's memory cgroup bounds them all: at most memory_mb + the supervisor's headroom.
    subs = tmp_path / "subs"
    attacks.memory_hog(subs / "a_memory.ipynb", EXERCISE, count=8, megabytes=200, hold=8.0)
    shutil.copy(EXERCISE / "source.ipynb", subs / "b_honest.ipynb")
    results = {
        r.id: r
        for r in grade(EXERCISE, [subs], tmp_path / "out", limits=LIMITS, jobs=2, progress=False)
    }
    hog, honest = results["a_memory"], results["b_honest"]
    assert "memory_cgroup" in hog.protections
    bound = (LIMITS.memory_mb << 20) + cgroups.MEMORY_HEADROOM
    held = attacks.cases.report(hog, "MEMORY-REPORT")
    assert 0 < held and held * (200 << 20) <= bound, held
    assert honest.score == load_exercise(EXERCISE).max_score


def test_how_a_worker_ended_in_a_hidden_call_is_not_reported(tmp_path):
    # An exit code chosen from a hidden input would carry it into the feedback; a crash in a
    # visible call still says how the worker ended.
    visible = sum(not t.hidden for t in load_exercise(EXERCISE).tests)
    subs = tmp_path / "subs"
    attacks.exit_at_call(subs / "a_visible.ipynb", EXERCISE, at=1, code=57)
    attacks.exit_at_call(subs / "b_hidden.ipynb", EXERCISE, at=visible + 1, code=57)
    out = tmp_path / "out"
    results = {r.id: r for r in grade(EXERCISE, [subs], out, limits=LIMITS, jobs=2, progress=False)}
    assert results["a_visible"].status == "crashed"
    assert "exit code 57" in (out / "feedback" / "a_visible.md").read_text()
    assert results["b_hidden"].status == "crashed"
    for report in (out / "feedback" / "b_hidden.md", out / "results" / "b_hidden" / "results.json"):
        text = report.read_text()
        assert "57" not in text and "during the hidden tests" in text, text


@needs_root
def test_missing_protections_refuse_to_start(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cgroups, "controller_roots", lambda: {})  # a machine without cgroups
    target = f"/tmp/cnnlab-ran-{secrets.token_hex(4)}"
    attacks.marker(tmp_path / "subs" / "student.ipynb", EXERCISE, target)
    with pytest.raises(IsolationError) as caught:
        grade(EXERCISE, [tmp_path / "subs"], tmp_path / "out", limits=LIMITS, progress=False)
    assert {"cpu_fair_share", "pids_cgroup"} <= set(caught.value.missing)
    assert "cpu_fair_share" in str(caught.value) and "--allow-weak-isolation" in str(caught.value)
    assert not (tmp_path / "out" / "grades.csv").exists()
    assert not os.path.exists(target)  # no student code ran
    status = cli.main(
        ["grade", str(EXERCISE), str(tmp_path / "subs"), "--out", str(tmp_path / "cli")]
        + ["--no-progress"]
    )
    assert status == 3
    assert "pids_cgroup" in capsys.readouterr().err
    assert not (tmp_path / "cli" / "grades.csv").exists()


@needs_root
def test_weak_isolation_grades_and_records_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(cgroups, "controller_roots", lambda: {})
    shutil.copy(EXERCISE / "source.ipynb", tmp_path / "solution.ipynb")
    status = cli.main(
        ["grade", str(EXERCISE), str(tmp_path / "solution.ipynb"), "--out", str(tmp_path / "out")]
        + ["--no-progress", "--allow-weak-isolation"]
    )
    assert status == 0
    report = json.loads((tmp_path / "out" / "isolation.json").read_text())
    worker = report["submissions"]["solution"]
    assert worker["missing"] == ["pids_cgroup", "cpu_fair_share", "memory_cgroup"]
    assert "minimal_root" in worker["had"] and "cpu_fair_share" not in worker["had"]
    assert set(report["promised"]) <= set(report["protections"])
    assert "solution,ok," in (tmp_path / "out" / "grades.csv").read_text()


@needs_root
def test_a_worker_without_its_root_refuses_before_student_code(tmp_path, monkeypatch):
    # The grading process has everything; the worker cannot build its root (a mount refused):
    # it refuses before the student's code runs, and the run stops.
    config = Workspace.sandbox_config

    def broken(self, private_size):
        return {**config(self, private_size), "root": "/nonexistent/cnnlab-root"}

    monkeypatch.setattr(Workspace, "sandbox_config", broken)
    target = f"/tmp/cnnlab-ran-{secrets.token_hex(4)}"
    attacks.marker(tmp_path / "subs" / "student.ipynb", EXERCISE, target)
    with pytest.raises(IsolationError) as caught:
        grade(EXERCISE, [tmp_path / "subs"], tmp_path / "out", limits=LIMITS, progress=False)
    assert "minimal_root" in caught.value.missing
    assert not os.path.exists(target)
    try:  # allowed to be weak, the same code runs and reaches the host's /tmp
        (result,) = grade(
            EXERCISE,
            [tmp_path / "subs"],
            tmp_path / "weak",
            limits=LIMITS,
            progress=False,
            allow_weak_isolation=True,
        )
        assert os.path.exists(target)
        assert "minimal_root" in result.missing_protections
        assert "minimal_root_error" in result.protections
    finally:
        if os.path.exists(target):
            os.unlink(target)
