"""Convolution as a matrix: the dense matrix ``C`` with ``y = C x`` for flattened images.

Written by hand, as the chapter on gradients builds it. A convolution is linear in its input,
so for a fixed kernel and geometry there is a matrix ``C`` with ``vec(y) = C vec(x)``. Row
``(o, i, j)`` of ``C`` holds the kernel ``w(o, :, :, :)`` laid out at the positions of window
``(i, j)`` and zeros elsewhere: ``C`` is sparse, mostly zeros. Its transpose ``C^T`` maps an
output-shaped array back to the input's shape: that is the *transposed convolution*
(:func:`torch.nn.functional.conv_transpose2d`), and also the input gradient of the convolution
(Dumoulin & Visin, *A guide to convolution arithmetic for deep learning*, 2016).

The matrix is dense here, for teaching, so only small cases fit (see :data:`MAX_ENTRIES`).
"""

from __future__ import annotations

import numpy as np

from cnnlab.shapes import IntOrPair, check_int, pair

__all__ = ["conv_matrix", "MAX_ENTRIES"]

#: Largest ``rows * columns`` that :func:`conv_matrix` builds (128 MiB of float64).
MAX_ENTRIES = 1 << 24


def conv_matrix(
    input_shape: tuple[int, ...],
    weight: np.ndarray,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
) -> np.ndarray:
    r"""The dense matrix ``C`` of a 2-D convolution: ``conv2d(x).ravel() == C @ x.ravel()``.

    .. math::

        C[(o, i, j),\ (c, u, v)] = w(o, c, m, l) \quad \text{where }
            u = i s_h + m d_h - p_h,\ v = j s_w + l d_w - p_w

    and 0 where no tap of window ``(i, j)`` falls on input pixel ``(u, v)`` (taps on the
    padding have no column: padded zeros contribute nothing). Rows are ordered as
    ``y.ravel()`` (channel, row, column), columns as ``x.ravel()``. ``C.T`` is the transposed
    convolution with the same weight and geometry. Written by hand, by fancy indexing.

    Parameters
    ----------
    input_shape : (C_in, H, W) or (H, W)
        The shape of one input image; (H, W) with a 2-D ``weight`` (one channel, one filter).
    weight : array_like, shape (C_out, C_in, kh, kw) or (kh, kw)
        The kernel(s).
    stride, padding, dilation : int or (int, int)
        As for :func:`cnnlab.numpy.conv2d` (integers only).

    Returns
    -------
    ndarray, shape (C_out * OH * OW, C_in * H * W)
        ``(OH * OW, H * W)`` for a 2-D weight. Same float dtype as ``weight`` (float64 for
        integer weights).

    Raises
    ------
    ValueError
        If ``input_shape`` and ``weight`` do not match (both named), or ``C`` would have more
        than :data:`MAX_ENTRIES` entries.

    Examples
    --------
    A 3x3 kernel on a 4x4 image (Dumoulin & Visin's example): ``C`` is 4 x 16.

    >>> C = conv_matrix((4, 4), np.arange(1.0, 10.0).reshape(3, 3))
    >>> C.shape
    (4, 16)
    >>> C[0].reshape(4, 4)
    array([[1., 2., 3., 0.],
           [4., 5., 6., 0.],
           [7., 8., 9., 0.],
           [0., 0., 0., 0.]])
    """
    weight = np.asarray(weight)
    if weight.dtype == object or weight.dtype.kind not in "biuf":
        raise TypeError(f"weight must be a real numeric array, got dtype {weight.dtype}")
    if weight.dtype.kind != "f":
        weight = weight.astype(np.float64)
    shape = tuple(int(check_int("input_shape", v, minimum=1)) for v in input_shape)
    if weight.ndim == 2 and len(shape) == 2:
        weight4, shape3 = weight[None, None], (1, *shape)
    elif weight.ndim == 4 and len(shape) == 3:
        weight4, shape3 = weight, shape
    else:
        raise ValueError(
            f"input_shape {tuple(input_shape)} and weight of shape {weight.shape} do not match: "
            f"give (C_in, H, W) with a (C_out, C_in, kh, kw) weight, or (H, W) with (kh, kw)"
        )
    c_in, h, w = shape3
    c_out, c_w, kh, kw = weight4.shape
    if c_w != c_in:
        raise ValueError(
            f"input_shape {tuple(input_shape)} has {c_in} channels but weight of shape "
            f"{weight.shape} expects {c_w}"
        )
    sh, sw = (check_int("stride", v, minimum=1) for v in pair(stride, "stride"))
    ph, pw = (check_int("padding", v, minimum=0) for v in pair(padding, "padding"))
    dh, dw = (check_int("dilation", v, minimum=1) for v in pair(dilation, "dilation"))
    span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    if span_h > h + 2 * ph or span_w > w + 2 * pw:
        raise ValueError(
            f"the kernel of weight shape {weight.shape} with dilation {(dh, dw)} spans "
            f"{(span_h, span_w)}, more than the padded input of input_shape {tuple(input_shape)}"
        )
    oh, ow = (h + 2 * ph - span_h) // sh + 1, (w + 2 * pw - span_w) // sw + 1
    rows, columns = c_out * oh * ow, c_in * h * w
    if rows * columns > MAX_ENTRIES:
        raise ValueError(
            f"conv_matrix would be {rows} x {columns} = {rows * columns} entries, over the limit "
            f"of {MAX_ENTRIES}: it is for small examples; use cnnlab.numpy.conv2d for real layers"
        )
    # One entry per (o, i, j) output pixel and (c, m, l) kernel tap, broadcast to 6-D.
    o = np.arange(c_out)[:, None, None, None, None, None]
    i = np.arange(oh)[None, :, None, None, None, None]
    j = np.arange(ow)[None, None, :, None, None, None]
    c = np.arange(c_in)[None, None, None, :, None, None]
    m = np.arange(kh)[None, None, None, None, :, None]
    lt = np.arange(kw)[None, None, None, None, None, :]
    u, v = i * sh + m * dh - ph, j * sw + lt * dw - pw  # the input pixel each tap meets
    inside = (u >= 0) & (u < h) & (v >= 0) & (v < w)
    row = (o * oh + i) * ow + j
    column = (c * h + u) * w + v
    values = np.broadcast_to(weight4[:, None, None], (c_out, oh, ow, c_in, kh, kw))
    shape6 = (c_out, oh, ow, c_in, kh, kw)
    matrix = np.zeros((rows, columns), dtype=weight4.dtype)
    keep = np.broadcast_to(inside, shape6)
    matrix[np.broadcast_to(row, shape6)[keep], np.broadcast_to(column, shape6)[keep]] = values[keep]
    return matrix
