"""Argument checking shared by the NumPy and PyTorch implementations.

Works on plain shapes (tuples of ints), so it imports neither NumPy nor PyTorch. Each check
returns the layer's :class:`~cnnlab.geometry.Window`; every error names the argument and the
offending value or shapes, as DESIGN.md requires.
"""

from __future__ import annotations

from cnnlab.geometry import IntOrPair, Pair, Window, check_int, pair

__all__ = ["conv2d_geometry", "pool2d_geometry", "check_image_shape", "padded_output_size"]


def check_image_shape(x_shape: tuple[int, ...]) -> bool:
    """Check that ``x_shape`` is (N, C, H, W) or (C, H, W); return whether it is batched."""
    if len(x_shape) not in (3, 4):
        raise ValueError(
            f"input must be 4-D (N, C, H, W) or 3-D (C, H, W), got {len(x_shape)}-D shape {x_shape}"
        )
    return len(x_shape) == 4


def _out_size(in_hw: tuple[int, ...], window: Window, what: str) -> Pair:
    """The output size, with an error that names the layer."""
    return window.output_size(tuple(in_hw), what=f"{what}: ")


def _check_channels(
    x_shape: tuple[int, ...],
    weight_shape: tuple[int, ...],
    bias_shape: tuple[int, ...] | None,
    groups: int,
) -> None:
    if len(weight_shape) != 4:
        raise ValueError(
            f"weight must be 4-D (C_out, C_in/groups, kh, kw), got {len(weight_shape)}-D shape "
            f"{weight_shape}"
        )
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


def conv2d_geometry(
    x_shape: tuple[int, ...],
    weight_shape: tuple[int, ...],
    bias_shape: tuple[int, ...] | None,
    stride: IntOrPair,
    padding: IntOrPair | str,
    dilation: IntOrPair,
    groups: int,
) -> Window:
    """Check the arguments of a 2-D convolution and return its window.

    Shapes follow :func:`torch.nn.functional.conv2d`: ``x`` is (N, C_in, H, W) or (C_in, H, W),
    ``weight`` is (C_out, C_in / groups, kh, kw), ``bias`` is (C_out,). The output size is
    ``window.output_size(x_shape[-2:])``; this check has made sure that it is not empty.

    Examples
    --------
    >>> conv2d_geometry((1, 3, 8, 8), (4, 3, 3, 3), None, 2, "valid", 1, 1).output_size(8)
    (3, 3)
    """
    x_shape, weight_shape = tuple(x_shape), tuple(weight_shape)
    check_image_shape(x_shape)
    groups = check_int("groups", groups, minimum=1)
    _check_channels(x_shape, weight_shape, bias_shape, groups)
    if not isinstance(padding, str):
        pair(padding, "padding")  # an int or an (h, w) pair, not per-side pairs
    window = Window(weight_shape[2:], stride, padding, dilation)
    _out_size(x_shape[-2:], window, "convolution")
    return window


def pool2d_geometry(
    x_shape: tuple[int, ...],
    kernel_size: IntOrPair,
    stride: IntOrPair | None,
    padding: IntOrPair,
    dilation: IntOrPair = 1,
) -> Window:
    """Check the arguments of a 2-D pooling layer and return its window.

    ``stride`` defaults to ``kernel_size``; padding may be at most half the kernel size, as in
    PyTorch (so no window is made only of padding).

    Examples
    --------
    >>> pool2d_geometry((1, 8, 8), 2, None, 0).stride
    (2, 2)
    """
    x_shape = tuple(x_shape)
    check_image_shape(x_shape)
    if isinstance(padding, str):
        raise ValueError(f"pooling padding must be an int or (h, w) pair, got {padding!r}")
    k = pair(kernel_size, "kernel_size", minimum=1)
    window = Window(k, k if stride is None else stride, pair(padding, "padding"), dilation)
    for axis in range(2):
        half = k[axis] // 2
        if window.start_padding[axis] > half:
            raise ValueError(
                f"padding {padding!r} must be at most half the kernel size "
                f"({half} on axis {axis} for kernel_size {k})"
            )
    _out_size(x_shape[-2:], window, "pooling")
    return window


def padded_output_size(
    xp_shape: tuple[int, ...], weight_shape: tuple[int, ...], window: Window, what: str
) -> Pair:
    """Check a padded (N, C, Hp, Wp) input against the window; return the output size.

    The weight's kernel must be the window's, and the window must fit in ``(Hp, Wp)``;
    the answer is every window that fits: ``window.unpadded().output_size((Hp, Wp))``.
    """
    if len(xp_shape) != 4:
        raise ValueError(f"{what}: input must be 4-D (N, C, Hp, Wp), got shape {tuple(xp_shape)}")
    if len(weight_shape) != 4 or tuple(weight_shape[2:]) != window.kernel_size:
        raise ValueError(
            f"{what}: weight shape {tuple(weight_shape)} does not have the window's kernel "
            f"{window.kernel_size}"
        )
    return window.unpadded().output_size(tuple(xp_shape[-2:]), what=f"{what}: ")
