"""Exercise 03, receptive fields: grading of the solution, the released notebook and wrong work.

One batch (module fixture) grades four submissions with short limits: the instructor solution,
the released student notebook, an honest wrong answer (the jump of a layer includes its own
stride, an off-by-one in the recurrence) and a notebook that calls the forbidden cnnlab
references. The solution's functions are also checked against a brute-force tracer that
follows which input pixels each unit depends on, independent of every formula.
"""

from __future__ import annotations

import functools

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

from cnnlab.exercises import Limits, load_exercise

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

USES_REFERENCE = {
    "effective_kernel": (
        "from cnnlab.shapes import effective_kernel_size\n"
        "def effective_kernel(kernel_size, dilation):\n"
        "    return effective_kernel_size(kernel_size, dilation)\n"
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


WRONG = {"receptive_field_steps": WRONG_STEPS, "receptive_field": WRONG_FIELD}

graded = batch_fixture(EXERCISE, LIMITS, honest_wrong=WRONG, uses_reference=USES_REFERENCE)


def test_exercise_has_visible_and_hidden_tests_of_every_function():
    exercise = load_exercise(EXERCISE)
    assert set(exercise.functions) == {
        "effective_kernel",
        "receptive_field_steps",
        "receptive_field",
        "input_interval",
        "residual_block_field",
        "residual_network_field",
    }
    for name in exercise.functions:
        tests = [t for t in exercise.tests if t.function == name]
        assert any(not t.hidden for t in tests) and any(t.hidden for t in tests), name
    assert "cnnlab.receptive_field.receptive_field" in exercise.forbidden


def test_solution_scores_full_marks(graded):
    assert_full_marks(graded["solution"], EXERCISE)


def test_released_notebook_scores_zero(graded):
    assert_not_implemented(graded["released"])


def test_honest_wrong_fails_wherever_a_stride_matters(graded):
    result = graded["honest_wrong"]
    passed = passed_names(result)
    # The off-by-one is invisible only without strides > 1 (or with 1x1 kernels, no padding,
    # after the strided layers): effective_kernel, the empty chain, the stride-1 dilated
    # chain and the block with stride 1 and an identity shortcut.
    assert passed == {
        "effective_kernel_dilation_2",
        "effective_kernel_one_tap",
        "effective_kernel_wide",
        "field_empty_chain",
        "field_random_dilated_chain",
        "block_identity_shortcut",
    }
    failing = next(t for t in result.tests if t.name == "steps_chapter_chain")
    assert "first at index" in failing.message and "Hint:" in failing.message


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
    assert "0/1 points" in report and "Hint: output unit u sees" in report


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
