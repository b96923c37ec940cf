"""Figures and a widget for receptive fields: growth with depth, the field on an image, the ERF.

Every function draws on matplotlib axes it is given (or makes a figure) and returns what it
drew, so a chapter can arrange and close figures itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

from cnnlab.receptive_field import Layer, ReceptiveField, receptive_field_steps
from cnnlab.shapes import IntOrPair, pair

__all__ = [
    "plot_growth",
    "draw_receptive_field",
    "receptive_field_grid",
    "receptive_field_explorer",
    "plot_effective_receptive_field",
]


def plot_growth(ax: plt.Axes, chains: Mapping[str, Sequence[Layer]], log: bool = False) -> None:
    """Plot the receptive-field size (first axis) after each layer, one line per chain.

    Parameters
    ----------
    ax : matplotlib Axes
    chains : mapping from label to list of Layer
    log : bool
        Logarithmic size axis (exponential growth is then a straight line).
    """
    for label, layers in chains.items():
        sizes = [1] + [pair(rf.size)[0] for rf in receptive_field_steps(layers)]
        ax.plot(range(len(sizes)), sizes, marker="o", markersize=3, label=label)
    ax.set_xlabel("depth (layers)")
    ax.set_ylabel("receptive field size (pixels)")
    if log:
        ax.set_yscale("log", base=2)
    ax.grid(alpha=0.3)
    ax.legend()


def draw_receptive_field(
    ax: plt.Axes,
    image: np.ndarray,
    rf: ReceptiveField,
    position: IntOrPair,
    color: str = "tab:red",
    title: bool = True,
) -> tuple[Any, Any]:
    """Show ``image`` with the field of output unit ``position`` outlined.

    The full interval is drawn dashed (it may reach into the padding, outside the image); the
    part inside the image is shaded; a cross marks the centre.

    Returns
    -------
    (Rectangle, Rectangle)
        The outline and the shaded patch, for an interactive caller to move.
    """
    h, w = image.shape[:2]
    ax.imshow(
        image, cmap="gray" if image.ndim == 2 else None, extent=(-0.5, w - 0.5, h - 0.5, -0.5)
    )
    rows, cols = rf.interval(pair(position, "position"))
    outline = Rectangle(
        (cols.start - 0.5, rows.start - 0.5),
        cols.end - cols.start + 1,
        rows.end - rows.start + 1,
        fill=False,
        linestyle="--",
        linewidth=1.5,
        edgecolor=color,
    )
    box = rf.box(pair(position, "position"), (h, w))
    shade = Rectangle(
        (box[1].start - 0.5, box[0].start - 0.5),
        box[1].stop - box[1].start,
        box[0].stop - box[0].start,
        alpha=0.25,
        color=color,
    )
    ax.add_patch(outline)
    ax.add_patch(shade)
    ax.plot([cols.centre], [rows.centre], marker="+", color=color, markersize=10)
    margin = max(pair(rf.size)) // 2
    ax.set_xlim(-0.5 - margin, w - 0.5 + margin)
    ax.set_ylim(h - 0.5 + margin, -0.5 - margin)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(
            f"unit {tuple(pair(position))}: rows {rows.start}..{rows.end}, "
            f"cols {cols.start}..{cols.end}",
            fontsize=8,
        )
    return outline, shade


def receptive_field_grid(
    image: np.ndarray, rf: ReceptiveField, positions: Sequence[IntOrPair], ncols: int = 3
) -> plt.Figure:
    """Return a figure with one panel per output unit, its field drawn on ``image``.

    The static counterpart of :func:`receptive_field_explorer`, for the HTML book.
    """
    nrows = -(-len(positions) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 3.2 * nrows), squeeze=False)
    for ax, position in zip(axes.flat, positions, strict=False):
        draw_receptive_field(ax, image, rf, position)
    for ax in list(axes.flat)[len(positions) :]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def receptive_field_explorer(image: np.ndarray, rf: ReceptiveField, output_size: IntOrPair):
    """Return an ipywidgets control: sliders pick an output unit, the plot shows its field.

    Parameters
    ----------
    image : ndarray (H, W) or (H, W, 3)
    rf : ReceptiveField
        Of the network whose output is ``output_size``.
    output_size : int or (int, int)
        Height and width of the output map; the sliders range over it.

    Returns
    -------
    ipywidgets.interactive
    """
    import ipywidgets as widgets

    ho, wo = pair(output_size, "output_size")

    def show(row: int, col: int) -> None:
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        draw_receptive_field(ax, image, rf, (row, col))
        plt.show()

    return widgets.interactive(
        show,
        row=widgets.IntSlider(value=ho // 2, min=0, max=ho - 1, description="output row"),
        col=widgets.IntSlider(value=wo // 2, min=0, max=wo - 1, description="output col"),
    )


def plot_effective_receptive_field(
    ax: plt.Axes,
    erf: np.ndarray,
    rf: ReceptiveField | None = None,
    position: IntOrPair | None = None,
    title: str = "",
) -> Any:
    """Show an effective receptive field (scaled to a maximum of 1), with the theoretical one.

    Parameters
    ----------
    ax : matplotlib Axes
    erf : ndarray (H, W)
        From :func:`cnnlab.receptive_field.effective_receptive_field`.
    rf, position : optional
        The theoretical field and the output unit, to outline its interval.
    """
    peak = erf.max() if erf.max() > 0 else 1.0
    image = ax.imshow(erf / peak, cmap="magma", vmin=0, vmax=1)
    if rf is not None and position is not None:
        rows, cols = rf.interval(pair(position, "position"))
        ax.add_patch(
            Rectangle(
                (cols.start - 0.5, rows.start - 0.5),
                cols.end - cols.start + 1,
                rows.end - rows.start + 1,
                fill=False,
                linestyle="--",
                edgecolor="tab:cyan",
                linewidth=1.5,
            )
        )
        h, w = erf.shape
        ax.set_xlim(min(-0.5, cols.start - 1), max(w - 0.5, cols.end + 1))
        ax.set_ylim(max(h - 0.5, rows.end + 1), min(-0.5, rows.start - 1))
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return image
