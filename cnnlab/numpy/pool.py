"""Max and average pooling in NumPy, vectorised over a strided view of the windows."""

from __future__ import annotations

import numpy as np

from cnnlab._checks import pool2d_geometry
from cnnlab.geometry import IntOrPair, Window
from cnnlab.numpy.conv import as_float_array, pad2d, windows

__all__ = ["max_pool2d", "avg_pool2d"]


def _pool(x: np.ndarray, window: Window, pad_value: float, reduce) -> np.ndarray:
    batch = x if x.ndim == 4 else x[None]
    view = windows(pad2d(batch, window.padding, pad_value), window)  # (N, C, OH, OW, kh, kw)
    out = reduce(view)
    return out if x.ndim == 4 else out[0]


def max_pool2d(
    x: np.ndarray,
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
) -> np.ndarray:
    r"""Max pooling: the largest value in each (dilated) window.

    .. math:: \text{out}(n, c, i, j) = \max_{m, l}\; x_p(n, c, i s_h + m d_h, j s_w + l d_w)

    where ``x_p`` is ``x`` padded with -inf, so padding never wins the maximum.

    Parameters
    ----------
    x : array_like, shape (N, C, H, W) or (C, H, W)
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Defaults to ``kernel_size`` (non-overlapping windows).
    padding : int or (int, int)
        At most half the kernel size.
    dilation : int or (int, int)

    Returns
    -------
    ndarray, shape (N, C, OH, OW) or (C, OH, OW)
        Sizes from :func:`cnnlab.shapes.conv_output_size`.

    Examples
    --------
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> max_pool2d(x, 2)[0, 0]
    array([[ 5.,  7.],
           [13., 15.]])
    """
    x = as_float_array("x", x)
    window = pool2d_geometry(x.shape, kernel_size, stride, padding, dilation)
    return _pool(x, window, -np.inf, lambda v: v.max(axis=(-2, -1)))


def avg_pool2d(
    x: np.ndarray,
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
    padding: IntOrPair = 0,
) -> np.ndarray:
    r"""Average pooling: the mean of each window, padded zeros included.

    .. math:: \text{out}(n, c, i, j) = \frac{1}{k_h k_w} \sum_{m, l}\; x_p(n, c, i s_h + m, j s_w + l)

    with ``x_p`` zero-padded; zeros of the padding count in the mean, as in PyTorch's default
    ``count_include_pad=True``.

    Parameters
    ----------
    x : array_like, shape (N, C, H, W) or (C, H, W)
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Defaults to ``kernel_size``.
    padding : int or (int, int)
        At most half the kernel size.

    Returns
    -------
    ndarray, shape (N, C, OH, OW) or (C, OH, OW)

    Examples
    --------
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> avg_pool2d(x, 2)[0, 0]
    array([[ 2.5,  4.5],
           [10.5, 12.5]])
    """
    x = as_float_array("x", x)
    window = pool2d_geometry(x.shape, kernel_size, stride, padding, 1)
    return _pool(x, window, 0.0, lambda v: v.mean(axis=(-2, -1)))
