r"""The geometry of one convolution or pooling window, per axis, and the checks of its integers.

A window of ``k`` taps with dilation ``d`` spans ``d(k - 1) + 1`` input pixels. Slid every ``s``
pixels over an input of ``i`` pixels padded with ``p_b`` zeros before and ``p_a`` after, it
fits

.. math:: o = \left\lfloor \frac{i + p_b + p_a - d(k - 1) - 1}{s} \right\rfloor + 1

times, and output cell ``u`` reads the input pixels ``u s - p_b + m d`` for ``m = 0 .. k - 1``
(negative ones, and ones past ``i - 1``, lie in the padding). :class:`Window` holds one such
geometry, both axes, and states each of these laws once: :mod:`cnnlab.shapes`,
:mod:`cnnlab.numpy`, :mod:`cnnlab.torch`, :mod:`cnnlab.receptive_field` and :mod:`cnnlab.viz`
all go through it.

Size-like arguments are an ``int`` (the same on both axes) or an ``(h, w)`` pair; functions
that answer with a size follow one rule, :func:`same_form`: ints in, int out; a pair anywhere
in, a pair out. Nothing here needs NumPy or PyTorch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

IntOrPair: TypeAlias = int | tuple[int, int]
Pair: TypeAlias = tuple[int, int]
Pads: TypeAlias = tuple[tuple[int, int], tuple[int, int]]

__all__ = ["IntOrPair", "Pair", "Pads", "check_int", "pair", "is_pair", "same_form", "Window"]


def check_int(
    name: str, value: object, minimum: int | None = None, expected: str = "an int"
) -> int:
    """Return ``value`` as an int, checking that it is one and at least ``minimum``.

    ``bool`` is refused (it is a subclass of int, but ``stride=True`` is always a mistake);
    NumPy integers are accepted.

    Parameters
    ----------
    name : str
        The argument's name, used in the error message.
    value : object
    minimum : int, optional
        Smallest allowed value.
    expected : str
        What the argument should be, for the TypeError message.

    Raises
    ------
    TypeError
        ``"{name} must be an int, got {value!r}"`` if ``value`` is not an integer.
    ValueError
        ``"{name} must be >= {minimum}, got {value}"`` if it is too small.

    Examples
    --------
    >>> check_int("groups", 2, minimum=1)
    2
    >>> check_int("groups", 0, minimum=1)
    Traceback (most recent call last):
    ...
    ValueError: groups must be >= 1, got 0
    """
    if isinstance(value, bool) or not isinstance(value, int):
        integer = False
        try:
            import numpy as np  # local: this module stays importable without NumPy

            integer = isinstance(value, np.integer)
        except ImportError:  # pragma: no cover
            pass
        if not integer:
            raise TypeError(f"{name} must be {expected}, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


_PAIR = "an int or an (h, w) pair of ints"


def pair(value: IntOrPair | Sequence[int], name: str = "value", minimum: int | None = None) -> Pair:
    """Return ``value`` as an ``(h, w)`` pair of ints, each at least ``minimum`` if given.

    Parameters
    ----------
    value : int or sequence of two ints
        A size-like argument.
    name : str
        The argument's name, used in the error message.
    minimum : int, optional
        Smallest allowed value on each axis.

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
    >>> pair((3, 0), "stride", minimum=1)
    Traceback (most recent call last):
    ...
    ValueError: stride must be >= 1, got 0
    """
    if isinstance(value, str):
        raise TypeError(f"{name} must be {_PAIR}, got {value!r}")
    if isinstance(value, Iterable):
        items = tuple(value)
        if len(items) != 2:
            raise ValueError(
                f"{name} must be an int or an (h, w) pair, got {len(items)} values: {value!r}"
            )
        return (
            check_int(name, items[0], minimum, expected=_PAIR),
            check_int(name, items[1], minimum, expected=_PAIR),
        )
    v = check_int(name, value, minimum, expected=_PAIR)
    return (v, v)


def is_pair(*given: object) -> bool:
    """Return whether any of ``given`` is a pair (a sequence rather than an int).

    Examples
    --------
    >>> is_pair(3, 1), is_pair(3, (1, 2))
    (False, True)
    """
    return any(not isinstance(v, int | str) and isinstance(v, Iterable) for v in given)


def same_form(result: Pair, *given: object) -> IntOrPair:
    """Return ``result`` in the form of the arguments: a pair if any of ``given`` is a pair.

    The rule every int-or-pair answer of cnnlab follows: ints in, int out; a pair anywhere in,
    a pair out. (An int answer is the first axis; with int arguments both axes agree.)

    Examples
    --------
    >>> same_form((5, 5), 3, 2)
    5
    >>> same_form((5, 5), (3, 3), 2)
    (5, 5)
    """
    return result if is_pair(*given) else result[0]


def _pads(padding: object, kernel_size: Pair, stride: Pair, dilation: Pair) -> Pads:
    """Per-side padding from an int, an (h, w) pair, per-side pairs, 'valid' or 'same'."""
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return ((0, 0), (0, 0))
        if mode == "same":
            if stride != (1, 1):
                raise ValueError(
                    f"padding='same' is only defined for stride 1, got stride={stride}"
                )
            totals = (dilation[0] * (kernel_size[0] - 1), dilation[1] * (kernel_size[1] - 1))
            return ((totals[0] // 2, totals[0] - totals[0] // 2),
                    (totals[1] // 2, totals[1] - totals[1] // 2))  # fmt: skip
        raise ValueError(
            f"padding must be an int, an (h, w) pair, 'valid' or 'same', got {padding!r}"
        )
    if isinstance(padding, Iterable) and any(isinstance(p, Iterable) for p in padding):
        sides = tuple(padding)
        if len(sides) != 2:
            raise ValueError(
                f"padding per side must be ((top, bottom), (left, right)), got {padding!r}"
            )
        top_bottom = pair(sides[0], "padding", minimum=0)
        left_right = pair(sides[1], "padding", minimum=0)
        return (top_bottom, left_right)
    p = pair(padding, "padding", minimum=0)
    return ((p[0], p[0]), (p[1], p[1]))


@dataclass(frozen=True, init=False)
class Window:
    """One convolution or pooling window: kernel, stride, padding per side and dilation.

    Every attribute is stored per axis, ``(h, w)``; the constructor takes ints or pairs.

    Parameters
    ----------
    kernel_size : int or (int, int)
        Number of taps ``k`` per axis, at least 1.
    stride : int or (int, int)
        Step ``s`` between neighbouring windows, at least 1.
    padding : int, (int, int), ((top, bottom), (left, right)), 'valid' or 'same'
        Zeros added before and after each axis, at least 0. An int or pair pads both sides
        alike; ``'same'`` (stride 1 only) pads ``d(k - 1)`` in all, the extra pixel of an odd
        total at the end (bottom, right), as PyTorch does.
    dilation : int or (int, int)
        Distance ``d`` between neighbouring taps, at least 1.

    Examples
    --------
    >>> w = Window(3, stride=2, padding=1)
    >>> w
    Window(kernel_size=(3, 3), stride=(2, 2), padding=((1, 1), (1, 1)), dilation=(1, 1))
    >>> w.output_size(224)
    (112, 112)
    >>> Window(3, dilation=(1, 2), padding="same").padding
    ((1, 1), (2, 2))
    """

    kernel_size: Pair
    stride: Pair
    padding: Pads
    dilation: Pair

    def __init__(
        self,
        kernel_size: IntOrPair,
        stride: IntOrPair = 1,
        padding: IntOrPair | Pads | str = 0,
        dilation: IntOrPair = 1,
    ) -> None:
        k = pair(kernel_size, "kernel_size", minimum=1)
        s = pair(stride, "stride", minimum=1)
        d = pair(dilation, "dilation", minimum=1)
        object.__setattr__(self, "kernel_size", k)
        object.__setattr__(self, "stride", s)
        object.__setattr__(self, "padding", _pads(padding, k, s, d))
        object.__setattr__(self, "dilation", d)

    @property
    def span(self) -> Pair:
        """Input pixels one window covers, ``d(k - 1) + 1`` (the effective kernel size).

        Examples
        --------
        >>> Window((3, 1), dilation=6).span
        (13, 1)
        """
        return (
            self.dilation[0] * (self.kernel_size[0] - 1) + 1,
            self.dilation[1] * (self.kernel_size[1] - 1) + 1,
        )

    @property
    def start_padding(self) -> Pair:
        """Padding before each axis, ``(top, left)``: where output cell 0's window starts."""
        return (self.padding[0][0], self.padding[1][0])

    def output_size(self, size: IntOrPair, ceil_mode: bool = False, what: str = "") -> Pair:
        r"""Return how many windows fit on an input of ``size``, per axis.

        .. math:: o = \left\lfloor \frac{i + p_b + p_a - d(k - 1) - 1}{s} \right\rfloor + 1

        With ``ceil_mode`` the floor becomes a ceiling, as in PyTorch's pooling, except that
        the last window must start inside the input or the padding before it
        (``(o - 1) s < i + p_b``).

        Parameters
        ----------
        size : int or (int, int)
            Input size ``i`` (height, width), at least 1.
        ceil_mode : bool
        what : str
            Prefix of the error message (which layer, which arguments).

        Returns
        -------
        (int, int)

        Raises
        ------
        ValueError
            If the window is longer than the padded input on an axis.

        Examples
        --------
        >>> Window(3, stride=2, padding=((1, 1), (0, 1))).output_size(5)
        (3, 2)
        >>> Window(3, stride=2).output_size(6, ceil_mode=True)
        (3, 3)
        """
        i = pair(size, "size", minimum=1)
        out = []
        for axis in range(2):
            before, after = self.padding[axis]
            padded = i[axis] + before + after
            span, s = self.span[axis], self.stride[axis]
            if span > padded:
                raise ValueError(
                    f"{what}kernel_size {self.kernel_size} with dilation {self.dilation} spans "
                    f"{span} pixels on axis {axis}, more than the padded input {padded} (input "
                    f"size {i}, padding {self.padding})"
                )
            if ceil_mode:
                o = -(-(padded - span) // s) + 1
                if (o - 1) * s >= i[axis] + before:  # the last window must start inside
                    o -= 1
            else:
                o = (padded - span) // s + 1
            out.append(o)
        return (out[0], out[1])

    def taps(self, cell: Pair) -> tuple[Pair, ...]:
        """Return the input cells that output cell ``(r, c)`` reads, row-major.

        ``(r s_h - p_top + m d_h, c s_w - p_left + n d_w)`` for ``0 <= m < k_h``,
        ``0 <= n < k_w``; cells outside the input lie in the padding.

        Examples
        --------
        >>> Window(3, stride=2, padding=1).taps((0, 1))[:3]
        ((-1, 1), (-1, 2), (-1, 3))
        """
        top, left = self.start_padding
        return tuple(
            (
                cell[0] * self.stride[0] - top + m * self.dilation[0],
                cell[1] * self.stride[1] - left + n * self.dilation[1],
            )
            for m in range(self.kernel_size[0])
            for n in range(self.kernel_size[1])
        )

    def unpadded(self) -> Window:
        """The same window without padding: for an input that is already padded."""
        return Window(self.kernel_size, self.stride, 0, self.dilation)
