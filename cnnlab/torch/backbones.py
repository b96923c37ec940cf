"""A small convolutional backbone whose output stride is chosen by one argument.

:class:`TinyBackbone` has five stages; each halves the resolution with a stride-2 convolution,
so its output stride is ``2**5 = 32``. For output stride 16 or 8 the last one or two stages
keep stride 1 and dilate their convolutions instead, the way DeepLabv3 ("Rethinking Atrous
Convolution for Semantic Image Segmentation") turns a classification network into a dense
feature extractor: every stride of 2 that is removed doubles the dilation of the layers after
it, so those layers still see as far in the input (the receptive field is kept) while the
feature map stays 2 or 4 times larger. As in torchvision's ResNet
(``replace_stride_with_dilation``), the convolution that loses its stride keeps the dilation it
had; the ones after it take the doubled dilation. That keeps the receptive field exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.shapes import IntOrPair, conv_output_size, pair

__all__ = ["StageShape", "TinyBackbone", "stage_plan"]

NUM_STAGES = 5
OUTPUT_STRIDES = (8, 16, 32)


@dataclass(frozen=True)
class StageShape:
    """One stage of a backbone and the shape of its output feature map.

    Attributes
    ----------
    stage : int
        Stage number, 1 to 5.
    stride : int
        Stride of the stage's first convolution (2, or 1 where dilation replaced it).
    dilation : int
        Dilation of the stage's convolutions.
    channels : int
        Output channels.
    size : (int, int)
        Output height and width.
    output_stride : int
        Product of the strides up to and including this stage.
    """

    stage: int
    stride: int
    dilation: int
    channels: int
    size: tuple[int, int]
    output_stride: int


def stage_plan(output_stride: int) -> list[tuple[int, int]]:
    """Return ``(stride, dilation)`` for each of the five stages at the given output stride.

    Stages run at stride 2 until their product reaches ``output_stride``; each later stage has
    stride 1 and twice the dilation of the one before (DeepLabv3's rule). The dilation given is
    that of the stage's second convolution; its first convolution (the one that would have had
    stride 2) keeps the previous stage's dilation.

    Parameters
    ----------
    output_stride : {8, 16, 32}

    Returns
    -------
    list of (int, int)
        Five ``(stride, dilation)`` pairs.

    Examples
    --------
    >>> stage_plan(32)
    [(2, 1), (2, 1), (2, 1), (2, 1), (2, 1)]
    >>> stage_plan(8)
    [(2, 1), (2, 1), (2, 1), (1, 2), (1, 4)]
    """
    if isinstance(output_stride, bool) or output_stride not in OUTPUT_STRIDES:
        raise ValueError(f"output_stride must be one of {OUTPUT_STRIDES}, got {output_stride!r}")
    plan, current, dilation = [], 1, 1
    for _ in range(NUM_STAGES):
        if current < output_stride:
            plan.append((2, dilation))
            current *= 2
        else:
            dilation *= 2
            plan.append((1, dilation))
    return plan


def _conv_bn_relu(c_in: int, c_out: int, stride: int, dilation: int) -> nn.Sequential:
    # padding = dilation keeps a 3x3 (dilated) convolution "same" at stride 1, and halves the
    # size (rounding up) at stride 2.
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class TinyBackbone(nn.Module):
    """Five-stage convolutional backbone with output stride 32, 16 or 8.

    Stage ``n`` (1 to 5) is two 3x3 convolutions, each followed by batch norm and ReLU; the
    first carries the stage's stride and the previous stage's dilation, the second the stage's
    dilation (see :func:`stage_plan`); every padding equals its dilation. Channels are
    ``width * (1, 2, 4, 8, 8)``. The receptive field (187 pixels) is the same at every output
    stride.

    Parameters
    ----------
    in_channels : int
        Input channels (3 for RGB).
    width : int
        Channels of the first stage; later stages multiply it by 2, 4, 8, 8.
    output_stride : {32, 16, 8}
        Ratio of the input size to the final feature map's size (rounded up per stage).

    Shape
    -----
    - Input: ``(N, in_channels, H, W)``
    - Output: ``(N, 8 * width, H_out, W_out)`` with ``H_out = ceil(H / output_stride)`` for
      ``H`` a multiple of ``output_stride`` (in general, each stride-2 stage maps ``h`` to
      ``floor((h - 1) / 2) + 1``).

    Examples
    --------
    >>> net = TinyBackbone(output_stride=16)
    >>> net(torch.zeros(1, 3, 224, 224)).shape
    torch.Size([1, 128, 14, 14])
    >>> [row.size for row in net.stage_shapes(224)]
    [(112, 112), (56, 56), (28, 28), (14, 14), (14, 14)]
    """

    def __init__(self, in_channels: int = 3, width: int = 16, output_stride: int = 32) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {value!r}")
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.in_channels = in_channels
        self.width = width
        self.output_stride = output_stride
        self.plan = stage_plan(output_stride)
        self.channels = [width * m for m in (1, 2, 4, 8, 8)]
        stages, c_in, previous = [], in_channels, 1
        for (stride, dilation), c_out in zip(self.plan, self.channels, strict=True):
            stages.append(
                nn.Sequential(
                    _conv_bn_relu(c_in, c_out, stride, previous),
                    _conv_bn_relu(c_out, c_out, 1, dilation),
                )
            )
            c_in, previous = c_out, dilation
        self.stages = nn.ModuleList(stages)

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Return the output of every stage, in order (five tensors, NCHW)."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"input must have shape (N, {self.in_channels}, H, W), got {tuple(x.shape)}"
            )
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the last stage's feature map, ``(N, 8 * width, H_out, W_out)``."""
        return self.forward_stages(x)[-1]

    def stage_shapes(self, input_size: IntOrPair) -> list[StageShape]:
        """Return every stage's output size, worked out with :func:`conv_output_size`.

        No tensor is made: this is the shape arithmetic that a forward pass obeys.

        Parameters
        ----------
        input_size : int or (int, int)
            Input height and width.

        Returns
        -------
        list of StageShape
            One row per stage.
        """
        size = pair(input_size, "input_size")
        rows, total, previous = [], 1, 1
        for number, ((stride, dilation), channels) in enumerate(
            zip(self.plan, self.channels, strict=True), start=1
        ):
            size = pair(conv_output_size(size, 3, stride, previous, previous))
            size = pair(conv_output_size(size, 3, 1, dilation, dilation))
            previous = dilation
            total *= stride
            rows.append(StageShape(number, stride, dilation, channels, size, total))
        return rows

    def stage_table(self, input_size: IntOrPair) -> str:
        """Return :meth:`stage_shapes` as a plain-text table.

        Examples
        --------
        >>> print(TinyBackbone(output_stride=8).stage_table(224))
        stage  stride  dilation  channels  feature map  output stride
        input                           3      224x224              1
            1       2         1        16      112x112              2
            2       2         1        32        56x56              4
            3       2         1        64        28x28              8
            4       1         2       128        28x28              8
            5       1         4       128        28x28              8
        """
        h, w = pair(input_size, "input_size")
        header = ("stage", "stride", "dilation", "channels", "feature map", "output stride")
        lines = [("input", "", "", str(self.in_channels), f"{h}x{w}", "1")]
        for row in self.stage_shapes(input_size):
            lines.append(
                (
                    str(row.stage),
                    str(row.stride),
                    str(row.dilation),
                    str(row.channels),
                    f"{row.size[0]}x{row.size[1]}",
                    str(row.output_stride),
                )
            )
        widths = [max(len(header[c]), *(len(line[c]) for line in lines)) for c in range(6)]
        text = [
            "  ".join(
                h.rjust(w) if c else h.ljust(w)
                for c, (h, w) in enumerate(zip(header, widths, strict=True))
            )
        ]
        for line in lines:
            text.append("  ".join(v.rjust(w) for v, w in zip(line, widths, strict=True)))
        return "\n".join(text)
