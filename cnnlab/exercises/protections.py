"""The protections a grading worker is promised, by mode, and the refusal when one is missing.

This is the table of ``exercises/README.md`` ("How grading isolates a submission") as data:
each protection's name (the key used in ``isolation.json``), what gives it, and the modes that
promise it: ``root`` (grading as root, the mode for untrusted classes) and ``user`` (grading as
a normal user, through an unprivileged user namespace). A grading run checks, before any
student code runs, that each worker has every protection its mode promises; where one is
missing it refuses (:class:`IsolationError`) unless ``allow_weak_isolation`` is set, and
``isolation.json`` records what each worker had either way.

Examples
--------
>>> "cpu_fair_share" in promised("root", network=False)
True
>>> "cpu_fair_share" in promised("user", network=False)
False
>>> missing(["ipc_namespace"], {"ipc_namespace": ""})
[]
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["Protection", "PROTECTIONS", "IsolationError", "mode", "promised", "missing"]

BOTH = ("root", "user")
ROOT = ("root",)


@dataclass(frozen=True)
class Protection:
    """One row of the table: a name, its mechanism, the modes that promise it."""

    name: str
    mechanism: str
    modes: tuple[str, ...] = BOTH


PROTECTIONS: tuple[Protection, ...] = (
    Protection("wall_clock", "submission and per-call wall-clock limits, kept by the grader"),
    Protection("memory_limit", "RLIMIT_AS above what the worker had mapped"),
    Protection("file_size_limit", "RLIMIT_FSIZE (printed output too), RLIMIT_CORE = 0"),
    Protection("process_limit", "RLIMIT_NPROC, for the slot uid as root"),
    Protection("pid_namespace", "a new PID namespace: everything started dies with the worker"),
    Protection("pids_cgroup", "a pids cgroup per worker: a process cap and a kill list", ROOT),
    Protection("cpu_fair_share", "a cpu cgroup per worker, all with the same weight", ROOT),
    Protection(
        "memory_cgroup", "a memory cgroup per worker: all its processes together, bounded", ROOT
    ),
    Protection(
        "disk_limit", "one size-limited tmpfs for scratch, /tmp, /var/tmp, /dev/shm, /run", ROOT
    ),
    Protection("mount_namespace", "a private mount namespace"),
    Protection("minimal_root", "pivot_root into an allow-listed tmpfs root"),
    Protection("forbidden_modules_absent", "FORBIDDEN_MODULES of cnnlab covered by empty files"),
    Protection("private_tmp", "private /tmp, /var/tmp, /dev/shm, /run"),
    Protection("ipc_namespace", "a new IPC namespace (SysV and POSIX queues, shm, semaphores)"),
    Protection("uts_namespace", "a new UTS namespace (host name)"),
    Protection("network_namespace", "a new network namespace with no interface"),
    Protection("slot_uid", "a dedicated unprivileged uid per worker slot", ROOT),
    Protection("user_namespace", "an unprivileged user namespace", ("user",)),
    Protection("no_new_privs", "PR_SET_NO_NEW_PRIVS"),
    Protection("no_capabilities", "no capability left (effective, permitted)"),
    Protection("session_keyring", "a new anonymous session keyring"),
    Protection("keyrings_blocked", "seccomp: add_key, request_key, keyctl fail in student code"),
    Protection("uid_keys_cleared", "the uid's user, user-session and persistent keyrings cleared"),
    Protection("supervisor_undumpable", "the supervisor is not dumpable (no ptrace, no fd theft)"),
    Protection("forbidden_stubs", "FORBIDDEN names replaced by raising stubs (a deterrent)"),
    Protection("scratch_discarded", "the worker's writable space unmounted or removed after it"),
)

NAMES = tuple(p.name for p in PROTECTIONS)
AFTER = ("scratch_discarded",)  # known only once the worker is gone: recorded, not required
STUDENT_SIDE = (
    "memory_limit",
    "forbidden_stubs",
    "keyrings_blocked",
)  # set up by the student process itself


class IsolationError(RuntimeError):
    """A grading run lacks protections its mode promises; nothing was graded."""

    def __init__(self, run_mode: str, lacking: dict[str, str]) -> None:
        self.mode = run_mode
        self.missing = sorted(lacking)
        reasons = "; ".join(f"{name} ({why})" if why else name for name, why in lacking.items())
        super().__init__(
            f"refusing to grade: the worker lacks protections that grading as {run_mode} "
            f"promises (exercises/README.md): {reasons}. Fix the machine, or pass "
            "--allow-weak-isolation (allow_weak_isolation=True) to grade anyway; "
            "isolation.json then records what each worker had"
        )


def mode() -> str:
    """``root`` when grading as root, else ``user``."""
    return "root" if os.geteuid() == 0 else "user"


def promised(run_mode: str, network: bool) -> tuple[str, ...]:
    """The protections promised when grading in ``run_mode``, in table order.

    ``network`` True (``--allow-network``) drops ``network_namespace``.
    """
    return tuple(
        p.name
        for p in PROTECTIONS
        if run_mode in p.modes and not (network and p.name == "network_namespace")
    )


def missing(required: list[str] | tuple[str, ...], had: dict[str, str]) -> list[str]:
    """The names of ``required`` not in ``had``, leaving out those known only afterwards."""
    return [name for name in required if name not in had and name not in AFTER]
