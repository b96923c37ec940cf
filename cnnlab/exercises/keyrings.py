"""Kernel keyrings of a worker's uid: a fresh session keyring, and nothing left from before.

The kernel keeps keys per uid outside any file system: the *user* keyring (``@u``), the
*user-session* keyring (``@us``) and the *persistent* keyring live as long as the kernel does
(or days), whichever process of that uid put a key there. One submission could leave a key that
the next submission graded under the same worker uid reads. So every worker, once it runs as
its slot uid and before any student code, clears those three keyrings
(:func:`clear_uid_keyrings`), having joined a new anonymous session keyring
(:func:`join_new_session_keyring`), which dies with the worker's last process. After the worker,
the grading process clears them again (:func:`scrub_uid`), so nothing stays behind either.
"""

from __future__ import annotations

import sys

from cnnlab.exercises import linux

__all__ = ["join_new_session_keyring", "clear_uid_keyrings", "scrub_uid"]

KEY_SPEC_SESSION_KEYRING = -3
KEY_SPEC_USER_KEYRING = -4
KEY_SPEC_USER_SESSION_KEYRING = -5
KEYCTL_GET_KEYRING_ID = 0
KEYCTL_JOIN_SESSION_KEYRING = 1
KEYCTL_CLEAR = 7
KEYCTL_UNLINK = 9
KEYCTL_GET_PERSISTENT = 22
ENOTSUP = (38, 95, 122)  # ENOSYS, EOPNOTSUPP, EDQUOT: no persistent keyrings on this kernel


def join_new_session_keyring() -> int:
    """Join a new anonymous session keyring (``keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL)``).

    Returns
    -------
    int
        Its serial number.
    """
    return linux.keyctl(KEYCTL_JOIN_SESSION_KEYRING, 0)


def clear_uid_keyrings() -> list[str]:
    """Unlink every key from this uid's user, user-session and persistent keyrings.

    Call it after :func:`join_new_session_keyring`: the persistent keyring is reached through
    the session keyring, which must be this uid's own.

    Returns
    -------
    list of str
        The keyrings cleared (``user``, ``user_session``, ``persistent``); the persistent
        keyring is left out where the kernel has none (it then holds nothing either).

    Raises
    ------
    OSError
        When a keyring exists but cannot be cleared.
    """
    cleared = []
    try:  # linked into our own session keyring, so that we possess it (write needs that)
        serial = linux.keyctl(KEYCTL_GET_PERSISTENT, -1, KEY_SPEC_SESSION_KEYRING)
    except OSError as error:
        if error.errno not in ENOTSUP:
            raise
    else:
        linux.keyctl(KEYCTL_CLEAR, serial)
        linux.keyctl(KEYCTL_UNLINK, serial, KEY_SPEC_SESSION_KEYRING)
        cleared.append("persistent")
    for name, special in (
        ("user", KEY_SPEC_USER_KEYRING),
        ("user_session", KEY_SPEC_USER_SESSION_KEYRING),
    ):
        serial = linux.keyctl(KEYCTL_GET_KEYRING_ID, special, 1)
        linux.keyctl(KEYCTL_CLEAR, serial)
        cleared.append(name)
    return cleared


_SCRUB = (
    "import os, sys; sys.path.insert(0, sys.argv[1]); uid = int(sys.argv[2]); "
    "from cnnlab.exercises.keyrings import clear_uid_keyrings, join_new_session_keyring; "
    "os.setgroups([]); os.setgid(uid); os.setuid(uid); "
    "join_new_session_keyring(); clear_uid_keyrings()"
)


def scrub_uid(uid: int, package_root: str) -> bool:
    """Clear the keyrings of ``uid`` from the grading process (root): True when done.

    Runs :func:`clear_uid_keyrings` in a short-lived interpreter that imports it as root (the
    slot uid may not be able to reach Python's files on the host) and then drops to ``uid``:
    a keyring belongs to its uid, and root cannot clear another uid's user keyring directly.
    """
    import subprocess  # the grading process's side only: workers start without it

    try:
        done = subprocess.run(
            [sys.executable, "-I", "-S", "-c", _SCRUB, package_root, str(int(uid))],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={},
            cwd="/",
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0
