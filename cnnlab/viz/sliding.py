"""Figures and an animation of a kernel sliding over an input and filling the output map.

Every number drawn in an output grid comes from :func:`cnnlab.numpy.corr2d`; nothing here
computes a convolution of its own. The sum of products written under the figure lists the
input and kernel values of the current tile, and its total is ``corr2d``'s value for that cell.

The figures draw every value as text, so they are meant for small arrays (at most
:data:`MAX_GRID` cells on a side), such as a 5x5 input and a 3x3 kernel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.animation import FuncAnimation
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.patches import Rectangle
from matplotlib.text import Text

from cnnlab.numpy import corr2d

__all__ = [
    "MAX_GRID",
    "CorrelationStep",
    "format_value",
    "draw_correlation_step",
    "animate_correlation",
    "draw_tile_positions",
    "animate_steps",
    "check_dpi",
    "grid_axes",
    "grid_fontsize",
    "light_norm",
    "parenthesized",
    "value_texts",
]

MAX_GRID = 16
"""Largest number of rows or columns a grid figure draws (each cell holds a number)."""

TILE_COLOR = "tab:orange"
CELL_COLOR = "tab:red"


def format_value(value: float, digits: int = 4) -> str:
    """Write a number as it appears in a grid cell: integers without a decimal point.

    Parameters
    ----------
    value : float
        The number.
    digits : int
        Significant digits for non-integers.

    Returns
    -------
    str

    Examples
    --------
    >>> format_value(12.0), format_value(-3.0), format_value(0.125), format_value(2 / 3)
    ('12', '-3', '0.125', '0.6667')
    """
    value = float(value)
    if value == round(value) and abs(value) < 1e15:
        return str(int(round(value)))
    return f"{value:.{digits}g}"


def _check_grid(name: str, array: object) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {array.shape}")
    if min(array.shape) < 1 or max(array.shape) > MAX_GRID:
        raise ValueError(
            f"{name} shape {array.shape} cannot be drawn: each side must be between 1 and "
            f"{MAX_GRID} cells"
        )
    return array


def _check_pair(image: np.ndarray, kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    image = _check_grid("image", image)
    kernel = _check_grid("kernel", kernel)
    if kernel.shape[0] > image.shape[0] or kernel.shape[1] > image.shape[1]:
        raise ValueError(f"kernel shape {kernel.shape} is larger than image shape {image.shape}")
    return image, kernel


def light_norm(values: np.ndarray) -> Normalize:
    """A colour scale that keeps every cell light enough for black text on it."""
    low, high = float(np.min(values)), float(np.max(values))
    spread = max(high - low, 1e-12)
    return Normalize(vmin=low - 0.25 * spread, vmax=high + 1.5 * spread)


def grid_axes(ax: Axes, shape: tuple[int, int], title: str) -> None:
    """Set up ``ax`` to show a ``(rows, cols)`` grid of numbers: one tick per cell, row 0 on
    top, cell borders, and ``title``."""
    rows, cols = shape
    ax.set_xticks(np.arange(cols))
    ax.set_yticks(np.arange(rows))
    ax.set_xticks(np.arange(cols + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(rows + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="0.35", linewidth=0.8)
    ax.tick_params(which="both", length=0, labelsize=7, colors="0.4")
    ax.xaxis.tick_top()
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
    ax.set_title(title, fontsize=10, pad=14)


def value_texts(ax: Axes, values: np.ndarray, fontsize: float) -> list[list[Text]]:
    """Write each value of the 2-D ``values`` in its cell of ``ax``; return the texts by row."""
    return [
        [
            ax.text(c, r, format_value(values[r, c]), ha="center", va="center", fontsize=fontsize)
            for c in range(values.shape[1])
        ]
        for r in range(values.shape[0])
    ]


def grid_fontsize(shape: tuple[int, int]) -> float:
    """Font size, in points, of the numbers in a grid of ``shape``: 40 / its longer side,
    between 8 and 11."""
    return float(np.clip(40 / max(shape), 8, 11))


@dataclass
class CorrelationStep:
    """The artists of a correlation figure, and a method that moves it to another output cell.

    Attributes
    ----------
    figure : Figure
    axes : (Axes, Axes, Axes)
        Input, kernel and output panels.
    output : ndarray, shape (H - kh + 1, W - kw + 1)
        ``corr2d(image, kernel)``: the values written in the output grid.
    input_texts, kernel_texts, output_texts : list of lists of Text
        One text per cell, indexed ``[row][col]``. An output text is empty until its cell is
        filled.
    tile : Rectangle
        The highlighted tile on the input.
    cell : Rectangle
        The highlight of the current output cell.
    output_image : AxesImage
        Colours of the output grid; unfilled cells are masked.
    formula : Text
        The sum of products for the current cell.
    position : (int, int)
        The current output cell ``(i, j)``.
    """

    figure: Figure
    axes: tuple[Axes, Axes, Axes]
    image: np.ndarray
    kernel: np.ndarray
    output: np.ndarray
    input_texts: list[list[Text]]
    kernel_texts: list[list[Text]]
    output_texts: list[list[Text]]
    tile: Rectangle
    cell: Rectangle
    output_image: AxesImage
    formula: Text
    position: tuple[int, int] = (0, 0)

    def sum_of_products(self, i: int, j: int) -> str:
        """Write out ``S(i, j)`` as the products of the tile's values and the kernel's.

        One line per kernel row; the total is ``corr2d``'s value for cell ``(i, j)``.
        """
        kh, kw = self.kernel.shape
        lines = []
        for m in range(kh):
            terms = [
                f"{format_value(self.image[i + m, j + n])}\u00b7"
                f"{parenthesized(format_value(self.kernel[m, n]))}"
                for n in range(kw)
            ]
            lines.append(" + ".join(terms))
        head = f"S({i},{j}) = "
        pad = " " * (len(head) - 2) + "+ "
        body = head + ("\n" + pad).join(lines)
        return f"{body}\n{' ' * (len(head) - 2)}= {format_value(self.output[i, j])}"

    def show(self, i: int, j: int) -> list:
        """Move the figure to output cell ``(i, j)``: outputs up to it (row by row) are filled.

        Returns
        -------
        list of Artist
            The artists that changed.
        """
        oh, ow = self.output.shape
        if not (0 <= i < oh and 0 <= j < ow):
            raise ValueError(
                f"output cell (i, j) = ({i}, {j}) is outside the output of shape "
                f"{self.output.shape}"
            )
        filled = np.arange(oh * ow).reshape(oh, ow) <= i * ow + j
        for r in range(oh):
            for c in range(ow):
                text = format_value(self.output[r, c]) if filled[r, c] else ""
                self.output_texts[r][c].set_text(text)
        self.output_image.set_data(np.ma.masked_array(self.output, mask=~filled))
        self.tile.set_xy((j - 0.5, i - 0.5))
        self.cell.set_xy((j - 0.5, i - 0.5))
        self.formula.set_text(self.sum_of_products(i, j))
        self.position = (i, j)
        changed = [self.output_image, self.tile, self.cell, self.formula]
        return changed + [t for row in self.output_texts for t in row]


def parenthesized(text: str) -> str:
    """``text`` in parentheses when it is a negative number, as a factor of a product."""
    return f"({text})" if text.startswith("-") else text


def _build(
    image: np.ndarray, kernel: np.ndarray, axes: Sequence[Axes] | None, figure_factory
) -> CorrelationStep:
    image, kernel = _check_pair(image, kernel)
    output = corr2d(image, kernel)
    if axes is None:
        figure = figure_factory()
        widths = [image.shape[1], max(kernel.shape[1], 2), output.shape[1]]
        heights = [image.shape[0] * 0.5, (kernel.shape[0] + 1) * 0.2]
        grid = figure.add_gridspec(
            2,
            3,
            width_ratios=widths,
            height_ratios=heights,
            left=0.04,
            right=0.98,
            bottom=0.02,
            top=0.9,
            wspace=0.3,
            hspace=0.12,
        )
        axes = tuple(figure.add_subplot(grid[0, k]) for k in range(3))
        text_ax = figure.add_subplot(grid[1, :])
        text_ax.set_axis_off()
        formula_xy, formula_ax = (0.0, 1.0), text_ax
    else:
        axes = tuple(axes)
        if len(axes) != 3:
            raise ValueError(f"axes must be three Axes (input, kernel, output), got {len(axes)}")
        figure = axes[0].figure
        formula_xy, formula_ax = (0.0, -0.08), axes[0]
    ax_in, ax_k, ax_out = axes
    size = grid_fontsize(image.shape)
    ax_in.imshow(image, cmap="Blues", norm=light_norm(image))
    grid_axes(ax_in, image.shape, f"input I  {image.shape[0]}x{image.shape[1]}")
    input_texts = value_texts(ax_in, image, size)
    kh, kw = kernel.shape
    tile = Rectangle(
        (-0.5, -0.5),
        kw,
        kh,
        fill=True,
        facecolor=(1.0, 0.5, 0.05, 0.18),
        edgecolor=TILE_COLOR,
        linewidth=3.5,
    )
    ax_in.add_patch(tile)
    ax_k.imshow(kernel, cmap="Oranges", norm=light_norm(kernel))
    grid_axes(ax_k, kernel.shape, f"kernel K  {kh}x{kw}")
    kernel_texts = value_texts(ax_k, kernel, size)
    empty = np.ma.masked_all(output.shape)
    output_image = ax_out.imshow(empty, cmap="Greens", norm=light_norm(output))
    grid_axes(ax_out, output.shape, f"output S  {output.shape[0]}x{output.shape[1]}")
    output_texts = value_texts(ax_out, np.zeros(output.shape), size)
    cell = Rectangle((-0.5, -0.5), 1, 1, fill=False, edgecolor=CELL_COLOR, linewidth=3)
    ax_out.add_patch(cell)
    formula = formula_ax.text(
        *formula_xy,
        "",
        transform=formula_ax.transAxes,
        ha="left",
        va="top",
        family="monospace",
        fontsize=9,
    )
    step = CorrelationStep(
        figure,
        (ax_in, ax_k, ax_out),
        image,
        kernel,
        output,
        input_texts,
        kernel_texts,
        output_texts,
        tile,
        cell,
        output_image,
        formula,
    )
    return step


def _figure_size(image: np.ndarray, kernel: np.ndarray) -> tuple[float, float]:
    cells = image.shape[1] + max(kernel.shape[1], 2) + image.shape[1] - kernel.shape[1] + 1
    width = float(np.clip(0.5 * cells + 1.5, 6.0, 12.0))
    height = 0.5 * image.shape[0] + 0.2 * (kernel.shape[0] + 1) + 0.8
    return width, float(np.clip(height, 2.5, 9.0))


def draw_correlation_step(
    image: np.ndarray,
    kernel: np.ndarray,
    i: int,
    j: int,
    axes: Sequence[Axes] | None = None,
) -> CorrelationStep:
    r"""Draw one step of the cross-correlation ``S = corr2d(image, kernel)`` at output cell (i, j).

    .. math:: S(i, j) = \sum_m \sum_n I(i + m, j + n)\, K(m, n)

    Three panels: the input ``I`` with every value written in its cell and the tile under the
    kernel highlighted; the kernel ``K``; the output ``S`` filled row by row up to and including
    ``(i, j)``, the current cell outlined. Below, the sum of products for ``S(i, j)``.

    Parameters
    ----------
    image : array_like, shape (H, W)
        At most ``MAX_GRID`` cells on a side.
    kernel : array_like, shape (kh, kw)
        With kh <= H and kw <= W.
    i, j : int
        The output cell, ``0 <= i <= H - kh`` and ``0 <= j <= W - kw``.
    axes : three Axes, optional
        Where to draw the input, kernel and output. By default a new pyplot figure.

    Returns
    -------
    CorrelationStep
        The figure, its artists, and ``output`` (``corr2d(image, kernel)``).

    Examples
    --------
    >>> image = np.arange(16.0).reshape(4, 4)
    >>> step = draw_correlation_step(image, np.ones((3, 3)), 1, 0)
    >>> [[t.get_text() for t in row] for row in step.output_texts]
    [['45', '54'], ['81', '']]
    >>> plt.close(step.figure)
    """
    image, kernel = _check_pair(image, kernel)
    step = _build(
        image, kernel, axes, lambda: plt.figure(figsize=_figure_size(image, kernel), dpi=100)
    )
    step.show(i, j)
    return step


def animate_correlation(
    image: np.ndarray, kernel: np.ndarray, interval: int = 700, dpi: int = 90
) -> FuncAnimation:
    """Animate the kernel sliding over the input, one frame per output cell.

    Frame ``k`` shows output cell ``divmod(k, W - kw + 1)``, as :func:`draw_correlation_step`
    draws it: the tile moves one pixel to the right each frame, and down one row at the end of
    a row. The figure is made without pyplot, so a notebook shows only what you display, for
    example ``HTML(anim.to_jshtml())``. Keep inputs small (5x5 with a 3x3 kernel makes 9 frames).

    Parameters
    ----------
    image : array_like, shape (H, W)
    kernel : array_like, shape (kh, kw)
    interval : int
        Milliseconds between frames.
    dpi : int
        Resolution of the frames; the default keeps ``to_jshtml()`` small.

    Returns
    -------
    FuncAnimation
        With ``(H - kh + 1) * (W - kw + 1)`` frames. ``anim.step`` is the
        :class:`CorrelationStep` it updates.

    Examples
    --------
    >>> anim = animate_correlation(np.arange(9.0).reshape(3, 3), np.eye(2), dpi=20)
    >>> len(list(anim.new_frame_seq()))
    4
    >>> anim.to_jshtml().count("data:image/png;base64")
    4
    """
    image, kernel = _check_pair(image, kernel)
    check_dpi(dpi)
    step = _build(image, kernel, None, lambda: Figure(figsize=_figure_size(image, kernel), dpi=dpi))
    ow = step.output.shape[1]
    return animate_steps(step, step.output.size, lambda k: divmod(k, ow), interval)


def check_dpi(dpi: int) -> None:
    """Refuse a frame resolution too low to read (below 10 dots per inch)."""
    if dpi < 10:
        raise ValueError(f"dpi must be at least 10, got {dpi}")


def animate_steps(step, frames: int, where, interval: int) -> FuncAnimation:
    """Animate a step figure: frame ``k`` calls ``step.show(*where(k))``.

    The one animation loop of the sliding-window figures (:func:`animate_correlation` and
    :func:`cnnlab.viz.multichannel.animate_multichannel`): the figure is first moved to frame
    0, then each frame moves it to the next position, looping.

    Parameters
    ----------
    step : object with a ``figure`` and a ``show(*position) -> list of Artist`` method
    frames : int
        Number of frames.
    where : callable
        Frame index to the arguments of ``step.show``.
    interval : int
        Milliseconds between frames.

    Returns
    -------
    FuncAnimation
        ``anim.step`` is ``step``.
    """

    def update(k: int) -> list:
        return step.show(*where(int(k)))

    step.show(*where(0))
    anim = FuncAnimation(
        step.figure, update, frames=frames, interval=interval, blit=False, repeat=True
    )
    anim.step = step
    return anim


def draw_tile_positions(
    input_size: int,
    kernel_size: int,
    positions: Sequence[tuple[int, int]],
    axes: Sequence[Axes] | None = None,
) -> list[Rectangle]:
    """Draw a ``kernel_size`` tile at several positions of an ``input_size`` square grid.

    One panel per position, to show a tile sliding one pixel at a time. The position ``(i, j)``
    is the tile's top-left cell, which is also the output cell the tile produces.

    Parameters
    ----------
    input_size, kernel_size : int
        Sides of the input grid and of the tile, ``kernel_size <= input_size``.
    positions : sequence of (int, int)
        Top-left cells, each with ``0 <= i, j <= input_size - kernel_size``.
    axes : sequence of Axes, optional
        One per position. By default a new pyplot figure with one row of panels.

    Returns
    -------
    list of Rectangle
        The tile drawn in each panel, in order.

    Examples
    --------
    >>> rects = draw_tile_positions(7, 3, [(0, 0), (0, 1), (1, 0)])
    >>> [r.get_xy() for r in rects]
    [(-0.5, -0.5), (0.5, -0.5), (-0.5, 0.5)]
    >>> plt.close("all")
    """
    if kernel_size < 1 or input_size < kernel_size or input_size > MAX_GRID:
        raise ValueError(
            f"need 1 <= kernel_size <= input_size <= {MAX_GRID}, got input_size={input_size}, "
            f"kernel_size={kernel_size}"
        )
    last = input_size - kernel_size
    for i, j in positions:
        if not (0 <= i <= last and 0 <= j <= last):
            raise ValueError(
                f"tile position ({i}, {j}) does not fit: a {kernel_size}x{kernel_size} tile on a "
                f"{input_size}x{input_size} input starts at 0..{last}"
            )
    if axes is None:
        _, axes = plt.subplots(
            1, len(positions), figsize=(2.3 * len(positions), 2.6), dpi=100, squeeze=False
        )
        axes = axes[0]
    axes = list(axes)
    if len(axes) != len(positions):
        raise ValueError(
            f"need one Axes per position: {len(positions)} positions, {len(axes)} axes"
        )
    rects = []
    for ax, (i, j) in zip(axes, positions, strict=True):
        ax.imshow(np.zeros((input_size, input_size)), cmap="Greys", vmin=0, vmax=1)
        grid_axes(ax, (input_size, input_size), f"tile at ({i}, {j})")
        rect = Rectangle(
            (j - 0.5, i - 0.5),
            kernel_size,
            kernel_size,
            facecolor=(1.0, 0.5, 0.05, 0.3),
            edgecolor=TILE_COLOR,
            linewidth=2.5,
        )
        ax.add_patch(rect)
        ax.plot(j, i, "o", color=CELL_COLOR, markersize=5)
        rects.append(rect)
    return rects
