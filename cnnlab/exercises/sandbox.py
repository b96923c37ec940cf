"""Isolation of the grading worker, applied inside the worker before any student code runs.

Each step is tried and recorded; a step the operating system refuses is skipped and named in the
returned list, so the grader can say which protections a run had:

- ``no_new_privs``: ``prctl(PR_SET_NO_NEW_PRIVS)``, so no setuid program regains privileges.
- ``user_namespace``: when not root, an unprivileged user namespace, so the steps below work.
- ``mount_namespace``: a private mount namespace in which the exercise folder (hidden tests,
  solution notebook), the submissions and the report folder are covered by empty read-only tmpfs.
- ``network_namespace``: a new network namespace with no interfaces up: no network.
- ``pid_namespace``: a new PID namespace; the student's code runs as its init, so when it ends
  (or is killed) every process it started dies with it, and ``/proc`` shows only those.
- ``rlimits``: RLIMIT_AS (memory, counted above what the worker already mapped), RLIMIT_NPROC
  (processes), RLIMIT_FSIZE (file size), RLIMIT_CORE = 0, RLIMIT_NOFILE.
- ``uid``: when root, a dedicated unprivileged uid per worker slot (RLIMIT_NPROC is not enforced
  for root, and root could read everything), which also drops every capability.
- ``capabilities_dropped``: in a user namespace, the namespace's capabilities are dropped.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
PR_SET_NO_NEW_PRIVS = 38
PR_SET_PDEATHSIG = 1

_libc = ctypes.CDLL(None, use_errno=True)


def _call(name: str, *args: object) -> bool:
    try:
        return getattr(_libc, name)(*args) == 0
    except (AttributeError, OSError):  # pragma: no cover
        return False


def _write(path: str, text: str) -> bool:
    try:
        with open(path, "w") as handle:
            handle.write(text)
        return True
    except OSError:
        return False


def _enter_user_namespace() -> bool:
    uid, gid = os.getuid(), os.getgid()
    if not _call("unshare", CLONE_NEWUSER):
        return False
    _write("/proc/self/setgroups", "deny")
    return _write("/proc/self/uid_map", f"{uid} {uid} 1\n") and _write(
        "/proc/self/gid_map", f"{gid} {gid} 1\n"
    )


def _hide(paths: list[str], keep: list[str]) -> list[str]:
    """Cover each directory in ``paths`` with an empty read-only tmpfs (files: /dev/null)."""
    hidden = []
    keep_real = [os.path.realpath(k) for k in keep]
    for path in paths:
        real = os.path.realpath(path)
        if not os.path.exists(real):
            continue
        if any(k == real or k.startswith(real.rstrip("/") + "/") for k in keep_real):
            continue  # would hide what the worker needs; the caller hides the files instead
        flags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
        if os.path.isdir(real):
            ok = _call("mount", b"tmpfs", real.encode(), b"tmpfs", flags, b"size=4k,mode=0555")
        else:
            ok = _call("mount", b"/dev/null", real.encode(), None, MS_BIND, None)
        if ok:
            hidden.append(real)
    return hidden


def _closed_ancestor(path: str) -> str | None:
    """The highest ancestor of ``path`` that others may not enter (mode without o+x), if any."""
    parts = os.path.realpath(path).split("/")[1:]
    current = ""
    for part in parts:
        current += "/" + part
        try:
            if not os.stat(current).st_mode & 0o001:
                return current
        except OSError:
            return None
    return None


def _expose(paths: list[str], staging: str) -> list[str]:
    """Make ``paths`` reachable by an unprivileged uid when an ancestor is closed (0700).

    Python installed under ``/root`` (pyenv) is the usual case. In the private mount namespace
    the closed ancestor is replaced by an empty tmpfs (its other contents disappear) and each
    needed path is bind-mounted back at its own place.
    """
    groups: dict[str, list[str]] = {}
    for path in paths:
        real = os.path.realpath(path)
        closed = _closed_ancestor(real) if os.path.exists(real) else None
        if closed is not None and closed != real:
            groups.setdefault(closed, []).append(real)
    exposed = []
    for closed, inside in groups.items():
        inside = sorted(set(inside))
        inside = [p for p in inside if not any(p.startswith(q + "/") for q in inside if q != p)]
        stage = []
        for number, real in enumerate(inside):
            target = os.path.join(staging, f"expose{len(exposed)}_{number}")
            os.makedirs(target, exist_ok=True)
            if not _call("mount", real.encode(), target.encode(), None, MS_BIND | MS_REC, None):
                break
            stage.append((real, target))
        else:
            if not _call(
                "mount",
                b"tmpfs",
                closed.encode(),
                b"tmpfs",
                MS_NOSUID | MS_NODEV,
                b"size=64k,mode=0755",
            ):
                continue
            for real, target in stage:
                os.makedirs(real, mode=0o755, exist_ok=True)
                _call("mount", target.encode(), real.encode(), None, MS_BIND | MS_REC, None)
            _call(
                "mount",
                b"none",
                closed.encode(),
                None,
                MS_RDONLY | MS_NOSUID | MS_NODEV | 32 | MS_BIND,
                None,
            )  # 32: MS_REMOUNT
            exposed.append(closed)
    return exposed


def _drop_capabilities() -> bool:
    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [
            ("effective", ctypes.c_uint32),
            ("permitted", ctypes.c_uint32),
            ("inheritable", ctypes.c_uint32),
        ]

    header = Header(0x20080522, 0)
    data = (Data * 2)()
    return _call("capset", ctypes.byref(header), ctypes.byref(data))


def _address_space() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _set_limit(which: int, value: int) -> bool:
    try:
        resource.setrlimit(which, (value, value))
        return True
    except (ValueError, OSError):
        return False


def set_parent_death_signal() -> bool:
    """Ask for SIGKILL when the parent dies (``PR_SET_PDEATHSIG``); die now if it already has."""
    parent = os.getppid()
    ok = _call("prctl", PR_SET_PDEATHSIG, 9, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request took hold
        os._exit(137)
    return ok


def limit_address_space(memory_bytes: int) -> bool:
    """Set RLIMIT_AS to what this process has mapped now plus ``memory_bytes``."""
    return _set_limit(resource.RLIMIT_AS, _address_space() + int(memory_bytes))


def enter(config: dict, keep: list[str]) -> list[str]:
    """Isolate this process as ``config`` asks; return the protections in force.

    May fork (for the PID namespace): the original process then waits for the child, exits with
    its status and never returns; the child returns and goes on as the worker.

    Parameters
    ----------
    config : dict
        ``uid`` (run as this uid when root), ``hide`` (paths to cover), ``memory_bytes``,
        ``nproc``, ``fsize_bytes``, ``nofile``, ``network`` (allow network when true).
    keep : list of str
        Paths the worker still needs (its scratch directory, Python, the cnnlab package).
    """
    applied: list[str] = []
    if _call("prctl", PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0):
        applied.append("no_new_privs")
    is_root = os.geteuid() == 0
    in_userns = False
    if not is_root and _enter_user_namespace():
        in_userns = True
        applied.append("user_namespace")
    if _call("unshare", CLONE_NEWNS) and _call(
        "mount", b"none", b"/", None, MS_REC | MS_PRIVATE, None
    ):
        applied.append("mount_namespace")
        hidden = _hide(list(config.get("hide", [])), keep)
        applied.append(f"hidden:{len(hidden)}")
        if is_root and config.get("uid") is not None and config.get("staging"):
            needed = [p for p in sys.path if p] + [sys.prefix, sys.base_prefix, *keep]
            for closed in _expose(needed, config["staging"]):
                applied.append(f"exposed_python_under:{closed}")
    if not config.get("network", False) and _call("unshare", CLONE_NEWNET):
        applied.append("network_namespace")
    if _call("unshare", CLONE_NEWPID):
        child = os.fork()
        if child:
            # The middle process: wait for the namespace's init, exit as it did. SIGTERM from
            # the grading process kills the init, and with it the whole namespace (a process
            # that left the process group with setsid() included).
            os.closerange(3, 1 << 16)

            def on_term(signum, frame, child=child):
                try:
                    os.kill(child, 9)
                except ProcessLookupError:
                    pass

            signal.signal(signal.SIGTERM, on_term)
            while True:
                try:
                    _, status = os.waitpid(child, 0)
                    break
                except ChildProcessError:  # pragma: no cover
                    os._exit(70)
                except InterruptedError:  # pragma: no cover
                    continue
            if os.WIFSIGNALED(status):
                os._exit(128 + os.WTERMSIG(status))
            os._exit(os.WEXITSTATUS(status))
        set_parent_death_signal()  # the middle process killed (SIGKILL): the namespace goes
        applied.append("pid_namespace")
        if "mount_namespace" in applied:
            _call("mount", b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    limits = [
        ("core", resource.RLIMIT_CORE, 0),
        ("fsize", resource.RLIMIT_FSIZE, int(config["fsize_bytes"])),
        ("nofile", resource.RLIMIT_NOFILE, int(config.get("nofile", 256))),
        ("nproc", resource.RLIMIT_NPROC, int(config["nproc"])),
    ]
    set_ok = [name for name, which, value in limits if _set_limit(which, value)]
    if config.get("memory_bytes") is not None and limit_address_space(config["memory_bytes"]):
        set_ok.append("as")
    applied.append("rlimits:" + ",".join(set_ok))
    uid = config.get("uid")
    if (
        is_root
        and uid is not None
        and "mount_namespace" not in applied
        and _closed_ancestor(sys.base_prefix) is not None
    ):
        # Python lives under a folder the uid cannot enter, and no mount namespace can expose
        # it: dropping to the uid would break every later import. Stay root (weaker: see README).
        applied.append(f"uid_skipped:python_under_{_closed_ancestor(sys.base_prefix)}")
        uid = None
    if is_root and uid is not None:
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            applied.append(f"uid:{uid}")
        except OSError as error:  # pragma: no cover
            applied.append(f"uid_failed:{error}")
    elif in_userns and _drop_capabilities():
        applied.append("capabilities_dropped")
    return applied


if __name__ == "__main__":  # pragma: no cover
    print(enter({"fsize_bytes": 1 << 20, "nproc": 16, "memory_bytes": 1 << 30}, [sys.prefix]))
