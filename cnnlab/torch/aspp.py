"""Atrous Spatial Pyramid Pooling (ASPP), the head of DeepLabv3, and a tiny segmentation net.

DeepLabv3 (Chen, Papandreou, Schroff & Adam, "Rethinking Atrous Convolution for Semantic Image
Segmentation", 2017, section 3.3) looks at a feature map at several scales at once. Its ASPP
head runs five branches in parallel, each ending in batch norm and ReLU with ``out_channels``
(256) channels:

1. a 1x1 convolution;
2. three 3x3 atrous convolutions with rates ``(6, 12, 18)`` at output stride 16
   (``(12, 24, 36)`` at output stride 8), each padded by its rate so the size is kept;
3. image-level features: global average pooling, a 1x1 convolution, batch norm, ReLU, and
   bilinear upsampling back to the feature map's size.

The five outputs are concatenated (``5 * 256`` channels) and projected by a 1x1 convolution
with batch norm and ReLU to ``out_channels`` channels. The image-level branch exists because a
3x3 filter whose rate approaches the feature map's size sees mostly padding and degenerates to
a 1x1 filter (see :func:`cnnlab.atrous.valid_weight_fractions`); global pooling gives the head
the whole image's context directly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.atrous import check_rates
from cnnlab.shapes import check_int
from cnnlab.torch.backbones import TinyBackbone

__all__ = ["ASPP", "ASPPPooling", "SegmentationNet"]


def _conv_bn_relu(c_in: int, c_out: int, kernel_size: int, dilation: int = 1) -> nn.Sequential:
    padding = dilation * (kernel_size - 1) // 2
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size, padding=padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class ASPPPooling(nn.Module):
    """Image-level branch of ASPP: global average pool, 1x1 conv, BN, ReLU, upsample.

    Shape
    -----
    - Input: ``(N, in_channels, H, W)``
    - Output: ``(N, out_channels, H, W)``, constant over ``H x W``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the image-level features, upsampled to ``x``'s height and width."""
        size = x.shape[-2:]
        y = self.relu(self.bn(self.conv(self.pool(x))))
        return F.interpolate(y, size=size, mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    r"""Atrous Spatial Pyramid Pooling head of DeepLabv3.

    ``branches[0]`` is the 1x1 convolution, ``branches[1:-1]`` the 3x3 atrous convolutions (one
    per rate, padding equal to the rate), ``branches[-1]`` the image-level pooling branch;
    ``project`` is the 1x1 convolution (with BN, ReLU and dropout) applied to their
    concatenation.

    .. math:: \mathrm{ASPP}(x) = P\big([\,B_{1\times1}(x),\ B_{r_1}(x),\ \dots,\
              B_{r_m}(x),\ \mathrm{up}(B_\text{pool}(\bar x))\,]\big)

    Parameters
    ----------
    in_channels : int
        Channels of the backbone's feature map (2048 for ResNet-50).
    out_channels : int
        Channels of every branch and of the output (256 in the paper).
    rates : sequence of positive int
        Rates of the 3x3 branches: ``(6, 12, 18)`` at output stride 16, ``(12, 24, 36)`` at 8.
    dropout : float
        Dropout probability after the projection (0.1 in torchvision; 0 disables it).

    Shape
    -----
    - Input: ``(N, in_channels, H, W)``
    - Output: ``(N, out_channels, H, W)``

    Examples
    --------
    >>> aspp = ASPP(64, out_channels=32).eval()
    >>> aspp(torch.zeros(2, 64, 33, 33)).shape
    torch.Size([2, 32, 33, 33])
    >>> [branch[0].dilation for branch in aspp.branches[:-1]]
    [(1, 1), (6, 6), (12, 12), (18, 18)]
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 256,
        rates: Sequence[int] = (6, 12, 18),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        in_channels = check_int("in_channels", in_channels, minimum=1)
        out_channels = check_int("out_channels", out_channels, minimum=1)
        rates = check_rates("rates", rates)
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.in_channels, self.out_channels, self.rates = in_channels, out_channels, rates
        branches = [_conv_bn_relu(in_channels, out_channels, 1)]
        branches += [_conv_bn_relu(in_channels, out_channels, 3, rate) for rate in rates]
        branches.append(ASPPPooling(in_channels, out_channels))
        self.branches = nn.ModuleList(branches)
        self.project = nn.Sequential(
            nn.Conv2d(len(branches) * out_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
        )

    def branch_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Return the output of every branch, in order: 1x1, each rate, image pooling."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"input must have shape (N, {self.in_channels}, H, W), got {tuple(x.shape)}"
            )
        return [branch(x) for branch in self.branches]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the projected concatenation of the branches, ``(N, out_channels, H, W)``."""
        return self.project(torch.cat(self.branch_outputs(x), dim=1))


class SegmentationNet(nn.Module):
    """A :class:`TinyBackbone`, a head (ASPP or one 3x3 conv), a 1x1 classifier, upsampling.

    The logits of the ``H / os x W / os`` feature map are upsampled bilinearly to the input's
    size, as DeepLabv3 does. Without ASPP the head is a single 3x3 convolution with BN and
    ReLU, so the two nets differ only in the head.

    Parameters
    ----------
    num_classes : int
    in_channels : int
    width : int
        Backbone width (its feature map has ``8 * width`` channels).
    output_stride : {8, 16, 32}
    head_channels : int
        Channels of the head's output.
    rates : sequence of int or None
        ASPP rates; ``None`` for the plain head.

    Shape
    -----
    - Input: ``(N, in_channels, H, W)``
    - Output: ``(N, num_classes, H, W)`` (logits)

    Examples
    --------
    >>> net = SegmentationNet(3, in_channels=1, width=4, output_stride=8, rates=(1, 2, 3))
    >>> net.eval()(torch.zeros(1, 1, 64, 64)).shape
    torch.Size([1, 3, 64, 64])
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        width: int = 8,
        output_stride: int = 8,
        head_channels: int = 32,
        rates: Sequence[int] | None = (6, 12, 18),
    ) -> None:
        super().__init__()
        num_classes = check_int("num_classes", num_classes, minimum=1)
        head_channels = check_int("head_channels", head_channels, minimum=1)
        self.backbone = TinyBackbone(in_channels, width, output_stride)
        features = self.backbone.channels[-1]
        if rates is None:
            self.head = _conv_bn_relu(features, head_channels, 3)
        else:
            self.head = ASPP(features, head_channels, rates)
        self.classifier = nn.Conv2d(head_channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return per-pixel class logits at the input's resolution."""
        logits = self.classifier(self.head(self.backbone(x)))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
