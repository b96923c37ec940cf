r"""Winograd's minimal filtering F(2x2, 3x3): 16 multiplications per 2x2 output tile, not 36.

A 2x2 block of outputs of a 3x3 correlation reads a 4x4 tile ``d`` of the input. Winograd's
algorithm (Lavin & Gray, 2016) writes it as

.. math:: Y = A^T \big[ (G g G^T) \odot (B^T d B) \big] A

with the constant matrices below. The weight transform ``U = G g G^T`` is done once per filter
and the input transform ``V = B^T d B`` once per tile and channel (additions only); the
remaining work is the elementwise product, summed over input channels, which becomes 16
independent matrix products ``M_k = U_k V_k`` of shape (C_out, C_in) @ (C_in, tiles). Direct
computation needs ``4 * 9 = 36`` multiplications per tile and channel pair, Winograd 16: a
saving of 2.25x, paid for by more additions and a slightly larger rounding error.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

__all__ = ["winograd_conv", "winograd_matrices", "WINOGRAD_MULTIPLICATIONS"]

#: Multiplications per 2x2 output tile and (input, output) channel pair: direct vs Winograd.
WINOGRAD_MULTIPLICATIONS = {"direct": 2 * 2 * 3 * 3, "winograd": 4 * 4}


def winograd_matrices() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The transforms ``(B^T, G, A^T)`` of F(2x2, 3x3), shapes (4, 4), (4, 3), (2, 4).

    Examples
    --------
    >>> bt, g, at = winograd_matrices()
    >>> d, k = np.arange(4.0), np.array([1.0, 2.0, 3.0])
    >>> at @ ((g @ k) * (bt @ d))  # F(2, 3) in one dimension
    array([ 8., 14.])
    >>> np.correlate(d, k, mode="valid")
    array([ 8., 14.])
    """
    bt = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=float)
    g = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
    at = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=float)
    return bt, g, at


def _bt_rows(d0, d1, d2, d3):
    """Apply ``B^T`` to four rows (or columns): additions only."""
    return d0 - d2, d1 + d2, d2 - d1, d1 - d3


def winograd_conv(xp: np.ndarray, weight: np.ndarray, groups: int = 1) -> np.ndarray:
    """Cross-correlate an already padded batch with 3x3 filters, stride 1, by F(2x2, 3x3).

    Parameters
    ----------
    xp : ndarray, shape (N, C_in, Hp, Wp)
        Zero-padded input, ``Hp, Wp >= 3``.
    weight : ndarray, shape (C_out, C_in / groups, 3, 3)
    groups : int

    Returns
    -------
    ndarray, shape (N, C_out, Hp - 2, Wp - 2)
        No bias added.

    Examples
    --------
    >>> xp = np.arange(25.0).reshape(1, 1, 5, 5)
    >>> np.round(winograd_conv(xp, np.ones((1, 1, 3, 3)))[0, 0], 9)
    array([[ 54.,  63.,  72.],
           [ 99., 108., 117.],
           [144., 153., 162.]])
    """
    n, c_in, hp, wp = xp.shape
    c_out, c_group, kh, kw = weight.shape
    if (kh, kw) != (3, 3):
        raise ValueError(f"winograd_conv needs a 3x3 kernel, got weight shape {weight.shape}")
    o_group = c_out // groups
    dtype = np.result_type(xp, weight)
    oh, ow = hp - 2, wp - 2
    th, tw = -(-oh // 2), -(-ow // 2)  # tiles per axis, rounding up
    # Pad bottom/right so the tiles cover the output, then view the overlapping 4x4 tiles.
    x = np.zeros((n, c_in, 2 * th + 2, 2 * tw + 2), dtype=dtype)
    x[:, :, :hp, :wp] = xp
    sn, sc, sh, sw = x.strides
    tiles = as_strided(
        x, (n, c_in, th, tw, 4, 4), (sn, sc, 2 * sh, 2 * sw, sh, sw), writeable=False
    )
    _, g_mat, _ = winograd_matrices()
    g_mat = g_mat.astype(dtype)
    # U[a, b, o, c] = (G g G^T)[a, b]: (4, 4, C_out, C_in/groups).
    u = np.einsum("ak,ockl,bl->aboc", g_mat, weight.astype(dtype, copy=False), g_mat)
    # V[a, b, c, n, y, x] = (B^T d B)[a, b] per tile: rows, then columns.
    rows = _bt_rows(*(tiles[..., r, :] for r in range(4)))
    v = np.empty((4, 4, c_in, n, th, tw), dtype=dtype)
    for a in range(4):
        for b, col in enumerate(_bt_rows(*(rows[a][..., k] for k in range(4)))):
            v[a, b] = col.transpose(1, 0, 2, 3)
    v = v.reshape(16, c_in, n * th * tw)
    out = np.empty((n, c_out, th, 2, tw, 2), dtype=dtype)
    for g in range(groups):
        # The only multiplications: 16 products (C_out, C_in) @ (C_in, tiles).
        m = np.matmul(
            u[:, :, g * o_group : (g + 1) * o_group].reshape(16, o_group, c_group),
            v[:, g * c_group : (g + 1) * c_group],
        ).reshape(4, 4, o_group, n, th, tw)
        # Y = A^T M A: A^T = [[1, 1, 1, 0], [0, 1, -1, -1]], again additions only.
        t = [(m[a, 0] + m[a, 1] + m[a, 2], m[a, 1] - m[a, 2] - m[a, 3]) for a in range(4)]
        for j in range(2):
            y0 = t[0][j] + t[1][j] + t[2][j]
            y1 = t[1][j] - t[2][j] - t[3][j]
            out[:, g * o_group : (g + 1) * o_group, :, 0, :, j] = y0.transpose(1, 0, 2, 3)
            out[:, g * o_group : (g + 1) * o_group, :, 1, :, j] = y1.transpose(1, 0, 2, 3)
    out = out.reshape(n, c_out, 2 * th, 2 * tw)
    return np.ascontiguousarray(out[:, :, :oh, :ow])
