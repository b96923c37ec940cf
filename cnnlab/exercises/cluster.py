"""Grade on a Dask cluster: the same grader as local grading, one task per submission.

``cnnlab grade EXERCISE SUBMISSIONS --out DIR --scheduler tcp://HOST:PORT`` (or ``tls://``) sends
the class to the workers of a running Dask scheduler (`Dask distributed
<https://distributed.dask.org>`_) instead of grading on this machine. The two sides:

- **the client** (:func:`grade_on_cluster`, this process): finds the submissions, reads each
  notebook's bytes, and submits one task per submission (or per small batch) with Dask's
  ``retries``; as results come back it writes each to the journal
  (:mod:`cnnlab.exercises.journal`) at once, and at the end it alone writes the reports
  (:func:`cnnlab.exercises.reports.write_reports`) from all the results, rebuilt from plain
  data. A rerun with the same ``--out`` takes what the journal holds and grades only the rest.
- **the task** (:func:`grade_batch`, on a Dask worker): gets the exercise's files and the
  notebooks as bytes, writes them into a private folder (mode 0700) of its own, and grades
  them with a :class:`~cnnlab.exercises.grading.GradingSession` that the worker process keeps
  for the exercise (keyed by the digest of its files) as long as it lives: the zygote, the
  slot uids and the prepared tests are paid for once per worker, not per task. It returns
  plain data: each :meth:`SubmissionResult.as_dict`, never an object of ours.

Everything that decides a grade runs on the worker exactly as it runs locally (the same
session, sandbox and scoring), so ``grades.csv`` and the feedback and results files are
byte-identical to local grading of the same notebooks; only ``isolation.json`` differs (slot
uids and cgroup names are the worker's). The sandboxed student process never sees the exercise:
the session hides the worker's private folder as local grading hides the exercise folder.

A Dask worker that dies takes its running tasks with it; the scheduler gives them to another
worker (up to ``distributed.scheduler.allowed-failures`` deaths per task), and the client keeps
one result per id, so each submission is in the report once. A task that still fails is
reported as an ``error`` with the reason, as a grader error is locally, and is not journaled:
a rerun grades it again.

Fail closed, as locally: a Dask worker that cannot give a promised protection (it does not
run as root, or lacks namespaces or cgroups) answers with the :class:`IsolationError`, which
stops the run here. Workers must run the same cnnlab as the client (a digest of its code is
compared); one that does not refuses every task.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cnnlab.exercises.grading import GradingSession, IsolationError, Limits, hidden_paths
from cnnlab.exercises.journal import Journal, result_from_dict, sha256_hex
from cnnlab.exercises.notebook import _read_regular_file, read_submission
from cnnlab.exercises.scoring import PreparedTest, RunOutcome, SubmissionResult, score_submission
from cnnlab.exercises.spec import Exercise, load_exercise
from cnnlab.exercises.submissions import find_submissions

__all__ = [
    "ClusterError",
    "grade_on_cluster",
    "grade_batch",
    "exercise_bundle",
    "grader_digest",
    "grade_settings",
    "close_sessions",
    "worker_sessions",
    "SCHEMES",
]

#: The scheduler addresses accepted: plain TCP, or TLS with Dask's security settings.
SCHEMES = ("tcp://", "tls://")
_CNNLAB = Path(__file__).resolve().parents[1]


class ClusterError(RuntimeError):
    """The cluster cannot grade: the scheduler is unreachable, or a worker refuses."""


# --------------------------------------------------------------------------------------------
# What travels: the exercise and the grader's identity, as plain data


def _exercise_files(folder: Path) -> list[tuple[str, bytes]]:
    """``(relative path, bytes)`` of every file of the exercise folder, sorted (``__pycache__``
    and hidden names left out)."""
    files = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part == "__pycache__" or part.startswith(".") for part in relative.parts):
            continue
        if path.is_file():
            files.append((relative.as_posix(), path.read_bytes()))
    return files


def exercise_bundle(folder: str | Path) -> dict[str, Any]:
    """The exercise folder as plain data: ``{"name", "files": {relative path: bytes}, "digest"}``.

    ``digest`` is the SHA-256 of the folder's name and of every file's path and bytes: two
    folders with the same digest grade alike. It keys the worker's session and the journal.
    """
    folder = Path(folder).resolve()
    files = _exercise_files(folder)
    digest = hashlib.sha256(folder.name.encode() + b"\0")
    for relative, data in files:
        digest.update(f"{relative}\0{len(data)}\0".encode())
        digest.update(data)
    return {"name": folder.name, "files": dict(files), "digest": digest.hexdigest()}


#: Modules of cnnlab.exercises that only the client runs (finding submissions, reports, the
#: journal): left out of :func:`grader_digest`.
_CLIENT_ONLY = frozenset(
    ("__init__.py", "journal.py", "nbgrader_gradebook.py", "releasing.py", "reports.py")
    + ("selfcheck.py", "submissions.py")
)


def _sources_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted((_CNNLAB / "exercises").glob("*.py")):
        if path.name not in _CLIENT_ONLY:
            digest.update(path.name.encode() + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()


_GRADER_DIGEST = _sources_digest()  # when this process loaded the grader


def grader_digest() -> str:
    """The SHA-256 of the grader's Python sources (``cnnlab/exercises``, less the client's
    own modules) as this process found them when it imported the grader: a client and a worker
    with different graders could grade differently, so a worker refuses a client whose digest
    differs."""
    return _GRADER_DIGEST


def grade_settings(limits: Limits) -> dict[str, Any]:
    """The limits that change a grade, as plain data (``uid_base`` does not)."""
    settings = asdict(limits)
    settings.pop("uid_base")
    return settings


# --------------------------------------------------------------------------------------------
# The worker side: one session per exercise per worker process


@dataclass
class _WorkerSession:
    session: GradingSession
    folder: Path  # private: the exercise's files and each task's notebooks


_SESSIONS: dict[tuple, _WorkerSession] = {}
_SESSIONS_LOCK = threading.Lock()


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _worker_threads() -> int:
    """The Dask worker's thread count (its tasks at a time), 1 outside a worker."""
    try:
        from distributed import get_worker

        return max(1, int(get_worker().state.nthreads))
    except (ImportError, ValueError, AttributeError):
        return 1


def _session_for(bundle: dict[str, Any], options: dict[str, Any]) -> _WorkerSession:
    """This process's session for the bundle's exercise and these limits, opened on first use."""
    limits = Limits(**options["limits"])
    hidden_seed = str(options.get("hidden_seed", ""))
    key = (bundle["digest"], limits, bool(options["allow_weak_isolation"]), hidden_seed)
    with _SESSIONS_LOCK:
        cached = _SESSIONS.get(key)
        if cached is not None:
            return cached
        folder = Path(tempfile.mkdtemp(prefix="cnnlab-dask-"))
        os.chmod(folder, 0o700)
        try:
            exercise_dir = folder / "exercise" / bundle["name"]
            for relative, data in bundle["files"].items():
                parts = Path(relative).parts
                if Path(relative).is_absolute() or ".." in parts or not parts:
                    raise ValueError(f"exercise file {relative!r} is outside the exercise folder")
                _write_private(exercise_dir.joinpath(*parts), data)
            exercise = load_exercise(exercise_dir)
            exercise.hidden_seed = hidden_seed  # the client's, whatever this machine's variable
            session = GradingSession(
                exercise,
                hide=[*hidden_paths(exercise, []), str(folder)],
                limits=limits,
                jobs=_worker_threads(),
                allow_weak_isolation=bool(options["allow_weak_isolation"]),
            )
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        cached = _WorkerSession(session, folder)
        _SESSIONS[key] = cached
        return cached


def close_sessions() -> None:
    """Close this process's sessions (zygotes, uids, work folders) and remove their folders.

    Registered with :mod:`atexit`, so a Dask worker that shuts down gives everything back.
    """
    with _SESSIONS_LOCK:
        cached = list(_SESSIONS.values())
        _SESSIONS.clear()
    for entry in cached:
        try:
            entry.session.close()
        finally:
            shutil.rmtree(entry.folder, ignore_errors=True)


atexit.register(close_sessions)  # a worker process that ends without closing (a fallback)


def worker_sessions() -> dict[str, Any]:
    """What this process holds, as plain data: its pid, and each open session's exercise,
    work folder and private folder (``client.run(worker_sessions)`` asks every worker)."""
    with _SESSIONS_LOCK:
        held = list(_SESSIONS.values())
    return {
        "pid": os.getpid(),
        "sessions": [
            {
                "exercise": entry.session.exercise.name,
                "workdir": str(entry.session.workdir),
                "folder": str(entry.folder),
            }
            for entry in held
        ],
    }


def dask_teardown(worker: Any) -> None:
    """Dask's preload hook: with ``dask worker --preload cnnlab.exercises.cluster``, the worker
    closes its sessions while it closes (before its nanny ends the process, which could cut
    the :mod:`atexit` fallback short)."""
    close_sessions()


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"pid {os.getpid()}"


def grade_batch(
    bundle: dict[str, Any], batch: list[dict[str, Any]], options: dict[str, Any]
) -> dict[str, Any]:
    """Grade a batch of notebooks on this (Dask worker) process; return plain data.

    Parameters
    ----------
    bundle : dict
        The exercise (:func:`exercise_bundle`).
    batch : list of dict
        ``{"id", "name", "data"}`` per notebook: its id, its file name and its bytes.
    options : dict
        ``limits`` (``Limits`` as a dict), ``allow_weak_isolation`` and ``grader`` (the
        client's :func:`grader_digest`).

    Returns
    -------
    dict
        ``{"results": [SubmissionResult.as_dict(), ...], "worker": address}``;
        ``{"refused": why}`` when this worker runs other cnnlab code than the client; or
        ``{"isolation_error": {"mode", "missing", "message"}}`` when it lacks a promised
        protection. Any other failure raises a plain ``RuntimeError`` (Dask retries it).
    """
    if options.get("grader") != grader_digest():
        return {
            "refused": f"the Dask worker {_worker_address()} runs other cnnlab code than the "
            f"client (code digest {grader_digest()[:12]}, the client's "
            f"{str(options.get('grader'))[:12]}): install the same cnnlab on every worker"
        }
    try:
        cached = _session_for(bundle, options)
        tasks = cached.folder / "tasks"
        tasks.mkdir(mode=0o700, exist_ok=True)
        folder = Path(tempfile.mkdtemp(dir=tasks))
        try:
            found = []
            for index, item in enumerate(batch):
                name = Path(item["name"]).name or "submission.ipynb"
                path = folder / str(index) / name
                _write_private(path, item["data"])
                found.append((item["id"], path))
            results = cached.session.grade(found)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    except IsolationError as error:
        return {
            "isolation_error": {
                "mode": error.mode,
                "missing": list(error.missing),
                "message": str(error),
            },
            "worker": _worker_address(),
        }
    except Exception as error:  # noqa: BLE001 (sent back as plain text; Dask retries)
        raise RuntimeError(f"{type(error).__name__}: {error}") from None
    return {"results": [r.as_dict() for r in results], "worker": _worker_address()}


def _identity(value: Any) -> Any:
    """A task that holds the exercise bundle (recomputed by Dask if its worker dies)."""
    return value


# --------------------------------------------------------------------------------------------
# The client side


@dataclass
class _Item:
    ident: str
    path: Path
    sha256: str


def _unreadable(ident: str, path: Path, exercise: Exercise) -> SubmissionResult:
    """The result of a notebook that cannot be read, as local grading scores it (no worker)."""
    started = time.monotonic()
    code = read_submission(path)
    tests = [PreparedTest(t, (), {}, None) for t in exercise.tests]  # no answer is compared
    result = score_submission(
        ident, str(path), tests, RunOutcome(), invalid=code.invalid, notes=code.notes
    )
    result.wall_seconds = time.monotonic() - started
    return result


def _grader_error(item: _Item, error: BaseException, exercise: Exercise) -> SubmissionResult:
    """A submission whose task failed beyond Dask's retries (as a grader error locally)."""
    return SubmissionResult(
        item.ident,
        str(item.path),
        "error",
        0.0,
        float(exercise.max_score),
        notes=[f"grader error: {type(error).__name__}: {error}"],
    )


def _connect(scheduler: str, security: Any, timeout: float | None):
    """A Dask client of ``scheduler`` (TLS settings from Dask's configuration by default)."""
    from distributed import Client
    from distributed.security import Security

    if security is None:
        security = Security()  # Dask's configuration: distributed.comm.tls.*
    if scheduler.startswith("tls://") and not (security.tls_ca_file and security.tls_client_cert):
        raise ClusterError(
            f"{scheduler} needs Dask's TLS settings: set distributed.comm.tls.ca-file, "
            "distributed.comm.tls.client.cert and .key in Dask's configuration (or the "
            "DASK_DISTRIBUTED__COMM__TLS__CA_FILE, ...__CLIENT__CERT, ...__CLIENT__KEY "
            "environment variables)"
        )
    kwargs = {} if timeout is None else {"timeout": timeout}
    try:
        return Client(scheduler, security=security, set_as_default=False, **kwargs)
    except (OSError, TimeoutError) as error:
        raise ClusterError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None


def _counts(results: dict[str, SubmissionResult]) -> str:
    counts = Counter(r.status for r in results.values())
    return " ".join(f"{status}={counts[status]}" for status in sorted(counts))


def grade_on_cluster(
    exercise_dir: str | Path,
    submissions: list[str | Path],
    out_dir: str | Path,
    *,
    scheduler: str,
    limits: Limits | None = None,
    jobs: int | None = None,
    hidden_feedback: str = "names",
    progress: bool = True,
    gradescope_results: str | Path | None = None,
    allow_weak_isolation: bool = False,
    security: Any = None,
    batch_size: int = 1,
    retries: int = 2,
    connect_timeout: float | None = None,
    on_result: Callable[[SubmissionResult], None] | None = None,
) -> list[SubmissionResult]:
    """Grade ``submissions`` on the Dask cluster of ``scheduler``; write the reports to ``out_dir``.

    Takes :func:`cnnlab.exercises.reports.grade`'s arguments, and writes the same reports;
    ``jobs`` is ignored (each Dask worker grades as many submissions at a time as it has
    threads). Results already in ``out_dir``'s journal, for the same notebook bytes, are taken
    from it: an interrupted run, rerun, grades only what is missing.

    Parameters
    ----------
    scheduler : str
        ``tcp://HOST:PORT``, or ``tls://HOST:PORT`` with Dask's TLS configuration.
    security : distributed.Security, optional
        Instead of Dask's configuration.
    batch_size : int
        Submissions per task (1: the finest-grained retries).
    retries : int
        Dask retries of a task that raised (a worker's death is retried by the scheduler).
    connect_timeout : float, optional
        Seconds to reach the scheduler (default: Dask's ``distributed.comm.timeouts.connect``).
    on_result : callable, optional
        Called with each result graded in this run as soon as it is journaled.

    Raises
    ------
    ClusterError
        The scheduler cannot be reached, or a worker runs other cnnlab code.
    IsolationError
        A worker lacks a protection its mode promises (without ``allow_weak_isolation``);
        nothing is written but the journal of what was graded before.
    JournalError
        ``out_dir`` holds the journal of another exercise or of other limits.
    """
    from cnnlab.exercises.reports import write_gradescope_results, write_reports

    if not scheduler.startswith(SCHEMES):
        raise ClusterError(
            f"--scheduler {scheduler!r}: give the Dask scheduler's address as tcp://HOST:PORT "
            "or tls://HOST:PORT"
        )
    exercise = load_exercise(exercise_dir)
    bundle = exercise_bundle(exercise.path)
    found = find_submissions(list(submissions))
    limits = limits or Limits()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, SubmissionResult] = {}
    settings = grade_settings(limits)
    if exercise.hidden_seed:  # another secret draws other hidden inputs: not the same grades
        settings["hidden_seed"] = hashlib.sha256(exercise.hidden_seed.encode()).hexdigest()[:16]
    with Journal(out, exercise=exercise.name, digest=bundle["digest"], settings=settings) as log:
        options = {
            "limits": asdict(limits),
            "allow_weak_isolation": allow_weak_isolation,
            "hidden_seed": exercise.hidden_seed,
            "grader": grader_digest(),
        }
        run = _ClusterRun(exercise, bundle, log, uuid.uuid4().hex, options, results, on_result)
        todo: list[_Item] = []
        resumed = 0
        for ident, path in found:
            try:
                sha = sha256_hex(_read_regular_file(path))
            except (OSError, ValueError):
                sha = None
            earlier = log.done(ident, sha)
            if earlier is not None:
                earlier.path = str(path)
                results[ident] = earlier
                resumed += 1
            elif sha is None:  # scored here, as local grading scores it: no worker runs
                run._record(_unreadable(ident, path, exercise), None, "client")
            else:
                todo.append(_Item(ident, path, sha))
        if resumed:
            print(
                f"resuming from {log.path}: {resumed} of {len(found)} already graded, "
                f"{len(todo)} to grade",
                file=sys.stderr,
            )
        if todo:
            client = _connect(scheduler, security, connect_timeout)
            try:
                run.grade(client, todo, max(1, batch_size), retries, progress)
            except KeyboardInterrupt:
                print(
                    f"interrupted: {len(log.entries)} of {len(found)} graded and kept in "
                    f"{log.path}; rerun the same command to grade the rest",
                    file=sys.stderr,
                )
                raise
            finally:
                client.close()
    missing = [ident for ident, _ in found if ident not in results]
    if missing:  # never expected: every task answers or is reported as a grader error
        raise ClusterError(f"no result for {len(missing)} submissions: {missing[:5]}")
    ordered = sorted(results.values(), key=lambda r: r.id)
    write_reports(ordered, exercise, out, hidden_feedback, limits.network)
    if gradescope_results is not None:
        write_gradescope_results(ordered, gradescope_results, hidden_feedback)
    return ordered


@dataclass
class _ClusterRun:
    """One client run: it sends the notebooks, and journals each result as it comes back."""

    exercise: Exercise
    bundle: dict[str, Any]  # the exercise's files (exercise_bundle)
    log: Journal
    run: str  # this run's id, in each journal line it writes
    options: dict[str, Any]  # for grade_batch: limits, allow_weak_isolation, grader
    results: dict[str, SubmissionResult]
    on_result: Callable[[SubmissionResult], None] | None = None

    def grade(
        self, client: Any, todo: list[_Item], batch_size: int, retries: int, progress: bool
    ) -> None:
        """Submit ``todo`` in batches, at most a window of tasks in flight, and take each
        finished task's results; on the way out, cancel what is still in flight."""
        from distributed import as_completed
        from tqdm.auto import tqdm

        batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
        workers = client.nthreads()
        window = max(64, 4 * sum(workers.values()))  # enough queued to keep every thread busy
        if progress:
            print(
                f"grading {len(todo)} submissions on {client.scheduler.address}: "
                f"{len(workers)} Dask workers, {sum(workers.values())} threads",
                file=sys.stderr,
            )
        # The exercise travels once, as a task's argument: if the worker holding it dies, the
        # scheduler computes it again from there.
        held = client.submit(_identity, self.bundle, key=f"cnnlab-exercise-{self.run}", pure=False)
        pending = iter(enumerate(batches))
        in_flight: dict[Any, list[_Item]] = {}
        completed = as_completed(loop=client.loop)
        total = len(self.results) + len(todo)
        bar = tqdm(
            total=total,
            initial=len(self.results),
            desc=f"grading {self.exercise.name} on Dask",
            unit="nb",
            disable=not progress,
            file=sys.stderr,
        )

        def refill() -> None:
            while len(in_flight) < window:
                number, batch = next(pending, (None, None))
                if batch is None:
                    return
                payload = self._payload(batch)
                if not payload:
                    continue
                future = client.submit(
                    grade_batch,
                    held,
                    payload,
                    self.options,
                    key=f"cnnlab-grade-{self.run}-{number}",
                    retries=retries,
                    pure=False,
                )
                in_flight[future] = [i for i in batch if i.ident not in self.results]
                completed.add(future)

        try:
            refill()
            for future in completed:
                batch = in_flight.pop(future)
                self._take(future, batch)
                bar.set_postfix_str(_counts(self.results), refresh=False)
                bar.update(len(batch))
                refill()
        finally:
            bar.close()
            if in_flight:
                client.cancel(list(in_flight))

    def _payload(self, batch: list[_Item]) -> list[dict[str, Any]]:
        """The batch's notebooks as plain data; one unreadable by now is scored here."""
        payload = []
        for item in batch:
            try:
                data = _read_regular_file(item.path)
            except (OSError, ValueError):
                self._record(_unreadable(item.ident, item.path, self.exercise), None, "client")
                continue
            item.sha256 = sha256_hex(data)  # what is graded, should the file have changed
            payload.append({"id": item.ident, "name": item.path.name, "data": data})
        return payload

    def _record(self, result: SubmissionResult, sha256: str | None, worker: str) -> None:
        grader = self.options["grader"][:16]  # which grader code graded it (the same everywhere)
        self.log.record(result, sha256, run=self.run, worker=worker, grader=grader)
        self.results[result.id] = result
        if self.on_result is not None:
            self.on_result(result)

    def _take(self, future: Any, batch: list[_Item]) -> None:
        """Record one finished task: its results journaled, or its failure as grader errors
        (not journaled: a rerun grades them again)."""
        try:
            answer = future.result()
        except Exception as error:  # noqa: BLE001 (KilledWorker; a task that raised, retried)
            for item in batch:
                self.results[item.ident] = _grader_error(item, error, self.exercise)
            return
        if "refused" in answer:
            raise ClusterError(answer["refused"])
        if "isolation_error" in answer:
            details = answer["isolation_error"]
            error = IsolationError(details["mode"], {name: "" for name in details["missing"]})
            error.args = (f"{details['message']} (on the Dask worker {answer.get('worker')})",)
            raise error
        by_id = {item.ident: item for item in batch}
        for data in answer["results"]:
            item = by_id.pop(data.get("id"), None)
            if item is None:
                continue  # not of this batch: never expected
            result = result_from_dict(data)
            result.path = str(item.path)  # the client's path, as local grading reports it
            self._record(result, item.sha256, str(answer.get("worker")))
        for item in by_id.values():  # never expected: the batch came back without it
            error = ClusterError("the task returned no result for it")
            self.results[item.ident] = _grader_error(item, error, self.exercise)
