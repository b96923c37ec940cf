"""A preloaded zygote: one trusted process per grading run that forks every worker's supervisor.

Starting a worker as a fresh interpreter costs the interpreter's start and the libraries'
imports (NumPy, and PyTorch where the exercise uses it) for every submission. The zygote pays
them once: the grading process starts it (:class:`Zygote`) with the exercise's preload list,
and it imports those libraries and the worker's own modules, then waits. For each worker run
the grading process sends it a request (the job folder, the working folder) with two
descriptors (the event pipe's write end and the worker's stderr file) over a Unix socket; the
zygote forks, and the child becomes that run's supervisor (:func:`cnnlab.exercises.supervisor.supervise`)
in a session of its own, with the descriptors it was given and nothing else of the zygote's.
The zygote reports the child's pid, and later its exit status, which the grading process reads
as it would a :class:`subprocess.Popen`'s (:class:`ZygoteWorker`).

What the zygote may hold is what every student process may see, since each is forked from it:
it never reads a job, a test, an expected answer or a submission, and it imports no module an
exercise forbids (it checks, and reports itself *tainted* if a library pulled one in; the
grading process then starts workers as fresh interpreters instead). It is single-threaded
(forking a threaded process is unsafe), and it exits when the grading process closes the socket.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence

from cnnlab.exercises import rlimits
from cnnlab.exercises.student import within

__all__ = ["Zygote", "ZygoteWorker", "ZygoteError", "main"]

PACKET = 1 << 16
START_TIMEOUT = 120.0


class ZygoteError(RuntimeError):
    """The zygote could not start, or stopped answering."""


def _send(sock: socket.socket, message: dict, fds: Sequence[int] = ()) -> None:
    data = json.dumps(message).encode()
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.send(data)


def _loaded(prefixes: Sequence[str]) -> list[str]:
    """The modules in ``sys.modules`` that are, or are under, one of ``prefixes``."""
    return sorted(name for name in list(sys.modules) if within(name, prefixes))


def _child(sock: socket.socket, request: dict, event_fd: int, stderr_fd: int, zygote: int) -> None:
    """In the forked child: become the supervisor of one worker run; never returns.

    It dies with the zygote (``PR_SET_PDEATHSIG``), which exits when the grading process is
    gone: a grading process killed outright takes its workers, and their students' code, along.
    """
    try:
        rlimits.set_parent_death_signal()
        if os.getppid() != zygote:  # the zygote died before the line above
            os._exit(70)
        sock.close()
        os.setsid()
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.dup2(stderr_fd, 2)
        high_event = os.dup(event_fd)
        os.closerange(3, high_event)
        os.closerange(high_event + 1, 1 << 16)
        os.chdir(request["cwd"])
        from cnnlab.exercises.supervisor import supervise

        supervise(request["job"], high_event)
    except BaseException:  # noqa: BLE001 (the supervisor's failure is its exit status)
        import traceback

        traceback.print_exc()
    finally:
        os._exit(70)


def _exit_code(status: int) -> int:
    """A wait status as :class:`subprocess.Popen` reports it (a signal as its negative)."""
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 70


def main(argv: list[str] | None = None) -> None:
    """``python -c '...zygote.main()' FD SETUP_JSON``: preload, then fork on request."""
    argv = sys.argv if argv is None else argv
    sock = socket.socket(fileno=int(argv[1]))
    setup = json.loads(argv[2])
    failed = {}
    for module in setup["preload"]:
        try:
            importlib.import_module(module)
        except Exception as error:  # noqa: BLE001 (the student process retries and reports)
            failed[module] = f"{type(error).__name__}: {error}"[:200]
    for module in ("supervisor", "student", "sandbox", "rootfs", "protections", "keyrings"):
        importlib.import_module(f"cnnlab.exercises.{module}")

    tainted = _loaded(setup.get("forbidden_modules", []))
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    threads = len(os.listdir("/proc/self/task"))
    _send(sock, {"ready": True, "tainted": tainted, "failed": failed, "threads": threads})
    children: dict[int, int] = {}  # pid -> request id
    zygote_pid = os.getpid()
    while True:
        ready, _, _ = select.select([sock, wake_r], [], [])
        if wake_r in ready:
            os.read(wake_r, 4096)
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            ident = children.pop(pid, None)
            if ident is not None:
                _send(sock, {"exited": ident, "returncode": _exit_code(status)})
        if sock not in ready:
            continue
        try:
            data, fds, _, _ = socket.recv_fds(sock, PACKET, 2)
        except OSError:
            data, fds = b"", []
        if not data:
            break  # the grading process is gone
        request = json.loads(data)
        if len(fds) != 2:
            for fd in fds:
                os.close(fd)
            _send(sock, {"failed": request.get("id"), "error": "expected two descriptors"})
            continue
        pid = os.fork()
        if pid == 0:
            _child(sock, request, fds[0], fds[1], zygote_pid)
        for fd in fds:
            os.close(fd)
        children[pid] = request["id"]
        _send(sock, {"started": request["id"], "pid": pid})
    os._exit(0)


class ZygoteWorker:
    """A worker forked by the zygote, read like a :class:`subprocess.Popen`."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._exited = threading.Event()

    def _set_exit(self, returncode: int) -> None:
        self.returncode = returncode
        self._exited.set()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._exited.wait(timeout):
            raise subprocess.TimeoutExpired("zygote worker", timeout)
        return self.returncode  # type: ignore[return-value]


class Zygote:
    """The grading process's end: start the zygote, ask it for workers, stop it.

    Parameters
    ----------
    preload : sequence of str
        Modules to import once (a failure is left to the student process to report).
    forbidden_modules : sequence of str
        Modules that must not be loaded in the zygote (see the module docstring).
    env : dict
        The environment of the zygote, and so of every worker.
    """

    def __init__(
        self, preload: Sequence[str], forbidden_modules: Sequence[str], env: dict[str, str]
    ) -> None:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        setup = json.dumps({"preload": list(preload), "forbidden_modules": list(forbidden_modules)})
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-P",
                "-s",
                "-c",
                "from cnnlab.exercises.zygote import main; main()",
                str(theirs.fileno()),
                setup,
            ],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        theirs.close()
        self.sock = mine
        self._lock = threading.Lock()
        self._next = 0
        self._started: dict[int, tuple[threading.Event, list]] = {}
        self._workers: dict[int, ZygoteWorker] = {}
        self.sock.settimeout(START_TIMEOUT)
        try:
            hello = json.loads(self.sock.recv(PACKET) or b"{}")
        except (OSError, ValueError) as error:
            self.close()
            raise ZygoteError(f"the zygote did not start: {error}") from error
        self.sock.settimeout(None)
        if not hello.get("ready"):
            self.close()
            raise ZygoteError("the zygote did not start")
        self.tainted: list[str] = list(hello.get("tainted", []))
        self.failed: dict[str, str] = dict(hello.get("failed", {}))
        self.threads = int(hello.get("threads", 0))
        self._reader = threading.Thread(target=self._read, name="zygote-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(PACKET)
            except OSError:
                data = b""
            if not data:
                break
            message = json.loads(data)
            with self._lock:
                if "started" in message or "failed" in message:
                    ident = message.get("started", message.get("failed"))
                    event, box = self._started.pop(ident, (None, None))
                    if "started" in message:
                        # Registered here, before the zygote can report its exit.
                        worker = ZygoteWorker(int(message["pid"]))
                        self._workers[ident] = worker
                    else:
                        worker = str(message.get("error"))
                    if event is not None:
                        box.append(worker)
                        event.set()
                elif "exited" in message:
                    worker = self._workers.pop(message["exited"], None)
                    if worker is not None:
                        worker._set_exit(int(message["returncode"]))
        with self._lock:  # the zygote is gone: nothing more will start or be reported
            for event, _ in self._started.values():
                event.set()
            self._started.clear()
            for worker in self._workers.values():
                if worker.returncode is None:
                    worker._set_exit(70)
            self._workers.clear()

    def spawn(self, job_dir: str, cwd: str, event_fd: int, stderr_fd: int) -> ZygoteWorker:
        """Fork a worker whose supervisor runs the job in ``job_dir``; return it once started."""
        event, box = threading.Event(), []
        with self._lock:
            ident = self._next
            self._next += 1
            self._started[ident] = (event, box)
            try:
                _send(self.sock, {"id": ident, "job": job_dir, "cwd": cwd}, [event_fd, stderr_fd])
            except OSError as error:
                self._started.pop(ident, None)
                raise ZygoteError(f"the zygote is gone: {error}") from error
        if not event.wait(30.0) or not box or not isinstance(box[0], ZygoteWorker):
            raise ZygoteError(f"the zygote did not start a worker: {box[0] if box else 'no reply'}")
        return box[0]

    def close(self) -> None:
        """Stop the zygote (its workers must have been stopped already)."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
