"""PyTorch implementations and modules."""

from cnnlab.torch.conv import conv2d

__all__ = ["conv2d"]
