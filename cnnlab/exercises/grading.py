"""Grade submitted notebooks: one isolated worker per submission, comparisons done here.

The grading process computes every expected answer itself from the exercise's references, then
for each submission starts a fresh worker that runs the student's code, isolated
(:mod:`cnnlab.exercises.sandbox`): a trusted supervisor (:mod:`cnnlab.exercises.supervisor`),
forked from the run's preloaded zygote (:mod:`cnnlab.exercises.zygote`), and under it the
student process (:mod:`cnnlab.exercises.student`). The grading process and the supervisor
exchange only the typed events of :mod:`cnnlab.exercises.protocol` and ``.npy`` files. The
worker gets the inputs; it never gets the expected answers, the tests file or other
submissions. What the workers produced (a frozen
:class:`~cnnlab.exercises.scoring.RunOutcome`) is scored by a pure function
(:func:`~cnnlab.exercises.scoring.score_submission`). Submissions are graded in parallel, and a submission that hangs, blows
up its memory, forks without end, kills itself or leaves an unremovable tree only loses its own
points.

Each worker run borrows a workspace (:mod:`cnnlab.exercises.workspace`: its folders, a
size-limited scratch tmpfs and cgroups as root), given back whatever happened. A run fails
closed: before the first worker, and in every worker before student code runs, the
protections that the grading mode promises are checked, and a missing one stops the run with
:class:`IsolationError` unless ``allow_weak_isolation`` is set.
"""

from __future__ import annotations

import ast
import contextlib
import fcntl
import json
import os
import queue
import select
import signal
import stat
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

import numpy as np

from cnnlab.exercises import leftovers, plaindata, protections, protocol
from cnnlab.exercises.cgroups import kill_until_gone
from cnnlab.exercises.compare import read_answer
from cnnlab.exercises.measure import reference_cpu_seconds
from cnnlab.exercises.notebook import read_submission
from cnnlab.exercises.removal import remove_tree
from cnnlab.exercises.scoring import (
    CallOutcome,
    PreparedTest,
    RunOutcome,
    SubmissionResult,
    TestResult,
    score_submission,
)
from cnnlab.exercises.spec import Exercise, Test, draw_inputs, load_exercise
from cnnlab.exercises.submissions import find_submissions
from cnnlab.exercises.workspace import Workspace, open_workspace, preflight
from cnnlab.exercises.zygote import Zygote, ZygoteError, ZygoteWorker

__all__ = [
    "Limits",
    "TestResult",
    "SubmissionResult",
    "IsolationError",
    "grade_submissions",
    "find_submissions",
    "hidden_paths",
    "GradingSession",
]

IsolationError = protections.IsolationError
#: Libraries the zygote preloads when the exercise's notebook imports them (never a module of
#: cnnlab: an exercise may forbid one, and what the zygote holds every student process holds).
ZYGOTE_LIBRARIES = ("numpy", "torch")

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


def _encode(value: object, directory: Path, stem: str) -> dict:
    """Encode a test input as plain data, each array saved as ``directory/<key>.npy``."""

    def store(key: str, array: np.ndarray) -> str:
        np.save(directory / f"{key}.npy", array, allow_pickle=False)
        return f"{key}.npy"

    return plaindata.encode(value, stem, store)


def _prepare(exercise: Exercise) -> list[PreparedTest]:
    prepared = []
    for test in exercise.tests:
        args, kwargs = draw_inputs(test, exercise.hidden_seed)
        expected = np.asarray(test.reference(*args, **kwargs), dtype=float)
        seconds = None
        if test.time_factor is not None:  # timed here, on the inputs the student's call gets
            timing = test.timing_reference or test.reference
            seconds = reference_cpu_seconds(timing, args, kwargs)
        prepared.append(PreparedTest(test, args, kwargs, expected, seconds))
    return prepared


#: Where runs reserve their worker uids: one place per machine, whatever each run's ``TMPDIR``
#: (two runs with different temporary folders must still see each other's reservations).
UID_LOCK_DIR = Path("/run/cnnlab/uids")
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


def _private_folder(folder: Path) -> None:
    """Make ``folder`` (and its parent) if needed; refuse one that another user could change.

    Raises
    ------
    RuntimeError
        The folder is a link, is not owned by this user, or others may write in it.
    """
    for path in (folder.parent, folder):
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        info = os.lstat(path)
        if (
            not stat.S_ISDIR(info.st_mode)
            or info.st_uid != os.geteuid()
            or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        ):
            raise RuntimeError(
                f"{path} must be a folder owned by uid {os.geteuid()} that no one else may "
                "write in (it holds the worker uid reservations of every grading run)"
            )


def _same_file(fd: int, path: Path) -> bool:
    """Whether the open file ``fd`` is still the file at ``path`` (not unlinked or replaced)."""
    try:
        now, held = os.lstat(path), os.fstat(fd)
    except OSError:
        return False
    return (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)


@contextlib.contextmanager
def _claim_uids(count: int, uid_base: int):
    """Reserve ``count`` worker uids for this grading run; yield them.

    Each uid is held through an exclusive ``flock`` on a file under ``UID_LOCK_DIR`` for as long
    as the run lasts, and a uid that already owns processes is passed over. So two grading runs
    on one machine (two instructors, or a test suite beside a benchmark) never share a uid, and
    one run's clean-up (:func:`_kill_uid`) can never kill the other's workers.
    """
    _private_folder(UID_LOCK_DIR)
    held: list[tuple[int, int]] = []
    try:
        for uid in range(uid_base, uid_base + UID_SEARCH_RANGE):
            if len(held) == count:
                break
            path = UID_LOCK_DIR / f"{uid}.lock"
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            if not _same_file(fd, path):  # replaced or removed meanwhile: not a reservation
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


def worker_environment() -> dict[str, str]:
    """The environment of every worker: no host variables, one thread per library."""
    return {
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


def read_source(exercise: Exercise) -> dict | None:
    """The instructor's notebook as plain JSON (None when the exercise has none)."""
    if not exercise.source.exists():
        return None
    with open(exercise.source, encoding="utf-8") as handle:
        return json.load(handle)


def _code(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def zygote_preload(exercise: Exercise, source: dict | None) -> list[str]:
    """What the zygote imports: the exercise's ``PRELOAD``, and the libraries of
    :data:`ZYGOTE_LIBRARIES` that the instructor's notebook imports."""
    imported: set[str] = set()
    for cell in (source or {}).get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        try:
            tree = ast.parse(_code(cell))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
    extra = [name for name in ZYGOTE_LIBRARIES if name in imported]
    return list(dict.fromkeys([*exercise.preload, *extra]))


def _start_zygote(grader: _Grader) -> Zygote | None:
    """The run's zygote, or None (with a warning) where it cannot be used."""
    forbidden = list(grader.exercise.forbidden_modules)
    try:
        zygote = Zygote(
            zygote_preload(grader.exercise, grader.source), forbidden, worker_environment()
        )
    except (OSError, ZygoteError) as error:
        warnings.warn(f"no zygote ({error}): workers start as fresh interpreters", stacklevel=3)
        return None
    if zygote.tainted or zygote.threads != 1:
        zygote.close()
        why = f"it loaded {zygote.tainted}" if zygote.tainted else f"{zygote.threads} threads"
        warnings.warn(f"no zygote ({why}): workers start as fresh interpreters", stacklevel=3)
        return None
    return zygote


def _table_order(name: str) -> tuple[int, str]:
    names = protections.NAMES
    base = name.removesuffix("_error")
    return (names.index(base) if base in names else len(names), name)


def read_call_outcomes(
    scratch: Path, pending: list[int], ended: dict[int, protocol.End]
) -> dict[int, CallOutcome]:
    """How each ended call of ``pending`` came out; an ``ok`` answer is read from ``scratch``.

    Each answer must be the file whose SHA-256 the supervisor took when its call ended; an
    empty, truncated, changed or non-numeric file makes the call an ``error``.
    """
    outcomes: dict[int, CallOutcome] = {}
    scratch_fd = os.open(scratch, os.O_DIRECTORY)
    try:
        for index in pending:
            event = ended.get(index)
            if event is None:
                continue
            if event.status != "ok":
                outcomes[index] = CallOutcome(
                    event.status,
                    event.detail[:1500],
                    error_type=event.error_type[:100],
                    error_message=event.error_message[:500],
                )
                continue
            try:
                answer = read_answer(scratch_fd, f"answer_{index}.npy", sha256=event.sha256)
            except Exception as error:  # noqa: BLE001 (empty, truncated, garbage)
                why = f"the answer could not be read: {type(error).__name__}: {error}"
                outcomes[index] = CallOutcome("error", why)
                continue
            outcomes[index] = CallOutcome(
                "ok", "", answer, cpu_seconds=event.cpu_seconds, memory_growth=event.memory_growth
            )
    finally:
        os.close(scratch_fd)
    return outcomes


def _how_it_ended(returncode: int | None) -> str:
    """An exit status in words: ``killed by signal SIGKILL``, ``exit code 3``."""
    if returncode and returncode < 0 and -returncode in signal.valid_signals():
        return f"killed by signal {signal.Signals(-returncode).name}"
    if returncode and returncode > 128 and returncode - 128 in signal.valid_signals():
        return f"killed by signal {signal.Signals(returncode - 128).name}"
    return f"exit code {returncode}"


@dataclass
class _EventLog:
    """What one worker run's event stream said, as the grading process reads it."""

    pending: list[int]
    first_run: bool
    had: dict[str, str] = field(default_factory=dict)
    refused: tuple[str, ...] | None = None
    cell_errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    memory: bool = False
    student_seconds: float = 0.0
    ended: dict[int, protocol.End] = field(default_factory=dict)
    call: int | None = None  # the call running now
    cell: int | None = None  # the cell running now
    cells_done: bool = False
    done: bool = False
    keys_cleared: bool = False

    def take(self, message: protocol.Message | None) -> bool:
        """Record one event; True when a call began (its clock starts)."""
        if isinstance(message, (protocol.Ready, protocol.Refused)):
            self.had = dict(message.isolation)
            if isinstance(message, protocol.Refused):
                names = [x for x in message.missing if x in protections.NAMES]
                self.refused = tuple(names) or ("(unknown)",)
        elif isinstance(message, protocol.CellStarted) and not self.cells_done:
            self.cell = message.cell
        elif isinstance(message, protocol.CellError):
            if self.first_run and len(self.cell_errors) < 50:
                self.cell_errors.append(f"cell {message.cell}: {message.error[-1500:]}")
                self.memory = self.memory or message.memory
        elif isinstance(message, protocol.CellsDone):
            self.cells_done, self.cell = True, None
            self.student_seconds += message.seconds
        elif isinstance(message, protocol.Note) and self.first_run and len(self.notes) < 40:
            self.notes.append(message.text[:500])
        elif isinstance(message, protocol.Begin):
            expected = next((i for i in self.pending if i not in self.ended), None)
            if self.call is None and message.call == expected:
                self.call = message.call
                return True
        elif isinstance(message, protocol.End) and message.call == self.call is not None:
            self.ended[message.call] = message
            if message.status == "ok":
                self.student_seconds += message.seconds
            self.call = None
        elif isinstance(message, protocol.Done):
            self.done, self.keys_cleared = True, message.keys_cleared
        return False


class _Grader:
    def __init__(self, exercise: Exercise, limits: Limits, hide: list[str], workdir: Path) -> None:
        self.exercise = exercise
        self.limits = limits
        self.hide = hide
        self.workdir = workdir
        self.prepared = _prepare(exercise)
        self.source = read_source(exercise)
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
                    # What the supervisor measures of this call (it never tells the student).
                    "measure": {
                        "cpu": item.test.time_factor is not None,
                        "memory": item.test.memory_limit_mb is not None,
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
        self.zygote: Zygote | None = None  # None: each worker is a fresh interpreter

    def _test(self, index: int) -> Test:
        return self.prepared[index].test

    def _call_limit(self, index: int) -> float:
        return self._test(index).time_limit * self.limits.time_scale

    def _describe(self, index: int) -> str:
        """The test of call ``index`` in words; a hidden one is not named (which hidden call
        ran long is a channel the student's code chooses, and its name may be hidden too)."""
        test = self._test(index)
        if test.hidden:
            return "a hidden test's call"
        return f"test `{test.name}` (a call of `{test.function}`)"

    def _write_job(self, space: Workspace, code, pending: list[int]) -> None:
        """The job folder of one worker run: ``job.json``, ``calls.json``, inputs, ``hide.json``."""
        for name in os.listdir(self.inputs):
            os.link(self.inputs / name, space.job_dir / name)
        sandbox = {
            "uid": space.uid,
            "memory_bytes": self.limits.memory_mb << 20,
            "nproc": self.limits.nproc,
            "fsize_bytes": self.limits.fsize_mb << 20,
            "network": self.limits.network,
            "forbidden_modules": list(self.exercise.forbidden_modules),
            **space.sandbox_config(private_size=self.limits.disk_mb << 20),
        }
        job = {
            "exercise": self.exercise.name,
            "preload": list(self.exercise.preload),
            "forbidden": list(self.exercise.forbidden),
            "forbidden_modules": list(self.exercise.forbidden_modules),
            "cells": code.cells,
            "run_cells": True,
            "required": list(self.required),
            "sandbox": sandbox,
        }
        calls = {"calls": [self.calls[i] for i in pending], "call_ids": pending}
        (space.job_dir / "job.json").write_text(json.dumps(job))
        (space.job_dir / "calls.json").write_text(json.dumps(calls))
        (space.job_dir / "hide.json").write_text(json.dumps([*self.hide, str(self.inputs)]))

    def _launch(self, space: Workspace, write_fd: int, stderr) -> subprocess.Popen | ZygoteWorker:
        """Start the worker's supervisor: forked by the zygote, or as a fresh interpreter."""
        scratch = str(space.scratch.home)
        zygote = self.zygote
        if zygote is not None:
            try:
                return zygote.spawn(str(space.job_dir), scratch, write_fd, stderr.fileno())
            except ZygoteError as error:  # it died: the rest of the run starts fresh workers
                self.zygote = None
                warnings.warn(f"{error}; workers now start as fresh interpreters", stacklevel=2)
        return subprocess.Popen(
            [
                sys.executable,
                "-P",
                "-s",
                "-c",
                "from cnnlab.exercises.supervisor import main; main()",
                str(space.job_dir),
                str(write_fd),
            ],
            pass_fds=(write_fd,),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=worker_environment(),
            cwd=scratch,
            start_new_session=True,
        )

    def _run_worker(
        self, code, pending: list[int], deadline: float, slot: int, first_run: bool
    ) -> tuple[RunOutcome, list[int]]:
        """One worker run over the calls ``pending``: its outcome, and the calls left to run."""
        uid = self.slot_uids[slot] if self.is_root else None
        space = open_workspace(
            self.workdir, slot, uid, self.limits.disk_mb, self.limits.nproc, self.limits.memory_mb
        )
        outcome, left = RunOutcome(), []
        try:
            outcome, left = self._run_in(space, code, pending, deadline, first_run)
        finally:
            # The supervisor cleared the uid's keys on its way out when it says so.
            record = space.release(scrub_keys=not outcome.had.get("_keys_cleared_now"))
            had = {k: v for k, v in outcome.had.items() if k != "_keys_cleared_now"}
            outcome = replace(outcome, had=had, released=(record,))
        return outcome, left

    def _time_references_again(self, calls: dict[int, CallOutcome]) -> dict[int, CallOutcome]:
        """Time the reference of each answered call with a ``time_factor`` again, now that the
        worker's processes are gone; the slower of this and the first timing is what the call
        is compared with, so a machine that got busier since grading began (other workers)
        does not fail an honest solution, and a submission cannot slow this timing down."""
        for index, call in list(calls.items()):
            item = self.prepared[index]
            if call.status == "ok" and item.test.time_factor is not None:
                timing = item.test.timing_reference or item.test.reference
                seconds = reference_cpu_seconds(timing, item.args, item.kwargs, repeats=3)
                calls[index] = replace(call, reference_seconds=seconds)
        return calls

    def _run_in(
        self, space: Workspace, code, pending: list[int], deadline: float, first_run: bool
    ) -> tuple[RunOutcome, list[int]]:
        """Run one worker in ``space`` over the calls ``pending``."""
        self._write_job(space, code, pending)
        stderr_path = space.folder / "stderr.txt"
        read_fd, write_fd = os.pipe()
        try:
            with open(stderr_path, "wb") as stderr:
                process = self._launch(space, write_fd, stderr)
        finally:
            os.close(write_fd)
        log = _EventLog(pending, first_run)
        killed_for, received = None, 0
        try:
            killed_for, received = self._read_events(read_fd, process, log, deadline)
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
        if received > MAX_EVENT_BYTES:
            log.notes.append("the worker sent too much protocol data; stopped")
        calls = self._time_references_again(
            read_call_outcomes(space.scratch.home, pending, log.ended)
        )
        timeout = crashed = None
        memory = log.memory
        if killed_for == "call" and log.call is not None:
            limit = self._call_limit(log.call)
            calls[log.call] = CallOutcome("timeout", f"the call took longer than {limit:g} s")
            timeout = f"{self._describe(log.call)} took longer than its time limit" + (
                "" if self._test(log.call).hidden else f" of {limit:g} s"
            )
        elif killed_for == "submission":
            if log.call is not None:
                where = f"during {self._describe(log.call)}"
            elif log.cell is not None:
                where = f"in cell {log.cell} of the notebook"
            elif not log.cells_done:
                where = "before its cells ran"
            else:
                where = "between tests"
            timeout = f"the submission ran out of its {self.limits.timeout:g} s {where}"
        elif not log.done or any(i not in log.ended for i in pending):
            returncode = process.returncode
            if returncode in (-signal.SIGKILL, 128 + signal.SIGKILL):
                memory = True
            seen = [*log.ended, *([log.call] if log.call is not None else [])]
            if any(self._test(i).hidden for i in seen):
                # Once a hidden input has reached the student's code, how the worker ended
                # (an exit code, a signal, the supervisor's last words) is a channel the
                # student chooses: say only that it ended.
                crashed = "the worker ended early, during the hidden tests"
            else:
                tail = stderr_path.read_bytes()[-600:].decode(errors="replace").strip()
                crashed = f"the worker ended early ({_how_it_ended(returncode)})"
                crashed += f": {tail}" if tail else ""
        had = dict(log.had)
        if log.keys_cleared:
            had["_keys_cleared_now"] = "yes"
        outcome = RunOutcome(
            calls=MappingProxyType(calls),
            cell_errors=tuple(log.cell_errors),
            notes=tuple(log.notes),
            had=MappingProxyType(had),
            refused=log.refused,
            memory=memory,
            timeout=timeout,
            crashed=crashed,
            student_seconds=log.student_seconds,
            runs=1,
        )
        left = [i for i in pending if i not in calls] if killed_for == "call" else []
        return outcome, left

    def _read_events(
        self, read_fd: int, process, log: _EventLog, deadline: float
    ) -> tuple[str | None, int]:
        """Read the event stream until it ends or a clock runs out.

        Returns what the worker was stopped for (``"submission"``: its wall-clock time;
        ``"call"``: the running call's time limit; None: it ended by itself) and the bytes read.
        """
        buffer, received = b"", 0
        call_deadline = float("inf")
        exited_at = None
        while True:
            now = time.monotonic()
            if now >= deadline:
                return "submission", received
            if now >= call_deadline:
                return "call", received
            if exited_at is not None and now - exited_at > 0.5:
                return None, received
            wait = max(0.0, min(deadline, call_deadline, now + 0.2) - now)
            ready, _, _ = select.select([read_fd], [], [], wait)
            if process.poll() is not None and exited_at is None:
                exited_at = time.monotonic()
            if not ready:
                continue
            chunk = os.read(read_fd, 65536)
            if not chunk:
                return None, received
            received += len(chunk)
            if received > MAX_EVENT_BYTES:
                return None, received
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if log.take(protocol.decode(line)):
                    call_deadline = time.monotonic() + self._call_limit(log.call)
                elif log.call is None:
                    call_deadline = float("inf")

    def _record_isolation(self, result: SubmissionResult, outcome: RunOutcome) -> None:
        """What the worker had (its own record, the grader's limits, the clean-up after it)."""
        if not outcome.runs:
            return  # no worker ran (an invalid notebook, or the run stopped before it)
        had = dict(outcome.had)
        had["wall_clock"] = f"{self.limits.timeout:g} s per submission"
        released = outcome.released
        if released and all("scratch_discarded" in r for r in released):
            had["scratch_discarded"] = released[-1]["scratch_discarded"]
        result.protections = {k: had[k] for k in sorted(had, key=_table_order)}
        result.isolation = [f"{k}:{v}" if v else k for k, v in result.protections.items()]
        result.missing_protections = [n for n in self.promised if n not in had]

    def grade_one(self, ident: str, path: Path) -> SubmissionResult:
        started = time.monotonic()
        code = read_submission(path, self.source)
        outcome = RunOutcome()
        if code.invalid is None and not self.refusals:
            slot = self.slots.get()
            try:
                deadline = started + self.limits.timeout
                # Visible tests first: every message the student's code can shape (cell errors,
                # visible failures) is made before it has seen any hidden input.
                pending = sorted(range(len(self.prepared)), key=lambda i: self._test(i).hidden)
                while pending and time.monotonic() < deadline and not outcome.refused:
                    run, pending = self._run_worker(code, pending, deadline, slot, not outcome.runs)
                    outcome = outcome.then(run)
            finally:
                self.slots.put(slot)
        if outcome.refused:
            self.refusals.update({n: outcome.had.get(f"{n}_error", "") for n in outcome.refused})
        result = score_submission(
            ident, str(path), self.prepared, outcome, invalid=code.invalid, notes=code.notes
        )
        self._record_isolation(result, outcome)
        result.wall_seconds = time.monotonic() - started
        return result


def hidden_paths(
    exercise: Exercise, notebooks: list[Path], out_dir: str | Path | None = None
) -> list[str]:
    """The host paths a worker must not see: the exercise, the repository's exercises, each
    submission's folder and file, the course of an nbgrader layout (the folder holding
    ``submitted/``, whose ``source/`` has the solutions), and the report folder."""
    hide = {str(exercise.path)}
    repo_exercises = Path(_CNNLAB_ROOT) / "exercises"
    if repo_exercises.is_dir():
        hide.add(str(repo_exercises))
    for path in notebooks:
        hide.add(str(path.parent))
        hide.add(str(path))  # used when its folder cannot be covered
        for ancestor in path.parents:
            if ancestor.name == "submitted" and ancestor.parent != ancestor:
                hide.add(str(ancestor.parent))
                break
    if out_dir is not None:
        hide.add(str(Path(out_dir).resolve()))
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
    zygote: bool = True,
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
    zygote : bool
        Fork each worker from a preloaded zygote (:mod:`cnnlab.exercises.zygote`); False
        starts each as a fresh interpreter (slower by the libraries' import time).

    Raises
    ------
    IsolationError
        Without ``allow_weak_isolation``, when the grading process cannot provide a promised
        protection (before any worker starts), or a worker reports one missing (before its
        student code runs; no further worker starts).
    """
    if not isinstance(exercise, Exercise):
        exercise = load_exercise(exercise)
    found = find_submissions(list(submissions))
    hide = hidden_paths(exercise, [path for _, path in found], out_dir)
    jobs = max(1, min(jobs or os.cpu_count() or 1, max(1, len(found))))
    with GradingSession(
        exercise,
        hide=hide,
        limits=limits,
        jobs=jobs,
        allow_weak_isolation=allow_weak_isolation,
        zygote=zygote,
    ) as session:
        return session.grade(found, progress=progress)


class GradingSession:
    """A grading run's resources, held open to grade one batch of submissions after another.

    Opening one makes the run's work folder, reserves a uid per worker slot (as root), checks
    what the grading process itself provides (unless ``allow_weak_isolation``), prepares every
    test's inputs and expected answers, and starts the zygote. It holds a lock on its work
    folder while it lives, and first sweeps away what killed runs left behind
    (:mod:`cnnlab.exercises.leftovers`); :meth:`close` (or leaving the
    ``with`` block) gives all of it back. :func:`grade_submissions` is one session, one batch;
    a long-lived process (a Dask worker) keeps a session per exercise.

    Parameters
    ----------
    exercise : Exercise or path
        The exercise.
    hide : list of str
        Host folders the workers must not see where no minimal root can be built (the
        exercise, the submissions' folders, the report folder: see :func:`hidden_paths`).
    limits, jobs, allow_weak_isolation, zygote
        As in :func:`grade_submissions` (``jobs`` default: 1).
    """

    def __init__(
        self,
        exercise: Exercise | str | Path,
        *,
        hide: list[str],
        limits: Limits | None = None,
        jobs: int = 1,
        allow_weak_isolation: bool = False,
        zygote: bool = True,
    ) -> None:
        if not isinstance(exercise, Exercise):
            exercise = load_exercise(exercise)
        limits = limits or Limits()
        self.jobs = max(1, int(jobs))
        self.allow_weak_isolation = allow_weak_isolation
        self.swept = leftovers.sweep()  # what killed runs left behind
        self.workdir = Path(tempfile.mkdtemp(prefix=leftovers.RUN_PREFIX))
        os.chmod(self.workdir, 0o711 if os.geteuid() == 0 else 0o700)
        self._stack = contextlib.ExitStack()
        self._stack.callback(os.close, leftovers.hold_run(self.workdir))  # released last
        self._stack.callback(remove_tree, self.workdir)
        try:
            grader = _Grader(exercise, limits, sorted(set(hide)), self.workdir)
            self.grader = grader
            uids = (
                self._stack.enter_context(_claim_uids(self.jobs, limits.uid_base))
                if grader.is_root
                else []
            )
            grader.slot_uids = uids
            if not allow_weak_isolation:
                lacking = preflight(
                    self.workdir,
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
            if zygote:
                grader.zygote = _start_zygote(grader)
                if grader.zygote is not None:
                    self._stack.callback(grader.zygote.close)
            for slot in range(self.jobs):
                grader.slots.put(slot)
        except BaseException:
            self._stack.close()
            raise

    @property
    def exercise(self) -> Exercise:
        return self.grader.exercise

    def grade(
        self,
        found: list[tuple[str, Path]],
        *,
        progress: bool = False,
        on_result: Callable[[SubmissionResult], None] | None = None,
    ) -> list[SubmissionResult]:
        """Grade ``(id, notebook path)`` pairs; results sorted by id.

        ``on_result`` is called with each result as soon as it is ready (in the calling
        thread's pool; a journal writes it there). Raises :class:`IsolationError` once a worker
        refused for lack of a promised protection (unless ``allow_weak_isolation``).
        """
        results = _grade_all(self.grader, found, self.jobs, progress, on_result)
        if self.grader.refusals and not self.allow_weak_isolation:
            raise IsolationError(self.grader.mode, self.grader.refusals)
        return sorted(results, key=lambda r: r.id)

    def close(self) -> None:
        """Stop the zygote, give back the uids and remove the work folder."""
        self._stack.close()

    def __enter__(self) -> GradingSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _grade_all(
    grader: _Grader,
    found: list[tuple[str, Path]],
    jobs: int,
    progress: bool,
    on_result: Callable[[SubmissionResult], None] | None = None,
) -> list[SubmissionResult]:
    """Grade every submission on ``jobs`` threads; a grader error costs one submission only."""
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
            if on_result is not None:
                on_result(results[-1])
            bar.update(1)
    return results
