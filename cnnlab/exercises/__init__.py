"""Exercises: the format, release to students, self-check, sandboxed grading and reports.

``check`` runs in a student's notebook; ``release`` and ``grade`` are the instructor's
(the ``cnnlab release`` and ``cnnlab grade`` commands). Names load on first use, so that the
grading worker starts fast.
"""

from __future__ import annotations

import importlib

__all__ = [
    "check",
    "release",
    "grade",
    "grade_submissions",
    "load_exercise",
    "Test",
    "Limits",
    "IsolationError",
]

_WHERE = {
    "check": "cnnlab.exercises.selfcheck",
    "release": "cnnlab.exercises.releasing",
    "grade": "cnnlab.exercises.reports",
    "grade_submissions": "cnnlab.exercises.grading",
    "Limits": "cnnlab.exercises.grading",
    "IsolationError": "cnnlab.exercises.protections",
    "load_exercise": "cnnlab.exercises.spec",
    "Test": "cnnlab.exercises.spec",
}


def __getattr__(name: str) -> object:
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cnnlab.exercises' has no attribute {name!r}")
