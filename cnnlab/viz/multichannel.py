r"""A convolution with several input channels and several filters, one output value at a time.

The layout of CS231n's convolution demo: the zero-padded input, one grid per channel, in the
first column; one column per filter, holding one kernel per input channel and the filter's
bias; the output, one grid per filter, in the last column. Each step highlights the window on
every input channel and the filter at work, and writes the sum that makes the current output
value:

.. math:: \text{out}(o, i, j) = b(o) + \sum_{c} \underbrace{\sum_{m} \sum_{n}
          x_p(c,\, i s_h + m,\, j s_w + n)\, w(o, c, m, n)}_{\text{channel } c}

with ``x_p`` the zero-padded input. The numbers of that sum come from :func:`output_terms`;
the numbers in the output grids come from :func:`cnnlab.numpy.conv2d`. The grids and the
animation loop are those of :mod:`cnnlab.viz.sliding`.

The figures write every value in its cell, so they are meant for small arrays: a padded input
of at most :data:`cnnlab.viz.sliding.MAX_GRID` cells on a side, at most :data:`MAX_CHANNELS`
input channels and :data:`MAX_FILTERS` filters (CS231n's example: a 5x5 input with 3
channels, padding 1, two 3x3 filters, stride 2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.animation import FuncAnimation
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.text import Text

from cnnlab.numpy import conv2d
from cnnlab.shapes import IntOrPair, check_int, pair
from cnnlab.viz.sliding import (
    CELL_COLOR,
    MAX_GRID,
    TILE_COLOR,
    animate_steps,
    check_dpi,
    format_value,
    grid_axes,
    grid_fontsize,
    light_norm,
    parenthesized,
    value_texts,
)

__all__ = [
    "MAX_CHANNELS",
    "MAX_FILTERS",
    "OutputTerms",
    "output_terms",
    "MultiChannelStep",
    "draw_multichannel_step",
    "animate_multichannel",
]

MAX_CHANNELS = 4
"""Largest number of input channels a figure draws (one row of panels each)."""

MAX_FILTERS = 3
"""Largest number of filters a figure draws (one column of panels each)."""

PAD_COLOR = (0.88, 0.88, 0.88, 1.0)


@dataclass(frozen=True)
class OutputTerms:
    r"""The terms of one output value of a multi-channel convolution.

    .. math:: \text{out}(o, i, j) = b(o) + \sum_c \sum_{m, n} \text{window}(c, m, n)\,
              \text{kernel}(c, m, n)

    Attributes
    ----------
    out_channel : int
        The filter ``o``.
    position : (int, int)
        The output cell ``(i, j)``.
    window : ndarray, shape (C_in, kh, kw)
        The input values under the kernel, zero padding included:
        ``x_p[:, i*s_h : i*s_h + kh, j*s_w : j*s_w + kw]``.
    kernel : ndarray, shape (C_in, kh, kw)
        ``weight[o]``, the filter's kernel for each input channel.
    bias : float
        ``bias[o]``.
    """

    out_channel: int
    position: tuple[int, int]
    window: np.ndarray
    kernel: np.ndarray
    bias: float

    @property
    def products(self) -> np.ndarray:
        """``window * kernel``, shape (C_in, kh, kw)."""
        return self.window * self.kernel

    @property
    def channel_sums(self) -> np.ndarray:
        """The sum of products on each input channel, shape (C_in,)."""
        return self.products.sum(axis=(1, 2))

    @property
    def value(self) -> float:
        """The output value: the channel sums added up, plus the bias."""
        return float(self.channel_sums.sum() + self.bias)

    def lines(self) -> list[str]:
        r"""The sum written out: one line per input channel, then the total.

        Examples
        --------
        >>> terms = OutputTerms(0, (0, 0), np.ones((2, 1, 2)), np.array([[[1.0, -1.0]],
        ...                     [[2.0, 0.0]]]), 0.5)
        >>> print("\n".join(terms.lines()))
        x[0]*w0[0]: 1·1 + 1·(-1) = 0
        x[1]*w0[1]: 1·2 + 1·0 = 2
        out[0](0,0) = 0 + 2 + 0.5 (bias b0) = 2.5
        """
        o = self.out_channel
        i, j = self.position
        lines = []
        for c in range(self.window.shape[0]):
            products = " + ".join(
                f"{format_value(a)}\u00b7{parenthesized(format_value(b))}"
                for a, b in zip(self.window[c].ravel(), self.kernel[c].ravel(), strict=True)
            )
            lines.append(f"x[{c}]*w{o}[{c}]: {products} = {format_value(self.channel_sums[c])}")
        sums = " + ".join(parenthesized(format_value(s)) for s in self.channel_sums)
        lines.append(
            f"out[{o}]({i},{j}) = {sums} + {parenthesized(format_value(self.bias))} (bias b{o}) "
            f"= {format_value(self.value)}"
        )
        return lines


def _check_conv(
    x: object, weight: object, bias: object, stride: IntOrPair, padding: IntOrPair
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int], tuple[int, int]]:
    x = np.asarray(x, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"x must be 3-D (C_in, H, W), got shape {x.shape}")
    if weight.ndim != 4:
        raise ValueError(f"weight must be 4-D (C_out, C_in, kh, kw), got shape {weight.shape}")
    if weight.shape[1] != x.shape[0]:
        raise ValueError(
            f"weight shape {weight.shape} does not match x shape {x.shape}: weight.shape[1] must "
            f"equal the {x.shape[0]} input channels"
        )
    c_out = weight.shape[0]
    bias = np.zeros(c_out) if bias is None else np.asarray(bias, dtype=np.float64)
    if bias.shape != (c_out,):
        raise ValueError(
            f"bias must have shape ({c_out},) for weight {weight.shape}, got {bias.shape}"
        )
    s = pair(stride, "stride")
    p = pair(padding, "padding")
    for name, value, minimum in (("stride", s, 1), ("padding", p, 0)):
        for v in value:
            check_int(name, v, minimum=minimum)
    padded = (x.shape[1] + 2 * p[0], x.shape[2] + 2 * p[1])
    if weight.shape[2] > padded[0] or weight.shape[3] > padded[1]:
        raise ValueError(
            f"kernel {weight.shape[2:]} is larger than the padded input {padded} (x shape "
            f"{x.shape}, padding {p})"
        )
    return x, weight, bias, s, p


def _pad(x: np.ndarray, padding: tuple[int, int]) -> np.ndarray:
    ph, pw = padding
    return np.pad(x, ((0, 0), (ph, ph), (pw, pw)))


def output_terms(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    o: int,
    i: int,
    j: int,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
) -> OutputTerms:
    r"""Return the terms that make output value ``out(o, i, j)`` of a multi-channel convolution.

    .. math:: \text{out}(o, i, j) = b(o) + \sum_{c} \sum_{m} \sum_{n}
              x_p(c,\, i s_h + m,\, j s_w + n)\, w(o, c, m, n)

    The window is cut from the zero-padded input ``x_p``; ``OutputTerms.value`` equals
    ``torch.nn.functional.conv2d(x[None], weight, bias, stride, padding)[0, o, i, j]``.

    Parameters
    ----------
    x : array_like, shape (C_in, H, W)
    weight : array_like, shape (C_out, C_in, kh, kw)
    bias : array_like, shape (C_out,), or None
        None means zeros.
    o, i, j : int
        Output channel (filter) and output cell.
    stride, padding : int or (int, int)

    Returns
    -------
    OutputTerms

    Raises
    ------
    ValueError
        On mismatched shapes, or an output cell outside the output.

    Examples
    --------
    >>> x = np.arange(18.0).reshape(2, 3, 3)
    >>> terms = output_terms(x, np.ones((1, 2, 2, 2)), np.array([1.0]), 0, 0, 0, padding=1)
    >>> terms.window[0]
    array([[0., 0.],
           [0., 0.]])
    >>> terms.channel_sums, terms.value
    (array([0., 9.]), 10.0)
    """
    x, weight, bias, s, p = _check_conv(x, weight, bias, stride, padding)
    kh, kw = weight.shape[2:]
    padded = _pad(x, p)
    oh = (padded.shape[1] - kh) // s[0] + 1
    ow = (padded.shape[2] - kw) // s[1] + 1
    if not (0 <= o < weight.shape[0] and 0 <= i < oh and 0 <= j < ow):
        raise ValueError(
            f"output (o, i, j) = ({o}, {i}, {j}) is outside the output of shape "
            f"({weight.shape[0]}, {oh}, {ow})"
        )
    r, c = i * s[0], j * s[1]
    window = padded[:, r : r + kh, c : c + kw]  # (C_in, kh, kw)
    return OutputTerms(o, (i, j), window.copy(), weight[o].copy(), float(bias[o]))


@dataclass
class MultiChannelStep:
    """The artists of a multi-channel convolution figure, and a method that moves it.

    Attributes
    ----------
    figure : Figure
    x, weight, bias : ndarray
        The input (C_in, H, W), the weights (C_out, C_in, kh, kw) and the biases (C_out,).
    stride, padding : (int, int)
    output : ndarray, shape (C_out, OH, OW)
        ``cnnlab.numpy.conv2d(x, weight, bias, stride, padding)``: the values written in the
        output grids.
    input_axes : list of Axes
        One per input channel, drawing the padded input (ticks count unpadded pixels, so the
        padding sits at -1 and H).
    kernel_axes : list of lists of Axes
        ``kernel_axes[o][c]`` draws ``weight[o, c]``.
    output_axes : list of Axes
        One per filter.
    input_texts, output_texts : list of lists of lists of Text
        ``[channel][row][col]``; an output text is empty until its cell is filled.
    tiles : list of Rectangle
        The window on each input channel.
    cells : list of Rectangle
        The outline of the current cell on each output grid (shown on the current one only).
    filter_frames : list of Rectangle
        A frame around each filter's column, shown on the current filter only.
    formula : Text
        The terms of the current output value (:meth:`OutputTerms.lines`).
    terms : OutputTerms
        The terms written in ``formula``.
    position : (int, int, int)
        The current ``(o, i, j)``.
    """

    figure: Figure
    x: np.ndarray
    weight: np.ndarray
    bias: np.ndarray
    stride: tuple[int, int]
    padding: tuple[int, int]
    output: np.ndarray
    input_axes: list[Axes]
    kernel_axes: list[list[Axes]]
    output_axes: list[Axes]
    input_texts: list
    output_texts: list
    tiles: list[Rectangle]
    cells: list[Rectangle]
    filter_frames: list[Rectangle]
    formula: Text
    output_images: list
    terms: OutputTerms | None = None
    position: tuple[int, int, int] = (0, 0, 0)

    def kernel_axes_flat(self) -> list[Axes]:
        """Every kernel panel, filter by filter."""
        return [ax for column in self.kernel_axes for ax in column]

    def show(self, o: int, i: int, j: int) -> list:
        """Move the figure to output value ``out(o, i, j)``.

        Output values are filled filter by filter, row by row, up to and including
        ``(o, i, j)``; the window moves to the cell's place on every input channel, the filter
        ``o`` is framed, and the formula shows :func:`output_terms`.

        Returns
        -------
        list of Artist
            The artists that changed.
        """
        c_out, oh, ow = self.output.shape
        if not (0 <= o < c_out and 0 <= i < oh and 0 <= j < ow):
            raise ValueError(
                f"output (o, i, j) = ({o}, {i}, {j}) is outside the output of shape "
                f"{self.output.shape}"
            )
        order = np.arange(c_out * oh * ow).reshape(c_out, oh, ow)
        filled = order <= (o * oh + i) * ow + j
        for f in range(c_out):
            for r in range(oh):
                for c in range(ow):
                    text = format_value(self.output[f, r, c]) if filled[f, r, c] else ""
                    self.output_texts[f][r][c].set_text(text)
            self.output_images[f].set_data(np.ma.masked_array(self.output[f], mask=~filled[f]))
            self.cells[f].set_xy((j - 0.5, i - 0.5))
            self.cells[f].set_visible(f == o)
            self.filter_frames[f].set_visible(f == o)
        for tile in self.tiles:
            tile.set_xy((j * self.stride[1] - 0.5, i * self.stride[0] - 0.5))
        self.terms = output_terms(
            self.x, self.weight, self.bias, o, i, j, self.stride, self.padding
        )
        self.formula.set_text("\n".join(self.terms.lines()))
        self.position = (o, i, j)
        texts = [t for grid in self.output_texts for row in grid for t in row]
        return [
            *self.output_images,
            *self.cells,
            *self.filter_frames,
            *self.tiles,
            self.formula,
            *texts,
        ]


def _figure_size(x: np.ndarray, weight: np.ndarray, padding: tuple[int, int]) -> tuple:
    c_in, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    hp, wp = h + 2 * padding[0], w + 2 * padding[1]
    cell = 0.22
    width = cell * (wp + (c_out + 1) * max(kw, 3)) + 0.55 * (c_out + 2)
    text_width = 0.067 * (32 + 9 * kh * kw)  # the longest formula line, 8 pt monospace
    height = c_in * (cell * hp + 0.42) + 0.15 * (c_in + 1) + 0.3
    return float(max(width, text_width)), float(height)


def _check_figure(x: np.ndarray, weight: np.ndarray, padding: tuple[int, int]) -> None:
    c_out, c_in = weight.shape[:2]
    padded = (x.shape[1] + 2 * padding[0], x.shape[2] + 2 * padding[1])
    if max(padded) > MAX_GRID:
        raise ValueError(
            f"padded input {padded} cannot be drawn: each side must be at most {MAX_GRID} cells"
        )
    if c_in > MAX_CHANNELS or c_out > MAX_FILTERS:
        raise ValueError(
            f"weight shape {weight.shape} cannot be drawn: at most {MAX_FILTERS} filters and "
            f"{MAX_CHANNELS} input channels"
        )


def _build(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    stride: IntOrPair,
    padding: IntOrPair,
    figure_factory: Callable[[tuple], Figure],
) -> MultiChannelStep:
    x, weight, bias, s, p = _check_conv(x, weight, bias, stride, padding)
    _check_figure(x, weight, p)
    output = conv2d(x, weight, bias, stride=s, padding=p)  # (C_out, OH, OW)
    c_out, c_in, kh, kw = weight.shape
    padded = _pad(x, p)  # (C_in, H + 2 ph, W + 2 pw)
    hp, wp = padded.shape[1:]
    inside = np.zeros((hp, wp), dtype=bool)
    inside[p[0] : p[0] + x.shape[1], p[1] : p[1] + x.shape[2]] = True

    figure = figure_factory(_figure_size(x, weight, p))
    column = max(kw, 3)
    grid = figure.add_gridspec(
        2,
        c_out + 2,
        width_ratios=[wp] + [column] * (c_out + 1),
        height_ratios=[c_in * (hp + 2.0), 0.7 * (c_in + 1)],
        left=0.03,
        right=0.99,
        bottom=0.01,
        top=0.95,
        wspace=0.35,
        hspace=0.08,
    )
    size = max(grid_fontsize((hp, wp)), 8.0)
    norm_in = light_norm(padded)
    cmap_in = plt.get_cmap("Blues")

    input_axes, input_texts, tiles = [], [], []
    column_in = grid[0, 0].subgridspec(c_in, 1, hspace=0.3)
    for c in range(c_in):
        ax = figure.add_subplot(column_in[c, 0])
        colours = cmap_in(norm_in(padded[c]))
        colours[~inside] = PAD_COLOR
        ax.imshow(colours)
        grid_axes(ax, (hp, wp), f"x[{c}], padded {hp}x{wp}")
        ax.set_xticks(np.arange(wp), [str(v - p[1]) for v in range(wp)])
        ax.set_yticks(np.arange(hp), [str(v - p[0]) for v in range(hp)])
        texts = value_texts(ax, padded[c], size)
        for r, c_ in zip(*np.nonzero(~inside), strict=True):
            texts[r][c_].set_color("0.5")
        tile = Rectangle(
            (-0.5, -0.5),
            kw,
            kh,
            facecolor=(1.0, 0.5, 0.05, 0.18),
            edgecolor=TILE_COLOR,
            linewidth=2.5,
        )
        ax.add_patch(tile)
        input_axes.append(ax)
        input_texts.append(texts)
        tiles.append(tile)

    kernel_axes, filter_frames = [], []
    for o in range(c_out):
        col = grid[0, 1 + o].subgridspec(c_in, 1, hspace=0.3)
        axes = []
        for c in range(c_in):
            ax = figure.add_subplot(col[c, 0])
            ax.imshow(weight[o, c], cmap="Oranges", norm=light_norm(weight[o]))
            grid_axes(ax, (kh, kw), f"w{o}[{c}]")
            value_texts(ax, weight[o, c], size)
            axes.append(ax)
        axes[-1].text(
            0.5,
            -0.12,
            f"bias b{o} = {format_value(bias[o])}",
            transform=axes[-1].transAxes,
            ha="center",
            va="top",
            fontsize=9,
        )
        kernel_axes.append(axes)
        for ax in axes:
            ax.apply_aspect()  # the drawn box of an equal-aspect image, not its grid slot
        top, bottom = axes[0].get_position(), axes[-1].get_position()
        points_x = 1 / (72 * figure.get_figwidth())  # one point, as a fraction of the figure
        points_y = 1 / (72 * figure.get_figheight())
        frame = Rectangle(
            (bottom.x0 - 14 * points_x, bottom.y0 - 22 * points_y),
            bottom.width + 20 * points_x,
            top.y1 - bottom.y0 + 52 * points_y,
            transform=figure.transFigure,
            fill=False,
            edgecolor=TILE_COLOR,
            linewidth=2.0,
            visible=False,
        )
        figure.add_artist(frame)
        filter_frames.append(frame)

    oh, ow = output.shape[1:]
    column_out = grid[0, c_out + 1].subgridspec(max(c_in, c_out), 1, hspace=0.3)
    output_axes, output_texts, output_images, cells = [], [], [], []
    for o in range(c_out):
        ax = figure.add_subplot(column_out[o, 0])
        image = ax.imshow(np.ma.masked_all((oh, ow)), cmap="Greens", norm=light_norm(output))
        grid_axes(ax, (oh, ow), f"out[{o}]  {oh}x{ow}")
        output_texts.append(value_texts(ax, np.zeros((oh, ow)), size))
        cell = Rectangle((-0.5, -0.5), 1, 1, fill=False, edgecolor=CELL_COLOR, linewidth=3)
        ax.add_patch(cell)
        output_axes.append(ax)
        output_images.append(image)
        cells.append(cell)

    text_ax = figure.add_subplot(grid[1, :])
    text_ax.set_axis_off()
    formula = text_ax.text(
        0.0, 1.0, "", transform=text_ax.transAxes, ha="left", va="top", family="monospace",
        fontsize=8,
    )  # fmt: skip
    return MultiChannelStep(
        figure,
        x,
        weight,
        bias,
        s,
        p,
        output,
        input_axes,
        kernel_axes,
        output_axes,
        input_texts,
        output_texts,
        tiles,
        cells,
        filter_frames,
        formula,
        output_images,
    )


def draw_multichannel_step(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    o: int,
    i: int,
    j: int,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
) -> MultiChannelStep:
    r"""Draw one step of a multi-channel convolution: how output value ``out(o, i, j)`` is made.

    .. math:: \text{out}(o, i, j) = b(o) + \sum_{c} \sum_{m} \sum_{n}
              x_p(c,\, i s_h + m,\, j s_w + n)\, w(o, c, m, n)

    Left, the zero-padded input, one grid per channel, with the window of ``(i, j)``
    highlighted on each; then one column per filter (a kernel per input channel, and the
    bias), the filter ``o`` framed; right, one output grid per filter, filled up to and
    including ``(o, i, j)``. Below, the sum written out by :meth:`OutputTerms.lines`.

    Parameters
    ----------
    x : array_like, shape (C_in, H, W)
    weight : array_like, shape (C_out, C_in, kh, kw)
    bias : array_like, shape (C_out,), or None
    o, i, j : int
        The output value to show.
    stride, padding : int or (int, int)

    Returns
    -------
    MultiChannelStep

    Examples
    --------
    >>> x = np.arange(18.0).reshape(2, 3, 3)
    >>> step = draw_multichannel_step(x, np.ones((2, 2, 2, 2)), [0.0, 1.0], 0, 1, 1, 2, 1)
    >>> [[t.get_text() for t in row] for row in step.output_texts[0]]
    [['9', '24'], ['36', '84']]
    >>> step.formula.get_text().splitlines()[-1]
    'out[0](1,1) = 24 + 60 + 0 (bias b0) = 84'
    >>> plt.close(step.figure)
    """
    step = _build(x, weight, bias, stride, padding, lambda size: plt.figure(figsize=size, dpi=100))
    step.show(o, i, j)
    return step


def _crisp_numbers(step: MultiChannelStep) -> None:
    """Draw grid numbers and tick labels without antialiasing (titles and formula keep it).

    At the resolution of animation frames, 8-point digits stay legible this way, and the frames
    compress to about half the bytes, since the text adds no shades of grey.
    """
    texts = [t for grid in step.input_texts + step.output_texts for row in grid for t in row]
    for ax in step.figure.axes:
        ax.tick_params(labelsize=8)
        texts += ax.get_xticklabels() + ax.get_yticklabels()
        if ax in step.kernel_axes_flat():
            texts += [t for t in ax.texts if t.get_transform() is ax.transData]
    for text in texts:
        text.set_antialiased(False)


def animate_multichannel(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    interval: int = 1000,
    dpi: int = 90,
) -> FuncAnimation:
    """Animate a multi-channel convolution, one frame per output value.

    Frame ``k`` shows ``out(o, i, j)`` with ``o, rest = divmod(k, OH * OW)`` and
    ``(i, j) = divmod(rest, OW)``, as :func:`draw_multichannel_step` draws it: the first
    filter fills its output map row by row, then the next. The figure is made without pyplot
    (display it with :func:`cnnlab.viz.embed.animation_html`); the frames are driven by the
    loop of :func:`cnnlab.viz.sliding.animate_steps`, as the single-channel animation is.

    Parameters
    ----------
    x : array_like, shape (C_in, H, W)
    weight : array_like, shape (C_out, C_in, kh, kw)
    bias : array_like, shape (C_out,), or None
    stride, padding : int or (int, int)
    interval : int
        Milliseconds between frames.
    dpi : int
        Resolution of the frames; the default keeps ``to_jshtml()`` small.

    Returns
    -------
    FuncAnimation
        With ``C_out * OH * OW`` frames; ``anim.step`` is the :class:`MultiChannelStep`.

    Examples
    --------
    >>> x = np.ones((2, 2, 2))
    >>> anim = animate_multichannel(x, np.ones((2, 2, 2, 2)), [0.0, 1.0], stride=2, padding=1,
    ...                             dpi=20)
    >>> len(list(anim.new_frame_seq()))
    8
    >>> anim.to_jshtml().count("data:image/png;base64")
    8
    """
    check_dpi(dpi)
    step = _build(x, weight, bias, stride, padding, lambda size: Figure(figsize=size, dpi=dpi))
    _crisp_numbers(step)
    c_out, oh, ow = step.output.shape

    def where(k: int) -> tuple[int, int, int]:
        o, rest = divmod(k, oh * ow)
        return (o, *divmod(rest, ow))

    return animate_steps(step, c_out * oh * ow, where, interval)
