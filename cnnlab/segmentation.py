"""A synthetic multi-scale segmentation dataset and the mean intersection-over-union.

:func:`make_shapes_dataset` draws grey images holding discs and squares of many sizes, all
filled with the same brightness, on a noisy background, with a mask of class labels: 0 for
background, 1 for disc, 2 for square. Inside a large object every pixel looks the same, so a
pixel's class can only be told from the object's outline, which may lie far away: the network
needs context at the scale of the object. That is what atrous convolution and ASPP provide.

:func:`mean_iou` scores a predicted mask against the truth the way segmentation papers do
(PASCAL VOC, DeepLabv3): per class, ``IoU_c = TP_c / (TP_c + FP_c + FN_c)``, averaged over the
classes that occur in the prediction or the truth.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from cnnlab.shapes import check_int

__all__ = [
    "CLASS_NAMES",
    "SegmentationData",
    "make_shapes_dataset",
    "confusion_matrix",
    "iou_per_class",
    "mean_iou",
]

CLASS_NAMES = ("background", "disc", "square")


class SegmentationData(NamedTuple):
    """Images and masks of :func:`make_shapes_dataset`.

    Attributes
    ----------
    images : ndarray of float32, shape (N, 1, H, W)
    masks : ndarray of int64, shape (N, H, W)
        Class of every pixel: 0 background, 1 disc, 2 square.
    """

    images: np.ndarray
    masks: np.ndarray


def make_shapes_dataset(
    num_images: int,
    size: int = 64,
    radii: tuple[int, int] = (3, 20),
    objects: tuple[int, int] = (1, 3),
    noise: float = 0.35,
    seed: int = 0,
) -> SegmentationData:
    """Generate images of discs and squares at several scales, with their class masks.

    Each image holds between ``objects[0]`` and ``objects[1]`` objects (both included). Each
    object is a disc (class 1) or an axis-aligned square (class 2), chosen with equal
    probability, with a "radius" (half the side, for a square) drawn uniformly from
    ``radii`` (both included) on a log scale, so small and large objects are equally common,
    and a centre drawn uniformly inside the image. Later objects are painted over earlier
    ones. Objects have brightness 1 and the background 0; Gaussian noise of standard
    deviation ``noise`` is added to every pixel.

    Parameters
    ----------
    num_images : int
    size : int
        Height and width of the images.
    radii : (int, int)
        Smallest and largest object radius, in pixels.
    objects : (int, int)
        Smallest and largest number of objects per image.
    noise : float
        Standard deviation of the pixel noise.
    seed : int
        Seed of the NumPy generator; the same seed gives the same data.

    Returns
    -------
    SegmentationData
        ``images`` (N, 1, size, size) float32 and ``masks`` (N, size, size) int64.

    Examples
    --------
    >>> data = make_shapes_dataset(4, size=32, seed=0)
    >>> data.images.shape, data.masks.shape, data.images.dtype, data.masks.dtype
    ((4, 1, 32, 32), (4, 32, 32), dtype('float32'), dtype('int64'))
    >>> sorted(set(np.unique(data.masks).tolist()) - {0, 1, 2})
    []
    """
    num_images = check_int("num_images", num_images, minimum=1)
    size = check_int("size", size, minimum=1)
    r_min, r_max = (check_int("radii", r, minimum=1) for r in radii)
    n_min, n_max = (check_int("objects", n, minimum=1) for n in objects)
    if r_min > r_max:
        raise ValueError(f"radii must be (smallest, largest), got {radii!r}")
    if n_min > n_max:
        raise ValueError(f"objects must be (smallest, largest), got {objects!r}")
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size, 0:size]
    masks = np.zeros((num_images, size, size), np.int64)
    for image in range(num_images):
        for _ in range(rng.integers(n_min, n_max + 1)):
            label = int(rng.integers(1, 3))
            radius = np.exp(rng.uniform(np.log(r_min), np.log(r_max + 1)))
            radius = min(float(np.floor(radius)), r_max)
            cy, cx = rng.uniform(0, size, 2)
            if label == 1:
                inside = (ys - cy) ** 2 + (xs - cx) ** 2 <= radius**2
            else:
                inside = (np.abs(ys - cy) <= radius) & (np.abs(xs - cx) <= radius)
            masks[image][inside] = label
    images = (masks > 0).astype(np.float32) + rng.normal(0, noise, masks.shape).astype(np.float32)
    return SegmentationData(images[:, None], masks)


def confusion_matrix(prediction: np.ndarray, target: np.ndarray, num_classes: int) -> np.ndarray:
    """Count pixels by (true class, predicted class).

    Parameters
    ----------
    prediction, target : array of int, same shape
        Class labels in ``[0, num_classes)``.
    num_classes : int

    Returns
    -------
    ndarray of int64, shape (num_classes, num_classes)
        Entry ``[t, p]`` counts the pixels of true class ``t`` predicted as ``p``.

    Examples
    --------
    >>> confusion_matrix(np.array([0, 1, 1]), np.array([0, 0, 1]), 2)
    array([[1, 1],
           [0, 1]])
    """
    num_classes = check_int("num_classes", num_classes, minimum=1)
    prediction, target = np.asarray(prediction), np.asarray(target)
    if prediction.shape != target.shape:
        raise ValueError(
            f"prediction and target must have the same shape, got {prediction.shape} "
            f"and {target.shape}"
        )
    for name, labels in (("prediction", prediction), ("target", target)):
        if not np.issubdtype(labels.dtype, np.integer):
            raise TypeError(f"{name} must hold integer class labels, got dtype {labels.dtype}")
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(
                f"{name} labels must lie in [0, {num_classes}), got "
                f"[{labels.min()}, {labels.max()}]"
            )
    flat = target.ravel().astype(np.int64) * num_classes + prediction.ravel()
    counts = np.bincount(flat, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def iou_per_class(prediction: np.ndarray, target: np.ndarray, num_classes: int) -> np.ndarray:
    """Intersection over union of every class, ``TP / (TP + FP + FN)``, over all pixels.

    Returns
    -------
    ndarray of float, shape (num_classes,)
        NaN for a class absent from both the prediction and the target.

    Examples
    --------
    >>> iou_per_class(np.array([0, 1, 1]), np.array([0, 0, 1]), 3)
    array([0.5, 0.5, nan])
    """
    matrix = confusion_matrix(prediction, target, num_classes)
    true_positive = np.diag(matrix).astype(float)
    union = matrix.sum(axis=0) + matrix.sum(axis=1) - true_positive
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, true_positive / np.maximum(union, 1), np.nan)


def mean_iou(prediction: np.ndarray, target: np.ndarray, num_classes: int) -> float:
    r"""Mean over classes of the intersection over union, counting pixels of the whole set.

    .. math:: \text{mIoU} = \frac{1}{|C|} \sum_{c \in C}
              \frac{TP_c}{TP_c + FP_c + FN_c}

    where ``C`` holds the classes present in the prediction or the target.

    Parameters
    ----------
    prediction, target : array of int, same shape
        Predicted and true class of every pixel (any number of images).
    num_classes : int

    Returns
    -------
    float

    Examples
    --------
    >>> mean_iou(np.array([0, 1, 1]), np.array([0, 0, 1]), 3)
    0.5
    """
    return float(np.nanmean(iou_per_class(prediction, target, num_classes)))
