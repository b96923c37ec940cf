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

from collections.abc import Iterable, Sequence
from typing import TypeAlias

IntOrPair: TypeAlias = int | tuple[int, int]

__all__ = [
    "IntOrPair",
    "pair",
    "conv_output_size",
    "effective_kernel_size",
    "same_padding",
    "output_stride",
]


def _check_int(name: str, value: object) -> int:
    # bool is a subclass of int, but ``stride=True`` is always a mistake.
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            import numpy as np  # local: shapes stays importable without NumPy

            if isinstance(value, np.integer):
                return int(value)
        except ImportError:  # pragma: no cover
            pass
        raise TypeError(f"{name} must be an int or an (h, w) pair of ints, got {value!r}")
    return value


def pair(value: IntOrPair | Sequence[int], name: str = "value") -> tuple[int, int]:
    """Return ``value`` as an ``(h, w)`` pair of ints.

    Parameters
    ----------
    value : int or sequence of two ints
        A size-like argument.
    name : str
        The argument's name, used in the error message.

    Returns
    -------
    tuple of int
        ``(value, value)`` for an int, ``(value[0], value[1])`` for a pair.

    Examples
    --------
    >>> pair(3)
    (3, 3)
    >>> pair((3, 5))
    (3, 5)
    """
    if isinstance(value, str):
        raise TypeError(f"{name} must be an int or an (h, w) pair of ints, got {value!r}")
    if isinstance(value, Iterable):
        items = tuple(value)
        if len(items) != 2:
            raise ValueError(
                f"{name} must be an int or an (h, w) pair, got {len(items)} values: {value!r}"
            )
        return (_check_int(name, items[0]), _check_int(name, items[1]))
    v = _check_int(name, value)
    return (v, v)


def _is_pair(*values: object) -> bool:
    return any(not isinstance(v, int) and isinstance(v, Iterable) for v in values)


def _unpair(result: tuple[int, int], as_pair: bool) -> IntOrPair:
    return result if as_pair else result[0]


def _at_least(name: str, value: tuple[int, int], minimum: int) -> None:
    for v in value:
        if v < minimum:
            raise ValueError(
                f"{name} must be >= {minimum}, got {value if value[0] != value[1] else v}"
            )


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
    k = pair(kernel_size, "kernel_size")
    d = pair(dilation, "dilation")
    _at_least("kernel_size", k, 1)
    _at_least("dilation", d, 1)
    result = (k[0] + (k[0] - 1) * (d[0] - 1), k[1] + (k[1] - 1) * (d[1] - 1))
    return _unpair(result, _is_pair(kernel_size, dilation))


def conv_output_size(
    size: IntOrPair,
    kernel_size: IntOrPair,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
) -> IntOrPair:
    """Return the spatial output size of a convolution or pooling layer.

    .. math:: o = \\left\\lfloor \\frac{i + 2p - d(k - 1) - 1}{s} \\right\\rfloor + 1

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
    i = pair(size, "size")
    k = pair(kernel_size, "kernel_size")
    s = pair(stride, "stride")
    p = pair(padding, "padding")
    d = pair(dilation, "dilation")
    _at_least("size", i, 1)
    _at_least("kernel_size", k, 1)
    _at_least("stride", s, 1)
    _at_least("padding", p, 0)
    _at_least("dilation", d, 1)
    out = []
    for axis in range(2):
        span = d[axis] * (k[axis] - 1) + 1
        padded = i[axis] + 2 * p[axis]
        if span > padded:
            raise ValueError(
                f"kernel_size {k} with dilation {d} spans {span} pixels, more than the padded "
                f"input {padded} (size {i} + 2*padding {p}) on axis {axis}"
            )
        out.append((padded - span) // s[axis] + 1)
    return _unpair((out[0], out[1]), _is_pair(size, kernel_size, stride, padding, dilation))


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
    k = pair(kernel_size, "kernel_size")
    d = pair(dilation, "dilation")
    eff = pair(effective_kernel_size(k, d))
    for axis in range(2):
        if eff[axis] % 2 == 0:
            raise ValueError(
                f"'same' padding needs an odd effective kernel size, but kernel_size {k} with "
                f"dilation {d} spans {eff[axis]} on axis {axis}; pad asymmetrically instead"
            )
    result = (d[0] * (k[0] - 1) // 2, d[1] * (k[1] - 1) // 2)
    return _unpair(result, _is_pair(kernel_size, dilation))


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
        sp = pair(s, f"strides[{index}]")
        _at_least(f"strides[{index}]", sp, 1)
        total[0] *= sp[0]
        total[1] *= sp[1]
    return _unpair((total[0], total[1]), _is_pair(*strides))
