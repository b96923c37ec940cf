r"""Where a convolution's kernel lands: padding, stride, dilation and transposed convolution drawn.

One picture explains every case. For a convolution, output cell ``(r, c)`` reads the input cells

.. math:: (r s - p + m d,\; c s - p + n d), \qquad 0 \le m, n < k,

some of which fall in the zero padding (row or column ``< 0`` or ``>= i``). A transposed
convolution runs the same geometry backwards: input cell ``(r, c)`` *scatters* into the output
cells given by the very same expression, and those that land outside ``[0, o)`` are cropped.

:func:`conv_geometry_steps` computes those cells, :func:`draw_conv_geometry` draws one step,
and :func:`animate_conv_geometry` animates all of them; every case in the book (no, same and
full padding, stride, dilation, transposed convolution) goes through these three functions.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
from matplotlib.animation import FuncAnimation
from matplotlib.axes import Axes
from matplotlib.patches import Rectangle

from cnnlab.geometry import IntOrPair, Window, pair
from cnnlab.shapes import transposed_output_size

__all__ = ["GeometryStep", "conv_geometry_steps", "draw_conv_geometry", "animate_conv_geometry"]

Cell = tuple[int, int]

# Colours (colour-blind safe pairs from matplotlib's tab10).
_INPUT = "#9ecae1"
_PAD = "white"
_TAP = "#08519c"
_OUTPUT = "#c7e9c0"
_DONE = "#74c476"
_TARGET = "#e6550d"
_GAP = 2.0  # empty columns between the two panels


@dataclass(frozen=True)
class GeometryStep:
    """One step of the animation.

    Attributes
    ----------
    cell : (int, int)
        For a convolution, the output cell being written; for a transposed convolution, the
        input cell being scattered.
    taps : tuple of (int, int)
        The ``k_h * k_w`` cells the kernel touches, row-major: input cells (padding included,
        so indices may be negative or ``>= i``) for a convolution, output cells (cropped ones
        included) for a transposed convolution.
    """

    cell: Cell
    taps: tuple[Cell, ...]


@dataclass(frozen=True)
class _Diagram:
    """What one diagram shows: a window, which way it runs, and the two sizes."""

    window: Window
    transposed: bool
    input_size: Cell
    output_size: Cell
    output_padding: Cell


def _resolve(
    input_size: IntOrPair,
    kernel_size: IntOrPair,
    stride: IntOrPair,
    padding: IntOrPair,
    dilation: IntOrPair,
    transposed: bool,
    output_padding: IntOrPair,
) -> _Diagram:
    i = pair(input_size, "input_size", minimum=1)
    window = Window(kernel_size, stride, pair(padding, "padding"), dilation)
    op = pair(output_padding, "output_padding")
    if transposed:
        o = pair(transposed_output_size(i, kernel_size, stride, padding, op, dilation))
    else:
        if op != (0, 0):
            raise ValueError(
                f"output_padding applies only to a transposed convolution, got {output_padding!r}"
            )
        o = window.output_size(i)
    return _Diagram(window, transposed, i, o, op)


def _steps(g: _Diagram) -> list[GeometryStep]:
    """One step per output cell (per input cell, transposed): the cells the window touches."""
    rows, cols = g.input_size if g.transposed else g.output_size
    return [GeometryStep((r, c), g.window.taps((r, c))) for r in range(rows) for c in range(cols)]


def conv_geometry_steps(
    input_size: IntOrPair,
    kernel_size: IntOrPair,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    transposed: bool = False,
    output_padding: IntOrPair = 0,
) -> list[GeometryStep]:
    """Return, cell by cell, which cells a convolution's kernel touches.

    For a convolution there is one step per output cell, in row-major order, and its taps are
    the input cells ``(r s - p + m d, c s - p + n d)`` it reads. For a transposed convolution
    there is one step per input cell, and its taps are the output cells it adds into (same
    expression; cells outside the output are the ones the padding crops).

    Parameters
    ----------
    input_size, kernel_size, stride, padding, dilation : int or (int, int)
        As in :func:`cnnlab.shapes.conv_output_size`.
    transposed : bool
        Describe the transposed convolution with these parameters instead.
    output_padding : int or (int, int)
        Transposed convolution only: extra output rows/columns at the end.

    Returns
    -------
    list of GeometryStep
        ``o_h * o_w`` steps for a convolution, ``i_h * i_w`` for a transposed one.

    Examples
    --------
    >>> steps = conv_geometry_steps(5, 3, stride=2, padding=1)
    >>> len(steps), steps[0].cell, steps[0].taps[:3]
    (9, (0, 0), ((-1, -1), (-1, 0), (-1, 1)))
    >>> len(conv_geometry_steps(3, 3, stride=2, transposed=True))
    9
    """
    g = _resolve(input_size, kernel_size, stride, padding, dilation, transposed, output_padding)
    return _steps(g)


def _extent(g: _Diagram, steps: list[GeometryStep]) -> tuple[Cell, Cell]:
    """Rows and columns spanned by the big panel: the real cells plus everything a tap hits."""
    real = g.output_size if g.transposed else g.input_size
    lo = [0, 0]
    hi = [real[0], real[1]]
    for step in steps:
        for tap in step.taps:
            for axis in range(2):
                lo[axis] = min(lo[axis], tap[axis])
                hi[axis] = max(hi[axis], tap[axis] + 1)
    if not g.transposed:  # the padded input, even where the stride skips the last pixels
        for axis in range(2):
            lo[axis] = min(lo[axis], -g.window.padding[axis][0])
            hi[axis] = max(hi[axis], real[axis] + g.window.padding[axis][1])
    return (lo[0], lo[1]), (hi[0], hi[1])


def _short(value: Cell) -> str:
    return str(value[0]) if value[0] == value[1] else f"{value[0]}x{value[1]}"


def _formula(g: _Diagram) -> str:
    w = g.window
    pads = w.start_padding

    def one(a: int) -> str:
        i, k, s, p, d, o = (
            x[a] for x in (g.input_size, w.kernel_size, w.stride, pads, w.dilation, g.output_size)
        )
        if g.transposed:
            op = g.output_padding[a]
            return f"({i}-1)·{s} - 2·{p} + {d}·({k}-1) + {op} + 1 = {o}"
        return f"⌊({i} + 2·{p} - {d}·({k}-1) - 1) / {s}⌋ + 1 = {o}"

    law = (
        "o = (i-1)s - 2p + d(k-1) + output_padding + 1"
        if g.transposed
        else "o = ⌊(i + 2p - d(k-1) - 1) / s⌋ + 1"
    )
    if all(
        x[0] == x[1]
        for x in (g.input_size, w.kernel_size, w.stride, pads, w.dilation, g.output_padding)
    ):
        return f"{law}\n{one(0)}"
    return f"{law}\nrows: {one(0)}    columns: {one(1)}"


class _Drawing:
    """The patches of one geometry diagram, made once; :meth:`show` paints a step.

    Making the patches once and only recolouring them per frame keeps animations fast.
    """

    def __init__(self, g: _Diagram, ax: Axes, formula: bool) -> None:
        self.g, self.ax = g, ax
        self.steps = _steps(g)
        (lo_r, lo_c), (hi_r, hi_c) = _extent(g, self.steps)
        self.lo_r = lo_r
        small = g.input_size if g.transposed else g.output_size
        big_width = hi_c - lo_c
        # Input on the left, output on the right; the big panel's cell (lo_r, lo_c) at top left.
        if g.transposed:
            small_x, self.big_x = 0.0, small[1] + _GAP - lo_c
        else:
            self.big_x, small_x = float(-lo_c), big_width + _GAP
        self._big_panel(range(lo_r, hi_r), range(lo_c, hi_c))
        self.small: dict[Cell, Rectangle] = {}
        for r in range(small[0]):
            for c in range(small[1]):
                patch = Rectangle((small_x + c, r), 1, 1, edgecolor="0.3", linewidth=1.0)
                self.small[(r, c)] = ax.add_patch(patch)
        self.span = ax.add_patch(
            Rectangle((0, 0), 1, 1, fill=False, edgecolor=_TARGET, linewidth=2, gid="span")
        )
        big = (self.big_x + lo_c, big_width)
        left, right = ((small_x, small[1]), big) if g.transposed else (big, (small_x, small[1]))
        self._captions(left, right, max(hi_r - lo_r, small[0]), formula)
        w = g.window
        kind = "transposed convolution" if g.transposed else "convolution"
        self.title = (
            f"{kind}: k={_short(w.kernel_size)} s={_short(w.stride)} "
            f"p={_short(w.start_padding)} d={_short(w.dilation)}"
            + (f" output_padding={_short(g.output_padding)}" if g.transposed else "")
        )

    def _big_panel(self, rows: range, cols: range) -> None:
        """The padded input (or the output, transposed): solid cells inside, dashed outside."""
        g, ax = self.g, self.ax
        real = g.output_size if g.transposed else g.input_size
        self.big: dict[Cell, Rectangle] = {}
        self.inside: dict[Cell, bool] = {}
        self.labels = {}
        for r in rows:
            for c in cols:
                inside = 0 <= r < real[0] and 0 <= c < real[1]
                self.inside[(r, c)] = inside
                patch = Rectangle(
                    (self.big_x + c, r - self.lo_r),
                    1,
                    1,
                    linewidth=1.0,
                    edgecolor="0.3" if inside else "0.6",
                    linestyle="-" if inside else "--",
                )
                self.big[(r, c)] = ax.add_patch(patch)
                if g.transposed:
                    x, y = self.big_x + c + 0.5, r - self.lo_r + 0.5
                    self.labels[(r, c)] = ax.text(x, y, "", ha="center", va="center", fontsize=8)

    def _captions(
        self, left: tuple[float, int], right: tuple[float, int], height: int, formula: bool
    ) -> None:
        """Name the two panels (x and width of each), write the law under them, set limits."""
        g, ax = self.g, self.ax
        (left_x, left_w), (right_x, right_w) = left, right
        i_txt = f"{g.input_size[0]}x{g.input_size[1]}"
        o_txt = f"{g.output_size[0]}x{g.output_size[1]}"
        pad = g.window.start_padding
        pad_txt = f", padding {_short(pad)}" if any(pad) and not g.transposed else ""
        ax.text(
            left_x + left_w / 2,
            -0.4,
            f"input {i_txt}{pad_txt}",
            ha="center",
            va="bottom",
            fontsize=9,
        )
        ax.text(
            right_x + right_w / 2, -0.4, f"output {o_txt}", ha="center", va="bottom", fontsize=9
        )
        if formula:
            ax.text(
                (left_x + right_x + right_w) / 2,
                height + 0.4,
                _formula(g),
                ha="center",
                va="top",
                fontsize=8,
            )
        ax.set_xlim(min(left_x, 0) - 0.3, right_x + right_w + 0.3)
        ax.set_ylim(height + (2.0 if formula else 0.3), -1.4)
        ax.set_aspect("equal")
        ax.axis("off")

    def show(self, step: int) -> None:
        g, current = self.g, self.steps[step]
        taps = set(current.taps)
        counts: dict[Cell, int] = {}
        if g.transposed:  # how many input cells have added into each output cell so far
            for done in self.steps[: step + 1]:
                for tap in done.taps:
                    counts[tap] = counts.get(tap, 0) + 1
        for (r, c), patch in self.big.items():
            inside, is_tap = self.inside[(r, c)], (r, c) in taps
            if is_tap:
                face = _TAP
            elif inside:
                face = _OUTPUT if g.transposed else _INPUT
            else:
                face = _PAD
            patch.set_facecolor(face)
            patch.set_alpha(0.45 if (is_tap and not inside) else 1.0)
            patch.set_gid(f"tap {r} {c}" if is_tap else f"big {r} {c}")
            if g.transposed:
                label = self.labels[(r, c)]
                label.set_text(str(counts[(r, c)]) if counts.get((r, c)) else "")
                label.set_color("white" if is_tap else "black")
        for index, ((r, c), patch) in enumerate(self.small.items()):
            is_target = (r, c) == current.cell
            if is_target:
                face = _TARGET
            elif g.transposed:
                face = _INPUT
            else:
                face = _DONE if index < step else "white"
            patch.set_facecolor(face)
            patch.set_gid(f"target {r} {c}" if is_target else f"small {r} {c}")
        rows = [t[0] for t in current.taps]
        cols = [t[1] for t in current.taps]
        self.span.set_bounds(
            self.big_x + min(cols),
            min(rows) - self.lo_r,
            max(cols) - min(cols) + 1,
            max(rows) - min(rows) + 1,
        )
        self.ax.set_title(f"{self.title}   step {step + 1}/{len(self.steps)}", fontsize=9)


def draw_conv_geometry(
    input_size: IntOrPair,
    kernel_size: IntOrPair,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    transposed: bool = False,
    output_padding: IntOrPair = 0,
    step: int = 0,
    ax: Axes | None = None,
    formula: bool = True,
) -> Axes:
    """Draw one step of a convolution's geometry: input, padding, footprint, output cell.

    The input is drawn on the left and the output on the right, row 0 at the top. For a
    convolution, padding cells are white with dashed edges, the kernel's taps (the cells it
    reads, with the holes that dilation leaves between them) are dark, their bounding box is
    outlined, and the output cell they write is orange; output cells already written are green.
    For a transposed convolution the roles swap: the orange input cell scatters into the dark
    output cells, cropped cells (padding) are dashed, and each output cell shows how many
    input cells have added into it so far.

    Every patch carries a ``gid``: ``"tap r c"`` for a highlighted tap and ``"target r c"`` for
    the highlighted cell, in the coordinates of :func:`conv_geometry_steps`.

    Parameters
    ----------
    input_size, kernel_size, stride, padding, dilation, transposed, output_padding
        As in :func:`conv_geometry_steps`.
    step : int
        Which step to draw, ``0 <= step < len(conv_geometry_steps(...))``.
    ax : matplotlib Axes, optional
        Where to draw; a new figure is made if omitted.
    formula : bool
        Write the output-size law, filled in, under the drawing.

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> ax = draw_conv_geometry(5, 3, padding=1, step=6)
    >>> sorted(p.get_gid() for p in ax.patches if p.get_gid().startswith("target"))
    ['target 1 1']
    >>> plt.close(ax.figure)
    """
    g = _resolve(input_size, kernel_size, stride, padding, dilation, transposed, output_padding)
    n_steps = len(_steps(g))
    if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step < n_steps:
        raise ValueError(f"step must be an int in [0, {n_steps}), got {step!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.4))
    _Drawing(g, ax, formula).show(step)
    return ax


def animate_conv_geometry(
    input_size: IntOrPair,
    kernel_size: IntOrPair,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    transposed: bool = False,
    output_padding: IntOrPair = 0,
    interval: int = 600,
    figsize: tuple[float, float] = (6.0, 3.4),
    dpi: int = 90,
) -> FuncAnimation:
    """Animate :func:`draw_conv_geometry` over every step, one frame per step.

    One frame per output cell for a convolution, one per input cell for a transposed
    convolution. The figure is closed (the animation keeps it), so a notebook shows only
    ``HTML(anim.to_jshtml())``.

    Parameters
    ----------
    input_size, kernel_size, stride, padding, dilation, transposed, output_padding
        As in :func:`conv_geometry_steps`.
    interval : int
        Milliseconds between frames.
    figsize, dpi
        Figure size and resolution; small values keep ``to_jshtml()`` small.

    Returns
    -------
    matplotlib.animation.FuncAnimation

    Examples
    --------
    >>> anim = animate_conv_geometry(5, 3, stride=2)
    >>> len(list(anim.new_frame_seq()))
    4
    >>> "<script" in anim.to_jshtml()   # what a notebook shows with IPython's HTML
    True
    """
    g = _resolve(input_size, kernel_size, stride, padding, dilation, transposed, output_padding)
    fig, ax = plt.subplots(figsize=figsize, dpi=dpi)
    drawing = _Drawing(g, ax, formula=True)  # the same drawing as draw_conv_geometry's
    drawing.show(0)
    fig.tight_layout()

    def update(frame: int) -> list:
        drawing.show(frame)
        return []

    frames = range(len(drawing.steps))
    anim = FuncAnimation(fig, update, frames=frames, interval=interval, blit=False)
    plt.close(fig)
    return anim
