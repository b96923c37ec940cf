"""The grading worker: a trusted supervisor and, under it, the process that runs student code.

Started by the grading process as ``python -P -s -c '...worker.main()' JOBDIR FD``. The
*supervisor* (:func:`main`) reads ``JOBDIR/job.json`` and the input files into memory (raw
``.npy`` bytes, never decoded here), isolates itself (:mod:`cnnlab.exercises.sandbox`) and
forks the *student process*, which closes every descriptor but two private pipes and ``exec``s
a fresh interpreter (:func:`student_main`): so it never holds the event pipe ``FD`` to the
grading process, nor the inputs in its memory. Student code runs only there.

Before any student code runs, the supervisor checks that the worker has every protection the
job requires (:mod:`cnnlab.exercises.protections`): those of its own isolation, then those the
student process reports in its first line (its memory limit, the forbidden stubs, the seccomp
filter that :mod:`cnnlab.exercises.seccomp` installs between ``fork`` and ``exec``). Where one
is missing it sends ``refused`` and exits; otherwise it tells the student process to ``go``.

The supervisor owns the event pipe and writes every event itself: ``ready``, the notebook's cell
errors (relayed only while the cells run, before any test input exists in the student process),
and for each call ``begin``, then the inputs sent to the student process with a fresh random
nonce, then ``end`` once a reply carrying that nonce arrives. The answer file is hashed at that
moment and the digest sent with ``end``; the grading process refuses a file changed later. So
student code can neither forge events, nor answer before it was asked, nor finish a slow
answer after its call ended. The supervisor is not dumpable (``PR_SET_DUMPABLE`` 0), so the
student process, though it has the same uid, cannot ptrace it or open its descriptors.
"""

from __future__ import annotations

import builtins
import ctypes
import hashlib
import importlib.abc
import importlib.util
import json
import os
import signal
import stat
import sys
import time
import traceback
import types

from cnnlab.exercises import plaindata, rlimits, seccomp

STATUSES = ("ok", "missing", "not_implemented", "memory", "error", "bad_answer")
MAX_LINE = 1 << 20
CMD_FD, REPLY_FD = 3, 4
PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4


class Events:
    """JSON lines written to the pipe back to the grading process (supervisor only)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, **event: object) -> None:
        event["t"] = time.monotonic()
        data = (json.dumps(event, default=str) + "\n").encode()
        try:
            while data:
                data = data[os.write(self.fd, data) :]
        except (OSError, ValueError, TypeError):
            pass


class _Lines:
    """Read newline-terminated lines from a pipe, dropping overlong ones."""

    def __init__(self, fd: int) -> None:
        self.fd, self.buffer = fd, b""

    def next(self) -> bytes | None:
        while b"\n" not in self.buffer:
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


def _parse(line: bytes) -> dict:
    try:
        event = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return {}
    return event if isinstance(event, dict) else {}


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


def _start_student(scratch: str, env: dict) -> tuple[int, int, int]:
    """Fork and exec the student process; return (pid, command write fd, reply read fd)."""
    cmd_r, cmd_w = os.pipe()
    reply_r, reply_w = os.pipe()
    out = os.open(os.path.join(scratch, "output.txt"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    pid = os.fork()
    if pid == 0:
        try:
            rlimits.set_parent_death_signal()
            try:
                seccomp.block_keyrings()  # checked by the student process before its code
            except Exception:  # noqa: BLE001 (then reported missing: the worker refuses)
                pass
            high_cmd, high_reply = os.dup(cmd_r), os.dup(reply_w)
            os.dup2(null, 0)
            os.dup2(out, 1)
            os.dup2(out, 2)
            os.dup2(high_cmd, CMD_FD)
            os.dup2(high_reply, REPLY_FD)
            os.closerange(REPLY_FD + 1, 1 << 16)  # the event pipe included
            os.execve(
                sys.executable,
                [
                    sys.executable,
                    "-P",
                    "-s",
                    "-c",
                    "from cnnlab.exercises.worker import student_main; student_main()",
                ],
                env,
            )
        finally:
            os._exit(127)
    for fd in (cmd_r, reply_w, out, null):
        os.close(fd)
    return pid, cmd_w, reply_r


PR_SET_CHILD_SUBREAPER = 36


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

    events.send(e="refused", isolation=had, missing=protections.missing(required, had))
    os._exit(0)


def main(argv: list[str] | None = None) -> None:
    """The supervisor: isolate, start the student process, relay and time its calls."""
    from cnnlab.exercises import protections, rootfs, sandbox  # the student process needs none

    argv = sys.argv if argv is None else argv
    jobdir, fd = argv[1], int(argv[2])
    events = Events(fd)
    with open(os.path.join(jobdir, "job.json")) as handle:
        job = json.load(handle)
    blobs: dict[str, bytes] = {}
    for call in job["calls"]:
        for spec in [call["args"], *call["kwargs"].values()]:
            for name in plaindata.array_refs(spec):
                with open(os.path.join(jobdir, os.path.basename(name)), "rb") as handle:
                    blobs[name] = handle.read()
    for name in os.listdir(jobdir):  # the student process must not find the inputs on disk
        if name.endswith(".npy"):
            try:
                os.unlink(os.path.join(jobdir, name))
            except OSError:
                pass
    child_env = {
        key: os.environ[key]
        for key in ("PYTHONPATH", "PYTHONHASHSEED", "PYTHONDONTWRITEBYTECODE", "MPLBACKEND")
        if key in os.environ
    }
    for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        child_env[key] = "1"
    config = dict(job["sandbox"], memory_bytes=None)  # RLIMIT_AS: set by the student process
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
    scratch_fd = os.open(scratch, os.O_DIRECTORY)
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
    if not command((json.dumps(setup) + "\n").encode()):
        _exit_like(pid)
    # The first line comes before any student code runs: the limits the student process set
    # and the forbidden names it patched. Student code runs only once told to go.
    first = replies.next()
    if first is None:
        _exit_like(pid)
    limits = _parse(first)
    if limits.get("e") == "limits" and limits.get("as"):
        had["memory_limit"] = f"{int(job['sandbox']['memory_bytes']) >> 20} MiB"
    stubs = limits.get("forbidden") if limits.get("e") == "limits" else None
    if isinstance(stubs, dict) and stubs.get("unpatched") == []:
        had["forbidden_stubs"] = (
            f"{stubs.get('patched')} patched, {stubs.get('on_import')} on import"
        )
    elif isinstance(stubs, dict):
        had["forbidden_stubs_error"] = "not patched: " + str(stubs.get("unpatched"))[:150]
    if limits.get("e") == "limits" and limits.get("keyrings_blocked") is True:
        had["keyrings_blocked"] = "seccomp"
    if protections.missing(required, had):
        _kill_descendants(pid)
        _refuse(events, had, required)
    for note in limits.get("notes", [])[:10]:
        events.send(e="note", text=str(note)[:500])
    events.send(e="ready", isolation=had)
    if not command(b"go\n"):
        _exit_like(pid)
    # Cells: relayed until the student process says they are done; no test input exists yet.
    relayed = 0
    while True:
        line = replies.next()
        if line is None:
            _exit_like(pid)
        event = _parse(line)
        if event.get("e") == "cells_done":
            seconds = event.get("seconds")
            events.send(
                e="cells_done", seconds=float(seconds) if isinstance(seconds, (int, float)) else 0.0
            )
            break
        if event.get("e") == "cell" and relayed < 50:
            relayed += 1
            events.send(
                e="cell",
                cell=str(event.get("cell"))[:20],
                error=str(event.get("error"))[-1500:],
                memory=event.get("memory") is True,
            )
    cap = int(job["sandbox"]["fsize_bytes"])
    for index, call in zip(job["call_ids"], job["calls"], strict=True):
        nonce = os.urandom(16).hex()
        names = sorted(
            {
                n
                for spec in [call["args"], *call["kwargs"].values()]
                for n in plaindata.array_refs(spec)
            }
        )
        header = dict(call, call=index, nonce=nonce, blobs=[[n, len(blobs[n])] for n in names])
        events.send(e="begin", call=index)
        started = time.monotonic()
        sent = command((json.dumps(header) + "\n").encode() + b"".join(blobs[n] for n in names))
        reply = None
        while sent:
            line = replies.next()
            if line is None:
                break
            event = _parse(line)
            if event.get("nonce") == nonce and event.get("status") in STATUSES:
                reply = event
                break
        if reply is None:
            _exit_like(pid)
        seconds = time.monotonic() - started
        status = reply["status"]
        detail = str(reply.get("detail", ""))[:1500]
        if status == "ok":
            try:
                digest = _read_answer_digest(scratch_fd, f"answer_{index}.npy", cap)
            except (OSError, ValueError) as error:
                status, detail = "bad_answer", f"the answer file could not be read: {error}"
        if status == "ok":
            events.send(e="end", call=index, status="ok", seconds=seconds, sha256=digest)
        else:
            events.send(e="end", call=index, status=status, detail=detail)
    _kill_descendants(pid)
    events.send(e="done", keys_cleared=_clear_keys())
    os._exit(0)


# --- The student process: everything below runs beside student code. ---------------------------


def _short_error(error: BaseException, limit: int = 1500) -> str:
    lines = traceback.format_exception(type(error), error, error.__traceback__)
    # Drop the worker's own frames: keep from the first frame in student code.
    kept = [line for line in lines if "cnnlab/exercises/worker.py" not in line]
    text = "".join(kept).strip()
    return text if len(text) <= limit else "...\n" + text[-limit:]


def _forbidden_stub(dotted: str, exercise: str):
    def forbidden(*args, **kwargs):
        raise RuntimeError(
            f"{dotted} is forbidden in exercise {exercise}: write the computation yourself"
        )

    forbidden.__name__ = dotted.rpartition(".")[2]
    forbidden._cnnlab_forbidden = True  # type: ignore[attr-defined]
    return forbidden


class _StubLoader(importlib.abc.Loader):
    """A forbidden module imports as a stub: every name in it is a function that raises."""

    def __init__(self, exercise: str) -> None:
        self.exercise = exercise

    def create_module(self, spec):
        return None

    def exec_module(self, module) -> None:
        name, exercise = module.__name__, self.exercise

        def __getattr__(attribute: str):
            if attribute.startswith("__"):
                raise AttributeError(attribute)
            return _forbidden_stub(f"{name}.{attribute}", exercise)

        module.__getattr__ = __getattr__
        module.__path__ = []  # a package, so that its submodules import (as stubs too)


class _ForbiddenHook(importlib.abc.MetaPathFinder):
    """Patch forbidden attributes of modules as they are imported; refuse forbidden modules."""

    def __init__(self, targets: dict[str, list[str]], patch, modules, exercise) -> None:
        self.targets = targets
        self.patch = patch
        self.modules = tuple(modules)
        self.exercise = exercise

    def find_spec(self, fullname, path, target=None):
        if any(fullname == m or fullname.startswith(m + ".") for m in self.modules):
            return importlib.util.spec_from_loader(fullname, _StubLoader(self.exercise))
        if fullname not in self.targets:
            return None
        for finder in sys.meta_path:
            if finder is self:
                continue
            spec = (
                finder.find_spec(fullname, path, target) if hasattr(finder, "find_spec") else None
            )
            if spec is not None and spec.loader is not None:
                loader = spec.loader
                original = loader.exec_module
                patch = self.patch

                def exec_module(module, _original=original, _name=fullname, patch=patch):
                    _original(module)
                    patch(_name)

                loader.exec_module = exec_module
                return spec
        return None


class _Shadow:
    """Stands in for an object whose attributes cannot be set (an instance of a C type, such
    as ``torch._C._VariableFunctions``): the forbidden names are stubs, the rest its own."""

    def __init__(self, target: object) -> None:
        self._cnnlab_target = target

    def __getattr__(self, name: str) -> object:
        return getattr(self._cnnlab_target, name)

    def __dir__(self) -> list[str]:
        return dir(self._cnnlab_target)


def _set_stub(holder: object, owner_name: str, owner: object, name: str, stub) -> None:
    """``owner.name = stub``; where ``owner`` refuses, put a shadow of it on ``holder``."""
    try:
        setattr(owner, name, stub)
        return
    except (AttributeError, TypeError):
        if holder is None:
            raise
    shadow = _Shadow(owner)
    setattr(shadow, name, stub)
    setattr(holder, owner_name, shadow)


def install_forbidden(names: list[str], exercise: str, modules: list[str] = ()) -> None:
    """Replace each dotted name ``pkg.module.function`` by a stub that raises; replace each
    module in ``modules`` (and its submodules) by a stub module whose every name raises, also
    where already imported."""
    targets: dict[str, list[str]] = {}
    for dotted in names:
        module, _, attribute = dotted.rpartition(".")
        targets.setdefault(module, []).append(attribute)

    def make_stub(dotted: str):
        return _forbidden_stub(dotted, exercise)

    busy = []

    def patch_objects() -> None:
        # Names inside objects that are not modules (``torch.ops.aten.conv2d``): walk the
        # attributes from the longest loaded module prefix.
        if busy:
            return
        busy.append(True)
        try:
            for dotted in names:
                parts = dotted.split(".")
                for cut in range(len(parts) - 1, 0, -1):
                    if ".".join(parts[:cut]) in sys.modules:
                        break
                else:
                    continue
                if cut == len(parts) - 1:
                    continue  # a module attribute: patched when the module loads
                try:
                    holder, owner = None, sys.modules[".".join(parts[:cut])]
                    for part in parts[cut:-1]:
                        holder, owner = owner, getattr(owner, part)
                    if hasattr(owner, parts[-1]):
                        _set_stub(holder, parts[-2], owner, parts[-1], make_stub(dotted))
                except Exception:  # noqa: BLE001 (absent here, or not patchable)
                    pass
        finally:
            busy.clear()

    def patch(module_name: str) -> None:
        module = sys.modules.get(module_name)
        if module is None:
            return
        for attribute in targets.get(module_name, []):
            try:
                setattr(module, attribute, make_stub(f"{module_name}.{attribute}"))
            except (AttributeError, TypeError):
                pass
        patch_objects()

    for module_name in targets:
        patch(module_name)
    for loaded in list(sys.modules):
        if any(loaded == m or loaded.startswith(m + ".") for m in modules):
            del sys.modules[loaded]
            parent, _, child = loaded.rpartition(".")
            if parent in sys.modules:
                try:
                    delattr(sys.modules[parent], child)
                except AttributeError:
                    pass
    sys.meta_path.insert(0, _ForbiddenHook(targets, patch, modules, exercise))
    # ``from package import name`` bindings made before the patch (package __init__ re-exports).
    for module_name, attributes in targets.items():
        parent = module_name.rpartition(".")[0]
        while parent:
            module = sys.modules.get(parent)
            for attribute in attributes:
                if module is not None and hasattr(module, attribute):
                    if isinstance(getattr(module, attribute), types.ModuleType):
                        continue  # a submodule of that name (cnnlab.receptive_field), not a re-export
                    try:
                        setattr(module, attribute, make_stub(f"{module_name}.{attribute}"))
                    except (AttributeError, TypeError):
                        pass
            parent = parent.rpartition(".")[0]


def verify_forbidden(names: list[str], modules: list[str]) -> dict:
    """Check that every forbidden name already importable here is a stub now.

    A name whose top-level package is loaded must resolve to a stub; the others are patched
    when their module is imported (the import hook must be first on ``sys.meta_path``).

    Returns
    -------
    dict
        ``patched`` (names checked and stubbed), ``on_import`` (names left to the hook) and
        ``unpatched`` (names that resolve to the real thing: the protection is missing).
    """
    patched, on_import, unpatched = 0, 0, []
    hooked = bool(sys.meta_path) and isinstance(sys.meta_path[0], _ForbiddenHook)
    for dotted in names:
        parts = dotted.split(".")
        if parts[0] not in sys.modules:
            on_import += 1
            if not hooked:
                unpatched.append(dotted)
            continue
        owner: object = sys.modules[parts[0]]
        try:
            for index, part in enumerate(parts[1:], start=1):
                if not hasattr(owner, part) and ".".join(parts[: index + 1]) not in sys.modules:
                    raise AttributeError(part)
                owner = getattr(owner, part, None) or sys.modules[".".join(parts[: index + 1])]
        except Exception:  # noqa: BLE001 (not imported yet, or lazy): the hook patches it
            on_import += 1
            if not hooked:
                unpatched.append(dotted)
            continue
        if getattr(owner, "_cnnlab_forbidden", False):
            patched += 1
        else:
            unpatched.append(dotted)
    if modules and not hooked:
        unpatched += list(modules)
    return {"patched": patched, "on_import": on_import, "unpatched": unpatched}


def _disable_self_check() -> None:
    def check(*args, **kwargs):
        print("(self-check skipped: this notebook is being graded)")

    try:
        import cnnlab.exercises.selfcheck as selfcheck

        selfcheck.check = check
        sys.modules["cnnlab.exercises"].check = check  # type: ignore[attr-defined]
    except Exception:  # pragma: no cover
        pass


def student_main() -> None:
    """Run the notebook's cells, then each call the supervisor sends; reply with its nonce."""
    import io

    import numpy as np

    commands = os.fdopen(CMD_FD, "rb")
    write = os.write

    def reply(**message: object) -> None:
        data = (json.dumps(message, default=str) + "\n").encode()
        try:
            while data:
                data = data[write(REPLY_FD, data) :]
        except OSError:
            pass

    setup = json.loads(commands.readline())
    notes = []
    for module in setup["preload"]:
        try:
            __import__(module)
        except Exception as error:  # noqa: BLE001
            notes.append(f"could not preload {module}: {error}")
    _disable_self_check()
    install_forbidden(setup["forbidden"], setup["exercise"], setup.get("forbidden_modules", []))
    memory = setup.get("memory_bytes")
    limited = memory is not None and rlimits.limit_address_space(int(memory))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    for key in ("PYTHONPATH", "PYTHONHASHSEED", "PYTHONDONTWRITEBYTECODE"):
        os.environ.pop(key, None)
    stubs = verify_forbidden(setup["forbidden"], setup.get("forbidden_modules", []))
    reply(
        e="limits",
        notes=notes,
        forbidden=stubs,
        keyrings_blocked=seccomp.keyrings_blocked(),
        **{"as": limited},
    )
    if commands.readline().strip() != b"go":  # the supervisor refused: no student code runs
        os._exit(0)

    load, save, asarray, ndarray = np.load, np.save, np.asarray, np.ndarray
    monotonic, bytes_io, read_fd = time.monotonic, io.BytesIO, os.O_NOFOLLOW
    scratch_fd = os.open(".", os.O_DIRECTORY)
    # What the student's code may patch and the worker relies on is put back before each call.
    saved = [(module.__dict__, dict(module.__dict__)) for module in (builtins, np)]

    def restore() -> None:
        for namespace_dict, original in saved:
            for key in [k for k in namespace_dict if k not in original]:
                del namespace_dict[key]
            namespace_dict.update(original)

    namespace: dict = {"__name__": "__main__", "__builtins__": builtins}
    started = monotonic()
    if setup["run_cells"]:
        for index, source in setup["cells"]:
            try:
                exec(compile(source, f"<cell {index}>", "exec"), namespace)
            except BaseException as error:  # noqa: BLE001 (SystemExit and KeyboardInterrupt too)
                reply(
                    e="cell",
                    cell=index,
                    error=_short_error(error),
                    memory=isinstance(error, MemoryError),
                )
    reply(e="cells_done", seconds=monotonic() - started)
    while True:
        restore()
        line = commands.readline()
        if not line:
            break
        header = json.loads(line)
        nonce, index, name = header["nonce"], header["call"], header["function"]
        arrays = {}
        for file_name, size in header["blobs"]:
            arrays[file_name] = load(bytes_io(commands.read(size)), allow_pickle=False)
        args = plaindata.decode(header["args"], arrays)
        kwargs = {k: plaindata.decode(v, arrays) for k, v in header["kwargs"].items()}
        function = namespace.get(name)
        if function is None:
            reply(nonce=nonce, status="missing", detail=f"`{name}` is not defined")
            continue
        try:
            result = function(*args, **kwargs)
        except NotImplementedError:
            reply(nonce=nonce, status="not_implemented", detail="NotImplementedError")
            continue
        except MemoryError as error:
            reply(nonce=nonce, status="memory", detail=_short_error(error))
            continue
        except BaseException as error:  # noqa: BLE001
            reply(nonce=nonce, status="error", detail=_short_error(error))
            continue
        restore()
        try:
            answer = asarray(result)
            if not isinstance(answer, ndarray) or answer.dtype.kind not in "biuf":
                raise TypeError(f"returned {type(result).__name__} with dtype {answer.dtype}")
            with open(
                f"answer_{index}.npy",
                "wb",
                opener=lambda p, f: os.open(p, f | read_fd, 0o600, dir_fd=scratch_fd),
            ) as handle:
                save(handle, answer.view(ndarray), allow_pickle=False)
                handle.flush()
                if os.fstat(handle.fileno()).st_size < max(handle.tell(), answer.nbytes):
                    raise OSError("the answer is larger than the worker's file-size limit")
        except BaseException as error:  # noqa: BLE001
            reply(nonce=nonce, status="bad_answer", detail=str(error)[:500])
            continue
        reply(nonce=nonce, status="ok")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":  # pragma: no cover
    main()
