"""The backward pass of max and average pooling in NumPy.

Written by hand, as the chapter on gradients derives it. A pooling layer has no weights, so its
backward pass only routes each output gradient back to the input pixels of its window:

* max pooling sends all of ``g(n, c, i, j)`` to the one pixel that won the maximum (the first
  in row-major order within the window when several tie, as PyTorch does), and nothing to the
  others;
* average pooling spreads it evenly, ``g / (kh kw)`` to every pixel of the window (padded
  zeros included in the count, and their share dropped with the padding).

Overlapping windows (stride smaller than the kernel) add their contributions. Both are
vectorised over all windows at once.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from cnnlab.numpy.conv import as_float_array
from cnnlab.shapes import IntOrPair, check_int, pair

__all__ = ["max_pool2d_backward", "avg_pool2d_backward"]


def _geometry(grad_output, x, kernel_size, stride, padding, dilation):
    """Check the arguments; return (batched x, batched g, k, s, p, d, (OH, OW))."""
    if x.ndim not in (3, 4):
        raise ValueError(f"x must be 4-D (N, C, H, W) or 3-D (C, H, W), got shape {x.shape}")
    k = pair(kernel_size, "kernel_size", minimum=1)
    s = k if stride is None else pair(stride, "stride", minimum=1)
    d = pair(dilation, "dilation", minimum=1)
    ph, pw = pair(padding, "padding")
    p = (check_int("padding", ph, minimum=0), check_int("padding", pw, minimum=0))
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"padding {p} must be at most half the kernel size {k}")
    h, w = x.shape[-2:]
    span = (d[0] * (k[0] - 1) + 1, d[1] * (k[1] - 1) + 1)
    if span[0] > h + 2 * p[0] or span[1] > w + 2 * p[1]:
        raise ValueError(
            f"the window of kernel_size {k} with dilation {d} spans {span}, more than the "
            f"padded input of x shape {x.shape} with padding {p}"
        )
    out = ((h + 2 * p[0] - span[0]) // s[0] + 1, (w + 2 * p[1] - span[1]) // s[1] + 1)
    expected = (*x.shape[:-2], *out)
    if grad_output.shape != expected:
        raise ValueError(
            f"grad_output has shape {grad_output.shape}, but pooling x of shape {x.shape} "
            f"with kernel_size {k}, stride {s}, padding {p}, dilation {d} gives {expected}"
        )
    batched = x.ndim == 4
    xb, gb = (x, grad_output) if batched else (x[None], grad_output[None])
    return xb, gb, k, s, p, d, out


def max_pool2d_backward(
    grad_output: np.ndarray,
    x: np.ndarray,
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
) -> np.ndarray:
    r"""Gradient of max pooling with respect to its input.

    .. math::

        \frac{\partial L}{\partial x(n, c, u, v)} = \sum_{(i, j):\ a(n, c, i, j) = (u, v)}
            g(n, c, i, j)

    where ``a(n, c, i, j)`` is the input pixel that won the maximum of window ``(i, j)`` in
    :func:`cnnlab.numpy.max_pool2d` (padding, -inf, never wins). Among tied pixels the first in
    row-major order of the window wins, as in PyTorch's CPU kernel; inputs with NaN are not
    handled as PyTorch handles them. A window made only of padding (possible with dilation)
    has the maximum -inf and sends no gradient. Written by hand: one ``argmax`` over a strided view of every
    window, then one ``bincount`` that adds each window's gradient at its winner.

    Parameters
    ----------
    grad_output : array_like, shape (N, C, OH, OW) or (C, OH, OW)
        ``dL/dy`` for ``y = max_pool2d(x, kernel_size, stride, padding, dilation)``.
    x : array_like, shape (N, C, H, W) or (C, H, W)
        The pooling layer's input.
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Defaults to ``kernel_size``.
    padding : int or (int, int)
        At most half the kernel size.
    dilation : int or (int, int)

    Returns
    -------
    ndarray, shape of ``x``
        float32 inputs give float32, anything else float64.

    Examples
    --------
    >>> x = np.array([[[[1.0, 5.0], [3.0, 5.0]]]])
    >>> max_pool2d_backward(np.ones((1, 1, 1, 1)), x, 2)[0, 0]
    array([[0., 1.],
           [0., 0.]])
    """
    grad_output = as_float_array("grad_output", grad_output)
    x = as_float_array("x", x)
    xb, g, (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow) = _geometry(
        grad_output, x, kernel_size, stride, padding, dilation
    )
    dtype = np.result_type(g, x)
    n, c, h, w = xb.shape
    padded = np.pad(xb, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
    hp, wp = padded.shape[-2:]
    es = padded.strides
    windows = as_strided(  # (N, C, OH, OW, kh, kw): windows[..., i, j, m, l] = x_p[i s + m d, ...]
        padded,
        shape=(n, c, oh, ow, kh, kw),
        strides=(es[0], es[1], es[2] * sh, es[3] * sw, es[2] * dh, es[3] * dw),
        writeable=False,
    )
    winner = windows.reshape(n, c, oh, ow, kh * kw).argmax(axis=-1)  # first maximum wins
    m, col = np.divmod(winner, kw)
    rows = np.arange(oh)[:, None] * sh + m * dh  # (N, C, OH, OW), in padded coordinates
    cols = np.arange(ow) * sw + col * dw
    plane = np.arange(n * c).reshape(n, c, 1, 1) * (hp * wp)
    flat = (plane + rows * wp + cols).ravel()
    grad = np.bincount(flat, weights=g.ravel().astype(np.float64), minlength=n * c * hp * wp)
    grad = grad.reshape(n, c, hp, wp)[:, :, ph : hp - ph, pw : wp - pw].astype(dtype)
    return grad if x.ndim == 4 else grad[0]


def avg_pool2d_backward(
    grad_output: np.ndarray,
    x: np.ndarray,
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
    padding: IntOrPair = 0,
) -> np.ndarray:
    r"""Gradient of average pooling with respect to its input.

    .. math::

        \frac{\partial L}{\partial x_p(n, c, u, v)} = \frac{1}{k_h k_w}
            \sum_{(i, j):\ (u, v) \in \text{window}(i, j)} g(n, c, i, j)

    for ``y = avg_pool2d(x, kernel_size, stride, padding)`` (:func:`cnnlab.numpy.avg_pool2d`,
    padded zeros counted in the mean, as PyTorch's default ``count_include_pad=True``), then
    cropped to ``x``'s size. Written by hand: one loop over the ``kh * kw`` window positions,
    each adding ``g / (kh kw)`` to a strided slice of the padded gradient.

    Parameters
    ----------
    grad_output : array_like, shape (N, C, OH, OW) or (C, OH, OW)
    x : array_like, shape (N, C, H, W) or (C, H, W)
        The pooling layer's input (only its shape is used).
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Defaults to ``kernel_size``.
    padding : int or (int, int)
        At most half the kernel size.

    Returns
    -------
    ndarray, shape of ``x``

    Examples
    --------
    >>> avg_pool2d_backward(np.ones((1, 1, 1, 1)), np.zeros((1, 1, 2, 2)), 2)[0, 0]
    array([[0.25, 0.25],
           [0.25, 0.25]])
    """
    grad_output = as_float_array("grad_output", grad_output)
    x = as_float_array("x", x)
    xb, g, (kh, kw), (sh, sw), (ph, pw), _, (oh, ow) = _geometry(
        grad_output, x, kernel_size, stride, padding, 1
    )
    n, c, h, w = xb.shape
    dtype = np.result_type(g, x)
    share = g.astype(dtype, copy=False) / (kh * kw)
    grad = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=dtype)
    for m in range(kh):
        for col in range(kw):
            grad[:, :, m : m + sh * (oh - 1) + 1 : sh, col : col + sw * (ow - 1) + 1 : sw] += share
    grad = np.ascontiguousarray(grad[:, :, ph : ph + h, pw : pw + w])
    return grad if x.ndim == 4 else grad[0]
