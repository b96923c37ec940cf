"""Argument checking and geometry shared by the NumPy and PyTorch implementations.

Works on plain shapes (tuples of ints), so it imports neither NumPy nor PyTorch. Every error
names the argument and the offending value or shapes, as DESIGN.md requires.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnlab.shapes import IntOrPair, check_int, pair, window_output_size

Pads = tuple[tuple[int, int], tuple[int, int]]


@dataclass(frozen=True)
class ConvGeometry:
    """Everything a 2-D convolution needs, resolved and checked.

    Attributes
    ----------
    batched : bool
        Whether the input had a batch axis (4-D) rather than being a single (C, H, W) image.
    stride, dilation : (int, int)
        Per axis.
    pads : ((top, bottom), (left, right))
        Zero padding per side; 'same' with an even effective kernel pads one more at the end,
        as PyTorch does.
    kernel_size : (int, int)
    out_size : (int, int)
        Output height and width.
    """

    batched: bool
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pads: Pads
    kernel_size: tuple[int, int]
    out_size: tuple[int, int]


def _positive(name: str, value: IntOrPair) -> tuple[int, int]:
    p = pair(value, name)
    for v in p:
        check_int(name, v, minimum=1)
    return p


def resolve_padding(
    padding: IntOrPair | str,
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> Pads:
    """Turn ``padding`` (int, pair, 'valid' or 'same') into per-side pads."""
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return ((0, 0), (0, 0))
        if mode == "same":
            if stride != (1, 1):
                raise ValueError(
                    f"padding='same' is only defined for stride 1, got stride={stride}"
                )
            pads = []
            for axis in range(2):
                total = dilation[axis] * (kernel_size[axis] - 1)
                pads.append((total // 2, total - total // 2))
            return (pads[0], pads[1])
        raise ValueError(
            f"padding must be an int, an (h, w) pair, 'valid' or 'same', got {padding!r}"
        )
    p = pair(padding, "padding")
    if min(p) < 0:
        raise ValueError(f"padding must be >= 0, got {padding!r}")
    return ((p[0], p[0]), (p[1], p[1]))


def _out_size(
    in_hw: tuple[int, int],
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    pads: Pads,
    dilation: tuple[int, int],
    what: str,
) -> tuple[int, int]:
    span = tuple(dilation[a] * (kernel_size[a] - 1) + 1 for a in range(2))
    prefix = f"{what} with kernel_size {kernel_size}, dilation {dilation}: "
    return window_output_size(in_hw, span, stride, pads, what=prefix)


def check_windows_fit(
    array_shape: tuple[int, ...],
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    out_size: tuple[int, int],
    what: str,
) -> None:
    """Check that ``out_size`` windows fit in an already padded array of ``array_shape``.

    The last window on an axis ends at ``(o - 1) s + d (k - 1) + 1``, which must be at most the
    padded size ``hp``: the largest ``o`` allowed is ``(hp - d (k - 1) - 1) // s + 1``. Strided
    views built from a geometry that breaks this would read memory outside the array.
    """
    for name, value in (("stride", stride), ("dilation", dilation), ("kernel_size", kernel_size)):
        if len(value) != 2 or min(value) < 1:
            raise ValueError(f"{what}: {name} must be a pair of ints >= 1, got {value!r}")
    if len(out_size) != 2 or min(out_size) < 1:
        raise ValueError(f"{what}: out_size must be a pair of ints >= 1, got {out_size!r}")
    if len(array_shape) != 4:
        raise ValueError(f"{what}: input must be 4-D (N, C, Hp, Wp), got shape {array_shape}")
    for axis in range(2):
        end = (out_size[axis] - 1) * stride[axis] + dilation[axis] * (kernel_size[axis] - 1) + 1
        if end > array_shape[2 + axis]:
            fits = (array_shape[2 + axis] - dilation[axis] * (kernel_size[axis] - 1) - 1) // stride[
                axis
            ] + 1
            raise ValueError(
                f"{what}: out_size {tuple(out_size)} does not fit the padded input of shape "
                f"{tuple(array_shape)} with kernel_size {tuple(kernel_size)}, stride "
                f"{tuple(stride)}, dilation {tuple(dilation)}: axis {axis} has room for at most "
                f"{max(fits, 0)} outputs"
            )


def conv2d_geometry(
    x_shape: tuple[int, ...],
    weight_shape: tuple[int, ...],
    bias_shape: tuple[int, ...] | None,
    stride: IntOrPair,
    padding: IntOrPair | str,
    dilation: IntOrPair,
    groups: int,
) -> ConvGeometry:
    """Check the arguments of a 2-D convolution and work out its geometry.

    Shapes follow :func:`torch.nn.functional.conv2d`: ``x`` is (N, C_in, H, W) or (C_in, H, W),
    ``weight`` is (C_out, C_in / groups, kh, kw), ``bias`` is (C_out,).
    """
    x_shape, weight_shape = tuple(x_shape), tuple(weight_shape)
    if len(x_shape) not in (3, 4):
        raise ValueError(
            f"input must be 4-D (N, C, H, W) or 3-D (C, H, W), got {len(x_shape)}-D shape {x_shape}"
        )
    if len(weight_shape) != 4:
        raise ValueError(
            f"weight must be 4-D (C_out, C_in/groups, kh, kw), got {len(weight_shape)}-D shape "
            f"{weight_shape}"
        )
    groups = check_int("groups", groups, minimum=1)
    batched = len(x_shape) == 4
    c_in, h, w = x_shape[-3:]
    c_out, c_per_group, kh, kw = weight_shape
    if c_in % groups != 0:
        raise ValueError(
            f"groups={groups} does not divide the input channels {c_in} (input shape {x_shape})"
        )
    if c_out % groups != 0:
        raise ValueError(
            f"groups={groups} does not divide the output channels {c_out} (weight shape {weight_shape})"
        )
    if c_per_group * groups != c_in:
        raise ValueError(
            f"channel mismatch: input shape {x_shape} has {c_in} channels, but weight shape "
            f"{weight_shape} with groups={groups} expects {c_per_group * groups}"
        )
    if min(kh, kw) < 1 or min(h, w) < 1:
        raise ValueError(f"empty input {x_shape} or kernel {weight_shape}")
    if bias_shape is not None and tuple(bias_shape) != (c_out,):
        raise ValueError(
            f"bias must have shape ({c_out},) to match weight shape {weight_shape}, got {tuple(bias_shape)}"
        )
    s = _positive("stride", stride)
    d = _positive("dilation", dilation)
    pads = resolve_padding(padding, (kh, kw), s, d)
    out = _out_size((h, w), (kh, kw), s, pads, d, "convolution")
    return ConvGeometry(batched, s, d, pads, (kh, kw), out)


def pool2d_geometry(
    x_shape: tuple[int, ...],
    kernel_size: IntOrPair,
    stride: IntOrPair | None,
    padding: IntOrPair,
    dilation: IntOrPair = 1,
) -> ConvGeometry:
    """Check the arguments of a 2-D pooling layer and work out its geometry.

    ``stride`` defaults to ``kernel_size``; padding may be at most half the kernel size, as in
    PyTorch (so no window is made only of padding).
    """
    x_shape = tuple(x_shape)
    if len(x_shape) not in (3, 4):
        raise ValueError(
            f"input must be 4-D (N, C, H, W) or 3-D (C, H, W), got {len(x_shape)}-D shape {x_shape}"
        )
    k = _positive("kernel_size", kernel_size)
    s = k if stride is None else _positive("stride", stride)
    d = _positive("dilation", dilation)
    if isinstance(padding, str):
        raise ValueError(f"pooling padding must be an int or (h, w) pair, got {padding!r}")
    pads = resolve_padding(padding, k, s, d)
    for axis in range(2):
        half = k[axis] // 2
        if pads[axis][0] > half:
            raise ValueError(
                f"padding {padding!r} must be at most half the kernel size "
                f"({half} on axis {axis} for kernel_size {k})"
            )
    out = _out_size(tuple(x_shape[-2:]), k, s, pads, d, "pooling")
    return ConvGeometry(len(x_shape) == 4, s, d, pads, k, out)
