"""Direct convolution: one shifted multiply-add per kernel tap, vectorised over everything else.

This is the formula of the convolution read tap by tap instead of pixel by pixel. For each
kernel position ``(m, n)`` the input, shifted by ``(m d_h, n d_w)`` and sampled every ``s``
pixels, is multiplied by the ``C_out x C_in`` matrix of that tap's weights and added to the
output. There are ``kh * kw`` Python iterations instead of the ``N * C * OH * OW * kh * kw`` of
the scalar loop :func:`cnnlab.numpy.corr2d`, and no unfolded copy of the input: the reference
against which the faster algorithms are checked.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from cnnlab._checks import padded_output_size
from cnnlab.geometry import Window

__all__ = ["direct_conv"]


def _tap_view(
    xp: np.ndarray,
    m: int,
    l: int,  # noqa: E741
    out_size: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> np.ndarray:
    """The (N, C, OH, OW) view ``xp[:, :, i s_h + m d_h, j s_w + l d_w]`` (no copy)."""
    sn, sc, sh, sw = xp.strides
    start = xp[:, :, m * dilation[0] :, l * dilation[1] :]
    return as_strided(
        start,
        shape=(xp.shape[0], xp.shape[1], *out_size),
        strides=(sn, sc, sh * stride[0], sw * stride[1]),
        writeable=False,
    )


def direct_conv(xp: np.ndarray, weight: np.ndarray, window: Window, groups: int = 1) -> np.ndarray:
    r"""Cross-correlate an already padded batch, summing one shifted product per kernel tap.

    .. math::

        \text{out}(n, o, i, j) = \sum_{m, l} \sum_{c \in g(o)}
            w(o, c, m, l)\, x_p(n, c, i s_h + m d_h, j s_w + l d_w)

    Parameters
    ----------
    xp : ndarray, shape (N, C_in, Hp, Wp)
        Zero-padded input.
    weight : ndarray, shape (C_out, C_in / groups, kh, kw)
    window : Window
        Kernel size, stride and dilation; its padding is not applied again.
    groups : int

    Returns
    -------
    ndarray, shape (N, C_out, OH, OW)
        ``(OH, OW) = window.unpadded().output_size((Hp, Wp))``; no bias added.

    Examples
    --------
    >>> xp = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> direct_conv(xp, np.ones((1, 1, 2, 2)), Window(2, stride=2))[0, 0]
    array([[10., 18.],
           [42., 50.]])
    """
    c_out, c_group, kh, kw = weight.shape
    out_size = padded_output_size(xp.shape, weight.shape, window, "direct_conv")
    stride, dilation = window.stride, window.dilation
    batch = xp.shape[0]
    o_group = c_out // groups
    dtype = np.result_type(xp, weight)
    acc = np.zeros((c_out, batch, *out_size), dtype=dtype)  # channel-first: tensordot's order
    for g in range(groups):
        x_g = xp[:, g * c_group : (g + 1) * c_group]
        w_g = weight[g * o_group : (g + 1) * o_group]
        for m in range(kh):
            for l in range(kw):  # noqa: E741 (the formula's name for the column tap)
                shifted = _tap_view(x_g, m, l, out_size, stride, dilation)
                acc[g * o_group : (g + 1) * o_group] += np.tensordot(
                    w_g[:, :, m, l], shifted, axes=([1], [1])
                )
    return np.ascontiguousarray(acc.transpose(1, 0, 2, 3))
