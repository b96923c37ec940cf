"""The allow-listed file system of a grading worker: a minimal root built on tmpfs.

Inside its private mount namespace the worker's supervisor builds a new root on an empty tmpfs
and moves into it with ``pivot_root``; the host's own root is then detached, so no path leads
back to it. The new root holds only:

- read-only, at their own paths: the Python installation (``sys.base_prefix``), the virtual
  environment (``sys.prefix``), any other folder on ``sys.path``, the ``cnnlab`` package folder
  (never the repository around it), and the operating system's shared libraries (``/usr/lib``,
  ``/lib`` and their 64/32-bit siblings, ``/etc/ld.so.cache``);
- the modules an exercise forbids, inside ``cnnlab``, covered by an empty folder or an empty
  file (their compiled ``__pycache__`` files too), so no route reaches their code;
- ``/scratch`` (the submission's working folder), ``/tmp``, ``/var/tmp``, ``/dev/shm`` and
  ``/run``: private and writable, either folders of the worker's own size-limited tmpfs
  (made by the grading process) or fresh tmpfs mounts;
- ``/dev/null``, ``/dev/zero``, ``/dev/random``, ``/dev/urandom``; a new ``/proc``;
- ``/etc/passwd`` and ``/etc/group`` with two lines each, written here.

Everything else of the host (``/home``, ``/srv``, ``/root`` beyond Python, the repository and
its ``.git``, the exercises, the submissions, the reports, Unix sockets under ``/run`` or
``/tmp``) is simply not there.
"""

from __future__ import annotations

import glob
import os
import sys
from dataclasses import dataclass, field

from cnnlab.exercises import linux

__all__ = ["RootPlan", "plan_root", "forbidden_paths", "build", "mount_proc", "enter"]

SYSTEM_LIBRARIES = (
    "/lib",
    "/lib64",
    "/lib32",
    "/libx32",
    "/usr/lib",
    "/usr/lib64",
    "/usr/lib32",
    "/usr/libx32",
)
SYSTEM_FILES = ("/etc/ld.so.cache",)
DEVICES = ("null", "zero", "random", "urandom")
PRIVATE = ("/tmp", "/var/tmp", "/dev/shm", "/run")
SCRATCH = "/scratch"
EMPTY_FILE = "/.empty"

# statvfs flags -> mount flags that must be kept on a read-only remount (in a user namespace
# the kernel refuses to drop them).
_KEPT_FLAGS = {
    os.ST_NOSUID: linux.MS_NOSUID,
    os.ST_NODEV: linux.MS_NODEV,
    os.ST_NOEXEC: linux.MS_NOEXEC,
    os.ST_NOATIME: 1024,
    os.ST_NODIRATIME: 2048,
    os.ST_RELATIME: 1 << 21,
}


@dataclass
class RootPlan:
    """What goes into the new root.

    Parameters
    ----------
    read_only : list of str
        Host folders and files bound read-only at their own paths.
    symlinks : dict
        Link path -> target, recreated in the new root (``/lib -> usr/lib``).
    writable : dict
        Path in the new root -> host folder bound read-write (``/scratch``, ``/tmp``, ...).
    private_size : int
        Bytes of each fresh tmpfs for a path of ``PRIVATE`` that ``writable`` does not supply.
    cover_dirs, cover_files : list of str
        Folders and files shown empty (forbidden modules).
    files : dict
        Path in the new root -> text written there (``/etc/passwd``).
    """

    read_only: list[str] = field(default_factory=list)
    symlinks: dict[str, str] = field(default_factory=dict)
    writable: dict[str, str] = field(default_factory=dict)
    private_size: int = 64 << 20
    cover_dirs: list[str] = field(default_factory=list)
    cover_files: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)


def _under(path: str, folders: list[str]) -> bool:
    return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)


def forbidden_paths(package_dir: str, package: str, modules: list[str]) -> tuple[list, list]:
    """The folders and files of ``package`` that hold the ``modules`` listed; (dirs, files).

    A module ``cnnlab.numpy`` is the folder ``cnnlab/numpy``; a module ``cnnlab.shapes`` is
    ``cnnlab/shapes.py`` and every ``shapes.*`` file beside it or in ``__pycache__`` (compiled
    code is code too). Modules outside ``package`` are ignored.

    Examples
    --------
    >>> import cnnlab, os
    >>> root = os.path.dirname(cnnlab.__file__)
    >>> dirs, files = forbidden_paths(root, "cnnlab", ["cnnlab.numpy", "cnnlab.shapes", "scipy"])
    >>> [os.path.relpath(d, root) for d in dirs], os.path.join(root, "shapes.py") in files
    (['numpy'], True)
    """
    dirs, files = [], []
    for module in modules:
        if module != package and not module.startswith(package + "."):
            continue
        parts = module.split(".")[1:]
        if not parts:
            dirs.append(package_dir)
            continue
        base = os.path.join(package_dir, *parts)
        if os.path.isdir(base):
            dirs.append(base)
            continue
        parent, stem = os.path.split(base)
        for pattern in (f"{glob.escape(stem)}.*", f"__pycache__/{glob.escape(stem)}.*"):
            files += sorted(
                p for p in glob.glob(os.path.join(parent, pattern)) if os.path.isfile(p)
            )
    return sorted(set(dirs)), sorted(set(files))


def plan_root(package_dir: str, forbidden_modules: list[str], uid: int) -> RootPlan:
    """The allow-list for this interpreter: Python, its packages, ``cnnlab``, system libraries.

    Parameters
    ----------
    package_dir : str
        The ``cnnlab`` package folder (bound alone: the repository around it stays out).
    forbidden_modules : list of str
        The exercise's ``FORBIDDEN_MODULES``; those inside ``cnnlab`` are covered.
    uid : int
        The uid the worker runs as, named in ``/etc/passwd``.
    """
    plan = RootPlan()
    package_dir = os.path.realpath(package_dir)
    repository = os.path.dirname(package_dir)
    python = [os.path.realpath(p) for p in (sys.base_prefix, sys.prefix, sys.exec_prefix)]
    python += [os.path.dirname(os.path.realpath(sys.executable))]
    for entry in sys.path:
        real = os.path.realpath(entry) if entry else ""
        if not real or real == "/" or not os.path.exists(real):
            continue
        if real == repository or _under(package_dir, [real]):
            continue  # an ancestor of cnnlab (PYTHONPATH): only the package itself is bound
        python.append(real)
    candidates = [*python, package_dir]
    for path in SYSTEM_LIBRARIES:
        if os.path.islink(path):
            plan.symlinks[path] = os.readlink(path)
        elif os.path.isdir(path):
            candidates.append(path)
    for path in sorted(set(candidates), key=len):  # a folder inside a bound one adds nothing
        if not _under(path, plan.read_only):
            plan.read_only.append(path)
    plan.read_only += [p for p in SYSTEM_FILES if os.path.isfile(p)]
    # Where a Python path was reached through a link (a venv's lib64 -> lib), keep the link.
    for entry in [sys.executable, *sys.path]:
        if entry and os.path.islink(entry) and os.path.isabs(entry):
            target = os.readlink(entry)
            if not _under(entry, plan.read_only):
                plan.symlinks.setdefault(entry, target)
    plan.cover_dirs, plan.cover_files = forbidden_paths(
        package_dir, "cnnlab", list(forbidden_modules)
    )
    plan.files["/etc/passwd"] = (
        f"root:x:0:0::/:/bin/false\nstudent:x:{uid}:{uid}::{SCRATCH}:/bin/false\n"
    )
    plan.files["/etc/group"] = f"root:x:0:\nstudent:x:{uid}:\n"
    return plan


def _inside(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


def _make_parents(root: str, path: str) -> None:
    os.makedirs(os.path.dirname(_inside(root, path)), mode=0o755, exist_ok=True)


def _mount_point(root: str, path: str, is_dir: bool) -> str:
    target = _inside(root, path)
    _make_parents(root, path)
    if is_dir:
        os.makedirs(target, mode=0o755, exist_ok=True)
    elif not os.path.lexists(target):
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT, 0o444))
    return target


def _kept_flags(path: str) -> int:
    flags = os.statvfs(path).f_flag
    return sum(mount_flag for st_flag, mount_flag in _KEPT_FLAGS.items() if flags & st_flag)


def _bind(source: str, target: str, read_only: bool) -> None:
    linux.mount(source, target, None, linux.MS_BIND | linux.MS_REC)
    if read_only:
        flags = linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY | linux.MS_NOSUID
        linux.mount(None, target, None, flags | _kept_flags(target))


def _tmpfs(target: str, size: int, mode: str, read_only: bool = False) -> None:
    flags = linux.MS_NOSUID | linux.MS_NODEV | (linux.MS_RDONLY if read_only else 0)
    linux.mount("tmpfs", target, "tmpfs", flags, f"size={size},mode={mode}")


def build(root: str, plan: RootPlan) -> None:
    """Build the new root at the empty folder ``root`` (in a private mount namespace).

    Raises
    ------
    OSError
        When a mount is refused: the caller records the minimal root as missing.
    """
    _tmpfs(root, 1 << 20, "0755")
    for path, text in plan.files.items():
        _make_parents(root, path)
        with open(_inside(root, path), "w") as handle:
            handle.write(text)
        os.chmod(_inside(root, path), 0o444)
    os.close(os.open(_inside(root, EMPTY_FILE), os.O_WRONLY | os.O_CREAT, 0o444))
    for path, target in plan.symlinks.items():
        if not os.path.lexists(_inside(root, path)):
            _make_parents(root, path)
            os.symlink(target, _inside(root, path))
    # The private folders first: Python or the repository may live under one of them (a clone
    # in /tmp), and a tmpfs mounted later would cover them.
    for path in (SCRATCH, *PRIVATE):
        target = _mount_point(root, path, True)
        if path in plan.writable:
            _bind(plan.writable[path], target, read_only=False)
        elif path != SCRATCH:
            _tmpfs(target, plan.private_size, "1777")
    for path in plan.read_only:
        _bind(path, _mount_point(root, path, os.path.isdir(path)), read_only=True)
    for path in plan.cover_dirs:
        _tmpfs(_inside(root, path), 4096, "0555", read_only=True)
    for path in plan.cover_files:
        _bind(_inside(root, EMPTY_FILE), _inside(root, path), read_only=True)
    os.makedirs(_inside(root, "/dev"), mode=0o755, exist_ok=True)
    for name in DEVICES:
        _bind(f"/dev/{name}", _mount_point(root, f"/dev/{name}", False), read_only=False)
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        os.symlink(target, _inside(root, f"/dev/{name}"))
    _mount_point(root, "/proc", True)
    flags = linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY | linux.MS_NOSUID | linux.MS_NODEV
    linux.mount(None, root, None, flags)


def mount_proc(root: str) -> None:
    """Mount a ``/proc`` of this process's PID namespace in the new root."""
    flags = linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC
    linux.mount("proc", _inside(root, "/proc"), "proc", flags)


def enter(root: str) -> str:
    """Make ``root`` this process's ``/`` and detach the host's; return how (``pivot_root``).

    Falls back to ``chroot`` where ``pivot_root`` is refused (a root on initramfs); the host's
    root then stays mounted but out of reach of a process without capabilities.
    """
    os.chdir(root)
    try:
        linux.pivot_root(".", ".")
        linux.umount(".", linux.MNT_DETACH)  # the old root, stacked on the new one
        how = "pivot_root"
    except OSError:
        os.chroot(".")
        how = "chroot"
    os.chdir("/")
    return how
