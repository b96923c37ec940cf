"""Exercise 01 (cross-correlation): what it grades, and that it grades as it should.

One batch is graded once (module fixture), with short limits: the instructor solution, the
released notebook and an honest wrong answer (a ``corr2d`` that flips the kernel, a convolution
rather than a cross-correlation, beside a right ``conv2d``). The output size is not graded here
(exercise 02 grades it, with dilation): the notebook gives it as locked code, checked below
against the shapes PyTorch returns. The many hostile submissions of exercise 01 are graded in
``test_exercises_grading.py``.
"""

from __future__ import annotations

import itertools

from exercise_harness import (
    assert_full_marks,
    assert_grader_agrees_with_this_process,
    assert_not_implemented,
    batch_fixture,
    exercise_dir,
    load_source,
    self_check_report,
    solution_namespace,
)

from cnnlab.exercises import Limits, load_exercise

EXERCISE = exercise_dir("01_cross_correlation")
# time_scale: the 512x512 layer's 3 s limit is tested under load in test_exercises_grading.py.
LIMITS = Limits(timeout=60, time_scale=3.0, memory_mb=1024, nproc=32, fsize_mb=64)

FLIPPED_CORR2D = """
def corr2d(image, kernel):
    image, kernel = np.asarray(image, float), np.asarray(kernel, float)[::-1, ::-1]
    kh, kw = kernel.shape
    out = np.zeros((image.shape[0] - kh + 1, image.shape[1] - kw + 1))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = np.sum(image[i : i + kh, j : j + kw] * kernel)
    return out
"""
WRONG = {"corr2d": FLIPPED_CORR2D}

graded = batch_fixture(EXERCISE, LIMITS, honest_wrong=WRONG)


def _cell(grade_id: str):
    return next(
        c for c in load_source(EXERCISE).cells if c.metadata["nbgrader"]["grade_id"] == grade_id
    )


def test_exercise_grades_corr2d_and_conv2d_with_two_hint_levels():
    exercise = load_exercise(EXERCISE)
    assert set(exercise.functions) == {"corr2d", "conv2d"}  # conv_output_size is 02's
    for name in exercise.functions:
        tests = [t for t in exercise.tests if t.function == name]
        assert any(not t.hidden for t in tests) and any(t.hidden for t in tests), name
    for test in exercise.tests:
        nudge, formula = test.hints
        assert nudge != formula and "sum_m" not in nudge and "x_padded" not in nudge, test.name


def test_the_given_output_size_is_locked_and_agrees_with_torch():
    import torch
    import torch.nn.functional as F

    info = _cell("conv_output_size").metadata["nbgrader"]
    assert info["locked"] and not info["solution"]
    given = solution_namespace(load_source(EXERCISE))["conv_output_size"]
    for size, k, s, p in itertools.product((5, 8, 13), (1, 2, 3, 5), (1, 2, 3), (0, 1, 2)):
        if k <= size + 2 * p:
            out = F.conv2d(
                torch.zeros(1, 1, size, 1), torch.zeros(1, 1, k, 1), stride=s, padding=(p, 0)
            )
            assert given(size, k, s, p) == out.shape[2], (size, k, s, p)


def test_solution_scores_full_marks(graded):
    assert_full_marks(graded["solution"], EXERCISE)


def test_released_notebook_scores_zero(graded):
    assert_not_implemented(graded["released"])


def test_honest_wrong_answer_earns_exactly_conv2d(graded):
    result = graded["honest_wrong"]
    assert result.status == "ok", (result.status, [(t.name, t.status) for t in result.tests])
    passed = assert_grader_agrees_with_this_process(result, EXERCISE, WRONG)
    exercise = load_exercise(EXERCISE)
    assert passed == {t.name for t in exercise.tests if t.function == "conv2d"}
    assert 0 < result.score < exercise.max_score
    failing = next(t for t in result.tests if t.name == "corr2d_random")
    assert "first at index" in failing.message and "Hint:" in failing.message
    assert "sum_m" not in failing.message  # the nudge; the formula only on request


def test_self_check_gives_the_nudge_first(graded, capsys):
    flipped = solution_namespace(load_source(EXERCISE))["corr2d"]

    def convolution(image, kernel):
        return flipped(image, kernel[::-1, ::-1])

    report = self_check_report("corr2d", convolution, graded.release, capsys)
    assert "corr2d: 0/3 points" in report and "Hint: compare the shape first" in report
    assert "sum_m" not in report
