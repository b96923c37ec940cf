"""Dilated (atrous) kernels: a kernel with ``d - 1`` zeros between neighbouring taps.

:func:`cnnlab.atrous.dilate_kernel` is this function, re-exported for the chapter on atrous
convolution; it lives here so that the NumPy convolutions (:mod:`cnnlab.numpy.fft`) can use it
without importing anything above :mod:`cnnlab.numpy`.
"""

from __future__ import annotations

import numpy as np

from cnnlab.shapes import IntOrPair, check_int, pair

__all__ = ["dilate_kernel"]


def dilate_kernel(kernel: np.ndarray, dilation: IntOrPair) -> np.ndarray:
    r"""Insert ``dilation - 1`` zeros between neighbouring taps of a kernel.

    The result, of spatial size ``d (k - 1) + 1``, used in an ordinary convolution (dilation 1)
    gives exactly the atrous convolution of ``kernel`` with rate ``d``:

    .. math:: w_d[d\,m,\ d\,n] = w[m, n], \quad w_d = 0 \text{ elsewhere}

    Parameters
    ----------
    kernel : ndarray, shape (..., kh, kw)
        The kernel; leading axes (out and in channels) are kept.
    dilation : int or (int, int)
        Rate ``d`` per axis, at least 1.

    Returns
    -------
    ndarray, shape (..., dh (kh - 1) + 1, dw (kw - 1) + 1)
        Same dtype as ``kernel``.

    Examples
    --------
    >>> dilate_kernel(np.array([[1, 2], [3, 4]]), 2)
    array([[1, 0, 2],
           [0, 0, 0],
           [3, 0, 4]])
    """
    kernel = np.asarray(kernel)
    if kernel.ndim < 2:
        raise ValueError(f"kernel must have at least 2 dimensions (kh, kw), got {kernel.shape}")
    dh, dw = (check_int("dilation", v, minimum=1) for v in pair(dilation, "dilation"))
    kh, kw = kernel.shape[-2:]
    if kh == 0 or kw == 0:
        raise ValueError(f"kernel must have at least one tap per axis, got {kernel.shape}")
    out = np.zeros((*kernel.shape[:-2], dh * (kh - 1) + 1, dw * (kw - 1) + 1), kernel.dtype)
    out[..., ::dh, ::dw] = kernel
    return out
