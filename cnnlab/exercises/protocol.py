"""The messages of a grading run, typed: one definition shared by every process that speaks them.

Three processes talk over pipes, one JSON object per line:

- the *supervisor* (trusted, :mod:`cnnlab.exercises.supervisor`) writes **events** to the
  grading process (:mod:`cnnlab.exercises.grading`): :class:`Ready`, :class:`Refused`,
  :class:`CellStarted`, :class:`CellError`, :class:`CellsDone`, :class:`Note`, :class:`Begin`,
  :class:`End` and :class:`Done`;
- the *student process* (:mod:`cnnlab.exercises.student`, beside student code) writes
  **replies** to the supervisor: :class:`Limits` (before any student code), the cell messages,
  and :class:`Reply` to each call, carrying the call's nonce.

:func:`encode` turns a message into one line; :func:`decode` turns a line back into a message,
or ``None`` when the line is not a well-formed message of a known kind. Decoding checks every
field's type and bounds every string, so a reader never trusts what a line claims to be: a
student process can write any bytes to its reply pipe, and only well-formed replies count.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, get_type_hints

from cnnlab.exercises.safetext import printable

__all__ = [
    "CALL_STATUSES",
    "Ready",
    "Refused",
    "CellStarted",
    "CellError",
    "CellsDone",
    "Note",
    "Begin",
    "End",
    "Done",
    "Limits",
    "Reply",
    "Message",
    "encode",
    "decode",
    "printable",
]

#: How a call can end, as the student process reports it (``bad_answer``: the returned value
#: could not be saved as a numeric array).
CALL_STATUSES = ("ok", "missing", "not_implemented", "memory", "error", "bad_answer")
MAX_TEXT = 1500


@dataclass(frozen=True)
class Ready:
    """The worker is isolated and every required protection is in force (supervisor)."""

    kind: ClassVar[str] = "ready"
    isolation: dict[str, str]


@dataclass(frozen=True)
class Refused:
    """The worker lacks protections the run requires: no student code ran (supervisor)."""

    kind: ClassVar[str] = "refused"
    isolation: dict[str, str]
    missing: list[str]


@dataclass(frozen=True)
class CellStarted:
    """The notebook's cell ``cell`` (its index in the submission) starts running."""

    kind: ClassVar[str] = "cell_started"
    cell: int


@dataclass(frozen=True)
class CellError:
    """A notebook cell raised: the traceback from the student's frames on."""

    kind: ClassVar[str] = "cell"
    cell: int
    error: str
    memory: bool = False


@dataclass(frozen=True)
class CellsDone:
    """Every cell has run; ``seconds`` they took together."""

    kind: ClassVar[str] = "cells_done"
    seconds: float


@dataclass(frozen=True)
class Note:
    """A line for the feedback's notes (a module that could not be preloaded)."""

    kind: ClassVar[str] = "note"
    text: str


@dataclass(frozen=True)
class Begin:
    """The call ``call`` (index into the exercise's tests) is sent to the student process."""

    kind: ClassVar[str] = "begin"
    call: int


@dataclass(frozen=True)
class End:
    """The call ``call`` ended: its status, and for ``ok`` the SHA-256 of its answer file.

    Where the test bounds them (:mod:`cnnlab.exercises.measure`), ``cpu_seconds`` is the
    processor time the student's processes used during the call and ``memory_growth`` the
    bytes the student process's resident memory rose at its peak (``-1``: not measurable).
    """

    kind: ClassVar[str] = "end"
    call: int
    status: str
    seconds: float = 0.0
    sha256: str = ""
    detail: str = ""
    cpu_seconds: float = 0.0
    memory_growth: float = 0.0
    error_type: str = ""
    error_message: str = ""


@dataclass(frozen=True)
class Done:
    """Every call has ended and the student's processes are gone (supervisor)."""

    kind: ClassVar[str] = "done"
    keys_cleared: bool = False


@dataclass(frozen=True)
class Limits:
    """The student process's first line, before any student code: what it set up."""

    kind: ClassVar[str] = "limits"
    address_space: bool
    keyrings_blocked: bool
    forbidden: dict[str, Any]
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Reply:
    """The student process's answer to the call that carried ``nonce``; for a call that raised
    (``error``), the exception's type name and message too (untrusted: the student's code
    chooses both, and may write any reply)."""

    kind: ClassVar[str] = "reply"
    nonce: str
    status: str
    detail: str = ""
    error_type: str = ""
    error_message: str = ""


Message = (
    Ready
    | Refused
    | CellStarted
    | CellError
    | CellsDone
    | Note
    | Begin
    | End
    | Done
    | Limits
    | Reply
)
_KINDS = {
    cls.kind: cls
    for cls in (Ready, Refused, CellStarted, CellError, CellsDone, Note, Begin, End, Done)
    + (Limits, Reply)
}
_HINTS = {cls: get_type_hints(cls) for cls in _KINDS.values()}


def encode(message: Message) -> bytes:
    """One line of JSON: ``{"e": kind, "t": monotonic time, ...fields}`` and a newline."""
    body = {"e": message.kind, "t": time.monotonic()}
    body.update({f.name: getattr(message, f.name) for f in fields(message)})
    return (json.dumps(body, default=str) + "\n").encode()


def _check(value: object, hint: object) -> object:
    """``value`` if it has the type ``hint`` says (strings are cut to ``MAX_TEXT``), else raise."""
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 1 << 31:
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
            if math.isfinite(number):
                return number
    elif hint is str:
        if isinstance(value, str):
            return printable(value[-MAX_TEXT:] if len(value) > MAX_TEXT else value)
    elif hint == dict[str, str]:
        if isinstance(value, dict):
            items = list(value.items())[:60]
            return {printable(str(k)[:40]): printable(str(v)[:200]) for k, v in items}
    elif hint == dict[str, Any]:
        if isinstance(value, dict):
            return dict(list(value.items())[:20])
    elif hint == list[str]:
        if isinstance(value, list):
            return [printable(str(item)[:500]) for item in value[:60]]
    raise TypeError(f"expected {hint}, got {type(value).__name__}")


def decode(line: bytes | str) -> Message | None:
    """The message one line holds, or ``None`` when it is not a well-formed known message."""
    try:
        body = json.loads(line)
        cls = _KINDS[body["e"]]
        hints = _HINTS[cls]
        values = {}
        for spec in fields(cls):
            if spec.name in body:
                values[spec.name] = _check(body[spec.name], hints[spec.name])
        message = cls(**values)
    except (ValueError, TypeError, KeyError):
        return None
    if isinstance(message, (End, Reply)) and message.status not in CALL_STATUSES:
        return None
    return message
