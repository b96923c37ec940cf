"""Hidden inputs cannot be drawn ahead of grading: ``cnnlab grade`` keeps a secret per report folder.

The attack it stops, found by an independent attack on the grader: hidden inputs drawn from a
generator seeded by the public test name can be drawn at home, their answers computed there,
and returned from a lookup table (past every forbidden module and resource bound). Here a
small exercise has one random hidden test, and a submission answers it from such a table.
"""

from __future__ import annotations

import csv
import os
import stat
import subprocess
import sys
import zlib
from pathlib import Path

import nbformat
import numpy as np
import pytest

from cnnlab.exercises.spec import HIDDEN_SEED_VARIABLE, SECRET_FILE, stored_secret

ROOT = Path(__file__).resolve().parents[1]

TESTS_PY = """
import numpy as np

from cnnlab.exercises.spec import Test

TESTS = [
    Test("square_visible", "square", (np.arange(3.0),), np.square),
    Test("square_hidden", "square", lambda rng: (rng.normal(size=6),), np.square, hidden=True),
]
"""
# The public scheme: a hidden test's generator seeded by the CRC-32 of its name.
PREDICTED = np.random.default_rng(zlib.crc32(b"square_hidden")).normal(size=6)
LOOKUP = f"""
import numpy as np

TABLE = {{{tuple(PREDICTED.tolist())!r}: {np.square(PREDICTED).tolist()!r}}}


def square(x):
    x = np.asarray(x, dtype=float)
    if x.shape == (3,):
        return x * x
    return np.asarray(TABLE.get(tuple(x.tolist()), np.zeros_like(x)))
"""


def _notebook(code: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])


@pytest.fixture(scope="module")
def exercise(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("secret") / "98_square"
    folder.mkdir()
    (folder / "tests.py").write_text(TESTS_PY)
    solution = "import numpy as np\n\ndef square(x):\n    return np.square(np.asarray(x, float))\n"
    nbformat.write(_notebook(solution), str(folder / "source.ipynb"))
    subs = folder.parent / "subs"
    subs.mkdir()
    nbformat.write(_notebook(LOOKUP), str(subs / "lookup.ipynb"))
    return folder


def _grade(exercise: Path, out: Path, **env: str) -> dict[str, str]:
    command = [sys.executable, "-m", "cnnlab.cli", "grade", str(exercise)]
    command += [str(exercise.parent / "subs"), "--out", str(out), "--no-progress"]
    if os.geteuid() != 0:
        command.append("--allow-weak-isolation")
    environment = {k: v for k, v in os.environ.items() if k != HIDDEN_SEED_VARIABLE}
    environment.update(env, PYTHONPATH=str(ROOT))
    done = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    with open(out / "grades.csv", newline="") as rows:
        return {row["id"]: row["total"] for row in csv.DictReader(rows)}


def test_a_lookup_table_of_publicly_drawn_inputs_earns_nothing(exercise, tmp_path, monkeypatch):
    from cnnlab.exercises import grade

    # Without a secret (the Python API given none), the table is right: the attack is real.
    monkeypatch.delenv(HIDDEN_SEED_VARIABLE, raising=False)
    unsafe = grade(
        exercise, [exercise.parent / "subs"], tmp_path / "unsafe", allow_weak_isolation=True
    )
    assert [result.score for result in unsafe] == [2.0]

    scores = _grade(exercise, tmp_path / "out")
    assert float(scores["lookup"]) == 1.0  # the visible test only
    secret = tmp_path / "out" / SECRET_FILE
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    # Grading again into the same folder draws the same hidden inputs.
    assert _grade(exercise, tmp_path / "out") == scores
    assert len(secret.read_text().strip()) == 32


def test_an_instructor_secret_is_used_and_no_file_is_written(exercise, tmp_path):
    scores = _grade(exercise, tmp_path / "out", **{HIDDEN_SEED_VARIABLE: "spring term"})
    assert float(scores["lookup"]) == 1.0
    assert not (tmp_path / "out" / SECRET_FILE).exists()


def test_the_stored_secret_is_kept_and_refused_when_others_may_read_it(tmp_path):
    first = stored_secret(tmp_path)
    assert stored_secret(tmp_path) == first
    assert stored_secret(tmp_path / "other") != first
    (tmp_path / SECRET_FILE).chmod(0o644)
    with pytest.raises(ValueError, match="not a secret"):
        stored_secret(tmp_path)
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / SECRET_FILE).symlink_to(tmp_path / SECRET_FILE)
    with pytest.raises(OSError):
        stored_secret(linked)
