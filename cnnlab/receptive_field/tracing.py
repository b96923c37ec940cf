"""Receptive fields traced from a :class:`torch.nn.Module` with :mod:`torch.fx`.

:func:`receptive_field_of` traces a module symbolically (nothing is computed) and carries the
field of :mod:`cnnlab.receptive_field.closed_form` from the input to the output, node by node,
through every path: residual additions, concatenations, nested ``Sequential``. Each
convolution, pooling or padding layer becomes a :class:`~cnnlab.geometry.Window` and applies
the one recurrence :func:`~cnnlab.receptive_field.closed_form.step`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cnnlab.geometry import IntOrPair, Pair, Window, is_pair, pair
from cnnlab.receptive_field.closed_form import Layer, ReceptiveField, as_field, step

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["receptive_field_of", "UnknownLayerError", "UnalignedPathsError"]


@dataclass(frozen=True)
class _Field:
    """Per-axis field of one tensor in the graph, plus its spatial size."""

    size: Pair
    stride: Pair
    padding: Pair
    shape: Pair  # spatial (h, w) of the tensor

    def through(self, window: Window, where: str, ceil_mode: bool = False) -> _Field:
        """The field after ``window``, and the size of its output."""
        what = f"{where} (input_size too small?): "
        out_shape = window.output_size(self.shape, ceil_mode, what=what)
        size, stride, padding = step((self.size, self.stride, self.padding), window)
        return _Field(size, stride, padding, out_shape)

    def result(self, as_pair: bool) -> ReceptiveField:
        return as_field((self.size, self.stride, self.padding), as_pair)


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


def _pool_window(kernel_size: Any, stride: Any, padding: Any, dilation: Any = 1) -> Window:
    no_stride = stride is None or stride == [] or stride == ()  # torch's "stride = kernel"
    return Window(kernel_size, kernel_size if no_stride else stride, pair(padding), dilation)


def _module_rule(
    module: Any, field: _Field, where: str, custom: Mapping[type, Callable[[Any], Layer | None]]
) -> _Field:
    import torch.nn as nn

    for kind, rule in custom.items():
        if isinstance(module, kind):
            layer = rule(module)
            return field if layer is None else field.through(layer.window, where)
    name = type(module).__name__
    if name in _POINTWISE_MODULES:
        return field
    if isinstance(module, nn.Conv2d):
        window = Window(module.kernel_size, module.stride, module.padding, module.dilation)
        return field.through(window, where)
    if isinstance(module, nn.MaxPool2d | nn.AvgPool2d):
        dilation = getattr(module, "dilation", 1)  # AvgPool2d has none
        window = _pool_window(module.kernel_size, module.stride, module.padding, dilation)
        return field.through(window, where, module.ceil_mode)
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
    return field.through(Window(k, stride=k), where)


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
    return field.through(Window(1, padding=((top, bottom), (left, right))), where)


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
    if len(inputs) > 1:
        raise UnknownLayerError(
            f"receptive_field_of does not know how {where} combines {len(inputs)} inputs"
        )
    return _spatial_function(name, node, root, inputs[0][1], where)


def _spatial_function(name: str, node: Any, root: Any, field: _Field, where: str) -> _Field:
    """Field after a functional pooling, convolution or padding of one input."""
    if name in ("max_pool2d", "max_pool2d_with_indices"):
        a = _arguments(node, ("input", "kernel_size", "stride", "padding", "dilation",
                              "ceil_mode"), {"stride": None, "padding": 0, "dilation": 1,
                                             "ceil_mode": False})  # fmt: skip
        window = _pool_window(a["kernel_size"], a["stride"], a["padding"], a["dilation"])
        return field.through(window, where, a["ceil_mode"])
    if name == "avg_pool2d":
        a = _arguments(node, ("input", "kernel_size", "stride", "padding", "ceil_mode"),
                       {"stride": None, "padding": 0, "ceil_mode": False})  # fmt: skip
        window = _pool_window(a["kernel_size"], a["stride"], a["padding"])
        return field.through(window, where, a["ceil_mode"])
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
        window = Window(tuple(shape[-2:]), a["stride"], a["padding"], a["dilation"])
        return field.through(window, where)
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
    shape = pair(input_size, "input_size", minimum=1)
    graph = _Graph(module)
    wanted = graph.stage_names(stages)
    targets = {name: graph.resolve(name) for name in wanted}
    final = graph.final(output, stages is True, [targets[name] for name in wanted])
    fields, failures = graph.propagate(
        _Field((1, 1), (1, 1), (0, 0), shape), [final, *targets.values()], dict(custom or {})
    )
    as_pair = is_pair(input_size)

    def field_at(node: Any, label: str) -> ReceptiveField:
        if node.name in failures:
            raise failures[node.name]
        if fields.get(node.name) is None:
            raise ValueError(f"{label} '{node.name}' does not depend on the input")
        return fields[node.name].result(as_pair)

    if not wanted:
        return field_at(final, "the output")
    report = {}
    for name, node in targets.items():
        if stages is True and node.name in failures:
            break  # report the stages up to the first one the field cannot pass
        report[name] = field_at(node, "stage")
    return report


class _Graph:
    """A module traced with torch.fx: its nodes, and the output node of every submodule."""

    def __init__(self, module: Any) -> None:
        self.module = module
        graph, self.module_outputs = _trace(module)
        self.modules = dict(module.named_modules())
        self.nodes = list(graph.nodes)
        self.by_name = {node.name: node for node in self.nodes}

    def resolve(self, name: str) -> Any:
        """The node of a submodule's output, or of a graph node, by name."""
        if name in self.module_outputs:
            return self.module_outputs[name]
        if name in self.by_name:
            return self.by_name[name]
        known = ", ".join(list(self.module_outputs)[:12])
        raise ValueError(f"output/stage {name!r} is neither a submodule used in forward nor a "
                         f"graph node; submodules: {known}, ...")  # fmt: skip

    def stage_names(self, stages: bool | Sequence[str]) -> list[str]:
        """``stages=True``: the direct children used in forward, in order of use."""
        if stages is True:
            used = [n for n, _ in self.module.named_children() if n in self.module_outputs]
            return sorted(used, key=lambda n: self.nodes.index(self.module_outputs[n]))
        return list(stages) if stages else []

    def final(self, output: str | None, all_stages: bool, targets: list[Any]) -> Any:
        """The node whose field is asked for: ``output``, the last stage, or the result."""
        if output is not None:
            return self.resolve(output)
        if all_stages:
            return targets[-1] if targets else self.nodes[0]
        result = next(node for node in self.nodes if node.op == "output").args[0]
        if not hasattr(result, "op"):
            raise ValueError(
                f"{type(self.module).__name__} returns {type(result).__name__}, not one tensor; "
                f"pass output=<name of the submodule or node> to choose one"
            )
        return result

    def propagate(
        self, start: _Field, requested: list[Any], custom: Mapping
    ) -> tuple[dict[str, _Field | None], dict[str, ValueError]]:
        """Fields of the ancestors of ``requested``, from ``start`` at the input, node by node.

        Returns the fields by node name (None: the node carries none) and, for nodes whose
        field is undefined, the error that says why. Only ancestors of the requested nodes are
        visited: unknown layers elsewhere are fine.
        """
        needed: set[str] = set()
        stack = list(requested)
        while stack:
            node = stack.pop()
            if node.name not in needed:
                needed.add(node.name)
                stack.extend(node.all_input_nodes)
        fields: dict[str, _Field | None] = {}
        failures: dict[str, ValueError] = {}
        placeholders = [node for node in self.nodes if node.op == "placeholder"]
        for node in self.nodes:
            if node.name not in needed:
                continue
            if node.op == "placeholder":
                if node is not placeholders[0]:
                    raise ValueError(
                        f"receptive_field_of follows one input, but forward also takes "
                        f"'{node.target}'"
                    )
                fields[node.name] = start
                continue
            failed = [failures[arg.name] for arg in node.all_input_nodes if arg.name in failures]
            if failed:
                failures[node.name] = failed[0]
                continue
            where = _describe(node, self.modules)
            try:
                fields[node.name] = _node_field(
                    node, where, self.module, self.modules, fields, custom
                )
            except ValueError as error:
                failures[node.name] = error
        return fields, failures


def _node_field(
    node: Any, where: str, root: Any, modules: Mapping[str, Any], fields: dict, custom: Mapping
) -> _Field | None:
    """Field of one graph node from its inputs' fields (None: carries no field)."""
    if node.op in ("placeholder", "get_attr", "output"):
        return None  # the placeholder's field is the start, set by the caller
    if node.op == "call_module":
        inputs = [fields[arg.name] for arg in node.all_input_nodes
                  if fields.get(arg.name) is not None]  # fmt: skip
        if not inputs:
            return None
        if len(inputs) > 1:
            raise UnknownLayerError(f"{where} takes {len(inputs)} image inputs")
        return _module_rule(modules[node.target], inputs[0], where, custom)
    return _function_rule(node, root, fields, where)
