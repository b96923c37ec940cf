"""An ipywidgets explorer of the output-size law, and its static stand-in for the HTML book.

:func:`conv_explorer` shows sliders for input size, kernel size, stride, padding and dilation,
plus one that picks the output cell to highlight; every change redraws the
:func:`cnnlab.viz.geometry.draw_conv_geometry` diagram and prints the output size that
:func:`cnnlab.shapes.conv_output_size` gives. The work is done by the plain function
:func:`explorer_outputs`, which a test (or a reader) can call without a browser.
:func:`explorer_gallery` draws the same diagram for several slider settings at once, for pages
where no Python kernel runs.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from cnnlab.shapes import conv_output_size, effective_kernel_size
from cnnlab.viz.geometry import draw_conv_geometry

__all__ = ["ConvExplorer", "conv_explorer", "explorer_text", "explorer_outputs", "explorer_gallery"]

PARAMETERS = ("input_size", "kernel_size", "stride", "padding", "dilation")
_RANGES = {  # (min, max) of each slider
    "input_size": (1, 12),
    "kernel_size": (1, 7),
    "stride": (1, 4),
    "padding": (0, 4),
    "dilation": (1, 4),
}


def explorer_text(
    input_size: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> str:
    """Return the explorer's printed line: the output-size law filled in, or why there is none.

    Examples
    --------
    >>> print(explorer_text(7, 3, stride=2, padding=1))
    o = floor((7 + 2*1 - 1*(3 - 1) - 1) / 2) + 1 = 4, so the output is 4x4 (effective kernel 3)
    >>> print(explorer_text(3, 5))
    no output: the kernel spans 5 pixels but the padded input has only 3 (3 + 2*0)
    """
    i, k, s, p, d = input_size, kernel_size, stride, padding, dilation
    span = effective_kernel_size(k, d)
    if span > i + 2 * p:
        return (
            f"no output: the kernel spans {span} pixels but the padded input has only "
            f"{i + 2 * p} ({i} + 2*{p})"
        )
    o = conv_output_size(i, k, s, p, d)
    return (
        f"o = floor(({i} + 2*{p} - {d}*({k} - 1) - 1) / {s}) + 1 = {o}, "
        f"so the output is {o}x{o} (effective kernel {span})"
    )


def _figure_png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=72)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def explorer_outputs(
    input_size: int,
    kernel_size: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    step: int = 0,
) -> tuple[dict, ...]:
    r"""Return what the explorer shows for one slider setting, as Jupyter output records.

    Parameters
    ----------
    input_size, kernel_size, stride, padding, dilation : int
        Slider values (square input and kernel).
    step : int
        Index of the highlighted output cell, row-major; clipped to the last cell.

    Returns
    -------
    tuple of dict
        A ``stream`` record with :func:`explorer_text`'s line, then, when the output is not
        empty, a ``display_data`` record holding the diagram as a base64 PNG: the form that
        ``ipywidgets.Output.outputs`` takes.

    Examples
    --------
    >>> records = explorer_outputs(5, 3, padding=1, step=100)
    >>> [r["output_type"] for r in records]
    ['stream', 'display_data']
    >>> records[0]["text"]
    'o = floor((5 + 2*1 - 1*(3 - 1) - 1) / 1) + 1 = 5, so the output is 5x5 (effective kernel 3)\n'
    """
    text = explorer_text(input_size, kernel_size, stride, padding, dilation)
    records: list[dict] = [{"output_type": "stream", "name": "stdout", "text": text + "\n"}]
    if text.startswith("no output"):
        return tuple(records)
    o = conv_output_size(input_size, kernel_size, stride, padding, dilation)
    step = min(max(step, 0), o * o - 1)
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    draw_conv_geometry(input_size, kernel_size, stride, padding, dilation, step=step, ax=ax)
    fig.tight_layout()
    png = _figure_png(fig)
    plt.close(fig)
    records.append(
        {
            "output_type": "display_data",
            "data": {"image/png": png, "text/plain": "<conv geometry diagram>"},
            "metadata": {},
        }
    )
    return tuple(records)


class ConvExplorer(widgets.VBox):
    """The explorer widget: sliders above, diagram and output size below.

    Attributes
    ----------
    sliders : dict of str to ipywidgets.IntSlider
        One per name in ``PARAMETERS``, plus ``"cell"`` (the highlighted output cell).
    output : ipywidgets.Output
        Holds the printed line and the diagram; :meth:`refresh` rewrites it.
    """

    def __init__(self, **values: int) -> None:
        unknown = set(values) - set(PARAMETERS)
        if unknown:
            raise TypeError(f"unknown explorer parameter(s) {sorted(unknown)}; use {PARAMETERS}")
        self.sliders: dict[str, widgets.IntSlider] = {}
        for name in PARAMETERS:
            low, high = _RANGES[name]
            value = values.get(name, {"input_size": 7, "kernel_size": 3}.get(name, low))
            if not low <= value <= high:
                raise ValueError(f"{name} must be in [{low}, {high}], got {value!r}")
            self.sliders[name] = widgets.IntSlider(
                value=value,
                min=low,
                max=high,
                description=name.replace("_", " "),
                continuous_update=False,
            )
        self.sliders["cell"] = widgets.IntSlider(
            value=0, min=0, max=0, description="output cell", continuous_update=False
        )
        self.output = widgets.Output()
        self._refreshing = False
        for slider in self.sliders.values():
            slider.observe(self.refresh, names="value")
        controls = widgets.HBox(
            [
                widgets.VBox([self.sliders[n] for n in ("input_size", "kernel_size", "stride")]),
                widgets.VBox([self.sliders[n] for n in ("padding", "dilation", "cell")]),
            ]
        )
        super().__init__([controls, self.output])
        self.refresh()

    def values(self) -> dict[str, int]:
        """Return the current slider values (without ``cell``)."""
        return {name: self.sliders[name].value for name in PARAMETERS}

    def refresh(self, change: Mapping | None = None) -> None:
        """Redraw: the callback every slider calls. Sets ``self.output.outputs``."""
        if self._refreshing:  # changing the cell slider's range below calls back here
            return
        self._refreshing = True
        try:
            values = self.values()
            cell = self.sliders["cell"]
            text = explorer_text(**values)
            if text.startswith("no output"):
                cell.max = 0
            else:
                o = conv_output_size(*values.values())
                cell.max = o * o - 1  # ipywidgets clips the value to the new max
            self.output.outputs = explorer_outputs(**values, step=cell.value)
        finally:
            self._refreshing = False


def conv_explorer(
    input_size: int = 7, kernel_size: int = 3, stride: int = 1, padding: int = 0, dilation: int = 1
) -> ConvExplorer:
    """Return the live explorer widget (display it as a notebook cell's last value).

    Examples
    --------
    >>> explorer = conv_explorer(input_size=5)
    >>> explorer.sliders["padding"].value = 1
    >>> explorer.output.outputs[0]["text"].split(", so")[0]
    'o = floor((5 + 2*1 - 1*(3 - 1) - 1) / 1) + 1 = 5'
    """
    return ConvExplorer(
        input_size=input_size,
        kernel_size=kernel_size,
        stride=stride,
        padding=padding,
        dilation=dilation,
    )


def explorer_gallery(
    settings: Sequence[Mapping[str, int]], ncols: int = 3, step: int = 0
) -> Figure:
    """Draw the explorer's diagram for several slider settings in one figure.

    The static stand-in for :func:`conv_explorer` on pages where no kernel runs.

    Parameters
    ----------
    settings : sequence of mappings
        Each has keys from ``PARAMETERS`` (``input_size`` and ``kernel_size`` required).
    ncols : int
        Diagrams per row.
    step : int
        Output cell highlighted in each diagram (clipped to the last one).

    Returns
    -------
    matplotlib Figure
        One panel per setting, titled with :func:`explorer_text`'s output size.

    Examples
    --------
    >>> fig = explorer_gallery([dict(input_size=5, kernel_size=3, padding=p) for p in (0, 1)])
    >>> len([ax for ax in fig.axes if ax.patches])
    2
    >>> plt.close(fig)
    """
    if not settings:
        raise ValueError("settings must hold at least one slider setting")
    nrows = -(-len(settings) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.0 * ncols, 2.4 * nrows), squeeze=False)
    for ax in axes.flat[len(settings) :]:
        ax.axis("off")
    for ax, setting in zip(axes.flat, settings, strict=False):
        unknown = set(setting) - set(PARAMETERS)
        if unknown:
            raise ValueError(f"unknown parameter(s) {sorted(unknown)} in setting {dict(setting)}")
        args = [
            setting.get(name, default)
            for name, default in zip(PARAMETERS, (None, None, 1, 0, 1), strict=True)
        ]
        o = conv_output_size(*args)
        draw_conv_geometry(*args, step=min(step, o * o - 1), ax=ax, formula=False)
        ax.set_title("i={} k={} s={} p={} d={}  ->  o={}".format(*args, o), fontsize=9)
    fig.tight_layout()
    return fig
