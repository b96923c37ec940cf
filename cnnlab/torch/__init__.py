"""PyTorch implementations and modules."""

from cnnlab.torch.aspp import ASPP, SegmentationNet
from cnnlab.torch.backbones import TinyBackbone
from cnnlab.torch.conv import conv2d

__all__ = ["ASPP", "SegmentationNet", "TinyBackbone", "conv2d"]
