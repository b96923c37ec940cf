"""Every convolution algorithm of cnnlab.numpy against torch.nn.functional.conv2d.

im2col (blocked), FFT, Winograd F(2x2, 3x3) and the direct per-tap loop each equal F.conv2d on
random layers (float64, within 1e-9; float32 within float32 rounding). Also: the blocks of the
im2col path cover the output exactly whatever their size, its extra memory stays within the
bound the benchmark checks, and invalid algorithm choices are refused with a message naming
the layer.
"""

import tracemalloc

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import conv_cases

import cnnlab.numpy.conv as conv_module
from cnnlab import numpy as cnp
from cnnlab._checks import conv2d_geometry
from cnnlab.geometry import Window

TOL = 1e-9
GENERAL = ["im2col", "fft", "direct", "auto"]


def _random(case, dtype=np.float64):
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal(case["x_shape"]).astype(dtype)
    w = rng.standard_normal(case["w_shape"]).astype(dtype)
    b = rng.standard_normal(case["w_shape"][0]).astype(dtype) if case["bias"] else None
    return x, w, b


def _torch_conv(x, w, b, **kwargs):
    tb = None if b is None else torch.from_numpy(b)
    return F.conv2d(torch.from_numpy(x), torch.from_numpy(w), tb, **kwargs).numpy()


@st.composite
def winograd_cases(draw):
    """3x3, stride 1, dilation 1 layers (the only ones F(2x2, 3x3) computes), odd sizes too."""
    groups = draw(st.integers(1, 2))
    padding = draw(st.one_of(st.integers(0, 2), st.just("same"), st.just("valid")))
    low = 1 if padding == "same" else max(1, 3 - 2 * (padding if isinstance(padding, int) else 0))
    return dict(
        x_shape=(
            draw(st.integers(1, 3)),
            groups * draw(st.integers(1, 3)),
            draw(st.integers(low, 11)),
            draw(st.integers(low, 11)),
        ),
        w_shape=(groups * draw(st.integers(1, 3)), None, 3, 3),
        groups=groups,
        padding=padding,
        bias=draw(st.booleans()),
        seed=draw(st.integers(0, 2**31 - 1)),
    )


def _winograd_case(case):
    c_in, groups = case["x_shape"][1], case["groups"]
    case = dict(case, w_shape=(case["w_shape"][0], c_in // groups, 3, 3))
    return case, dict(padding=case["padding"], groups=groups)


@pytest.mark.parametrize("algorithm", GENERAL)
@pytest.mark.filterwarnings("ignore:Using padding='same'")
@settings(max_examples=40, deadline=None)
@given(case=conv_cases())
def test_algorithm_matches_torch(algorithm, case):
    x, w, b = _random(case)
    got = cnp.conv2d(x, w, b, **case["kwargs"], algorithm=algorithm)
    want = _torch_conv(x, w, b, **case["kwargs"])
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@settings(max_examples=40, deadline=None)
@given(case=winograd_cases())
def test_winograd_matches_torch(case):
    case, kwargs = _winograd_case(case)
    x, w, b = _random(case)
    got = cnp.conv2d(x, w, b, **kwargs, algorithm="winograd")
    want = _torch_conv(x, w, b, **kwargs)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)


@pytest.mark.parametrize("budget", [0.01, 0.2, 3.0])
@settings(max_examples=25, deadline=None)
@given(case=conv_cases(allow_same=False))
def test_im2col_blocks_cover_the_output(budget, case):
    # Tiny budgets force one band of output rows per block, large ones several images per block.
    x, w, b = _random(case)
    old = conv_module.COLUMN_BUDGET, conv_module._MIN_COLUMN_ELEMENTS
    conv_module.COLUMN_BUDGET, conv_module._MIN_COLUMN_ELEMENTS = budget, 1
    try:
        got = cnp.conv2d(x, w, b, **case["kwargs"], algorithm="im2col")
    finally:
        conv_module.COLUMN_BUDGET, conv_module._MIN_COLUMN_ELEMENTS = old
    np.testing.assert_allclose(got, _torch_conv(x, w, b, **case["kwargs"]), rtol=0, atol=TOL)


@pytest.mark.parametrize("algorithm", ["im2col", "fft", "direct", "winograd"])
def test_float32_stays_float32(algorithm):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 16, 13, 13)).astype(np.float32)
    w = rng.standard_normal((8, 16, 3, 3)).astype(np.float32)
    got = cnp.conv2d(x, w, padding=1, algorithm=algorithm)
    assert got.dtype == np.float32
    want = _torch_conv(x.astype(np.float64), w.astype(np.float64), None, padding=1)
    # Rounding error of a 144-term float32 dot product of unit normals: well under 1e-4.
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


def test_winograd_one_dimensional_identity():
    # F(2, 3): two outputs of a 3-tap correlation from 4 multiplications, checked by hand.
    bt, g, at = cnp.winograd_matrices()
    d, k = np.array([3.0, -1.0, 2.0, 5.0]), np.array([0.5, 2.0, -1.0])
    want = [3 * 0.5 - 1 * 2 - 2 * 1, -1 * 0.5 + 2 * 2 - 5 * 1]
    np.testing.assert_allclose(at @ ((g @ k) * (bt @ d)), want, rtol=0, atol=1e-12)
    assert (g @ k).shape == (4,)  # 4 multiplications instead of 2 * 3 = 6


def test_extra_memory_of_im2col_is_bounded(monkeypatch):
    # The bound the benchmark checks on the largest ResNet-50 layer, here on a small layer whose
    # full unfolding would need 9x its output (deterministic: tracemalloc counts bytes, not
    # time). The 8 MiB floor that small layers get is lowered so the bound applies here.
    monkeypatch.setattr(conv_module, "_MIN_COLUMN_ELEMENTS", 1)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 64, 64, 64), dtype=np.float32)
    w = rng.standard_normal((64, 64, 3, 3), dtype=np.float32)
    cnp.conv2d(x, w, padding=1)  # warm-up outside the trace
    tracemalloc.start()
    try:
        out = cnp.conv2d(x, w, padding=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.nbytes * 9 == 64 * 9 * 64 * 64 * 2 * 4  # a full im2col would be 9x the output
    assert peak - out.nbytes <= 2 * out.nbytes


@pytest.mark.parametrize(
    "kwargs, weight_shape",
    [
        (dict(stride=2, padding=1), (4, 3, 3, 3)),
        (dict(padding=2), (4, 3, 5, 5)),
        (dict(padding=2, dilation=2), (4, 3, 3, 3)),
    ],
)
def test_winograd_refuses_other_layers(kwargs, weight_shape):
    x, w = np.zeros((1, 3, 8, 8)), np.zeros(weight_shape)
    with pytest.raises(ValueError, match=r"winograd.*weight shape \(4, 3, \d, \d\)"):
        cnp.conv2d(x, w, **kwargs, algorithm="winograd")


def test_unknown_algorithm_is_refused():
    with pytest.raises(ValueError, match="algorithm must be one of .*'gemm'"):
        cnp.conv2d(np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 3, 3)), algorithm="gemm")


@pytest.mark.parametrize(
    "x_shape, w_shape, kwargs, expected",
    [
        ((1, 64, 56, 56), (64, 64, 3, 3), dict(padding=1), "im2col"),
        ((1, 64, 56, 56), (256, 64, 1, 1), {}, "im2col"),
        ((1, 3, 32, 32), (8, 3, 11, 11), dict(padding=5), "im2col"),
        ((1, 3, 32, 32), (8, 3, 13, 13), dict(padding=6), "fft"),
        ((1, 3, 224, 224), (8, 3, 15, 15), dict(padding=7), "fft"),
        ((1, 3, 32, 32), (8, 3, 13, 13), dict(padding=6, stride=2), "im2col"),
    ],
)
def test_auto_rule(x_shape, w_shape, kwargs, expected):
    geometry = conv2d_geometry(
        x_shape,
        w_shape,
        None,
        kwargs.get("stride", 1),
        kwargs.get("padding", 0),
        1,
        1,
    )
    assert cnp.choose_algorithm(w_shape, geometry, x_shape[-2:]) == expected


def test_direct_and_fft_conv_take_every_window_that_fits_the_padded_input():
    # A 4x4 input and a 2x2 kernel leave room for 3x3 outputs at stride 1, 2x2 at stride 2.
    xp = np.arange(16.0).reshape(1, 1, 4, 4)
    w = np.ones((1, 1, 2, 2))
    for stride in (1, 2):
        ref = F.conv2d(torch.from_numpy(xp), torch.from_numpy(w), stride=stride).numpy()
        for method in (cnp.direct_conv, cnp.fft_conv):
            np.testing.assert_allclose(method(xp, w, Window(2, stride=stride)), ref, atol=1e-9)


def test_direct_and_fft_conv_refuse_a_window_that_is_not_the_weights():
    xp = np.zeros((1, 1, 4, 4))
    for method in (cnp.direct_conv, cnp.fft_conv):
        with pytest.raises(ValueError, match=r"weight shape \(1, 1, 2, 2\).*kernel \(3, 3\)"):
            method(xp, np.ones((1, 1, 2, 2)), Window(3))
        with pytest.raises(ValueError, match=r"spans 5 pixels on axis 0, more than"):
            method(xp, np.ones((1, 1, 5, 1)), Window((5, 1)))


def test_im2col_pads_by_the_window_and_matches_unfold():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 5))
    window = Window((3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2))
    cols = cnp.im2col(x, window)
    ref = F.unfold(torch.from_numpy(x), (3, 2), dilation=(1, 2), padding=(1, 0), stride=(2, 1))
    np.testing.assert_allclose(cols, ref.numpy().transpose(0, 2, 1))
    assert cols.shape[1] == np.prod(window.output_size(x.shape[-2:]))


def test_windows_refuses_a_window_larger_than_the_array():
    with pytest.raises(
        ValueError,
        match=r"windows: kernel_size \(3, 3\) with dilation \(2, 2\) spans 5 pixels on axis 1",
    ):
        conv_module.windows(np.zeros((1, 1, 6, 4)), Window(3, dilation=2))
