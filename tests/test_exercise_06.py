"""Exercise 06 (atrous convolution): its references, and its grading.

The grading test releases the exercise and grades one batch: the instructor solution, the
released notebook, an honest wrong answer (a footprint that is the union of the layers' own
taps instead of their composition, and an ASPP whose 3x3 branches forget their rate and carry a
bias) and a submission whose ASPP is cnnlab's own. The solution must earn full marks, the
released notebook zero, and the wrong answer exactly the tests that the same wrong functions,
run here, pass. The references are checked against independent computations: PyTorch
convolutions for the footprint, the closed form for the parameter count and the taps.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
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

from cnnlab.atrous import aspp_branch_shapes
from cnnlab.exercises import Limits, load_exercise

EXERCISE = exercise_dir("06_atrous")
LIMITS = Limits(timeout=90, memory_mb=1024, nproc=32, fsize_mb=64)
FUNCTIONS = {
    "dilate_kernel",
    "stack_receptive_field",
    "gridding_footprint",
    "count_valid_weights",
    "aspp_branch_shapes",
    "aspp_shapes",
    "aspp_parameter_count",
    "aspp_taps",
}
MODULE_HELPERS = {"aspp_shapes", "aspp_parameter_count", "aspp_taps"}

ex06 = load_module(EXERCISE / "tests.py", "exercise_06_tests")

WRONG_FOOTPRINT = '''
def gridding_footprint(rates, kernel_size=3):
    """Marks each layer's own taps around the centre: their union, not their composition."""
    size = stack_receptive_field(rates, kernel_size)
    centre, half = (size - 1) // 2, (kernel_size - 1) // 2
    line = np.zeros(size, dtype=int)
    for rate in rates:
        for m in range(kernel_size):
            line[centre + rate * (m - half)] = 1
    return np.outer(line, line)
'''
WRONG_ASPP = '''
def build_aspp(in_channels, out_channels, rates):
    """Plain 3x3 convolutions with a bias: the rates are forgotten (the shapes stay right)."""
    def conv_bn_relu(c_in, kernel_size):
        return nn.Sequential(
            nn.Conv2d(c_in, out_channels, kernel_size, padding=kernel_size // 2),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        )

    branches = [conv_bn_relu(in_channels, 1)]
    branches += [conv_bn_relu(in_channels, 3) for _ in rates]
    branches.append(ImagePooling(in_channels, out_channels))
    return ASPPHead(branches, conv_bn_relu(len(branches) * out_channels, 1))
'''
USES_REFERENCE = """
def build_aspp(in_channels, out_channels, rates):
    from cnnlab.torch import ASPP

    return ASPP(in_channels, out_channels, rates)
"""
WRONG = {"gridding_footprint": WRONG_FOOTPRINT, "build_aspp": WRONG_ASPP}


# --- The exercise's shape. ------------------------------------------------------------------


def test_exercise_has_every_function_visible_and_hidden_tests():
    exercise = load_exercise(EXERCISE)
    assert set(exercise.functions) == FUNCTIONS
    hidden = [t for t in exercise.tests if t.hidden]
    for function in FUNCTIONS:
        assert any(t.function == function for t in exercise.visible), function
        assert sum(t.function == function for t in hidden) >= 2, function
    # The effective kernel size is exercise 02's: given here, not graded.
    assert "effective_kernel_size" not in exercise.functions
    for name in (
        "cnnlab.atrous.dilate_kernel",
        "cnnlab.atrous.gridding_footprint",
        "cnnlab.torch.ASPP",
        "cnnlab.torch.aspp.ASPP",
    ):
        assert name in exercise.forbidden


def test_every_hint_has_a_nudge_and_a_formula():
    for test in load_exercise(EXERCISE).tests:
        nudge, formula = test.hints
        assert nudge != formula and len(formula) > 0, test.name


# --- The references against independent computations. --------------------------------------


def _torch_footprint(rates, kernel_size):
    """Pixels reached: an impulse pushed back through all-ones dilated convolutions in torch."""
    size = 1 + (kernel_size - 1) * sum(rates)
    field = torch.zeros(1, 1, size, size, dtype=torch.float64)
    field[0, 0, size // 2, size // 2] = 1
    ones = torch.ones(1, 1, kernel_size, kernel_size, dtype=torch.float64)
    for rate in rates:
        pad = rate * (kernel_size - 1) // 2
        field = F.conv2d(field, ones, padding=pad, dilation=rate)
    return (field[0, 0] > 0).numpy().astype(int)


@pytest.mark.parametrize("kernel_size", [3, 5])
def test_footprint_reference_matches_torch_convolutions(kernel_size):
    for n in (1, 2, 3):
        for rates in itertools.product(range(1, 6), repeat=n):
            expected = _torch_footprint(rates, kernel_size)
            got = ex06.reference_gridding_footprint(rates, kernel_size)
            np.testing.assert_array_equal(got, expected, err_msg=str(rates))


@pytest.mark.parametrize(
    "in_channels, out_channels, rates",
    [(16, 8, (6, 12, 18)), (2048, 256, (6, 12, 18)), (5, 3, (1, 2)), (1, 1, (1,))],
)
def test_parameter_count_reference_is_the_closed_form(in_channels, out_channels, rates):
    """Weights of every conv (no bias) and the weight and bias of every batch norm."""
    c_in, c_out, n = in_channels, out_channels, len(rates)
    convs = c_in * c_out + n * 9 * c_in * c_out + c_in * c_out + (n + 2) * c_out * c_out
    expected = convs + 2 * c_out * (n + 3)
    assert ex06.reference_aspp_parameter_count(in_channels, out_channels, rates) == expected


def test_taps_reference_is_the_closed_form():
    for in_channels, out_channels, rates, size in [
        (3, 8, (1, 3, 6), 13),
        (2, 8, (2, 5), 9),
        (4, 8, (4,), 8),
    ]:
        centre = size // 2
        expected = [np.zeros((size, size), int)]
        expected[0][centre, centre] = 1
        for rate in rates:
            line = np.zeros(size, int)
            for offset in (-rate, 0, rate):
                if 0 <= centre + offset < size:
                    line[centre + offset] = 1
            expected.append(np.outer(line, line))
        expected.append(np.ones((size, size), int))
        got = ex06.reference_aspp_taps(in_channels, out_channels, rates, size)
        np.testing.assert_array_equal(got, np.array(expected))


def test_shapes_reference_agrees_with_the_shape_arithmetic():
    for in_channels, out_channels, rates, size in [
        (4, 6, (2, 4, 6), (9, 12)),
        (3, 5, (12,), (5, 7)),
        (8, 4, (1, 2, 3, 4), 1),
    ]:
        shapes = aspp_branch_shapes(in_channels, size, out_channels, rates)
        keys = ["1x1", *(f"rate {r}" for r in rates), "pool upsampled", "project"]
        expected = np.array([(2, *shapes[k]) for k in keys])
        got = ex06.reference_aspp_shapes(in_channels, out_channels, rates, size)
        np.testing.assert_array_equal(got, expected)


# --- Grading through `cnnlab grade`. -------------------------------------------------------

graded = batch_fixture(
    EXERCISE, LIMITS, honest_wrong=WRONG, uses_reference={"build_aspp": USES_REFERENCE}
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
    by_function = {f: {t.name for t in exercise.tests if t.function == f} for f in FUNCTIONS}
    # The union of the taps is right for one layer only; the forgotten rate costs every taps
    # test, the bias every parameter count, and the shapes stay right.
    assert by_function["gridding_footprint"] & expected_pass == {"footprint_3_k3"}
    assert not (by_function["aspp_taps"] | by_function["aspp_parameter_count"]) & expected_pass
    assert by_function["aspp_shapes"] <= expected_pass
    assert by_function["dilate_kernel"] | by_function["count_valid_weights"] <= expected_pass
    assert 0 < result.score < exercise.max_score


def test_forbidden_reference_raises_in_the_worker(graded):
    result = graded["uses_reference"]
    module_tests = [t for t in result.tests if t.function in MODULE_HELPERS]
    assert module_tests and not any(t.passed for t in module_tests)
    assert "forbidden" in " ".join(t.message for t in module_tests)
    assert all(t.passed for t in result.tests if t.function not in MODULE_HELPERS)


def test_released_self_check_reports_not_implemented(graded, capsys):
    out = self_check_report("gridding_footprint", not_implemented, graded.release, capsys)
    assert "gridding_footprint: 0/3 points on the visible tests" in out
    assert "not implemented yet" in out
