"""Clean up after grading runs that were killed: their work folders, mounts and cgroups.

A grading run gives back everything it borrowed when it ends, even on an exception
(:class:`cnnlab.exercises.grading.GradingSession`). A run killed outright (SIGKILL, a machine
out of memory, a Dask worker shot down) cannot: its work folder stays in the temporary folder
with the hidden tests' inputs in it, its workers' scratch tmpfs stay mounted, and their cgroups
stay. Each run therefore holds an exclusive ``flock`` on ``RUN_LOCK`` in its work folder for as
long as it lives, and every new run first sweeps:

- a work folder ``cnnlab-grade-*`` whose lock nobody holds: every mount under it detached,
  then the folder removed (without following links, :func:`cnnlab.exercises.removal.remove_tree`);
- a worker cgroup (named ``<pid>.<slot>.<count>`` by the run of process ``pid``) whose process
  no longer exists: its processes killed, then the group removed.

A folder without a lock file (made by an older version, or by something else), or owned by
another user, is left alone.
"""

from __future__ import annotations

import fcntl
import os
import stat
import tempfile
from pathlib import Path

from cnnlab.exercises import cgroups, linux
from cnnlab.exercises.removal import remove_tree

__all__ = ["RUN_PREFIX", "RUN_LOCK", "hold_run", "sweep"]

RUN_PREFIX = "cnnlab-grade-"
RUN_LOCK = ".run.lock"


def hold_run(workdir: Path) -> int:
    """Lock ``workdir`` as a live run's; return the descriptor (closing it releases the lock)."""
    fd = os.open(workdir / RUN_LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _mounts_under(folder: str) -> list[str]:
    """Mount points at or under ``folder`` (this process's view), deepest first."""
    points = []
    try:
        with open("/proc/self/mountinfo") as handle:
            for line in handle:
                point = line.split()[4].replace("\\040", " ")
                if point == folder or point.startswith(folder + "/"):
                    points.append(point)
    except OSError:
        return []
    return sorted(points, key=len, reverse=True)


def _stale_folders(parent: Path) -> list[Path]:
    """Run folders under ``parent`` whose lock exists and nobody holds."""
    stale = []
    for folder in sorted(parent.glob(f"{RUN_PREFIX}*")):
        try:
            info = folder.lstat()
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
            continue  # a link, or another user's: never ours to remove
        try:
            fd = os.open(folder / RUN_LOCK, os.O_RDWR | os.O_NOFOLLOW)
        except OSError:
            continue  # no lock file: not ours to judge
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a live run
        finally:
            os.close(fd)
        stale.append(folder)
    return stale


def _stale_cgroups() -> list[str]:
    """Worker cgroups (``<pid>.<slot>.<count>``) whose grading process is gone."""
    stale = []
    for parent, _ in cgroups.controller_roots().values():
        try:
            names = os.listdir(parent)
        except OSError:
            continue
        for name in names:
            pid = name.split(".", 1)[0]
            if pid.isdigit() and name.count(".") == 2 and not os.path.exists(f"/proc/{pid}"):
                stale.append(os.path.join(parent, name))
    return sorted(set(stale))


def sweep(parent: str | Path | None = None) -> dict[str, int]:
    """Remove what killed grading runs left behind; return how many of each were removed.

    Never raises: a leftover that cannot be removed now is tried again by the next run.
    """
    parent = Path(parent if parent is not None else tempfile.gettempdir())
    removed = {"folders": 0, "mounts": 0, "cgroups": 0}
    for folder in _stale_folders(parent):
        for point in _mounts_under(str(folder.resolve())):
            try:
                linux.umount(point, linux.MNT_DETACH)
                removed["mounts"] += 1
            except OSError:
                pass
        if remove_tree(folder):
            removed["folders"] += 1
    if os.geteuid() == 0:
        for folder in _stale_cgroups():
            group = cgroups.WorkerCgroup(folders={"any": folder})
            group.kill(attempts=20)
            if group.remove(attempts=20):
                removed["cgroups"] += 1
    return removed
