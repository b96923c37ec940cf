"""A control group per grading worker: an equal CPU share, a process cap, one kill switch.

Without one, CPU time goes to processes, not to submissions: a submission that starts 48 busy
processes (each in its own session, where the scheduler's autogroups give each its own share)
takes 48 shares of the machine against an honest neighbour's one, and the neighbour's timed
calls fail. Under ``cnnlab/`` the grading process makes one group per worker with the same
weight (``cpu.shares`` 1024 on cgroup v1, ``cpu.weight`` 100 on v2): the scheduler then splits
the CPUs between *workers*, however many processes each runs. The ``pids`` controller caps the
worker's processes and threads, and lists every one of them, so :meth:`WorkerCgroup.kill`
ends them all, whatever session, process group or PID namespace they hide in. The ``memory``
controller bounds what all of a worker's processes hold together (``RLIMIT_AS`` bounds each
process alone, so a submission that forks could otherwise take the machine's memory).

Both cgroup layouts work: v1 (a hierarchy per controller, the group nested under the grading
process's own) and v2 (one hierarchy; the group under ``/sys/fs/cgroup/cnnlab``, where the
controllers can be enabled). A controller the machine lacks, or may not be written (not root,
no delegation), is left out, and the worker records that protection as missing.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["WorkerCgroup", "controller_roots", "create", "kill_until_gone"]

CONTROLLERS = ("cpu", "pids", "memory")
# Room above the submission's own memory limit for its supervisor and interpreters.
MEMORY_HEADROOM = 512 << 20
PARENT = "cnnlab"


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(mount point, fstype, super options) of every cgroup file system."""
    found = []
    try:
        with open("/proc/self/mountinfo") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return found
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) >= 5 and len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
            found.append((fields[4].replace("\\040", " "), tail[0], set(tail[2].split(","))))
    return found


def _own_path(hierarchy: str) -> str:
    """This process's group in a v1 hierarchy named by one of its controllers, or '/'."""
    try:
        with open("/proc/self/cgroup") as handle:
            for line in handle:
                _, names, path = line.rstrip("\n").split(":", 2)
                if hierarchy in names.split(","):
                    return path or "/"
    except OSError:
        pass
    return "/"


def controller_roots() -> dict[str, tuple[str, int]]:
    """For each controller of :data:`CONTROLLERS`: (folder under which to make groups, version).

    A v1 hierarchy that has the controller wins; otherwise the v2 hierarchy, if it offers it.
    """
    roots: dict[str, tuple[str, int]] = {}
    mounts = _mounts()
    for controller in CONTROLLERS:
        for point, fstype, options in mounts:
            if fstype == "cgroup" and controller in options:
                own = _own_path(controller).lstrip("/")
                roots[controller] = (os.path.join(point, own, PARENT), 1)
                break
    for point, fstype, _ in mounts:
        if fstype != "cgroup2":
            continue
        try:
            with open(os.path.join(point, "cgroup.controllers")) as handle:
                offered = handle.read().split()
        except OSError:
            continue
        for controller in CONTROLLERS:
            if controller in offered and controller not in roots:
                roots[controller] = (os.path.join(point, PARENT), 2)
    return roots


def kill_until_gone(list_pids: Callable[[], set[int]], attempts: int, pause: float) -> bool:
    """SIGKILL every pid ``list_pids()`` names, again until it names none; True when none left.

    A fork between the listing and the kill adds a pid to the next listing, hence the rounds.
    """
    for _ in range(attempts):
        pids = list_pids()
        if not pids:
            return True
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(pause)
    return not list_pids()


def _write(path: str, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)


@dataclass
class WorkerCgroup:
    """The groups of one worker: controller -> folder (several on v1, one on v2)."""

    folders: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def procs_files(self) -> list[str]:
        """The ``cgroup.procs`` files the worker writes its pid into (each folder once)."""
        return sorted({os.path.join(f, "cgroup.procs") for f in self.folders.values()})

    def pids(self) -> set[int]:
        """Every process now in the worker's groups (host pids)."""
        found: set[int] = set()
        for path in self.procs_files:
            try:
                with open(path) as handle:
                    found.update(int(p) for p in handle.read().split())
            except (OSError, ValueError):
                continue
        return found

    def kill(self, attempts: int = 100) -> bool:
        """SIGKILL every process in the groups until none is left; True when empty."""
        for folder in set(self.folders.values()):
            if os.path.exists(os.path.join(folder, "cgroup.kill")):
                try:
                    _write(os.path.join(folder, "cgroup.kill"), "1")
                except OSError:
                    pass
        return kill_until_gone(self.pids, attempts, 0.01)

    def remove(self, attempts: int = 100) -> bool:
        """Remove the (empty) groups; True when all are gone. Never raises."""
        left = set(self.folders.values())
        for _ in range(attempts):
            for folder in list(left):
                try:
                    os.rmdir(folder)
                    left.discard(folder)
                except FileNotFoundError:
                    left.discard(folder)
                except OSError:
                    pass
            if not left:
                return True
            time.sleep(0.01)
        return False


def _enable_v2(parent: str) -> None:
    """Let the v2 groups under ``parent`` use :data:`CONTROLLERS`."""
    wanted = " ".join(f"+{c}" for c in CONTROLLERS)
    for folder in (os.path.dirname(parent), parent):
        try:
            _write(os.path.join(folder, "cgroup.subtree_control"), wanted)
        except OSError:
            pass


def create(name: str, nproc: int, memory_bytes: int | None = None) -> WorkerCgroup:
    """Make the groups of one worker; controllers that cannot be had are named in ``errors``.

    Parameters
    ----------
    name : str
        Unique per worker (the grading process's pid, the slot and a count).
    nproc : int
        The worker's process limit; ``pids.max`` leaves room for its supervisor as well.
    memory_bytes : int or None
        The submission's memory limit; the group's limit (``memory.limit_in_bytes`` on v1,
        ``memory.max`` on v2) adds :data:`MEMORY_HEADROOM` for the supervisor. None: the
        memory controller is not used.
    """
    group = WorkerCgroup()
    for controller, (parent, version) in controller_roots().items():
        folder = os.path.join(parent, name)
        if controller == "memory" and memory_bytes is None:
            continue
        try:
            os.makedirs(parent, exist_ok=True)
            if version == 2:
                _enable_v2(parent)
            os.makedirs(folder, exist_ok=True)
            if controller == "cpu":
                _write(
                    os.path.join(folder, "cpu.shares" if version == 1 else "cpu.weight"),
                    "1024" if version == 1 else "100",
                )
            elif controller == "memory":
                limit = str(int(memory_bytes) + MEMORY_HEADROOM)
                if version == 1:
                    _write(os.path.join(folder, "memory.limit_in_bytes"), limit)
                else:
                    _write(os.path.join(folder, "memory.max"), limit)
                    _write(os.path.join(folder, "memory.swap.max"), "0")
            else:
                _write(os.path.join(folder, "pids.max"), str(int(nproc) + 16))
            group.folders[controller] = folder
        except OSError as error:
            group.errors[controller] = f"{folder}: {error.strerror or error}"
    for controller in CONTROLLERS:
        if controller == "memory" and memory_bytes is None:
            continue
        if controller not in group.folders and controller not in group.errors:
            group.errors[controller] = "no cgroup hierarchy offers this controller"
    return group
