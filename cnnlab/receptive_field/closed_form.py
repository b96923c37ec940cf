"""Receptive fields: closed form for a chain of layers, traced from a module, and effective.

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
applied to each axis on its own, so non-square layers give ``(h, w)`` pairs.

Three entry points:

- :func:`receptive_field` evaluates the closed form for a list of :class:`Layer`;
- :func:`receptive_field_of` traces any :class:`torch.nn.Module` with :mod:`torch.fx` and
  follows every path (residual additions, concatenations, nested ``Sequential``);
- :func:`effective_receptive_field` measures how strongly each input pixel actually moves the
  centre output unit, ``|d y_centre / d x|`` (Luo, Li, Urtasun & Zemel, NeurIPS 2016).

The layer lists of classic networks (:func:`alexnet_v2_layers`, :func:`vgg16_layers`,
:func:`resnet_v1_50_layers`, :func:`resnet50_layers`) follow the deepest path of each network,
as the Distill article's table does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from cnnlab.shapes import (
    IntOrPair,
    conv_output_size,
    effective_kernel_size,
    pair,
    window_output_size,
)

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

__all__ = [
    "Layer",
    "Interval",
    "ReceptiveField",
    "receptive_field",
    "receptive_field_steps",
    "receptive_field_of",
    "effective_receptive_field",
    "tf_same_padding",
    "alexnet_v2_layers",
    "vgg16_layers",
    "resnet_v1_50_layers",
    "resnet50_layers",
    "classic_networks",
]

Pair = tuple[int, int]


def _unpair(value: Pair) -> IntOrPair:
    return value[0] if value[0] == value[1] else value


# --------------------------------------------------------------------------------------------
# Layers and the closed form
# --------------------------------------------------------------------------------------------


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
    """

    kernel_size: IntOrPair
    stride: IntOrPair = 1
    padding: IntOrPair = 0
    dilation: IntOrPair = 1
    name: str = ""

    def __post_init__(self) -> None:
        for field, minimum in (("kernel_size", 1), ("stride", 1), ("padding", 0), ("dilation", 1)):
            value = pair(getattr(self, field), field)
            if min(value) < minimum:
                raise ValueError(
                    f"Layer {field} must be >= {minimum}, got {getattr(self, field)!r}"
                )

    @property
    def effective_kernel_size(self) -> IntOrPair:
        """Span of the dilated kernel, ``d (k - 1) + 1``, per axis."""
        return effective_kernel_size(self.kernel_size, self.dilation)

    def pairs(self) -> tuple[Pair, Pair, Pair]:
        """Return ``(effective kernel, stride, padding)``, each as an ``(h, w)`` pair."""
        return (
            pair(self.effective_kernel_size),
            pair(self.stride, "stride"),
            pair(self.padding, "padding"),
        )


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

    Each field is an int when both axes agree and an ``(h, w)`` pair otherwise. Output unit
    ``u`` sees input pixels ``u S - P`` to ``u S - P + r - 1``; see :meth:`interval`.
    """

    size: IntOrPair
    stride: IntOrPair
    padding: IntOrPair

    def pairs(self) -> tuple[Pair, Pair, Pair]:
        """Return ``(size, stride, padding)``, each as an ``(h, w)`` pair."""
        return (pair(self.size), pair(self.stride), pair(self.padding))

    def interval(self, position: IntOrPair) -> Interval | tuple[Interval, Interval]:
        """Return the input interval that output unit ``position`` sees.

        .. math:: \\text{start} = u S - P, \\quad \\text{end} = \\text{start} + r - 1,
                  \\quad \\text{centre} = \\text{start} + (r - 1) / 2

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


def _step(
    field: tuple[Pair, Pair, Pair], layer_pairs: tuple[Pair, Pair, Pair]
) -> tuple[Pair, Pair, Pair]:
    """One layer of the recurrence, per axis: ``(r, J, P) -> (r + (k' - 1) J, J s, P + p J)``.

    ``field`` is ``(size, jump, padding)`` of the layer below, ``layer_pairs`` the layer's
    ``(effective kernel, stride, padding)``; every entry is an ``(h, w)`` pair.
    """
    (r, j, p), (k, s, pad) = field, layer_pairs
    return (
        (r[0] + (k[0] - 1) * j[0], r[1] + (k[1] - 1) * j[1]),
        (j[0] * s[0], j[1] * s[1]),
        (p[0] + pad[0] * j[0], p[1] + pad[1] * j[1]),
    )


_IDENTITY: tuple[Pair, Pair, Pair] = ((1, 1), (1, 1), (0, 0))  # one pixel: r = 1, J = 1, P = 0


def _as_field(field: tuple[Pair, Pair, Pair]) -> ReceptiveField:
    return ReceptiveField(*(_unpair(value) for value in field))


def receptive_field(layers: Iterable[Layer]) -> ReceptiveField:
    """Return the receptive field of a chain of layers, in closed form.

    With ``k'_l`` the effective (dilated) kernel size and ``J_l = prod_{i<l} s_i``:

    .. math::

        r = 1 + \\sum_{l=1}^{L} (k'_l - 1) J_l, \\qquad S = \\prod_{l=1}^{L} s_l, \\qquad
        P = \\sum_{l=1}^{L} p_l J_l

    computed per axis with exact integers.

    Parameters
    ----------
    layers : iterable of Layer
        The layers from input to output. An empty chain is the identity: ``(1, 1, 0)``.

    Returns
    -------
    ReceptiveField
        ``(size, stride, padding)``; ints when both axes agree, ``(h, w)`` pairs otherwise.

    Examples
    --------
    Two 3x3 convolutions see 5x5, three see 7x7:

    >>> receptive_field([Layer(3)] * 3)
    ReceptiveField(size=7, stride=1, padding=0)
    >>> receptive_field([Layer(3, stride=2, padding=1), Layer(3, dilation=2, padding=2)])
    ReceptiveField(size=11, stride=2, padding=5)
    >>> receptive_field([Layer((1, 3)), Layer((3, 1))])
    ReceptiveField(size=3, stride=1, padding=0)
    >>> receptive_field([Layer((1, 5))])
    ReceptiveField(size=(1, 5), stride=1, padding=0)
    """
    field = _IDENTITY
    for layer in _as_layers(layers):  # the sums above, accumulated one layer at a time
        field = _step(field, layer.pairs())
    return _as_field(field)


def receptive_field_steps(layers: Iterable[Layer]) -> list[ReceptiveField]:
    """Return the receptive field after each layer of a chain, by the recurrence.

    Starting from one pixel (``r_0 = 1, J_0 = 1, P_0 = 0``), layer ``l`` gives

    .. math::

        r_l = r_{l-1} + (k'_l - 1) J_{l-1}, \\qquad J_l = J_{l-1} s_l, \\qquad
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
    field, steps = _IDENTITY, []
    for layer in _as_layers(layers):
        field = _step(field, layer.pairs())
        steps.append(_as_field(field))
    return steps


# --------------------------------------------------------------------------------------------
# Classic networks, deepest path, TF-slim layout (as in the Distill article's table)
# --------------------------------------------------------------------------------------------


def tf_same_padding(input_size: int, kernel_size: int, stride: int, dilation: int = 1) -> int:
    """Return the padding TensorFlow's ``padding='SAME'`` adds at the start of an axis.

    TensorFlow makes the output ``ceil(i / s)`` long, pads ``max((o - 1) s + k' - i, 0)`` in
    total and puts the smaller half first; so the start padding depends on the input size.

    Examples
    --------
    >>> tf_same_padding(112, kernel_size=3, stride=2)   # even input: nothing at the start
    0
    >>> tf_same_padding(113, kernel_size=3, stride=2)
    1
    """
    k = pair(effective_kernel_size(kernel_size, dilation))[0]
    out = -(-input_size // stride)
    total = max((out - 1) * stride + k - input_size, 0)
    return total // 2


def alexnet_v2_layers() -> list[Layer]:
    """Return AlexNet v2 (TF-slim ``alexnet_v2``) up to ``pool5``, the last spatial map.

    Convolutions after ``conv1`` use 'SAME' padding, pooling 'VALID'.

    Examples
    --------
    >>> receptive_field(alexnet_v2_layers())
    ReceptiveField(size=195, stride=32, padding=64)
    """
    return [
        Layer(11, 4, 0, name="conv1"),
        Layer(3, 2, 0, name="pool1"),
        Layer(5, 1, 2, name="conv2"),
        Layer(3, 2, 0, name="pool2"),
        Layer(3, 1, 1, name="conv3"),
        Layer(3, 1, 1, name="conv4"),
        Layer(3, 1, 1, name="conv5"),
        Layer(3, 2, 0, name="pool5"),
    ]


def vgg16_layers() -> list[Layer]:
    """Return VGG-16 (TF-slim ``vgg_16``) up to ``pool5``: 13 3x3 'SAME' convolutions, 2x2 pools.

    Examples
    --------
    >>> receptive_field(vgg16_layers())
    ReceptiveField(size=212, stride=32, padding=90)
    """
    layers = []
    for block, convs in enumerate((2, 2, 3, 3, 3), start=1):
        layers += [Layer(3, 1, 1, name=f"conv{block}_{i}") for i in range(1, convs + 1)]
        layers.append(Layer(2, 2, 0, name=f"pool{block}"))
    return layers


def resnet_v1_50_layers(input_size: int = 224) -> list[Layer]:
    """Return the deepest path of ResNet-v1-50 in TF-slim's layout, up to ``block4``.

    TF-slim puts each block's stride on the 3x3 convolution of its *last* unit (blocks 1 to 3
    stride 2, block 4 stride 1), pads ``conv1`` and strided 3x3 convolutions explicitly
    (``conv2d_same``) and max-pools with 'SAME' padding, whose start padding depends on the
    input size (see :func:`tf_same_padding`).

    Examples
    --------
    >>> rf = receptive_field(resnet_v1_50_layers())
    >>> rf.size, rf.stride
    (483, 32)
    """
    size = conv_output_size(input_size, 7, 2, 3)
    layers = [Layer(7, 2, 3, name="conv1"), Layer(3, 2, tf_same_padding(size, 3, 2), name="pool1")]
    for block, (units, stride) in enumerate(((3, 2), (4, 2), (6, 2), (3, 1)), start=1):
        for unit in range(1, units + 1):
            s = stride if unit == units else 1
            prefix = f"block{block}/unit_{unit}"
            layers += [
                Layer(1, name=f"{prefix}/conv1"),
                Layer(3, s, 1, name=f"{prefix}/conv2"),
                Layer(1, name=f"{prefix}/conv3"),
            ]
    return layers


def resnet50_layers() -> list[Layer]:
    """Return the deepest path of torchvision's ResNet-50 up to ``layer4``.

    torchvision puts the stride on the 3x3 convolution of each stage's *first* bottleneck
    (stages 2 to 4), and pads every 3x3 convolution and the max pool by 1.

    Examples
    --------
    >>> receptive_field(resnet50_layers())
    ReceptiveField(size=427, stride=32, padding=213)
    """
    layers = [Layer(7, 2, 3, name="conv1"), Layer(3, 2, 1, name="maxpool")]
    for stage, (blocks, stride) in enumerate(((3, 1), (4, 2), (6, 2), (3, 2)), start=1):
        for block in range(blocks):
            s = stride if block == 0 else 1
            prefix = f"layer{stage}.{block}"
            layers += [
                Layer(1, name=f"{prefix}.conv1"),
                Layer(3, s, 1, name=f"{prefix}.conv2"),
                Layer(1, name=f"{prefix}.conv3"),
            ]
    return layers


def classic_networks() -> dict[str, list[Layer]]:
    """Return the layer lists of the classic networks, by name.

    Examples
    --------
    >>> sorted(classic_networks())
    ['alexnet_v2', 'resnet50 (torchvision)', 'resnet_v1_50', 'vgg_16']
    """
    return {
        "alexnet_v2": alexnet_v2_layers(),
        "vgg_16": vgg16_layers(),
        "resnet_v1_50": resnet_v1_50_layers(),
        "resnet50 (torchvision)": resnet50_layers(),
    }


# --------------------------------------------------------------------------------------------
# Tracing a torch module
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    """Per-axis field of one tensor in the graph, plus its spatial size."""

    size: Pair
    stride: Pair
    padding: Pair
    shape: Pair  # spatial (h, w) of the tensor

    def through(self, layer_pairs: tuple[Pair, Pair, Pair], out_shape: Pair) -> _Field:
        size, stride, padding = _step((self.size, self.stride, self.padding), layer_pairs)
        return _Field(size, stride, padding, out_shape)

    def result(self) -> ReceptiveField:
        return ReceptiveField(_unpair(self.size), _unpair(self.stride), _unpair(self.padding))


class UnknownLayerError(ValueError):
    """Raised when the tracer meets an operation whose effect on the field it does not know."""


class UnalignedPathsError(ValueError):
    """Raised when parallel paths that merge see the input on different grids."""


_POINTWISE_MODULES = (
    "Identity", "ReLU", "ReLU6", "LeakyReLU", "PReLU", "ELU", "SELU", "CELU", "GELU", "SiLU",
    "Mish", "Sigmoid", "Tanh", "Hardtanh", "Hardswish", "Hardsigmoid", "Softplus", "Softsign",
    "Tanhshrink", "Threshold", "BatchNorm2d", "SyncBatchNorm", "InstanceNorm2d", "GroupNorm",
    "LocalResponseNorm", "Dropout", "Dropout2d", "AlphaDropout", "FeatureAlphaDropout",
    "LazyBatchNorm2d", "LazyInstanceNorm2d",
)  # fmt: skip

_POINTWISE_FUNCTIONS = {
    "relu", "relu_", "relu6", "leaky_relu", "leaky_relu_", "elu", "selu", "celu", "gelu", "silu",
    "mish", "sigmoid", "tanh", "hardtanh", "hardswish", "hardsigmoid", "softplus", "dropout",
    "dropout2d", "batch_norm", "instance_norm", "group_norm", "abs", "neg", "exp", "log",
    "sqrt", "square", "clamp", "clamp_", "clip", "contiguous", "float", "double", "half", "to",
    "type_as", "detach", "clone", "sign", "pow", "sin", "cos", "sigmoid_", "tanh_",
}  # fmt: skip

_MERGE_FUNCTIONS = {
    "add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_", "true_divide", "maximum",
    "minimum", "iadd", "isub", "imul", "itruediv", "truediv",
}  # fmt: skip

_METADATA = {"size", "dim", "shape", "numel"}


def _fn_name(target: Any) -> str:
    return (
        getattr(target, "__name__", str(target)).lstrip("_")
        if not isinstance(target, str)
        else target
    )


def _describe(node: Any, modules: Mapping[str, Any]) -> str:
    if node.op == "call_module":
        module = modules[node.target]
        return f"module '{node.target}' ({type(module).__name__})"
    return f"{node.op} '{_fn_name(node.target)}' (node '{node.name}')"


def _merge(fields: list[tuple[str, _Field]], where: str) -> _Field:
    """Union of parallel fields; they must share the stride and the centre."""
    name0, first = fields[0]
    size, padding = list(first.size), list(first.padding)
    for name, field in fields[1:]:
        if field.shape != first.shape:
            raise UnalignedPathsError(
                f"paths merging at {where} have different spatial sizes: {name0} is "
                f"{first.shape}, {name} is {field.shape}"
            )
        for axis in range(2):
            if field.stride[axis] != first.stride[axis]:
                raise UnalignedPathsError(
                    f"paths merging at {where} are not aligned: effective stride "
                    f"{first.stride[axis]} along {name0} but {field.stride[axis]} along {name} "
                    f"(axis {axis})"
                )
            # twice the offset of the centre of unit 0: (r - 1) - 2P
            c0 = first.size[axis] - 1 - 2 * first.padding[axis]
            c1 = field.size[axis] - 1 - 2 * field.padding[axis]
            if c0 != c1:
                raise UnalignedPathsError(
                    f"paths merging at {where} are not aligned: output unit 0 is centred on "
                    f"input pixel {c0 / 2:g} along {name0} (size {first.size[axis]}, padding "
                    f"{first.padding[axis]}) but on {c1 / 2:g} along {name} (size "
                    f"{field.size[axis]}, padding {field.padding[axis]}), axis {axis}"
                )
            size[axis] = max(size[axis], field.size[axis])
            padding[axis] = max(padding[axis], field.padding[axis])
    return _Field(tuple(size), first.stride, tuple(padding), first.shape)


def _pool_layer(kernel_size: Any, stride: Any, padding: Any, dilation: Any = 1) -> tuple:
    k = pair(kernel_size, "kernel_size")
    s = k if stride is None or stride == [] or stride == () else pair(stride, "stride")
    p = pair(padding, "padding")
    d = pair(dilation, "dilation")
    return k, s, p, d


def _conv_layer(kernel_size: Any, stride: Any, padding: Any, dilation: Any) -> tuple:
    k = pair(kernel_size, "kernel_size")
    s = pair(stride, "stride")
    d = pair(dilation, "dilation")
    if isinstance(padding, str):
        if padding == "valid":
            p = (0, 0)
        elif padding == "same":
            p = tuple((d[a] * (k[a] - 1)) // 2 for a in range(2))  # torch puts the extra at the end
        else:
            raise ValueError(f"padding must be an int, a pair, 'same' or 'valid', got {padding!r}")
    else:
        p = pair(padding, "padding")
    return k, s, p, d


def _apply(
    field: _Field,
    k: Pair,
    s: Pair,
    p: Pair,
    d: Pair,
    where: str,
    ceil_mode: bool = False,
    same: bool = False,
) -> _Field:
    keff = pair(effective_kernel_size(k, d))
    if same:
        out = field.shape
    else:
        pads = ((p[0], p[0]), (p[1], p[1]))
        out = window_output_size(
            field.shape, keff, s, pads, ceil_mode, what=f"{where} (input_size too small?): "
        )
    return field.through((keff, s, p), out)


def _module_rule(
    module: Any, field: _Field, where: str, custom: Mapping[type, Callable[[Any], Layer | None]]
) -> _Field:
    import torch.nn as nn

    for kind, rule in custom.items():
        if isinstance(module, kind):
            layer = rule(module)
            if layer is None:
                return field
            k, s, p = layer.pairs()
            return _apply(field, k, s, p, (1, 1), where)  # k already effective
    name = type(module).__name__
    if name in _POINTWISE_MODULES:
        return field
    if isinstance(module, nn.Conv2d):
        k, s, p, d = _conv_layer(module.kernel_size, module.stride, module.padding, module.dilation)
        return _apply(field, k, s, p, d, where, same=module.padding == "same")
    if isinstance(module, nn.MaxPool2d):
        k, s, p, d = _pool_layer(module.kernel_size, module.stride, module.padding, module.dilation)
        return _apply(field, k, s, p, d, where, ceil_mode=module.ceil_mode)
    if isinstance(module, nn.AvgPool2d):
        k, s, p, d = _pool_layer(module.kernel_size, module.stride, module.padding)
        return _apply(field, k, s, p, d, where, ceil_mode=module.ceil_mode)
    if isinstance(module, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d):
        return _adaptive(field, module.output_size, where)
    if isinstance(module, nn.ZeroPad2d | nn.ConstantPad2d | nn.ReflectionPad2d |
                  nn.ReplicationPad2d):  # fmt: skip
        return _pad(field, module.padding, where)
    raise UnknownLayerError(
        f"receptive_field_of does not know how {where} changes the receptive field; pass "
        f"output=<an earlier stage> to stop before it, or custom={{{name}: lambda m: Layer(...)}}"
    )


def _adaptive(field: _Field, output_size: Any, where: str) -> _Field:
    if isinstance(output_size, int):
        output_size = (output_size, output_size)
    out = tuple(field.shape[a] if output_size[a] is None else output_size[a] for a in range(2))
    if any(field.shape[a] % out[a] for a in range(2)):
        raise UnknownLayerError(
            f"{where} pools {field.shape} to {out}; its windows overlap unevenly unless the "
            f"input size is a multiple of the output size, so it has no single receptive field"
        )
    k = (field.shape[0] // out[0], field.shape[1] // out[1])
    return _apply(field, k, k, (0, 0), (1, 1), where)


def _pad(field: _Field, padding: Any, where: str) -> _Field:
    if isinstance(padding, int):
        padding = (padding,) * 4
    padding = tuple(padding)
    if len(padding) == 2:
        left, right, top, bottom = padding[0], padding[1], 0, 0
    elif len(padding) == 4:
        left, right, top, bottom = padding
    else:
        raise UnknownLayerError(f"{where} pads more than the two spatial axes: {padding}")
    h, w = field.shape
    return field.through(((1, 1), (1, 1), (top, left)), (h + top + bottom, w + left + right))


def _arguments(node: Any, names: Sequence[str], defaults: Mapping[str, Any]) -> dict[str, Any]:
    values = dict(defaults)
    values.update(zip(names, node.args, strict=False))
    values.update(node.kwargs)
    return values


def _function_rule(node: Any, root: Any, fields: dict, where: str) -> _Field | None:
    """Field of a call_function / call_method node; None if it carries no field."""
    name = _fn_name(node.target)
    inputs = [(arg.name, fields[arg.name]) for arg in node.all_input_nodes
              if fields.get(arg.name) is not None]  # fmt: skip
    if not inputs:
        return None
    if name in _METADATA or (node.op == "call_function" and node.target is getattr and
                             node.args[1] in _METADATA):  # fmt: skip
        return None
    if name in _POINTWISE_FUNCTIONS:
        if len(inputs) > 1:
            return _merge(inputs, where)
        return inputs[0][1]
    if name in _MERGE_FUNCTIONS:
        return _merge(inputs, where)
    if name in ("cat", "concat", "concatenate"):
        args = _arguments(node, ("tensors", "dim"), {"dim": 0})
        if args["dim"] not in (1, -3):
            raise UnknownLayerError(
                f"{where} concatenates along dim {args['dim']}; only channel concatenation "
                f"(dim=1) keeps the spatial layout"
            )
        return _merge(inputs, where)
    field = inputs[0][1]
    if len(inputs) > 1:
        raise UnknownLayerError(
            f"receptive_field_of does not know how {where} combines {len(inputs)} inputs"
        )
    if name in ("max_pool2d", "max_pool2d_with_indices"):
        a = _arguments(node, ("input", "kernel_size", "stride", "padding", "dilation",
                              "ceil_mode"), {"stride": None, "padding": 0, "dilation": 1,
                                             "ceil_mode": False})  # fmt: skip
        k, s, p, d = _pool_layer(a["kernel_size"], a["stride"], a["padding"], a["dilation"])
        return _apply(field, k, s, p, d, where, ceil_mode=a["ceil_mode"])
    if name == "avg_pool2d":
        a = _arguments(node, ("input", "kernel_size", "stride", "padding", "ceil_mode"),
                       {"stride": None, "padding": 0, "ceil_mode": False})  # fmt: skip
        k, s, p, d = _pool_layer(a["kernel_size"], a["stride"], a["padding"])
        return _apply(field, k, s, p, d, where, ceil_mode=a["ceil_mode"])
    if name in ("adaptive_avg_pool2d", "adaptive_max_pool2d"):
        a = _arguments(node, ("input", "output_size"), {})
        return _adaptive(field, a["output_size"], where)
    if name == "conv2d":
        a = _arguments(node, ("input", "weight", "bias", "stride", "padding", "dilation"),
                       {"stride": 1, "padding": 0, "dilation": 1})  # fmt: skip
        weight = a["weight"]
        if getattr(weight, "op", None) != "get_attr":
            raise UnknownLayerError(f"{where}: the weight of conv2d must be a parameter")
        shape = _get_attr(root, weight.target).shape
        k, s, p, d = _conv_layer(tuple(shape[-2:]), a["stride"], a["padding"], a["dilation"])
        return _apply(field, k, s, p, d, where, same=a["padding"] == "same")
    if name == "pad":
        a = _arguments(node, ("input", "pad"), {})
        return _pad(field, a["pad"], where)
    raise UnknownLayerError(
        f"receptive_field_of does not know how {where} changes the receptive field; pass "
        f"output=<an earlier stage> to stop before it"
    )


def _get_attr(root: Any, target: str) -> Any:
    obj = root
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _trace(module: Any) -> tuple[Any, dict[str, Any]]:
    """Symbolically trace ``module``; also record the output node of every submodule call."""
    import torch.fx as fx

    class _Tracer(fx.Tracer):
        def __init__(self) -> None:
            super().__init__()
            self.module_outputs: dict[str, Any] = {}

        def call_module(self, m, forward, args, kwargs):  # noqa: ANN001, ANN202
            out = super().call_module(m, forward, args, kwargs)
            if isinstance(out, fx.Proxy):
                self.module_outputs[self.path_of_module(m)] = out.node
            return out

    tracer = _Tracer()
    try:
        graph = tracer.trace(module)
    except Exception as error:  # torch.fx raises many kinds of errors
        raise ValueError(
            f"receptive_field_of could not trace {type(module).__name__} with torch.fx "
            f"(data-dependent control flow?): {error}"
        ) from error
    return graph, tracer.module_outputs


def receptive_field_of(
    module: torch.nn.Module,
    input_size: IntOrPair,
    *,
    output: str | None = None,
    stages: bool | Sequence[str] = False,
    custom: Mapping[type, Callable[[Any], Layer | None]] | None = None,
) -> ReceptiveField | dict[str, ReceptiveField]:
    """Return the receptive field of a module's output, traced through its graph.

    The module is traced symbolically with :mod:`torch.fx` (nothing is computed), and the field
    is propagated from the input to the output node by node:

    - ``Conv2d``, ``MaxPool2d``, ``AvgPool2d`` (module or functional), ``F.pad`` and the padding
      modules, and adaptive pooling when the input size is a multiple of the output size, change
      the field by the closed-form step of :func:`receptive_field_steps`;
    - activations, normalisation, dropout and identity layers leave it unchanged
      (normalisation statistics, which couple all pixels, are left out, as is the convention);
    - where paths merge (``+``, ``*``, ``torch.cat`` along channels), the field is the union of
      the paths' fields: the largest. The paths must be aligned: the same effective stride and
      the same centre, or :class:`UnalignedPathsError` names them.

    Anything else (``flatten``, ``Linear``, upsampling, ...) raises :class:`UnknownLayerError`
    naming the layer, if it lies between the input and the requested output.

    Parameters
    ----------
    module : torch.nn.Module
        Takes one image tensor (N, C, H, W). Modules with data-dependent control flow cannot be
        traced.
    input_size : int or (int, int)
        Spatial size (H, W) of the input; used to follow sizes through the graph (adaptive
        pooling, ceil mode, checking that merged tensors match).
    output : str, optional
        Stop at this submodule (qualified name, as in ``named_modules``, e.g. ``'layer4'``) or
        graph node instead of the module's output.
    stages : bool or sequence of str
        ``True``: report the field after each direct child module, in order of use, up to the
        first one the field cannot pass (a classifier's ``flatten``, say); a sequence of names:
        after each of those submodules (an error if one has no field).
    custom : mapping from module type to callable, optional
        Geometry of module types the tracer does not know: each callable takes the module and
        returns a :class:`Layer`, or ``None`` for a pointwise layer.

    Returns
    -------
    ReceptiveField, or dict from stage name to ReceptiveField if ``stages`` is given.

    Raises
    ------
    UnknownLayerError, UnalignedPathsError
        Both are ``ValueError``.

    Examples
    --------
    >>> import torch.nn as nn
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    ...                     nn.Conv2d(8, 8, 3, padding=2, dilation=2))
    >>> receptive_field_of(net, 32)
    ReceptiveField(size=12, stride=2, padding=5)
    >>> receptive_field_of(net, 32, stages=True)["2"]
    ReceptiveField(size=4, stride=2, padding=1)
    """
    import torch.nn as nn

    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    h, w = pair(input_size, "input_size")
    if min(h, w) < 1:
        raise ValueError(f"input_size must be >= 1, got {input_size!r}")
    custom = dict(custom or {})
    graph, module_outputs = _trace(module)
    modules = dict(module.named_modules())
    nodes = list(graph.nodes)
    by_name = {node.name: node for node in nodes}

    def resolve(name: str) -> Any:
        if name in module_outputs:
            return module_outputs[name]
        if name in by_name:
            return by_name[name]
        known = ", ".join(list(module_outputs)[:12])
        raise ValueError(f"output/stage {name!r} is neither a submodule used in forward nor a "
                         f"graph node; submodules: {known}, ...")  # fmt: skip

    if stages is True:
        wanted = [name for name, _ in module.named_children() if name in module_outputs]
        wanted.sort(key=lambda name: nodes.index(module_outputs[name]))
    elif stages:
        wanted = list(stages)
    else:
        wanted = []
    targets = {name: resolve(name) for name in wanted}
    if output is not None:
        final = resolve(output)
    elif stages is True:
        final = targets[wanted[-1]] if wanted else nodes[0]
    else:
        final = next(node for node in nodes if node.op == "output")
        result = final.args[0]
        if not hasattr(result, "op"):
            raise ValueError(
                f"{type(module).__name__} returns {type(result).__name__}, not one tensor; pass "
                f"output=<name of the submodule or node> to choose one"
            )
        final = result

    # Only the ancestors of the requested nodes matter: unknown layers elsewhere are fine.
    needed: set[str] = set()
    stack = [final, *targets.values()]
    while stack:
        node = stack.pop()
        if node.name in needed:
            continue
        needed.add(node.name)
        stack.extend(node.all_input_nodes)

    fields: dict[str, _Field | None] = {}
    failures: dict[str, ValueError] = {}  # node name -> why its field is undefined
    placeholders = [node for node in nodes if node.op == "placeholder"]
    for node in nodes:
        if node.name not in needed:
            continue
        failed = [failures[arg.name] for arg in node.all_input_nodes if arg.name in failures]
        if failed:
            failures[node.name] = failed[0]
            continue
        where = _describe(node, modules)
        try:
            fields[node.name] = _node_field(node, where, module, modules, fields, custom)
        except ValueError as error:
            if node.op == "placeholder":
                raise
            failures[node.name] = error
        if node.op == "placeholder":
            if node is not placeholders[0]:
                raise ValueError(
                    f"receptive_field_of follows one input, but forward also takes '{node.target}'"
                )
            fields[node.name] = _Field((1, 1), (1, 1), (0, 0), (h, w))

    def field_at(node: Any, label: str) -> ReceptiveField:
        if node.name in failures:
            raise failures[node.name]
        if fields.get(node.name) is None:
            raise ValueError(f"{label} '{node.name}' does not depend on the input")
        return fields[node.name].result()

    if not wanted:
        return field_at(final, "the output")
    report = {}
    for name, node in targets.items():
        if stages is True and node.name in failures:
            break  # report the stages up to the first one the field cannot pass
        report[name] = field_at(node, "stage")
    return report


def _node_field(
    node: Any, where: str, root: Any, modules: Mapping[str, Any], fields: dict, custom: Mapping
) -> _Field | None:
    """Field of one graph node from its inputs' fields (None: carries no field)."""
    if node.op in ("placeholder", "get_attr", "output"):
        return None  # the placeholder is filled in by the caller
    if node.op == "call_module":
        inputs = [fields[arg.name] for arg in node.all_input_nodes
                  if fields.get(arg.name) is not None]  # fmt: skip
        if not inputs:
            return None
        if len(inputs) > 1:
            raise UnknownLayerError(f"{where} takes {len(inputs)} image inputs")
        return _module_rule(modules[node.target], inputs[0], where, custom)
    return _function_rule(node, root, fields, where)


# --------------------------------------------------------------------------------------------
# Effective receptive field
# --------------------------------------------------------------------------------------------


def effective_receptive_field(
    module: torch.nn.Module,
    input_size: IntOrPair,
    *,
    in_channels: int | None = None,
    inputs: torch.Tensor | None = None,
    n_samples: int = 8,
    position: IntOrPair | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Return the effective receptive field: how much each input pixel moves the centre unit.

    .. math::

        \\text{ERF}[h, w] = \\frac{1}{N} \\sum_{n=1}^{N} \\sum_{c}
            \\left| \\frac{\\partial \\sum_k y_n[k, i_0, j_0]}{\\partial x_n[c, h, w]} \\right|

    the gradient of the output unit at ``(i_0, j_0)`` (all its channels summed) with respect to
    the input, in absolute value, summed over input channels and averaged over ``N`` images
    (Luo et al. 2016). It is zero outside the theoretical receptive field and, for deep
    networks, concentrated in a Gaussian-like blob well inside it.

    The module runs in eval mode (batch-norm running statistics, no dropout) and is put back in
    its previous mode; its parameters are not changed and their gradients are not touched.

    Parameters
    ----------
    module : torch.nn.Module
        A fully convolutional network taking (N, C, H, W).
    input_size : int or (int, int)
        Spatial size (H, W) of the input images.
    in_channels : int, optional
        Channels ``C`` of the input; default: ``in_channels`` of the first ``Conv2d`` found.
    inputs : Tensor (N, C, H, W), optional
        Images to average over; default: ``n_samples`` standard-normal images drawn with
        ``seed``.
    n_samples : int
        Number of random images when ``inputs`` is not given.
    position : int or (int, int), optional
        Output unit; default: the centre ``(H_out // 2, W_out // 2)``.
    seed : int
        Seed of the random images.

    Returns
    -------
    ndarray, shape (H, W), float64

    Examples
    --------
    >>> import torch.nn as nn
    >>> net = nn.Conv2d(1, 1, 3, bias=False)
    >>> _ = nn.init.ones_(net.weight)
    >>> effective_receptive_field(net, 5)
    array([[0., 0., 0., 0., 0.],
           [0., 1., 1., 1., 0.],
           [0., 1., 1., 1., 0.],
           [0., 1., 1., 1., 0.],
           [0., 0., 0., 0., 0.]])
    """
    import torch
    import torch.nn as nn

    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    h, w = pair(input_size, "input_size")
    parameter = next(module.parameters(), None)
    dtype = parameter.dtype if parameter is not None else torch.float32
    device = parameter.device if parameter is not None else torch.device("cpu")
    if inputs is None:
        if in_channels is None:
            conv = next((m for m in module.modules() if isinstance(m, nn.Conv2d)), None)
            if conv is None:
                raise ValueError("in_channels is needed: the module has no Conv2d to read it from")
            in_channels = conv.in_channels
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        generator = torch.Generator().manual_seed(seed)
        inputs = torch.randn(n_samples, in_channels, h, w, generator=generator, dtype=dtype)
    elif inputs.dim() != 4 or tuple(inputs.shape[-2:]) != (h, w):
        raise ValueError(
            f"inputs must have shape (N, C, {h}, {w}) to match input_size, "
            f"got {tuple(inputs.shape)}"
        )
    x = inputs.detach().to(device=device, dtype=dtype).clone().requires_grad_(True)
    was_training = module.training
    module.eval()
    try:
        with torch.enable_grad():
            y = module(x)
            if y.dim() != 4:
                raise ValueError(f"the module must output (N, C, H, W), got shape {tuple(y.shape)}")
            if position is None:
                i0, j0 = y.shape[-2] // 2, y.shape[-1] // 2
            else:
                i0, j0 = pair(position, "position")
                if not (0 <= i0 < y.shape[-2] and 0 <= j0 < y.shape[-1]):
                    raise ValueError(
                        f"position {position!r} is outside the output of size {tuple(y.shape[-2:])}"
                    )
            (grad,) = torch.autograd.grad(y[:, :, i0, j0].sum(), x)
    finally:
        module.train(was_training)
    return grad.abs().sum(dim=1).mean(dim=0).detach().cpu().double().numpy()
