r"""The backward pass of a 2-D convolution in NumPy: gradients of the input, weights and bias.

Written by hand, as the chapter on gradients derives it. The forward pass is

.. math::

    y(n, o, i, j) = b(o) + \sum_{c \in g(o)} \sum_{m, l}
        x_p(n, c, i s_h + m d_h, j s_w + l d_w)\, w(o, c, m, l)

(:func:`cnnlab.numpy.conv2d`, :func:`torch.nn.functional.conv2d`). Given the gradient
``g = dL/dy`` of a loss with respect to the output, the chain rule gives three sums over the
same index set, one per argument:

* ``dL/db(o) = sum_{n, i, j} g(n, o, i, j)``;
* ``dL/dw(o, c, m, l) = sum_{n, i, j} g(n, o, i, j) x_p(n, c, i s_h + m d_h, j s_w + l d_w)``:
  a cross-correlation of the input with the output gradient (the forward's stride becomes a
  dilation of ``g``);
* ``dL/dx_p(n, c, u, v) = sum_{o, m, l} g(n, o, i, j) w(o, c, m, l)`` over the ``(i, j, m, l)``
  with ``i s_h + m d_h = u`` and ``j s_w + l d_w = v``: every output gradient is spread back over
  the window it came from, weighted by the kernel. This is a *transposed convolution*, or
  equally a 'full' cross-correlation of ``g`` (with ``s - 1`` zeros between its pixels) with
  the kernel flipped in both axes; the padding is then cropped off.

Each sum is computed here as one loop over the ``kh * kw`` kernel taps, each step a matrix
product over every pixel at once: no Python loop over output pixels.
"""

from __future__ import annotations

import numpy as np

from cnnlab.numpy.conv import as_float_array
from cnnlab.shapes import IntOrPair, check_int, pair

__all__ = ["conv2d_backward"]

Pads = tuple[tuple[int, int], tuple[int, int]]


def _pads(padding: IntOrPair | str, span: tuple[int, int], stride: tuple[int, int]) -> Pads:
    """Per-side padding ``((top, bottom), (left, right))`` from an int, a pair, 'valid', 'same'."""
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0), (0, 0))
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(f"padding='same' needs stride 1, got stride {stride}")
            totals = (span[0] - 1, span[1] - 1)
            return tuple((t // 2, t - t // 2) for t in totals)  # type: ignore[return-value]
        raise ValueError(
            f"padding must be an int, an (h, w) pair, 'valid' or 'same', got {padding!r}"
        )
    ph, pw = pair(padding, "padding")
    ph, pw = check_int("padding", ph, minimum=0), check_int("padding", pw, minimum=0)
    return ((ph, ph), (pw, pw))


def _taps(kernel_size, stride, dilation, out_size):
    """Yield ``(m, l, rows, cols)``: each kernel tap and the slices of the padded input that
    it meets over all output pixels, ``x_p[..., i s_h + m d_h, j s_w + l d_w]`` for every (i, j)."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel_size, stride, dilation, out_size
    for m in range(kh):
        rows = slice(m * dh, m * dh + sh * (oh - 1) + 1, sh)
        for col in range(kw):
            cols = slice(col * dw, col * dw + sw * (ow - 1) + 1, sw)
            yield m, col, rows, cols


def conv2d_backward(
    grad_output: np.ndarray,
    x: np.ndarray,
    weight: np.ndarray,
    stride: IntOrPair = 1,
    padding: IntOrPair | str = 0,
    dilation: IntOrPair = 1,
    groups: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Gradients of a 2-D convolution with respect to its input, weights and bias.

    For ``y = conv2d(x, weight, bias, stride, padding, dilation, groups)`` and
    ``g = dL/dy``:

    .. math::

        \frac{\partial L}{\partial b(o)} &= \sum_{n, i, j} g(n, o, i, j) \\
        \frac{\partial L}{\partial w(o, c, m, l)} &= \sum_{n, i, j} g(n, o, i, j)\,
            x_p(n, c, i s_h + m d_h, j s_w + l d_w) \\
        \frac{\partial L}{\partial x_p(n, c, u, v)} &= \sum_{o \in g(c)}
            \sum_{\substack{i, m:\ i s_h + m d_h = u \\ j, l:\ j s_w + l d_w = v}}
            g(n, o, i, j)\, w(o, c, m, l)

    and ``dL/dx`` is ``dL/dx_p`` with the padding cropped off. The input gradient is the
    transposed convolution of ``g`` with the same weights (a 'full' cross-correlation of the
    zero-upsampled ``g`` with the flipped kernel); the weight gradient is a cross-correlation
    of the input with ``g``. Written by hand as one loop over the kernel taps, each a
    matrix product over all pixels; equal to :func:`torch.autograd` on
    :func:`torch.nn.functional.conv2d`. The bias is not needed: its gradient does not
    depend on it.

    Parameters
    ----------
    grad_output : array_like, shape (N, C_out, OH, OW) or (C_out, OH, OW)
        ``dL/dy``, shaped as the convolution's output.
    x : array_like, shape (N, C_in, H, W) or (C_in, H, W)
        The convolution's input.
    weight : array_like, shape (C_out, C_in / groups, kh, kw)
        Its filters.
    stride, dilation : int or (int, int)
        At least 1.
    padding : int, (int, int), 'valid' or 'same'
        As for :func:`cnnlab.numpy.conv2d` ('same' pads one more at the bottom/right when the
        effective kernel is even).
    groups : int
        Must divide C_in and C_out.

    Returns
    -------
    grad_x : ndarray, shape of ``x``
    grad_weight : ndarray, shape (C_out, C_in / groups, kh, kw)
    grad_bias : ndarray, shape (C_out,)
        float32 inputs give float32 results, anything else float64.

    Raises
    ------
    ValueError
        If ``grad_output`` does not have the convolution's output shape (both shapes named),
        the channels do not match the weight and groups, or an argument is out of range.

    Examples
    --------
    A 1x1 convolution is a per-pixel product, so its input gradient is ``g * w``:

    >>> x = np.arange(4.0).reshape(1, 1, 2, 2)
    >>> w = np.full((1, 1, 1, 1), 3.0)
    >>> g = np.ones((1, 1, 2, 2))
    >>> gx, gw, gb = conv2d_backward(g, x, w)
    >>> gx[0, 0]
    array([[3., 3.],
           [3., 3.]])
    >>> float(gw[0, 0, 0, 0]), float(gb[0])
    (6.0, 4.0)
    """
    grad_output = as_float_array("grad_output", grad_output)
    x = as_float_array("x", x)
    weight = as_float_array("weight", weight)
    if x.ndim not in (3, 4):
        raise ValueError(f"x must be 4-D (N, C, H, W) or 3-D (C, H, W), got shape {x.shape}")
    if weight.ndim != 4:
        raise ValueError(
            f"weight must be 4-D (C_out, C_in/groups, kh, kw), got shape {weight.shape}"
        )
    groups = check_int("groups", groups, minimum=1)
    batched = x.ndim == 4
    xb = x if batched else x[None]
    n, c_in, h, w = xb.shape
    c_out, c_group, kh, kw = weight.shape
    if c_out % groups or c_group * groups != c_in or min(kh, kw, h, w) < 1:
        raise ValueError(
            f"x of shape {x.shape} and weight of shape {weight.shape} do not fit with "
            f"groups={groups}: need C_in = groups * weight.shape[1] and groups dividing C_out"
        )
    s = pair(stride, "stride", minimum=1)
    d = pair(dilation, "dilation", minimum=1)
    span = (d[0] * (kh - 1) + 1, d[1] * (kw - 1) + 1)
    pads = _pads(padding, span, s)
    hp, wp = h + sum(pads[0]), w + sum(pads[1])
    if span[0] > hp or span[1] > wp:
        raise ValueError(
            f"the kernel of weight shape {weight.shape} with dilation {d} spans {span}, more "
            f"than the padded input {(hp, wp)} of x shape {x.shape}"
        )
    oh, ow = (hp - span[0]) // s[0] + 1, (wp - span[1]) // s[1] + 1
    expected = (n, c_out, oh, ow) if batched else (c_out, oh, ow)
    if grad_output.shape != expected:
        raise ValueError(
            f"grad_output has shape {grad_output.shape}, but the convolution of x of shape "
            f"{x.shape} with weight of shape {weight.shape} gives an output of shape {expected}"
        )
    dtype = np.result_type(grad_output, x, weight)
    g = (grad_output if batched else grad_output[None]).astype(dtype, copy=False)
    o_group = c_out // groups

    grad_bias = g.sum(axis=(0, 2, 3))

    # Group-major views: G groups of O_g output and C_g input channels.
    g_groups = g.reshape(n, groups, o_group, oh * ow)  # (N, G, O_g, OH*OW)
    g_by_group = g_groups.transpose(1, 2, 0, 3).reshape(groups, o_group, n * oh * ow)
    w_groups = weight.astype(dtype, copy=False).reshape(groups, o_group, c_group, kh, kw)
    x_padded = np.pad(xb.astype(dtype, copy=False), ((0, 0), (0, 0), *pads))
    x_groups = x_padded.reshape(n, groups, c_group, hp, wp)

    grad_weight = np.empty((groups, o_group, c_group, kh, kw), dtype=dtype)
    grad_x_padded = np.zeros((n, groups, c_group, hp, wp), dtype=dtype)
    for m, col, rows, cols in _taps((kh, kw), s, d, (oh, ow)):
        # The input pixels this tap met, for every output pixel: (N, G, C_g, OH, OW).
        x_tap = x_groups[..., rows, cols]
        x_tap = x_tap.transpose(1, 2, 0, 3, 4).reshape(groups, c_group, n * oh * ow)
        # dL/dw[:, :, m, l] = g @ x_tap^T, summed over batch and pixels: (G, O_g, C_g).
        grad_weight[..., m, col] = g_by_group @ x_tap.transpose(0, 2, 1)
        # dL/dx_p at those pixels += w[:, :, m, l]^T @ g: (N, G, C_g, OH*OW).
        spread = w_groups[..., m, col].transpose(0, 2, 1) @ g_groups
        grad_x_padded[..., rows, cols] += spread.reshape(n, groups, c_group, oh, ow)

    (top, bottom), (left, right) = pads
    grad_x = grad_x_padded.reshape(n, c_in, hp, wp)[:, :, top : hp - bottom, left : wp - right]
    grad_x = np.ascontiguousarray(grad_x)
    grad_weight = grad_weight.reshape(c_out, c_group, kh, kw)
    return (grad_x if batched else grad_x[0]), grad_weight, grad_bias
