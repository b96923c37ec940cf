"""Exercise 07 (backpropagation): its references, its inputs, and its grading.

The grading test releases the exercise and grades one batch: the instructor solution, the
released notebook, an honest wrong answer (its input gradient spreads the output gradient with
the kernel as it is, not flipped, and ignores the stride; its max-pool gradient goes to every
tied maximum), a correct solution that loops over output pixels (too slow only for the large
hidden layer), and a notebook that calls torch's autograd. The solution must earn full marks,
the released notebook zero, and the wrong answers exactly the tests that the same functions,
run here, pass.
"""

from __future__ import annotations

import numpy as np
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

from cnnlab.exercises import Limits, load_exercise
from cnnlab.exercises.spec import draw_inputs

EXERCISE = exercise_dir("07_backprop")
LIMITS = Limits(timeout=120, memory_mb=2048, nproc=64, fsize_mb=128)

ex07 = load_module(EXERCISE / "tests.py", "exercise_07_tests")

WRONG_CONV = '''
def conv2d_backward(grad_output, x, weight, stride=1, padding=0):
    """The input gradient correlates the padded output gradient with the kernel as it is:
    the flip is forgotten, and so is the stride."""
    ph, pw = (padding, padding) if np.isscalar(padding) else padding
    sh, sw = (stride, stride) if np.isscalar(stride) else stride
    g = np.asarray(grad_output, dtype=float)
    x = np.asarray(x, dtype=float)
    weight = np.asarray(weight, dtype=float)
    n, c, h, w = x.shape
    kh, kw = weight.shape[2:]
    oh, ow = g.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    grad_weight = np.zeros_like(weight)
    for m in range(kh):
        for l in range(kw):
            rows = slice(m, m + sh * (oh - 1) + 1, sh)
            cols = slice(l, l + sw * (ow - 1) + 1, sw)
            grad_weight[:, :, m, l] = np.einsum("noij,ncij->oc", g, xp[:, :, rows, cols])
    gp = np.pad(g, ((0, 0), (0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1)))
    grad_xp = np.zeros((n, c, oh + kh - 1, ow + kw - 1))
    for m in range(kh):
        for l in range(kw):
            window = gp[:, :, m : m + oh + kh - 1, l : l + ow + kw - 1]
            grad_xp += np.einsum("noij,oc->ncij", window, weight[:, :, m, l])
    grad_x = grad_xp[:, :, ph : grad_xp.shape[2] - ph, pw : grad_xp.shape[3] - pw]
    return grad_x, grad_weight, g.sum(axis=(0, 2, 3))
'''
WRONG_POOL = '''
def max_pool2d_backward(grad_output, x, kernel_size, stride=None, padding=0):
    """Sends each window's gradient to every pixel equal to its maximum."""
    kh, kw = (kernel_size, kernel_size) if np.isscalar(kernel_size) else kernel_size
    stride = (kh, kw) if stride is None else stride
    sh, sw = (stride, stride) if np.isscalar(stride) else stride
    ph, pw = (padding, padding) if np.isscalar(padding) else padding
    g = np.asarray(grad_output, dtype=float)
    x = np.asarray(x, dtype=float)
    h, w = x.shape[2:]
    oh, ow = g.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
    grad_xp = np.zeros_like(xp)
    for i in range(oh):
        for j in range(ow):
            window = xp[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw]
            winners = window == window.max(axis=(2, 3), keepdims=True)
            grad_xp[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw] += (
                winners * g[:, :, i, j, None, None]
            )
    return grad_xp[:, :, ph : ph + h, pw : pw + w]
'''
LOOPS = '''
def conv2d_backward(grad_output, x, weight, stride=1, padding=0):
    """Correct, one output pixel at a time (CS231n's naive version)."""
    sh, sw = (stride, stride) if np.isscalar(stride) else stride
    ph, pw = (padding, padding) if np.isscalar(padding) else padding
    g = np.asarray(grad_output, dtype=float)
    x = np.asarray(x, dtype=float)
    weight = np.asarray(weight, dtype=float)
    n, c, h, w = x.shape
    kh, kw = weight.shape[2:]
    oh, ow = g.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    grad_xp = np.zeros_like(xp)
    grad_weight = np.zeros_like(weight)
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                rows = slice(i * sh, i * sh + kh)
                cols = slice(j * sw, j * sw + kw)
                grad_weight += g[b, :, i, j, None, None, None] * xp[b, :, rows, cols]
                grad_xp[b, :, rows, cols] += np.tensordot(g[b, :, i, j], weight, axes=1)
    return grad_xp[:, :, ph : ph + h, pw : pw + w], grad_weight, g.sum(axis=(0, 2, 3))
'''
USES_AUTOGRAD = """
def conv2d_backward(grad_output, x, weight, stride=1, padding=0):
    import torch

    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(weight, requires_grad=True)
    bt = torch.zeros(wt.shape[0], dtype=xt.dtype, requires_grad=True)
    y = torch.nn.functional.conv2d(xt, wt, bt, stride=stride, padding=padding)
    y.backward(torch.tensor(grad_output))
    return xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()
"""

WRONG = {"conv2d_backward": WRONG_CONV, "max_pool2d_backward": WRONG_POOL}
TIMED = {"conv2d_grad_x_vectorised_large_layer", "conv2d_grad_weight_vectorised_large_layer"}


def test_exercise_has_both_functions_and_enough_hidden_tests():
    exercise = load_exercise(EXERCISE)
    assert set(exercise.functions) == {
        "conv2d_grad_x",
        "conv2d_grad_weight",
        "conv2d_grad_bias",
        "max_pool2d_backward",
    }
    hidden = [t for t in exercise.tests if t.hidden]
    assert len(hidden) >= 8
    assert {t.function for t in hidden} == set(exercise.functions)
    assert "torch" in exercise.forbidden_modules and "cnnlab.numpy" in exercise.forbidden_modules


def test_references_agree_with_the_library_and_the_numerical_gradient():
    """The autograd references equal cnnlab.numpy's backward passes (an independent
    implementation), and the numerical references equal autograd to their accuracy."""
    from cnnlab.numpy import conv2d_backward, max_pool2d_backward

    for test in load_exercise(EXERCISE).tests:
        if test.name in TIMED:
            continue
        args, kwargs = draw_inputs(test)
        expected = test.reference(*args, **kwargs)
        if test.function == "max_pool2d_backward":
            mine = max_pool2d_backward(*args, **kwargs)
        else:
            which = ("conv2d_grad_x", "conv2d_grad_weight", "conv2d_grad_bias")
            mine = conv2d_backward(*args, **kwargs)[which.index(test.function)]
        tolerance = 1e-6 if "numerical" in test.name else 1e-10
        np.testing.assert_allclose(expected, mine, rtol=0, atol=tolerance, err_msg=test.name)


def _tied_windows(x, kernel_size, stride=None, padding=0):
    """How many pooling windows have more than one pixel equal to their maximum."""
    kh, kw = ex07._pair(kernel_size)
    sh, sw = (kh, kw) if stride is None else ex07._pair(stride)
    ph, pw = ex07._pair(padding)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
    oh, ow = (xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1
    tied = 0
    for i in range(oh):
        for j in range(ow):
            window = xp[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw]
            tied += int(np.sum((window == window.max(axis=(2, 3), keepdims=True)).sum((2, 3)) > 1))
    return tied


def test_tie_cases_have_ties_and_random_cases_do_not():
    """The tie tests have windows with tied maxima (an 'every maximum' answer fails them);
    the others have none (their answers do not depend on how ties are broken)."""
    for test in load_exercise(EXERCISE).tests:
        if test.function != "max_pool2d_backward":
            continue
        args, kwargs = draw_inputs(test)
        pooled = F.max_pool2d(torch.from_numpy(args[1]), args[2], **kwargs)
        assert tuple(pooled.shape) == args[0].shape, test.name
        tied = _tied_windows(args[1], args[2], **kwargs)
        if "ties" in test.name or test.name == "max_pool_worked_example":
            assert tied >= 3, test.name
        else:
            assert tied == 0, test.name


graded = batch_fixture(
    EXERCISE,
    LIMITS,
    honest_wrong=WRONG,
    loops={"conv2d_backward": LOOPS},
    uses_autograd={"conv2d_backward": USES_AUTOGRAD},
)


def test_solution_scores_full_marks(graded):
    assert_full_marks(graded["solution"], EXERCISE)


def test_released_notebook_scores_zero(graded):
    assert_not_implemented(graded["released"])


def test_honest_wrong_answer_earns_exactly_what_its_functions_earn_here(graded):
    result = graded["honest_wrong"]
    passed = assert_grader_agrees_with_this_process(result, EXERCISE, WRONG)
    exercise = load_exercise(EXERCISE)
    weight_and_bias = {
        t.name for t in exercise.tests if t.function in ("conv2d_grad_weight", "conv2d_grad_bias")
    }
    assert weight_and_bias <= passed
    assert not any(t.function == "conv2d_grad_x" and t.name in passed for t in exercise.tests)
    assert "max_pool_2x2" in passed and "max_pool_worked_example" not in passed
    assert 0 < result.score < exercise.max_score


def test_loops_lose_only_the_timed_layer(graded):
    result = graded["loops"]
    assert result.status in ("ok", "timeout"), result.cell_errors
    failed = {t.name for t in result.tests if not t.passed}
    assert failed == TIMED, [(t.name, t.message) for t in result.tests if not t.passed]


def test_torch_autograd_is_unavailable_in_the_worker(graded):
    result = graded["uses_autograd"]
    conv = [t for t in result.tests if t.function.startswith("conv2d_grad")]
    assert conv and not any(t.passed for t in conv)
    assert "forbidden" in " ".join(t.message for t in conv)
    assert all(t.passed for t in result.tests if t.function == "max_pool2d_backward")


def test_released_self_check_reports_not_implemented(graded, capsys):
    out = self_check_report("max_pool2d_backward", not_implemented, graded.release, capsys)
    assert "max_pool2d_backward: 0/3 points on the visible tests" in out
    assert "not implemented yet" in out


def test_every_test_has_a_nudge_then_the_formula():
    for test in load_exercise(EXERCISE).tests:
        nudge, formula = test.hints
        assert nudge and formula and nudge != formula, test.name
