"""Graded tests of exercise 08, fast convolution: im2col and one matrix product (chapter 7).

Imported by the grading process only. Every expected answer is computed here with PyTorch in
float64: ``torch.nn.functional.unfold`` for ``im2col``, ``torch.nn.functional.conv2d`` for
``conv2d_im2col``. Two hidden tests bound resources as well as the answer (see
``cnnlab.exercises.measure``): ``conv2d_im2col_speed`` allows 20 times the processor time of a
plain NumPy im2col + matmul (:func:`timing_conv2d`, timed here on the same inputs, one thread),
which a Python loop over the 131072 output pixels exceeds several times over (measured on a
busy 2-core machine: the solution 1 to 6 times the reference, the loop 60 to 100 times); and
``conv2d_im2col_memory`` allows the process 32 MiB of growth on a layer whose column matrix
takes 4.5 MiB (the solution grows by about 6 MiB), where multiplying by broadcasting,
``(W[:, :, None] * cols[:, None]).sum(2)``, makes a 144 MiB temporary. The worker that runs a submission receives the inputs and nothing
else; PyTorch, SciPy's filters, NumPy's window views and every cnnlab implementation are
switched off there.
"""

import numpy as np
import torch
import torch.nn.functional as F

from cnnlab.exercises.spec import Test

# Library shortcuts replaced by raising stubs inside the grading worker: NumPy's own
# convolutions, and its window views (the columns are to be gathered by slicing, one kernel
# tap at a time, as chapter 7 does).
FORBIDDEN = [
    "numpy.convolve",
    "numpy.correlate",
    "numpy.lib.stride_tricks.sliding_window_view",
    "numpy.lib.stride_tricks.as_strided",
    "numpy.lib._stride_tricks_impl.sliding_window_view",
    "numpy.lib._stride_tricks_impl.as_strided",
]

# Whole modules that cannot be imported inside the grading worker: PyTorch (its unfold and
# convolutions would do the work), SciPy's filters, and every cnnlab module that implements a
# convolution, im2col or the output-size law.
FORBIDDEN_MODULES = [
    "torch",
    "scipy.signal",
    "scipy.ndimage",
    "cnnlab.numpy",
    "cnnlab.torch",
    "cnnlab.viz",
    "cnnlab.shapes",
    "cnnlab._checks",
    "cnnlab.geometry",
]

IM2COL_HINT = (
    "check the order of the rows and columns: row c*kh*kw + m*kw + l holds input channel c "
    "under kernel tap (m, l); column i*OW + j is output pixel (i, j); the output size needs "
    "the dilation too",
    "cols[n, c*kh*kw + m*kw + l, i*OW + j] = x_p[n, c, i*sh + m*dh, j*sw + l*dw], with x_p "
    "padded by ph rows and pw columns of zeros on each side and "
    "OH = (H + 2ph - dh*(kh - 1) - 1) // sh + 1 (the same along the width)",
)
CONV_HINT = (
    "reshape the weights to (O, C*kh*kw) so that their columns follow the rows of your "
    "im2col, multiply, add the bias to every pixel of its channel, then reshape to "
    "(N, O, OH, OW)",
    "out[n] = W.reshape(O, C*kh*kw) @ im2col(x)[n] + bias[:, None], reshaped to (O, OH, OW); "
    "np.matmul broadcasts the product over the batch: one product for all images",
)


def _pair(value):
    return (value, value) if np.isscalar(value) else tuple(value)


def reference_im2col(x, kernel_size, stride=1, padding=0, dilation=1):
    """``torch.nn.functional.unfold`` in float64: (N, C*kh*kw, OH*OW)."""
    return F.unfold(
        torch.from_numpy(np.asarray(x, dtype=np.float64)),
        _pair(kernel_size),
        dilation=_pair(dilation),
        padding=_pair(padding),
        stride=_pair(stride),
    ).numpy()


def reference_conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1):
    """``torch.nn.functional.conv2d`` in float64: (N, O, OH, OW)."""
    return F.conv2d(
        torch.from_numpy(np.asarray(x, dtype=np.float64)),
        torch.from_numpy(np.asarray(weight, dtype=np.float64)),
        None if bias is None else torch.from_numpy(np.asarray(bias, dtype=np.float64)),
        stride=_pair(stride),
        padding=_pair(padding),
        dilation=_pair(dilation),
    ).numpy()


def timing_conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1):
    """What the speed test compares with: a plain NumPy im2col (one strided slice per kernel
    tap into one buffer) and one matrix product, as the exercise asks."""
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    cols = np.empty((n, c, kh, kw, oh, ow))
    for m in range(kh):
        for t in range(kw):
            rows = slice(m * dh, m * dh + sh * (oh - 1) + 1, sh)
            columns = slice(t * dw, t * dw + sw * (ow - 1) + 1, sw)
            cols[:, :, m, t] = xp[:, :, rows, columns]
    out = weight.reshape(o, -1) @ cols.reshape(n, c * kh * kw, oh * ow)
    if bias is not None:
        out += bias[:, None]
    return out.reshape(n, o, oh, ow)


def _image(n, c, h, w):
    return lambda rng: (rng.normal(size=(n, c, h, w)),)


def _layer(n, c, h, w, o, kh, kw, bias=True):
    def draw(rng):
        x = rng.normal(size=(n, c, h, w))
        weight = rng.normal(size=(o, c, kh, kw))
        return (x, weight, rng.normal(size=o) if bias else None)

    return draw


WORKED_EXAMPLE = (np.arange(16.0).reshape(1, 1, 4, 4),)

TESTS = [
    Test(
        "im2col_worked_example",
        "im2col",
        WORKED_EXAMPLE,
        reference_im2col,
        kwargs={"kernel_size": 3},
        points=1,
        exact=True,
        hint=IM2COL_HINT,
        description="chapter 7's picture: a 4x4 input, a 3x3 kernel, four windows",
    ),
    Test(
        "im2col_channels_rectangular_kernel",
        "im2col",
        _image(2, 3, 5, 6),
        reference_im2col,
        kwargs={"kernel_size": (2, 3)},
        points=2,
        hint=IM2COL_HINT,
        description="2 images, 3 channels, a 2x3 kernel (not square: catches swapped axes)",
    ),
    Test(
        "im2col_stride_padding",
        "im2col",
        _image(1, 2, 7, 6),
        reference_im2col,
        kwargs={"kernel_size": 3, "stride": 2, "padding": 1},
        points=2,
        hint=IM2COL_HINT,
        description="stride 2 and one ring of zero padding",
    ),
    Test(
        "im2col_dilation",
        "im2col",
        _image(2, 2, 9, 10),
        reference_im2col,
        kwargs={"kernel_size": 3, "dilation": 2},
        points=2,
        hint=IM2COL_HINT,
        description="dilation 2: the taps are two pixels apart",
    ),
    Test(
        "im2col_pairs",
        "im2col",
        _image(2, 3, 11, 9),
        reference_im2col,
        kwargs={"kernel_size": (3, 2), "stride": (2, 1), "padding": (1, 2), "dilation": (1, 3)},
        points=2,
        hidden=True,
        hint=IM2COL_HINT,
    ),
    Test(
        "im2col_dilation_stride_padding",
        "im2col",
        _image(1, 4, 13, 12),
        reference_im2col,
        kwargs={"kernel_size": 3, "stride": 3, "padding": 2, "dilation": 2},
        points=2,
        hidden=True,
        hint=IM2COL_HINT,
    ),
    Test(
        "im2col_one_by_one",
        "im2col",
        _image(2, 5, 4, 3),
        reference_im2col,
        kwargs={"kernel_size": 1},
        points=1,
        hidden=True,
        hint=IM2COL_HINT,
    ),
    Test(
        "im2col_single_window",
        "im2col",
        _image(1, 2, 5, 4),
        reference_im2col,
        kwargs={"kernel_size": (7, 6), "padding": 1},
        points=1,
        hidden=True,
        hint=IM2COL_HINT,
    ),
    Test(
        "conv2d_im2col_bias",
        "conv2d_im2col",
        _layer(2, 3, 7, 6, 4, 3, 3),
        reference_conv2d,
        points=2,
        hint=CONV_HINT,
        description="2 images, 3 channels in, 4 out, a 3x3 kernel and a bias",
    ),
    Test(
        "conv2d_im2col_stride_padding_dilation",
        "conv2d_im2col",
        _layer(2, 2, 10, 9, 3, 3, 2),
        reference_conv2d,
        kwargs={"stride": 2, "padding": 1, "dilation": 2},
        points=2,
        hint=CONV_HINT,
        description="stride, padding and dilation together, a 3x2 kernel",
    ),
    Test(
        "conv2d_im2col_no_bias",
        "conv2d_im2col",
        _layer(1, 4, 8, 8, 5, 3, 3, bias=False),
        reference_conv2d,
        kwargs={"padding": 1},
        points=1,
        hidden=True,
        hint=CONV_HINT,
    ),
    Test(
        "conv2d_im2col_pairs",
        "conv2d_im2col",
        _layer(3, 3, 12, 11, 6, 2, 3),
        reference_conv2d,
        kwargs={"stride": (1, 2), "padding": (2, 0), "dilation": (3, 1)},
        points=2,
        hidden=True,
        hint=CONV_HINT,
    ),
    Test(
        "conv2d_im2col_one_by_one",
        "conv2d_im2col",
        _layer(2, 6, 5, 7, 3, 1, 1),
        reference_conv2d,
        points=1,
        hidden=True,
        hint=CONV_HINT,
    ),
    Test(
        "conv2d_im2col_speed",
        "conv2d_im2col",
        _layer(2, 1, 256, 256, 2, 3, 3),
        reference_conv2d,
        kwargs={"padding": 1},
        points=3,
        hidden=True,
        rtol=1e-6,
        atol=1e-8,
        time_limit=30.0,
        time_factor=20.0,
        timing_reference=timing_conv2d,
        hint=(
            "the call must take at most 20 times the processor time of a NumPy im2col with "
            "one matrix product: no Python loop over output pixels; gather the columns with "
            "one slice per kernel tap",
        ),
    ),
    Test(
        "conv2d_im2col_memory",
        "conv2d_im2col",
        _layer(1, 64, 34, 34, 512, 3, 3),
        reference_conv2d,
        points=3,
        hidden=True,
        time_limit=30.0,
        memory_limit_mb=32.0,
        hint=(
            "the call's memory may grow by at most 32 MiB, a few times the column matrix: "
            "multiply with one matrix product, not by broadcasting the weights against the "
            "columns and summing",
        ),
    ),
]
