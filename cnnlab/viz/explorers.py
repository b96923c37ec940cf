r"""Explorers that run in the page: convolution geometry, receptive fields, atrous rates, channels.

Each function returns an :class:`Explorer`, whose ``_repr_html_`` is one self-contained piece of
HTML: the controls, the quantities, a drawing area and an inline ``<script>`` holding a small
JavaScript implementation of the laws of :mod:`cnnlab.shapes`, :mod:`cnnlab.receptive_field`
and :mod:`cnnlab.atrous`. Moving a control recomputes every quantity in the browser.

Why self-contained HTML and JavaScript (like matplotlib's ``to_jshtml``) and not a widget: the
book is built from the outputs stored in the notebooks and is read with no kernel, offline,
from ``file://`` or a web server. An ipywidget computes in Python, so without a kernel it is a
dead widget. An anywidget with its JavaScript in the saved widget state would render, but only
with the widgets' HTML manager (RequireJS and about 4 MB of script) on every page that holds
one, and its logic would have to be JavaScript anyway to answer without a kernel. A
``text/html`` output with an inline script needs neither: Jupyter Book writes it into the page
as it is, and JupyterLab runs its script as soon as the output is trusted (a cell the reader
runs, or a trusted notebook). The page loads nothing else: the script and its CSS (the files in
``cnnlab/viz/explorers_js/``) are inlined in the output, and a global guard
(``window.cnnlabExplorers``) makes the library run once however many explorers a page holds;
each explorer's root finds its own controls. The HTML is deterministic (no random ids, no
timestamps), so nbval can compare it. Without JavaScript (an untrusted notebook) the explorer
still shows the quantities of its initial configuration, computed here by cnnlab's Python.

The contract (stable; browser tests rely on it)
-----------------------------------------------
- The root element has ``data-explorer="NAME"``: ``conv-geometry``, ``receptive-field``,
  ``atrous`` or ``multichannel``.
- Its controls are ``<input>`` elements whose ``name`` is the Python parameter name.
- Each computed quantity is in an element with ``data-role="QUANTITY"`` whose text is the
  value alone; where cnnlab's Python refuses the configuration, that text is an error message
  naming the argument at fault (never a number) and the element has a ``data-error``
  attribute. The module docstring of :mod:`cnnlab.viz` lists every name and role.

Examples
--------
>>> explorer = conv_geometry_explorer(size=7, kernel_size=3, stride=2, padding=1)
>>> explorer
conv_geometry_explorer(size=7, kernel_size=3, stride=2, padding=1, dilation=1, transposed=False, output_padding=0)
>>> explorer.quantities()["output-size"], explorer.quantities()["formula"]
('4', 'o = ⌊(7 + 2·1 - 1·(3 - 1) - 1) / 2⌋ + 1 = 4')
>>> 'data-explorer="conv-geometry"' in explorer._repr_html_()
True
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from importlib.resources import files
from typing import ClassVar

from cnnlab.atrous import (
    check_rates,
    gridding_footprint,
    hdc_condition,
    hdc_max_distance,
    valid_weight_counts,
    valid_weight_fractions,
)
from cnnlab.geometry import check_int
from cnnlab.receptive_field import Layer, receptive_field
from cnnlab.shapes import (
    conv_macs,
    conv_output_size,
    conv_params,
    effective_kernel_size,
    transposed_output_size,
)

__all__ = [
    "Explorer",
    "ConvGeometryExplorer",
    "ReceptiveFieldExplorer",
    "AtrousExplorer",
    "MultichannelExplorer",
    "conv_geometry_explorer",
    "receptive_field_explorer",
    "atrous_explorer",
    "multichannel_explorer",
    "standalone_html",
    "library_script",
    "EXPLORER_NAMES",
]

VERSION = "1"
"""Version of the JavaScript library; a page keeps the first copy of a given version it runs."""

EXPLORER_NAMES = ("conv-geometry", "receptive-field", "atrous", "multichannel")
"""The values of ``data-explorer``."""

_JS_FILES = ("laws.js", "explorers.js")
_FOLDER = "explorers_js"


def _asset(name: str) -> str:
    return (files("cnnlab.viz") / _FOLDER / name).read_text(encoding="utf-8")


def _compact(script: str) -> str:
    """The script without its comments, indentation and blank lines (a third lighter).

    Safe for these files: no string or template literal spans lines or holds ``/*``, and no line
    of code starts with ``//``.
    """
    script = re.sub(r"/\*.*?\*/", "", script, flags=re.DOTALL)
    lines = (line.strip() for line in script.splitlines())
    return "\n".join(line for line in lines if line and not line.startswith("//"))


@cache
def library_script() -> str:
    """Return the explorers' JavaScript, wrapped so that it runs once per page.

    The laws (``laws.js``) and the user interface (``explorers.js``) run inside one function;
    a page that already holds this version of the library only initializes the explorers that
    are new.
    """
    body = _compact("\n".join(_asset(name) for name in _JS_FILES))
    if "</script" in body.lower():  # pragma: no cover (a guard for future edits)
        raise ValueError("the explorers' JavaScript must not contain '</script'")
    return (
        "(function () {\n"
        '"use strict";\n'
        f'if (window.cnnlabExplorers && window.cnnlabExplorers.version === "{VERSION}") {{\n'
        "  window.cnnlabExplorers.initAll();\n"
        "  return;\n"
        "}\n"
        f"{body}\n"
        f'window.cnnlabExplorers = {{ version: "{VERSION}", laws, init, initAll }};\n'
        "initAll();\n"
        "})();\n"
    )


@cache
def _style() -> str:
    return _asset("explorers.css")


def _attr(value: object) -> str:
    return html.escape(str(value), quote=True)


def _compute(compute: Callable[[], object]) -> tuple[str, bool]:
    """``(text, is_error)``: the value as text, or the message of the error Python raises."""
    try:
        return str(compute()), False
    except (TypeError, ValueError) as error:
        return str(error), True


def _number(name: str, value: object, label: str, minimum: int | None = None) -> str:
    low = "" if minimum is None else f' min="{minimum}"'
    return (
        f"<label>{html.escape(label)} "
        f'<input type="number" name="{name}" value="{_attr(value)}" step="1"{low}></label>'
    )


def _checkbox(name: str, checked: bool, label: str) -> str:
    on = " checked" if checked else ""
    return f'<label><input type="checkbox" name="{name}"{on}> {html.escape(label)}</label>'


def _role(role: str, compute: Callable[[], object], tag: str = "td") -> str:
    text, error = _compute(compute)
    mark = " data-error" if error else ""
    return f'<{tag} data-role="{role}"{mark}>{html.escape(text)}</{tag}>'


def _tuple(items: Sequence[int]) -> str:
    return str(tuple(int(i) for i in items))


class Explorer:
    """An explorer: ``_repr_html_`` gives self-contained HTML and JavaScript.

    Subclasses set :attr:`name` (the ``data-explorer`` value) and :attr:`title`, and define
    :meth:`parameters`, :meth:`quantities` (role -> text, computed by cnnlab's Python) and
    ``_body`` (the controls and the quantities' elements).
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    function: ClassVar[str] = ""

    def parameters(self) -> dict[str, object]:
        """The arguments, in order, as the function that made the explorer takes them."""
        raise NotImplementedError

    def quantities(self) -> dict[str, str]:
        """Every ``data-role`` and its text for the initial configuration, from cnnlab's Python.

        The text is the value, or the message of the error cnnlab raises.
        """
        return {role: text for role, (text, _) in self._computed().items()}

    def _computed(self) -> dict[str, tuple[str, bool]]:
        raise NotImplementedError

    def _body(self) -> str:
        raise NotImplementedError

    def _results(self, labels: dict[str, str]) -> str:
        """The quantities named in ``labels`` (role -> what the reader reads), two columns."""
        computed = self._computed()
        items = []
        for role, label in labels.items():
            text, error = computed[role]
            mark = " data-error" if error else ""
            items.append(
                f'<span class="cx-name">{html.escape(label)}</span>'
                f'<span class="cx-value" data-role="{role}"{mark}>{html.escape(text)}</span>'
            )
        return f'<div class="cx-results">{"".join(items)}</div>'

    def __repr__(self) -> str:
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.parameters().items())
        return f"{self.function}({arguments})"

    def _repr_html_(self) -> str:
        return (
            f'<div class="cnnlab-explorer" data-explorer="{self.name}">'
            f"<style>{_style()}</style>"
            f'<p class="cx-title">{html.escape(self.title)}</p>'
            f"{self._body()}"
            '<div data-part="drawing"></div>'
            '<p class="cx-note" data-part="static-note">These are the values of the initial '
            "configuration. The explorer comes alive where JavaScript runs: any web browser, "
            "or Jupyter once the cell is run (a trusted notebook).</p>"
            "</div>"
            f"<script>{library_script()}</script>"
        )


# --------------------------------------------------------------------------- conv geometry


class ConvGeometryExplorer(Explorer):
    """The output-size law of one convolution (or transposed convolution), drawn on grids.

    Quantities (``data-role``): ``output-size``
    (:func:`~cnnlab.shapes.conv_output_size`, or :func:`~cnnlab.shapes.transposed_output_size`
    when ``transposed``), ``effective-kernel-size``
    (:func:`~cnnlab.shapes.effective_kernel_size`) and ``formula`` (the law with the numbers
    filled in, ending in ``= o``).
    """

    name = "conv-geometry"
    title = "Convolution geometry: hover an output cell to see the input cells it reads"
    function = "conv_geometry_explorer"

    def __init__(
        self,
        size: int,
        kernel_size: int,
        stride: int,
        padding: int,
        dilation: int,
        transposed: bool,
        output_padding: int,
    ) -> None:
        self.size = check_int("size", size)
        self.kernel_size = check_int("kernel_size", kernel_size)
        self.stride = check_int("stride", stride)
        self.padding = check_int("padding", padding)
        self.dilation = check_int("dilation", dilation)
        if not isinstance(transposed, bool):
            raise TypeError(f"transposed must be a bool, got {transposed!r}")
        self.transposed = transposed
        self.output_padding = check_int("output_padding", output_padding)

    def parameters(self) -> dict[str, object]:
        return {
            "size": self.size,
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "padding": self.padding,
            "dilation": self.dilation,
            "transposed": self.transposed,
            "output_padding": self.output_padding,
        }

    def _output_size(self) -> int:
        i, k, s, p, d = self.size, self.kernel_size, self.stride, self.padding, self.dilation
        if self.transposed:
            return transposed_output_size(i, k, s, p, self.output_padding, d)
        return conv_output_size(i, k, s, p, d)

    def _formula(self) -> str:
        o = self._output_size()
        effective_kernel_size(self.kernel_size, self.dilation)
        i, k, s, p, d = self.size, self.kernel_size, self.stride, self.padding, self.dilation
        if self.transposed:
            op = self.output_padding
            return f"o = ({i} - 1)·{s} - 2·{p} + {d}·({k} - 1) + {op} + 1 = {o}"
        return f"o = ⌊({i} + 2·{p} - {d}·({k} - 1) - 1) / {s}⌋ + 1 = {o}"

    def _computed(self) -> dict[str, tuple[str, bool]]:
        return {
            "output-size": _compute(self._output_size),
            "effective-kernel-size": _compute(
                lambda: effective_kernel_size(self.kernel_size, self.dilation)
            ),
            "formula": _compute(self._formula),
        }

    def _body(self) -> str:
        controls = [
            _number("size", self.size, "input size", 1),
            _number("kernel_size", self.kernel_size, "kernel size", 1),
            _number("stride", self.stride, "stride", 1),
            _number("padding", self.padding, "padding", 0),
            _number("dilation", self.dilation, "dilation", 1),
            _checkbox("transposed", self.transposed, "transposed"),
            _number("output_padding", self.output_padding, "output padding (transposed)", 0),
        ]
        results = self._results(
            {
                "output-size": "output size o",
                "effective-kernel-size": "effective kernel size d(k - 1) + 1",
                "formula": "the law",
            }
        )
        return f'<div class="cx-controls">{"".join(controls)}</div>{results}'


def conv_geometry_explorer(
    size: int = 7,
    kernel_size: int = 3,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    transposed: bool = False,
    output_padding: int = 0,
) -> ConvGeometryExplorer:
    r"""Explore the output size of a convolution on a square input, in the page.

    Controls ``size``, ``kernel_size``, ``stride``, ``padding``, ``dilation``, ``transposed``
    and ``output_padding``; quantities ``output-size``, ``effective-kernel-size`` and
    ``formula``, by

    .. math:: o = \left\lfloor \frac{i + 2p - d(k - 1) - 1}{s} \right\rfloor + 1
              \quad\text{or, transposed,}\quad o = (i - 1)s - 2p + d(k - 1) + o_p + 1

    (:func:`cnnlab.shapes.conv_output_size`, :func:`cnnlab.shapes.transposed_output_size`).
    The drawing shows the padded input and the output; hovering (or clicking) an output cell
    highlights the input cells its kernel reads (transposed: an input cell and the output cells
    it writes).

    Parameters
    ----------
    size, kernel_size, stride, padding, dilation : int
        The initial configuration (one axis; the input is ``size x size``).
    transposed : bool
        Start with the transposed convolution.
    output_padding : int
        Initial ``output_padding`` of the transposed convolution.

    Returns
    -------
    ConvGeometryExplorer
        Display it (the last expression of a cell) to show the explorer.

    Examples
    --------
    >>> conv_geometry_explorer(size=4, stride=2, padding=1, transposed=True).quantities()["output-size"]
    '7'
    >>> conv_geometry_explorer(size=2, kernel_size=5).quantities()["output-size"][:38]
    'kernel_size (5, 5) with dilation (1, 1'
    """
    return ConvGeometryExplorer(
        size, kernel_size, stride, padding, dilation, transposed, output_padding
    )


# --------------------------------------------------------------------------- receptive field

_LAYER_FIELDS = ("kernel_size", "stride", "padding", "dilation")
_LAYER_DEFAULTS = (3, 1, 0, 1)


def _layer_tuple(index: int, layer: object) -> tuple[int, int, int, int]:
    if isinstance(layer, Layer):
        values = (layer.kernel_size, layer.stride, layer.padding, layer.dilation)
    elif isinstance(layer, Iterable) and not isinstance(layer, str):
        values = tuple(layer)
        if not 1 <= len(values) <= 4:
            raise ValueError(
                f"layers[{index}] must be (kernel_size, stride, padding, dilation) with 1 to 4 "
                f"ints, got {layer!r}"
            )
        values = values + _LAYER_DEFAULTS[len(values) :]
    else:
        raise TypeError(
            f"layers[{index}] must be a Layer or a (kernel_size, stride, padding, dilation) "
            f"tuple, got {layer!r}"
        )
    return tuple(  # type: ignore[return-value]
        check_int(f"layers[{index}].{name}", value)
        for name, value in zip(_LAYER_FIELDS, values, strict=True)
    )


class ReceptiveFieldExplorer(Explorer):
    """A stack of layers the reader edits, its receptive field, jump, padding and output size.

    Quantities (``data-role``), for the whole stack: ``receptive-field`` (``r``), ``jump``
    (the effective stride ``S``), ``effective-padding`` (``P``) from
    :func:`~cnnlab.receptive_field.receptive_field`; ``output-size`` (the size after the last
    layer, :func:`~cnnlab.shapes.conv_output_size` layer by layer); ``interval``,
    ``interval-start`` and ``interval-end`` (the input pixels ``uS - P`` to ``uS - P + r - 1``
    that output unit ``position`` sees, :meth:`~cnnlab.receptive_field.ReceptiveField.interval`).
    Each layer's row (``data-layer="INDEX"``, from 0) holds ``layer-receptive-field``,
    ``layer-jump`` and ``layer-output-size``: the same after that layer.
    """

    name = "receptive-field"
    title = "Receptive field of a stack of layers: hover an output unit to see its field"
    function = "receptive_field_explorer"

    def __init__(
        self, layers: Sequence[tuple[int, int, int, int]], size: int, position: int
    ) -> None:
        if isinstance(layers, str) or not isinstance(layers, Iterable):
            raise TypeError(f"layers must be a sequence of layers, got {layers!r}")
        self.layers = tuple(_layer_tuple(i, layer) for i, layer in enumerate(layers))
        self.size = check_int("size", size)
        self.position = check_int("position", position)

    def parameters(self) -> dict[str, object]:
        return {"layers": list(self.layers), "size": self.size, "position": self.position}

    @staticmethod
    def _field(layers: Sequence[tuple[int, int, int, int]]):
        return receptive_field([Layer(k, stride=s, padding=p, dilation=d) for k, s, p, d in layers])

    def _output_size(self, layers: Sequence[tuple[int, int, int, int]]) -> int:
        self._field(layers)  # the layers' own checks first, as the page does
        size = self.size
        check_int("size", size, minimum=1)
        for k, s, p, d in layers:
            size = conv_output_size(size, k, s, p, d)
        return size

    def _computed(self) -> dict[str, tuple[str, bool]]:
        def interval():
            return self._field(self.layers).interval(self.position)

        return {
            "receptive-field": _compute(lambda: self._field(self.layers).size),
            "jump": _compute(lambda: self._field(self.layers).stride),
            "effective-padding": _compute(lambda: self._field(self.layers).padding),
            "output-size": _compute(lambda: self._output_size(self.layers)),
            "interval": _compute(lambda: f"[{interval().start}, {interval().end}]"),
            "interval-start": _compute(lambda: interval().start),
            "interval-end": _compute(lambda: interval().end),
        }

    def _row(self, index: int | None, layer: tuple[int, int, int, int]) -> str:
        cells = [
            f'<td data-part="layer-number">{"" if index is None else index + 1}</td>',
            *(
                f'<td><input type="number" name="{name}" value="{value}" step="1" '
                f'min="{0 if name == "padding" else 1}" aria-label="{name}"></td>'
                for name, value in zip(_LAYER_FIELDS, layer, strict=True)
            ),
        ]
        if index is None:
            cells += ['<td data-role="layer-receptive-field"></td>']
            cells += ['<td data-role="layer-jump"></td>', '<td data-role="layer-output-size"></td>']
        else:
            below = self.layers[: index + 1]
            cells += [
                _role("layer-receptive-field", lambda: self._field(below).size, "td"),
                _role("layer-jump", lambda: self._field(below).stride, "td"),
                _role("layer-output-size", lambda: self._output_size(below), "td"),
            ]
        cells.append(
            '<td><button type="button" data-action="remove-layer" '
            'aria-label="remove this layer">remove</button></td>'
        )
        number = "" if index is None else f' data-layer="{index}"'
        return f"<tr{number}>{''.join(cells)}</tr>"

    def _body(self) -> str:
        controls = [
            _number("size", self.size, "input size", 1),
            _number("position", self.position, "output unit", 0),
        ]
        head = "".join(
            f"<th>{h}</th>"
            for h in (
                "layer",
                "kernel_size",
                "stride",
                "padding",
                "dilation",
                "field r",
                "jump J",
                "output size",
                "",
            )
        )
        rows = "".join(self._row(i, layer) for i, layer in enumerate(self.layers))
        template = self._row(None, _LAYER_DEFAULTS).replace("<tr>", "<tr data-layer>", 1)
        results = self._results(
            {
                "receptive-field": "receptive field r",
                "jump": "effective stride (jump) S",
                "effective-padding": "effective padding P",
                "output-size": "output size",
                "interval": "input pixels seen by the output unit",
                "interval-start": "first pixel uS - P",
                "interval-end": "last pixel uS - P + r - 1",
            }
        )
        return (
            f'<div class="cx-controls">{"".join(controls)}</div>'
            f'<table><thead><tr>{head}</tr></thead><tbody data-part="layers">{rows}</tbody></table>'
            f'<template data-part="layer-template">{template}</template>'
            '<button type="button" data-action="add-layer">add a layer</button>'
            f'<div data-part="summary">{results}</div>'
        )


def receptive_field_explorer(
    layers: Sequence[tuple[int, ...] | Layer] = (
        (3, 1, 1, 1),
        (3, 1, 1, 1),
        (2, 2, 0, 1),
        (3, 1, 1, 1),
    ),
    size: int = 16,
    position: int = 3,
) -> ReceptiveFieldExplorer:
    r"""Explore the receptive field of a stack of layers the reader edits, in the page.

    Each layer is ``(kernel_size, stride, padding, dilation)``; with ``k'_l = d_l (k_l - 1) + 1``
    and ``J_l = s_1 \cdots s_{l-1}``:

    .. math:: r = 1 + \sum_l (k'_l - 1) J_l, \qquad S = \prod_l s_l, \qquad
              P = \sum_l p_l J_l

    and output unit ``u`` sees the input pixels ``uS - P`` to ``uS - P + r - 1``
    (:func:`cnnlab.receptive_field.receptive_field`). The reader adds and removes layers and
    edits each layer's ``kernel_size``, ``stride``, ``padding`` and ``dilation`` (inputs of
    those names in the row ``data-layer="INDEX"``), the input ``size`` and the output unit
    ``position``; hovering or clicking an output unit in the drawing selects it and highlights
    the units it reads on every layer below, down to the input.

    Parameters
    ----------
    layers : sequence of (int, int, int, int) or Layer
        The initial stack, input first; a tuple may stop early (defaults stride 1, padding 0,
        dilation 1).
    size : int
        Initial input size (one axis).
    position : int
        Initial output unit ``u``.

    Returns
    -------
    ReceptiveFieldExplorer

    Examples
    --------
    >>> q = receptive_field_explorer([(3, 1, 1), (3, 2, 1)], size=8, position=1).quantities()
    >>> q["receptive-field"], q["jump"], q["effective-padding"], q["output-size"], q["interval"]
    ('5', '2', '2', '4', '[0, 4]')
    """
    return ReceptiveFieldExplorer(layers, size, position)


# --------------------------------------------------------------------------- atrous


def _rates_text(rates: object) -> str:
    if isinstance(rates, str):
        return rates
    if isinstance(rates, Iterable):
        return ", ".join(str(r) for r in rates)
    return str(rates)


class AtrousExplorer(Explorer):
    """Valid weights of an atrous filter on a small feature map, and a stack's gridding.

    Quantities (``data-role``), for ``rate``, ``size`` and ``kernel_size``
    (:func:`~cnnlab.atrous.valid_weight_counts`, :func:`~cnnlab.atrous.valid_weight_fractions`):
    ``valid-count`` (positions where all ``k^2`` weights fall on the feature map),
    ``valid-fraction`` (their fraction, 4 decimals), ``centre-only-fraction`` (the fraction
    where only the centre weight does) and, for every possible count ``c``, ``fraction-c``.
    For the stack ``rates`` (:func:`~cnnlab.atrous.gridding_footprint`): ``footprint-size``
    (the side ``R`` of the footprint), ``footprint-reached`` (input pixels that reach the
    output), ``footprint-fraction`` (reached over ``R^2``, 4 decimals), ``hdc``
    (:func:`~cnnlab.atrous.hdc_condition`: ``yes`` or ``no``) and ``hdc-distance``
    (:func:`~cnnlab.atrous.hdc_max_distance`, ``M_2``).
    """

    name = "atrous"
    title = "Atrous convolution: valid weights on a small feature map, and gridding"
    function = "atrous_explorer"

    def __init__(self, rate: int, size: int, kernel_size: int, rates: object) -> None:
        self.rate = check_int("rate", rate)
        self.size = check_int("size", size)
        self.kernel_size = check_int("kernel_size", kernel_size)
        if isinstance(rates, str):
            raise TypeError(f"rates must be a sequence of ints, got {rates!r}")
        self.rates = check_rates("rates", rates)

    def parameters(self) -> dict[str, object]:
        return {
            "rate": self.rate,
            "size": self.size,
            "kernel_size": self.kernel_size,
            "rates": self.rates,
        }

    def _counts(self):
        return valid_weight_counts(self.size, self.rate, self.kernel_size)

    def _fractions(self) -> dict[int, float]:
        self._counts()
        fractions = valid_weight_fractions(self.size, [self.rate], self.kernel_size)
        return {c: float(f[0]) for c, f in fractions.items()}

    def _reached(self) -> int:
        return int((gridding_footprint(self.rates, self.kernel_size) > 0).sum())

    def _computed(self) -> dict[str, tuple[str, bool]]:
        k = self.kernel_size

        def side() -> int:
            return gridding_footprint(self.rates, k).shape[0]

        return {
            "valid-count": _compute(lambda: int((self._counts() == k * k).sum())),
            "valid-fraction": _compute(lambda: f"{self._fractions()[k * k]:.4f}"),
            "centre-only-fraction": _compute(lambda: f"{self._fractions()[1]:.4f}"),
            "footprint-size": _compute(side),
            "footprint-reached": _compute(self._reached),
            "footprint-fraction": _compute(lambda: f"{self._reached() / side() ** 2:.4f}"),
            "hdc": _compute(lambda: "yes" if hdc_condition(self.rates, k) else "no"),
            "hdc-distance": _compute(lambda: hdc_max_distance(self.rates)),
        }

    def _body(self) -> str:
        controls = [
            _number("rate", self.rate, "rate", 1),
            _number("size", self.size, "feature-map size", 1),
            _number("kernel_size", self.kernel_size, "kernel size", 1),
            "<label>stacked rates "
            f'<input type="text" name="rates" value="{_attr(_rates_text(self.rates))}" '
            'inputmode="numeric"></label>',
        ]
        valid = self._results(
            {
                "valid-count": "positions where all weights are valid",
                "valid-fraction": "fraction of positions where all weights are valid",
                "centre-only-fraction": "fraction where only the centre weight is valid",
            }
        )
        rows = ""
        fractions, error = _compute(self._fractions)
        if not error:
            rows = "".join(
                f'<tr><td>{c}</td><td data-role="fraction-{c}">{f:.4f}</td></tr>'
                for c, f in self._fractions().items()
            )
        table = (
            "<table><thead><tr><th>valid weights</th><th>fraction of positions</th></tr>"
            f'</thead><tbody data-part="fractions">{rows}</tbody></table>'
        )
        stack = self._results(
            {
                "footprint-size": "footprint side R = 1 + (k - 1) Σ rates",
                "footprint-reached": "input pixels that reach the output",
                "footprint-fraction": "fraction of the R × R field reached",
                "hdc": "meets the HDC condition",
                "hdc-distance": "HDC distance M₂",
            }
        )
        return f'<div class="cx-controls">{"".join(controls)}</div>{valid}{table}{stack}'


def atrous_explorer(
    rate: int = 6, size: int = 33, kernel_size: int = 3, rates: Sequence[int] = (6, 12, 18)
) -> AtrousExplorer:
    """Explore atrous rates in the page: valid weights near the border, and gridding.

    With "same" padding ``r (k - 1) / 2``, a ``k x k`` filter at rate ``r`` on a ``size x size``
    feature map has fewer valid weights near the border (the others multiply padding); as
    ``r`` approaches ``size`` only the centre weight is left
    (:func:`cnnlab.atrous.valid_weight_fractions`). A stack of stride-1 atrous layers with rates
    ``rates`` reaches only some input pixels of its ``R x R`` field,
    ``R = 1 + (k - 1) sum(rates)`` (:func:`cnnlab.atrous.gridding_footprint`); the HDC
    condition (:func:`cnnlab.atrous.hdc_condition`) is a test on the rates alone that rules
    out holes. The controls are ``rate``, ``size``, ``kernel_size`` (both parts) and ``rates``
    (a text input, rates separated by commas); the drawing shows the valid-weight map and the
    footprint.

    Parameters
    ----------
    rate : int
        Initial atrous rate of the single filter.
    size : int
        Initial feature-map size (one axis).
    kernel_size : int
        Initial number of taps per axis.
    rates : sequence of int
        Initial stack of rates, input first.

    Returns
    -------
    AtrousExplorer

    Examples
    --------
    >>> q = atrous_explorer(rate=2, size=5, rates=(1, 2, 5)).quantities()
    >>> q["valid-count"], q["valid-fraction"], q["footprint-size"], q["footprint-reached"], q["hdc"]
    ('1', '0.0400', '17', '289', 'yes')
    """
    return AtrousExplorer(rate, size, kernel_size, rates)


# --------------------------------------------------------------------------- multi-channel


class MultichannelExplorer(Explorer):
    """A convolution with several channels: weight shape, parameters, output shape and cost.

    Quantities (``data-role``): ``weight-shape`` (``(C_out, C_in / g, k, k)``), ``parameters``
    (:func:`~cnnlab.shapes.conv_params`), ``macs-per-value`` (multiply-adds per output value,
    ``C_in / g * k^2``), ``output-size`` (:func:`~cnnlab.shapes.conv_output_size`),
    ``output-shape`` (``(C_out, o, o)``) and ``macs`` (:func:`~cnnlab.shapes.conv_macs`, one
    image).
    """

    name = "multichannel"
    title = "Multi-channel convolution: shapes, parameters and multiply-adds"
    function = "multichannel_explorer"

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        groups: int,
        size: int,
        stride: int,
        padding: int,
        bias: bool,
    ) -> None:
        self.in_channels = check_int("in_channels", in_channels)
        self.out_channels = check_int("out_channels", out_channels)
        self.kernel_size = check_int("kernel_size", kernel_size)
        self.groups = check_int("groups", groups)
        self.size = check_int("size", size)
        self.stride = check_int("stride", stride)
        self.padding = check_int("padding", padding)
        if not isinstance(bias, bool):
            raise TypeError(f"bias must be a bool, got {bias!r}")
        self.bias = bias

    def parameters(self) -> dict[str, object]:
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": self.kernel_size,
            "groups": self.groups,
            "size": self.size,
            "stride": self.stride,
            "padding": self.padding,
            "bias": self.bias,
        }

    def _params(self, bias: bool | None = None) -> int:
        return conv_params(
            self.in_channels,
            self.out_channels,
            self.kernel_size,
            self.groups,
            self.bias if bias is None else bias,
        )

    def _output_size(self) -> int:
        return conv_output_size(self.size, self.kernel_size, self.stride, self.padding)

    def _computed(self) -> dict[str, tuple[str, bool]]:
        c_in, c_out, k, g = self.in_channels, self.out_channels, self.kernel_size, self.groups

        def weight_shape() -> str:
            self._params()
            return _tuple((c_out, c_in // g, k, k))

        def output_shape() -> str:
            conv_params(c_in, c_out, 1, g)  # the channels' checks
            o = self._output_size()
            return _tuple((c_out, o, o))

        return {
            "weight-shape": _compute(weight_shape),
            "parameters": _compute(self._params),
            "macs-per-value": _compute(lambda: self._params(bias=False) // c_out),
            "output-size": _compute(self._output_size),
            "output-shape": _compute(output_shape),
            "macs": _compute(
                lambda: conv_macs(c_in, c_out, k, self.size, self.stride, self.padding, 1, g)
            ),
        }

    def _body(self) -> str:
        controls = [
            _number("in_channels", self.in_channels, "input channels", 1),
            _number("out_channels", self.out_channels, "filters (output channels)", 1),
            _number("kernel_size", self.kernel_size, "kernel size", 1),
            _number("groups", self.groups, "groups", 1),
            _number("size", self.size, "input size", 1),
            _number("stride", self.stride, "stride", 1),
            _number("padding", self.padding, "padding", 0),
            _checkbox("bias", self.bias, "bias"),
        ]
        results = self._results(
            {
                "weight-shape": "weight shape (C_out, C_in / g, k, k)",
                "parameters": "parameters",
                "macs-per-value": "multiply-adds per output value",
                "output-size": "output size o",
                "output-shape": "output shape (C_out, o, o)",
                "macs": "multiply-adds for one image",
            }
        )
        return f'<div class="cx-controls">{"".join(controls)}</div>{results}'


def multichannel_explorer(
    in_channels: int = 3,
    out_channels: int = 2,
    kernel_size: int = 3,
    groups: int = 1,
    size: int = 5,
    stride: int = 2,
    padding: int = 1,
    bias: bool = True,
) -> MultichannelExplorer:
    r"""Explore the shapes and the cost of a multi-channel convolution, in the page.

    A layer with ``C_in`` input channels, ``C_out`` filters of ``k x k``, ``g`` groups:

    .. math:: \text{weight} \in \mathbb{R}^{C_\text{out} \times C_\text{in}/g \times k \times k},
              \quad \text{params} = C_\text{out} \frac{C_\text{in}}{g} k^2 + C_\text{out},
              \quad \text{MACs} = C_\text{out}\, o^2\, \frac{C_\text{in}}{g} k^2

    (:func:`cnnlab.shapes.conv_params`, :func:`cnnlab.shapes.conv_macs`), with ``o`` from
    :func:`cnnlab.shapes.conv_output_size` on a ``size x size`` input. The defaults are
    CS231n's demo (a 5x5 input with 3 channels, padding 1, two 3x3 filters, stride 2), drawn
    step by step in :func:`cnnlab.viz.multichannel.animate_multichannel`. The drawing links
    each filter to the input channels it reads (one colour per group).

    Parameters
    ----------
    in_channels, out_channels, kernel_size, groups : int
        The initial layer.
    size, stride, padding : int
        The initial input size and the layer's stride and padding.
    bias : bool
        Whether the layer has a bias per filter.

    Returns
    -------
    MultichannelExplorer

    Examples
    --------
    >>> q = multichannel_explorer().quantities()
    >>> q["weight-shape"], q["parameters"], q["output-shape"], q["macs"]
    ('(2, 3, 3, 3)', '56', '(2, 3, 3)', '486')
    """
    return MultichannelExplorer(
        in_channels, out_channels, kernel_size, groups, size, stride, padding, bias
    )


# --------------------------------------------------------------------------- pages


def standalone_html(*explorers: Explorer, title: str = "cnnlab explorers") -> str:
    """Return a complete HTML document holding ``explorers``, for a file or a browser test.

    The document needs nothing else: open it from ``file://`` or serve it.

    Examples
    --------
    >>> page = standalone_html(conv_geometry_explorer(), atrous_explorer())
    >>> page.startswith("<!DOCTYPE html>"), page.count("data-explorer=")
    (True, 2)
    """
    for index, explorer in enumerate(explorers):
        if not isinstance(explorer, Explorer):
            raise TypeError(f"explorers[{index}] must be an Explorer, got {explorer!r}")
    body = "\n".join(explorer._repr_html_() for explorer in explorers)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n"
        '<link rel="icon" href="data:,">\n'
        f"</head>\n<body>\n{body}\n</body>\n</html>\n"
    )
