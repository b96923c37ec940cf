"""Convolution (cross-correlation) in NumPy: the loop of the formula, and its vectorised form.

``corr2d`` is written by hand, as the book teaches it, and is slow on purpose. ``conv2d`` is the
same computation done fast and agrees with :func:`torch.nn.functional.conv2d` on the same
arguments. By default it is arranged as matrix products (im2col + GEMM, in blocks that bound the
memory); ``algorithm=`` selects FFT (:mod:`cnnlab.numpy.fft`), Winograd F(2x2, 3x3)
(:mod:`cnnlab.numpy.winograd`) or the per-tap direct loop (:mod:`cnnlab.numpy.direct`) instead.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from cnnlab._checks import conv2d_geometry
from cnnlab.geometry import IntOrPair, Pads, Window
from cnnlab.numpy.direct import direct_conv
from cnnlab.numpy.fft import fft_conv
from cnnlab.numpy.winograd import winograd_conv

__all__ = [
    "corr2d",
    "conv2d",
    "im2col",
    "windows",
    "pad2d",
    "as_float_array",
    "choose_algorithm",
    "ALGORITHMS",
]


def as_float_array(name: str, value: object) -> np.ndarray:
    """Return ``value`` as a real floating-point array (integers and booleans become float64).

    Raises ``TypeError`` naming ``name`` for a non-numeric or complex array.

    Examples
    --------
    >>> as_float_array("x", [1, 2]).dtype
    dtype('float64')
    """
    array = np.asarray(value)
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_
    ):
        raise TypeError(f"{name} must be a numeric array, got dtype {array.dtype}")
    if array.dtype.kind == "c":
        raise TypeError(
            f"{name} must be a real array, got complex dtype {array.dtype} (casting to float "
            f"would drop the imaginary part)"
        )
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
    return array


def corr2d(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    r"""Cross-correlate a 2-D image with a 2-D kernel, 'valid' mode, by the loop of the formula.

    .. math:: S(i, j) = \sum_m \sum_n I(i + m, j + n)\, K(m, n)

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
    image = as_float_array("image", image)
    kernel = as_float_array("kernel", kernel)
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


def pad2d(x: np.ndarray, pads: Pads, value: float = 0.0) -> np.ndarray:
    """Pad the last two axes of ``x`` by ``((top, bottom), (left, right))`` with ``value``."""
    if pads == ((0, 0), (0, 0)):
        return x
    width = [(0, 0)] * (x.ndim - 2) + [pads[0], pads[1]]
    return np.pad(x, width, mode="constant", constant_values=value)


def windows(xp: np.ndarray, window: Window) -> np.ndarray:
    """Return a read-only view of every kernel window of an already padded ``xp``.

    Parameters
    ----------
    xp : ndarray, shape (N, C, Hp, Wp)
        The input, already padded (``window.padding`` is not applied again).
    window : Window
        Kernel size, stride and dilation.

    Returns
    -------
    ndarray, shape (N, C, OH, OW, kh, kw)
        ``out[n, c, i, j, m, l] = xp[n, c, i*s_h + m*d_h, j*s_w + l*d_w]``, with no copy;
        ``(OH, OW) = window.unpadded().output_size((Hp, Wp))``, every window that fits.

    Raises
    ------
    ValueError
        If ``xp`` is not 4-D or the window is larger than it.
    """
    if xp.ndim != 4:
        raise ValueError(f"windows: input must be 4-D (N, C, Hp, Wp), got shape {xp.shape}")
    oh, ow = window.unpadded().output_size(xp.shape[-2:], what="windows: ")
    sn, sc, sh, sw = xp.strides
    (s_h, s_w), (d_h, d_w) = window.stride, window.dilation
    return as_strided(
        xp,
        shape=(*xp.shape[:2], oh, ow, *window.kernel_size),
        strides=(sn, sc, sh * s_h, sw * s_w, sh * d_h, sw * d_w),
        writeable=False,
    )


def im2col(x: np.ndarray, window: Window) -> np.ndarray:
    """Unfold every kernel window of ``x``, zero-padded by ``window.padding``, into a row.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    window : Window

    Returns
    -------
    ndarray, shape (N, OH * OW, C * kh * kw)
        Row ``i * OW + j`` of batch item ``n`` holds the window under output pixel (i, j),
        ordered channel, then kernel row, then kernel column, as the weight is;
        ``(OH, OW) = window.output_size((H, W))``.

    Examples
    --------
    >>> im2col(np.ones((1, 2, 5, 5)), Window(3, stride=2, padding=1)).shape
    (1, 9, 18)
    """
    view = windows(pad2d(x, window.padding), window)  # (N, C, OH, OW, kh, kw)
    n, c, oh, ow, kh, kw = view.shape
    return view.transpose(0, 2, 3, 1, 4, 5).reshape(n, oh * ow, c * kh * kw)


ALGORITHMS = ("auto", "im2col", "fft", "winograd", "direct")

#: Unfolded-column budget of the im2col path, as a fraction of the output's size: the batch or
#: the output rows are processed in blocks so the column buffer never exceeds it.
COLUMN_BUDGET = 1.0
_MIN_COLUMN_ELEMENTS = 1 << 21  # 8 MiB of float32: small layers still get large matrix products
_MIN_GEMM_COLUMNS = 2048  # below this many output pixels per image, several images share a GEMM


def choose_algorithm(
    weight_shape: tuple[int, ...],
    window: Window,
    in_hw: tuple[int, int] | None = None,
) -> str:
    """The algorithm ``conv2d(..., algorithm="auto")`` uses for a layer.

    The rule, from the measurements of chapter 7 (single-threaded, float32):

    * ``"fft"`` when the stride and dilation are 1 and the kernel has at least 169 taps
      (13x13 or larger): the FFT's cost does not grow with the kernel, im2col's grows with
      ``kh * kw``, and below about 11x11 to 15x15 (depending on the channel counts) the
      transforms of the input and of every (output, input) channel pair's kernel cost more
      than they save;
    * otherwise ``"im2col"`` (one matrix product per block; 1x1 stride-1 layers skip the
      unfolding altogether).

    Winograd F(2x2, 3x3) saves multiplications but, written in NumPy, its transforms are
    extra passes over memory that cost more than they save next to a tuned GEMM, so it is
    used on request only. ``in_hw`` (the input's height and width) is accepted for rules
    that depend on it; the present rule does not.

    Examples
    --------
    >>> choose_algorithm((64, 64, 3, 3), Window(3, padding=1))
    'im2col'
    >>> choose_algorithm((8, 3, 13, 13), Window(13, padding=6), (32, 32))
    'fft'
    """
    kh, kw = weight_shape[2:]
    if window.stride == (1, 1) and window.dilation == (1, 1) and kh * kw >= 169:
        return "fft"
    return "im2col"


def _check_algorithm(algorithm: str, weight_shape: tuple[int, ...], window: Window) -> None:
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    if algorithm == "winograd":
        kernel = tuple(weight_shape[2:])
        if kernel != (3, 3) or window.stride != (1, 1) or window.dilation != (1, 1):
            raise ValueError(
                f"algorithm='winograd' (F(2x2, 3x3)) needs a 3x3 kernel with stride 1 and "
                f"dilation 1; this layer has weight shape {tuple(weight_shape)}, kernel "
                f"{kernel}, stride {window.stride}, dilation {window.dilation}"
            )


def _input_slab(x: np.ndarray, window: Window, n0: int, n1: int, r0: int, r1: int) -> np.ndarray:
    """The zero-padded input rows that output rows ``r0:r1`` of images ``n0:n1`` read."""
    (pt, _), (pl, pr) = window.padding
    top = r0 * window.stride[0] - pt
    bottom = (r1 - 1) * window.stride[0] + window.span[0] - pt  # exclusive, unpadded coordinates
    height, width = x.shape[2:]
    if top >= 0 and bottom <= height and pl == 0 and pr == 0:
        return x[n0:n1, :, top:bottom]  # a view: nothing to pad
    slab = np.empty((n1 - n0, x.shape[1], bottom - top, width + pl + pr), dtype=x.dtype)
    lo, hi = max(top, 0), max(min(bottom, height), max(top, 0))  # a band can be all padding
    # Write every element once: zeros in the border, the input inside.
    slab[:, :, : lo - top] = 0
    slab[:, :, hi - top :] = 0
    slab[:, :, lo - top : hi - top, :pl] = 0
    slab[:, :, lo - top : hi - top, pl + width :] = 0
    slab[:, :, lo - top : hi - top, pl : pl + width] = x[n0:n1, :, lo:hi]
    return slab


def _blocks(n: int, out_size: tuple[int, int], k_group: int, o_group: int, budget: int):
    """Yield ``(n0, n1, r0, r1)``: several whole images or one image's band of output rows,
    each small enough that its unfolded columns (and, for several images, the product
    before it is transposed into place) fit in ``budget`` elements."""
    oh, ow = out_size
    per_image = (k_group + o_group) * oh * ow
    if per_image <= budget:
        images = max(1, min(n, budget // per_image, -(-_MIN_GEMM_COLUMNS // (oh * ow))))
        for n0 in range(0, n, images):
            yield n0, min(n, n0 + images), 0, oh
        return
    rows = max(1, budget // (k_group * ow))
    for n0 in range(n):
        for r0 in range(0, oh, rows):
            yield n0, n0 + 1, r0, min(oh, r0 + rows)


def _im2col_gemm(x: np.ndarray, weight: np.ndarray, window: Window, groups: int) -> np.ndarray:
    """Blocked im2col + GEMM: ``out[n, :, rows] = W (C_out, K) @ cols (K, rows * OW)``.

    ``cols`` is built channel-major (row ``(c, m, l)``, column ``(n, i, j)``), so the product
    lands in the output's own layout and needs no transpose when a block is one image.
    """
    n = x.shape[0]
    c_out, c_group, kh, kw = weight.shape
    o_group = c_out // groups
    (oh, ow) = window.output_size(x.shape[-2:])
    out = np.empty((n, c_out, oh, ow), dtype=x.dtype)
    k_group = c_group * kh * kw
    w_mat = np.ascontiguousarray(weight).reshape(c_out, k_group)
    no_pad = window.padding == ((0, 0), (0, 0))
    pointwise = (kh, kw) == (1, 1) and window.stride == (1, 1) and no_pad
    if pointwise:
        # A 1x1 stride-1 layer is already a matrix product: out[n] = W @ x[n], no unfolding.
        for g in range(groups):
            np.matmul(
                w_mat[g * o_group : (g + 1) * o_group],
                x[:, g * c_group : (g + 1) * c_group].reshape(n, c_group, oh * ow),
                out=out[:, g * o_group : (g + 1) * o_group].reshape(n, o_group, oh * ow),
            )
        return out
    budget = max(int(COLUMN_BUDGET * out.size), _MIN_COLUMN_ELEMENTS)
    blocks = list(_blocks(n, (oh, ow), k_group, o_group, budget))
    largest = max((n1 - n0) * (r1 - r0) for n0, n1, r0, r1 in blocks) * k_group * ow
    buffer = np.empty(largest, dtype=x.dtype)  # the columns, reused by every block
    for n0, n1, r0, r1 in blocks:
        nb, rows = n1 - n0, r1 - r0
        slab = _input_slab(x, window, n0, n1, r0, r1)  # exactly the padded rows of the band
        for g in range(groups):
            chans = slice(g * c_group, (g + 1) * c_group)
            view = windows(slab[:, chans], window)  # (nb, C, rows, OW, kh, kw)
            cols = buffer[: k_group * nb * rows * ow].reshape(c_group, kh, kw, nb, rows, ow)
            np.copyto(cols, view.transpose(1, 4, 5, 0, 2, 3))
            cols = cols.reshape(k_group, nb * rows * ow)
            w_g = w_mat[g * o_group : (g + 1) * o_group]
            target = out[n0:n1, g * o_group : (g + 1) * o_group, r0:r1]
            if nb == 1:
                np.matmul(w_g, cols, out=target[0].reshape(o_group, rows * ow))
            else:
                product = (w_g @ cols).reshape(o_group, nb, rows, ow)
                target[...] = product.transpose(1, 0, 2, 3)
    return out


def conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair | str = 0,
    dilation: IntOrPair = 1,
    groups: int = 1,
    algorithm: str = "auto",
) -> np.ndarray:
    r"""2-D cross-correlation of a batch of multi-channel images, by a choice of fast algorithm.

    .. math::

        \text{out}(n, o, i, j) = b(o) + \sum_{c \in g(o)} \sum_m \sum_l
            x_p(n, c, i s_h + m d_h, j s_w + l d_w)\, w(o, c, m, l)

    where ``x_p`` is ``x`` zero-padded by ``padding`` on each side and ``g(o)`` is the group
    of input channels that output channel ``o`` reads. The default algorithm unfolds each
    window into a column (im2col) and computes every output pixel of a block with one matrix
    product ``W (C_out, C_in kh kw) @ cols``; blocks of images or of output rows keep the
    unfolded columns no larger than the output.

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
    algorithm : {'auto', 'im2col', 'fft', 'winograd', 'direct'}
        'im2col': blocked unfolding + GEMM. 'fft': products of 2-D FFTs
        (:mod:`cnnlab.numpy.fft`). 'winograd': F(2x2, 3x3), 3x3 kernels with stride 1 and
        dilation 1 only (:mod:`cnnlab.numpy.winograd`). 'direct': one shifted multiply-add
        per kernel tap (:mod:`cnnlab.numpy.direct`). 'auto' picks by the layer's shape, see
        :func:`choose_algorithm`.

    Returns
    -------
    ndarray, shape (N, C_out, OH, OW) or (C_out, OH, OW)
        With ``OH = floor((H + 2p - d(kh - 1) - 1) / s) + 1`` and likewise ``OW``
        (see :func:`cnnlab.shapes.conv_output_size`). float32 inputs give float32.

    Examples
    --------
    >>> x = np.ones((1, 2, 5, 5))
    >>> w = np.ones((3, 2, 3, 3))
    >>> conv2d(x, w, padding=1).shape
    (1, 3, 5, 5)
    >>> float(conv2d(x, w, padding=1)[0, 0, 2, 2])
    18.0
    >>> float(conv2d(x, w, padding=1, algorithm="winograd")[0, 0, 2, 2])
    18.0
    """
    x = as_float_array("x", x)
    weight = as_float_array("weight", weight)
    bias = None if bias is None else as_float_array("bias", bias)
    window = conv2d_geometry(
        x.shape,
        weight.shape,
        None if bias is None else bias.shape,
        stride,
        padding,
        dilation,
        groups,
    )
    _check_algorithm(algorithm, weight.shape, window)
    if algorithm == "auto":
        algorithm = choose_algorithm(weight.shape, window, x.shape[-2:])
    dtype = np.result_type(x, weight) if bias is None else np.result_type(x, weight, bias)
    batched = x.ndim == 4
    batch = (x if batched else x[None]).astype(dtype, copy=False)
    weight = weight.astype(dtype, copy=False)
    if algorithm == "im2col":
        out = _im2col_gemm(batch, weight, window, groups)
    elif algorithm == "winograd":
        out = winograd_conv(pad2d(batch, window.padding), weight, groups)
    else:
        method = fft_conv if algorithm == "fft" else direct_conv
        out = method(pad2d(batch, window.padding), weight, window, groups)
    if bias is not None:
        out += bias.astype(dtype, copy=False)[:, None, None]
    return out if batched else out[0]
