"""NumPy reference implementations of convolution and pooling (no PyTorch here)."""

from cnnlab.numpy.conv import conv2d, corr2d, im2col
from cnnlab.numpy.pool import avg_pool2d, max_pool2d

__all__ = ["corr2d", "conv2d", "im2col", "max_pool2d", "avg_pool2d"]
