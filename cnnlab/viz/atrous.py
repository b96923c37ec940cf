"""Figures for atrous convolution: dilated kernels, gridding footprints, valid weights, masks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap

from cnnlab.atrous import dilate_kernel, gridding_footprint, valid_weight_fractions

__all__ = [
    "draw_dilated_kernel",
    "draw_footprint",
    "plot_valid_weights",
    "show_masks",
    "MASK_COLOURS",
]

MASK_COLOURS = ListedColormap(["#f2f2f2", "#1f77b4", "#ff7f0e"])


def _grid(ax: plt.Axes, shape: tuple[int, int]) -> None:
    h, w = shape
    ax.set_xticks(np.arange(-0.5, w, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, h, 1), minor=True)
    ax.grid(which="minor", color="0.6", linewidth=0.5)
    ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
    ax.set_xticks([])
    ax.set_yticks([])


def draw_dilated_kernel(ax: plt.Axes, kernel_size: int = 3, dilation: int = 1) -> None:
    """Draw a ``k x k`` kernel dilated by ``d``: taps dark, inserted zeros light.

    The title gives the effective kernel size ``d (k - 1) + 1``.
    """
    taps = dilate_kernel(np.ones((kernel_size, kernel_size)), dilation)
    ax.imshow(taps, cmap="Blues", vmin=-0.3, vmax=1.2)
    _grid(ax, taps.shape)
    ax.set_title(f"rate {dilation}: {taps.shape[0]}x{taps.shape[1]}")


def draw_footprint(ax: plt.Axes, rates: Sequence[int], kernel_size: int = 3) -> np.ndarray:
    """Draw the input pixels that reach the centre output of a stack of atrous convolutions.

    Pixels are shaded by the number of paths to the output; white pixels have none.

    Returns
    -------
    ndarray
        The footprint of :func:`cnnlab.atrous.gridding_footprint`.
    """
    footprint = gridding_footprint(rates, kernel_size)
    shown = np.ma.masked_equal(footprint, 0)
    ax.imshow(np.zeros_like(footprint), cmap="Greys", vmin=0, vmax=1)
    ax.imshow(shown, cmap="viridis")
    reached = int((footprint > 0).sum())
    ax.set_title(f"rates {tuple(rates)}\n{reached} of {footprint.size} pixels", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return footprint


def plot_valid_weights(
    ax: plt.Axes, size: int = 65, rates: Sequence[int] | None = None, counts=(1, 4, 9)
) -> dict[int, np.ndarray]:
    """Plot the fraction of positions with exactly ``c`` valid weights against the rate.

    The curves of DeepLabv3's Fig. 4, computed by :func:`cnnlab.atrous.valid_weight_fractions`
    for a 3x3 filter on a ``size x size`` feature map.

    Returns
    -------
    dict
        The fractions that were plotted (all counts, one value per rate).
    """
    rates = list(range(1, size + 1)) if rates is None else list(rates)
    fractions = valid_weight_fractions(size, rates)
    for c in counts:
        ax.plot(rates, fractions[c], label=f"valid weights = {c}")
    ax.set_xlabel("atrous rate")
    ax.set_ylabel("normalised count")
    ax.set_title(f"3x3 filter on a {size}x{size} feature map")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    return fractions


def show_masks(
    images: np.ndarray,
    truth: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    class_names: Sequence[str] = ("background", "disc", "square"),
) -> plt.Figure:
    """Show images, true masks and predicted masks side by side, one row per image.

    Parameters
    ----------
    images : ndarray, shape (N, 1, H, W) or (N, H, W)
    truth : ndarray of int, shape (N, H, W)
    predictions : mapping from a label to an int array of shape (N, H, W)
    class_names : names of the classes, for the legend

    Returns
    -------
    matplotlib Figure
    """
    images = np.asarray(images)
    if images.ndim == 4:
        images = images[:, 0]
    n = len(images)
    columns = 2 + len(predictions)
    fig, axes = plt.subplots(n, columns, figsize=(1.8 * columns, 1.8 * n), squeeze=False)
    panels = [("image", images), ("truth", truth), *predictions.items()]
    for row in range(n):
        for column, (title, data) in enumerate(panels):
            ax = axes[row, column]
            if column == 0:
                ax.imshow(data[row], cmap="gray")
            else:
                ax.imshow(data[row], cmap=MASK_COLOURS, vmin=0, vmax=len(class_names) - 1)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=9)
    handles = [plt.Rectangle((0, 0), 1, 1, color=MASK_COLOURS(i)) for i in range(len(class_names))]
    fig.legend(handles, class_names, loc="lower center", ncol=len(class_names), fontsize=8)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig
