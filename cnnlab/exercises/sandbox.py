"""Isolation of the grading worker, applied by its supervisor before any student code runs.

Each step is tried and recorded under its name in :mod:`cnnlab.exercises.protections`; a step
the operating system refuses is left out of the returned record (an ``*_error`` entry may say
why), and the supervisor refuses to run student code when a protection the run requires is
missing. In order:

1. join the worker's cgroups (``cpu_fair_share``, ``pids_cgroup``), made by the grading process;
2. ``no_new_privs``; when not root, an unprivileged ``user_namespace`` so the rest works;
3. new mount, IPC and UTS namespaces (``mount_namespace``, ``ipc_namespace``, ``uts_namespace``):
   System V and POSIX message queues, shared memory and semaphores of one worker are invisible
   to every other, and die with it;
4. the allow-listed root (:mod:`cnnlab.exercises.rootfs`): Python, its packages, ``cnnlab``
   without the forbidden modules (``forbidden_modules_absent``), system libraries, four devices,
   and private ``/scratch``, ``/tmp``, ``/var/tmp``, ``/dev/shm``, ``/run`` (``private_tmp``,
   ``disk_limit`` when they share the grading process's size-limited tmpfs);
5. a ``network_namespace`` (no interface, no abstract Unix socket of the host) unless the
   network is allowed;
6. a ``pid_namespace``: the supervisor forks and goes on as the namespace's init, mounts its
   ``/proc`` and pivots into the new root (``minimal_root``);
7. rlimits (``file_size_limit``, ``process_limit``; the memory limit is set later by the
   student process, above what it has mapped);
8. as root, the slot uid (``slot_uid``), which drops every capability (``no_capabilities``);
9. the uid's keyrings cleared and a new session keyring joined (``uid_keys_cleared``,
   ``session_keyring``).

Without a minimal root (``--allow-weak-isolation`` on a machine that refuses it) the older
fallback applies: listed folders are covered with empty tmpfs and a Python under a closed
folder (pyenv under ``/root``) is exposed alone.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import sys

from cnnlab.exercises import keyrings, linux, rootfs
from cnnlab.exercises.rlimits import limit_address_space, set_limit, set_parent_death_signal

CLONE_NEWNS = linux.CLONE_NEWNS
CLONE_NEWUSER = linux.CLONE_NEWUSER
MS_RDONLY = linux.MS_RDONLY
MS_NOSUID = linux.MS_NOSUID
MS_NODEV = linux.MS_NODEV
MS_NOEXEC = linux.MS_NOEXEC
MS_BIND = linux.MS_BIND
MS_REC = linux.MS_REC
MS_PRIVATE = linux.MS_PRIVATE
PR_SET_NO_NEW_PRIVS = 38
__all__ = ["enter", "limit_address_space", "set_parent_death_signal"]
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

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


def _capabilities_gone() -> bool:
    """True when this process has no effective and no permitted capability left."""
    try:
        with open("/proc/self/status") as handle:
            fields = dict(line.split(":", 1) for line in handle if ":" in line)
        return all(int(fields[key].strip(), 16) == 0 for key in ("CapEff", "CapPrm"))
    except (OSError, KeyError, ValueError):
        return False


def _namespace(flag: int, name: str, had: dict[str, str]) -> bool:
    try:
        linux.unshare(flag)
    except OSError:
        return False
    had[name] = ""
    return True


def _pid_namespace(had: dict[str, str]) -> None:
    """Enter a new PID namespace: fork; the parent waits and exits as the child did."""
    if not _namespace(linux.CLONE_NEWPID, "pid_namespace", had):
        return
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


def _build_root(config: dict, had: dict[str, str]) -> rootfs.RootPlan | None:
    """Build the allow-listed root (not entered yet); None where the kernel refuses."""
    uid = config.get("uid")
    plan = rootfs.plan_root(
        PACKAGE_DIR, list(config.get("forbidden_modules", [])), os.getuid() if uid is None else uid
    )
    plan.writable = {rootfs.SCRATCH: config["scratch"], **config.get("private", {})}
    plan.private_size = int(config.get("private_size", 64 << 20))
    try:
        rootfs.build(config["root"], plan)
    except OSError as error:
        had["minimal_root_error"] = str(error)[:200]
        return None
    had["private_tmp"] = "shared size limit" if config.get("private") else "tmpfs each"
    if config.get("disk_limited") and set(rootfs.PRIVATE) <= set(config.get("private", {})):
        had["disk_limit"] = f"{int(config['disk_bytes']) >> 20} MiB tmpfs"
    return plan


def _forbidden_absent(plan: rootfs.RootPlan) -> str | None:
    """Check, from inside the new root, that every forbidden module's path shows empty."""
    try:
        if any(os.listdir(path) for path in plan.cover_dirs):
            return None
        if any(os.stat(path).st_size for path in plan.cover_files):
            return None
    except OSError:
        return None
    return f"{len(plan.cover_dirs)} folders, {len(plan.cover_files)} files covered"


def _drop_to_uid(uid: int, had: dict[str, str]) -> None:
    try:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        had["slot_uid"] = str(uid)
    except OSError as error:  # pragma: no cover
        had["slot_uid_error"] = str(error)[:200]


def _keyrings(had: dict[str, str]) -> None:
    try:
        had["session_keyring"] = str(keyrings.join_new_session_keyring())
    except OSError as error:
        had["session_keyring_error"] = str(error)[:200]
        return
    try:
        had["uid_keys_cleared"] = ",".join(keyrings.clear_uid_keyrings())
    except OSError as error:
        had["uid_keys_cleared_error"] = str(error)[:200]


def _hide_list(config: dict) -> list[str]:
    """The folders to cover in the fallback: ``hide``, or read from the file ``hide_fd``.

    The supervisor passes the descriptor of ``hide.json`` unread, so that with a minimal root
    the list (other submissions' paths) never enters its memory, which the student process
    inherits.
    """
    if "hide_fd" in config:
        fd = int(config["hide_fd"])
        with os.fdopen(os.dup(fd), "rb") as handle:
            return [str(path) for path in json.loads(handle.read())]
    return [str(path) for path in config.get("hide", [])]


def enter(config: dict) -> dict[str, str]:
    """Isolate this process as ``config`` asks; return the protections in force.

    May fork (for the PID namespace): the original process then waits for the child, exits with
    its status and never returns; the child returns and goes on as the worker, inside the new
    root, as the slot uid.

    Parameters
    ----------
    config : dict
        ``uid`` (run as this uid when root), ``root`` (an empty folder for the new root),
        ``scratch`` and ``private`` (the writable folders, see
        :mod:`cnnlab.exercises.scratch`), ``disk_limited``, ``disk_bytes``, ``private_size``,
        ``cgroups`` (controller -> ``cgroup.procs`` file to join), ``forbidden_modules``,
        ``nproc``, ``fsize_bytes``, ``nofile``, ``network`` (allow network when true), and for
        the fallback without a minimal root ``hide`` (or ``hide_fd``, a descriptor of the same
        list as JSON) and ``staging``.

    Returns
    -------
    dict
        Protection name (see :mod:`cnnlab.exercises.protections`) -> a detail; a missing
        protection is absent (an ``*_error`` key may say why).
    """
    had: dict[str, str] = {}
    is_root = os.geteuid() == 0
    for controller, procs in dict(config.get("cgroups", {})).items():
        if _write(procs, str(os.getpid())):  # join the group the grading process made
            name = "cpu_fair_share" if controller == "cpu" else f"{controller}_cgroup"
            had[name] = os.path.basename(os.path.dirname(procs))
    if _call("prctl", PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0):
        had["no_new_privs"] = ""
    in_userns = False
    if not is_root and _enter_user_namespace():
        in_userns = True
        had["user_namespace"] = ""
    plan = None
    if _namespace(linux.CLONE_NEWNS, "mount_namespace", had):
        _call("mount", b"none", b"/", None, MS_REC | MS_PRIVATE, None)
    _namespace(linux.CLONE_NEWIPC, "ipc_namespace", had)
    if _namespace(linux.CLONE_NEWUTS, "uts_namespace", had):
        try:
            linux.sethostname("cnnlab-worker")
        except OSError:
            pass
    if "mount_namespace" in had and config.get("root"):
        plan = _build_root(config, had)
    if plan is None and "mount_namespace" in had:
        hidden = _hide(_hide_list(config), [config["scratch"], PACKAGE_DIR])
        had["hidden_folders"] = str(len(hidden))
        if is_root and config.get("uid") is not None and config.get("staging"):
            needed = [p for p in sys.path if p] + [sys.prefix, sys.base_prefix, PACKAGE_DIR]
            for closed in _expose(needed, config["staging"]):
                had["exposed_python_under"] = closed
    if not config.get("network", False):
        _namespace(linux.CLONE_NEWNET, "network_namespace", had)
    _pid_namespace(had)
    if plan is not None:
        try:
            if "pid_namespace" in had:
                rootfs.mount_proc(config["root"])
            had["minimal_root"] = rootfs.enter(config["root"])
            absent = _forbidden_absent(plan)
            if absent is not None:
                had["forbidden_modules_absent"] = absent
        except OSError as error:
            had["minimal_root_error"] = str(error)[:200]
    elif "pid_namespace" in had and "mount_namespace" in had:
        _call("mount", b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    limits = [
        ("core", resource.RLIMIT_CORE, 0),
        ("fsize", resource.RLIMIT_FSIZE, int(config["fsize_bytes"])),
        ("nofile", resource.RLIMIT_NOFILE, int(config.get("nofile", 256))),
        ("nproc", resource.RLIMIT_NPROC, int(config["nproc"])),
    ]
    set_ok = [name for name, which, value in limits if set_limit(which, value)]
    if {"core", "fsize"} <= set(set_ok):
        had["file_size_limit"] = f"{int(config['fsize_bytes']) >> 20} MiB"
    if "nproc" in set_ok:
        had["process_limit"] = str(int(config["nproc"]))
    uid = config.get("uid")
    if (
        is_root
        and uid is not None
        and "mount_namespace" not in had
        and _closed_ancestor(sys.base_prefix) is not None
    ):
        # Python lives under a folder the uid cannot enter, and no mount namespace can expose
        # it: dropping to the uid would break every later import. Stay root (weaker: see README).
        had["slot_uid_error"] = f"skipped: python under {_closed_ancestor(sys.base_prefix)}"
        uid = None
    if is_root and uid is not None:
        _drop_to_uid(uid, had)
        # A change of uid clears the parent-death signal: ask again, so that this process
        # (the PID namespace's init, and with it everything in the namespace) still dies
        # with its parent, whatever killed the grading process.
        set_parent_death_signal()
    elif in_userns:
        _drop_capabilities()
    if _capabilities_gone():
        had["no_capabilities"] = ""
    _keyrings(had)
    return had
