"""Anti-aliased downsampling: blur before subsampling (Zhang 2019, "Making Convolutional
Networks Shift-Invariant Again").

Taking every ``s``-th pixel of a feature map (a stride) keeps frequencies above the new Nyquist
limit, which fold back (alias) as lower ones; a one-pixel shift of the input then changes the
subsampled map by more than a shift. Low-pass filtering first removes most of what would alias.
Zhang splits a strided max pooling into its two parts, a dense max (stride 1) and a
subsampling, and puts a fixed binomial blur before the subsampling:

    MaxPool(k, stride=s)  ->  MaxPool(k, stride=1), then BlurPool(stride=s)
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.shapes import IntOrPair, pair

__all__ = ["binomial_filter", "BlurPool2d", "MaxBlurPool2d", "antialias"]

_PAD_MODES = {"reflect": "reflect", "zero": "constant", "circular": "circular"}


def binomial_filter(size: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    r"""The normalised 2-D binomial filter of a given size, a cheap approximation of a Gaussian.

    .. math:: K = b b^\top, \quad b_m = \binom{n - 1}{m} / 2^{n - 1}, \quad m = 0..n-1

    Sizes 1, 2, 3, 4, 5 give the rows [1], [1 1]/2, [1 2 1]/4, [1 3 3 1]/8, [1 4 6 4 1]/16.

    Parameters
    ----------
    size : int
        ``n``, at least 1.
    dtype : torch.dtype

    Returns
    -------
    Tensor, shape (size, size)
        Non-negative, sums to 1.

    Examples
    --------
    >>> binomial_filter(3) * 16
    tensor([[1., 2., 1.],
            [2., 4., 2.],
            [1., 2., 1.]])
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be an int >= 1, got {size!r}")
    row = torch.tensor([math.comb(size - 1, m) for m in range(size)], dtype=torch.float64)
    row = row / row.sum()
    return torch.outer(row, row).to(dtype)


class BlurPool2d(nn.Module):
    r"""Blur each channel with a fixed binomial filter, then subsample by ``stride``.

    .. math:: \text{out}(n, c) = \big(\text{pad}(x(n, c)) \star K\big)[:: s, :: s]

    a depthwise convolution with the :func:`binomial_filter` ``K`` (not learned; stored as a
    buffer) and stride ``s``. The padding (``filter_size - 1`` in total, the extra pixel at the
    bottom/right for even sizes) keeps ``out = ceil(H / s)``.

    Parameters
    ----------
    channels : int or None
        Number of channels, checked against the input when given; ``None`` accepts any.
    stride : int or (int, int)
        Subsampling factor ``s``.
    filter_size : int
        Size of the binomial filter; 1 means no blur (plain subsampling).
    padding_mode : {'reflect', 'zero', 'circular'}
        How the border is padded. ``'reflect'`` is Zhang's default; ``'circular'`` keeps exact
        equivariance to circular shifts by multiples of ``s``.

    Shape
    -----
    - Input: (N, C, H, W)
    - Output: (N, C, ceil(H / s_h), ceil(W / s_w))

    Examples
    --------
    >>> blur = BlurPool2d(4, stride=2)
    >>> blur(torch.randn(1, 4, 9, 8)).shape
    torch.Size([1, 4, 5, 4])
    >>> float(blur(torch.ones(1, 4, 8, 8)).max())  # constants pass unchanged
    1.0
    """

    filter: torch.Tensor

    def __init__(
        self,
        channels: int | None = None,
        stride: IntOrPair = 2,
        filter_size: int = 3,
        padding_mode: str = "reflect",
    ) -> None:
        super().__init__()
        if channels is not None and (
            isinstance(channels, bool) or not isinstance(channels, int) or channels < 1
        ):
            raise ValueError(f"channels must be a positive int or None, got {channels!r}")
        if padding_mode not in _PAD_MODES:
            raise ValueError(
                f"padding_mode must be one of {tuple(_PAD_MODES)}, got {padding_mode!r}"
            )
        self.channels = channels
        self.stride = pair(stride, "stride")
        if min(self.stride) < 1:
            raise ValueError(f"stride must be >= 1, got {stride!r}")
        self.filter_size = filter_size
        self.padding_mode = padding_mode
        self.register_buffer("filter", binomial_filter(filter_size)[None, None])
        before = (filter_size - 1) // 2
        self._pads = (before, filter_size - 1 - before) * 2  # (left, right, top, bottom)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"BlurPool2d expects (N, C, H, W), got shape {tuple(x.shape)}")
        c = x.shape[1]
        if self.channels is not None and c != self.channels:
            raise ValueError(
                f"BlurPool2d was built for {self.channels} channels, got input with {c}"
            )
        if self.filter_size > 1:
            x = F.pad(x, self._pads, mode=_PAD_MODES[self.padding_mode])
        weight = self.filter.to(x.dtype).expand(c, 1, -1, -1)
        return F.conv2d(x, weight, stride=self.stride, groups=c)

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, stride={self.stride}, filter_size={self.filter_size}, "
            f"padding_mode={self.padding_mode!r}"
        )


class MaxBlurPool2d(nn.Module):
    r"""Zhang's anti-aliased max pooling: a dense max (stride 1), then :class:`BlurPool2d`.

    .. math:: \text{MaxBlurPool}_{k, s} = \text{BlurPool}_s \circ \text{MaxPool}_{k, 1}

    replaces ``MaxPool2d(k, stride=s)``. With ``padding_mode='circular'`` the dense max wraps
    around (the input is padded circularly by ``k - 1`` at the bottom/right), so the whole
    layer commutes exactly with circular shifts by multiples of ``s``; otherwise the dense max
    is unpadded, as in Zhang's code, and the output is ``ceil((H - k + 1) / s)``, the same as
    ``MaxPool2d(k, s)`` for ``k = s = 2`` and even ``H``.

    Parameters
    ----------
    channels : int or None
    kernel_size : int
        Max-pooling window ``k``.
    stride : int
        Subsampling ``s``.
    filter_size : int
        Binomial blur size.
    padding_mode : {'reflect', 'zero', 'circular'}

    Examples
    --------
    >>> pool = MaxBlurPool2d(3)
    >>> pool(torch.randn(2, 3, 16, 16)).shape
    torch.Size([2, 3, 8, 8])
    """

    def __init__(
        self,
        channels: int | None = None,
        kernel_size: int = 2,
        stride: int = 2,
        filter_size: int = 3,
        padding_mode: str = "reflect",
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.padding_mode = padding_mode
        self.max = nn.MaxPool2d(kernel_size, stride=1)
        self.blur = BlurPool2d(channels, stride, filter_size, padding_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding_mode == "circular" and self.kernel_size > 1:
            k = self.kernel_size - 1
            x = F.pad(x, (0, k, 0, k), mode="circular")
        return self.blur(self.max(x))


def antialias(model: nn.Module, filter_size: int = 3, padding_mode: str = "reflect") -> nn.Module:
    """A copy of ``model`` with every strided ``nn.MaxPool2d`` replaced by :class:`MaxBlurPool2d`.

    ``MaxPool2d(k, stride=s)`` with ``s > 1`` becomes ``MaxBlurPool2d(k, s)``; pools with
    padding, dilation or non-square settings are left alone (and so are strided convolutions).
    The copy has the same parameters (no pooling layer has any), so the result can be trained
    from the same initialisation. The original model is not modified.

    Parameters
    ----------
    model : nn.Module
    filter_size : int
    padding_mode : {'reflect', 'zero', 'circular'}

    Returns
    -------
    nn.Module

    Examples
    --------
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
    >>> antialias(net)[2]
    MaxBlurPool2d(
      (max): MaxPool2d(kernel_size=2, stride=1, padding=0, dilation=1, ceil_mode=False)
      (blur): BlurPool2d(channels=None, stride=(2, 2), filter_size=3, padding_mode='reflect')
    )
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    model = copy.deepcopy(model)

    def replace(parent: nn.Module) -> None:
        for name, child in parent.named_children():
            if isinstance(child, nn.MaxPool2d):
                k, s = child.kernel_size, child.stride
                square = isinstance(k, int) and isinstance(s, int)
                if square and s > 1 and child.padding == 0 and child.dilation == 1:
                    setattr(parent, name, MaxBlurPool2d(None, k, s, filter_size, padding_mode))
            else:
                replace(child)

    replace(model)
    return model
