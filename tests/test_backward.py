"""Gradients of convolution and pooling (cnnlab.numpy) against torch.autograd, in float64.

Every expected gradient is computed by ``torch.autograd`` on ``F.conv2d``, ``F.max_pool2d`` or
``F.avg_pool2d`` with the same arguments; ``conv_matrix`` is checked against ``F.conv2d``
(``y = C x``) and ``F.conv_transpose2d`` (``C^T``).
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st
from strategies import conv_cases, pool_cases

from cnnlab import numpy as cnp
from cnnlab.numpy.conv_matrix import MAX_ENTRIES

TOL = 1e-10


def _conv_autograd(x, w, b, g, **kwargs):
    """(dL/dx, dL/dw, dL/db) of L = sum(g * conv2d(x, w, b)), by torch.autograd."""
    xt = torch.from_numpy(x).requires_grad_()
    wt = torch.from_numpy(w).requires_grad_()
    bt = torch.from_numpy(b).requires_grad_()
    y = F.conv2d(xt, wt, bt, **kwargs)
    assert tuple(y.shape) == g.shape
    y.backward(torch.from_numpy(g))
    return xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()


def _conv_inputs(case):
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal(case["x_shape"])
    w = rng.standard_normal(case["w_shape"])
    b = rng.standard_normal(case["w_shape"][0])
    with torch.no_grad():
        out_shape = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), **case["kwargs"]).shape
    return x, w, b, rng.standard_normal(tuple(out_shape))


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@given(conv_cases())
def test_conv2d_backward_matches_autograd(case):
    x, w, b, g = _conv_inputs(case)
    want = _conv_autograd(x, w, b, g, **case["kwargs"])
    got = cnp.conv2d_backward(g, x, w, **case["kwargs"])
    for name, a, e in zip(("grad_x", "grad_weight", "grad_bias"), got, want, strict=True):
        assert a.shape == e.shape, name
        np.testing.assert_allclose(a, e, rtol=0, atol=TOL, err_msg=name)


@given(conv_cases(allow_same=False))
def test_conv2d_backward_unbatched(case):
    x, w, b, g = _conv_inputs(case)
    want = _conv_autograd(x[:1], w, b, g[:1], **case["kwargs"])
    got = cnp.conv2d_backward(g[0], x[0], w, **case["kwargs"])
    np.testing.assert_allclose(got[0], want[0][0], rtol=0, atol=TOL)
    np.testing.assert_allclose(got[1], want[1], rtol=0, atol=TOL)
    np.testing.assert_allclose(got[2], want[2], rtol=0, atol=TOL)


@given(conv_cases(allow_same=False))
def test_conv2d_backward_is_the_adjoint_of_the_forward(case):
    """<g, conv(x)> = <conv_backward_x(g), x>: the input gradient is the transpose (adjoint)."""
    x, w, _, g = _conv_inputs(case)
    lhs = np.sum(g * cnp.conv2d(x, w, **case["kwargs"]))
    rhs = np.sum(cnp.conv2d_backward(g, x, w, **case["kwargs"])[0] * x)
    assert abs(lhs - rhs) <= 1e-9 * (1 + abs(lhs))


def test_conv2d_backward_float32_stays_float32():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 9, 9)).astype(np.float32)
    w = rng.standard_normal((6, 2, 3, 3)).astype(np.float32)
    g = rng.standard_normal((2, 6, 5, 5)).astype(np.float32)
    got = cnp.conv2d_backward(g, x, w, stride=2, padding=1, groups=2)
    assert [a.dtype for a in got] == [np.float32] * 3
    want = _conv_autograd(
        x.astype(float),
        w.astype(float),
        np.zeros(6),
        g.astype(float),
        stride=2,
        padding=1,
        groups=2,
    )
    for a, e in zip(got, want, strict=True):
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-4)


def test_conv2d_backward_errors_name_both_shapes():
    x, w = np.zeros((2, 3, 8, 8)), np.zeros((4, 3, 3, 3))
    with pytest.raises(ValueError, match=r"\(2, 4, 5, 5\).*\(2, 3, 8, 8\).*\(4, 3, 3, 3\)"):
        cnp.conv2d_backward(np.zeros((2, 4, 5, 5)), x, w)
    with pytest.raises(ValueError, match=r"\(2, 3, 8, 8\).*\(4, 2, 3, 3\)"):
        cnp.conv2d_backward(np.zeros((2, 4, 6, 6)), x, np.zeros((4, 2, 3, 3)))
    with pytest.raises(ValueError, match="stride"):
        cnp.conv2d_backward(np.zeros((2, 4, 6, 6)), x, w, stride=0)
    with pytest.raises(TypeError, match="grad_output"):
        cnp.conv2d_backward(np.array([["a"]]), x, w)


# --- pooling -------------------------------------------------------------------------------


def _pool_inputs(case, integers):
    rng = np.random.default_rng(case["seed"])
    if integers:  # few distinct values: many ties inside windows
        x = rng.integers(0, 3, size=case["x_shape"]).astype(np.float64)
    else:
        x = rng.standard_normal(case["x_shape"])
    return x, rng


def _pool_autograd(pool, x, g_rng, **kwargs):
    xt = torch.from_numpy(x).requires_grad_()
    y = pool(xt, **kwargs)
    # With dilation a window can lie wholly in the padding: its maximum is -inf and torch's
    # backward then reads an index outside the input (it can corrupt the heap), so skip those.
    assume(bool(torch.isfinite(y).all()))
    g = g_rng.standard_normal(tuple(y.shape))
    y.backward(torch.from_numpy(g))
    return g, xt.grad.numpy()


@given(pool_cases(), st.booleans())
def test_max_pool2d_backward_matches_autograd_with_ties(case, integers):
    x, rng = _pool_inputs(case, integers)
    kwargs = {k: case[k] for k in ("kernel_size", "stride", "padding", "dilation")}
    g, want = _pool_autograd(F.max_pool2d, x, rng, **kwargs)
    got = cnp.max_pool2d_backward(g, x, **kwargs)
    assert got.shape == x.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)
    got3 = cnp.max_pool2d_backward(g[0], x[0], **kwargs)
    np.testing.assert_allclose(got3, want[0], rtol=0, atol=TOL)


def test_max_pool2d_backward_all_equal_window_goes_to_its_first_pixel():
    x = np.ones((1, 1, 4, 4))
    g = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    xt = torch.from_numpy(x).requires_grad_()
    F.max_pool2d(xt, 2, stride=1).backward(torch.from_numpy(g))
    got = cnp.max_pool2d_backward(g, x, 2, stride=1)
    np.testing.assert_array_equal(got, xt.grad.numpy())
    np.testing.assert_array_equal(got[0, 0, :3, :3], g[0, 0])  # top-left of each window wins


@given(pool_cases(with_dilation=False))
def test_avg_pool2d_backward_matches_autograd(case):
    x, rng = _pool_inputs(case, integers=False)
    kwargs = {k: case[k] for k in ("kernel_size", "stride", "padding")}
    g, want = _pool_autograd(F.avg_pool2d, x, rng, **kwargs)
    got = cnp.avg_pool2d_backward(g, x, **kwargs)
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)
    np.testing.assert_allclose(cnp.avg_pool2d_backward(g[0], x[0], **kwargs), want[0], atol=TOL)


def test_pool_backward_errors_name_both_shapes():
    x = np.zeros((1, 2, 6, 6))
    with pytest.raises(ValueError, match=r"\(1, 2, 2, 2\).*\(1, 2, 6, 6\).*\(1, 2, 3, 3\)"):
        cnp.max_pool2d_backward(np.zeros((1, 2, 2, 2)), x, 2)
    with pytest.raises(ValueError, match=r"\(1, 2, 2, 2\).*\(1, 2, 6, 6\)"):
        cnp.avg_pool2d_backward(np.zeros((1, 2, 2, 2)), x, 2)
    with pytest.raises(ValueError, match="padding"):
        cnp.avg_pool2d_backward(np.zeros((1, 2, 3, 3)), x, 2, padding=2)


def test_pool_backward_float32_stays_float32():
    x = np.random.default_rng(1).standard_normal((1, 2, 6, 6)).astype(np.float32)
    g = np.ones((1, 2, 3, 3), np.float32)
    assert cnp.max_pool2d_backward(g, x, 2).dtype == np.float32
    assert cnp.avg_pool2d_backward(g, x, 2).dtype == np.float32


# --- convolution as a matrix ----------------------------------------------------------------


@st.composite
def matrix_cases(draw):
    """A small F.conv2d configuration without groups or string padding."""
    c_in, c_out = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    d = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    p = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    span = (d[0] * (kh - 1) + 1, d[1] * (kw - 1) + 1)
    lowest = (max(1, span[0] - 2 * p[0]), max(1, span[1] - 2 * p[1]))
    h = draw(st.integers(lowest[0], lowest[0] + 6))
    w = draw(st.integers(lowest[1], lowest[1] + 6))
    return dict(
        input_shape=(c_in, h, w),
        w_shape=(c_out, c_in, kh, kw),
        kwargs=dict(stride=s, padding=p, dilation=d),
        seed=draw(st.integers(0, 2**31 - 1)),
    )


@given(matrix_cases())
def test_conv_matrix_times_x_is_conv2d(case):
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal(case["input_shape"])
    w = rng.standard_normal(case["w_shape"])
    C = cnp.conv_matrix(case["input_shape"], w, **case["kwargs"])
    want = F.conv2d(torch.from_numpy(x)[None], torch.from_numpy(w), **case["kwargs"])[0]
    assert C.shape == (want.numel(), x.size)
    np.testing.assert_allclose(C @ x.ravel(), want.numpy().ravel(), rtol=0, atol=TOL)


@given(matrix_cases())
def test_conv_matrix_transpose_is_conv_transpose2d(case):
    rng = np.random.default_rng(case["seed"])
    w = rng.standard_normal(case["w_shape"])
    C = cnp.conv_matrix(case["input_shape"], w, **case["kwargs"])
    c_in, h, width = case["input_shape"]
    s, p, d = (case["kwargs"][k] for k in ("stride", "padding", "dilation"))
    kh, kw = case["w_shape"][2:]
    oh = (h + 2 * p[0] - d[0] * (kh - 1) - 1) // s[0] + 1
    ow = (width + 2 * p[1] - d[1] * (kw - 1) - 1) // s[1] + 1
    y = rng.standard_normal((case["w_shape"][0], oh, ow))
    # The rows the last window did not reach: output_padding restores the input's size.
    extra = (
        h - ((oh - 1) * s[0] - 2 * p[0] + d[0] * (kh - 1) + 1),
        width - ((ow - 1) * s[1] - 2 * p[1] + d[1] * (kw - 1) + 1),
    )
    want = F.conv_transpose2d(
        torch.from_numpy(y)[None],
        torch.from_numpy(w),
        stride=s,
        padding=p,
        output_padding=extra,
        dilation=d,
    )[0]
    assert tuple(want.shape) == case["input_shape"]
    np.testing.assert_allclose(C.T @ y.ravel(), want.numpy().ravel(), rtol=0, atol=TOL)
    # and C^T is the input gradient of the convolution
    grad_x = cnp.conv2d_backward(y, np.zeros(case["input_shape"]), w, **case["kwargs"])[0]
    np.testing.assert_allclose(C.T @ y.ravel(), grad_x.ravel(), rtol=0, atol=TOL)


def test_conv_matrix_single_channel_example_and_sparsity():
    w = np.arange(1.0, 10.0).reshape(3, 3)
    C = cnp.conv_matrix((4, 4), w)
    assert C.shape == (4, 16)
    assert np.count_nonzero(C) == 4 * 9
    np.testing.assert_array_equal(C[3].reshape(4, 4)[1:, 1:], w)


def test_conv_matrix_refuses_large_and_mismatched_inputs():
    with pytest.raises(ValueError, match="over the limit"):
        cnp.conv_matrix((64, 64, 64), np.zeros((64, 64, 3, 3)), padding=1)
    assert 64 * 64 * 64 * 64 * 64 * 64 > MAX_ENTRIES
    with pytest.raises(ValueError, match=r"\(3, 8, 8\).*\(4, 2, 3, 3\)"):
        cnp.conv_matrix((3, 8, 8), np.zeros((4, 2, 3, 3)))
    with pytest.raises(ValueError, match=r"\(8, 8\).*\(4, 2, 3, 3\)"):
        cnp.conv_matrix((8, 8), np.zeros((4, 2, 3, 3)))
