"""Figures for the chapter on equivariance: a map and a shift drawn as a commuting square, and
per-layer equivariance errors as bars."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from cnnlab.equivariance import LayerReport, shift, to_numpy

__all__ = ["plot_commuting_square", "plot_layer_errors"]


def _image(a: Any) -> np.ndarray:
    a = to_numpy(a)
    while a.ndim > 2:
        a = a[0]
    return a


def plot_commuting_square(
    f: Callable[[Any], Any],
    x: Any,
    dy: int,
    dx: int,
    mode: str = "circular",
    f_name: str = "f",
    cmap: str = "gray",
) -> Figure:
    """Draw ``x``, ``f(x)``, their shifts and the residual ``f(shift x) - shift(f x)``.

    Top row: ``x``, ``f(x)``, ``shift(f(x))``. Bottom row: ``shift(x)``, ``f(shift(x))``, and
    ``|f(shift(x)) - shift(f(x))|`` on its own colour scale (its maximum is in the title). For
    an equivariant ``f`` the two middle-right panels are the same picture and the last is zero.
    Only the first image and channel of a batch is drawn.

    Parameters
    ----------
    f : callable
        Shape-preserving map, e.g. a convolution with 'same' padding.
    x : ndarray or Tensor, shape (..., H, W)
    dy, dx : int
    mode : {'circular', 'zero'}
    f_name : str
        How ``f`` is written in the titles.
    cmap : str

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = plot_commuting_square(lambda a: a ** 2, np.eye(6), 1, 2)
    >>> len(fig.axes)
    6
    >>> plt.close(fig)
    """
    fx = f(x)
    sx = shift(x, dy, dx, mode)
    f_sx = f(sx)
    s_fx = shift(fx, dy, dx, mode)
    residual = np.abs(_image(f_sx) - _image(s_fx))
    panels = [
        (x, "$x$", cmap),
        (fx, f"${f_name}(x)$", cmap),
        (s_fx, f"$T({f_name}(x))$", cmap),
        (sx, f"$T(x)$, shift ({dy}, {dx})", cmap),
        (f_sx, f"${f_name}(T(x))$", cmap),
        (residual, f"$|{f_name}(T x) - T {f_name}(x)|$, max {residual.max():.1e}", "magma"),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(9, 6.2), layout="constrained")
    for ax, (img, title, cm) in zip(axes.ravel(), panels, strict=True):
        ax.imshow(_image(img), cmap=cm)
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def plot_layer_errors(
    reports: Mapping[str, Sequence[LayerReport]],
    shift_index: int = 0,
    title: str | None = None,
) -> Figure:
    """Bar chart of per-layer errors from :func:`cnnlab.equivariance.probe_layers`.

    One group of bars per layer, one bar per model (the models must have reports for the same
    number of layers or the shorter is drawn as far as it goes). Layers are labelled by type
    and cumulative stride; hatched bars are off-grid (sub-pixel) comparisons.

    Parameters
    ----------
    reports : mapping of model name to list of LayerReport
    shift_index : int
        Which shift (index into the shifts given to ``probe_layers``) to draw.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    names = list(reports)
    if not names:
        raise ValueError("reports must name at least one model")
    fig, ax = plt.subplots(figsize=(9, 3.6), layout="constrained")
    width = 0.8 / len(names)
    for k, name in enumerate(names):
        rows = list(reports[name])
        xs = np.arange(len(rows)) + k * width
        errs = [r.errors[shift_index] for r in rows]
        bars = ax.bar(xs, errs, width, label=name)
        for bar, r in zip(bars, rows, strict=True):
            if not r.on_grid[shift_index]:
                bar.set_hatch("//")
        if k == 0:
            ax.set_xticks(
                xs + 0.4 - width / 2, [f"{r.layer}\ns={r.stride[0]}" for r in rows], fontsize=8
            )
    ax.set_ylabel("relative error")
    ax.legend()
    if title:
        ax.set_title(title)
    return fig
