"""The supervisor: the trusted half of a grading worker, between the grading process and the
student process.

A worker run's job folder holds ``job.json`` (the notebook's cells, what to forbid and preload,
the sandbox configuration), ``calls.json`` (the calls, inputs by file name), the inputs as
``.npy`` files and, for the fallback without a minimal root, ``hide.json`` (the host folders to
cover). :func:`supervise` reads ``job.json`` only, opens the other files without reading them
and removes the inputs from disk; isolates itself (:mod:`cnnlab.exercises.sandbox`); forks the
student process (:mod:`cnnlab.exercises.student`), which closes every descriptor but two
private pipes; and only then reads the calls and their inputs. So the student process, forked
from a supervisor that may have been forked from a preloaded zygote
(:mod:`cnnlab.exercises.zygote`), never holds the event pipe to the grading process, nor any
test input before the call that uses it, in its memory or on its disk.

Before any student code runs, the supervisor checks that the worker has every protection the
job requires (:mod:`cnnlab.exercises.protections`): those of its own isolation, then those the
student process reports in its first line (:class:`~cnnlab.exercises.protocol.Limits`: its
memory limit, the forbidden stubs, the seccomp filter that :mod:`cnnlab.exercises.seccomp`
installs right after the fork). Where one is missing it sends
:class:`~cnnlab.exercises.protocol.Refused` and exits; otherwise it tells the student process to
``go``.

The supervisor owns the event pipe and writes every event itself
(:mod:`cnnlab.exercises.protocol`): ``Ready``, the notebook's cell events (relayed only while
the cells run, before any test input exists in the student process), and for each call
``Begin``, then the inputs sent to the student process with a fresh random nonce, then ``End``
once a reply carrying that nonce arrives. The answer file is hashed at that moment and the digest
sent with ``End``; the grading process refuses a file changed later. So student code can neither
forge events, nor answer before it was asked, nor finish a slow answer after its call ended. The
supervisor is not dumpable (``PR_SET_DUMPABLE`` 0), so the student process, though it has the
same uid, cannot ptrace it or open its descriptors.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import signal
import stat
import sys
import time

from cnnlab.exercises import measure, plaindata, protocol, rlimits, seccomp
from cnnlab.exercises.student import CMD_FD, REPLY_FD

__all__ = ["supervise", "main"]

MAX_LINE = 1 << 20
PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36


class Events:
    """The event pipe to the grading process (written by the supervisor only)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, message: protocol.Message) -> None:
        data = protocol.encode(message)
        try:
            while data:
                data = data[os.write(self.fd, data) :]
        except (OSError, ValueError, TypeError):
            pass


class _Lines:
    """Read newline-terminated lines from a pipe, dropping overlong ones."""

    def __init__(self, fd: int) -> None:
        self.fd, self.buffer = fd, b""

    def next(self, idle=None) -> bytes | None:
        """The next line (None once the pipe is closed); ``idle()`` is called about every
        millisecond while none is there (the memory sampling of a measured call)."""
        while b"\n" not in self.buffer:
            if idle is not None:
                measure.wait_readable(self.fd, idle)
            try:
                chunk = os.read(self.fd, 65536)
            except InterruptedError:  # pragma: no cover
                continue
            if not chunk:
                return None
            self.buffer += chunk
            if len(self.buffer) > MAX_LINE and b"\n" not in self.buffer:
                self.buffer = b""  # junk: drop it
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line


def _read_answer_digest(scratch_fd: int, name: str, cap: int) -> str:
    """The SHA-256 of the answer file, read now (a plain file, not a link, at most ``cap``)."""
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=scratch_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("the answer file is not a regular file")
        digest, total = hashlib.sha256(), 0
        while chunk := os.read(fd, 1 << 20):
            total += len(chunk)
            if total > cap:
                raise ValueError("the answer file is over the size limit")
            digest.update(chunk)
        return digest.hexdigest()
    finally:
        os.close(fd)


def _read_fd(fd: int) -> bytes:
    """Everything left in the file ``fd``; the descriptor is closed."""
    chunks = []
    try:
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


def _start_student(scratch: str, env: dict[str, str]) -> tuple[int, int, int]:
    """Fork the student process; return (pid, command write fd, reply read fd).

    The child keeps standard input on ``/dev/null``, standard output and error on
    ``output.txt``, the command pipe on descriptor 3 and the reply pipe on 4, and closes every
    other descriptor (the event pipe and the job's files among them) before anything else.
    """
    cmd_r, cmd_w = os.pipe()
    reply_r, reply_w = os.pipe()
    out = os.open(os.path.join(scratch, "output.txt"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        try:
            high_cmd, high_reply = os.dup(cmd_r), os.dup(reply_w)
            os.dup2(null, 0)
            os.dup2(out, 1)
            os.dup2(out, 2)
            os.dup2(high_cmd, CMD_FD)
            os.dup2(high_reply, REPLY_FD)
            os.closerange(REPLY_FD + 1, 1 << 16)  # the event pipe and the job's files included
            rlimits.set_parent_death_signal()
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                signal.signal(signum, signal.SIG_DFL)
            try:
                seccomp.block_keyrings()  # checked by the student process before its code
            except Exception:  # noqa: BLE001 (then reported missing: the worker refuses)
                pass
            os.environ.clear()
            os.environ.update(env)
            from cnnlab.exercises.student import student_main

            student_main()
        finally:
            os._exit(127)
    for fd in (cmd_r, reply_w, out, null):
        os.close(fd)
    return pid, cmd_w, reply_r


def _kill_descendants(first: int) -> None:
    """SIGKILL the student process and every process it left behind.

    The supervisor is a child subreaper (or the PID namespace's init), so a process that
    left the student's process group or session (``setsid()``, a double fork) is reparented to
    it: killing every child until none is left ends them all.
    """
    me = str(os.getpid())
    for _ in range(200):
        pids = {first} if first else set()
        first = 0
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat", "rb") as handle:
                        fields = handle.read().rpartition(b")")[2].split()
                except OSError:
                    continue
                if fields[1].decode() == me:
                    pids.add(int(entry))
        if not pids:
            return
        for child in pids:
            try:
                os.kill(child, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for child in pids:  # reap, so that they leave /proc
            try:
                os.waitpid(child, 0)
            except ChildProcessError:
                pass


def _exit_like(pid: int) -> None:
    """Reap the student process and exit as it did (a signal as 128 + its number).

    Called when its reply pipe closed: it has usually ended; if it still runs after a moment (it
    closed the pipe itself), it is killed and the exit code is 70.
    """
    for _ in range(50):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.01)
    else:
        _kill_descendants(pid)
        os._exit(70)
    _kill_descendants(0)
    if os.WIFSIGNALED(status):
        os._exit(128 + os.WTERMSIG(status))
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 70)


def _clear_keys() -> bool:
    """Clear this uid's keyrings once the student's processes are gone; True when done."""
    from cnnlab.exercises import keyrings

    try:
        keyrings.clear_uid_keyrings()
        return True
    except OSError:
        return False


def _refuse(events: Events, had: dict[str, str], required: list[str]) -> None:
    """Send the protections this worker had and those it lacks, then exit: no student code."""
    from cnnlab.exercises import protections

    events.send(
        protocol.Refused(isolation=had, missing=protections.missing(required, had) or ["?"])
    )
    os._exit(0)


def _open_job(jobdir: str) -> tuple[dict, int, dict[str, int], int | None]:
    """Read ``job.json``; open ``calls.json``, the inputs and ``hide.json`` unread.

    The inputs are unlinked once open: the student process must not find them on disk.
    Returns the job, the descriptor of ``calls.json``, input name -> descriptor, and the
    descriptor of ``hide.json`` (None when absent).
    """
    with open(os.path.join(jobdir, "job.json")) as handle:
        job = json.load(handle)
    calls_fd = os.open(os.path.join(jobdir, "calls.json"), os.O_RDONLY)
    inputs = {}
    for name in sorted(os.listdir(jobdir)):
        if name.endswith(".npy"):
            path = os.path.join(jobdir, name)
            inputs[name] = os.open(path, os.O_RDONLY)
            try:
                os.unlink(path)
            except OSError:
                pass
    try:
        hide_fd: int | None = os.open(os.path.join(jobdir, "hide.json"), os.O_RDONLY)
    except FileNotFoundError:
        hide_fd = None
    return job, calls_fd, inputs, hide_fd


def _check_student_limits(first: bytes | None, job: dict, had: dict[str, str]) -> list[str]:
    """Record what the student process's first line says it set up; return its notes."""
    limits = protocol.decode(first) if first is not None else None
    if not isinstance(limits, protocol.Limits):
        return []
    if limits.address_space:
        had["memory_limit"] = f"{int(job['sandbox']['memory_bytes']) >> 20} MiB"
    stubs = limits.forbidden
    if stubs.get("unpatched") == []:
        had["forbidden_stubs"] = (
            f"{stubs.get('patched')} patched, {stubs.get('on_import')} on import"
        )
    else:
        had["forbidden_stubs_error"] = "not patched: " + str(stubs.get("unpatched"))[:150]
    if limits.keyrings_blocked:
        had["keyrings_blocked"] = "seccomp"
    return limits.notes[:10]


def _relay_cells(events: Events, replies: _Lines, pid: int) -> None:
    """Relay the cell events until the student process says the cells are done."""
    relayed = 0
    while True:
        line = replies.next()
        if line is None:
            _exit_like(pid)
        message = protocol.decode(line)
        if isinstance(message, protocol.CellsDone):
            events.send(message)
            return
        if isinstance(message, protocol.CellStarted):
            events.send(message)
        elif isinstance(message, protocol.CellError) and relayed < 50:
            relayed += 1
            events.send(message)


def _run_calls(
    events: Events, replies: _Lines, calls: dict, blobs: dict, pid: int, command, cap: int
) -> None:
    """Send each call with its inputs and a fresh nonce; report its end and answer digest.

    ``cap`` is the largest answer file read back (the worker's file-size limit). A call whose
    test bounds its processor time or memory (``measure`` in ``calls.json``, never sent on to
    the student process) is measured here, from outside the student process
    (:mod:`cnnlab.exercises.measure`): from just before its inputs are sent to its reply.
    """
    scratch_fd = os.open(".", os.O_DIRECTORY)
    for index, call in zip(calls["call_ids"], calls["calls"], strict=True):
        call = dict(call)
        wanted = call.pop("measure", None) or {}
        nonce = os.urandom(16).hex()
        names = sorted(
            {
                n
                for spec in [call["args"], *call["kwargs"].values()]
                for n in plaindata.array_refs(spec)
            }
        )
        header = dict(call, call=index, nonce=nonce, blobs=[[n, len(blobs[n])] for n in names])
        events.send(protocol.Begin(call=index))
        watch = measure.MemoryWatch(pid) if wanted.get("memory") else None
        cpu_before = measure.tree_cpu_seconds(pid) if wanted.get("cpu") else 0.0
        started = time.monotonic()
        sent = command((json.dumps(header) + "\n").encode() + b"".join(blobs[n] for n in names))
        reply = None
        while sent:
            line = replies.next(watch.sample if watch is not None else None)
            if line is None:
                break
            message = protocol.decode(line)
            if isinstance(message, protocol.Reply) and message.nonce == nonce:
                reply = message
                break
        if reply is None:
            _exit_like(pid)
        seconds = time.monotonic() - started
        used = {}
        if wanted.get("cpu"):
            cpu_after = measure.tree_cpu_seconds(pid)
            used["cpu_seconds"] = (
                cpu_after - cpu_before if min(cpu_before, cpu_after) >= 0 else measure.UNMEASURED
            )
        if watch is not None:
            used["memory_growth"] = watch.growth()
        status, detail = reply.status, reply.detail
        if status == "ok":
            try:
                digest = _read_answer_digest(scratch_fd, f"answer_{index}.npy", cap)
            except (OSError, ValueError) as error:
                status, detail = "bad_answer", f"the answer file could not be read: {error}"
        if status == "ok":
            events.send(
                protocol.End(call=index, status="ok", seconds=seconds, sha256=digest, **used)
            )
        elif status == reply.status == "error":
            error = {"error_type": reply.error_type, "error_message": reply.error_message}
            events.send(protocol.End(call=index, status=status, detail=detail, **error))
        else:
            events.send(protocol.End(call=index, status=status, detail=detail))


def supervise(jobdir: str, fd: int) -> None:
    """Isolate, start the student process, relay its cells, send and time its calls; exit."""
    from cnnlab.exercises import protections, rootfs, sandbox  # the student process needs none

    events = Events(fd)
    job, calls_fd, input_fds, hide_fd = _open_job(jobdir)
    child_env = {
        key: os.environ[key]
        for key in ("PYTHONPATH", "PYTHONHASHSEED", "PYTHONDONTWRITEBYTECODE", "MPLBACKEND")
        if key in os.environ
    }
    for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        child_env[key] = "1"
    config = dict(job["sandbox"], memory_bytes=None)  # RLIMIT_AS: set by the student process
    if hide_fd is not None:
        config["hide_fd"] = hide_fd  # read only by the fallback without a minimal root
    had = sandbox.enter(config)
    libc = ctypes.CDLL(None)
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    if libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0:
        had["supervisor_undumpable"] = ""
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    required = [str(name) for name in job.get("required", [])]
    if protections.missing([n for n in required if n not in protections.STUDENT_SIDE], had):
        _refuse(events, had, required)
    scratch = rootfs.SCRATCH if "minimal_root" in had else config["scratch"]
    os.chdir(scratch)
    os.umask(0o077)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    tmp = "/tmp" if "private_tmp" in had else scratch
    child_env.update({"HOME": scratch, "TMPDIR": tmp, "PATH": "/usr/bin:/bin"})
    child_env["LANG"] = "C.UTF-8"
    pid, cmd_w, reply_r = _start_student(scratch, child_env)

    def on_term(signum, frame):  # the grading process stops us: the student process goes too
        try:
            _kill_descendants(pid)
        finally:
            os._exit(128 + signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_term)
    # Only now, with the student process forked, are the calls and their inputs read.
    calls = json.loads(_read_fd(calls_fd))
    blobs = {name: _read_fd(input_fd) for name, input_fd in input_fds.items()}
    replies = _Lines(reply_r)

    def command(data: bytes) -> bool:
        try:
            while data:
                data = data[os.write(cmd_w, data) :]
            return True
        except OSError:
            return False

    setup = {
        key: job[key] for key in ("exercise", "preload", "forbidden", "forbidden_modules", "cells")
    }
    setup["run_cells"] = job["run_cells"]
    setup["memory_bytes"] = job["sandbox"]["memory_bytes"]
    # Where a call's memory is measured, large allocations get pages of their own (see
    # student._fresh_pages); which calls are measured stays here.
    setup["fresh_pages"] = any((c.get("measure") or {}).get("memory") for c in calls["calls"])
    if not command((json.dumps(setup) + "\n").encode()):
        _exit_like(pid)
    # The first line comes before any student code runs: the limits the student process set
    # and the forbidden names it patched. Student code runs only once told to go.
    first = replies.next()
    if first is None:
        _exit_like(pid)
    notes = _check_student_limits(first, job, had)
    if protections.missing(required, had):
        _kill_descendants(pid)
        _refuse(events, had, required)
    for note in notes:
        events.send(protocol.Note(text=note))
    events.send(protocol.Ready(isolation=had))
    if not command(b"go\n"):
        _exit_like(pid)
    # Cells: relayed until the student process says they are done; no test input exists yet.
    _relay_cells(events, replies, pid)
    _run_calls(events, replies, calls, blobs, pid, command, int(job["sandbox"]["fsize_bytes"]))
    _kill_descendants(pid)
    events.send(protocol.Done(keys_cleared=_clear_keys()))
    os._exit(0)


def main(argv: list[str] | None = None) -> None:
    """``python -c '...supervisor.main()' JOBDIR FD``: the supervisor as a fresh interpreter."""
    argv = sys.argv if argv is None else argv
    rlimits.set_parent_death_signal()  # dies with the grading process's thread that started it
    supervise(argv[1], int(argv[2]))


if __name__ == "__main__":  # pragma: no cover
    main()
