"""Exercise 02 (shapes): its references agree with cnnlab.shapes, and it grades as it should.

One batch is graded once (module fixture), with short limits: the instructor solution, the
released notebook, an honest wrong answer (a dilated kernel spanning k d - 1 pixels, and it
forgets dilation and groups elsewhere) and a submission that measures shapes with library
functions instead of computing them.
"""

from __future__ import annotations

import pytest
from exercise_harness import (
    assert_full_marks,
    assert_not_implemented,
    batch_fixture,
    exercise_dir,
    not_implemented,
    passed_names,
    self_check_report,
)

from cnnlab import shapes
from cnnlab.exercises import Limits, load_exercise, release
from cnnlab.exercises.spec import draw_inputs

EXERCISE = exercise_dir("02_shapes")
LIMITS = Limits(timeout=60, memory_mb=1024, nproc=32, fsize_mb=64)

FUNCTIONS = (
    "effective_kernel_size",
    "conv_output_size",
    "same_padding",
    "stage_sizes",
    "output_stride",
    "conv_params",
    "conv_macs",
)

# The honest wrong answer: a dilated kernel spanning k d - 1 pixels (right only for k = 3,
# d = 2), the chapter-1 output-size law (no dilation), a 'same' padding of (k - 1) // 2 whatever
# the dilation, and parameter and cost counts that forget groups.
WRONG = {
    "effective_kernel_size": (
        "def effective_kernel_size(kernel_size, dilation):\n    return kernel_size * dilation - 1\n"
    ),
    "conv_output_size": (
        "def conv_output_size(size, kernel_size, stride=1, padding=0, dilation=1):\n"
        "    return (size + 2 * padding - kernel_size) // stride + 1\n"
    ),
    "same_padding": (
        "def same_padding(kernel_size, dilation=1):\n    return (kernel_size - 1) // 2\n"
    ),
    "conv_params": (
        "def conv_params(in_channels, out_channels, kernel_size, groups=1, bias=True):\n"
        "    return out_channels * in_channels * kernel_size**2 + (out_channels if bias else 0)\n"
    ),
    "conv_macs": (
        "def conv_macs(in_channels, out_channels, kernel_size, input_size, stride=1,\n"
        "              padding=0, dilation=1, groups=1):\n"
        "    o = conv_output_size(input_size, kernel_size, stride, padding, dilation)\n"
        "    return out_channels * o * o * in_channels * kernel_size**2\n"
    ),
}
# What it gets right: every test without dilation > 1 or groups > 1, and every output stride.
WRONG_PASSES = {
    "conv_output_size_resnet_stem",
    "conv_output_size_sweep_undilated",
    "same_padding_5x5",
    "stage_sizes_resnet18",
    "stage_sizes_vgg16_odd_input",
    "output_stride_resnet18",
    "output_stride_deeplab_os8",
    "output_stride_sweep",
    "conv_params_vgg_layer",
    "conv_macs_resnet_stem",
}

# Measuring instead of computing: shapes read off library layers, the cnnlab answers imported.
MEASURED = {
    "effective_kernel_size": "from cnnlab.shapes import effective_kernel_size\n",
    "conv_output_size": (
        "import torch\n"
        "import torch.nn.functional as F\n\n"
        "def conv_output_size(size, kernel_size, stride=1, padding=0, dilation=1):\n"
        "    x, w = torch.zeros(1, 1, 1, size), torch.zeros(1, 1, 1, kernel_size)\n"
        "    y = F.conv2d(x, w, stride=(1, stride), padding=(0, padding), dilation=(1, dilation))\n"
        "    return y.shape[-1]\n"
    ),
    "same_padding": "from cnnlab.shapes import same_padding\n",
    "output_stride": (
        "import cnnlab.shapes\n\n"
        "def output_stride(layers):\n"
        "    return cnnlab.shapes.output_stride([layer[1] for layer in layers])\n"
    ),
    "conv_macs": (
        "from cnnlab.shapes import conv_macs as _macs\n\n"
        "def conv_macs(*args):\n"
        "    return _macs(*args)\n"
    ),
}


graded = batch_fixture(EXERCISE, LIMITS, honest_wrong=WRONG, measured=MEASURED)


def test_exercise_has_visible_tests_and_hidden_sweeps():
    exercise = load_exercise(EXERCISE)
    assert set(FUNCTIONS) <= set(exercise.functions)
    hidden = [t for t in exercise.tests if t.hidden]
    assert {t.function for t in exercise.visible} == set(FUNCTIONS)
    assert {t.function for t in hidden} >= {f"sweep_{f}" for f in FUNCTIONS}
    for test in hidden:
        if test.function.startswith("sweep_"):
            args, _ = draw_inputs(test)
            assert len(args[0]) >= 24, test.name
    assert all(f"cnnlab.shapes.{f}" in exercise.forbidden for f in FUNCTIONS if f != "stage_sizes")
    assert "torch.nn.functional.conv2d" in exercise.forbidden


@pytest.mark.parametrize(
    "name",
    ["effective_kernel_size", "conv_output_size", "same_padding", "conv_params", "conv_macs"],
)
def test_torch_references_agree_with_cnnlab_shapes(name):
    """The references measure with PyTorch; cnnlab.shapes computes: they must agree."""
    cnnlab_function = getattr(shapes, name)
    for test in load_exercise(EXERCISE).tests:
        if test.function not in (name, f"sweep_{name}"):
            continue
        args, kwargs = draw_inputs(test)
        rows = args[0] if test.function.startswith("sweep_") else [args]
        expected = test.reference(*args, **kwargs)
        computed = []
        for row in rows:
            values = [int(v) for v in row]
            if name == "conv_params":
                values[4] = bool(values[4])
            computed.append(cnnlab_function(*values))
        assert (computed if test.function.startswith("sweep_") else computed[0]) == expected


def test_stage_references_agree_with_cnnlab_shapes():
    for test in load_exercise(EXERCISE).tests:
        if test.function == "stage_sizes":
            (size, layers), _ = draw_inputs(test)
            expected = []
            for k, s, p, d in layers:
                size = shapes.conv_output_size(size, k, s, p, d)
                expected.append(size)
            assert test.reference(*draw_inputs(test)[0]) == expected


def test_solution_scores_full_marks(graded):
    assert_full_marks(graded["solution"], EXERCISE)


def test_released_notebook_scores_zero(graded):
    assert_not_implemented(graded["released"])


def test_honest_wrong_answer_earns_only_what_it_gets_right(graded):
    result = graded["honest_wrong"]
    assert passed_names(result) == WRONG_PASSES
    exercise = load_exercise(EXERCISE)
    assert result.score == sum(t.points for t in exercise.tests if t.name in WRONG_PASSES)
    failing = next(t for t in result.tests if t.name == "conv_output_size_dilated")
    assert "expected 17" in failing.message and "Hint:" in failing.message
    assert "d(k - 1)" not in failing.message  # the nudge; the law only on request
    # conv_output_size's tests fail beside a failing effective_kernel_size: the report says so.
    assert failing.failing_uses == ["effective_kernel_size"]
    stages = next(t for t in result.tests if t.name == "stage_sizes_deeplab_os8")
    assert stages.failing_uses == ["conv_output_size"]


def test_effective_kernel_size_is_graded_here_once_with_a_test_against_k_times_d_minus_1():
    exercise = load_exercise(EXERCISE)
    visible = [t for t in exercise.visible if t.function == "effective_kernel_size"]
    assert visible and all(t.args != (3, 2) for t in visible)
    # k d - 1 equals d (k - 1) + 1 only for k = 3, d = 2 (and k = 2, d = 1): every visible test
    # tells them apart.
    for test in visible:
        k, d = test.args
        assert k * d - 1 != shapes.effective_kernel_size(k, d), test.name
    for test in exercise.tests:
        assert len(test.hints) == 2, test.name  # a nudge, then the formula


def test_measuring_with_forbidden_functions_earns_nothing_for_them(graded):
    result = graded["measured"]
    failed = {t.function for t in result.tests if not t.passed}
    assert failed == {
        "effective_kernel_size",
        "sweep_effective_kernel_size",
        "conv_output_size",
        "sweep_conv_output_size",
        "same_padding",
        "sweep_same_padding",
        "stage_sizes",  # calls the measuring conv_output_size
        "sweep_stage_sizes",
        "output_stride",
        "sweep_output_stride",
        "conv_macs",
        "sweep_conv_macs",
    }
    messages = " ".join(t.message for t in result.tests)
    assert "torch.nn.functional.conv2d is forbidden" in messages
    assert "cnnlab.shapes.effective_kernel_size is forbidden" in messages
    assert "cnnlab.shapes.same_padding is forbidden" in messages
    assert "cnnlab.shapes.output_stride is forbidden" in messages
    assert "cnnlab.shapes.conv_macs is forbidden" in messages


def test_self_check_in_the_released_folder(tmp_path, capsys):
    folder = release(EXERCISE, tmp_path)
    report = self_check_report("conv_output_size", shapes.conv_output_size, folder, capsys)
    assert "conv_output_size: 2/2 points" in report and "FAIL" not in report

    def forgets_dilation(size, kernel_size, stride=1, padding=0, dilation=1):
        return (size + 2 * padding - kernel_size) // stride + 1

    report = self_check_report("conv_output_size", forgets_dilation, folder, capsys)
    assert "1/2 points" in report
    assert "FAIL conv_output_size_dilated [0/1]: expected 17, got 18. Hint:" in report

    report = self_check_report("effective_kernel_size", lambda k, d: k * d - 1, folder, capsys)
    assert "effective_kernel_size: 0/2 points" in report
    assert "d (k - 1) + 1" not in report  # the nudge, not the formula

    report = self_check_report("conv_macs", not_implemented, folder, capsys)
    assert "0/1 points" in report
