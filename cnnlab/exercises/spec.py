"""The exercise format: graded tests, and loading an exercise folder.

An exercise is a folder ``exercises/NN_name/`` holding ``source.ipynb`` (the instructor's
notebook) and ``tests.py``. ``tests.py`` is ordinary Python that the *grading process* imports
(never the worker that runs student code). It defines:

``TESTS``
    a list of :class:`Test`, one per graded call of a student function;
``FORBIDDEN``
    dotted names of library functions replaced, inside the grading worker, by stubs that raise
    (for example ``"scipy.signal.correlate2d"``);
``FORBIDDEN_MODULES``
    whole modules (with their submodules) replaced inside the grading worker by stubs whose
    every name raises (for example ``"cnnlab.numpy"``); optional;
``PRELOAD``
    modules the worker imports before the student's code runs (optional; ``numpy`` always);
``HIDDEN_SEED``
    a secret mixed into the seed of every hidden test's inputs (optional; the environment
    variable ``CNNLAB_HIDDEN_SEED`` overrides it): change it each term, and the hidden inputs
    cannot be drawn ahead of grading from the public seeding scheme.

The expected answer of every test is computed by the grading process from ``Test.reference``;
the worker only ever sees the inputs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["Test", "Exercise", "load_exercise", "draw_inputs"]


@dataclass(frozen=True)
class Test:
    """One graded call of a student function, compared with a reference.

    Parameters
    ----------
    name : str
        Unique test name, shown in reports (for example ``"corr2d_small"``).
    function : str
        Name of the student function that the test calls.
    args : callable or tuple
        The positional arguments: a tuple, or ``args(rng) -> tuple`` where ``rng`` is a
        ``numpy.random.Generator`` seeded from the test name (so every run sees the same
        inputs). Arguments are arrays, numbers, strings, ``None`` or tuples of those.
    reference : callable
        ``reference(*args, **kwargs)`` computes the expected answer, in the grading process.
    kwargs : mapping
        Keyword arguments (plain data), passed as given.
    points : float
        Points the test is worth.
    hidden : bool
        Hidden tests are not released to students and their feedback shows pass/fail only.
    rtol, atol : float
        Tolerances of ``np.allclose(got, expected, rtol, atol)``.
    exact : bool
        Compare with ``np.array_equal`` instead (integer answers such as output sizes).
    time_limit : float
        Wall-clock seconds the call may take inside the worker.
    hint : str or tuple of str
        What to look at when the test fails, shown under the failure message. A tuple gives
        levels, from a nudge (what to look at) to the full formula: a failure shows the first,
        and the student's self-check shows level ``n`` on request
        (``check("corr2d", corr2d, hint=2)``). Grading feedback shows the first level only.
    description : str
        One line saying what the test checks.
    uses : tuple of str
        Other *student* functions that the tested function calls (for example
        ``("receptive_field",)``): when this test fails and one of them fails its own tests,
        the feedback says to fix that one first.
    time_factor : float or None
        Bound the call's processor time to this many times that of ``timing_reference`` on
        the same inputs, which the grading process times itself (one thread, best of five);
        the student's call is measured from outside its process (:mod:`cnnlab.exercises.measure`).
        Checked by ``cnnlab grade`` only, once the answer is right.
    timing_reference : callable or None
        What ``time_factor`` compares with (default: ``reference``).
    memory_limit_mb : float or None
        Bound the growth of the resident memory of the student's processes during the call
        (the peak above their size when the call began, inputs included), in MiB; measured from
        outside the student process. Checked by ``cnnlab grade`` only, once the answer is right.
    """

    name: str
    function: str
    args: Callable[[np.random.Generator], tuple] | tuple
    reference: Callable[..., Any]
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    points: float = 1.0
    hidden: bool = False
    rtol: float = 1e-6
    atol: float = 1e-8
    exact: bool = False
    time_limit: float = 5.0
    hint: str | tuple[str, ...] = ""
    description: str = ""
    uses: tuple[str, ...] = ()
    time_factor: float | None = None
    timing_reference: Callable[..., Any] | None = None
    memory_limit_mb: float | None = None

    def __post_init__(self) -> None:
        hint = self.hint
        if isinstance(hint, list):
            hint = tuple(hint)
        if not isinstance(hint, str) and not (
            isinstance(hint, tuple) and all(isinstance(h, str) for h in hint)
        ):
            raise TypeError(
                f"Test {self.name!r}: hint must be a str or a tuple of str, got {hint!r}"
            )
        object.__setattr__(self, "hint", hint)
        uses = (self.uses,) if isinstance(self.uses, str) else tuple(self.uses)
        if not all(isinstance(u, str) for u in uses):
            raise TypeError(f"Test {self.name!r}: uses must be a tuple of str, got {self.uses!r}")
        object.__setattr__(self, "uses", uses)

    @property
    def hints(self) -> tuple[str, ...]:
        """The hint levels, nudge first (empty when the test has no hint).

        Examples
        --------
        >>> Test("t", "f", (), None, hint="look at the bounds").hints
        ('look at the bounds',)
        >>> Test("t", "f", (), None, hint=("look at the bounds", "i + m for m < k")).hints
        ('look at the bounds', 'i + m for m < k')
        """
        levels = (self.hint,) if isinstance(self.hint, str) else self.hint
        return tuple(h for h in levels if h)

    def hint_at(self, level: int = 1) -> str:
        """The hint of level ``level`` (1 = the nudge), clipped to the levels there are.

        Examples
        --------
        >>> t = Test("t", "f", (), None, hint=("nudge", "formula"))
        >>> t.hint_at(1), t.hint_at(2), t.hint_at(9)
        ('nudge', 'formula', 'formula')
        """
        levels = self.hints
        if not levels:
            return ""
        return levels[min(max(int(level), 1), len(levels)) - 1]


HIDDEN_SEED_VARIABLE = "CNNLAB_HIDDEN_SEED"


#: The file in a grading output folder that keeps the secret ``cnnlab grade`` drew for it.
SECRET_FILE = "hidden-seed"


def stored_secret(folder: str | Path) -> str:
    """The hidden-input secret kept in ``folder/hidden-seed``, drawn (128 random bits) and
    stored, readable by its owner only, the first time.

    ``cnnlab grade`` uses it when neither ``CNNLAB_HIDDEN_SEED`` nor the exercise's
    ``HIDDEN_SEED`` gives a secret, so that the hidden inputs cannot be drawn ahead of grading
    from the public seeding scheme, while grading again into the same folder draws the same
    inputs. A link or a file of another owner there is refused.

    Examples
    --------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> first = stored_secret(folder)
    >>> len(first), stored_secret(folder) == first
    (32, True)
    """
    import secrets

    path = Path(folder) / SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(descriptor) as stored:
            info = os.fstat(stored.fileno())
            if info.st_uid != os.geteuid() or info.st_mode & 0o077:
                raise ValueError(
                    f"{path} is not a secret: it belongs to another user or others may read it"
                ) from None
            secret = stored.read().strip()
        if not secret:
            raise ValueError(f"{path} is empty: delete it to draw a new secret") from None
        return secret
    secret = secrets.token_hex(16)
    with os.fdopen(descriptor, "w") as stored:
        stored.write(secret + "\n")
    return secret


def draw_inputs(test: Test, hidden_seed: str = "") -> tuple[tuple, dict]:
    """Return the ``(args, kwargs)`` of ``test``, drawn from a generator seeded by its name.

    A hidden test's generator is seeded by the name *and* ``hidden_seed`` when one is given
    (the grading process passes the exercise's secret, see :func:`load_exercise`): without the
    secret, nobody can draw the hidden inputs ahead of the grading, even knowing how they are
    drawn. Visible tests never use it, so the student's self-check sees what grading sees.

    Examples
    --------
    >>> t = Test("t", "f", lambda rng: (rng.normal(size=2),), reference=lambda x: x)
    >>> a, _ = draw_inputs(t)
    >>> b, _ = draw_inputs(t)
    >>> bool((a[0] == b[0]).all())
    True
    >>> h = Test("h", "f", lambda rng: (rng.normal(size=2),), reference=None, hidden=True)
    >>> bool((draw_inputs(h, "term 1")[0][0] == draw_inputs(h, "term 2")[0][0]).any())
    False
    """
    if test.hidden and hidden_seed:
        digest = hashlib.sha256(f"{hidden_seed}\0{test.name}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:16], "big"))
    else:
        rng = np.random.default_rng(zlib.crc32(test.name.encode()))
    args = test.args(rng) if callable(test.args) else test.args
    return tuple(args), dict(test.kwargs)


@dataclass
class Exercise:
    """An exercise folder, loaded: its tests, forbidden names and paths."""

    name: str
    path: Path
    tests: list[Test]
    forbidden: tuple[str, ...] = ()
    forbidden_modules: tuple[str, ...] = ()
    preload: tuple[str, ...] = ("numpy",)
    hidden_seed: str = ""
    functions: tuple[str, ...] = ()

    @property
    def source(self) -> Path:
        """The instructor notebook ``source.ipynb``."""
        return self.path / "source.ipynb"

    @property
    def visible(self) -> list[Test]:
        return [t for t in self.tests if not t.hidden]

    @property
    def max_score(self) -> float:
        return float(sum(t.points for t in self.tests))


def _import_file(path: Path) -> ModuleType:
    module_name = f"_cnnlab_exercise_tests_{zlib.crc32(str(path).encode()):08x}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:  # pragma: no cover
        raise ValueError(f"cannot import tests file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def load_exercise(path: str | Path) -> Exercise:
    """Load the exercise folder ``path`` (it holds ``tests.py`` and ``source.ipynb``).

    Raises
    ------
    ValueError
        If ``path`` has no ``tests.py`` or its tests are malformed (duplicate names, no tests).
    """
    path = Path(path).resolve()
    tests_file = path / "tests.py"
    if not tests_file.is_file():
        raise ValueError(f"exercise folder {str(path)!r} has no tests.py")
    module = _import_file(tests_file)
    tests = list(getattr(module, "TESTS", []))
    if not tests or not all(isinstance(t, Test) for t in tests):
        raise ValueError(f"{tests_file} must define TESTS, a non-empty list of Test")
    names = [t.name for t in tests]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"{tests_file} has duplicate test names {duplicates}")
    functions: Sequence[str] = list(dict.fromkeys(t.function for t in tests))
    unknown = sorted({u for t in tests for u in t.uses if u not in functions})
    if unknown:
        raise ValueError(
            f"{tests_file}: `uses` names {unknown}, which no test calls "
            f"(the functions tested are {list(functions)})"
        )
    preload = tuple(dict.fromkeys(("numpy", *getattr(module, "PRELOAD", ()))))
    return Exercise(
        name=path.name,
        path=path,
        tests=tests,
        forbidden=tuple(getattr(module, "FORBIDDEN", ())),
        forbidden_modules=tuple(getattr(module, "FORBIDDEN_MODULES", ())),
        preload=preload,
        functions=tuple(functions),
        hidden_seed=os.environ.get(HIDDEN_SEED_VARIABLE) or str(getattr(module, "HIDDEN_SEED", "")),
    )
