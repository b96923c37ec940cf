"""Exercise 08 (fast convolution): its references, the resource measurements, and its grading.

The grading test releases the exercise and grades one batch: the instructor solution, the
released notebook, an honest wrong answer (its columns are ordered kernel tap first, then
channel, the layout of a channels-last weight, so only single-channel and 1x1 cases, the speed
test's single-channel layer among them, come out right), a correct solution that loops over output pixels (it must lose exactly the speed test),
a correct solution that multiplies by broadcasting (a 2.4 GB temporary: it must lose
exactly the memory test), and a correct solution that makes more copies than needed (stacked
tap slices, a transposed copy, np.einsum: it must keep full marks). The measurements behind those two tests (processor time read from
outside the measured process, resident memory sampled and its high-water mark, a reference
timed on one thread) are checked on their own first.
"""

from __future__ import annotations

import os
import signal
import time

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
    load_source,
    not_implemented,
    replace_solution,
    self_check_report,
    solution_namespace,
)

from cnnlab.exercises import Limits, load_exercise
from cnnlab.exercises.measure import (
    MemoryWatch,
    reference_cpu_seconds,
    resource_verdict,
    tree_cpu_seconds,
)
from cnnlab.exercises.scoring import CallOutcome, PreparedTest, RunOutcome, score_submission
from cnnlab.exercises.spec import Test as Spec
from cnnlab.exercises.spec import draw_inputs

EXERCISE = exercise_dir("08_fast_convolution")
LIMITS = Limits(timeout=120, memory_mb=2048, nproc=64, fsize_mb=128)

ex08 = load_module(EXERCISE / "tests.py", "exercise_08_tests")

WRONG_ORDER = '''
def im2col(x, kernel_size, stride=1, padding=0, dilation=1):
    """Rows ordered kernel tap first, then channel (a channels-last weight's order)."""
    x = np.asarray(x, dtype=float)
    n, c, h, w = x.shape
    (kh, kw), (sh, sw) = pair(kernel_size), pair(stride)
    (ph, pw), (dh, dw) = pair(padding), pair(dilation)
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    cols = np.empty((n, kh, kw, c, oh, ow))
    for m in range(kh):
        for l in range(kw):
            rows = slice(m * dh, m * dh + sh * (oh - 1) + 1, sh)
            columns = slice(l * dw, l * dw + sw * (ow - 1) + 1, sw)
            cols[:, m, l] = xp[:, :, rows, columns]
    return cols.reshape(n, kh * kw * c, oh * ow)
'''
LOOP = '''
def conv2d_im2col(x, weight, bias=None, stride=1, padding=0, dilation=1):
    """Correct, one output pixel at a time."""
    x = np.asarray(x, dtype=float)
    weight = np.asarray(weight, dtype=float)
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(padding), pair(dilation)
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    flat = weight.reshape(o, -1)
    out = np.zeros((n, o, oh, ow))
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                rows = slice(i * sh, i * sh + dh * (kh - 1) + 1, dh)
                cols = slice(j * sw, j * sw + dw * (kw - 1) + 1, dw)
                out[b, :, i, j] = flat @ xp[b, :, rows, cols].ravel()
    if bias is not None:
        out += np.asarray(bias, dtype=float)[:, None, None]
    return out
'''
BROADCAST = '''
def conv2d_im2col(x, weight, bias=None, stride=1, padding=0, dilation=1):
    """Correct, but multiplies by broadcasting: an (N, O, C*kh*kw, OH*OW) temporary."""
    x = np.asarray(x, dtype=float)
    weight = np.asarray(weight, dtype=float)
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(padding), pair(dilation)
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    cols = im2col(x, (kh, kw), stride, padding, dilation)
    out = (weight.reshape(1, o, -1, 1) * cols[:, None]).sum(axis=2)
    if bias is not None:
        out += np.asarray(bias, dtype=float)[:, None]
    return out.reshape(n, o, oh, ow)
'''
COPIES_STACK = '''
def im2col(x, kernel_size, stride=1, padding=0, dilation=1):
    """Right, with more copies: a list of tap slices, stacked, then transposed into order."""
    x = np.asarray(x, dtype=float)
    n, c, h, w = x.shape
    (kh, kw), (sh, sw) = pair(kernel_size), pair(stride)
    (ph, pw), (dh, dw) = pair(padding), pair(dilation)
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    taps = []
    for m in range(kh):
        for t in range(kw):
            rows = slice(m * dh, m * dh + sh * (oh - 1) + 1, sh)
            columns = slice(t * dw, t * dw + sw * (ow - 1) + 1, sw)
            taps.append(xp[:, :, rows, columns].copy())
    cols = np.stack(taps, axis=0)  # (kh*kw, N, C, OH, OW)
    return cols.transpose(1, 2, 0, 3, 4).reshape(n, c * kh * kw, oh * ow).copy()
'''
COPIES_EINSUM = '''
def conv2d_im2col(x, weight, bias=None, stride=1, padding=0, dilation=1):
    """Right, the product by np.einsum, the bias added as a new array."""
    x = np.asarray(x, dtype=float)
    weight = np.asarray(weight, dtype=float)
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(padding), pair(dilation)
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    cols = im2col(x, (kh, kw), stride, padding, dilation)
    out = np.einsum("ok,nkl->nol", weight.reshape(o, -1), cols)
    if bias is not None:
        out = out + np.asarray(bias, dtype=float)[None, :, None]
    return out.reshape(n, o, oh, -1)
'''
USES_UNFOLD = """
def im2col(x, kernel_size, stride=1, padding=0, dilation=1):
    import torch.nn.functional as F

    return F.unfold(x, kernel_size, dilation=dilation, padding=padding, stride=stride).numpy()
"""
USES_WINDOWS = """
def im2col(x, kernel_size, stride=1, padding=0, dilation=1):
    (kh, kw), (sh, sw), (ph, pw) = pair(kernel_size), pair(stride), pair(padding)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    windows = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    n, c, oh, ow = windows.shape[:4]
    return windows.transpose(0, 1, 4, 5, 2, 3).reshape(n, c * kh * kw, oh * ow)
"""

SPEED, MEMORY = "conv2d_im2col_speed", "conv2d_im2col_memory"


# --- the exercise's references -------------------------------------------------------------


def test_exercise_has_both_functions_hidden_tests_and_resource_bounds():
    exercise = load_exercise(EXERCISE)
    assert set(exercise.functions) == {"im2col", "conv2d_im2col"}
    hidden = [t for t in exercise.tests if t.hidden]
    assert len(hidden) >= 8 and {t.function for t in hidden} == set(exercise.functions)
    by_name = {t.name: t for t in exercise.tests}
    assert by_name[SPEED].hidden and by_name[SPEED].time_factor == 20.0
    assert by_name[SPEED].timing_reference.__name__ == "timing_conv2d"
    assert by_name[MEMORY].hidden and by_name[MEMORY].memory_limit_mb == 32.0
    assert "torch" in exercise.forbidden_modules and "cnnlab.numpy" in exercise.forbidden_modules
    assert "numpy.lib.stride_tricks.sliding_window_view" in exercise.forbidden


def test_references_agree_with_the_library_and_the_definition():
    """The torch references equal cnnlab.numpy's im2col-based conv2d, the timing reference
    equals F.conv2d, and im2col's layout is the definition written as a loop."""
    from cnnlab.numpy import conv2d

    for test in load_exercise(EXERCISE).tests:
        args, kwargs = draw_inputs(test)
        expected = test.reference(*args, **kwargs)
        if test.function == "conv2d_im2col":
            np.testing.assert_allclose(conv2d(*args, **kwargs), expected, atol=1e-10)
            np.testing.assert_allclose(ex08.timing_conv2d(*args, **kwargs), expected, atol=1e-10)
            continue
        x, pair = args[0], ex08._pair
        (kh, kw), (sh, sw) = pair(kwargs["kernel_size"]), pair(kwargs.get("stride", 1))
        (ph, pw), (dh, dw) = pair(kwargs.get("padding", 0)), pair(kwargs.get("dilation", 1))
        xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        n, c = x.shape[:2]
        oh = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
        ow = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
        mine = np.zeros((n, c * kh * kw, oh * ow))
        for ch in range(c):
            for m in range(kh):
                for t in range(kw):
                    for i in range(oh):
                        for j in range(ow):
                            value = xp[:, ch, i * sh + m * dh, j * sw + t * dw]
                            mine[:, ch * kh * kw + m * kw + t, i * ow + j] = value
        np.testing.assert_array_equal(mine, expected, err_msg=test.name)


def test_the_speed_test_separates_the_loop_from_im2col_here():
    """On the speed test's inputs, timed here as the grader times its reference, the loop over
    output pixels is well over the limit and the solution well under it (the grader's verdicts
    below rest on these margins)."""
    test = {t.name: t for t in load_exercise(EXERCISE).tests}[SPEED]
    args, kwargs = draw_inputs(test)
    source = load_source(EXERCISE)
    solution = solution_namespace(source)["conv2d_im2col"]
    loop = solution_namespace(replace_solution(source, {"conv2d_im2col": LOOP}))["conv2d_im2col"]
    reference = reference_cpu_seconds(ex08.timing_conv2d, args, kwargs)
    assert (
        reference_cpu_seconds(solution, args, kwargs, repeats=3) < test.time_factor * reference / 4
    )
    assert reference_cpu_seconds(loop, args, kwargs, repeats=1) > 1.5 * test.time_factor * reference


# --- the measurements, each alone ----------------------------------------------------------


def _child(work) -> tuple[int, int, int]:
    """Fork a child that waits for a byte on a pipe, runs ``work()``, writes a byte back and
    sleeps until killed; return (pid, go_fd, done_fd)."""
    go_r, go_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        try:
            os.read(go_r, 1)
            work()
            os.write(done_w, b".")
            time.sleep(60)
        finally:
            os._exit(0)
    os.close(go_r)
    os.close(done_w)
    return pid, go_w, done_r


def _finish(pid: int, *fds: int) -> None:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    for fd in fds:
        os.close(fd)


def _burn(seconds: float) -> None:
    started = time.process_time()
    while time.process_time() - started < seconds:
        pass


def test_processor_time_is_read_from_outside_and_counts_children():
    """A child that burns 0.3 s itself and has a grandchild burn 0.3 s more (reaped) is
    measured at about 0.6 s; a sleeping child at about nothing."""

    def work():
        _burn(0.3)
        grandchild = os.fork()
        if grandchild == 0:
            _burn(0.3)
            os._exit(0)
        os.waitpid(grandchild, 0)

    pid, go, done = _child(work)
    try:
        before = tree_cpu_seconds(pid, root=os.getpid())
        os.write(go, b".")
        os.read(done, 1)
        used = tree_cpu_seconds(pid, root=os.getpid()) - before
    finally:
        _finish(pid, go, done)
    assert 0.5 < used < 1.5, used

    pid, go, done = _child(lambda: time.sleep(0.3))
    try:
        before = tree_cpu_seconds(pid, root=os.getpid())
        os.write(go, b".")
        os.read(done, 1)
        used = tree_cpu_seconds(pid, root=os.getpid()) - before
    finally:
        _finish(pid, go, done)
    assert used < 0.1, used


def _watch(work) -> float:
    """The memory growth a MemoryWatch sees of a child running ``work()``, sampling as the
    supervisor does while it waits for the reply."""
    pid, go, done = _child(work)
    try:
        watch = MemoryWatch(pid)
        os.write(go, b".")
        from cnnlab.exercises.measure import wait_readable

        wait_readable(done, watch.sample)
        os.read(done, 1)
        return watch.growth()
    finally:
        _finish(pid, go, done)


def _allocate_and_hide(megabytes: int):
    def work():
        block = np.ones(megabytes << 17)  # float64: megabytes MiB, every page touched
        block[::512] = 2.0
        time.sleep(0.02)
        del block
        try:  # reset its own high-water mark, as a submission could
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")
        except OSError:
            pass

    return work


def _in_a_child(work):
    def run():
        child = os.fork()
        if child == 0:  # pragma: no cover (the grandchild)
            work()
            os._exit(0)
        os.waitpid(child, 0)

    return run


def test_memory_growth_is_seen_even_when_freed_and_the_mark_reset():
    grown = _watch(_allocate_and_hide(128))
    assert grown > 100 * 2**20, grown / 2**20
    in_a_child = _watch(_in_a_child(_allocate_and_hide(128)))
    assert in_a_child > 100 * 2**20, in_a_child / 2**20
    quiet = _watch(lambda: time.sleep(0.05))
    assert 0 <= quiet < 8 * 2**20, quiet / 2**20


def test_reference_time_is_processor_time_not_the_wall_clock():
    assert reference_cpu_seconds(time.sleep, (0.05,), {}, repeats=2) < 0.01
    busy = reference_cpu_seconds(_burn, (0.02,), {}, repeats=2)
    assert 0.015 < busy < 0.2


def test_verdict_says_what_was_measured_against_what():
    passed, message = resource_verdict(20.0, None, 0.5, 0.0, 0.004)
    assert not passed
    assert message.startswith("it used 125x the reference's processor time")
    assert "500 ms against 4 ms" in message and "the limit is 20x" in message
    passed, message = resource_verdict(None, 32.0, 0.0, 40 * 2**20, None)
    assert (passed, message) == (
        False,
        "its memory grew by 40 MiB during the call; the limit is 32 MiB",
    )
    assert resource_verdict(20.0, 32.0, -1.0, -1.0, 0.01)[0] is False  # not measured: fails
    assert resource_verdict(20.0, None, 0.01, 0.0, 0.0)[0]  # a tiny reference counts as 1 ms


def test_scoring_fails_a_right_answer_over_its_bounds_only():
    right = np.array([1.0, 2.0])
    timed = Spec("t", "f", (), None, time_factor=10.0)
    bounded = Spec("m", "f", (), None, memory_limit_mb=8.0)
    prepared = [PreparedTest(timed, (), {}, right, 0.01), PreparedTest(bounded, (), {}, right)]
    within = RunOutcome(
        calls={
            0: CallOutcome("ok", "", right, cpu_seconds=0.05),
            1: CallOutcome("ok", "", right, memory_growth=2 * 2**20),
        }
    )
    result = score_submission("a", "a.ipynb", prepared, within)
    assert [t.passed for t in result.tests] == [True, True]
    assert "5x the reference's processor time (limit 10x)" in result.tests[0].message
    over = RunOutcome(
        calls={
            0: CallOutcome("ok", "", right, cpu_seconds=0.5),
            1: CallOutcome("ok", "", right, memory_growth=20 * 2**20),
        }
    )
    result = score_submission("b", "b.ipynb", prepared, over)
    assert [t.status for t in result.tests] == ["failed", "failed"]
    assert "50x the reference's processor time" in result.tests[0].message
    assert "grew by 20 MiB" in result.tests[1].message
    assert result.status == "ok"


# --- grading -------------------------------------------------------------------------------

graded = batch_fixture(
    EXERCISE,
    LIMITS,
    honest_wrong={"im2col": WRONG_ORDER},
    loops={"conv2d_im2col": LOOP},
    broadcasting={"conv2d_im2col": BROADCAST},
    copies={"im2col": COPIES_STACK, "conv2d_im2col": COPIES_EINSUM},
    uses_unfold={"im2col": USES_UNFOLD},
    uses_windows={"im2col": USES_WINDOWS},
)


def test_solution_scores_full_marks(graded):
    assert_full_marks(graded["solution"], EXERCISE)
    by_name = {t.name: t for t in graded["solution"].tests}
    assert "the reference's processor time (limit 20x)" in by_name[SPEED].message
    assert "memory grew by" in by_name[MEMORY].message
    assert _grown_mib(graded["solution"]) >= 4  # its column matrix, 4.5 MiB, is seen


def _grown_mib(result) -> float:
    message = {t.name: t.message for t in result.tests}[MEMORY]
    return float(message.split("memory grew by ")[1].split(" MiB")[0])


def test_an_honest_solution_with_more_copies_scores_full_marks(graded):
    """Stacked copies, a transpose copied into order, np.einsum: within both bounds."""
    assert_full_marks(graded["copies"], EXERCISE)
    assert _grown_mib(graded["copies"]) > _grown_mib(graded["solution"])


def test_released_notebook_scores_zero(graded):
    assert_not_implemented(graded["released"])


def test_honest_wrong_answer_earns_exactly_what_its_functions_earn_here(graded):
    result = graded["honest_wrong"]
    passed = assert_grader_agrees_with_this_process(result, EXERCISE, {"im2col": WRONG_ORDER})
    single_channel = {"im2col_worked_example", "im2col_one_by_one", "conv2d_im2col_one_by_one"}
    assert single_channel | {SPEED} <= passed  # one channel (or one tap): the order is moot
    assert MEMORY not in passed and "conv2d_im2col_bias" not in passed
    assert 0 < result.score < load_exercise(EXERCISE).max_score


def _failed(result) -> dict[str, str]:
    return {t.name: t.message for t in result.tests if not t.passed}


def test_a_loop_over_output_pixels_loses_exactly_the_speed_test(graded):
    result = graded["loops"]
    assert result.status == "ok", result.cell_errors
    failed = _failed(result)
    assert set(failed) == {SPEED}, failed
    message = failed[SPEED]
    assert message.startswith("the answer is right, but it used ")
    assert "x the reference's processor time on the same inputs" in message
    assert message.endswith("the limit is 20x")
    ratio = float(message.split("it used ")[1].split("x")[0])
    assert ratio > 30  # a margin: half as much again as the limit


def test_broadcasting_the_product_loses_exactly_the_memory_test(graded):
    """Its temporary on the memory test's layer, (1, 512, 576, 1024) float64, is 2.4 GB: more
    than the worker may hold at all, so no scratch reserved before the call can hold it."""
    result = graded["broadcasting"]
    assert result.status == "memory", result.cell_errors
    failed = _failed(result)
    assert set(failed) == {MEMORY}, failed
    print(failed[MEMORY])
    assert "memory" in failed[MEMORY].lower()


def test_torch_and_window_views_are_unavailable_in_the_worker(graded):
    for ident in ("uses_unfold", "uses_windows"):
        result = graded[ident]
        im2col = [t for t in result.tests if t.function == "im2col"]
        assert im2col and not any(t.passed for t in im2col), ident
        assert "forbidden" in " ".join(t.message for t in im2col), ident


def test_released_self_check_reports_not_implemented(graded, capsys):
    out = self_check_report("im2col", not_implemented, graded.release, capsys)
    assert "im2col: 0/7 points on the visible tests" in out
    assert "not implemented yet" in out


@pytest.mark.parametrize("name", ["im2col", "conv2d_im2col"])
def test_released_self_check_passes_the_solution(graded, capsys, name):
    functions = solution_namespace(load_source(EXERCISE))
    out = self_check_report(name, functions[name], graded.release, capsys)
    assert "All visible tests pass" in out


def test_torch_reference_is_float64():
    x = np.random.default_rng(0).normal(size=(1, 2, 5, 5))
    assert ex08.reference_im2col(x, 3).dtype == np.float64
    expected = F.unfold(torch.from_numpy(x), 3).numpy()
    np.testing.assert_array_equal(ex08.reference_im2col(x, 3), expected)
