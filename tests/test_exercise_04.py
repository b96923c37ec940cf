"""Exercise 04 (equivariance): its reference network, its random cases, and its grading.

The grading test releases the exercise and grades one batch: the instructor solution, the
released notebook and an honest wrong answer that forgets the stride (it shifts the output of a
strided network by the input's shift) and forgets the global pooling when it measures
invariance. The solution must earn full marks, the released notebook zero, and the wrong answer
exactly the tests that the same wrong functions, run here, pass. Plausible mistakes (a shift of
the wrong axes of a batch, pools that ignore their stride) must each fail a *visible* test.
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
    load_source,
    not_implemented,
    replace_solution,
    self_check_report,
    solution_namespace,
)

from cnnlab.equivariance import shift
from cnnlab.exercises import Limits, load_exercise
from cnnlab.exercises.compare import compare
from cnnlab.exercises.spec import draw_inputs
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
WRONG_INVARIANCE = '''
def invariance_error(layers, x, dy, dx, mode="circular", pool=True):
    """Forgets the global pooling: measures the feature map whatever `pool` says."""
    f_x = forward(layers, x)
    moved = forward(layers, shift(x, dy, dx, mode))
    return float(np.linalg.norm(moved - f_x) / np.linalg.norm(f_x))
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


WRONG = {
    "equivariance_error": WRONG_ERROR,
    "first_breaking_layer": WRONG_FIRST,
    "invariance_error": WRONG_INVARIANCE,
}


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
    # Forgetting the pooling costs the pooled invariance tests, not the feature map's.
    assert "invariance_feature_map" in expected_pass
    assert {"invariance_pooled_circular_conv", "invariance_pooled_odd_shift"}.isdisjoint(
        expected_pass
    )
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
    assert "shift: 0/3 points on the visible tests" in out
    assert "not implemented yet" in out


# --- Plausible mistakes fail a visible test (run here, without the sandbox). -------------

WRONG_AXES_SHIFT = '''
def shift(x, dy, dx, mode="circular"):
    """Moves the first two axes: right for one image, wrong for a batch (N, C, H, W)."""
    out = np.roll(np.asarray(x), (dy, dx), axis=(0, 1))
    if mode == "zero":
        if dy > 0:
            out[:dy] = 0
        elif dy < 0:
            out[dy:] = 0
        if dx > 0:
            out[:, :dx] = 0
        elif dx < 0:
            out[:, dx:] = 0
    return out
'''


def _forward_variant(old: str, new: str) -> dict[str, str]:
    """The solution's ``forward`` with one piece of code changed (``old`` occurs once)."""
    cells = load_source(EXERCISE).cells
    (cell,) = [c for c in cells if c.metadata["nbgrader"].get("grade_id") == "forward"]
    assert cell.source.count(old) == 1
    return {"forward": cell.source.replace(old, new)}


POOL_WINDOWS = "window_view(out, (size, size), axis=(2, 3))[:, :, ::stride, ::stride]"
MISTAKES = {
    # np.roll on axes (0, 1): the 2-D examples pass, a batch does not.
    "shift_wrong_axes": ({"shift": WRONG_AXES_SHIFT}, {"shift_circular_batch_4d"}),
    # Windows `size` apart (non-overlapping pools): right whenever size == stride.
    "pool_stride_is_size": (
        _forward_variant(POOL_WINDOWS, POOL_WINDOWS.replace("::stride", "::size")),
        {"forward_average_pools"},
    ),
    # Only max pools take their stride; average pools slide by one pixel.
    "avgpool_stride_one": (
        _forward_variant(
            POOL_WINDOWS,
            POOL_WINDOWS.replace("::stride", "::(stride if kind == 'maxpool' else 1)"),
        ),
        {"forward_average_pools"},
    ),
}
# The visible tests there were before these mistakes had a visible test of their own.
OLD_VISIBLE = {
    "shift_circular_example",
    "shift_zero_example",
    "forward_circular_conv",
    "forward_worked_network",
}


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_plausible_mistakes_fail_a_visible_test(mistake):
    replacements, must_fail = MISTAKES[mistake]
    functions = solution_namespace(replace_solution(load_source(EXERCISE), replacements))
    failed = set()
    for test in load_exercise(EXERCISE).visible:
        args, kwargs = draw_inputs(test)
        expected = np.asarray(test.reference(*args, **kwargs), dtype=float)
        try:
            got = np.asarray(functions[test.function](*args, **kwargs), dtype=float)
        except Exception:  # noqa: BLE001 (a wrong answer may raise)
            failed.add(test.name)
            continue
        if not compare(test, expected, got)[0]:
            failed.add(test.name)
    assert must_fail <= failed, failed
    assert OLD_VISIBLE.isdisjoint(failed), failed  # the old visible tests let it through


def test_global_pooling_is_invariant_where_the_feature_map_is_equivariant():
    """The new part's claim, checked by closed form: circular conv, ReLU and a 2/2 average
    pool, globally pooled, are invariant to every circular shift (a 2/2 average pool followed
    by a global mean is the global mean), while the feature map itself is not."""
    rng = np.random.default_rng(3)
    layers = (ex04._conv(rng, 2, 3, "circular"), ("relu",), ("avgpool", 2, 2))
    x = rng.normal(size=(2, 2, 8, 12))
    for dy, dx in [(1, -3), (2, 4), (5, 0)]:
        assert ex04.reference_invariance_error(layers, x, dy, dx) < 1e-14
        assert ex04.reference_invariance_error(layers, x, dy, dx, pool=False) > 0.1
    pooled = ex04.reference_global_average_pool(x)
    np.testing.assert_allclose(pooled, x.sum(axis=(2, 3)) / (8 * 12), rtol=1e-14)


def test_random_invariance_cases_are_well_conditioned():
    """Whatever the term's secret, a random invariance case has a pooled output far from 0."""
    draw = ex04._random_invariance_case(12)
    for seed in range(40):
        layers, x, _, _ = draw(np.random.default_rng(seed))
        pooled = ex04.reference_global_average_pool(ex04.reference_forward(layers, x))
        assert np.linalg.norm(pooled) > 1e-2 * np.sqrt(pooled.size)
