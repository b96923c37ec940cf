"""Tests for cnnlab.torch.antialias against independent references (repeated box filtering,
scipy.ndimage, average pooling) and the shift properties the blur is for."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import nn

from cnnlab.equivariance import equivariance_error
from cnnlab.torch.antialias import BlurPool2d, MaxBlurPool2d, antialias, binomial_filter


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7])
def test_binomial_filter_is_repeated_box_filter(size):
    row = np.array([1.0])
    for _ in range(size - 1):
        row = np.convolve(row, [0.5, 0.5])
    expected = np.outer(row, row)
    got = binomial_filter(size, torch.float64).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-15)
    assert got.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("stride", [1, 2, 3])
def test_filter_size_one_is_plain_subsampling(stride):
    x = torch.randn(2, 3, 9, 8)
    out = BlurPool2d(3, stride=stride, filter_size=1)(x)
    torch.testing.assert_close(out, x[..., ::stride, ::stride])


def test_filter_size_two_zero_padded_is_average_pooling():
    x = torch.randn(2, 3, 8, 10, dtype=torch.float64)
    out = BlurPool2d(3, stride=2, filter_size=2, padding_mode="zero")(x)
    torch.testing.assert_close(out, F.avg_pool2d(x, 2))


@pytest.mark.parametrize(
    "torch_mode,scipy_mode", [("reflect", "mirror"), ("zero", "constant"), ("circular", "wrap")]
)
@pytest.mark.parametrize("filter_size", [3, 5])
def test_blurpool_is_scipy_blur_then_subsample(torch_mode, scipy_mode, filter_size):
    x = np.random.default_rng(0).standard_normal((1, 2, 11, 10))
    kernel = binomial_filter(filter_size, torch.float64).numpy()
    blurred = np.stack([ndimage.correlate(x[0, c], kernel, mode=scipy_mode) for c in range(2)])[
        None
    ]
    out = BlurPool2d(2, 2, filter_size, torch_mode)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, blurred[..., ::2, ::2], atol=1e-12)
    assert out.shape[-2:] == (6, 5)  # ceil(H / 2), ceil(W / 2)


def test_circular_blurpool_and_maxblurpool_commute_with_shifts_by_the_stride():
    x = torch.randn(1, 3, 12, 12, dtype=torch.float64)
    blur = BlurPool2d(3, 2, 3, "circular")
    maxblur = MaxBlurPool2d(3, 2, 2, 3, "circular")
    for dy, dx in [(2, 0), (-4, 6), (10, 2)]:
        assert equivariance_error(blur, x, dy, dx, stride=2) < 1e-12
        assert equivariance_error(maxblur, x, dy, dx, stride=2) < 1e-12
    assert equivariance_error(maxblur, x, 1, 0, stride=2) > 1e-3


def test_blur_reduces_the_aliasing_of_a_one_pixel_shift():
    # A bright dot moving one pixel: plain max pooling jumps between two outputs, the blurred
    # version changes smoothly, so its distance from the half-pixel (Fourier) shift is smaller.
    x = torch.zeros(1, 1, 16, 16, dtype=torch.float64)
    x[..., 7, 7] = 1.0
    plain = equivariance_error(lambda a: F.max_pool2d(a, 2), x, 1, 1, stride=2)
    blurred = equivariance_error(MaxBlurPool2d(1, padding_mode="circular"), x, 1, 1, stride=2)
    assert blurred < plain


def test_maxblurpool_shape_matches_maxpool():
    x = torch.randn(2, 4, 16, 14)
    assert MaxBlurPool2d(4)(x).shape == F.max_pool2d(x, 2).shape
    assert MaxBlurPool2d(4, padding_mode="circular")(x).shape == F.max_pool2d(x, 2).shape


def test_antialias_replaces_strided_max_pools_and_leaves_the_original():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.MaxPool2d(3, stride=1)),
    )
    aa = antialias(net, filter_size=5, padding_mode="zero")
    assert isinstance(net[2], nn.MaxPool2d)
    assert isinstance(aa[2], MaxBlurPool2d) and aa[2].blur.filter_size == 5
    assert isinstance(aa[3][1], nn.MaxPool2d)  # stride 1: nothing to anti-alias
    for p, q in zip(net.parameters(), aa.parameters(), strict=True):
        torch.testing.assert_close(p, q)
    assert aa(torch.randn(1, 1, 8, 8)).shape == net(torch.randn(1, 1, 8, 8)).shape


def test_blurpool_is_differentiable_and_not_learned():
    blur = BlurPool2d(2)
    assert list(blur.parameters()) == []
    x = torch.randn(1, 2, 6, 6, requires_grad=True)
    blur(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_blurpool_rejects_bad_arguments():
    with pytest.raises(ValueError, match="padding_mode"):
        BlurPool2d(2, padding_mode="replicate")
    with pytest.raises(ValueError, match="channels"):
        BlurPool2d(0)
    with pytest.raises(ValueError, match="stride"):
        BlurPool2d(2, stride=0)
    with pytest.raises(ValueError, match="size"):
        binomial_filter(0)
    with pytest.raises(ValueError, match="4 channels"):
        BlurPool2d(4)(torch.zeros(1, 3, 6, 6))
    with pytest.raises(ValueError, match="N, C, H, W"):
        BlurPool2d(4)(torch.zeros(4, 6, 6))
    with pytest.raises(TypeError, match="model"):
        antialias("not a model")
