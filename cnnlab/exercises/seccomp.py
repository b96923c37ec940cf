"""A seccomp filter that takes kernel keyrings away from the student process.

Kernel keyrings are per uid and outlive processes: a submission could leave a key for the next
submission graded under the same slot uid, or change its user keyring's permissions so that
nobody can clear it any more. Student code has no use for them, so the student process runs
under a seccomp filter (installed by the supervisor between ``fork`` and ``exec``, inherited by
every process it starts) that makes ``add_key``, ``request_key`` and ``keyctl`` fail with
``EPERM``, as well as every system call of a foreign ABI (32-bit ``int 0x80``, x32), through
which the same calls have other numbers. Everything else is allowed.

The filter, in classic BPF::

    A = arch;  if A != native: return EPERM
    A = nr;    if A >= 0x40000000 (x32): return EPERM
               if A in (add_key, request_key, keyctl): return EPERM
    return ALLOW
"""

from __future__ import annotations

import ctypes
import os

__all__ = ["block_keyrings", "keyrings_blocked"]

PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
EPERM = 1
# machine -> (AUDIT_ARCH_*, add_key, request_key, keyctl)
ARCHES = {
    "x86_64": (0xC000003E, 248, 249, 250),
    "aarch64": (0xC00000B7, 217, 218, 219),
}

_LD_ABS_W, _JEQ, _JGE, _RET = 0x20, 0x15, 0x35, 0x06


class _Instruction(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_Instruction))]


def _program(machine: str) -> list[tuple[int, int, int, int]]:
    arch, add_key, request_key, keyctl = ARCHES[machine]
    deny = SECCOMP_RET_ERRNO | EPERM
    return [
        (_LD_ABS_W, 0, 0, 4),  # 0: A = seccomp_data.arch
        (_JEQ, 0, 6, arch),  # 1: foreign ABI -> 8
        (_LD_ABS_W, 0, 0, 0),  # 2: A = seccomp_data.nr
        (_JGE, 4, 0, 0x40000000),  # 3: x32 -> 8
        (_JEQ, 3, 0, add_key),  # 4: -> 8
        (_JEQ, 2, 0, request_key),  # 5: -> 8
        (_JEQ, 1, 0, keyctl),  # 6: -> 8
        (_RET, 0, 0, SECCOMP_RET_ALLOW),  # 7
        (_RET, 0, 0, deny),  # 8
    ]


def block_keyrings() -> bool:
    """Install the filter on this process (and what it will start); True when in force.

    Needs ``PR_SET_NO_NEW_PRIVS`` (set by the sandbox) or ``CAP_SYS_ADMIN``.
    """
    machine = os.uname().machine
    if machine not in ARCHES:
        return False
    code = _program(machine)
    instructions = (_Instruction * len(code))(*[_Instruction(*i) for i in code])
    program = _Program(len(code), instructions)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(program), 0, 0) != 0:
        return False
    return keyrings_blocked()


def keyrings_blocked() -> bool:
    """True when ``keyctl`` fails with ``EPERM`` here (the filter is in force).

    Examples
    --------
    >>> isinstance(keyrings_blocked(), bool)
    True
    """
    machine = os.uname().machine
    if machine not in ARCHES:
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    # KEYCTL_GET_KEYRING_ID (0) of the user keyring (-4), without creating it.
    result = libc.syscall(ctypes.c_long(ARCHES[machine][3]), ctypes.c_long(0), ctypes.c_long(-4), 0)
    return result == -1 and ctypes.get_errno() == EPERM
