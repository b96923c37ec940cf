"""cnnlab.numpy against torch.nn.functional on the same arguments (float64, within 1e-9)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from strategies import conv_cases, pool_cases

from cnnlab import numpy as cnp

TOL = 1e-9


def _random(case):
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal(case["x_shape"])
    w = rng.standard_normal(case["w_shape"])
    b = rng.standard_normal(case["w_shape"][0]) if case["bias"] else None
    return x, w, b


def _torch_conv(x, w, b, **kwargs):
    tb = None if b is None else torch.from_numpy(b)
    return F.conv2d(torch.from_numpy(x), torch.from_numpy(w), tb, **kwargs).numpy()


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@given(conv_cases())
def test_conv2d_matches_torch(case):
    x, w, b = _random(case)
    got = cnp.conv2d(x, w, b, **case["kwargs"])
    want = _torch_conv(x, w, b, **case["kwargs"])
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)


@given(conv_cases(allow_same=False))
def test_conv2d_unbatched_input(case):
    x, w, b = _random(case)
    got = cnp.conv2d(x[0], w, b, **case["kwargs"])
    np.testing.assert_allclose(got, _torch_conv(x, w, b, **case["kwargs"])[0], rtol=0, atol=TOL)


@given(conv_cases(allow_same=False), st.floats(-3, 3), st.floats(-3, 3))
def test_conv2d_is_linear_in_input(case, a, c):
    x, w, _ = _random(case)
    x2 = np.random.default_rng(case["seed"] + 1).standard_normal(x.shape)
    lhs = cnp.conv2d(a * x + c * x2, w, **case["kwargs"])
    rhs = a * cnp.conv2d(x, w, **case["kwargs"]) + c * cnp.conv2d(x2, w, **case["kwargs"])
    np.testing.assert_allclose(lhs, rhs, rtol=1e-9, atol=1e-9)


def test_conv2d_float32_stays_float32():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    got = cnp.conv2d(x, w, padding=1)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, _torch_conv(x, w, None, padding=1), rtol=1e-4, atol=1e-4)


@given(
    st.integers(1, 9),
    st.integers(1, 9),
    st.integers(1, 4),
    st.integers(1, 4),
    st.integers(0, 2**31 - 1),
)
def test_corr2d_matches_torch_single_channel(h, w, kh, kw, seed):
    kh, kw = min(kh, h), min(kw, w)
    rng = np.random.default_rng(seed)
    image, kernel = rng.standard_normal((h, w)), rng.standard_normal((kh, kw))
    want = F.conv2d(torch.from_numpy(image)[None, None], torch.from_numpy(kernel)[None, None])
    np.testing.assert_allclose(cnp.corr2d(image, kernel), want[0, 0].numpy(), rtol=0, atol=TOL)


def test_corr2d_by_hand():
    # S(0, 0) = sum_m sum_n I(m, n) K(m, n), written out for a 2x2 kernel.
    image = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    kernel = np.array([[1.0, 2.0], [3.0, 4.0]])
    s00 = 1 * 1 + 2 * 2 + 4 * 3 + 5 * 4
    s11 = 5 * 1 + 6 * 2 + 8 * 3 + 9 * 4
    out = cnp.corr2d(image, kernel)
    assert out.shape == (2, 2)
    assert out[0, 0] == s00 and out[1, 1] == s11


def test_convolution_is_correlation_with_flipped_kernel():
    from scipy.signal import convolve2d

    rng = np.random.default_rng(3)
    image, kernel = rng.standard_normal((7, 6)), rng.standard_normal((3, 2))
    np.testing.assert_allclose(
        convolve2d(image, kernel, mode="valid"), cnp.corr2d(image, np.flip(kernel)), atol=1e-12
    )


@given(pool_cases())
def test_max_pool2d_matches_torch(case):
    x = np.random.default_rng(case["seed"]).standard_normal(case["x_shape"])
    args = (case["kernel_size"], case["stride"], case["padding"], case["dilation"])
    want = F.max_pool2d(torch.from_numpy(x), *args).numpy()
    got = cnp.max_pool2d(x, *args)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@given(pool_cases(with_dilation=False))
def test_avg_pool2d_matches_torch(case):
    x = np.random.default_rng(case["seed"]).standard_normal(case["x_shape"])
    args = (case["kernel_size"], case["stride"], case["padding"])
    want = F.avg_pool2d(torch.from_numpy(x), *args).numpy()
    got = cnp.avg_pool2d(x, *args)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)


X = np.zeros((2, 4, 6, 6))
W = np.zeros((3, 4, 3, 3))


@pytest.mark.parametrize(
    "call, error, message",
    [
        (
            lambda: cnp.conv2d(X, np.zeros((3, 2, 3, 3))),
            ValueError,
            r"\(2, 4, 6, 6\).*\(3, 2, 3, 3\)",
        ),
        (lambda: cnp.conv2d(X, np.zeros((3, 4, 9, 9))), ValueError, "more than the padded input"),
        (lambda: cnp.conv2d(X, W, stride=0), ValueError, "stride must be >= 1"),
        (lambda: cnp.conv2d(X, W, dilation=0), ValueError, "dilation must be >= 1"),
        (lambda: cnp.conv2d(X, W, padding=-1), ValueError, "padding must be >= 0"),
        (
            lambda: cnp.conv2d(X, np.zeros((3, 2, 3, 3)), groups=3),
            ValueError,
            "groups=3 does not divide",
        ),
        (
            lambda: cnp.conv2d(X, np.zeros((3, 1, 3, 3)), groups=4),
            ValueError,
            "groups=4 does not divide the output",
        ),
        (lambda: cnp.conv2d(X[0, 0], W), ValueError, "4-D .* or 3-D .*got 2-D"),
        (lambda: cnp.conv2d(X, W[0]), ValueError, "weight must be 4-D"),
        (
            lambda: cnp.conv2d(X, W, stride=2, padding="same"),
            ValueError,
            "'same' is only defined for stride 1",
        ),
        (lambda: cnp.conv2d(X, W, padding="full"), ValueError, "'valid' or 'same'"),
        (lambda: cnp.conv2d(X, W, bias=np.zeros(4)), ValueError, r"bias must have shape \(3,\)"),
        (lambda: cnp.conv2d(X, W, groups=0), ValueError, "groups must be >= 1, got 0"),
        (lambda: cnp.conv2d(X.astype(str), W), TypeError, "numeric array"),
        (lambda: cnp.corr2d(np.zeros((2, 2)), np.zeros((3, 3))), ValueError, "larger than image"),
        (lambda: cnp.corr2d(np.zeros((2, 2, 2)), np.zeros((1, 1))), ValueError, "2-D image"),
        (lambda: cnp.max_pool2d(X, 2, padding=2), ValueError, "at most half"),
        (lambda: cnp.avg_pool2d(X, 7), ValueError, "more than the padded input"),
    ],
)
def test_bad_input_raises_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


COMPLEX = np.ones((1, 1, 4, 4)) * (1 + 2j)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: cnp.conv2d(COMPLEX, np.ones((1, 1, 2, 2))), "x"),
        (lambda: cnp.conv2d(np.ones((1, 1, 4, 4)), np.ones((1, 1, 2, 2)) * 1j), "weight"),
        (lambda: cnp.conv2d(np.ones((1, 1, 4, 4)), np.ones((1, 1, 2, 2)), np.ones(1) * 1j), "bias"),
        (lambda: cnp.corr2d(COMPLEX[0, 0], np.ones((2, 2))), "image"),
        (lambda: cnp.corr2d(np.ones((4, 4)), np.ones((2, 2), dtype=np.complex64)), "kernel"),
        (lambda: cnp.max_pool2d(COMPLEX, 2), "x"),
        (lambda: cnp.avg_pool2d(COMPLEX, 2), "x"),
    ],
)
def test_complex_input_is_refused_not_truncated(call, name):
    # Casting complex to float keeps only the real part; a real-valued op must refuse instead.
    with pytest.raises(TypeError, match=rf"^{name} must be a real array, got complex"):
        call()
