"""What the grading process lends one worker run, and takes back whatever the worker did.

A worker run gets a folder of its own in the grading run's work folder (``0711``: its uid may
pass through, not list), holding:

- ``job/``: the job file and the inputs, readable by root alone (the supervisor reads them
  before it drops to the slot uid);
- ``root/``: an empty folder on which the worker builds its allow-listed root (in its own mount
  namespace: nothing appears there on the host);
- ``scratch/``: its writable space (:mod:`cnnlab.exercises.scratch`), a size-limited tmpfs as
  root;

and, as root, a cgroup per controller (:mod:`cnnlab.exercises.cgroups`). :meth:`Workspace.release`
takes it all back and never raises: it kills every process left in the cgroups, unmounts the
scratch tmpfs (or deletes a plain scratch folder without recursion), removes the cgroups and the
folder, and clears the slot uid's keyrings, so nothing of one submission reaches the next.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cnnlab.exercises import cgroups, keyrings
from cnnlab.exercises.removal import remove_tree
from cnnlab.exercises.scratch import Scratch, make_scratch

__all__ = ["Workspace", "open_workspace", "preflight"]

_COUNTER = itertools.count()
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


@dataclass
class Workspace:
    """One worker run's folder, writable space and cgroups."""

    folder: Path
    scratch: Scratch
    cgroup: cgroups.WorkerCgroup
    uid: int | None
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def job_dir(self) -> Path:
        return self.folder / "job"

    def sandbox_config(self, private_size: int) -> dict:
        """The part of the worker's sandbox configuration that this workspace provides."""
        controllers = {
            controller: os.path.join(folder, "cgroup.procs")
            for controller, folder in self.cgroup.folders.items()
        }
        return {
            "root": str(self.folder / "root"),
            "scratch": str(self.scratch.home),
            "private": dict(self.scratch.private),
            "private_size": int(private_size),
            "disk_limited": self.scratch.bounded,
            "disk_bytes": self.scratch.size_bytes,
            "cgroups": controllers,
            "staging": str(self.job_dir),
        }

    def kill(self) -> None:
        """SIGKILL every process left in the worker's cgroups (whatever session they are in)."""
        self.cgroup.kill()

    def release(self, scrub_keys: bool = True) -> dict[str, str]:
        """Take everything back; return the record (``scratch_discarded`` when it all went).

        ``scrub_keys`` False skips clearing the slot uid's keyrings, when the worker's
        supervisor did it itself once the student's processes were gone.
        """
        record: dict[str, str] = {}
        try:
            self.cgroup.kill()
            discarded = self.scratch.discard()
            self.cgroup.remove()
            if self.uid is not None and scrub_keys:
                keyrings.scrub_uid(self.uid, PACKAGE_ROOT)
            removed = remove_tree(self.folder)
            if discarded and removed:
                record["scratch_discarded"] = "unmounted" if self.scratch.bounded else "removed"
        except Exception:  # noqa: BLE001 (a leftover must never stop the grading of others)
            pass
        return record


def open_workspace(
    workdir: Path,
    slot: int,
    uid: int | None,
    disk_mb: int,
    nproc: int,
    memory_mb: int | None = None,
) -> Workspace:
    """Make a worker run's folder, writable space and (as root) cgroups.

    Parameters
    ----------
    workdir : Path
        The grading run's work folder.
    slot : int
        The worker slot (names the folder).
    uid : int or None
        The slot's uid when grading as root.
    disk_mb, nproc : int
        The limits of :class:`cnnlab.exercises.grading.Limits`.
    memory_mb : int or None
        The submission's memory limit, which its memory cgroup enforces for all its processes
        together (None: no memory cgroup).
    """
    folder = Path(tempfile.mkdtemp(prefix=f"run{slot}-", dir=workdir))
    os.chmod(folder, 0o711)
    (folder / "job").mkdir(mode=0o700)
    (folder / "root").mkdir(mode=0o700)
    scratch = make_scratch(folder / "scratch", uid, disk_mb)
    if uid is not None:
        memory_bytes = None if memory_mb is None else int(memory_mb) << 20
        group = cgroups.create(f"{os.getpid()}.{slot}.{next(_COUNTER)}", nproc, memory_bytes)
    else:
        group = cgroups.WorkerCgroup(errors={c: "not root" for c in cgroups.CONTROLLERS})
    errors = {
        ("cpu_fair_share" if c == "cpu" else f"{c}_cgroup"): why for c, why in group.errors.items()
    }
    if not scratch.bounded:
        errors["disk_limit"] = "not root: no tmpfs" if uid is None else "tmpfs mount refused"
    return Workspace(folder, scratch, group, uid, errors)


def preflight(
    workdir: Path, uid: int | None, disk_mb: int, nproc: int, memory_mb: int | None = None
) -> dict[str, str]:
    """Try what the grading process itself provides; return protection -> why it is missing.

    Run once before any worker starts, so a run that cannot have them refuses at once.
    """
    space = open_workspace(workdir, 0, uid, disk_mb, nproc, memory_mb)
    try:
        return dict(space.errors)
    finally:
        space.cgroup.remove()
        space.scratch.discard()
        remove_tree(space.folder)
