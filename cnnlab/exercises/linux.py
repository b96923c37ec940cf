"""The Linux system calls the grading sandbox needs, as small typed wrappers around libc.

Python's standard library has no ``mount``, ``umount2``, ``unshare``, ``pivot_root``,
``sethostname`` or ``keyctl``; these wrappers call them through :mod:`ctypes` and raise
:class:`OSError` (with the errno and the call named) when the kernel refuses. Nothing here
decides policy: :mod:`cnnlab.exercises.sandbox` and :mod:`cnnlab.exercises.rootfs` do.

Examples
--------
>>> flags = CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS
>>> hex(flags)
'0xc020000'
"""

from __future__ import annotations

import ctypes
import os

__all__ = [
    "CLONE_NEWNS",
    "CLONE_NEWUTS",
    "CLONE_NEWIPC",
    "CLONE_NEWUSER",
    "CLONE_NEWPID",
    "CLONE_NEWNET",
    "MS_RDONLY",
    "MS_NOSUID",
    "MS_NODEV",
    "MS_NOEXEC",
    "MS_REMOUNT",
    "MS_BIND",
    "MS_REC",
    "MS_PRIVATE",
    "MNT_DETACH",
    "mount",
    "umount",
    "unshare",
    "pivot_root",
    "sethostname",
    "prctl",
    "keyctl",
    "add_key",
]

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2

# System call numbers glibc has no wrapper for, per architecture.
_SYSCALLS = {
    "x86_64": {"pivot_root": 155, "add_key": 248, "keyctl": 250},
    "aarch64": {"pivot_root": 41, "add_key": 217, "keyctl": 219},
}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]


def _check(result: int, call: str, path: str | None = None) -> int:
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{call}: {os.strerror(errno)}", path)
    return result


def _bytes(value: str | bytes | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


def _number(name: str) -> int:
    machine = os.uname().machine
    numbers = _SYSCALLS.get(machine)
    if numbers is None:
        raise OSError(38, f"{name}: no system call number known for {machine}")
    return numbers[name]


def mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None
) -> None:
    """``mount(2)``: attach ``source`` (a device, a folder to bind, ``tmpfs``) at ``target``."""
    _check(
        _libc.mount(_bytes(source), _bytes(target), _bytes(fstype), flags, _bytes(data)),
        "mount",
        target,
    )


def umount(target: str, flags: int = MNT_DETACH) -> None:
    """``umount2(2)``: detach the file system at ``target`` (lazily, by default)."""
    _check(_libc.umount2(_bytes(target), flags), "umount2", target)


def unshare(flags: int) -> None:
    """``unshare(2)``: move this process into new namespaces (``CLONE_NEW*`` flags)."""
    _check(_libc.unshare(flags), "unshare")


def pivot_root(new_root: str, put_old: str) -> None:
    """``pivot_root(2)``: make ``new_root`` this mount namespace's root; the old one at ``put_old``."""
    _check(
        _libc.syscall(
            ctypes.c_long(_number("pivot_root")),
            ctypes.c_char_p(_bytes(new_root)),
            ctypes.c_char_p(_bytes(put_old)),
        ),
        "pivot_root",
        new_root,
    )


def sethostname(name: str) -> None:
    """``sethostname(2)``, in this process's UTS namespace."""
    data = name.encode()
    _check(_libc.sethostname(data, len(data)), "sethostname")


def prctl(option: int, arg2: int = 0) -> int:
    """``prctl(2)`` with one argument; returns the call's result."""
    return _check(
        _libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), 0, 0, 0), f"prctl({option})"
    )


def keyctl(operation: int, *args: int) -> int:
    """``keyctl(2)`` with integer arguments (key serials, uids, special keyring ids)."""
    values = [ctypes.c_long(a) for a in args] + [ctypes.c_long(0)] * (4 - len(args))
    return _check(
        _libc.syscall(ctypes.c_long(_number("keyctl")), ctypes.c_long(operation), *values),
        f"keyctl({operation})",
    )


def add_key(kind: str, description: str, payload: bytes, keyring: int) -> int:
    """``add_key(2)``: add a key of type ``kind`` to ``keyring``; returns its serial."""
    return _check(
        _libc.syscall(
            ctypes.c_long(_number("add_key")),
            ctypes.c_char_p(kind.encode()),
            ctypes.c_char_p(description.encode()),
            ctypes.c_char_p(payload),
            ctypes.c_size_t(len(payload)),
            ctypes.c_long(keyring),
        ),
        "add_key",
    )
