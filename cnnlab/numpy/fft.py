"""FFT convolution: a pointwise product in the frequency domain instead of a sliding sum.

By the convolution theorem, circular cross-correlation of two ``Hp x Wp`` arrays is
``irfft2(rfft2(x) * conj(rfft2(w)))``. On the padded input every output pixel that a 'valid'
correlation keeps reads no wrapped-around pixel, so the circular result, cropped and sampled
with the stride, is the convolution. The cost is about ``O(N C Hp Wp log(Hp Wp))`` for the
transforms plus ``N C_in C_out Hp Wp`` complex multiply-adds, independent of the kernel size: it
wins over im2col only when the kernel is large.
"""

from __future__ import annotations

import numpy as np

from cnnlab._checks import padded_output_size
from cnnlab.geometry import Window
from cnnlab.numpy.dilation import dilate_kernel

__all__ = ["fft_conv", "fast_fft_size"]


def fast_fft_size(n: int) -> int:
    """The smallest ``m >= n`` whose only prime factors are 2, 3 and 5 (a fast FFT length).

    Examples
    --------
    >>> fast_fft_size(78), fast_fft_size(64), fast_fft_size(7)
    (80, 64, 8)
    """
    m = max(n, 1)
    while True:
        r = m
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 1


def fft_conv(xp: np.ndarray, weight: np.ndarray, window: Window, groups: int = 1) -> np.ndarray:
    r"""Cross-correlate an already padded batch through 2-D real FFTs.

    .. math::

        \text{out}(n, o) = \Big[\mathcal{F}^{-1}\Big(\sum_{c \in g(o)}
            \mathcal{F}(x_p(n, c))\, \overline{\mathcal{F}(w_d(o, c))}\Big)\Big]_{::s_h,\, ::s_w}

    where ``w_d`` is the kernel with ``d - 1`` zeros inserted between its taps (dilation),
    zero-padded to the transform size: the padded input's ``Hp x Wp`` rounded up to a fast
    FFT length (:func:`fast_fft_size`; extra zeros at the end change no kept output).

    The arguments and the result are those of :func:`cnnlab.numpy.direct.direct_conv`: the
    zero-padded input ``xp`` (N, C_in, Hp, Wp), the weight (C_out, C_in / groups, kh, kw), the
    layer's :class:`~cnnlab.geometry.Window` (its padding not applied again) and ``groups``;
    the output (N, C_out, OH, OW) has the inputs' dtype (float32 stays float32), no bias added.

    Examples
    --------
    >>> xp = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> np.round(fft_conv(xp, np.ones((1, 1, 2, 2)), Window(2, stride=2))[0, 0], 9)
    array([[10., 18.],
           [42., 50.]])
    """
    out_size = padded_output_size(xp.shape, weight.shape, window, "fft_conv")
    n, _, hp, wp = xp.shape
    size = (fast_fft_size(hp), fast_fft_size(wp))
    c_out, c_group, kh, kw = weight.shape
    o_group = c_out // groups
    dtype = np.result_type(xp, weight)
    (oh, ow), (s_h, s_w), (d_h, d_w) = out_size, window.stride, window.dilation
    dilated = dilate_kernel(weight.astype(dtype, copy=False), (d_h, d_w))
    out = np.empty((n, c_out, oh, ow), dtype=dtype)
    for g in range(groups):
        x_f = np.fft.rfft2(xp[:, g * c_group : (g + 1) * c_group].astype(dtype, copy=False), s=size)
        w_f = np.fft.rfft2(dilated[g * o_group : (g + 1) * o_group], s=size)
        # Sum over input channels at every frequency: a batch of (N, C) @ (C, O) products.
        # (contiguous copies first: NumPy hands contiguous stacks to BLAS, not strided ones)
        prod = np.matmul(
            np.ascontiguousarray(x_f.transpose(2, 3, 0, 1)),
            np.ascontiguousarray(w_f.conj().transpose(2, 3, 1, 0)),
        )
        full = np.fft.irfft2(prod.transpose(2, 3, 0, 1), s=size)
        out[:, g * o_group : (g + 1) * o_group] = full[
            :, :, : (oh - 1) * s_h + 1 : s_h, : (ow - 1) * s_w + 1 : s_w
        ]
    return out
