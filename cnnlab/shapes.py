"""Output-size, padding, dilation and output-stride arithmetic, on plain integers.

Every function here takes either a single ``int`` (the same value on both axes) or an
``(h, w)`` pair, and answers in the same form: ints in, int out; a pair anywhere in, a pair out.
Nothing here needs NumPy or PyTorch: this is the arithmetic that every other module checks
itself against.

The central law (the one :func:`torch.nn.functional.conv2d` applies) is::

    o = floor((i + 2p - d(k - 1) - 1) / s) + 1

for input size ``i``, kernel size ``k``, stride ``s``, padding ``p`` (per side) and dilation ``d``.
"""

from __future__ import annotations

from collections.abc import Iterable

from cnnlab.geometry import IntOrPair, Pads, Window, check_int, pair, same_form

__all__ = [
    "IntOrPair",
    "pair",
    "conv_output_size",
    "window_output_size",
    "check_int",
    "effective_kernel_size",
    "same_padding",
    "output_stride",
    "split_padding",
    "conv_input_sizes",
    "transposed_output_size",
    "conv_params",
    "conv_macs",
]


def effective_kernel_size(kernel_size: IntOrPair, dilation: IntOrPair = 1) -> IntOrPair:
    """Return the span of a dilated kernel: ``k + (k - 1)(d - 1)``.

    A kernel of ``k`` taps with ``d - 1`` holes between neighbouring taps covers
    ``k + (k - 1)(d - 1) = d(k - 1) + 1`` input pixels.

    Parameters
    ----------
    kernel_size : int or (int, int)
        Number of taps ``k`` per axis, at least 1.
    dilation : int or (int, int)
        Dilation (atrous rate) ``d`` per axis, at least 1.

    Returns
    -------
    int or (int, int)
        The effective kernel size, a pair if any argument was a pair.

    Examples
    --------
    >>> effective_kernel_size(3, dilation=2)
    5
    >>> effective_kernel_size((3, 1), dilation=(6, 6))
    (13, 1)
    """
    return same_form(Window(kernel_size, dilation=dilation).span, kernel_size, dilation)


def window_output_size(
    size: tuple[int, int],
    span: tuple[int, int],
    stride: tuple[int, int],
    pads: Pads,
    ceil_mode: bool = False,
    what: str = "",
) -> tuple[int, int]:
    """Return how many windows of ``span`` pixels fit per axis, with per-side padding.

    :meth:`cnnlab.geometry.Window.output_size` of a window of ``span`` taps (dilation 1): the
    law of :func:`conv_output_size` with padding that may differ between the two sides, and
    PyTorch pooling's ``ceil_mode``. ``size``, ``span`` and ``stride`` are ``(h, w)`` pairs,
    ``pads`` is ``((top, bottom), (left, right))``, ``what`` prefixes the error message.

    Examples
    --------
    >>> window_output_size((5, 5), (3, 3), (2, 2), ((1, 1), (0, 1)))
    (3, 2)
    >>> window_output_size((6, 6), (3, 3), (2, 2), ((0, 0), (0, 0)), ceil_mode=True)
    (3, 3)
    """
    window = Window(span, stride, pads)
    return window.output_size(size, ceil_mode, what)


def conv_output_size(
    size: IntOrPair,
    kernel_size: IntOrPair,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
) -> IntOrPair:
    r"""Return the spatial output size of a convolution or pooling layer.

    .. math:: o = \left\lfloor \frac{i + 2p - d(k - 1) - 1}{s} \right\rfloor + 1

    exactly as :func:`torch.nn.functional.conv2d` computes it; ``padding`` is added on *each*
    side (a total of ``2p`` per axis).

    Parameters
    ----------
    size : int or (int, int)
        Input size ``i`` (height, width), at least 1.
    kernel_size : int or (int, int)
        Kernel size ``k``, at least 1.
    stride : int or (int, int)
        Stride ``s``, at least 1.
    padding : int or (int, int)
        Zero padding ``p`` on each side, at least 0.
    dilation : int or (int, int)
        Dilation ``d``, at least 1.

    Returns
    -------
    int or (int, int)
        Output size ``o``; a pair if any argument was a pair.

    Raises
    ------
    ValueError
        If an argument is out of range, or the dilated kernel is larger than the padded input
        (the output would be empty).

    Examples
    --------
    >>> conv_output_size(224, kernel_size=7, stride=2, padding=3)
    112
    >>> conv_output_size((5, 7), kernel_size=3, padding=1, dilation=(1, 2))
    (5, 5)
    """
    pair(padding, "padding")  # an int or a pair here; Window also takes 'same' and sides
    out = Window(kernel_size, stride, padding, dilation).output_size(size)
    return same_form(out, size, kernel_size, stride, padding, dilation)


def same_padding(kernel_size: IntOrPair, dilation: IntOrPair = 1) -> IntOrPair:
    """Return the per-side padding that keeps the size unchanged at stride 1.

    With stride 1, ``o = i + 2p - d(k - 1)``, so ``o = i`` needs ``p = d(k - 1) / 2``, which is
    an integer exactly when the effective kernel ``d(k - 1) + 1`` is odd.

    Parameters
    ----------
    kernel_size : int or (int, int)
        Kernel size ``k``.
    dilation : int or (int, int)
        Dilation ``d``.

    Returns
    -------
    int or (int, int)
        ``d(k - 1) / 2`` per axis.

    Raises
    ------
    ValueError
        If the effective kernel size is even: no symmetric padding then keeps the size.

    Examples
    --------
    >>> same_padding(3)
    1
    >>> same_padding(3, dilation=6)
    6
    """
    window = Window(kernel_size, padding="same", dilation=dilation)
    for axis in range(2):
        if window.span[axis] % 2 == 0:
            raise ValueError(
                f"'same' padding needs an odd effective kernel size, but kernel_size "
                f"{window.kernel_size} with dilation {window.dilation} spans {window.span[axis]} "
                f"on axis {axis}; pad asymmetrically instead"
            )
    return same_form(window.start_padding, kernel_size, dilation)


def output_stride(strides: Iterable[IntOrPair]) -> IntOrPair:
    """Return a network's output stride: the product of its layers' strides.

    The output stride is the ratio of the input size to the final feature map's size: a
    network of output stride 16 maps a 224x224 image to 14x14 features.

    Parameters
    ----------
    strides : iterable of int or (int, int)
        The stride of every layer, in order.

    Returns
    -------
    int or (int, int)
        The product of the strides; a pair if any stride was a pair.

    Examples
    --------
    >>> output_stride([2, 2, 2, 2])
    16
    >>> output_stride([])
    1
    """
    strides = list(strides)
    total = [1, 1]
    for index, s in enumerate(strides):
        sp = pair(s, f"strides[{index}]", minimum=1)
        total[0] *= sp[0]
        total[1] *= sp[1]
    return same_form((total[0], total[1]), *strides)


def split_padding(total_padding: int) -> tuple[int, int]:
    """Split a *total* padding ``P`` (both sides together) into ``(before, after)`` per side.

    Some books write the output-size law with the total padding of an axis,
    ``o = floor((i + P - d(k - 1) - 1) / s) + 1``; this module (like PyTorch) uses the padding
    ``p`` on *each* side, ``P = 2p``. An odd ``P`` cannot be split evenly: the extra pixel goes
    at the end (bottom or right), as PyTorch's ``padding='same'`` and TensorFlow do.

    Parameters
    ----------
    total_padding : int
        Total zero padding ``P`` of one axis, at least 0.

    Returns
    -------
    (int, int)
        ``(P // 2, P - P // 2)``: padding before and after.

    Examples
    --------
    >>> split_padding(2)
    (1, 1)
    >>> split_padding(3)
    (1, 2)
    """
    total = check_int("total_padding", total_padding)
    if total < 0:
        raise ValueError(f"total_padding must be >= 0, got {total}")
    return (total // 2, total - total // 2)


def conv_input_sizes(
    output_size: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> range:
    r"""Return every input size that a convolution maps to ``output_size`` (one axis).

    The floor in ``o = floor((i + 2p - d(k - 1) - 1) / s) + 1`` throws away a remainder
    between 0 and ``s - 1``, so ``s`` consecutive input sizes share one output size:

    .. math:: i \in [\, (o - 1)s + d(k - 1) + 1 - 2p,\; (o - 1)s + d(k - 1) + 1 - 2p + s - 1 \,]

    (only sizes of at least 1 are kept). This is why a transposed convolution needs
    ``output_padding`` to say which of them to produce.

    Parameters
    ----------
    output_size : int
        The output size ``o``, at least 1.
    kernel_size, stride, padding, dilation : int
        As in :func:`conv_output_size`, one axis.

    Returns
    -------
    range
        The input sizes, in increasing order (``s`` of them unless the smallest would be < 1).

    Examples
    --------
    >>> list(conv_input_sizes(4, kernel_size=3, stride=2, padding=1))
    [7, 8]
    >>> list(conv_input_sizes(3, kernel_size=3))
    [5]
    """
    o = check_int("output_size", output_size, minimum=1)
    k = check_int("kernel_size", kernel_size, minimum=1)
    s = check_int("stride", stride, minimum=1)
    p = check_int("padding", padding, minimum=0)
    d = check_int("dilation", dilation, minimum=1)
    smallest = (o - 1) * s + Window(k, dilation=d).span[0] - 2 * p
    return range(max(smallest, 1), smallest + s)


def transposed_output_size(
    size: IntOrPair,
    kernel_size: IntOrPair,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    output_padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
) -> IntOrPair:
    r"""Return the spatial output size of a transposed convolution.

    .. math:: o = (i - 1)s - 2p + d(k - 1) + \text{output\_padding} + 1

    exactly as :func:`torch.nn.functional.conv_transpose2d` computes it. Each of the ``i`` input
    cells scatters a (dilated) kernel footprint of span ``d(k - 1) + 1`` into the output, the
    footprints ``s`` apart; ``p`` is then cropped from each side and ``output_padding`` added at
    the end. It inverts :func:`conv_output_size`'s shape: of the ``s`` input sizes that a
    strided convolution maps to the same size, ``output_padding`` in ``[0, s)`` picks one.

    Parameters
    ----------
    size : int or (int, int)
        Input size ``i``, at least 1.
    kernel_size, stride, padding, dilation : int or (int, int)
        As for the convolution whose shape this inverts.
    output_padding : int or (int, int)
        Extra size added at the end (bottom, right); less than ``max(stride, dilation)``, as
        PyTorch requires.

    Returns
    -------
    int or (int, int)
        Output size ``o``; a pair if any argument was a pair.

    Examples
    --------
    >>> transposed_output_size(4, kernel_size=3, stride=2, padding=1)
    7
    >>> transposed_output_size(4, kernel_size=3, stride=2, padding=1, output_padding=1)
    8
    """
    i = pair(size, "size", minimum=1)
    window = Window(kernel_size, stride, pair(padding, "padding"), dilation)
    k, s, d, p = window.kernel_size, window.stride, window.dilation, window.start_padding
    op = pair(output_padding, "output_padding", minimum=0)
    out = []
    for axis in range(2):
        if op[axis] >= max(s[axis], d[axis]):
            raise ValueError(
                f"output_padding {op} must be smaller than stride {s} or dilation {d} "
                f"on axis {axis}"
            )
        o = (i[axis] - 1) * s[axis] - 2 * p[axis] + window.span[axis] + op[axis]
        if o < 1:
            raise ValueError(
                f"padding {p} crops away the whole output on axis {axis} (size {i}, "
                f"kernel_size {k}, stride {s}, dilation {d})"
            )
        out.append(o)
    return same_form((out[0], out[1]), size, kernel_size, stride, padding, output_padding, dilation)


def conv_params(
    in_channels: int,
    out_channels: int,
    kernel_size: IntOrPair,
    groups: int = 1,
    bias: bool = True,
) -> int:
    r"""Return the number of learnable parameters of a 2-D convolution layer.

    .. math:: C_\text{out} \cdot \frac{C_\text{in}}{g} \cdot k_h k_w \; + \; C_\text{out}
              \;\text{(bias)}

    *Width* (``in_channels``, ``out_channels``) enters as a product, so doubling the width of
    every layer quadruples the parameters; the input resolution does not enter at all.

    Parameters
    ----------
    in_channels, out_channels : int
        ``C_in`` and ``C_out`` (the layer's depth: the number of filters), both divisible by
        ``groups``.
    kernel_size : int or (int, int)
        ``(kh, kw)``.
    groups : int
        Number of channel groups ``g``.
    bias : bool
        Whether the layer has a bias per output channel.

    Returns
    -------
    int
        The parameter count, equal to
        ``sum(p.numel() for p in torch.nn.Conv2d(...).parameters())``.

    Examples
    --------
    >>> conv_params(64, 128, 3)
    73856
    >>> conv_params(32, 32, 3, groups=32, bias=False)
    288
    """
    c_in, c_out, g = _channels(in_channels, out_channels, groups)
    if not isinstance(bias, bool):
        raise TypeError(f"bias must be a bool, got {bias!r}")
    kh, kw = pair(kernel_size, "kernel_size", minimum=1)
    return c_out * (c_in // g) * kh * kw + (c_out if bias else 0)


def conv_macs(
    in_channels: int,
    out_channels: int,
    kernel_size: IntOrPair,
    input_size: IntOrPair,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    groups: int = 1,
) -> int:
    r"""Return the multiply-adds of a 2-D convolution on one image (bias not counted).

    Every output element is a dot product of ``C_in / g * kh * kw`` weights with as many inputs:

    .. math:: \text{MACs} = \underbrace{C_\text{out}\, o_h\, o_w}_{\text{output elements}}
              \cdot \frac{C_\text{in}}{g}\, k_h k_w

    with ``(o_h, o_w)`` from :func:`conv_output_size`. Cost therefore grows with the square of
    the resolution (``o_h o_w``) and with the product of the widths.

    Parameters
    ----------
    in_channels, out_channels : int
        ``C_in`` and ``C_out``, both divisible by ``groups``.
    kernel_size, stride, padding, dilation : int or (int, int)
        As in :func:`conv_output_size`.
    input_size : int or (int, int)
        Input height and width.
    groups : int
        Number of channel groups ``g``.

    Returns
    -------
    int
        Multiply-adds for a batch of one (multiply by the batch size for more).

    Examples
    --------
    >>> conv_macs(3, 64, 7, input_size=224, stride=2, padding=3)   # ResNet's stem
    118013952
    """
    c_in, c_out, g = _channels(in_channels, out_channels, groups)
    oh, ow = pair(conv_output_size(input_size, kernel_size, stride, padding, dilation))
    kh, kw = pair(kernel_size, "kernel_size")
    return c_out * oh * ow * (c_in // g) * kh * kw


def _channels(in_channels: int, out_channels: int, groups: int) -> tuple[int, int, int]:
    c_in = check_int("in_channels", in_channels)
    c_out = check_int("out_channels", out_channels)
    g = check_int("groups", groups)
    for name, value in (("in_channels", c_in), ("out_channels", c_out), ("groups", g)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if c_in % g or c_out % g:
        raise ValueError(f"groups={g} must divide in_channels={c_in} and out_channels={c_out}")
    return c_in, c_out, g
