"""Figures for the transferability chapter: filters, feature maps, ablation maps, transfer curves.

Each function draws on a new matplotlib figure and returns it; the caller shows or closes it.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from cnnlab.transfer import ARMS, TransferResult

__all__ = ["plot_ablation", "plot_feature_maps", "plot_filters", "plot_transfer_curves"]

ARM_STYLE = {
    "BnB": dict(color="tab:blue", marker="o", linestyle="-"),
    "BnB+": dict(color="tab:blue", marker="o", linestyle="--", markerfacecolor="white"),
    "AnB": dict(color="tab:red", marker="s", linestyle="-"),
    "AnB+": dict(color="tab:red", marker="s", linestyle="--", markerfacecolor="white"),
    "random": dict(color="tab:gray", marker="^", linestyle=":"),
}


def plot_filters(weight: torch.Tensor | np.ndarray, title: str = "") -> Figure:
    """Show each single-input-channel 2-D filter of a conv weight as a small image.

    Parameters
    ----------
    weight : array, shape (C_out, 1, kh, kw)
        Each filter is drawn on its own symmetric colour scale (blue < 0 < red).

    Examples
    --------
    >>> fig = plot_filters(np.random.default_rng(0).normal(size=(4, 1, 3, 3)))
    >>> len(fig.axes)
    4
    >>> plt.close(fig)
    """
    w = np.asarray(weight.detach() if isinstance(weight, torch.Tensor) else weight)
    if w.ndim != 4 or w.shape[1] != 1:
        raise ValueError(f"weight must have shape (C_out, 1, kh, kw), got {w.shape}")
    n = w.shape[0]
    fig, axes = plt.subplots(1, n, figsize=(1.1 * n, 1.4), squeeze=False)
    for k, ax in enumerate(axes[0]):
        limit = np.abs(w[k, 0]).max() or 1.0
        ax.imshow(w[k, 0], cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(f"{k}", fontsize=8)
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_feature_maps(
    image: torch.Tensor | np.ndarray, maps: torch.Tensor | np.ndarray, title: str = ""
) -> Figure:
    """Show an input image next to the feature maps one layer computes from it.

    Parameters
    ----------
    image : array, shape (H, W)
    maps : array, shape (C, h, w)
        Drawn on one shared grey scale from 0 to the largest activation.

    Examples
    --------
    >>> fig = plot_feature_maps(np.zeros((8, 8)), np.ones((3, 4, 4)))
    >>> len(fig.axes)
    4
    >>> plt.close(fig)
    """
    img = np.asarray(image.detach() if isinstance(image, torch.Tensor) else image)
    fm = np.asarray(maps.detach() if isinstance(maps, torch.Tensor) else maps)
    if img.ndim != 2 or fm.ndim != 3:
        raise ValueError(f"image must be (H, W) and maps (C, h, w), got {img.shape} and {fm.shape}")
    n = fm.shape[0]
    fig, axes = plt.subplots(1, n + 1, figsize=(1.1 * (n + 1), 1.5), squeeze=False)
    axes[0, 0].imshow(img, cmap="gray_r")
    axes[0, 0].set_title("input", fontsize=8)
    top = fm.max() or 1.0
    for k in range(n):
        axes[0, k + 1].imshow(fm[k], cmap="magma", vmin=0, vmax=top)
        axes[0, k + 1].set_title(f"{k}", fontsize=8)
    for ax in axes[0]:
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_ablation(drops: Sequence[np.ndarray], class_names: Sequence[str]) -> Figure:
    """Heat maps of the per-class accuracy drop when each filter is zeroed, one per layer.

    Parameters
    ----------
    drops : list of ndarray, each (filters, classes)
        :func:`cnnlab.transfer.ablation_drops`.
    class_names : sequence of str
        Column labels.

    Examples
    --------
    >>> fig = plot_ablation([np.zeros((2, 3)), np.ones((4, 3))], ["a", "b", "c"])
    >>> len(fig.axes)
    3
    >>> plt.close(fig)
    """
    top = max(float(np.max(d)) for d in drops) or 1.0
    heights = [d.shape[0] for d in drops]
    fig, axes = plt.subplots(1, len(drops), figsize=(2.3 * len(drops) + 0.8, 4.2), squeeze=False)
    image = None
    for layer, (ax, d) in enumerate(zip(axes[0], drops, strict=True)):
        image = ax.imshow(d, cmap="Reds", vmin=0, vmax=top, aspect="auto")
        ax.set_title(f"layer {layer + 1} ({heights[layer]} filters)", fontsize=9)
        ax.set_xticks(range(len(class_names)), class_names, fontsize=8)
        ax.set_xlabel("class")
        if layer == 0:
            ax.set_ylabel("filter")
    fig.colorbar(image, ax=list(axes[0]), label="accuracy drop", fraction=0.03)
    return fig


def plot_transfer_curves(result: TransferResult) -> Figure:
    """Test accuracy on task B against the number n of transferred layers, per arm.

    In the style of Yosinski et al. (2014), figure 2: one dot per seed, a line through the mean
    of each arm, baseB drawn at n = 0 and as a dashed horizontal line.

    Examples
    --------
    >>> from cnnlab.transfer import TransferConfig
    >>> r = TransferResult(TransferConfig(), (0,), (1,), (1, 2), np.ones(2), np.ones(2),
    ...                    {arm: np.full((2, 2), 0.9) for arm in ARMS})
    >>> len(plot_transfer_curves(r).axes[0].lines) > 5
    True
    >>> plt.close("all")
    """
    fig, ax = plt.subplots(figsize=(7, 4.2))
    depths = np.array(result.depths)
    base = result.base_b
    ax.axhline(base.mean(), color="black", linestyle="--", linewidth=0.8, label="baseB (mean)")
    ax.plot(np.zeros_like(base), base, "ko", markersize=4, alpha=0.6)
    offsets = np.linspace(-0.16, 0.16, len(ARMS))
    for offset, arm in zip(offsets, ARMS, strict=True):
        acc = result.accuracy[arm]
        style = ARM_STYLE[arm]
        for row in acc:
            ax.plot(
                depths + offset,
                row,
                linestyle="none",
                marker=style["marker"],
                color=style["color"],
                alpha=0.35,
                markersize=4,
            )
        ax.plot(depths + offset, acc.mean(axis=0), label=arm, **style)
    ax.set_xticks(np.arange(0, len(depths) + 1))
    ax.set_xlabel("layer n at which the network is chopped and retrained")
    ax.set_ylabel("test accuracy on task B")
    ax.legend(loc="lower left", fontsize=8, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
