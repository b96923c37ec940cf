"""A worker's writable space: one size-limited tmpfs, made before it starts, discarded after.

As root, the grading process mounts a tmpfs of ``disk_mb`` MiB (and a bounded number of inodes)
for each worker and makes in it the folders the worker may write: ``home`` (its ``/scratch``,
where the answers are written), ``tmp``, ``var_tmp``, ``shm`` and ``run`` (its ``/tmp``,
``/var/tmp``, ``/dev/shm`` and ``/run``). So one bound covers everything a submission can write,
and nothing it writes reaches the host's disk. The grading process reads the answers from
``home`` once the worker is gone, then unmounts the tmpfs: whatever tree the submission left
(3000 folders deep, links, unwritable folders) goes with it, without a walk.

Not root, there is no tmpfs to mount: ``home`` is a plain folder (the worker makes its own
private tmpfs for the others), bounded only per file (``RLIMIT_FSIZE``), and removed with
:func:`cnnlab.exercises.removal.remove_tree`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cnnlab.exercises import linux
from cnnlab.exercises.removal import remove_tree

__all__ = ["Scratch", "make_scratch"]

PRIVATE = {"/tmp": "tmp", "/var/tmp": "var_tmp", "/dev/shm": "shm", "/run": "run"}


@dataclass
class Scratch:
    """The writable folders of one worker.

    Parameters
    ----------
    top : Path
        The tmpfs mount point (or plain folder) holding the rest.
    home : Path
        The worker's ``/scratch``: its working folder, ``$HOME``, where answers are written.
    private : dict
        Path in the worker's root (``/tmp``, ...) -> host folder, on the same tmpfs; empty when
        not root (the worker then mounts its own).
    bounded : bool
        True when ``top`` is a size-limited tmpfs.
    """

    top: Path
    home: Path
    private: dict[str, str]
    bounded: bool
    size_bytes: int = 0

    def discard(self) -> bool:
        """Unmount (or delete) everything; True when nothing is left. Never raises."""
        if self.bounded:
            try:
                linux.umount(str(self.top), linux.MNT_DETACH)
            except OSError:
                pass
        return remove_tree(self.top)


def make_scratch(top: Path, uid: int | None, disk_mb: int) -> Scratch:
    """Make the writable space of one worker at ``top`` (an absent path in a private folder).

    Parameters
    ----------
    top : Path
        Where to mount (or make) it.
    uid : int or None
        The worker's slot uid when grading as root; it owns the folders.
    disk_mb : int
        Size of the tmpfs, MiB; it also holds ``max(16384, disk_mb * 64)`` inodes at most.
    """
    top.mkdir(mode=0o711)
    home = top / "home"
    if uid is None:
        home.mkdir(mode=0o700)
        return Scratch(top, home, {}, bounded=False)
    size = int(disk_mb) << 20
    try:
        linux.mount(
            "tmpfs",
            str(top),
            "tmpfs",
            linux.MS_NOSUID | linux.MS_NODEV,
            f"size={size},nr_inodes={max(16384, int(disk_mb) * 64)},mode=0711",
        )
        linux.mount(None, str(top), None, linux.MS_PRIVATE)
    except OSError:
        home.mkdir(mode=0o700)
        os.chown(home, uid, uid)
        return Scratch(top, home, {}, bounded=False)
    home.mkdir(mode=0o700)
    private = {}
    for inside, name in PRIVATE.items():
        folder = top / name
        folder.mkdir(mode=0o700)
        private[inside] = str(folder)
    for folder in [home, *map(Path, private.values())]:
        os.chown(folder, uid, uid)
    return Scratch(top, home, private, bounded=True, size_bytes=size)
