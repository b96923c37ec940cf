"""Convolution in PyTorch as im2col (``F.unfold``) and one batched matrix product."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cnnlab._checks import conv2d_geometry
from cnnlab.shapes import IntOrPair

__all__ = ["conv2d"]


def conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair | str = 0,
    dilation: IntOrPair = 1,
    groups: int = 1,
) -> torch.Tensor:
    r"""2-D cross-correlation as im2col and a matrix product, equal to ``F.conv2d``.

    .. math::

        \text{out}(n, o, \cdot) = b(o) + W_o \cdot \text{unfold}(x_p)(n, g(o))

    ``F.unfold`` lays every (dilated, strided) window of the padded input out as a column of
    ``C_in/groups * kh * kw`` values; each group's filters, flattened to rows, multiply those
    columns in one batched matrix product. Differentiable, and runs on any device and float dtype
    of its inputs.

    Parameters
    ----------
    x : Tensor, shape (N, C_in, H, W) or (C_in, H, W)
    weight : Tensor, shape (C_out, C_in / groups, kh, kw)
    bias : Tensor, shape (C_out,), optional
    stride, dilation : int or (int, int)
    padding : int, (int, int), 'valid' or 'same'
        'same' (stride 1 only) pads one more at the bottom/right for an even effective kernel.
    groups : int

    Returns
    -------
    Tensor, shape (N, C_out, OH, OW) or (C_out, OH, OW)

    Examples
    --------
    >>> x = torch.randn(2, 4, 9, 9, dtype=torch.float64)
    >>> w = torch.randn(6, 2, 3, 3, dtype=torch.float64)
    >>> y = conv2d(x, w, stride=2, padding=1, groups=2)
    >>> y.shape
    torch.Size([2, 6, 5, 5])
    >>> torch.allclose(y, F.conv2d(x, w, stride=2, padding=1, groups=2))
    True
    """
    if not isinstance(x, torch.Tensor) or not isinstance(weight, torch.Tensor):
        raise TypeError(
            f"x and weight must be torch.Tensor, got {type(x).__name__} and {type(weight).__name__}"
        )
    if bias is not None and not isinstance(bias, torch.Tensor):
        raise TypeError(f"bias must be a torch.Tensor or None, got {type(bias).__name__}")
    window = conv2d_geometry(
        tuple(x.shape),
        tuple(weight.shape),
        None if bias is None else tuple(bias.shape),
        stride,
        padding,
        dilation,
        groups,
    )
    batched = x.dim() == 4
    batch = x if batched else x.unsqueeze(0)
    (top, bottom), (left, right) = window.padding
    if top or bottom or left or right:
        batch = F.pad(batch, (left, right, top, bottom))
    n = batch.shape[0]
    c_out = weight.shape[0]
    (oh, ow) = window.output_size(tuple(x.shape[-2:]))
    cols = F.unfold(batch, window.kernel_size, dilation=window.dilation, stride=window.stride)
    # cols: (N, C_in * kh * kw, OH * OW), channel-major, so each group is a contiguous slab.
    cols = cols.reshape(n, groups, -1, oh * ow)
    w = weight.reshape(groups, c_out // groups, -1)
    out = torch.matmul(w, cols)  # (N, groups, C_out/groups, OH*OW)
    out = out.reshape(n, c_out, oh, ow)
    if bias is not None:
        out = out + bias.reshape(1, c_out, 1, 1)
    return out if batched else out[0]
