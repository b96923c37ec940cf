"""A grading run's journal: every finished submission, on disk the moment it is graded.

A run over a large class may be interrupted (a closed laptop, a lost connection to the
cluster). The journal ``DIR/journal.jsonl`` makes the next run with the same report folder
``DIR`` grade only what is missing. It is a JSON Lines file, appended to and never rewritten::

    {"journal": "cnnlab grade", "version": 1, "exercise": NAME, "digest": SHA256, "settings": {...}}
    {"id": ID, "sha256": SHA256 of the notebook, "result": SubmissionResult.as_dict(), ...}
    ...

Each line is written with a single ``write`` and ``fsync``-ed before the run goes on, so a run
killed at any moment leaves whole lines and at most one torn last line, which the reader drops
(and cuts off, so the next line starts on its own). The header names the exercise and the
digest of its files, and the settings that change a grade (the limits): a journal of another
exercise, or of other limits, is refused with :class:`JournalError`, never mixed in. One run at
a time holds the journal (an exclusive ``flock``).

A submission is taken from the journal when its id and its notebook's bytes (SHA-256) are
those of a journaled result; a notebook changed since is graded again, and the later line wins.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cnnlab.exercises.scoring import SubmissionResult, TestResult

__all__ = ["Journal", "JournalError", "JOURNAL_NAME", "result_from_dict", "sha256_hex"]

JOURNAL_NAME = "journal.jsonl"
_KIND, _VERSION = "cnnlab grade", 1


class JournalError(ValueError):
    """The report folder's journal belongs to another run (exercise or limits), or is in use."""


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of ``data`` in hex.

    Examples
    --------
    >>> sha256_hex(b"")[:16]
    'e3b0c44298fc1c14'
    """
    return hashlib.sha256(data).hexdigest()


def result_from_dict(data: dict[str, Any]) -> SubmissionResult:
    """Rebuild a :class:`SubmissionResult` from its ``as_dict()`` (plain data, as JSON holds it).

    Examples
    --------
    >>> r = SubmissionResult("alice", "a.ipynb", "ok", 1.0, 2.0,
    ...                      tests=[TestResult("t", "f", False, 1.0, 1.0, True, "passed", "")])
    >>> result_from_dict(json.loads(json.dumps(r.as_dict()))) == r
    True
    """
    fields = dict(data)
    fields["tests"] = [TestResult(**test) for test in fields.get("tests", [])]
    return SubmissionResult(**fields)


class Journal:
    """The journal of the report folder ``out_dir`` (see the module's docstring).

    Parameters
    ----------
    out_dir : path
        The report folder; the journal is ``out_dir/journal.jsonl``.
    exercise : str
        The exercise's name.
    digest : str
        The SHA-256 of the exercise's files (:func:`cnnlab.exercises.cluster.exercise_bundle`).
    settings : dict
        Plain data that changes a grade (the limits); a journal with other settings is refused.

    Raises
    ------
    JournalError
        The journal belongs to another exercise or other settings, or another run holds it.
    """

    def __init__(
        self, out_dir: str | Path, *, exercise: str, digest: str, settings: dict[str, Any]
    ) -> None:
        self.path = Path(out_dir) / JOURNAL_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.header = {
            "journal": _KIND,
            "version": _VERSION,
            "exercise": exercise,
            "digest": digest,
            "settings": settings,
        }
        self.entries: dict[str, dict[str, Any]] = {}
        self.ignored = 0  # unreadable lines before the last (a damaged file)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise JournalError(
                    f"{self.path} is in use by another grading run; wait for it to end, or "
                    "grade into another --out"
                ) from None
            self._load()
        except BaseException:
            os.close(self._fd)
            raise

    def _load(self) -> None:
        with open(self.path, "rb") as handle:
            data = handle.read()
        end = data.rfind(b"\n") + 1
        if end < len(data):  # a torn last line: cut it off, so the next line starts whole
            os.ftruncate(self._fd, end)
            os.fsync(self._fd)
            data = data[:end]
        lines = data.splitlines()
        header = _parse(lines[0]) if lines else None
        if not lines:  # new, or only a torn header: start it
            self._append(self.header)
            return
        if header is None or header.get("journal") != _KIND:
            raise JournalError(
                f"{self.path} is not a cnnlab grading journal; grade into another --out"
            )
        self._check(header)
        for line in lines[1:]:
            entry = _parse(line)
            if entry is None or not isinstance(entry.get("id"), str) or "result" not in entry:
                self.ignored += 1
                continue
            self.entries[entry["id"]] = entry

    def _check(self, header: dict[str, Any]) -> None:
        mine = self.header
        if header.get("version") != _VERSION:
            raise JournalError(
                f"{self.path} is a version {header.get('version')} journal; this cnnlab writes "
                f"version {_VERSION}: grade into another --out, or delete it to start over"
            )
        if (header.get("exercise"), header.get("digest")) != (mine["exercise"], mine["digest"]):
            raise JournalError(
                f"{self.path} is the journal of exercise {header.get('exercise')!r} (files "
                f"{str(header.get('digest'))[:12]}), not of {mine['exercise']!r} (files "
                f"{mine['digest'][:12]}): its grades cannot be mixed with these. Grade into "
                "another --out, or delete the journal to grade every submission again"
            )
        if header.get("settings") != mine["settings"]:
            theirs, ours = header.get("settings") or {}, mine["settings"]
            changed = sorted(k for k in {*theirs, *ours} if theirs.get(k) != ours.get(k))
            what = ", ".join(f"{k} {theirs.get(k)!r} then, {ours.get(k)!r} now" for k in changed)
            raise JournalError(
                f"{self.path} was written with other limits ({what}): grades under other "
                "limits cannot be mixed. Rerun with the same options, grade into another "
                "--out, or delete the journal to grade every submission again"
            )

    def _append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        written = os.write(self._fd, line)
        while written < len(line):  # a short write (rare): finish the line
            written += os.write(self._fd, line[written:])
        os.fsync(self._fd)

    def done(self, ident: str, sha256: str | None) -> SubmissionResult | None:
        """The journaled result of ``ident`` when its notebook had these bytes, else None."""
        entry = self.entries.get(ident)
        if entry is None or entry.get("sha256") != sha256:
            return None
        return result_from_dict(entry["result"])

    def record(self, result: SubmissionResult, sha256: str | None, **extra: Any) -> None:
        """Append ``result`` (of the notebook whose bytes hash to ``sha256``), durably.

        ``extra`` (plain data: the run, the worker that graded it) is stored beside it.
        """
        entry = {"id": result.id, "sha256": sha256, **extra, "result": result.as_dict()}
        self._append(entry)
        self.entries[result.id] = entry

    def close(self) -> None:
        """Release the journal (its lock)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
