"""A sample photograph, the classic hand-made filters, and figures of their feature maps.

The photograph ships with matplotlib (its sample data), so nothing is downloaded. Feature maps
are computed by :func:`cnnlab.numpy.conv2d` (a cross-correlation, as in every deep-learning
library); this module only prepares inputs and draws.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.cbook import get_sample_data
from matplotlib.figure import Figure

from cnnlab.numpy import conv2d
from cnnlab.shapes import IntOrPair

__all__ = [
    "LUMA_WEIGHTS",
    "to_grayscale",
    "downsample",
    "sample_image",
    "classic_kernels",
    "feature_maps",
    "show_feature_maps",
]

LUMA_WEIGHTS = (0.299, 0.587, 0.114)
"""ITU-R BT.601 weights of red, green and blue in the luma (grey level) of a pixel."""


def to_grayscale(rgb: np.ndarray) -> np.ndarray:
    """Convert an RGB(A) image to grey levels in [0, 1] by the BT.601 luma weights.

    .. math:: Y = 0.299 R + 0.587 G + 0.114 B

    Parameters
    ----------
    rgb : array_like, shape (H, W, 3), (H, W, 4) or (H, W)
        Integers in [0, 255] or floats in [0, 1]; an alpha channel is dropped, a 2-D array is
        taken as already grey.

    Returns
    -------
    ndarray of float64, shape (H, W)

    Examples
    --------
    >>> to_grayscale(np.array([[[255, 255, 255], [255, 0, 0]]], dtype=np.uint8)).round(3)
    array([[1.   , 0.299]])
    """
    array = np.asarray(rgb)
    scale = 255.0 if np.issubdtype(array.dtype, np.integer) else 1.0
    array = array.astype(np.float64) / scale
    if array.ndim == 2:
        return array
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"rgb must have shape (H, W), (H, W, 3) or (H, W, 4), got {array.shape}")
    return array[..., :3] @ np.asarray(LUMA_WEIGHTS)


def downsample(image: np.ndarray, factor: int) -> np.ndarray:
    """Shrink a 2-D image by averaging ``factor x factor`` blocks.

    Rows and columns at the bottom and right that do not fill a whole block are cropped.

    Parameters
    ----------
    image : array_like, shape (H, W)
    factor : int
        At least 1 and at most min(H, W).

    Returns
    -------
    ndarray, shape (H // factor, W // factor)

    Examples
    --------
    >>> downsample(np.arange(16.0).reshape(4, 4), 2)
    array([[ 2.5,  4.5],
           [10.5, 12.5]])
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {image.shape}")
    if (
        isinstance(factor, bool)
        or not isinstance(factor, int | np.integer)
        or not (1 <= factor <= min(image.shape))
    ):
        raise ValueError(f"factor must be an int in [1, {min(image.shape)}], got {factor!r}")
    h, w = image.shape[0] // factor, image.shape[1] // factor
    blocks = image[: h * factor, : w * factor].reshape(h, factor, w, factor)
    return blocks.mean(axis=(1, 3))


def sample_image(name: str = "grace_hopper.jpg", size: int = 128) -> np.ndarray:
    """Load a photograph from matplotlib's sample data as a small grey-level image.

    The image is converted to grey levels in [0, 1] (:func:`to_grayscale`) and shrunk by the
    integer factor ``min(H, W) // size`` (:func:`downsample`), so its shorter side is about
    ``size`` pixels.

    Parameters
    ----------
    name : str
        A file in ``matplotlib/mpl-data/sample_data``, e.g. ``'grace_hopper.jpg'`` (600x512).
    size : int
        Target length of the shorter side, at least 1.

    Returns
    -------
    ndarray of float64, shape about (size * H / min(H, W), size * W / min(H, W))

    Examples
    --------
    >>> image = sample_image(size=128)
    >>> image.shape, image.dtype, bool(0 <= image.min() and image.max() <= 1)
    ((150, 128), dtype('float64'), True)
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be an int >= 1, got {size!r}")
    gray = to_grayscale(plt.imread(get_sample_data(name, asfileobj=False)))
    return downsample(gray, max(1, min(gray.shape) // size))


def classic_kernels() -> dict[str, np.ndarray]:
    """The hand-made filters of image processing, as kernels for cross-correlation.

    - ``'sobel x'``: ``[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]``, positive where the image gets
      brighter to the right (a vertical edge);
    - ``'sobel y'``: its transpose, positive where the image gets brighter downwards;
    - ``'laplacian'``: ``[[0, 1, 0], [1, -4, 1], [0, 1, 0]]``, the discrete second derivative,
      large in magnitude at edges and fine detail, zero on flat and linear ramps;
    - ``'box'``: the mean of the 3x3 tile (blur);
    - ``'gaussian'``: the binomial kernel ``outer(b, b) / 256`` with ``b = [1, 4, 6, 4, 1]``,
      a discrete Gaussian of standard deviation 1 (blur that weights the centre most).

    Returns
    -------
    dict of str to ndarray
        Edge kernels sum to 0; blur kernels sum to 1.

    Examples
    --------
    >>> {name: float(k.sum()) for name, k in classic_kernels().items()}
    {'sobel x': 0.0, 'sobel y': 0.0, 'laplacian': 0.0, 'box': 1.0, 'gaussian': 1.0}
    """
    sobel_x = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    binomial = np.array([1.0, 4.0, 6.0, 4.0, 1.0])
    return {
        "sobel x": sobel_x,
        "sobel y": sobel_x.T.copy(),
        "laplacian": np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]),
        "box": np.full((3, 3), 1.0 / 9.0),
        "gaussian": np.outer(binomial, binomial) / 256.0,
    }


def _check_kernels(kernels: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    if not isinstance(kernels, Mapping) or len(kernels) == 0:
        raise ValueError("kernels must be a non-empty mapping of name to 2-D kernel")
    checked = {}
    for name, kernel in kernels.items():
        kernel = np.asarray(kernel, dtype=np.float64)
        if kernel.ndim != 2:
            raise ValueError(f"kernel {name!r} must be 2-D, got shape {kernel.shape}")
        checked[str(name)] = kernel
    return checked


def feature_maps(
    image: np.ndarray, kernels: Mapping[str, np.ndarray], padding: IntOrPair | str = "valid"
) -> dict[str, np.ndarray]:
    r"""Cross-correlate one grey image with each named kernel: one feature map per kernel.

    .. math:: S_k(i, j) = \sum_m \sum_n I(i + m, j + n)\, K_k(m, n)

    All kernels are applied in one call of :func:`cnnlab.numpy.conv2d` per kernel size (as
    output channels of one layer).

    Parameters
    ----------
    image : array_like, shape (H, W)
    kernels : mapping of str to array_like of shape (kh, kw)
    padding : int, (int, int), 'valid' or 'same'
        As in :func:`cnnlab.numpy.conv2d`; 'valid' (no padding) by default.

    Returns
    -------
    dict of str to ndarray, shape (H - kh + 1, W - kw + 1) for 'valid'
        In the order of ``kernels``.

    Examples
    --------
    >>> ramp = np.tile(np.arange(6.0), (5, 1))       # brighter to the right
    >>> maps = feature_maps(ramp, {"sobel x": classic_kernels()["sobel x"]})
    >>> maps["sobel x"]
    array([[8., 8., 8., 8.],
           [8., 8., 8., 8.],
           [8., 8., 8., 8.]])
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D (H, W), got shape {image.shape}")
    kernels = _check_kernels(kernels)
    by_shape: dict[tuple[int, int], list[str]] = {}
    for name, kernel in kernels.items():
        by_shape.setdefault(kernel.shape, []).append(name)
    maps: dict[str, np.ndarray] = {}
    for names in by_shape.values():
        weight = np.stack([kernels[name] for name in names])[:, None]  # (C_out, 1, kh, kw)
        out = conv2d(image[None], weight, padding=padding)  # (C_out, OH, OW)
        maps.update(zip(names, out, strict=True))
    return {name: maps[name] for name in kernels}


def show_feature_maps(
    image: np.ndarray,
    kernels: Mapping[str, np.ndarray],
    padding: IntOrPair | str = "valid",
    ncols: int = 3,
    panel_size: float = 2.6,
) -> Figure:
    """Show an image and its feature maps under several named kernels, one panel each.

    Maps of kernels that sum to 0 (edge detectors) are signed, and drawn on a grey scale
    symmetric about 0 (mid grey = 0), clipped at the 99.5th percentile of ``|map|`` so that a few
    strong edges do not wash out the rest; the others are drawn on a grey scale from their
    minimum to their maximum.

    Parameters
    ----------
    image : array_like, shape (H, W)
    kernels : mapping of str to array_like of shape (kh, kw)
    padding : int, (int, int), 'valid' or 'same'
        Passed to :func:`feature_maps`.
    ncols : int
        Panels per row.
    panel_size : float
        Inches per panel.

    Returns
    -------
    Figure
        A pyplot figure. Panel 0 is the input; panel ``k + 1`` shows the map of the ``k``-th
        kernel, its array available as ``fig.axes[k + 1].images[0].get_array()``.

    Examples
    --------
    >>> fig = show_feature_maps(np.eye(8), {"box": np.ones((3, 3)) / 9})
    >>> [ax.get_title() for ax in fig.axes if ax.images]
    ['input 8x8', 'box 3x3 -> 6x6']
    >>> plt.close(fig)
    """
    image = np.asarray(image, dtype=np.float64)
    maps = feature_maps(image, kernels, padding)
    kernels = _check_kernels(kernels)
    if isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"ncols must be an int >= 1, got {ncols!r}")
    panels = len(maps) + 1
    ncols = min(ncols, panels)
    nrows = -(-panels // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(panel_size * ncols, panel_size * nrows * 1.1), squeeze=False, dpi=100
    )
    flat = axes.ravel()
    flat[0].imshow(image, cmap="gray")
    flat[0].set_title(f"input {image.shape[0]}x{image.shape[1]}", fontsize=9)
    for ax, (name, fmap) in zip(flat[1:], maps.items(), strict=False):
        kernel = kernels[name]
        if abs(kernel.sum()) <= 1e-9 * max(1.0, np.abs(kernel).sum()):
            limit = float(np.percentile(np.abs(fmap), 99.5)) or 1.0
            ax.imshow(fmap, cmap="gray", vmin=-limit, vmax=limit)
        else:
            ax.imshow(fmap, cmap="gray")
        kh, kw = kernel.shape
        ax.set_title(f"{name} {kh}x{kw} -> {fmap.shape[0]}x{fmap.shape[1]}", fontsize=9)
    for ax in flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in flat[panels:]:
        ax.set_axis_off()
    fig.tight_layout()
    return fig
