"""How long a graded call kept the processor busy, and how much memory it took, measured from
outside the process that made it; and the same for a reference, timed by the grading process.

A test may bound two resources of the student's call besides its wall-clock ``time_limit``
(:class:`~cnnlab.exercises.spec.Test`):

``time_factor``
    the call's **processor time** may be at most ``time_factor`` times that of the test's
    ``timing_reference`` on the same inputs. The grading process times the reference itself
    (:func:`reference_cpu_seconds`: one thread, the best of a few runs, each without memory
    to reuse), before grading and again once the submission's worker is gone, and keeps the
    slower of the two; the worker's supervisor reads the student process's CPU clock (``clock_gettime`` on the
    process's CPU-time clock, every thread included, and the children it reaped, and every
    other process under the supervisor) just before it sends the call and just after the reply
    (:func:`tree_cpu_seconds`). Processor time, unlike the wall clock, does not count the moments
    the core ran another worker's code, so a busy grading machine does not fail an honest
    solution. The student's call is measured once: repeating it and keeping the best would
    reward a submission that caches its answers.
``memory_limit_mb``
    the resident memory of the student process (with any process it starts) may grow by at
    most this many MiB during the call (:class:`MemoryWatch`): the supervisor samples it about
    every millisecond while it waits for the reply, and reads the kernel's high-water mark
    ``VmHWM`` of the student process before and after (a mark raised during the call is the
    call's exact peak). Nothing running inside the student process takes part, so nothing its
    code does can shape the reading; a process that resets its own mark
    (``/proc/self/clear_refs``) is still seen by the sampling.

:func:`resource_verdict` turns the readings into a test's verdict and message, in the grading
process. This module imports nothing but the standard library at load time: the supervisor
uses it.
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "process_cpu_seconds",
    "tree_cpu_seconds",
    "MemoryWatch",
    "reference_cpu_seconds",
    "resource_verdict",
    "wait_readable",
    "SAMPLE_SECONDS",
    "MIN_REFERENCE_SECONDS",
]

#: How often the supervisor samples the student process's resident memory during a call.
SAMPLE_SECONDS = 0.001
#: Every how many samples the list of the student's other processes is read again.
RESCAN_SAMPLES = 10
#: A reference faster than this is counted as this long (the ratio to a sub-millisecond
#: reference would measure call overhead, not the computation).
MIN_REFERENCE_SECONDS = 0.001
#: What a reading that could not be taken is reported as (the verdict then says so).
UNMEASURED = -1.0

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
CPUCLOCK_SCHED = 2  # the kernel's CPU clock of a whole process, in nanoseconds


def process_cpu_seconds(pid: int) -> float:
    """Processor time (user + system) that the process ``pid`` has used, every thread included.

    Read through the process's CPU-time clock, ``clockid = (~pid << 3) | 2``, the clock that
    ``clock_getcpuclockid(3)`` returns; any process may read it, no permission needed.

    Examples
    --------
    >>> process_cpu_seconds(os.getpid()) > 0
    True
    """
    return time.clock_gettime((~pid << 3) | CPUCLOCK_SCHED)


def _stat_fields(pid: int) -> list[bytes]:
    """The fields of ``/proc/PID/stat`` after the command name (field 3, the state, first)."""
    with open(f"/proc/{pid}/stat", "rb") as handle:
        return handle.read().rpartition(b")")[2].split()


def _proc_is_ours() -> bool:
    """Whether ``/proc`` shows this process's own PID namespace (``/proc/self`` is our pid)."""
    try:
        return os.readlink("/proc/self") == str(os.getpid())
    except OSError:
        return False


def _descendants(root: int) -> set[int]:
    """Every process whose chain of parents leads to ``root`` (``root`` excluded)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent = int(_stat_fields(int(entry))[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(parent, []).append(int(entry))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def tree_cpu_seconds(pid: int, root: int | None = None) -> float:
    """Processor time used by the process ``pid`` and by every other process under ``root``.

    ``pid``'s own clock covers all its threads, living or ended; to it are added the children it
    has waited for (``cutime + cstime`` of ``/proc/PID/stat``, in clock ticks) and, where
    ``/proc`` shows this PID namespace, every other live or unreaped process descended from
    ``root`` (default: this process, the supervisor, to which orphans are reparented), with the
    children each of them reaped. Work handed to a child process is counted, not hidden.

    Returns
    -------
    float
        Seconds, or ``-1.0`` when not even ``pid``'s own clock could be read.
    """
    try:
        total = process_cpu_seconds(pid)
    except OSError:
        return UNMEASURED
    if not _proc_is_ours():
        return total
    root = os.getpid() if root is None else root
    for other in _descendants(root) | {pid}:
        try:
            fields = _stat_fields(other)
            reaped = (int(fields[13]) + int(fields[14])) / _CLOCK_TICKS  # cutime, cstime
            total += reaped + (process_cpu_seconds(other) if other != pid else 0.0)
        except (OSError, IndexError, ValueError):
            continue
    return total


def _status_kib(pid: int, key: bytes) -> int:
    """A ``kB`` field of ``/proc/PID/status`` (``VmHWM``, ``VmRSS``) in bytes."""
    with open(f"/proc/{pid}/status", "rb") as handle:
        for line in handle:
            if line.startswith(key + b":"):
                return int(line.split()[1]) * 1024
    raise ValueError(f"no {key.decode()} in /proc/{pid}/status")


class MemoryWatch:
    """The growth of the resident memory of a process and its company over a call, seen from
    outside.

    Make it just before the call, call :meth:`sample` while waiting (about every
    :data:`SAMPLE_SECONDS`), and :meth:`growth` once the call has ended. What is summed is the
    resident memory of the process ``pid`` and of every other process under ``root`` (the
    supervisor; the list is refreshed every :data:`RESCAN_SAMPLES` samples), so memory handed
    to a child process counts too (in full, its pages shared with the parent included: only a
    submission that forks can be over-counted). It first asks the kernel to reset ``pid``'s
    high-water mark (``echo 5 > /proc/PID/clear_refs``; refused where the process is not
    dumpable, which is fine: a mark that rose during the call is the call's peak either way).
    """

    def __init__(self, pid: int, root: int | None = None) -> None:
        self.pid = pid
        self.root = os.getpid() if root is None else root
        self.ok = _proc_is_ours()
        self.peak = self.start = self.mark_before = 0
        self.others: set[int] = set()
        self.samples = 0
        if not self.ok:
            return
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as handle:
                handle.write("5")
        except OSError:
            pass
        try:
            self.mark_before = _status_kib(pid, b"VmHWM")
            self.start = self.peak = self._total()
        except (OSError, ValueError, IndexError):
            self.ok = False

    @staticmethod
    def _rss(pid: int) -> int:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * _PAGE

    def _total(self) -> int:
        """Resident bytes of ``pid`` (raises when it cannot be read) and of the others now."""
        if self.samples % RESCAN_SAMPLES == 0:
            self.others = _descendants(self.root) - {self.pid}
        self.samples += 1
        total = self._rss(self.pid)
        for other in self.others:
            try:
                total += self._rss(other)
            except (OSError, ValueError, IndexError):  # ended, or a zombie
                continue
        return total

    def sample(self) -> None:
        """Read the resident memory now; keep the largest reading."""
        if self.ok:
            try:
                self.peak = max(self.peak, self._total())
            except (OSError, ValueError, IndexError):
                pass

    def growth(self) -> float:
        """Bytes the resident memory rose above its size at the start, at its peak; ``-1.0``
        when it could not be measured (no ``/proc`` of this PID namespace)."""
        if not self.ok:
            return UNMEASURED
        self.sample()
        try:
            mark_after = _status_kib(self.pid, b"VmHWM")
        except (OSError, ValueError):
            mark_after = 0
        peak = max(self.peak, mark_after if mark_after > self.mark_before else 0)
        return float(max(0, peak - self.start))


def wait_readable(fd: int, idle: Callable[[], None]) -> None:
    """Block until ``fd`` can be read, calling ``idle()`` every :data:`SAMPLE_SECONDS` meanwhile."""
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    while not poller.poll(SAMPLE_SECONDS * 1000):
        idle()


def _malloc_trim() -> Callable[[], None]:
    """``malloc_trim(0)`` of the C library where it has one (glibc), else a no-op."""
    try:
        import ctypes

        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return lambda: None

    def release() -> None:
        trim(0)

    return release


def reference_cpu_seconds(
    function: Callable[..., Any],
    args: tuple,
    kwargs: Mapping[str, Any],
    repeats: int = 5,
) -> float:
    """Processor seconds one call of ``function(*args, **kwargs)`` takes here, on one thread.

    The grading process calls it once to warm up, then ``repeats`` times, each timed with this
    thread's CPU clock (``time.thread_time``) while every BLAS and OpenMP pool is limited to
    one thread (threadpoolctl), and keeps the fastest: the reference's own cost, without the
    moments another process had the core. Each run starts, like the student's single call,
    without memory to reuse: what the previous run freed is first handed back to the system
    (glibc's ``malloc_trim``), so both pay for the fresh pages their arrays need (for a
    memory-bound computation such as im2col, that is a large share of the time).

    Examples
    --------
    >>> seconds = reference_cpu_seconds(sum, (range(100_000),), {})
    >>> 0 < seconds < 1
    True
    """
    from threadpoolctl import threadpool_limits

    trim = _malloc_trim()
    best = float("inf")
    with threadpool_limits(1):
        function(*args, **kwargs)
        for _ in range(max(1, repeats)):
            trim()
            started = time.thread_time()
            function(*args, **kwargs)
            best = min(best, time.thread_time() - started)
    return best


def resource_verdict(
    time_factor: float | None,
    memory_limit_mb: float | None,
    cpu_seconds: float,
    memory_growth: float,
    reference_seconds: float | None,
) -> tuple[bool, str]:
    """Whether a correct call kept within its test's processor-time and memory bounds, and
    what was measured against what.

    Examples
    --------
    >>> resource_verdict(20.0, None, 0.41, 0.0, 0.01)
    (False, "it used 41x the reference's processor time on the same inputs (410 ms against 10 ms); the limit is 20x")
    >>> resource_verdict(None, 32, 0.0, 100 * 2**20, None)
    (False, 'its memory grew by 100 MiB during the call; the limit is 32 MiB')
    >>> resource_verdict(20.0, 32, 0.02, 4 * 2**20, 0.01)
    (True, "2x the reference's processor time (limit 20x); memory grew by 4 MiB (limit 32 MiB)")
    """
    failures, notes = [], []
    if time_factor is not None:
        reference = max(reference_seconds or 0.0, MIN_REFERENCE_SECONDS)
        if cpu_seconds < 0:
            failures.append("its processor time could not be measured in this worker")
        else:
            ratio = cpu_seconds / reference
            if ratio > time_factor:
                failures.append(
                    f"it used {ratio:.0f}x the reference's processor time on the same inputs "
                    f"({cpu_seconds * 1e3:.0f} ms against {reference * 1e3:.0f} ms); "
                    f"the limit is {time_factor:g}x"
                )
            else:
                notes.append(
                    f"{ratio:.2g}x the reference's processor time (limit {time_factor:g}x)"
                )
    if memory_limit_mb is not None:
        if memory_growth < 0:
            failures.append("its memory could not be measured in this worker")
        else:
            grown = memory_growth / 2**20
            if grown > memory_limit_mb:
                failures.append(
                    f"its memory grew by {grown:.0f} MiB during the call; "
                    f"the limit is {memory_limit_mb:g} MiB"
                )
            else:
                notes.append(f"memory grew by {grown:.0f} MiB (limit {memory_limit_mb:g} MiB)")
    if failures:
        return False, "; ".join(failures)
    return True, "; ".join(notes)
