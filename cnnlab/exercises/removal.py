"""Remove a folder a submission may have shaped: no recursion, no symbolic link followed, no raise.

A submission controls what it leaves in its scratch folder: a directory tree 3000 levels deep
(``shutil.rmtree`` recurses once per level and raises ``RecursionError``), paths longer than
``PATH_MAX``, symbolic links to the grader's own files, folders it made unwritable or
unreadable. :func:`remove_tree` walks the tree with one open directory at a time, by file
descriptor (``dir_fd``), going down with ``O_NOFOLLOW`` and back up through ``..`` checked
against the device and inode it came from. A link is removed, never followed. It opens a
folder it cannot list or empty by giving it back its owner's rights (``chmod 0700``) first.
Whatever happens, it returns whether the tree is gone instead of raising, so one submission's
leftovers can never stop the grading of the others.
"""

from __future__ import annotations

import os
import stat

__all__ = ["remove_tree"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _open_child(parent_fd: int, name: str) -> int:
    """Open the folder ``name`` in ``parent_fd`` (not a link); make it listable if needed."""
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except PermissionError:  # a real folder (listed as one), made unreadable by its owner
        os.chmod(name, 0o700, dir_fd=parent_fd)
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    mode = os.fstat(fd).st_mode
    if os.geteuid() != 0 and mode & 0o700 != 0o700:  # root needs no permission bits
        os.fchmod(fd, mode | 0o700)
    return fd


def _clear_files(fd: int) -> tuple[str | None, bool]:
    """Remove every non-folder entry of ``fd``; return (a sub-folder's name or None, any removed)."""
    folder, removed = None, False
    with os.scandir(fd) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                folder = folder or entry.name
            else:
                _unlink(fd, entry.name)
                removed = True
    return folder, removed


def _unlink(fd: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=fd)
    except PermissionError:  # the folder was made read-only: give it back its write bit
        os.chmod(fd, 0o700)
        os.unlink(name, dir_fd=fd)


def _rmdir(fd: int, name: str) -> None:
    try:
        os.rmdir(name, dir_fd=fd)
    except PermissionError:
        os.chmod(fd, 0o700)
        os.rmdir(name, dir_fd=fd)


def _walk_down(root_fd: int, limit: int) -> bool:
    """Empty the folder ``root_fd``, one entry at a time; True when it is empty."""
    fd = os.dup(root_fd)
    trail: list[tuple[int, int, str]] = []  # (st_dev, st_ino) of each parent and our name in it
    try:
        for _ in range(limit):
            name, removed = _clear_files(fd)
            if name is not None:
                child = _open_child(fd, name)
                info = os.fstat(fd)
                trail.append((info.st_dev, info.st_ino, name))
                os.close(fd)
                fd = child
                continue
            if removed:
                continue  # look again: entries may have been skipped while removing
            if not trail:
                return True  # the root itself is empty
            device, inode, name = trail.pop()
            parent = os.open("..", _DIR_FLAGS, dir_fd=fd)
            info = os.fstat(parent)
            os.close(fd)
            fd = parent
            if (info.st_dev, info.st_ino) != (device, inode):
                return False  # the tree moved under us: stop rather than delete elsewhere
            _rmdir(fd, name)
        return False
    finally:
        os.close(fd)


def remove_tree(path: str | os.PathLike, limit: int = 10_000_000) -> bool:
    """Delete ``path`` and everything under it, without following links; True when gone.

    Never raises (an error leaves the rest in place and returns False), never recurses, holds
    two file descriptors at most whatever the depth, and stops after ``limit`` steps.

    Parameters
    ----------
    path : path-like
        A folder (or a file, or a link: removed itself, never what it points to).
    limit : int
        Most entries visited (each removal and each step down or up counts once).

    Returns
    -------
    bool
        True when ``path`` no longer exists.

    Examples
    --------
    >>> import os, tempfile
    >>> top = tempfile.mkdtemp()
    >>> deep = os.path.join(top, *["d"] * 50)
    >>> os.makedirs(deep)
    >>> os.symlink("/", os.path.join(deep, "link"))
    >>> remove_tree(top), os.path.exists(top), os.path.exists("/etc")
    (True, False, True)
    """
    path = os.fspath(path)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    try:
        if not stat.S_ISDIR(info.st_mode):
            os.unlink(path)
            return True
        parent, name = os.path.split(os.path.abspath(path))
        parent_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            root_fd = _open_child(parent_fd, name)
            try:
                if (os.fstat(root_fd).st_dev, os.fstat(root_fd).st_ino) != (
                    info.st_dev,
                    info.st_ino,
                ):
                    return False
                if not _walk_down(root_fd, limit):
                    return False
            finally:
                os.close(root_fd)
            _rmdir(parent_fd, name)
        finally:
            os.close(parent_fd)
        return True
    except (OSError, ValueError, NotImplementedError, RecursionError, MemoryError):
        return False
