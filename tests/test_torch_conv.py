"""cnnlab.torch.conv2d (im2col through F.unfold) against F.conv2d: values, gradients, dtypes."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from strategies import conv_cases

from cnnlab.torch import conv2d


def _tensors(case, dtype=torch.float64, requires_grad=False):
    g = torch.Generator().manual_seed(case["seed"])
    x = torch.randn(case["x_shape"], generator=g, dtype=dtype, requires_grad=requires_grad)
    w = torch.randn(case["w_shape"], generator=g, dtype=dtype, requires_grad=requires_grad)
    b = None
    if case["bias"]:
        b = torch.randn(case["w_shape"][0], generator=g, dtype=dtype, requires_grad=requires_grad)
    return x, w, b


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@given(conv_cases())
def test_matches_f_conv2d(case):
    x, w, b = _tensors(case)
    got = conv2d(x, w, b, **case["kwargs"])
    want = F.conv2d(x, w, b, **case["kwargs"])
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=0, atol=1e-9)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@given(conv_cases())
def test_gradients_match_f_conv2d(case):
    x, w, b = _tensors(case, requires_grad=True)
    inputs = [t for t in (x, w, b) if t is not None]
    upstream = torch.randn_like(F.conv2d(x, w, b, **case["kwargs"]))
    got = torch.autograd.grad((conv2d(x, w, b, **case["kwargs"]) * upstream).sum(), inputs)
    want = torch.autograd.grad((F.conv2d(x, w, b, **case["kwargs"]) * upstream).sum(), inputs)
    for g_got, g_want in zip(got, want, strict=True):
        torch.testing.assert_close(g_got, g_want, rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(stride=2, padding=1),
        dict(dilation=2, padding="same", groups=2),
        dict(stride=(1, 2), padding=(2, 0)),
    ],
)
def test_gradcheck(kwargs):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 6, 7, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(
        4, 4 // kwargs.get("groups", 1), 3, 2, generator=g, dtype=torch.float64, requires_grad=True
    )
    b = torch.randn(4, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: conv2d(x, w, b, **kwargs), (x, w, b))


@pytest.mark.parametrize(
    "dtype, tol", [(torch.float32, 1e-5), (torch.float16, 2e-2), (torch.bfloat16, 1e-1)]
)
def test_keeps_dtype(dtype, tol):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 3, 8, 8, generator=g)
    w = torch.randn(5, 3, 3, 3, generator=g)
    got = conv2d(x.to(dtype), w.to(dtype), padding=1)
    assert got.dtype == dtype
    torch.testing.assert_close(got.float(), F.conv2d(x, w, padding=1), rtol=tol, atol=tol * 10)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_runs_on_cuda():
    x = torch.randn(2, 4, 16, 16, device="cuda")
    w = torch.randn(8, 2, 3, 3, device="cuda")
    got = conv2d(x, w, padding=1, groups=2)
    assert got.device == x.device
    torch.testing.assert_close(got, F.conv2d(x, w, padding=1, groups=2), rtol=1e-4, atol=1e-4)


def test_agrees_with_numpy_reference():
    from cnnlab import numpy as cnp

    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 6, 9, 9, generator=g, dtype=torch.float64)
    w = torch.randn(4, 3, 3, 3, generator=g, dtype=torch.float64)
    got = conv2d(x, w, stride=2, padding=2, dilation=2, groups=2).numpy()
    want = cnp.conv2d(x.numpy(), w.numpy(), stride=2, padding=2, dilation=2, groups=2)
    np.testing.assert_allclose(got, want, atol=1e-12)


@pytest.mark.parametrize(
    "x_shape, w_shape, kwargs, message",
    [
        ((1, 3, 5, 5), (2, 4, 3, 3), {}, r"\(1, 3, 5, 5\).*\(2, 4, 3, 3\)"),
        ((1, 3, 5, 5), (2, 3, 3, 3), dict(stride=0), "stride must be >= 1"),
        ((1, 3, 5, 5), (2, 3, 7, 7), {}, "more than the padded input"),
        ((3, 5), (2, 3, 3, 3), {}, "got 2-D"),
    ],
)
def test_bad_input(x_shape, w_shape, kwargs, message):
    with pytest.raises(ValueError, match=message):
        conv2d(torch.zeros(x_shape), torch.zeros(w_shape), **kwargs)


def test_rejects_non_tensors():
    with pytest.raises(TypeError, match="torch.Tensor"):
        conv2d(np.zeros((1, 1, 3, 3)), torch.zeros(1, 1, 1, 1))
