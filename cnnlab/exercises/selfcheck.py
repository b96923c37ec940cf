"""Self-check: run an exercise's visible tests inside the student's own notebook.

In the student notebook a cell such as ``check("corr2d", corr2d)`` runs every visible test of
that function and prints a pass/fail report with points. This is advice for the student, not a
grade: grading happens elsewhere (``cnnlab grade``), in an isolated worker.

The visible tests are found in the notebook's folder: ``visible_tests.json`` and
``visible_tests.npz`` written by ``cnnlab release``, or, in the instructor's folder,
``tests.py`` itself.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cnnlab.exercises import plaindata
from cnnlab.exercises.compare import compare
from cnnlab.exercises.spec import Test, draw_inputs, load_exercise

__all__ = ["check", "write_visible_tests", "VISIBLE_JSON", "VISIBLE_NPZ"]

VISIBLE_JSON, VISIBLE_NPZ = "visible_tests.json", "visible_tests.npz"


def write_visible_tests(tests: list[Test], folder: Path) -> None:
    """Store the visible tests (inputs and expected answers, as plain data) in ``folder``."""
    arrays: dict[str, np.ndarray] = {}
    entries = []

    def store(key: str, array: np.ndarray) -> str:
        arrays[key] = array
        return key

    def encode(value: object, key: str) -> dict:
        return plaindata.encode(value, key, store)

    for number, test in enumerate(t for t in tests if not t.hidden):
        args, kwargs = draw_inputs(test)
        arrays[f"expected{number}"] = np.asarray(test.reference(*args, **kwargs), dtype=float)
        entries.append(
            {
                "name": test.name,
                "function": test.function,
                "points": test.points,
                "args": encode(tuple(args), f"arg{number}"),
                "kwargs": {k: encode(v, f"kw{number}_{k}") for k, v in kwargs.items()},
                "expected": f"expected{number}",
                "rtol": test.rtol,
                "atol": test.atol,
                "exact": test.exact,
                "hint": test.hint,
                "description": test.description,
                "uses": list(test.uses),
            }
        )
    (folder / VISIBLE_JSON).write_text(json.dumps({"tests": entries}, indent=1) + "\n")
    np.savez_compressed(folder / VISIBLE_NPZ, **arrays)


def _load_visible(folder: Path) -> list[tuple[Test, tuple, dict, np.ndarray]]:
    if (folder / VISIBLE_JSON).is_file():
        spec = json.loads((folder / VISIBLE_JSON).read_text())
        with np.load(folder / VISIBLE_NPZ, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}

        def decode(value: dict) -> object:
            return plaindata.decode(value, arrays)

        loaded = []
        for entry in spec["tests"]:
            test = Test(
                entry["name"],
                entry["function"],
                (),
                reference=None,
                points=entry["points"],
                rtol=entry["rtol"],
                atol=entry["atol"],
                exact=entry["exact"],
                hint=entry["hint"],
                description=entry["description"],
                uses=tuple(entry.get("uses", ())),
            )
            kwargs = {k: decode(v) for k, v in entry["kwargs"].items()}
            loaded.append((test, decode(entry["args"]), kwargs, arrays[entry["expected"]]))
        return loaded
    if (folder / "tests.py").is_file():
        loaded = []
        for test in load_exercise(folder).visible:
            args, kwargs = draw_inputs(test)
            expected = np.asarray(test.reference(*args, **kwargs), dtype=float)
            loaded.append((test, args, kwargs, expected))
        return loaded
    raise FileNotFoundError(
        f"no {VISIBLE_JSON} or tests.py in {folder}: open the notebook from its exercise folder"
    )


def _run_one(test: Test, function: Callable, args, kwargs, expected, level: int):
    """(passed, message) of one visible test on the student's ``function``."""
    try:
        got = function(*plaindata.copy_value(args), **plaindata.copy_value(kwargs))
        answer = np.asarray(got)
        if answer.dtype.kind not in "biuf":
            raise TypeError(f"returned {type(got).__name__}, not an array of numbers")
        return compare(test, expected, answer, hint_level=level)
    except NotImplementedError:
        return False, "not implemented yet"
    except Exception as error:  # noqa: BLE001 (report any student error)
        hint = test.hint_at(level)
        return False, f"raised {type(error).__name__}: {error}" + (f" Hint: {hint}" if hint else "")


def _failing_tests(name: str, function: object, loaded: list) -> list[str]:
    """The visible tests of ``name`` that ``function`` fails (run quietly)."""
    if not callable(function):
        return []
    return [
        test.name
        for test, args, kwargs, expected in loaded
        if test.function == name and not _run_one(test, function, args, kwargs, expected, 1)[0]
    ]


def _dependency_notes(test: Test, function: Callable, loaded: list, cache: dict) -> list[str]:
    """Notes for a failing ``test``: the student functions it calls (``Test.uses``, looked up
    where ``function`` was defined, the notebook) that fail their own visible tests."""
    namespace = getattr(function, "__globals__", {})
    notes = []
    for used in test.uses:
        if used == test.function or used not in namespace:
            continue
        if used not in cache:
            cache[used] = _failing_tests(used, namespace[used], loaded)
        if cache[used]:
            names = ", ".join(cache[used][:4]) + (" ..." if len(cache[used]) > 4 else "")
            notes.append(
                f"this test calls {used}, which fails its own tests ({names}): fix that first"
            )
    return notes


def check(name: str, function: Callable, folder: str | Path = ".", *, hint: int = 1) -> None:
    """Run the visible tests of the student function ``name`` on ``function``; print a report.

    Parameters
    ----------
    name : str
        The function's name in the exercise (``"corr2d"``).
    function : callable
        The student's implementation.
    folder : path
        Where the visible tests are (default: the current folder, the notebook's own).
    hint : int
        How much help a failing test shows: 1 (the default) a nudge, what to look at; 2, 3, ...
        more, up to the full formula. While more exists, the report says how to ask for it:
        ``check("corr2d", corr2d, hint=2)``.

    A failing test that calls another function of the exercise which fails its own visible
    tests says so. The report is advice only: the grade comes from ``cnnlab grade``, which
    also runs the hidden tests, in an isolated worker.
    """
    if isinstance(folder, int) and not isinstance(folder, bool):
        folder, hint = ".", folder  # check("corr2d", corr2d, 2)
    if isinstance(hint, bool) or not isinstance(hint, int) or hint < 1:
        raise ValueError(f"hint must be a level 1, 2, ..., got {hint!r}")
    loaded = _load_visible(Path(folder))
    tests = [item for item in loaded if item[0].function == name]
    if not tests:
        raise ValueError(f"the exercise has no visible test of a function named {name!r}")
    earned = total = 0.0
    lines = []
    more = False
    cache: dict[str, list[str]] = {}
    for test, args, kwargs, expected in tests:
        total += test.points
        started = time.perf_counter()
        passed, message = _run_one(test, function, args, kwargs, expected, hint)
        seconds = time.perf_counter() - started
        earned += test.points if passed else 0.0
        mark = "PASS" if passed else "FAIL"
        points = f"{test.points if passed else 0:g}/{test.points:g}"
        lines.append(f"  {mark} {test.name} [{points}]" + ("" if passed else f": {message}"))
        if not passed:
            more = more or (len(test.hints) > hint and " Hint: " in message)
            for note in _dependency_notes(test, function, loaded, cache):
                lines.append(f"       ({note})")
        if seconds > 10:
            lines.append(f"       (took {seconds:.0f} s: the grader has time limits)")
    print(f"{name}: {earned:g}/{total:g} points on the visible tests")
    print("\n".join(lines))
    if more:
        print(f'More help: check("{name}", {name}, hint={hint + 1}) shows more.')
    if earned == total:
        print("All visible tests pass. Hidden tests run when your notebook is graded.")
