"""Parent-side checks of an answer against the expected array, with feedback that teaches.

Runs in the grading process only, with its own NumPy: nothing the student's code patched in the
worker reaches it. The answer arrives as a plain ``.npy`` file read with ``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat

import numpy as np

from cnnlab.exercises.spec import Test

__all__ = ["read_answer", "compare", "MAX_ANSWER_BYTES"]

MAX_ANSWER_BYTES = 256 * 1024 * 1024


def read_answer(directory_fd: int, name: str, sha256: str | None = None) -> np.ndarray:
    """Read ``name`` (a plain file in the directory ``directory_fd``) as a numeric array.

    Symbolic links, non-regular files, oversized files, pickled or object arrays and
    non-numeric dtypes are refused with ``ValueError``; so is a file whose SHA-256 is not
    ``sha256`` (when given: the digest the worker's supervisor took when the call ended).
    """
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=directory_fd)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("the answer file is not a regular file")
        if info.st_size > MAX_ANSWER_BYTES:
            raise ValueError(f"the answer file is {info.st_size} bytes, over the limit")
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(MAX_ANSWER_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_ANSWER_BYTES:
        raise ValueError("the answer file is over the size limit")
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError("the answer file was changed after its call ended")
    array = np.load(io.BytesIO(data), allow_pickle=False)
    if not isinstance(array, np.ndarray) or type(array) is not np.ndarray:
        raise ValueError("the answer is not a plain array")
    if array.dtype.kind not in "biuf":
        raise ValueError(f"the answer has dtype {array.dtype}, not a number type")
    return array


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def compare(
    test: Test, expected: np.ndarray, got: np.ndarray, hint_level: int = 1
) -> tuple[bool, str]:
    """Compare ``got`` with ``expected`` as ``test`` says; return (passed, feedback message).

    A failure's message ends with the test's hint of level ``hint_level`` (1, the nudge, unless
    the student asked for more: see :meth:`Test.hint_at`).

    Examples
    --------
    >>> t = Test("t", "f", (), reference=None, hint="check the loop bounds")
    >>> compare(t, np.zeros((2, 2)), np.zeros((2, 3)))[1]
    'expected shape (2, 2), got (2, 3). Hint: check the loop bounds'
    >>> print(compare(t, np.zeros((2, 2)), np.eye(2))[1])
    2 of 4 values differ; first at index (0, 0): expected 0, got 1. Hint: check the loop bounds
    """
    text = test.hint_at(hint_level)
    hint = f" Hint: {text}" if text else ""
    expected = np.asarray(expected, dtype=float)
    got = np.asarray(got, dtype=float)
    if got.shape != expected.shape:
        return False, f"expected shape {expected.shape}, got {got.shape}.{hint}"
    if test.exact:
        same = got == expected
    else:
        same = np.isclose(got, expected, rtol=test.rtol, atol=test.atol)
    if bool(np.all(same)):
        return True, f"passed (shape {got.shape})"
    if expected.ndim == 0:
        return False, f"expected {_fmt(expected)}, got {_fmt(got)}.{hint}"
    bad = np.argwhere(~same)
    where = tuple(int(i) for i in bad[0])
    return False, (
        f"{len(bad)} of {same.size} values differ; first at index {where}: "
        f"expected {_fmt(expected[where])}, got {_fmt(got[where])}.{hint}"
    )
