"""Convolution (cross-correlation) in NumPy: the loop of the formula, and its vectorised form.

``corr2d`` is written by hand, as the book teaches it, and is slow on purpose. ``conv2d`` is the
same computation arranged as one matrix product (im2col + GEMM) and agrees with
:func:`torch.nn.functional.conv2d` on the same arguments.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from cnnlab._checks import ConvGeometry, conv2d_geometry
from cnnlab.shapes import IntOrPair

__all__ = ["corr2d", "conv2d", "im2col"]


def _as_float_array(name: str, value: object) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_
    ):
        raise TypeError(f"{name} must be a numeric array, got dtype {array.dtype}")
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
    return array


def corr2d(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Cross-correlate a 2-D image with a 2-D kernel, 'valid' mode, by the loop of the formula.

    .. math:: S(i, j) = \\sum_m \\sum_n I(i + m, j + n)\\, K(m, n)

    Written by hand as two loops over output pixels and two over kernel taps, so that it reads
    like the formula. It is slow (four nested Python loops) on purpose: use :func:`conv2d`
    for real work.

    Parameters
    ----------
    image : array_like, shape (H, W)
        The input ``I``.
    kernel : array_like, shape (kh, kw)
        The kernel ``K``, with kh <= H and kw <= W.

    Returns
    -------
    ndarray, shape (H - kh + 1, W - kw + 1)
        The output map ``S``.

    Examples
    --------
    >>> I = np.arange(9.0).reshape(3, 3)
    >>> K = np.array([[1.0, 0.0], [0.0, -1.0]])
    >>> corr2d(I, K)
    array([[-4., -4.],
           [-4., -4.]])
    """
    image = _as_float_array("image", image)
    kernel = _as_float_array("kernel", kernel)
    if image.ndim != 2 or kernel.ndim != 2:
        raise ValueError(
            f"corr2d takes a 2-D image and a 2-D kernel, got image shape {image.shape} and "
            f"kernel shape {kernel.shape}"
        )
    height, width = image.shape
    kh, kw = kernel.shape
    if kh > height or kw > width:
        raise ValueError(f"kernel shape {kernel.shape} is larger than image shape {image.shape}")
    out = np.zeros((height - kh + 1, width - kw + 1), dtype=np.result_type(image, kernel))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            total = 0.0
            for m in range(kh):
                for n in range(kw):
                    total += image[i + m, j + n] * kernel[m, n]
            out[i, j] = total
    return out


def pad2d(
    x: np.ndarray, pads: tuple[tuple[int, int], tuple[int, int]], value: float = 0.0
) -> np.ndarray:
    """Pad the last two axes of ``x`` by ``((top, bottom), (left, right))`` with ``value``."""
    if pads == ((0, 0), (0, 0)):
        return x
    width = [(0, 0)] * (x.ndim - 2) + [pads[0], pads[1]]
    return np.pad(x, width, mode="constant", constant_values=value)


def windows(x: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
    """Return a read-only view of every kernel window of an already padded ``x``.

    Parameters
    ----------
    x : ndarray, shape (N, C, Hp, Wp)
        Padded input.
    geometry : ConvGeometry
        Stride, dilation, kernel and output size.

    Returns
    -------
    ndarray, shape (N, C, OH, OW, kh, kw)
        ``out[n, c, i, j, m, l] = x[n, c, i*s_h + m*d_h, j*s_w + l*d_w]``, with no copy.
    """
    n, c = x.shape[:2]
    sn, sc, sh, sw = x.strides
    (oh, ow), (kh, kw) = geometry.out_size, geometry.kernel_size
    (s_h, s_w), (d_h, d_w) = geometry.stride, geometry.dilation
    return as_strided(
        x,
        shape=(n, c, oh, ow, kh, kw),
        strides=(sn, sc, sh * s_h, sw * s_w, sh * d_h, sw * d_w),
        writeable=False,
    )


def im2col(x: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
    """Unfold every kernel window of a padded ``x`` into a row of a matrix.

    Parameters
    ----------
    x : ndarray, shape (N, C, Hp, Wp)
    geometry : ConvGeometry

    Returns
    -------
    ndarray, shape (N, OH * OW, C * kh * kw)
        Row ``i * OW + j`` of batch item ``n`` holds the window under output pixel (i, j),
        ordered channel, then kernel row, then kernel column, as the weight is.
    """
    view = windows(x, geometry)  # (N, C, OH, OW, kh, kw)
    n, c, oh, ow, kh, kw = view.shape
    return view.transpose(0, 2, 3, 1, 4, 5).reshape(n, oh * ow, c * kh * kw)


def conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair | str = 0,
    dilation: IntOrPair = 1,
    groups: int = 1,
) -> np.ndarray:
    """2-D cross-correlation of a batch of multi-channel images, as one matrix product.

    .. math::

        \\text{out}(n, o, i, j) = b(o) + \\sum_{c \\in g(o)} \\sum_m \\sum_l
            x_p(n, c, i s_h + m d_h, j s_w + l d_w)\\, w(o, c, m, l)

    where ``x_p`` is ``x`` zero-padded by ``padding`` on each side and ``g(o)`` is the group
    of input channels that output channel ``o`` reads. Each window is unfolded into a row
    (:func:`im2col`), and every output pixel of a group comes from one matrix product.

    Parameters
    ----------
    x : array_like, shape (N, C_in, H, W) or (C_in, H, W)
        Input batch (or one image).
    weight : array_like, shape (C_out, C_in / groups, kh, kw)
        Filters.
    bias : array_like, shape (C_out,), optional
        Added to every output pixel of each channel.
    stride, dilation : int or (int, int)
        At least 1.
    padding : int, (int, int), 'valid' or 'same'
        Zeros added on each side. 'same' (stride 1 only) keeps H and W, padding one more at the
        bottom/right when the effective kernel is even, as PyTorch does.
    groups : int
        Split channels into this many independent groups; must divide C_in and C_out.

    Returns
    -------
    ndarray, shape (N, C_out, OH, OW) or (C_out, OH, OW)
        With ``OH = floor((H + 2p - d(kh - 1) - 1) / s) + 1`` and likewise ``OW``
        (see :func:`cnnlab.shapes.conv_output_size`).

    Examples
    --------
    >>> x = np.ones((1, 2, 5, 5))
    >>> w = np.ones((3, 2, 3, 3))
    >>> conv2d(x, w, padding=1).shape
    (1, 3, 5, 5)
    >>> float(conv2d(x, w, padding=1)[0, 0, 2, 2])
    18.0
    """
    x = _as_float_array("x", x)
    weight = _as_float_array("weight", weight)
    bias = None if bias is None else _as_float_array("bias", bias)
    geometry = conv2d_geometry(
        x.shape,
        weight.shape,
        None if bias is None else bias.shape,
        stride,
        padding,
        dilation,
        groups,
    )
    dtype = np.result_type(x, weight) if bias is None else np.result_type(x, weight, bias)
    batch = x if geometry.batched else x[None]
    batch = pad2d(batch.astype(dtype, copy=False), geometry.pads)
    n = batch.shape[0]
    c_out = weight.shape[0]
    c_in_group = weight.shape[1]
    out_group = c_out // groups
    (oh, ow) = geometry.out_size
    out = np.empty((n, oh * ow, c_out), dtype=dtype)
    for g in range(groups):
        cols = im2col(batch[:, g * c_in_group : (g + 1) * c_in_group], geometry)
        w = (
            weight[g * out_group : (g + 1) * out_group]
            .reshape(out_group, -1)
            .astype(dtype, copy=False)
        )
        out[:, :, g * out_group : (g + 1) * out_group] = cols @ w.T
    if bias is not None:
        out += bias.astype(dtype, copy=False)
    result = out.transpose(0, 2, 1).reshape(n, c_out, oh, ow)
    result = np.ascontiguousarray(result)
    return result if geometry.batched else result[0]
