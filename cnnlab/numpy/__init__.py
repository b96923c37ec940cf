"""NumPy reference implementations of convolution and pooling (no PyTorch here)."""

from cnnlab.numpy.backward import conv2d_backward
from cnnlab.numpy.conv import ALGORITHMS, choose_algorithm, conv2d, corr2d, im2col
from cnnlab.numpy.conv_matrix import conv_matrix
from cnnlab.numpy.dilation import dilate_kernel
from cnnlab.numpy.direct import direct_conv
from cnnlab.numpy.fft import fft_conv
from cnnlab.numpy.pool import avg_pool2d, max_pool2d
from cnnlab.numpy.pool_backward import avg_pool2d_backward, max_pool2d_backward
from cnnlab.numpy.winograd import winograd_conv, winograd_matrices

__all__ = [
    "corr2d",
    "conv2d",
    "im2col",
    "ALGORITHMS",
    "choose_algorithm",
    "dilate_kernel",
    "direct_conv",
    "fft_conv",
    "winograd_conv",
    "winograd_matrices",
    "max_pool2d",
    "avg_pool2d",
    "conv2d_backward",
    "max_pool2d_backward",
    "avg_pool2d_backward",
    "conv_matrix",
]
