"""Grade submitted notebooks: one isolated worker per submission, comparisons done here.

The grading process computes every expected answer itself from the exercise's references, then
for each submission starts a fresh worker (:mod:`cnnlab.exercises.worker`) that runs the
student's code, isolated (:mod:`cnnlab.exercises.sandbox`). The two exchange only JSON lines and
``.npy`` files. The worker gets the inputs; it never gets the expected answers, the tests file
or other submissions. Submissions are graded in parallel, and a submission that hangs, blows
up its memory, forks without end, kills itself or leaves an unremovable tree only loses its own
points.

Each worker run borrows a workspace (:mod:`cnnlab.exercises.workspace`: its folders, a
size-limited scratch tmpfs and cgroups as root), given back whatever happened. A run fails
closed: before the first worker, and in every worker before student code runs, the
protections that the grading mode promises are checked, and a missing one stops the run with
:class:`IsolationError` unless ``allow_weak_isolation`` is set.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import queue
import select
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat
import numpy as np

from cnnlab.exercises import plaindata, protections
from cnnlab.exercises.cgroups import kill_until_gone
from cnnlab.exercises.compare import compare, read_answer
from cnnlab.exercises.notebook import read_submission
from cnnlab.exercises.removal import remove_tree
from cnnlab.exercises.spec import Exercise, Test, draw_inputs, load_exercise
from cnnlab.exercises.workspace import Workspace, open_workspace, preflight

__all__ = [
    "Limits",
    "TestResult",
    "SubmissionResult",
    "IsolationError",
    "grade_submissions",
    "find_submissions",
]

IsolationError = protections.IsolationError

MAX_EVENT_BYTES = 4 * 1024 * 1024
_CNNLAB_ROOT = str(Path(__file__).resolve().parents[2])


@dataclass(frozen=True)
class Limits:
    """Resource limits of one submission's worker.

    Parameters
    ----------
    timeout : float
        Wall-clock seconds for the whole submission (its cells and every call).
    time_scale : float
        Multiplies each test's own per-call ``time_limit`` (raise it on a slow machine).
    memory_mb : int
        Address space the student's code may add (RLIMIT_AS above the worker's own).
    nproc : int
        Processes and threads (RLIMIT_NPROC, for the worker's uid).
    fsize_mb : int
        Largest file the worker may write (RLIMIT_FSIZE); this bounds printed output too.
    uid_base : int
        When grading as root, each worker slot runs as its own uid: the first free uids from
        ``uid_base`` on, reserved for the run (see :func:`_claim_uids`).
    network : bool
        Leave the network reachable (default: a fresh network namespace, none).
    disk_mb : int
        Everything the worker may write, together (its scratch folder, ``/tmp``, ``/var/tmp``,
        ``/dev/shm``, ``/run``): one tmpfs of this size when grading as root.
    """

    timeout: float = 120.0
    time_scale: float = 1.0
    memory_mb: int = 2048
    nproc: int = 64
    fsize_mb: int = 64
    uid_base: int = 61000
    network: bool = False
    disk_mb: int = 256


@dataclass
class TestResult:
    name: str
    function: str
    hidden: bool
    max_score: float
    score: float
    passed: bool
    status: str  # passed, failed, not_implemented, missing, error, timeout, memory, crashed
    message: str


@dataclass
class SubmissionResult:
    id: str
    path: str
    status: str  # ok, error, timeout, memory, crashed, invalid
    score: float
    max_score: float
    tests: list[TestResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cell_errors: list[str] = field(default_factory=list)
    isolation: list[str] = field(default_factory=list)
    protections: dict[str, str] = field(default_factory=dict)
    missing_protections: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0
    student_seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Prepared:
    test: Test
    args: tuple
    kwargs: dict
    expected: np.ndarray


def find_submissions(paths: list[str | Path]) -> list[tuple[str, Path]]:
    """Expand files and folders into ``(id, notebook path)`` pairs, sorted by id.

    A folder contributes its ``*.ipynb`` files (id: the file's stem) and the notebooks one level
    down (``student/notebook.ipynb``, id: the folder's name). Repeated ids get ``-2``, ``-3``.
    Symbolic links are not followed inside a folder: a linked notebook or student folder is
    listed as it is and graded ``invalid`` (a link could point at the instructor's solution).
    """
    found: list[tuple[str, Path]] = []
    for raw in paths:
        path = Path(os.path.abspath(raw))
        if path.is_dir():
            for nb in sorted(path.glob("*.ipynb")):
                found.append((nb.stem, nb))
            for sub in sorted(
                p
                for p in path.iterdir()
                if p.is_symlink() and p.is_dir() and not p.name.startswith(".")
            ):
                found.append((sub.name, sub))  # read_submission refuses it: invalid
            for sub in sorted(
                p
                for p in path.iterdir()
                if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")
            ):
                notebooks = sorted(sub.glob("*.ipynb"))
                for nb in notebooks:
                    ident = sub.name if len(notebooks) == 1 else f"{sub.name}-{nb.stem}"
                    found.append((ident, nb))
        elif path.exists() or path.is_symlink():
            found.append((path.stem, path))
        else:
            raise ValueError(f"submission path {str(path)!r} does not exist")
    seen: dict[str, int] = {}
    unique = []
    for ident, nb in found:
        seen[ident] = seen.get(ident, 0) + 1
        unique.append((ident if seen[ident] == 1 else f"{ident}-{seen[ident]}", nb))
    return sorted(unique)


def _encode(value: object, directory: Path, stem: str) -> dict:
    """Encode a test input as plain data, each array saved as ``directory/<key>.npy``."""

    def store(key: str, array: np.ndarray) -> str:
        np.save(directory / f"{key}.npy", array, allow_pickle=False)
        return f"{key}.npy"

    return plaindata.encode(value, stem, store)


def _prepare(exercise: Exercise) -> list[_Prepared]:
    prepared = []
    for test in exercise.tests:
        args, kwargs = draw_inputs(test)
        expected = np.asarray(test.reference(*args, **kwargs), dtype=float)
        prepared.append(_Prepared(test, args, kwargs, expected))
    return prepared


UID_LOCK_DIR = Path(tempfile.gettempdir()) / "cnnlab-grade-uids"
UID_SEARCH_RANGE = 4096


def _uid_processes(uid: int) -> list[int]:
    """The pids of every process whose effective uid is ``uid``."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    pids.append(int(entry))
            except FileNotFoundError:
                continue
    return pids


@contextlib.contextmanager
def _claim_uids(count: int, uid_base: int):
    """Reserve ``count`` worker uids for this grading run; yield them.

    Each uid is held through an exclusive ``flock`` on a file under ``UID_LOCK_DIR`` for as long
    as the run lasts, and a uid that already owns processes is passed over. So two grading runs
    on one machine (two instructors, or a test suite beside a benchmark) never share a uid, and
    one run's clean-up (:func:`_kill_uid`) can never kill the other's workers.
    """
    UID_LOCK_DIR.mkdir(mode=0o700, exist_ok=True)
    held: list[tuple[int, int]] = []
    try:
        for uid in range(uid_base, uid_base + UID_SEARCH_RANGE):
            if len(held) == count:
                break
            fd = os.open(UID_LOCK_DIR / f"{uid}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            if _uid_processes(uid):
                os.close(fd)
                continue
            held.append((uid, fd))
        if len(held) < count:
            raise RuntimeError(
                f"could not reserve {count} free worker uids in {uid_base}.."
                f"{uid_base + UID_SEARCH_RANGE - 1}; other grading runs hold them"
            )
        yield [uid for uid, _ in held]
    finally:
        for _, fd in held:
            os.close(fd)


def _stop(process: subprocess.Popen) -> None:
    """Stop a worker: SIGTERM first (its middle process or supervisor then SIGKILLs the
    process running student code, which ends its PID namespace, a ``setsid()`` escapee
    included), then SIGKILL to its whole process group."""
    if process.poll() is None:
        try:
            os.kill(process.pid, signal.SIGTERM)
            process.wait(timeout=0.5)
        except (ProcessLookupError, PermissionError, subprocess.TimeoutExpired):
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def _kill_uid(uid: int) -> None:
    """Kill every process of ``uid`` (root only; each worker slot has its own uid)."""
    kill_until_gone(lambda: set(_uid_processes(uid)), 50, 0.02)


def _record(raw: dict) -> dict[str, str]:
    """A worker's protection record, as plain short strings (it comes from the supervisor)."""
    record = {}
    for key, value in list(raw.items())[:60]:
        if isinstance(key, str) and len(key) <= 40:
            record[key] = str(value)[:200]
    return record


def _table_order(name: str) -> tuple[int, str]:
    names = protections.NAMES
    base = name.removesuffix("_error")
    return (names.index(base) if base in names else len(names), name)


class _Grader:
    def __init__(self, exercise: Exercise, limits: Limits, hide: list[str], workdir: Path) -> None:
        self.exercise = exercise
        self.limits = limits
        self.hide = hide
        self.workdir = workdir
        self.prepared = _prepare(exercise)
        self.source = (
            nbformat.read(str(exercise.source), as_version=4) if exercise.source.exists() else None
        )
        self.inputs = workdir / "inputs"
        self.inputs.mkdir(mode=0o700)
        self.calls = []
        for index, item in enumerate(self.prepared):
            self.calls.append(
                {
                    "function": item.test.function,
                    "args": _encode(item.args, self.inputs, f"in{index}"),
                    "kwargs": {
                        k: _encode(v, self.inputs, f"in{index}_{k}") for k, v in item.kwargs.items()
                    },
                }
            )
        self.is_root = os.geteuid() == 0
        self.slots: queue.Queue[int] = queue.Queue()
        self.slot_uids: list[int] = []  # when root: the uid reserved for each slot
        self.mode = protections.mode()
        self.promised = protections.promised(self.mode, limits.network)
        self.required: tuple[str, ...] = ()  # what a worker must have to run student code
        self.refusals: dict[str, str] = {}  # set on the first refusal: stop starting workers

    # One worker run over the calls ``pending`` (indices into self.prepared).
    def _run_worker(
        self,
        ident: str,
        code,
        pending: list[int],
        run_cells: bool,
        deadline: float,
        slot: int,
        state: dict,
    ) -> list[int]:
        uid = self.slot_uids[slot] if self.is_root else None
        space = open_workspace(
            self.workdir, slot, uid, self.limits.disk_mb, self.limits.nproc, self.limits.memory_mb
        )
        try:
            return self._run_in(space, code, pending, run_cells, deadline, state)
        finally:
            scrub = not state.pop("keys_cleared_now", False)  # the worker did it on its way out
            state.setdefault("released", []).append(space.release(scrub_keys=scrub))

    def _job(self, space: Workspace, code, pending: list[int], run_cells: bool) -> dict:
        """The job file of one worker run: cells, calls (inputs by file name), sandbox."""
        sandbox = {
            "uid": space.uid,
            "hide": [*self.hide, str(self.inputs)],
            "memory_bytes": self.limits.memory_mb << 20,
            "nproc": self.limits.nproc,
            "fsize_bytes": self.limits.fsize_mb << 20,
            "network": self.limits.network,
            "forbidden_modules": list(self.exercise.forbidden_modules),
            **space.sandbox_config(private_size=self.limits.disk_mb << 20),
        }
        return {
            "exercise": self.exercise.name,
            "preload": list(self.exercise.preload),
            "forbidden": list(self.exercise.forbidden),
            "forbidden_modules": list(self.exercise.forbidden_modules),
            "cells": code.cells,
            "run_cells": run_cells,
            "calls": [self.calls[i] for i in pending],
            "call_ids": pending,
            "required": list(self.required),
            "sandbox": sandbox,
        }

    def _run_in(
        self, space: Workspace, code, pending: list[int], run_cells: bool, deadline: float, state
    ) -> list[int]:
        """Run one worker in ``space`` over the calls ``pending``; return those left to run."""
        job_file = space.job_dir
        for name in os.listdir(self.inputs):  # inputs live beside job.json
            os.link(self.inputs / name, job_file / name)
        (job_file / "job.json").write_text(json.dumps(self._job(space, code, pending, run_cells)))
        scratch = space.scratch.home
        run_dir = space.folder
        read_fd, write_fd = os.pipe()
        env = {
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": _CNNLAB_ROOT,
            "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "MPLBACKEND": "Agg",
            "LANG": "C.UTF-8",
        }
        stderr_path = run_dir / "stderr.txt"
        with open(stderr_path, "wb") as stderr:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-P",
                    "-s",
                    "-c",
                    "from cnnlab.exercises.worker import main; main()",
                    str(job_file),
                    str(write_fd),
                ],
                pass_fds=(write_fd,),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=env,
                cwd=str(scratch),
                start_new_session=True,
            )
        os.close(write_fd)
        # Cell errors are relayed from the first run only: a restarted worker (after a call's
        # timeout) has had hidden inputs, and anything it stashed must not reach the feedback.
        first_run = state.setdefault("runs", 0) == 0
        state["runs"] += 1
        buffer, received = b"", 0
        current: int | None = None
        call_deadline = float("inf")
        ended: dict[int, dict] = {}
        killed_for = None
        exited_at = None
        done = False
        try:
            while True:
                now = time.monotonic()
                if now >= deadline:
                    killed_for = "submission"
                    break
                if now >= call_deadline:
                    killed_for = "call"
                    break
                if exited_at is not None and now - exited_at > 0.5:
                    break
                wait = max(0.0, min(deadline, call_deadline, now + 0.2) - now)
                ready, _, _ = select.select([read_fd], [], [], wait)
                if process.poll() is not None and exited_at is None:
                    exited_at = time.monotonic()
                if not ready:
                    continue
                chunk = os.read(read_fd, 65536)
                if not chunk:
                    break
                received += len(chunk)
                if received > MAX_EVENT_BYTES:
                    state["notes"].append("the worker sent too much protocol data; stopped")
                    break
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    try:
                        event = json.loads(line)
                        kind = event["e"]
                    except (ValueError, TypeError, KeyError):
                        continue
                    if kind in ("ready", "refused") and isinstance(event.get("isolation"), dict):
                        state["had"] = _record(event["isolation"])
                        if kind == "refused":
                            state["refused"] = [
                                str(x) for x in event.get("missing", []) if x in protections.NAMES
                            ] or ["(unknown)"]
                    elif kind == "cell" and first_run and len(state["cell_errors"]) < 50:
                        cell = event.get("cell")
                        state["cell_errors"].append(
                            f"cell {cell}: {str(event.get('error'))[-1500:]}"
                        )
                        if event.get("memory"):
                            state["memory"] = True
                    elif kind == "done":
                        done = True
                        state["keys_cleared_now"] = event.get("keys_cleared") is True
                    elif kind == "cells_done":
                        state["student_seconds"] += float(event.get("seconds", 0.0))
                    elif kind == "note" and first_run and len(state["notes"]) < 40:
                        state["notes"].append(str(event.get("text"))[:500])
                    elif (
                        kind == "begin"
                        and current is None
                        and event.get("call") == next((i for i in pending if i not in ended), None)
                    ):
                        current = event["call"]
                        test = self.prepared[current].test
                        call_deadline = time.monotonic() + test.time_limit * self.limits.time_scale
                    elif kind == "end" and current is not None and event.get("call") == current:
                        ended[current] = event
                        if event.get("status") == "ok":
                            state["student_seconds"] += float(event.get("seconds", 0.0))
                        current, call_deadline = None, float("inf")
        finally:
            os.close(read_fd)
            if killed_for is None:
                try:
                    process.wait(timeout=1.0)
                except subprocess.TimeoutExpired:
                    pass
            _stop(process)
            space.kill()
            if space.uid is not None:
                _kill_uid(space.uid)
        returncode = process.returncode
        self._collect(state, pending, ended, scratch, killed_for, current, done, returncode)
        if state.get("crashed_now"):
            calls = [*ended, *([current] if current is not None else [])]
            if any(self.prepared[i].test.hidden for i in calls):
                # Once a hidden input has reached the student's code, how the worker ended
                # (an exit code, a signal, the supervisor's last words) is a channel the
                # student chooses: say only that it ended.
                state.pop("crashed_now")
                state["crashed"] = "the worker ended early, during the hidden tests"
            else:
                tail = stderr_path.read_bytes()[-600:].decode(errors="replace").strip()
                state["crashed"] = state.pop("crashed_now") + (f": {tail}" if tail else "")
        return [i for i in pending if i not in state["outcome"]] if killed_for == "call" else []

    def _collect(self, state, pending, ended, scratch, killed_for, current, done, returncode):
        """Read the answers (each must be the file the supervisor hashed when its call ended)."""
        scratch_fd = os.open(scratch, os.O_DIRECTORY)
        try:
            for index in pending:
                event = ended.get(index)
                if event is None:
                    continue
                status = str(event.get("status"))
                if status == "ok":
                    try:
                        state["answers"][index] = read_answer(
                            scratch_fd, f"answer_{index}.npy", sha256=event.get("sha256")
                        )
                    except Exception as error:  # noqa: BLE001 (empty, truncated, garbage)
                        state["outcome"][index] = (
                            "error",
                            f"the answer could not be read: {type(error).__name__}: {error}",
                        )
                        continue
                    state["outcome"][index] = ("ok", "")
                else:
                    state["outcome"][index] = (status, str(event.get("detail", ""))[:1500])
        finally:
            os.close(scratch_fd)
        if killed_for == "call" and current is not None:
            limit = self.prepared[current].test.time_limit * self.limits.time_scale
            state["outcome"][current] = ("timeout", f"the call took longer than {limit:g} s")
            state["timeout"] = True
        elif killed_for == "submission":
            state["timeout"] = True
            state["notes"].append(f"the submission ran out of its {self.limits.timeout:g} s")
        elif not done or any(i not in ended for i in pending):
            if returncode and returncode < 0 and -returncode in signal.valid_signals():
                how = f"killed by signal {signal.Signals(-returncode).name}"
            elif returncode and returncode > 128 and returncode - 128 in signal.valid_signals():
                how = f"killed by signal {signal.Signals(returncode - 128).name}"
            else:
                how = f"exit code {returncode}"
            if returncode in (-signal.SIGKILL, 128 + signal.SIGKILL):
                state["memory"] = True
            state["crashed_now"] = f"the worker ended early ({how})"

    def _record_isolation(self, result: SubmissionResult, state: dict) -> None:
        """What the worker had (its own record, the grader's limits, the clean-up after it)."""
        if not state.get("runs"):
            return  # no worker ran (an invalid notebook, or the run stopped before it)
        had = dict(state["had"])
        had["wall_clock"] = f"{self.limits.timeout:g} s per submission"
        released = state.get("released", [])
        if released and all("scratch_discarded" in r for r in released):
            had["scratch_discarded"] = released[-1]["scratch_discarded"]
        result.protections = {k: had[k] for k in sorted(had, key=_table_order)}
        result.isolation = [f"{k}:{v}" if v else k for k, v in result.protections.items()]
        result.missing_protections = [n for n in self.promised if n not in had]

    def grade_one(self, ident: str, path: Path) -> SubmissionResult:
        started = time.monotonic()
        code = read_submission(path, self.source)
        result = SubmissionResult(
            ident, str(path), "ok", 0.0, self.exercise.max_score, notes=list(code.notes)
        )
        state = {
            "answers": {},
            "outcome": {},
            "notes": result.notes,
            "cell_errors": result.cell_errors,
            "had": {},
            "refused": None,
            "memory": False,
            "timeout": False,
            "crashed": None,
            "student_seconds": 0.0,
        }
        if code.invalid is None and not self.refusals:
            slot = self.slots.get()
            try:
                deadline = started + self.limits.timeout
                # Visible tests first: every message the student's code can shape (cell errors,
                # visible failures) is made before it has seen any hidden input.
                pending = sorted(
                    range(len(self.prepared)), key=lambda i: self.prepared[i].test.hidden
                )
                while pending and time.monotonic() < deadline and not state["refused"]:
                    pending = self._run_worker(ident, code, pending, True, deadline, slot, state)
            finally:
                self.slots.put(slot)
        self._record_isolation(result, state)
        if state["refused"]:
            why = {n: state["had"].get(f"{n}_error", "") for n in state["refused"]}
            self.refusals.update(why)
            result.notes.append(
                "not graded: the worker lacked protections this grading mode promises: "
                + ", ".join(state["refused"])
            )
            state["crashed"], state["timeout"] = None, False  # status: error, tests not run
        for index, item in enumerate(self.prepared):
            test = item.test
            outcome, detail = state["outcome"].get(index, (None, ""))
            if code.invalid is not None:
                status, message = "error", code.invalid
            elif outcome == "ok":
                passed, message = compare(test, item.expected, state["answers"][index])
                status = "passed" if passed else "failed"
            elif outcome is None:
                if state["timeout"]:
                    status, message = "timeout", "not run: the submission ran out of time"
                elif state["crashed"]:
                    status, message = "crashed", "not run: " + state["crashed"]
                else:
                    status, message = "error", "not run"
            elif outcome == "missing":
                status, message = (
                    "missing",
                    f"{detail}: define `{test.function}` with this exact name",
                )
            elif outcome == "not_implemented":
                status, message = (
                    "not_implemented",
                    f"`{test.function}` is not implemented yet (raise NotImplementedError())",
                )
            else:
                status, message = outcome, detail
            score = float(test.points) if status == "passed" else 0.0
            result.tests.append(
                TestResult(
                    test.name,
                    test.function,
                    test.hidden,
                    float(test.points),
                    score,
                    status == "passed",
                    status,
                    message,
                )
            )
        result.score = float(sum(t.score for t in result.tests))
        if code.invalid is not None:
            result.status = "invalid"
        elif state["timeout"]:
            result.status = "timeout"
        elif state["memory"] or any(t.status == "memory" for t in result.tests):
            result.status = "memory"
        elif state["crashed"]:
            result.status = "crashed"
            result.notes.append(state["crashed"])
        elif result.cell_errors or any(
            t.status not in ("passed", "failed", "not_implemented") for t in result.tests
        ):
            result.status = "error"
        result.wall_seconds = time.monotonic() - started
        result.student_seconds = state["student_seconds"]
        return result


def _hidden_paths(
    exercise: Exercise, submissions: list[tuple[str, Path]], out_dir: Path | None
) -> list[str]:
    hide = {str(exercise.path)}
    repo_exercises = Path(_CNNLAB_ROOT) / "exercises"
    if repo_exercises.is_dir():
        hide.add(str(repo_exercises))
    for _, path in submissions:
        hide.add(str(path.parent))
        hide.add(str(path))  # used when its folder cannot be covered
    if out_dir is not None:
        hide.add(str(out_dir.resolve()))
    return sorted(hide)


def grade_submissions(
    exercise: Exercise | str | Path,
    submissions: list[str | Path],
    *,
    limits: Limits | None = None,
    jobs: int | None = None,
    out_dir: str | Path | None = None,
    progress: bool = True,
    allow_weak_isolation: bool = False,
) -> list[SubmissionResult]:
    """Grade notebooks in isolated workers, in parallel; results sorted by submission id.

    Parameters
    ----------
    exercise : Exercise or path
        The exercise (folder with ``tests.py`` and ``source.ipynb``).
    submissions : list of paths
        Notebooks, or folders of them (see :func:`find_submissions`).
    limits : Limits
        Per-submission resource limits.
    jobs : int
        Workers at a time (default: the number of CPU cores).
    out_dir : path
        The report folder, hidden from the workers too.
    progress : bool
        Show a tqdm progress bar on stderr.
    allow_weak_isolation : bool
        Grade even where a protection that this mode promises (see
        :mod:`cnnlab.exercises.protections`) is missing; each result records what its worker
        had. Default: refuse.

    Raises
    ------
    IsolationError
        Without ``allow_weak_isolation``, when the grading process cannot provide a promised
        protection (before any worker starts), or a worker reports one missing (before its
        student code runs; no further worker starts).
    """
    if not isinstance(exercise, Exercise):
        exercise = load_exercise(exercise)
    limits = limits or Limits()
    found = find_submissions(list(submissions))
    jobs = max(1, min(jobs or os.cpu_count() or 1, max(1, len(found))))
    workdir = Path(tempfile.mkdtemp(prefix="cnnlab-grade-"))
    os.chmod(workdir, 0o711 if os.geteuid() == 0 else 0o700)
    stack = contextlib.ExitStack()
    try:
        grader = _Grader(
            exercise,
            limits,
            _hidden_paths(exercise, found, Path(out_dir) if out_dir else None),
            workdir,
        )
        uids = stack.enter_context(_claim_uids(jobs, limits.uid_base)) if grader.is_root else []
        grader.slot_uids = uids
        if not allow_weak_isolation:
            lacking = preflight(
                workdir,
                uids[0] if uids else None,
                limits.disk_mb,
                limits.nproc,
                limits.memory_mb,
            )
            lacking = {k: v for k, v in lacking.items() if k in grader.promised}
            if lacking:
                raise IsolationError(grader.mode, lacking)
            grader.required = tuple(
                n for n in grader.promised if n not in ("wall_clock", *protections.AFTER)
            )
        results = _grade_all(grader, found, jobs, progress)
    finally:
        stack.close()
        remove_tree(workdir)
    if grader.refusals and not allow_weak_isolation:
        raise IsolationError(grader.mode, grader.refusals)
    return sorted(results, key=lambda r: r.id)


def _grade_all(
    grader: _Grader, found: list[tuple[str, Path]], jobs: int, progress: bool
) -> list[SubmissionResult]:
    """Grade every submission on ``jobs`` threads; a grader error costs one submission only."""
    for slot in range(jobs):
        grader.slots.put(slot)
    results: list[SubmissionResult] = []
    from tqdm.auto import tqdm

    max_score = grader.exercise.max_score
    with (
        ThreadPoolExecutor(max_workers=jobs) as pool,
        tqdm(
            total=len(found),
            desc=f"grading {grader.exercise.name}",
            unit="nb",
            disable=not progress,
            file=sys.stderr,
        ) as bar,
    ):
        futures = {
            pool.submit(grader.grade_one, ident, path): (ident, path) for ident, path in found
        }
        for future in as_completed(futures):
            ident, path = futures[future]
            try:
                results.append(future.result())
            except BaseException as error:  # noqa: BLE001 (a grader bug must not stop the class)
                if isinstance(error, KeyboardInterrupt):
                    raise
                results.append(
                    SubmissionResult(
                        ident,
                        str(path),
                        "error",
                        0.0,
                        max_score,
                        notes=[f"grader error: {type(error).__name__}: {error}"],
                    )
                )
            bar.update(1)
    return results
