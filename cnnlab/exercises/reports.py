"""Reports of a grading run: ``grades.csv``, feedback per submission, Gradescope JSON.

Layout of the report folder ``DIR``::

    DIR/grades.csv                    one row per submission: id (verbatim), status, each test, total
    DIR/feedback/<name>.md            what the student reads
    DIR/results/<name>/results.json   Gradescope's format (score, tests[], output as plain text)
    DIR/files.json                    id -> its feedback and results files
    DIR/isolation.json                the protections each worker ran with

``<name>`` is the id made safe for a file name (:func:`report_names`): unique even where two
ids differ only in characters a file name cannot hold (``alice smith``, ``alice_smith``) or in
case, so one student's feedback can never overwrite another's; ``files.json`` records which
file is whose.

All of it is written by the grading process after the workers are gone.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import warnings
from pathlib import Path

from cnnlab.exercises import protections
from cnnlab.exercises.grading import Limits, SubmissionResult, grade_submissions
from cnnlab.exercises.safetext import code_span, visible
from cnnlab.exercises.scoring import TestResult
from cnnlab.exercises.spec import Exercise, load_exercise

__all__ = [
    "grade",
    "write_reports",
    "report_names",
    "write_gradescope_results",
    "feedback_markdown",
    "gradescope_json",
    "isolation_report",
    "raised_lines",
    "dependency_notes",
]

HIDDEN_FEEDBACK = ("names", "none")


MAX_NAME_BYTES = 200  # file names stay under the usual 255-byte limit, with ".md" and "-N"


def _safe_name(ident: str) -> str:
    """``ident`` with every character but letters, digits, ``-``, ``_`` and ``.`` replaced, no
    leading dot, and at most ``MAX_NAME_BYTES`` bytes (a long one ends in a hash of the id)."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in ident).lstrip(".")
    cleaned = cleaned or "submission"
    if len(cleaned.encode()) > MAX_NAME_BYTES:
        digest = hashlib.sha256(ident.encode("utf-8", "backslashreplace")).hexdigest()[:12]
        head = cleaned.encode()[: MAX_NAME_BYTES - 13].decode("utf-8", "ignore")
        cleaned = f"{head}-{digest}"
    return cleaned


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` as UTF-8; anything UTF-8 cannot encode is escaped, never an error."""
    path.write_text(text, encoding="utf-8", errors="backslashreplace")


def report_names(ids: list[str]) -> dict[str, str]:
    """A file name stem for each id, unique over ``ids`` ignoring case.

    An id that is already a safe name keeps it; the others get their safe form, with ``-2``,
    ``-3``, ... added where that is taken. Ids are processed in sorted order, so the names do
    not depend on the order of ``ids``.
    """
    ordered = sorted(set(ids))
    names: dict[str, str] = {}
    taken: set[str] = set()
    for ident in ordered:  # ids that need no change first: they keep their own name
        if _safe_name(ident) == ident and ident.casefold() not in taken:
            names[ident] = ident
            taken.add(ident.casefold())
    for ident in ordered:
        if ident in names:
            continue
        base = _safe_name(ident)
        name, count = base, 1
        while name.casefold() in taken:
            count += 1
            name = f"{base}-{count}"
        names[ident] = name
        taken.add(name.casefold())
    return names


def _fence(text: str) -> str:
    return "```\n" + visible(text).replace("```", "'''") + "\n```"


def _note(text: str) -> str:
    """A note on one Markdown line: control characters and line breaks escaped (what came from
    the submission is already in code spans)."""
    return visible(text).replace("\n", "\\n").replace("\t", " ")


def _plain(text: str) -> str:
    """Student text for a plain-text report, on one line: control characters escaped."""
    return _note(text)


def _shows(test: TestResult, hidden_feedback: str) -> bool:
    """Whether the feedback shows anything of ``test`` beyond the hidden total."""
    return not test.hidden or hidden_feedback == "names"


def _raised(test: TestResult, hidden_feedback: str, quote) -> str:
    """ "the call raised ..." for a test whose call raised and whose feedback may say so."""
    if not test.raised or not _shows(test, hidden_feedback):
        return ""
    # A hidden test's `raised` is an allowlisted builtin name or "an exception" (scoring);
    # a visible test's is the student's own type and message, quoted.
    return "the call raised " + (test.raised if test.hidden else quote(test.raised))


def raised_lines(result: SubmissionResult, hidden_feedback: str = "names", quote=_plain):
    """One line per test whose call raised, as the feedback may show it:
    ``test `corr2d_identity` (visible): the call raised ValueError: ...``.

    Visible tests show the exception's type and message (through ``quote``, which escapes
    them); hidden ones an allowlisted builtin type name at most, and nothing with
    ``hidden_feedback="none"``. Never an input.
    """
    lines = []
    for test in result.tests:
        text = _raised(test, hidden_feedback, quote)
        if text:
            kind = "hidden" if test.hidden else "visible"
            lines.append(f"test {code_span(test.name)} ({kind}): {text}")
    return lines


def dependency_notes(
    test: TestResult, result: SubmissionResult, hidden_feedback: str = "names"
) -> list[str]:
    """For a failing ``test`` that calls other student functions which fail their own tests:
    "this test calls `f`, which fails its own tests (`a`, `b`): fix that first".

    Hidden tests are named only with ``hidden_feedback="names"``; with ``"none"``, a function
    that fails only hidden tests is not mentioned, and hidden tests get no note.
    """
    if test.passed or not _shows(test, hidden_feedback):
        return []
    notes = []
    for function in test.failing_uses:
        names = [
            t.name
            for t in result.tests
            if t.function == function and not t.passed and _shows(t, hidden_feedback)
        ]
        if not names:
            continue
        shown = ", ".join(code_span(n) for n in names[:4])
        if len(names) > 4:
            shown += f" and {len(names) - 4} more"
        notes.append(
            f"this test calls {code_span(function)}, which fails its own tests ({shown}): "
            "fix that first"
        )
    return notes


def feedback_markdown(
    result: SubmissionResult, exercise: Exercise, hidden_feedback: str = "names"
) -> str:
    """The student's feedback: every visible test with its message; hidden ones as asked."""
    lines = [
        f"# Feedback: {exercise.name}, submission {code_span(result.id)}",
        "",
        f"**Score: {result.score:g} / {result.max_score:g}** (status: {result.status})",
        "",
    ]
    raised = raised_lines(result, hidden_feedback, quote=code_span)
    if raised:
        lines += ["## Calls that raised", ""] + [f"- {line}" for line in raised] + [""]
    lines += ["## Visible tests", ""]
    for test in (t for t in result.tests if not t.hidden):
        mark = "PASS" if test.passed else "FAIL"
        lines.append(f"- **{mark}** `{test.name}` ({test.score:g}/{test.max_score:g})")
        if not test.passed:
            lines += ["", _fence(test.message), ""]
            for note in dependency_notes(test, result, hidden_feedback):
                lines += [f"  {note[0].upper()}{note[1:]}.", ""]
    hidden = [t for t in result.tests if t.hidden]
    if hidden and hidden_feedback == "names":
        lines += ["", "## Hidden tests", ""]
        for t in hidden:
            extra = [_raised(t, hidden_feedback, code_span)]
            extra += dependency_notes(t, result, hidden_feedback)
            said = "; ".join(e for e in extra if e)
            lines.append(
                f"- **{'PASS' if t.passed else 'FAIL'}** `{t.name}` ({t.score:g}/{t.max_score:g})"
                + (f": {said}" if said else "")
            )
    elif hidden:
        earned, possible = sum(t.score for t in hidden), sum(t.max_score for t in hidden)
        lines += ["", f"Hidden tests: {earned:g} / {possible:g} points."]
    if result.cell_errors:
        lines += ["", "## Errors while running your notebook", ""]
        lines += [_fence(e) for e in result.cell_errors[:10]]
    if result.notes:
        lines += ["", "## Notes", ""] + [f"- {_note(n)}" for n in result.notes[:30]]
    return "\n".join(lines) + "\n"


def gradescope_json(result: SubmissionResult, hidden_feedback: str = "names") -> dict:
    """Gradescope's ``results.json`` for one submission."""
    tests = []
    for test in result.tests:
        raised = _raised(test, hidden_feedback, _plain)
        notes = dependency_notes(test, result, hidden_feedback)
        if test.hidden:
            output = "passed" if test.passed else "failed"
            output = "\n".join([output, *filter(None, [raised]), *notes])
            visibility = "after_published" if hidden_feedback == "names" else "hidden"
        else:
            output = "\n".join([*filter(None, [raised]), test.message, *notes])
            visibility = "visible"
        output = visible(output)  # student text: control characters as escapes, never sent
        tests.append(
            {
                "name": test.name,
                "score": test.score,
                "max_score": test.max_score,
                "status": "passed" if test.passed else "failed",
                "output": output,
                "output_format": "text",
                "visibility": visibility,
            }
        )
    notes = [f"status: {result.status}", *raised_lines(result, hidden_feedback)]
    notes += result.notes[:20] + result.cell_errors[:5]
    return {
        "score": result.score,
        "output": visible("\n".join(notes)),
        "output_format": "text",
        "test_output_format": "text",
        "tests": tests,
    }


def write_reports(
    results: list[SubmissionResult],
    exercise: Exercise,
    out_dir: str | Path,
    hidden_feedback: str = "names",
    network: bool = False,
) -> Path:
    """Write ``grades.csv``, ``feedback/*.md``, ``results/*/results.json``, ``files.json`` and
    ``isolation.json``; ids must be unique (:func:`cnnlab.exercises.grading.find_submissions`
    makes them so).

    ``network`` says the run left the network reachable (``--allow-network``), so
    ``isolation.json`` does not count the network namespace as promised.
    """
    if hidden_feedback not in HIDDEN_FEEDBACK:
        raise ValueError(
            f"hidden_feedback must be one of {HIDDEN_FEEDBACK}, got {hidden_feedback!r}"
        )
    out = Path(out_dir)
    (out / "feedback").mkdir(parents=True, exist_ok=True)
    (out / "results").mkdir(exist_ok=True)
    names = [t.name for t in exercise.tests]
    with open(
        out / "grades.csv", "w", newline="", encoding="utf-8", errors="backslashreplace"
    ) as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "status", *names, "total", "max_score"])
        for result in results:
            scores = {t.name: t.score for t in result.tests}
            writer.writerow(
                [
                    result.id,
                    result.status,
                    *(f"{scores.get(n, 0.0):g}" for n in names),
                    f"{result.score:g}",
                    f"{result.max_score:g}",
                ]
            )
    ids = [result.id for result in results]
    if len(set(ids)) != len(ids):
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"submission ids must be unique; repeated: {repeated}")
    names = report_names(ids)
    files: dict[str, dict[str, str]] = {}
    for result in results:
        name = names[result.id]
        files[result.id] = {
            "feedback": f"feedback/{name}.md",
            "results": f"results/{name}/results.json",
        }
        try:
            _write_text(
                out / files[result.id]["feedback"],
                feedback_markdown(result, exercise, hidden_feedback),
            )
            (out / "results" / name).mkdir(exist_ok=True)
            text = json.dumps(gradescope_json(result, hidden_feedback), indent=1) + "\n"
            _write_text(out / files[result.id]["results"], text)
        except (OSError, ValueError) as error:  # one submission's files; the others go on
            files[result.id]["error"] = f"{type(error).__name__}: {error}"
            warnings.warn(f"reports of {result.id!r} not written: {error}", stacklevel=2)
    _write_text(out / "files.json", json.dumps(files, indent=1, ensure_ascii=False) + "\n")
    report = isolation_report(results, network)
    _write_text(out / "isolation.json", json.dumps(report, indent=1) + "\n")
    return out


def isolation_report(results: list[SubmissionResult], network: bool = False) -> dict:
    """``isolation.json``: the table of protections, and what each submission's worker had.

    ``mode`` is ``root`` or ``user``; ``promised`` the protections that mode promises;
    ``protections`` every protection of the table with its mechanism; ``submissions`` maps
    each id to ``had`` (protection -> detail, ``*_error`` entries saying why one failed) and
    ``missing`` (promised, not had). A submission whose worker never ran (an unreadable
    notebook) has an empty ``had`` and no ``missing``.
    """
    run_mode = protections.mode()
    return {
        "mode": run_mode,
        "promised": list(protections.promised(run_mode, network=network)),
        "protections": {p.name: p.mechanism for p in protections.PROTECTIONS},
        "submissions": {
            r.id: {"had": r.protections, "missing": r.missing_protections} for r in results
        },
    }


def grade(
    exercise_dir: str | Path,
    submissions: list[str | Path],
    out_dir: str | Path,
    *,
    limits: Limits | None = None,
    jobs: int | None = None,
    hidden_feedback: str = "names",
    progress: bool = True,
    gradescope_results: str | Path | None = None,
    allow_weak_isolation: bool = False,
) -> list[SubmissionResult]:
    """Grade ``submissions`` of the exercise ``exercise_dir``; write the reports to ``out_dir``.

    ``gradescope_results``, when given, also receives the ``results.json`` of the single
    submission (the ``run_autograder`` use: ``/autograder/results/results.json``).
    Without ``allow_weak_isolation``, a run that cannot give every worker the protections its
    mode promises raises :class:`cnnlab.exercises.grading.IsolationError` and writes nothing.
    """
    exercise = load_exercise(exercise_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = grade_submissions(
        exercise,
        submissions,
        limits=limits,
        jobs=jobs,
        out_dir=out,
        progress=progress,
        allow_weak_isolation=allow_weak_isolation,
    )
    network = limits.network if limits is not None else False
    write_reports(results, exercise, out, hidden_feedback, network)
    if gradescope_results is not None:
        write_gradescope_results(results, gradescope_results, hidden_feedback)
    return results


def write_gradescope_results(
    results: list[SubmissionResult], target: str | Path, hidden_feedback: str = "names"
) -> None:
    """Write the one submission's ``results.json`` at ``target`` (replaced atomically): the
    ``run_autograder`` use, ``/autograder/results/results.json``."""
    if len(results) != 1:
        raise ValueError(f"gradescope_results needs exactly one submission, got {len(results)}")
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    _write_text(tmp, json.dumps(gradescope_json(results[0], hidden_feedback), indent=1) + "\n")
    os.replace(tmp, target)
