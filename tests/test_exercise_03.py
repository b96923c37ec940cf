"""Exercise 03, receptive fields: grading of the solution, the released notebook and wrong work.

One batch (module fixture) grades four submissions with short limits: the instructor solution,
the released student notebook, an honest wrong answer (the jump of a layer includes its own
stride, an off-by-one in the recurrence; the effective field's absolute value taken after
averaging over the images) and a notebook that calls the forbidden cnnlab references. The
solution's functions are also checked against a brute-force tracer that follows which input
pixels each unit depends on, independent of every formula, and the visible tests of the
effective receptive field are checked to catch the plausible mistakes.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from exercise_harness import (
    assert_full_marks,
    assert_not_implemented,
    batch_fixture,
    exercise_dir,
    load_source,
    passed_names,
    self_check_report,
    solution_namespace,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlab.exercises import Limits, check, load_exercise
from cnnlab.exercises.compare import compare
from cnnlab.exercises.spec import draw_inputs

EXERCISE = exercise_dir("03_receptive_field")
LIMITS = Limits(timeout=30, memory_mb=1024, nproc=32, fsize_mb=16)

# The recurrence with the classic off-by-one: the jump is multiplied by the layer's own stride
# before the layer's kernel and padding are counted. Only chains with a stride > 1 (before a
# kernel wider than 1 or a padding) see the difference.
WRONG_STEPS = """
def receptive_field_steps(layers):
    size, jump, padding = 1, 1, 0
    rows = []
    for k, s, p, d in layers:
        jump *= s
        size += (effective_kernel(k, d) - 1) * jump
        padding += p * jump
        rows.append((size, jump, padding))
    return np.array(rows).reshape(-1, 3)
"""
WRONG_FIELD = """
def receptive_field(layers):
    rows = receptive_field_steps(layers)
    return (1, 1, 0) if len(rows) == 0 else tuple(int(v) for v in rows[-1])
"""
# The absolute value after averaging over the images: right for a linear network (every image
# has the same gradient), wrong once a ReLU or a max pool makes the gradient depend on it.
WRONG_ERF = """
def effective_receptive_field(network, inputs):
    x = torch.tensor(inputs, requires_grad=True)
    y = build_network(network)(x)
    y[:, :, y.shape[2] // 2, y.shape[3] // 2].sum().backward()
    return x.grad.mean(dim=0).abs().sum(dim=0).numpy()
"""

USES_REFERENCE = {
    "effective_receptive_field": (
        "from cnnlab.receptive_field import effective_receptive_field as erf\n"
        "def effective_receptive_field(network, inputs):\n"
        "    x = torch.tensor(inputs)\n"
        "    return erf(build_network(network), tuple(x.shape[-2:]), inputs=x)\n"
    ),
    "receptive_field_steps": (
        "from cnnlab.receptive_field import Layer, receptive_field_steps as steps\n"
        "def receptive_field_steps(layers):\n"
        "    return np.array([tuple(rf) for rf in steps([Layer(*layer) for layer in layers])])\n"
    ),
    "receptive_field": (
        "import cnnlab.receptive_field as crf\n"
        "def receptive_field(layers):\n"
        "    return tuple(crf.receptive_field([crf.Layer(*layer) for layer in layers]))\n"
    ),
    "input_interval": (
        "from cnnlab.receptive_field import ReceptiveField\n"
        "def input_interval(layers, u):\n"
        "    return tuple(ReceptiveField(*receptive_field(layers)).interval(u)[:2])\n"
    ),
    "residual_block_field": (
        "from cnnlab.receptive_field import receptive_field_of\n"
        "def residual_block_field(main, shortcut):\n"
        "    return receptive_field_of(None, 64)\n"
    ),
    "residual_network_field": (
        "from cnnlab.receptive_field import receptive_field_of\n"
        "def residual_network_field(stem, blocks):\n"
        "    return receptive_field_of(None, 64)\n"
    ),
}


WRONG = {
    "receptive_field_steps": WRONG_STEPS,
    "receptive_field": WRONG_FIELD,
    "effective_receptive_field": WRONG_ERF,
}

graded = batch_fixture(EXERCISE, LIMITS, honest_wrong=WRONG, uses_reference=USES_REFERENCE)


def test_exercise_has_visible_and_hidden_tests_of_every_function():
    exercise = load_exercise(EXERCISE)
    assert set(exercise.functions) == {
        "receptive_field_steps",
        "receptive_field",
        "input_interval",
        "residual_block_field",
        "residual_network_field",
        "effective_receptive_field",
    }
    for name in exercise.functions:
        tests = [t for t in exercise.tests if t.function == name]
        assert any(not t.hidden for t in tests) and any(t.hidden for t in tests), name
    assert "cnnlab.receptive_field.receptive_field" in exercise.forbidden
    assert "cnnlab.receptive_field.effective_receptive_field" in exercise.forbidden
    # The effective kernel size is exercise 02's: here it is given, not graded.
    assert not any("effective_kernel" in t.function for t in exercise.tests)
    for test in exercise.tests:
        assert len(test.hints) == 2, test.name  # a nudge, then the formula
        if test.function.startswith("residual_"):
            assert test.uses == ("receptive_field",), test.name


def test_the_given_effective_kernel_is_locked_and_right():
    from cnnlab.shapes import effective_kernel_size

    cell = next(
        c
        for c in load_source(EXERCISE).cells
        if c.metadata["nbgrader"]["grade_id"] == "effective_kernel"
    )
    assert cell.metadata["nbgrader"]["locked"] and not cell.metadata["nbgrader"]["solution"]
    given = _solution_functions()["effective_kernel"]
    assert all(given(k, d) == effective_kernel_size(k, d) for k in range(1, 9) for d in range(1, 9))


def test_solution_scores_full_marks(graded):
    assert_full_marks(graded["solution"], EXERCISE)


def test_released_notebook_scores_zero(graded):
    assert_not_implemented(graded["released"])


def test_honest_wrong_fails_wherever_a_stride_matters(graded):
    result = graded["honest_wrong"]
    passed = passed_names(result)
    # The off-by-one is invisible only without strides > 1 (or with 1x1 kernels, no padding,
    # after the strided layers): the empty chain, the stride-1 dilated chain and the block with
    # stride 1 and an identity shortcut. The misplaced absolute value is invisible only on the
    # linear networks.
    assert passed == {
        "field_empty_chain",
        "field_random_dilated_chain",
        "block_identity_shortcut",
        "erf_two_convs",
        "erf_strided_dilated_avgpool",
    }
    assert 0 < result.score < load_exercise(EXERCISE).max_score
    failing = next(t for t in result.tests if t.name == "steps_chapter_chain")
    assert "first at index" in failing.message and "Hint:" in failing.message
    assert "P_l" not in failing.message and "J_l" not in failing.message  # a nudge only


def test_residual_failures_point_to_receptive_field(graded):
    # receptive_field fails its own tests, so the residual tests that call it say so.
    tests = {t.name: t for t in graded["honest_wrong"].tests}
    for name in ("block_downsampling", "network_small_resnet", "network_random_3_blocks"):
        assert not tests[name].passed
        assert tests[name].failing_uses == ["receptive_field"], name
    assert tests["steps_chapter_chain"].failing_uses == []


def test_calling_the_references_is_forbidden(graded):
    result = graded["uses_reference"]
    assert result.score == 0
    assert {t.status for t in result.tests} == {"error"}
    assert all("forbidden" in t.message for t in result.tests if not t.hidden)


def test_self_check_in_the_released_folder(graded, capsys):
    field = _solution_functions()["receptive_field"]
    report = self_check_report("receptive_field", field, graded.release, capsys)
    assert "receptive_field: 3/3 points" in report and "FAIL" not in report
    report = self_check_report("input_interval", lambda layers, u: (0, 0), graded.release, capsys)
    assert "0/1 points" in report and "Hint: where does unit 0 start" in report
    assert "u S - P" not in report  # the formula only on request
    capsys.readouterr()
    check("input_interval", lambda layers, u: (0, 0), folder=graded.release, hint=2)
    assert "Hint: output unit u sees input pixels u S - P" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------
# The solution against a brute-force dependency tracer
# --------------------------------------------------------------------------------------------


@functools.cache
def _solution_functions() -> dict:
    return solution_namespace(load_source(EXERCISE))


def _trace_chain(layers, units: set[int]) -> set[int]:
    """Input indices (negative or past the end: padding) the given output units depend on."""
    for k, s, p, d in reversed(layers):
        units = {v * s - p + d * t for v in units for t in range(k)}
    return units


def _trace_network(stem, blocks, units: set[int]) -> set[int]:
    for main, shortcut in reversed(blocks):
        units = _trace_chain(main, units) | _trace_chain(shortcut, units)
    return _trace_chain(stem, units)


def _field(trace) -> tuple[int, int, int]:
    """(r, S, P) read off the traced dependencies of output units 0 and 1."""
    first, second = trace({0}), trace({1})
    return (max(first) - min(first) + 1, min(second) - min(first), -min(first))


layer = st.tuples(
    st.integers(1, 6), st.integers(1, 3), st.integers(0, 3), st.integers(1, 3)
)  # (kernel_size, stride, padding, dilation)


@settings(max_examples=40, deadline=None)
@given(st.lists(layer, max_size=5), st.integers(0, 20))
def test_solution_chain_matches_brute_force(layers, u):
    f = _solution_functions()
    layers = tuple(layers)
    r, s, p = f["receptive_field"](layers)
    seen = _trace_chain(layers, {u})
    assert f["input_interval"](layers, u) == (min(seen), max(seen))
    assert (r, s, p) == _field(lambda units: _trace_chain(layers, units))
    if layers:
        rows = f["receptive_field_steps"](layers)
        assert tuple(rows[-1]) == (r, s, p) and rows.shape == (len(layers), 3)


@st.composite
def aligned_layer(draw, stride):
    k = draw(st.sampled_from((1, 3, 5)))
    d = draw(st.integers(1, 3))
    return (k, stride, d * (k - 1) // 2, d)


@st.composite
def residual_block(draw):
    stride = draw(st.sampled_from((1, 2)))
    main = draw(st.lists(aligned_layer(1), min_size=1, max_size=3))
    main[draw(st.integers(0, len(main) - 1))] = draw(aligned_layer(stride))
    identity = stride == 1 and draw(st.booleans())
    shortcut = [] if identity else [draw(aligned_layer(stride))]
    return (tuple(main), tuple(shortcut))


@settings(max_examples=30, deadline=None)
@given(st.lists(aligned_layer(2), max_size=2), st.lists(residual_block(), max_size=4))
def test_solution_residual_network_matches_brute_force(stem, blocks):
    f = _solution_functions()
    stem, blocks = tuple(stem), tuple(blocks)
    expected = _field(lambda units: _trace_network(stem, blocks, units))
    assert tuple(f["residual_network_field"](stem, blocks)) == expected
    if blocks:
        main, shortcut = blocks[0]
        block = _field(lambda units: _trace_network((), ((main, shortcut),), units))
        assert tuple(f["residual_block_field"](main, shortcut)) == block


# --------------------------------------------------------------------------------------------
# The effective receptive field: the visible tests catch the plausible mistakes
# --------------------------------------------------------------------------------------------


def _erf_variant(mistake):
    import torch

    build = _solution_functions()["build_network"]

    def erf(network, inputs):
        x = torch.tensor(np.asarray(inputs, dtype=np.float64), requires_grad=True)
        y = build(network)(x)
        h, w = y.shape[2], y.shape[3]
        i0, j0 = ((h - 1) // 2, (w - 1) // 2) if mistake == "centre" else (h // 2, w // 2)
        if mistake == "abs_per_output_channel":
            grads = [
                torch.autograd.grad(y[:, k, i0, j0].sum(), x, retain_graph=True)[0].abs()
                for k in range(y.shape[1])
            ]
            return sum(grads).sum(dim=1).mean(dim=0).numpy()
        (g,) = torch.autograd.grad(y[:, :, i0, j0].sum(), x)
        if mistake == "no_abs":
            return g.sum(dim=1).mean(dim=0).numpy()
        if mistake == "abs_after_mean":
            return g.mean(dim=0).abs().sum(dim=0).numpy()
        if mistake == "sum_over_images":
            return g.abs().sum(dim=1).sum(dim=0).numpy()
        if mistake == "channels_before_abs":
            return g.sum(dim=1).abs().mean(dim=0).numpy()
        return g.abs().sum(dim=1).mean(dim=0).numpy()

    return erf


def _visible_erf_verdicts(function):
    verdicts = {}
    for test in load_exercise(EXERCISE).visible:
        if test.function == "effective_receptive_field":
            args, kwargs = draw_inputs(test)
            expected = np.asarray(test.reference(*args, **kwargs), dtype=float)
            got = np.asarray(function(*args, **kwargs), dtype=float)
            verdicts[test.name] = compare(test, expected, got)[0]
    return verdicts


def test_a_right_erf_passes_the_visible_tests():
    assert all(_visible_erf_verdicts(_erf_variant(None)).values())


@pytest.mark.parametrize(
    "mistake",
    [
        "centre",
        "abs_per_output_channel",
        "no_abs",
        "abs_after_mean",
        "sum_over_images",
        "channels_before_abs",
    ],
)
def test_visible_erf_tests_catch_a_plausible_mistake(mistake):
    verdicts = _visible_erf_verdicts(_erf_variant(mistake))
    assert not all(verdicts.values()), verdicts


def test_erf_is_zero_outside_the_theoretical_field():
    import torch

    # On every test network, the field measured by gradients lies inside the box that the
    # solution's closed form gives (rows and columns alike: square kernels, equal strides).
    f = _solution_functions()
    for test in load_exercise(EXERCISE).tests:
        if test.function != "effective_receptive_field":
            continue
        (network, inputs), _ = draw_inputs(test)
        chain = [
            (layer[1].shape[-1], *layer[2:]) if layer[0] == "conv" else (*layer[1:], 1)
            for layer in network
            if layer[0] != "relu"
        ]
        y = f["build_network"](network)(torch.tensor(inputs))
        (r0, r1), (c0, c1) = (
            f["input_interval"](chain, y.shape[2] // 2),
            f["input_interval"](chain, y.shape[3] // 2),
        )
        erf = f["effective_receptive_field"](network, inputs)
        rows, cols = np.nonzero(erf)
        assert rows.min() >= r0 and rows.max() <= r1 and cols.min() >= c0 and cols.max() <= c1


# Plausible mistakes in the recurrence, each of which some visible test must catch.
STEPS_MISTAKES = {
    # the padding counted in pixels of the layer's own output, not of its input
    "padding_without_jump": lambda r, j, p, k, s, pad, d: (r + (d * (k - 1)) * j, j * s, p + pad),
    # the jump of the layer's own stride used for its kernel and padding
    "jump_after_stride": lambda r, j, p, k, s, pad, d: (
        r + d * (k - 1) * j * s,
        j * s,
        p + pad * j * s,
    ),
    # the undilated kernel
    "dilation_ignored": lambda r, j, p, k, s, pad, d: (r + (k - 1) * j, j * s, p + pad * j),
}


@pytest.mark.parametrize("mistake", sorted(STEPS_MISTAKES))
def test_visible_steps_tests_catch_a_plausible_mistake(mistake):
    def steps(layers):
        rows, state = [], (1, 1, 0)
        for layer in layers:
            state = STEPS_MISTAKES[mistake](*state, *layer)
            rows.append(state)
        return np.array(rows).reshape(-1, 3)

    caught = []
    for test in load_exercise(EXERCISE).visible:
        if test.function == "receptive_field_steps":
            args, kwargs = draw_inputs(test)
            expected = np.asarray(test.reference(*args, **kwargs), dtype=float)
            caught.append(not compare(test, expected, np.asarray(steps(*args), dtype=float))[0])
    assert any(caught), mistake
