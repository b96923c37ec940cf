"""Resource limits of a worker process, and the signal it gets when its parent dies.

Kept apart from :mod:`cnnlab.exercises.sandbox` because the student process needs these two
calls and nothing else of the sandbox: it imports this small module only, and starts faster.

Examples
--------
>>> set_limit(resource.RLIMIT_NOFILE, -5)  # refused: False, never an exception
False
"""

from __future__ import annotations

import ctypes
import os
import resource

__all__ = ["set_limit", "limit_address_space", "set_parent_death_signal"]

PR_SET_PDEATHSIG = 1

_libc = ctypes.CDLL(None, use_errno=True)


def _address_space() -> int:
    """Bytes this process has mapped now (``/proc/self/statm``)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def set_limit(which: int, value: int) -> bool:
    """Set the soft and hard limit ``which`` to ``value``; False where refused."""
    try:
        resource.setrlimit(which, (value, value))
        return True
    except (ValueError, OSError):
        return False


def limit_address_space(memory_bytes: int) -> bool:
    """Set RLIMIT_AS to what this process has mapped now plus ``memory_bytes``."""
    return set_limit(resource.RLIMIT_AS, _address_space() + int(memory_bytes))


def set_parent_death_signal() -> bool:
    """Ask for SIGKILL when the parent dies (``PR_SET_PDEATHSIG``); die now if it already has."""
    parent = os.getppid()
    ok = _libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0) == 0
    if os.getppid() != parent:  # the parent died before the request took hold
        os._exit(137)
    return ok
