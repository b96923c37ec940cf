r"""Receptive fields of a chain of layers, in closed form and step by step.

One output unit of a convolutional network depends on a patch of the input: its *receptive
field*. For a chain of ``L`` convolution or pooling layers, layer ``l`` having kernel size
``k_l``, stride ``s_l``, padding ``p_l`` (at the start of the axis) and dilation ``d_l``, write
``k'_l = d_l (k_l - 1) + 1`` for the span of the dilated kernel and ``J_l = s_1 s_2 ... s_{l-1}``
for the distance, in input pixels, between neighbouring units of layer ``l``'s input (the
*jump*). Then (Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional Neural
Networks", Distill 2019)::

    size     r = 1 + sum_l (k'_l - 1) J_l
    stride   S = s_1 s_2 ... s_L                    (the effective stride, or output stride)
    padding  P = sum_l p_l J_l                      (the effective padding)

and output unit ``u`` (counting from 0) sees the input pixels ``u S - P`` to ``u S - P + r - 1``,
both included; negative indices and indices past the image lie in the padding. Every formula is
applied to each axis on its own. Results follow :mod:`cnnlab.shapes`: ints in, ints out; a pair
anywhere in, ``(h, w)`` pairs out.

One function, :func:`step`, is the recurrence; :func:`receptive_field`,
:func:`receptive_field_steps` and the tracer of :mod:`cnnlab.receptive_field.tracing` all apply
it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from cnnlab.geometry import IntOrPair, Pair, Window, is_pair, pair, same_form

__all__ = [
    "Layer",
    "Interval",
    "ReceptiveField",
    "FieldPairs",
    "IDENTITY",
    "step",
    "as_field",
    "receptive_field",
    "receptive_field_steps",
]

#: ``(size, jump, padding)`` of a field, each an ``(h, w)`` pair.
FieldPairs = tuple[Pair, Pair, Pair]


@dataclass(frozen=True)
class Layer:
    """One convolution or pooling layer, as far as the receptive field is concerned.

    Only the geometry matters: the number of channels, the weights and the nonlinearity do not
    change which input pixels an output unit depends on.

    Parameters
    ----------
    kernel_size : int or (int, int)
        Number of taps ``k`` per axis, at least 1.
    stride : int or (int, int)
        Stride ``s``, at least 1.
    padding : int or (int, int)
        Zero padding ``p`` added at the *start* (top, left) of each axis, at least 0. Only the
        start matters for where a unit's field lies; padding at the end changes the output size
        only.
    dilation : int or (int, int)
        Dilation ``d``, at least 1: the kernel spans ``d (k - 1) + 1`` pixels.
    name : str
        A label, shown in tables.

    Examples
    --------
    >>> Layer(3, stride=2, padding=1)
    Layer(kernel_size=3, stride=2, padding=1, dilation=1, name='')
    >>> Layer((3, 1), dilation=2).effective_kernel_size
    (5, 1)
    >>> Layer(3, dilation=2).window.span
    (5, 5)
    """

    kernel_size: IntOrPair
    stride: IntOrPair = 1
    padding: IntOrPair = 0
    dilation: IntOrPair = 1
    name: str = ""

    def __post_init__(self) -> None:
        try:
            self.window  # noqa: B018 (checks every field)
        except (TypeError, ValueError) as error:
            raise type(error)(f"Layer {error}") from None

    @property
    def window(self) -> Window:
        """The layer's :class:`~cnnlab.geometry.Window` (padding on both sides of each axis)."""
        return Window(self.kernel_size, self.stride, pair(self.padding, "padding"), self.dilation)

    @property
    def effective_kernel_size(self) -> IntOrPair:
        """Span of the dilated kernel, ``d (k - 1) + 1``, per axis; a pair if given pairs."""
        return same_form(self.window.span, self.kernel_size, self.dilation)

    def is_pair(self) -> bool:
        """Whether any of the layer's sizes was given as an ``(h, w)`` pair."""
        return is_pair(self.kernel_size, self.stride, self.padding, self.dilation)

    def pairs(self) -> tuple[Pair, Pair, Pair]:
        """Return ``(effective kernel, stride, start padding)``, each as an ``(h, w)`` pair."""
        window = self.window
        return (window.span, window.stride, window.start_padding)


class Interval(NamedTuple):
    """The input pixels ``start`` to ``end`` (both included) that one output unit sees.

    ``centre`` is ``(start + end) / 2``, a half-integer when the field size is even. Indices
    below 0 or past the image lie in the padding.
    """

    start: int
    end: int
    centre: float


class ReceptiveField(NamedTuple):
    """Receptive field of an output unit: size ``r``, effective stride ``S``, padding ``P``.

    Each field is an int when the field was computed from ints, and an ``(h, w)`` pair when
    any size that went in was a pair (or the two axes differ). Output unit
    ``u`` sees input pixels ``u S - P`` to ``u S - P + r - 1``; see :meth:`interval`.
    """

    size: IntOrPair
    stride: IntOrPair
    padding: IntOrPair

    def pairs(self) -> tuple[Pair, Pair, Pair]:
        """Return ``(size, stride, padding)``, each as an ``(h, w)`` pair."""
        return (pair(self.size), pair(self.stride), pair(self.padding))

    def interval(self, position: IntOrPair) -> Interval | tuple[Interval, Interval]:
        r"""Return the input interval that output unit ``position`` sees.

        .. math:: \text{start} = u S - P, \quad \text{end} = \text{start} + r - 1,
                  \quad \text{centre} = \text{start} + (r - 1) / 2

        Parameters
        ----------
        position : int or (int, int)
            Output index ``u`` (row, column), counting from 0. An int on a square field gives
            one :class:`Interval`; a pair, or any position on a non-square field, gives
            ``(rows, columns)``.

        Returns
        -------
        Interval or (Interval, Interval)

        Examples
        --------
        >>> rf = receptive_field([Layer(3, padding=1), Layer(2, stride=2)])
        >>> rf
        ReceptiveField(size=4, stride=2, padding=1)
        >>> rf.interval(0)
        Interval(start=-1, end=2, centre=0.5)
        >>> rf.interval((0, 3))
        (Interval(start=-1, end=2, centre=0.5), Interval(start=5, end=8, centre=6.5))
        """
        u = pair(position, "position")
        r, s, p = self.pairs()
        intervals = []
        for axis in range(2):
            start = u[axis] * s[axis] - p[axis]
            end = start + r[axis] - 1
            intervals.append(Interval(start, end, (start + end) / 2))
        if isinstance(position, int) and isinstance(self.size, int):
            return intervals[0]
        return (intervals[0], intervals[1])

    def box(self, position: IntOrPair, input_size: IntOrPair | None = None) -> tuple[slice, slice]:
        """Return ``(rows, columns)`` slices of the field, clipped to the image if sized.

        Examples
        --------
        >>> ReceptiveField(5, 2, 2).box((0, 1), input_size=8)
        (slice(0, 3, None), slice(0, 5, None))
        """
        rows, cols = self.interval(pair(position, "position"))
        if input_size is None:
            return slice(rows.start, rows.end + 1), slice(cols.start, cols.end + 1)
        h, w = pair(input_size, "input_size")
        return (
            slice(max(rows.start, 0), min(rows.end + 1, h)),
            slice(max(cols.start, 0), min(cols.end + 1, w)),
        )


def _as_layers(layers: Iterable[Layer]) -> list[Layer]:
    layers = list(layers)
    for index, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise TypeError(
                f"layers[{index}] must be a Layer, got {type(layer).__name__}: {layer!r}"
            )
    return layers


def step(field: FieldPairs, window: Window) -> FieldPairs:
    """One layer of the recurrence, per axis: ``(r, J, P) -> (r + (k' - 1) J, J s, P + p J)``.

    ``field`` is ``(size, jump, padding)`` of the layer below, each an ``(h, w)`` pair;
    ``window`` the layer's geometry: ``k' = window.span``, ``s = window.stride`` and ``p`` the
    padding at the start of each axis (the end's changes only the output size).

    Examples
    --------
    >>> step(IDENTITY, Window(3, stride=2, padding=1))
    ((3, 3), (2, 2), (1, 1))
    """
    (r, j, p), k, s, pad = field, window.span, window.stride, window.start_padding
    return (
        (r[0] + (k[0] - 1) * j[0], r[1] + (k[1] - 1) * j[1]),
        (j[0] * s[0], j[1] * s[1]),
        (p[0] + pad[0] * j[0], p[1] + pad[1] * j[1]),
    )


#: The field of one input pixel: ``r = 1, J = 1, P = 0`` on both axes.
IDENTITY: FieldPairs = ((1, 1), (1, 1), (0, 0))


def as_field(field: FieldPairs, as_pair: bool) -> ReceptiveField:
    """Return ``field`` as a :class:`ReceptiveField`: pairs if ``as_pair`` or the axes differ.

    Examples
    --------
    >>> as_field(((3, 3), (1, 1), (1, 1)), as_pair=False)
    ReceptiveField(size=3, stride=1, padding=1)
    >>> as_field(((3, 3), (1, 1), (1, 1)), as_pair=True)
    ReceptiveField(size=(3, 3), stride=(1, 1), padding=(1, 1))
    """
    if as_pair or any(value[0] != value[1] for value in field):
        return ReceptiveField(*field)
    return ReceptiveField(*(value[0] for value in field))


def receptive_field(layers: Iterable[Layer]) -> ReceptiveField:
    r"""Return the receptive field of a chain of layers, in closed form.

    With ``k'_l`` the effective (dilated) kernel size and ``J_l = prod_{i<l} s_i``:

    .. math::

        r = 1 + \sum_{l=1}^{L} (k'_l - 1) J_l, \qquad S = \prod_{l=1}^{L} s_l, \qquad
        P = \sum_{l=1}^{L} p_l J_l

    computed per axis with exact integers.

    Parameters
    ----------
    layers : iterable of Layer
        The layers from input to output. An empty chain is the identity: ``(1, 1, 0)``.

    Returns
    -------
    ReceptiveField
        ``(size, stride, padding)``: ``(h, w)`` pairs if any layer was given a pair, ints
        otherwise (as :mod:`cnnlab.shapes` answers).

    Examples
    --------
    Two 3x3 convolutions see 5x5, three see 7x7:

    >>> receptive_field([Layer(3)] * 3)
    ReceptiveField(size=7, stride=1, padding=0)
    >>> receptive_field([Layer(3, stride=2, padding=1), Layer(3, dilation=2, padding=2)])
    ReceptiveField(size=11, stride=2, padding=5)
    >>> receptive_field([Layer((1, 3)), Layer((3, 1))])
    ReceptiveField(size=(3, 3), stride=(1, 1), padding=(0, 0))
    """
    steps = receptive_field_steps(layers)  # the sums above, accumulated one layer at a time
    return steps[-1] if steps else as_field(IDENTITY, as_pair=False)


def receptive_field_steps(layers: Iterable[Layer]) -> list[ReceptiveField]:
    r"""Return the receptive field after each layer of a chain, by the recurrence.

    Starting from one pixel (``r_0 = 1, J_0 = 1, P_0 = 0``), layer ``l`` gives

    .. math::

        r_l = r_{l-1} + (k'_l - 1) J_{l-1}, \qquad J_l = J_{l-1} s_l, \qquad
        P_l = P_{l-1} + p_l J_{l-1}

    so a kernel adds ``k' - 1`` *units of the layer below*, each ``J`` input pixels apart.

    Parameters
    ----------
    layers : iterable of Layer

    Returns
    -------
    list of ReceptiveField
        One per layer, the field of that layer's output units; the last equals
        :func:`receptive_field` of the whole chain.

    Examples
    --------
    >>> [rf.size for rf in receptive_field_steps([Layer(3), Layer(2, stride=2), Layer(3)])]
    [3, 4, 8]
    """
    layers = _as_layers(layers)
    as_pair = any(layer.is_pair() for layer in layers)
    field, steps = IDENTITY, []
    for layer in layers:
        field = step(field, layer.window)
        steps.append(as_field(field, as_pair))
    return steps
