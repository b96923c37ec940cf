"""Graded tests of exercise 01, cross-correlation (chapter 1).

Imported by the grading process only. Expected answers come from the cnnlab references
(``cnnlab.numpy.corr2d``, ``cnnlab.numpy.conv2d``); the worker that runs a submission receives
the inputs and nothing else. The output size is given in a locked cell of the notebook (it is
graded, with dilation, in exercise 02).

Each hint has two levels: a nudge (what to look at), shown on a failure, and the full formula,
shown by ``check(name, function, hint=2)``.
"""

import numpy as np

from cnnlab.exercises.spec import Test
from cnnlab.numpy import conv2d as reference_conv2d
from cnnlab.numpy import corr2d as reference_corr2d

# Library shortcuts replaced by raising stubs inside the grading worker.
FORBIDDEN = [
    "torch.conv2d",
    "torch.nn.functional.conv2d",
    "torch.nn.functional.unfold",
    "torch._C._VariableFunctions.conv2d",
    "scipy.signal.correlate2d",
    "scipy.signal.convolve2d",
    "scipy.signal.correlate",
    "scipy.signal.convolve",
    "scipy.signal.fftconvolve",
    "scipy.ndimage.correlate",
    "scipy.ndimage.convolve",
    "numpy.convolve",
    "numpy.correlate",
    "cnnlab.numpy.corr2d",
    "cnnlab.numpy.conv2d",
    "cnnlab.numpy.conv.corr2d",
    "cnnlab.numpy.conv.conv2d",
    "cnnlab.numpy.conv.im2col",
    "cnnlab.torch.conv2d",
    "cnnlab.torch.conv.conv2d",
    "cnnlab.shapes.conv_output_size",
    "cnnlab.numpy.direct_conv",
    "cnnlab.numpy.fft_conv",
    "cnnlab.numpy.winograd_conv",
    "cnnlab.numpy.direct.direct_conv",
    "cnnlab.numpy.fft.fft_conv",
    "cnnlab.numpy.winograd.winograd_conv",
    "cnnlab.numpy.conv._im2col_gemm",
    "cnnlab.numpy.conv.windows",
    "cnnlab._checks.conv2d_geometry",
    "cnnlab._checks._out_size",
    "torch.convolution",
    "torch._convolution",
    "torch.conv_transpose2d",
    "torch.nn.functional.conv_transpose2d",
    "torch.ops.aten.conv2d",
    "torch.ops.aten.convolution",
    "torch.ops.aten._convolution",
    # The other routes to the same kernels: a 1-D or 3-D convolution does a 2-D one with a
    # reshape, and the backends' own entry points.
    "torch.conv1d",
    "torch.conv3d",
    "torch.nn.functional.conv1d",
    "torch.nn.functional.conv3d",
    "torch._C._VariableFunctions.conv1d",
    "torch._C._VariableFunctions.conv3d",
    "torch._VF.conv1d",
    "torch._VF.conv2d",
    "torch._VF.conv3d",
    "torch.mkldnn_convolution",
    "torch.ops.aten.conv1d",
    "torch.ops.aten.conv3d",
    "torch.ops.aten.mkldnn_convolution",
    "torch.ops.aten.thnn_conv2d",
]

# Whole modules that cannot be imported inside the grading worker: every cnnlab route to a
# convolution or an output size, and SciPy's signal processing.
FORBIDDEN_MODULES = [
    "cnnlab.numpy",
    "cnnlab.torch",
    "cnnlab.shapes",
    "cnnlab._checks",
    "cnnlab.geometry",  # Window.output_size is the output-size law
    "scipy.signal",
]

CORR_HINT = (
    "compare the shape first, then the first differing value: is output (i, j) the window whose "
    "top-left pixel is (i, j), multiplied by the kernel as it is given, tap by tap?",
    "S(i, j) = sum_m sum_n I(i + m, j + n) K(m, n): the kernel is not flipped, and the output "
    "has H - kh + 1 rows and W - kw + 1 columns",
)
CONV_HINT = (
    "with one image, one channel, stride 1 and no padding your conv2d must equal corr2d; from "
    "there, check where window (i, j) starts in the padded input, which axes you sum over, and "
    "that the bias is added once per output channel",
    "out[n, o, i, j] = bias[o] + sum over c, m, l of x_padded[n, c, i*sh + m, j*sw + l] "
    "* weight[o, c, m, l]; pad with zeros on both sides before sliding",
)
SPEED_HINT = (
    "a Python loop over the 262144 output positions is too slow: let NumPy do the loop",
    "vectorise: gather every window at once (sliding_window_view, im2col) and use one matrix "
    "product with the weights reshaped to (O, C * kh * kw)",
)


def _image_kernel(h, w, kh, kw):
    return lambda rng: (rng.normal(size=(h, w)), rng.normal(size=(kh, kw)))


def _layer(n, c, h, w, o, kh, kw, bias=True):
    def draw(rng):
        x = rng.normal(size=(n, c, h, w))
        weight = rng.normal(size=(o, c, kh, kw))
        return (x, weight, rng.normal(size=o) if bias else None)

    return draw


TESTS = [
    Test(
        "corr2d_worked_example",
        "corr2d",
        (np.arange(9.0).reshape(3, 3), np.array([[1.0, 0.0], [0.0, -1.0]])),
        reference_corr2d,
        points=1,
        hint=CORR_HINT,
        description="the 3x3 example of chapter 1",
    ),
    Test(
        "corr2d_random",
        "corr2d",
        _image_kernel(6, 7, 3, 2),
        reference_corr2d,
        points=2,
        hint=CORR_HINT,
        description="a 6x7 image and a 3x2 kernel (not square: catches swapped axes)",
    ),
    Test(
        "corr2d_tall_kernel",
        "corr2d",
        _image_kernel(9, 8, 4, 3),
        reference_corr2d,
        points=2,
        hidden=True,
        hint=CORR_HINT,
    ),
    Test(
        "corr2d_kernel_as_large_as_image",
        "corr2d",
        _image_kernel(5, 4, 5, 4),
        reference_corr2d,
        points=1,
        hidden=True,
        hint=CORR_HINT,
    ),
    Test(
        "conv2d_single_channel",
        "conv2d",
        _layer(1, 1, 5, 6, 1, 3, 3, bias=False),
        reference_conv2d,
        points=1,
        hint=CONV_HINT,
        description="one image, one channel, one filter: the same as corr2d",
    ),
    Test(
        "conv2d_multichannel_bias",
        "conv2d",
        _layer(2, 3, 7, 6, 4, 3, 2),
        reference_conv2d,
        points=2,
        hint=CONV_HINT,
        description="2 images, 3 channels in, 4 out, a bias",
    ),
    Test(
        "conv2d_stride_padding_pairs",
        "conv2d",
        _layer(2, 3, 9, 8, 5, 3, 3),
        reference_conv2d,
        kwargs={"stride": (2, 1), "padding": (1, 2)},
        points=2,
        hidden=True,
        hint=CONV_HINT,
    ),
    Test(
        "conv2d_stride_padding_ints",
        "conv2d",
        _layer(1, 2, 10, 11, 3, 4, 3),
        reference_conv2d,
        kwargs={"stride": 3, "padding": 1},
        points=1,
        hidden=True,
        hint=CONV_HINT,
    ),
    Test(
        "conv2d_vectorised_large_layer",
        "conv2d",
        _layer(1, 3, 512, 512, 8, 3, 3),
        reference_conv2d,
        kwargs={"stride": 1, "padding": 1},
        points=2,
        hidden=True,
        rtol=1e-5,
        atol=1e-6,
        time_limit=3.0,
        hint=SPEED_HINT,
    ),
]
