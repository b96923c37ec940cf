"""Scoring: from the prepared tests and what the worker runs produced, to a submission's result.

:func:`score_submission` is a pure function: it reads nothing, starts nothing and takes no time
into account. Everything the workers did reaches it as a :class:`RunOutcome` (frozen; runs of
one submission combine with :meth:`RunOutcome.then`), so every way a submission can end (an
answer right or wrong, a missing function, a timeout in a cell or in a call, a crash, a refusal
to run without a promised protection) is scored by one table, tested on its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from types import MappingProxyType
from typing import Any

import numpy as np

from cnnlab.exercises.compare import compare
from cnnlab.exercises.measure import resource_verdict
from cnnlab.exercises.safetext import printable
from cnnlab.exercises.spec import Test

__all__ = [
    "SHOWN_HIDDEN_ERRORS",
    "raised_text",
    "TestResult",
    "SubmissionResult",
    "PreparedTest",
    "CallOutcome",
    "RunOutcome",
    "score_submission",
]

TEST_STATUSES = (
    "passed",
    "failed",
    "not_implemented",
    "missing",
    "error",
    "timeout",
    "memory",
    "crashed",
    "bad_answer",
)
SUBMISSION_STATUSES = ("ok", "error", "timeout", "memory", "crashed", "invalid")

#: The exception types a *hidden* test's feedback may name. The type and message of an
#: exception come from the student's process, which chooses them (a class can be named after
#: a hidden input): a hidden call that raised shows one of these names, exactly as written,
#: or "an exception", never the message. That bounds what a submission can pass out through
#: one hidden call to log2(len + 2), about 4.2 bits (a name, "an exception", or no raise).
SHOWN_HIDDEN_ERRORS = frozenset(
    {
        "ArithmeticError",
        "AssertionError",
        "AttributeError",
        "FloatingPointError",
        "ImportError",
        "IndexError",
        "KeyError",
        "LookupError",
        "ModuleNotFoundError",
        "NameError",
        "OverflowError",
        "RecursionError",
        "RuntimeError",
        "TypeError",
        "UnboundLocalError",
        "ValueError",
        "ZeroDivisionError",
    }
)
MAX_RAISED_MESSAGE = 300


@dataclass
class TestResult:
    """The outcome of one test for one submission (``status``: one of ``TEST_STATUSES``).

    ``raised`` says what the test's call raised, already bounded for what the feedback may
    show (:func:`raised_text`): ``"ValueError: the message"`` for a visible test, an
    allowlisted type name or ``"an exception"`` for a hidden one, ``""`` when it did not
    raise. ``failing_uses`` names the student functions this test calls (``Test.uses``) that
    fail at least one of their own tests.
    """

    name: str
    function: str
    hidden: bool
    max_score: float
    score: float
    passed: bool
    status: str
    message: str
    raised: str = ""
    failing_uses: list[str] = field(default_factory=list)


@dataclass
class SubmissionResult:
    """One submission's grade: its tests, notes, errors and the protections its worker had."""

    id: str
    path: str
    status: str  # one of SUBMISSION_STATUSES
    score: float
    max_score: float
    tests: list[TestResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cell_errors: list[str] = field(default_factory=list)
    isolation: list[str] = field(default_factory=list)
    protections: dict[str, str] = field(default_factory=dict)
    missing_protections: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0
    student_seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PreparedTest:
    """A test with its inputs drawn and its expected answer computed by the grading process;
    for a test with a ``time_factor``, the processor seconds its timing reference took here."""

    test: Test
    args: tuple
    kwargs: Mapping[str, Any]
    expected: np.ndarray
    reference_seconds: float | None = None


@dataclass(frozen=True)
class CallOutcome:
    """How one call ended: ``ok`` with its ``answer``, or a status from the worker with a detail.

    ``status`` is one of :data:`cnnlab.exercises.protocol.CALL_STATUSES`, or ``timeout`` (the
    grading process stopped the call). ``cpu_seconds`` and ``memory_growth``: what the
    supervisor measured of the call, where its test bounds them (:mod:`cnnlab.exercises.measure`);
    ``reference_seconds``: the timing reference timed again once the worker was gone (the
    slower of it and :attr:`PreparedTest.reference_seconds` is what the call is compared with).
    """

    status: str
    detail: str = ""
    answer: np.ndarray | None = None
    cpu_seconds: float = 0.0
    memory_growth: float = 0.0
    reference_seconds: float | None = None
    error_type: str = ""
    error_message: str = ""


def _frozen(mapping: Mapping) -> Mapping:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class RunOutcome:
    """What the worker runs of one submission produced, as the grading process saw it.

    Parameters
    ----------
    calls : mapping
        Call index (into the prepared tests) -> :class:`CallOutcome`, for the calls that ended.
    cell_errors : tuple of str
        ``"cell N: traceback"`` for each notebook cell that raised (first run only).
    notes : tuple of str
        Lines for the feedback's notes.
    had : mapping
        The protections the worker reported (protection -> detail).
    refused : tuple of str or None
        The promised protections a worker lacked, when it refused to run student code.
    memory : bool
        The worker ran out of memory (a cell's ``MemoryError``, or killed by the memory limit).
    timeout : str or None
        What ran out of time, and where: "the submission ran out of its 120 s in cell 7",
        "test `big_layer` (a call of `conv2d`) took longer than its 3 s"; None when nothing
        did.
    crashed : str or None
        How the worker ended early, when it did.
    student_seconds : float
        Seconds the student's cells and successful calls took.
    runs : int
        Worker runs (a call's timeout restarts the worker for the calls left).
    released : tuple of dict
        Each run's clean-up record (:meth:`cnnlab.exercises.workspace.Workspace.release`).
    """

    calls: Mapping[int, CallOutcome] = field(default_factory=lambda: _frozen({}))
    cell_errors: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    had: Mapping[str, str] = field(default_factory=lambda: _frozen({}))
    refused: tuple[str, ...] | None = None
    memory: bool = False
    timeout: str | None = None
    crashed: str | None = None
    student_seconds: float = 0.0
    runs: int = 0
    released: tuple[Mapping[str, str], ...] = ()

    def then(self, later: RunOutcome) -> RunOutcome:
        """This outcome followed by a later run's (a restart after a call's timeout).

        Calls, notes, seconds and runs add up; cell errors come from the first run only (a
        restarted worker has seen hidden inputs); the later run's isolation record, refusal,
        timeout and crash win.
        """
        return replace(
            later,
            calls=_frozen({**self.calls, **later.calls}),
            cell_errors=self.cell_errors if self.runs else later.cell_errors,
            notes=self.notes + later.notes,
            had=later.had if later.runs else self.had,
            memory=self.memory or later.memory,
            timeout=later.timeout or self.timeout,
            crashed=later.crashed or self.crashed,
            student_seconds=self.student_seconds + later.student_seconds,
            runs=self.runs + later.runs,
            released=self.released + later.released,
        )


def raised_text(hidden: bool, call: CallOutcome | None) -> str:
    """What the feedback may say a test's call raised ("" when it did not raise).

    Visible: the type and message, as the student's process reported them (escaped when
    shown). Hidden: the type only when it is exactly one of :data:`SHOWN_HIDDEN_ERRORS`, else
    "an exception"; never the message (both are chosen by the student's code, which has seen
    the hidden inputs).

    Examples
    --------
    >>> call = CallOutcome("error", "Traceback ...", error_type="ValueError", error_message="bad k")
    >>> raised_text(False, call), raised_text(True, call)
    ('ValueError: bad k', 'ValueError')
    >>> raised_text(True, CallOutcome("error", "", error_type="Input_7x7_seed42"))
    'an exception'
    >>> raised_text(True, CallOutcome("ok"))
    ''
    """
    if call is None or call.status != "error" or not call.error_type:
        return ""
    if hidden:
        return call.error_type if call.error_type in SHOWN_HIDDEN_ERRORS else "an exception"
    message = call.error_message
    if len(message) > MAX_RAISED_MESSAGE:
        message = message[:MAX_RAISED_MESSAGE] + "..."
    return f"{call.error_type[:100]}: {message}" if message else call.error_type[:100]


def _failing_uses(tests: Sequence[TestResult], prepared: Sequence[PreparedTest]) -> None:
    """Fill ``failing_uses`` of each test that did not pass: the functions in its ``uses``
    that fail at least one of their own tests."""
    failing = {t.function for t in tests if not t.passed}
    for result, item in zip(tests, prepared, strict=True):
        if result.passed or result.status in ("missing", "not_implemented"):
            continue
        result.failing_uses = [
            f for f in item.test.uses if f != item.test.function and f in failing
        ]


def _not_run(outcome: RunOutcome) -> tuple[str, str]:
    if outcome.timeout:
        return "timeout", "not run: " + outcome.timeout
    if outcome.crashed:
        return "crashed", "not run: " + outcome.crashed
    return "error", "not run"


def _test_status(prepared: PreparedTest, call: CallOutcome | None, outcome: RunOutcome):
    """(status, message) of one test, from how its call ended."""
    test = prepared.test
    if call is None:
        return _not_run(outcome)
    if call.status == "ok":
        passed, message = compare(test, prepared.expected, call.answer)
        if passed and (test.time_factor is not None or test.memory_limit_mb is not None):
            within, measured = resource_verdict(
                test.time_factor,
                test.memory_limit_mb,
                call.cpu_seconds,
                call.memory_growth,
                max(prepared.reference_seconds or 0.0, call.reference_seconds or 0.0),
            )
            if not within:
                return "failed", f"the answer is right, but {measured}"
            message = f"{message}; {measured}"
        return ("passed" if passed else "failed"), message
    if call.status == "missing":
        return "missing", f"{call.detail}: define `{test.function}` with this exact name"
    if call.status == "not_implemented":
        return (
            "not_implemented",
            f"`{test.function}` is not implemented yet (raise NotImplementedError())",
        )
    if call.status in ("error", "bad_answer") and test.hint_at(1):
        return call.status, f"{call.detail}\nHint: {test.hint_at(1)}"
    return call.status, call.detail


def score_submission(
    ident: str,
    path: str,
    prepared: Sequence[PreparedTest],
    outcome: RunOutcome,
    *,
    invalid: str | None = None,
    notes: Sequence[str] = (),
) -> SubmissionResult:
    """Score one submission: every test's status, message and points, and the overall status.

    Parameters
    ----------
    ident, path : str
        The submission's id and notebook path, as reported.
    prepared : sequence of PreparedTest
        The exercise's tests, in order, with their expected answers.
    outcome : RunOutcome
        What its worker runs produced (an empty one when none ran).
    invalid : str or None
        Why the notebook could not be read at all (then every test is an ``error`` with this
        message and the status is ``invalid``).
    notes : sequence of str
        Notes from reading the notebook, shown first.

    Returns
    -------
    SubmissionResult
        Score = the sum of the points of the passed tests. Status, in order of precedence:
        ``invalid``, ``error`` (a worker refused: not graded), ``timeout``, ``memory``,
        ``crashed``, ``error`` (a cell raised, or a test ended other than passed, failed or not
        implemented), else ``ok``.
    """
    max_score = float(sum(p.test.points for p in prepared))
    result = SubmissionResult(ident, path, "ok", 0.0, max_score, notes=[*notes, *outcome.notes])
    result.cell_errors = list(outcome.cell_errors)
    if outcome.refused:
        result.notes.append(
            "not graded: the worker lacked protections this grading mode promises: "
            + ", ".join(outcome.refused)
        )
        outcome = replace(outcome, crashed=None, timeout=None)
    for index, item in enumerate(prepared):
        call = None if invalid is not None else outcome.calls.get(index)
        if invalid is not None:
            status, message = "error", invalid
        else:
            status, message = _test_status(item, call, outcome)
        points = float(item.test.points)
        result.tests.append(
            TestResult(
                item.test.name,
                item.test.function,
                item.test.hidden,
                points,
                points if status == "passed" else 0.0,
                status == "passed",
                status,
                message,
                raised=raised_text(item.test.hidden, call),
            )
        )
    _failing_uses(result.tests, prepared)
    result.score = float(sum(t.score for t in result.tests))
    if invalid is not None:
        result.status = "invalid"
    elif outcome.refused:
        result.status = "error"
    elif outcome.timeout:
        result.status = "timeout"
        result.notes.append(outcome.timeout)
    elif outcome.memory or any(t.status == "memory" for t in result.tests):
        result.status = "memory"
    elif outcome.crashed:
        result.status = "crashed"
        result.notes.append(outcome.crashed)
    elif result.cell_errors or any(
        t.status not in ("passed", "failed", "not_implemented") for t in result.tests
    ):
        result.status = "error"
    result.student_seconds = outcome.student_seconds
    return _printable_result(result)


def _printable_result(result: SubmissionResult) -> SubmissionResult:
    """Every text of ``result`` writable as UTF-8 (a notebook or a message may hold lone
    surrogates, which would stop a report from being written)."""
    result.id, result.path = printable(result.id), printable(result.path)
    result.notes = [printable(n) for n in result.notes]
    result.cell_errors = [printable(e) for e in result.cell_errors]
    for test in result.tests:
        test.message = printable(test.message)
        test.raised = printable(test.raised)
    return result
