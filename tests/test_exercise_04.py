"""Exercise 04 (equivariance): its reference network, its random cases, and its grading.

The grading test releases the exercise and grades one batch: the instructor solution, the
released notebook and an honest wrong answer that forgets the stride (it shifts the output of a
strided network by the input's shift). The solution must earn full marks, the released notebook
zero, and the wrong answer exactly the tests that the same wrong functions, run here, pass.
"""

from __future__ import annotations

import numpy as np
import pytest
from exercise_harness import (
    assert_full_marks,
    assert_grader_agrees_with_this_process,
    assert_not_implemented,
    batch_fixture,
    exercise_dir,
    load_module,
    not_implemented,
    self_check_report,
)

from cnnlab.equivariance import shift
from cnnlab.exercises import Limits, load_exercise
from cnnlab.numpy import avg_pool2d, conv2d, max_pool2d

EXERCISE = exercise_dir("04_equivariance")
LIMITS = Limits(timeout=60, memory_mb=1024, nproc=64, fsize_mb=64)

ex04 = load_module(EXERCISE / "tests.py", "exercise_04_tests")

WRONG_ERROR = '''
def equivariance_error(layers, x, dy, dx, mode="circular"):
    """Forgets the stride: shifts the output by the input's shift."""
    f_x = forward(layers, x)
    residual = forward(layers, shift(x, dy, dx, mode)) - shift(f_x, dy, dx, mode)
    return float(np.linalg.norm(residual) / np.linalg.norm(f_x))
'''
WRONG_FIRST = '''
def first_breaking_layer(layers, x, dy, dx):
    """Forgets the stride: every prefix compared with the input's shift."""
    for k in range(len(layers)):
        if equivariance_error(layers[: k + 1], x, dy, dx) > TOLERANCE:
            return k
    return -1
'''
USES_REFERENCE = """
def shift(x, dy, dx, mode="circular"):
    from cnnlab.equivariance import shift as reference

    return reference(x, dy, dx, mode)
"""


def _numpy_network(layers, x):
    """The network by cnnlab's NumPy layers: a third implementation, beside torch and the
    notebook's."""
    out = np.asarray(x, dtype=float)
    for layer in layers:
        if layer[0] == "conv":
            kh, kw = layer[1].shape[2:]
            if layer[2] == "circular":
                pads = ((0, 0), (0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2))
                out = conv2d(np.pad(out, pads, mode="wrap"), layer[1])
            else:
                out = conv2d(out, layer[1], padding=(kh // 2, kw // 2))
        elif layer[0] == "relu":
            out = np.maximum(out, 0)
        else:
            pool = max_pool2d if layer[0] == "maxpool" else avg_pool2d
            out = pool(out, layer[1], stride=layer[2])
    return out


@pytest.mark.parametrize("seed", range(6))
def test_torch_reference_network_matches_cnnlab_numpy_layers(seed):
    rng = np.random.default_rng(seed)
    layers, x, _, _ = ex04.random_network(rng, 12)
    np.testing.assert_allclose(ex04.reference_forward(layers, x), _numpy_network(layers, x))


def test_random_cases_are_far_from_the_tolerance():
    """Up to the first break, every prefix error is either exactly equivariant or clearly not
    (margin both ways), and an off-grid shift always breaks: so the rule the notebook states
    gives cnnlab's answer."""
    answers = set()
    for seed in range(60):
        rng = np.random.default_rng(seed)
        layers, x, dy, dx = ex04.random_network(rng, int(rng.choice([8, 12, 16, 24])))
        stride = 1
        for layer, error in zip(layers, ex04.prefix_errors(layers, x, dy, dx), strict=True):
            if layer[0] in ("maxpool", "avgpool"):
                stride *= layer[2]
            assert error < ex04.TOLERANCE / 1e3 or error > ex04.TOLERANCE * 1e3
            if dy % stride or dx % stride:
                assert error > ex04.TOLERANCE * 1e3
            if error > ex04.TOLERANCE:
                break  # later layers do not matter (a ReLU may zero everything)
        answers.add(ex04.reference_first_breaking_layer(layers, x, dy, dx))
    assert {-1, 0, 1, 2} <= answers


def test_circular_network_commutes_with_every_shift_its_stride_divides():
    rng = np.random.default_rng(1)
    layers = ex04._equivariant_network(rng)
    x = rng.normal(size=(1, 2, 16, 12))
    f = lambda a: ex04.reference_forward(layers, a)  # noqa: E731
    np.testing.assert_allclose(f(shift(x, 4, -8)), shift(f(x), 1, -2), atol=1e-12)


WRONG = {"equivariance_error": WRONG_ERROR, "first_breaking_layer": WRONG_FIRST}


graded = batch_fixture(
    EXERCISE, LIMITS, honest_wrong=WRONG, uses_reference={"shift": USES_REFERENCE}
)


def test_solution_scores_full_marks(graded):
    assert_full_marks(graded["solution"], EXERCISE)


def test_released_notebook_scores_zero(graded):
    assert_not_implemented(graded["released"])


def test_honest_wrong_answer_earns_exactly_what_its_functions_earn_here(graded):
    """The grader's verdict per test equals a comparison made in this process."""
    result = graded["honest_wrong"]
    expected_pass = assert_grader_agrees_with_this_process(result, EXERCISE, WRONG)
    exercise = load_exercise(EXERCISE)
    # Forgetting the stride costs the strided error tests and the worked example's even shift.
    assert {"error_worked_network_zero_shift", "first_breaking_worked_even_shift"}.isdisjoint(
        expected_pass
    )
    assert {t.name for t in exercise.tests if t.function in ("shift", "forward")} <= expected_pass
    assert 0 < result.score < exercise.max_score


def test_forbidden_reference_raises_in_the_worker(graded):
    result = graded["uses_reference"]
    shift_tests = [t for t in result.tests if t.name.startswith("shift_")]
    assert shift_tests and not any(t.passed for t in shift_tests)
    assert "forbidden" in " ".join(t.message for t in shift_tests)
    # Its other functions are the solution's, and they call its (broken) shift.
    assert any(t.passed for t in result.tests if t.function == "forward")


def test_released_self_check_reports_not_implemented(graded, capsys):
    out = self_check_report("shift", not_implemented, graded.release, capsys)
    assert "shift: 0/2 points on the visible tests" in out
    assert "not implemented yet" in out
