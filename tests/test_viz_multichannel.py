"""Tests of the multi-channel convolution figure and animation.

The reference is torch.nn.functional.conv2d, on the whole layer and on one input channel and one
filter at a time (the per-channel sums the figure writes).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from cnnlab.viz import animate_multichannel as exported_animate  # noqa: E402
from cnnlab.viz.multichannel import (  # noqa: E402
    MAX_CHANNELS,
    animate_multichannel,
    draw_multichannel_step,
    output_terms,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _torch_conv(x, weight, bias, stride, padding) -> np.ndarray:
    out = F.conv2d(
        torch.from_numpy(np.asarray(x, dtype=np.float64))[None],
        torch.from_numpy(np.asarray(weight, dtype=np.float64)),
        None if bias is None else torch.from_numpy(np.asarray(bias, dtype=np.float64)),
        stride=stride,
        padding=padding,
    )
    return out[0].numpy()


def _cs231n_example(seed: int = 0):
    """A 5x5 input with 3 channels (values 0..2), two 3x3 filters (values -1..1), biases 1, 0."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, size=(3, 5, 5)).astype(float)
    weight = rng.integers(-1, 2, size=(2, 3, 3, 3)).astype(float)
    return x, weight, np.array([1.0, 0.0])


def _grid_numbers(texts) -> np.ndarray:
    return np.array(
        [[float(t.get_text()) if t.get_text() else np.nan for t in row] for row in texts]
    )


@settings(max_examples=40, deadline=None)
@given(
    c_in=st.integers(1, 4),
    c_out=st.integers(1, 3),
    h=st.integers(1, 7),
    w=st.integers(1, 7),
    kh=st.integers(1, 3),
    kw=st.integers(1, 3),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    padding=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    with_bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_output_terms_add_up_to_torch_conv2d(
    c_in, c_out, h, w, kh, kw, stride, padding, with_bias, seed
):
    kh, kw = min(kh, h + 2 * padding[0]), min(kw, w + 2 * padding[1])
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(c_in, h, w))
    weight = rng.normal(size=(c_out, c_in, kh, kw))
    bias = rng.normal(size=c_out) if with_bias else None
    reference = _torch_conv(x, weight, bias, stride, padding)
    for o in range(c_out):
        for i in range(reference.shape[1]):
            for j in range(reference.shape[2]):
                terms = output_terms(x, weight, bias, o, i, j, stride, padding)
                assert terms.value == pytest.approx(reference[o, i, j], abs=1e-12)
                # Each channel's sum is the convolution of that channel with that kernel alone.
                for c in range(c_in):
                    alone = _torch_conv(
                        x[c : c + 1], weight[o : o + 1, c : c + 1], None, stride, padding
                    )
                    assert terms.channel_sums[c] == pytest.approx(alone[0, i, j], abs=1e-12)
                assert terms.bias == (0.0 if bias is None else bias[o])


def test_output_terms_window_is_cut_from_the_zero_padded_input():
    x, weight, bias = _cs231n_example()
    terms = output_terms(x, weight, bias, 1, 0, 2, stride=2, padding=1)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    np.testing.assert_array_equal(terms.window, padded[:, 0:3, 4:7])
    assert (terms.window[:, 0, :] == 0).all() and (terms.window[:, :, 2] == 0).all()
    np.testing.assert_array_equal(terms.kernel, weight[1])
    np.testing.assert_array_equal(terms.products, terms.window * weight[1])


def _evaluate(expression: str) -> float:
    return eval(expression.replace("\u00b7", "*"), {})  # numbers, '+', '*', parentheses only


@pytest.mark.parametrize(("o", "i", "j"), [(0, 0, 0), (0, 1, 2), (1, 2, 1), (1, 2, 2)])
def test_the_written_formula_evaluates_to_torch_values(o, i, j):
    x, weight, bias = _cs231n_example(seed=3)
    step = draw_multichannel_step(x, weight, bias, o, i, j, stride=2, padding=1)
    lines = step.formula.get_text().splitlines()
    assert len(lines) == x.shape[0] + 1
    reference = _torch_conv(x, weight, bias, 2, 1)
    sums = []
    for c, line in enumerate(lines[:-1]):
        label, rest = line.split(": ", 1)
        assert label == f"x[{c}]*w{o}[{c}]"
        products, total = rest.rsplit(" = ", 1)
        assert products.count("\u00b7") == 9
        alone = _torch_conv(x[c : c + 1], weight[o : o + 1, c : c + 1], None, 2, 1)[0, i, j]
        assert _evaluate(products) == alone
        assert float(total) == alone
        sums.append(alone)
    head, rest = lines[-1].split(" = ", 1)
    assert head == f"out[{o}]({i},{j})"
    expression, total = rest.rsplit(" = ", 1)
    assert expression.endswith(f" (bias b{o})")
    assert _evaluate(expression.removesuffix(f" (bias b{o})")) == reference[o, i, j]
    assert float(total) == reference[o, i, j]
    assert sum(sums) + bias[o] == reference[o, i, j]


def test_output_grids_hold_torch_values_filter_by_filter_row_by_row():
    x, weight, bias = _cs231n_example(seed=1)
    reference = _torch_conv(x, weight, bias, 2, 1)
    np.testing.assert_array_equal(
        draw_multichannel_step(x, weight, bias, 0, 0, 0, 2, 1).output, reference
    )
    step = draw_multichannel_step(x, weight, bias, 1, 1, 0, stride=2, padding=1)
    first, second = (_grid_numbers(g) for g in step.output_texts)
    np.testing.assert_array_equal(first, reference[0])  # the first filter is done
    expected = np.full((3, 3), np.nan)
    expected[0, :] = reference[1, 0, :]
    expected[1, 0] = reference[1, 1, 0]
    np.testing.assert_array_equal(second, expected)
    assert [c.get_visible() for c in step.cells] == [False, True]
    assert step.cells[1].get_xy() == (-0.5, 0.5)
    assert [f.get_visible() for f in step.filter_frames] == [False, True]
    # The window of output (1, 0) at stride 2 starts at padded row 2, column 0, on every channel.
    assert [t.get_xy() for t in step.tiles] == [(-0.5, 1.5)] * 3
    assert all((t.get_width(), t.get_height()) == (3, 3) for t in step.tiles)
    # The input grids show the padded input; padding zeros sit at -1 and 5.
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    for c in range(3):
        np.testing.assert_array_equal(_grid_numbers(step.input_texts[c]), padded[c])
    labels = [t.get_text() for t in step.input_axes[0].get_xticklabels()]
    assert labels == ["-1", "0", "1", "2", "3", "4", "5"]


def test_animation_one_frame_per_output_value_in_cs231n_order():
    x, weight, bias = _cs231n_example(seed=2)
    anim = animate_multichannel(x, weight, bias, stride=2, padding=1, interval=200)
    assert exported_animate is animate_multichannel
    frames = list(anim.new_frame_seq())
    assert len(frames) == 2 * 3 * 3
    seen = []
    for k in frames:
        o, rest = divmod(k, 9)
        anim.step.show(o, *divmod(rest, 3))
        seen.append(anim.step.position)
    assert seen == [(o, i, j) for o in range(2) for i in range(3) for j in range(3)]
    html = anim.to_jshtml()
    assert html.count("data:image/png;base64") == 18
    assert len(html) < 1_500_000
    # Rendering left the figure on the last frame: both output maps written, equal to torch.
    assert anim.step.position == (1, 2, 2)
    reference = _torch_conv(x, weight, bias, 2, 1)
    for o in range(2):
        np.testing.assert_array_equal(_grid_numbers(anim.step.output_texts[o]), reference[o])
    assert anim.step.terms.value == reference[1, 2, 2]


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "bias", "pattern"),
    [
        ((3, 5), (2, 3, 3, 3), None, r"x must be 3-D \(C_in, H, W\), got shape \(3, 5\)"),
        ((3, 5, 5), (2, 3, 3), None, r"weight must be 4-D .* got shape \(2, 3, 3\)"),
        (
            (3, 5, 5),
            (2, 4, 3, 3),
            None,
            r"weight shape \(2, 4, 3, 3\) does not match x shape \(3, 5, 5\)",
        ),
        ((3, 5, 5), (2, 3, 3, 3), [1.0], r"bias must have shape \(2,\) .* got \(1,\)"),
        ((3, 2, 2), (1, 3, 5, 5), None, r"kernel \(5, 5\) is larger than the padded input"),
    ],
)
def test_bad_shapes_raise_value_error_naming_them(x_shape, w_shape, bias, pattern):
    with pytest.raises(ValueError, match=pattern):
        output_terms(
            np.zeros(x_shape),
            np.zeros(w_shape),
            bias,
            0,
            0,
            0,
            padding=1 if x_shape == (3, 2, 2) else 0,
        )


def test_bad_positions_and_sizes():
    x, weight, bias = _cs231n_example()
    with pytest.raises(ValueError, match=r"\(2, 0, 0\) is outside the output of shape \(2, 3, 3\)"):
        output_terms(x, weight, bias, 2, 0, 0, stride=2, padding=1)
    with pytest.raises(ValueError, match=r"\(0, 3, 0\) is outside"):
        draw_multichannel_step(x, weight, bias, 0, 3, 0, stride=2, padding=1)
    with pytest.raises(ValueError, match="padded input .* at most 16 cells"):
        draw_multichannel_step(
            np.zeros((1, 15, 15)), np.zeros((1, 1, 3, 3)), None, 0, 0, 0, padding=1
        )
    with pytest.raises(ValueError, match=f"at most 3 filters and {MAX_CHANNELS} input channels"):
        animate_multichannel(np.zeros((5, 4, 4)), np.zeros((1, 5, 3, 3)))
    with pytest.raises(ValueError, match="stride"):
        output_terms(x, weight, bias, 0, 0, 0, stride=0)
    with pytest.raises(ValueError, match="dpi must be at least 10"):
        animate_multichannel(x, weight, bias, dpi=5)
