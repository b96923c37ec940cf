"""Small image datasets, generated here or shipped by a dependency, so that no chapter downloads.

Each function is independent and returns plain tensors in NCHW layout (float32 images, int64
labels). Nothing here trains anything.

- :func:`load_digits_tensors`: scikit-learn's bundled handwritten digits (1,797 images of 8x8),
  optionally upsampled, split into train and test sets stratified by class.
- :func:`split_classes`: a seeded random split of the classes into two disjoint halves, the
  tasks A and B of Yosinski et al. (2014).
- :func:`subset_classes`: keep only some classes of a split and relabel them 0..k-1.
- :func:`textured_shapes`: generated images of three shapes filled with two textures.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from cnnlab.shapes import check_int

__all__ = [
    "Split",
    "load_digits_tensors",
    "split_classes",
    "subset_classes",
    "textured_shapes",
]


class Split(NamedTuple):
    """A train/test split of an image classification dataset.

    Attributes
    ----------
    x_train : Tensor, shape (N_train, C, H, W), float32
    y_train : Tensor, shape (N_train,), int64
    x_test : Tensor, shape (N_test, C, H, W), float32
    y_test : Tensor, shape (N_test,), int64
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def load_digits_tensors(size: int = 8, seed: int = 0, test_fraction: float = 1 / 3) -> Split:
    """Load scikit-learn's 8x8 handwritten digits as tensors, split stratified by class.

    Pixel values (integers 0..16) are divided by 16, so images lie in [0, 1]. With ``size`` other
    than 8 the images are resized bilinearly (``align_corners=False``). The split keeps the class
    proportions in both halves (``sklearn.model_selection.train_test_split`` with ``stratify``);
    the same ``seed`` always gives the same split.

    Parameters
    ----------
    size : int
        Height and width of the returned images, >= 2.
    seed : int
        Seed of the train/test split.
    test_fraction : float
        Share of the images, strictly between 0 and 1, held out for testing.

    Returns
    -------
    Split
        ``x_*`` of shape (N, 1, size, size), float32 in [0, 1]; ``y_*`` of shape (N,), int64
        digits 0..9. N_train + N_test = 1797.

    Examples
    --------
    >>> data = load_digits_tensors(size=8, seed=0)
    >>> tuple(data.x_train.shape), tuple(data.x_test.shape)
    ((1198, 1, 8, 8), (599, 1, 8, 8))
    >>> float(data.x_train.max()) <= 1.0, sorted(set(data.y_test.tolist())) == list(range(10))
    (True, True)
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    size = check_int("size", size, minimum=2)
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must be strictly between 0 and 1, got {test_fraction!r}")
    digits = load_digits()
    images = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
    if size != 8:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
        images = images.clamp(0.0, 1.0)
    labels = torch.tensor(digits.target, dtype=torch.int64)
    index = np.arange(len(labels))
    train_idx, test_idx = train_test_split(
        index, test_size=float(test_fraction), random_state=seed, stratify=digits.target
    )
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    return Split(
        images[train_idx].contiguous(),
        labels[train_idx].contiguous(),
        images[test_idx].contiguous(),
        labels[test_idx].contiguous(),
    )


def split_classes(n_classes: int, seed: int = 0) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Split the classes 0..n_classes-1 at random into two disjoint halves, tasks A and B.

    As in Yosinski et al. (2014), who split ImageNet's 1000 classes into two random sets of 500.
    With an odd number of classes, A gets the extra one. Each half is returned sorted.

    Parameters
    ----------
    n_classes : int
        Number of classes, >= 2.
    seed : int
        Seed of the permutation (``numpy.random.default_rng(seed)``).

    Returns
    -------
    (tuple of int, tuple of int)
        The classes of task A and of task B; together they are 0..n_classes-1, with no overlap.

    Examples
    --------
    >>> a, b = split_classes(10, seed=0)
    >>> len(a), len(b), sorted(a + b) == list(range(10))
    (5, 5, True)
    >>> split_classes(10, seed=0) == (a, b)
    True
    """
    n_classes = check_int("n_classes", n_classes, minimum=2)
    order = np.random.default_rng(seed).permutation(n_classes)
    half = (n_classes + 1) // 2
    task_a = tuple(sorted(int(c) for c in order[:half]))
    task_b = tuple(sorted(int(c) for c in order[half:]))
    return task_a, task_b


def subset_classes(data: Split, classes: Sequence[int]) -> Split:
    """Keep the images of the given classes and relabel them 0..k-1 in the order given.

    Parameters
    ----------
    data : Split
    classes : sequence of int
        Distinct original labels; ``classes[i]`` becomes label ``i``.

    Returns
    -------
    Split
        Only the images whose label is in ``classes``, in their original order.

    Examples
    --------
    >>> x = torch.zeros(6, 1, 2, 2)
    >>> y = torch.tensor([0, 1, 2, 0, 1, 2])
    >>> sub = subset_classes(Split(x, y, x, y), [2, 0])
    >>> sub.y_train.tolist()
    [1, 0, 1, 0]
    """
    classes = [int(c) for c in classes]
    if len(classes) == 0 or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be a non-empty sequence of distinct labels, got {classes}")
    lookup = torch.full((max(classes) + 1,), -1, dtype=torch.int64)
    lookup[torch.tensor(classes)] = torch.arange(len(classes))

    def keep(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inside = y <= max(classes)
        new = torch.full_like(y, -1)
        new[inside] = lookup[y[inside]]
        mask = new >= 0
        return x[mask], new[mask]

    return Split(*keep(data.x_train, data.y_train), *keep(data.x_test, data.y_test))


SHAPES = ("disc", "square", "triangle")
TEXTURES = ("stripes", "checks")


def textured_shapes(n: int, size: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate images of a disc, a square or a triangle filled with stripes or checks.

    Six classes, label ``3 * texture + shape`` with shape in (disc, square, triangle) and
    texture in (stripes, checks). Each image has a random centre, scale, texture period (2 to 4
    pixels) and phase; the background is 0 plus Gaussian noise of standard deviation 0.05, the
    texture alternates between 0.35 and 1. A class thus needs both a shape feature and a
    texture feature, which is what makes the set useful for filter-importance studies.

    Parameters
    ----------
    n : int
        Number of images, >= 1. Classes cycle 0, 1, ..., 5, 0, ... so they are balanced.
    size : int
        Height and width, >= 8.
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    images : Tensor, shape (n, 1, size, size), float32
    labels : Tensor, shape (n,), int64 in 0..5

    Examples
    --------
    >>> x, y = textured_shapes(12, size=16, seed=0)
    >>> tuple(x.shape), y.tolist()[:7]
    ((12, 1, 16, 16), [0, 1, 2, 3, 4, 5, 0])
    >>> bool(torch.equal(x, textured_shapes(12, size=16, seed=0)[0]))
    True
    """
    n = check_int("n", n, minimum=1)
    size = check_int("size", size, minimum=8)
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % (len(SHAPES) * len(TEXTURES))
    shape_id, texture_id = labels % len(SHAPES), labels // len(SHAPES)
    yy, xx = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5, indexing="ij")
    radius = rng.uniform(0.25, 0.4, n) * size
    cy = rng.uniform(radius, size - radius)
    cx = rng.uniform(radius, size - radius)
    period = rng.uniform(2.0, 4.0, n)
    phase = rng.uniform(0.0, 2 * np.pi, n)
    angle = rng.uniform(0.0, np.pi, n)
    # Coordinates relative to each image's centre, in units of its radius: (n, size, size).
    dy = (yy[None] - cy[:, None, None]) / radius[:, None, None]
    dx = (xx[None] - cx[:, None, None]) / radius[:, None, None]
    disc = dy**2 + dx**2 <= 1.0
    square = (np.abs(dy) <= 0.8) & (np.abs(dx) <= 0.8)
    triangle = (dy <= 0.7) & (dy >= -0.9 + 1.6 * np.abs(dx)) & (np.abs(dx) <= 1.0)
    inside = np.choose(shape_id[:, None, None], [disc, square, triangle])
    # Texture coordinates along a random direction (stripes) or two directions (checks).
    u = (np.cos(angle)[:, None, None] * yy + np.sin(angle)[:, None, None] * xx) / period[
        :, None, None
    ]
    v = (-np.sin(angle)[:, None, None] * yy + np.cos(angle)[:, None, None] * xx) / period[
        :, None, None
    ]
    stripes = np.sin(2 * np.pi * u + phase[:, None, None]) > 0
    checks = (np.sin(2 * np.pi * u + phase[:, None, None]) > 0) ^ (np.sin(2 * np.pi * v) > 0)
    pattern = np.where(texture_id[:, None, None] == 0, stripes, checks)
    images = np.where(inside, np.where(pattern, 1.0, 0.35), 0.0)
    images = images + rng.normal(0.0, 0.05, images.shape)
    return (
        torch.tensor(images, dtype=torch.float32).unsqueeze(1),
        torch.tensor(labels, dtype=torch.int64),
    )
