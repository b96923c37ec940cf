r"""Atrous (dilated) convolution in plain NumPy: dilated kernels, valid weights, gridding.

An atrous convolution with rate (dilation) ``r`` reads its ``k`` taps ``r`` pixels apart:

.. math:: y[i] = \sum_{m=0}^{k-1} x[i + r\,m]\, w[m]

which is an ordinary convolution with the kernel ``w`` dilated by inserting ``r - 1`` zeros
between neighbouring taps (:func:`dilate_kernel`); the span grows to ``r (k - 1) + 1`` pixels
while the number of weights stays ``k``.

This module also holds the arithmetic that DeepLabv3 (Chen, Papandreou, Schroff & Adam,
"Rethinking Atrous Convolution for Semantic Image Segmentation", 2017) relies on:

- :func:`valid_weight_counts` and :func:`valid_weight_fractions`: with zero ("same") padding, a
  3x3 filter at a rate close to the feature-map size has most taps in the padding; at the
  extreme only the centre tap is valid and the filter is a 1x1 filter (the paper's Fig. 4);
- :func:`gridding_footprint`: which input pixels reach one output unit of a stack of atrous
  convolutions; equal rates leave holes (the *gridding* artefact), and so do many mixed ones;
- :func:`hdc_condition` and :func:`hdc_max_distance`: Wang et al.'s hybrid-dilated-convolution
  condition, a sufficient test that a stack of rates leaves no hole;
- :func:`multi_grid_rates`: the rates of a block's convolutions under DeepLabv3's multi-grid;
- :func:`aspp_branch_shapes`: the output shape of every branch of an ASPP head.

Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cnnlab.numpy.dilation import dilate_kernel
from cnnlab.shapes import IntOrPair, check_int, conv_output_size, pair

__all__ = [
    "dilate_kernel",
    "valid_taps_1d",
    "valid_weight_counts",
    "valid_weight_fractions",
    "gridding_footprint",
    "hdc_condition",
    "hdc_max_distance",
    "multi_grid_rates",
    "aspp_branch_shapes",
    "check_rates",
]


def check_rates(name: str, rates: object) -> tuple[int, ...]:
    """Return ``rates`` (an int or a non-empty sequence of ints >= 1) as a tuple of ints.

    Examples
    --------
    >>> check_rates("rates", 6), check_rates("rates", [6, 12])
    ((6,), (6, 12))
    """
    if isinstance(rates, (int, np.integer)) and not isinstance(rates, bool):
        rates = (rates,)
    if not isinstance(rates, Sequence) or isinstance(rates, str) or len(rates) == 0:
        raise ValueError(f"{name} must be a non-empty sequence of positive ints, got {rates!r}")
    return tuple(check_int(f"{name}[{i}]", r, minimum=1) for i, r in enumerate(rates))


def valid_taps_1d(size: int, rate: int, kernel_size: int = 3) -> np.ndarray:
    """Count, for each output position of one axis, the taps that fall inside the input.

    With "same" zero padding ``p = r (k - 1) / 2`` and stride 1, output ``i`` reads input
    ``i - p + r m`` for ``m = 0 .. k-1``; a tap is *valid* when that index lies in
    ``[0, size)``, otherwise it multiplies padding.

    Parameters
    ----------
    size : int
        Length ``n`` of the axis (the feature map's height or width).
    rate : int
        Atrous rate ``r``.
    kernel_size : int
        Odd number of taps ``k``.

    Returns
    -------
    ndarray of int, shape (size,)

    Examples
    --------
    >>> valid_taps_1d(7, 2)
    array([2, 2, 3, 3, 3, 2, 2])
    >>> valid_taps_1d(7, 7)
    array([1, 1, 1, 1, 1, 1, 1])
    """
    size = check_int("size", size, minimum=1)
    rate = check_int("rate", rate, minimum=1)
    kernel_size = check_int("kernel_size", kernel_size, minimum=1)
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd for 'same' padding, got {kernel_size}")
    half = (kernel_size - 1) // 2
    offsets = rate * (np.arange(kernel_size) - half)  # tap positions relative to the centre
    positions = np.arange(size)[:, None] + offsets[None, :]
    return ((positions >= 0) & (positions < size)).sum(axis=1)


def valid_weight_counts(size: IntOrPair, rate: IntOrPair, kernel_size: int = 3) -> np.ndarray:
    """Number of valid weights of a ``k x k`` atrous filter at every output position.

    The taps of a 2-D filter are the products of the taps of its two axes, so the count at
    ``(i, j)`` is ``v_h(i) v_w(j)`` with :func:`valid_taps_1d` per axis. For ``k = 3`` the
    counts are 1, 2, 3, 4, 6 or 9.

    Parameters
    ----------
    size : int or (int, int)
        Feature-map height and width.
    rate : int or (int, int)
        Atrous rate.
    kernel_size : int
        Odd kernel size ``k`` (both axes).

    Returns
    -------
    ndarray of int, shape (H, W)

    Examples
    --------
    >>> valid_weight_counts(5, 2)
    array([[4, 4, 6, 4, 4],
           [4, 4, 6, 4, 4],
           [6, 6, 9, 6, 6],
           [4, 4, 6, 4, 4],
           [4, 4, 6, 4, 4]])
    """
    h, w = pair(size, "size")
    rh, rw = pair(rate, "rate")
    return np.outer(valid_taps_1d(h, rh, kernel_size), valid_taps_1d(w, rw, kernel_size))


def valid_weight_fractions(
    size: IntOrPair, rates: Sequence[int], kernel_size: int = 3
) -> dict[int, np.ndarray]:
    """Fraction of output positions at which exactly ``c`` weights are valid, for each rate.

    This is the "normalized count" of DeepLabv3's Fig. 4 (a 3x3 filter on a 65x65 feature map):
    as the rate grows the fraction with all 9 weights valid falls to 0 and the fraction with
    only the centre weight valid rises to 1, where the filter has become a 1x1 filter.

    Parameters
    ----------
    size : int or (int, int)
        Feature-map height and width.
    rates : sequence of int
        Atrous rates to evaluate.
    kernel_size : int
        Odd kernel size.

    Returns
    -------
    dict from int to ndarray of float, shape (len(rates),)
        Key ``c`` (every possible count, increasing) maps to the fraction of the ``H W``
        positions where exactly ``c`` weights are valid, one value per rate. For each rate the
        fractions sum to 1.

    Examples
    --------
    >>> f = valid_weight_fractions(65, [1, 33, 65])
    >>> [round(float(x), 4) for x in f[9]], [round(float(x), 4) for x in f[1]]
    ([0.9394, 0.0, 0.0], [0.0, 0.0002, 1.0])
    """
    rates = check_rates("rates", rates)
    h, w = pair(size, "size")
    kernel_size = check_int("kernel_size", kernel_size, minimum=1)
    taps = range(1, kernel_size + 1)
    possible = sorted({a * b for a in taps for b in taps})
    fractions = {c: np.zeros(len(rates)) for c in possible}
    for index, rate in enumerate(rates):
        counts = valid_weight_counts((h, w), rate, kernel_size)
        values, numbers = np.unique(counts, return_counts=True)
        for c, number in zip(values, numbers, strict=True):
            fractions[int(c)][index] = number / (h * w)
    return fractions


def gridding_footprint(rates: Sequence[int], kernel_size: int = 3) -> np.ndarray:
    """Which input pixels reach one output unit of a stack of stride-1 atrous convolutions.

    Layer ``l`` has a ``k x k`` kernel at rate ``r_l``. The footprint is the composition of the
    layers' tap patterns: start from the single output pixel and, layer by layer going down,
    spread every reached pixel to its ``k x k`` taps at that layer's rate. The value at each
    input pixel is the number of paths from it to the output (a pixel with 0 paths never
    influences the output, whatever the weights).

    With equal rates ``r`` the footprint only touches pixels whose offsets are multiples of
    ``r``: a grid with holes. Mixing rates is not enough, nor is having no common factor:
    rates (2, 3) reach 81 of the 121 pixels of their field, while (1, 2, 5) reach all 289.
    :func:`hdc_condition` tells, from the rates alone, a stack that is sure to have no hole.
    The footprint does not depend on the order of the layers.

    Parameters
    ----------
    rates : sequence of int
        Rate of each layer, from the input to the output.
    kernel_size : int
        Number of taps per axis.

    Returns
    -------
    ndarray of int, shape (R, R)
        ``R = 1 + (k - 1) sum_l r_l``, the receptive field; the output unit sits at the centre.

    Examples
    --------
    >>> (gridding_footprint([2, 2]) > 0).astype(int)
    array([[1, 0, 1, 0, 1, 0, 1, 0, 1],
           [0, 0, 0, 0, 0, 0, 0, 0, 0],
           [1, 0, 1, 0, 1, 0, 1, 0, 1],
           [0, 0, 0, 0, 0, 0, 0, 0, 0],
           [1, 0, 1, 0, 1, 0, 1, 0, 1],
           [0, 0, 0, 0, 0, 0, 0, 0, 0],
           [1, 0, 1, 0, 1, 0, 1, 0, 1],
           [0, 0, 0, 0, 0, 0, 0, 0, 0],
           [1, 0, 1, 0, 1, 0, 1, 0, 1]])
    >>> [int((gridding_footprint(r) > 0).sum()) for r in ([2, 3], [1, 2, 5])]
    [81, 289]
    """
    rates = check_rates("rates", rates)
    kernel_size = check_int("kernel_size", kernel_size, minimum=1)
    line = np.ones(1, dtype=np.int64)
    for rate in rates:
        # 1-D footprint after one more layer: full convolution with the dilated all-ones kernel.
        line = np.convolve(line, dilate_kernel(np.ones((1, kernel_size), np.int64), rate)[0])
    return np.outer(line, line)


def hdc_max_distance(rates: Sequence[int]) -> int:
    r"""Wang et al.'s ``M_2``: the largest distance between reached pixels above the first layer.

    Wang et al. ("Understanding Convolution for Semantic Segmentation", WACV 2018) follow,
    for a stack of 3x3 atrous convolutions with rates ``r_1 .. r_n`` (input to output), the
    "maximum distance between two nonzero values" ``M_i`` of the footprint of layers
    ``i .. n``, one layer at a time from the output:

    .. math::

        M_n = r_n, \qquad
        M_i = \max\bigl(M_{i+1} - 2 r_i,\; M_{i+1} - 2 (M_{i+1} - r_i),\; r_i\bigr),

    down to ``M_2``, what the layers above the first one leave for the first to fill
    (:func:`hdc_condition`).

    Parameters
    ----------
    rates : sequence of int
        Rate of each layer, from the input to the output; at least two.

    Returns
    -------
    int
        ``M_2``.

    Examples
    --------
    >>> hdc_max_distance([1, 2, 5]), hdc_max_distance([1, 2, 9]), hdc_max_distance([2, 3])
    (2, 5, 3)
    """
    rates = check_rates("rates", rates)
    if len(rates) < 2:
        raise ValueError(f"rates must hold at least two layers, got {rates!r}")
    distance = rates[-1]  # M_n
    for rate in reversed(rates[1:-1]):  # M_{n-1} down to M_2
        distance = max(distance - 2 * rate, distance - 2 * (distance - rate), rate)
    return distance


def hdc_condition(rates: Sequence[int], kernel_size: int = 3) -> bool:
    """Whether a stack of atrous rates meets the hybrid dilated convolution (HDC) condition.

    Wang et al. ("Understanding Convolution for Semantic Segmentation", WACV 2018) ask for
    ``M_2 <= K`` (:func:`hdc_max_distance`): a first layer of ``K`` taps at rate ``r_1 = 1``
    then closes every gap the other layers leave. This function returns
    ``r_1 == 1 and M_2 <= K``; a single layer passes when its rate is 1. The first rate is part
    of the test: ``M_2 <= K`` alone is met by rates (2, 3) (``M_2 = 3``), which reach 81 of the
    121 pixels of their field.

    The condition is sufficient, not necessary. ``tests/test_atrous.py`` compares it with
    :func:`gridding_footprint` on every stack of 1 to 4 layers with rates 1 to 8 (4680 stacks).
    For ``K = 3``: every stack that meets it reaches its whole field; on rates in increasing
    (non-decreasing) order it agrees with full coverage on every stack; it rejects 1068 stacks
    that do reach their whole field, all out of order, such as (2, 1). Since the footprint does
    not depend on the order of the layers, ``hdc_condition(sorted(rates))`` agrees with full
    coverage on all 4680. For ``K = 5`` it is still never wrong when it says yes, but it also
    rejects two increasing stacks with no hole, such as (1, 1, 8): the recursion counts the taps
    at ``-r_i, 0, r_i`` of a 3-tap row.

    Parameters
    ----------
    rates : sequence of int
        Rate of each layer, from the input to the output.
    kernel_size : int
        Odd number of taps ``K`` per axis, at least 3.

    Returns
    -------
    bool
        True when the stack meets the condition, so its footprint has no hole.

    Examples
    --------
    >>> hdc_condition([1, 2, 5]), hdc_condition([1, 2, 9]), hdc_condition([2, 3])
    (True, False, False)
    >>> [round(float((gridding_footprint(r) > 0).mean()), 3) for r in ([1, 2, 5], [1, 2, 9])]
    [1.0, 0.706]
    """
    rates = check_rates("rates", rates)
    kernel_size = check_int("kernel_size", kernel_size, minimum=3)
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd, got {kernel_size}")
    if rates[0] != 1:
        return False
    return len(rates) == 1 or hdc_max_distance(rates) <= kernel_size


def multi_grid_rates(unit_rates: Sequence[int] = (1, 2, 4), base_rate: int = 2) -> tuple[int, ...]:
    """Rates of the convolutions of one block under DeepLabv3's multi-grid scheme.

    DeepLabv3 (section 3.2) gives the three convolutions of a block the *unit rates*
    ``(r_1, r_2, r_3)`` times the block's own rate: ``rate_i = base_rate * r_i``. For example,
    multi-grid ``(1, 2, 4)`` in a block at rate 2 gives rates ``(2, 4, 8)``.

    Parameters
    ----------
    unit_rates : sequence of int
        The multi-grid unit rates.
    base_rate : int
        The rate the block would have with a single rate (2 at output stride 16 for block4).

    Returns
    -------
    tuple of int

    Examples
    --------
    >>> multi_grid_rates((1, 2, 4), 2)
    (2, 4, 8)
    >>> multi_grid_rates((1, 2, 1), 4)
    (4, 8, 4)

    DeepLabv3 motivates multi-grid by multi-grid methods, which work on a hierarchy of grids of
    different sizes, not by gridding; the rates do not fill the holes: (2, 4, 8) reach 225 of
    the 841 pixels of their field.

    >>> int((gridding_footprint(multi_grid_rates((1, 2, 4), 2)) > 0).sum())
    225
    """
    units = check_rates("unit_rates", unit_rates)
    base = check_int("base_rate", base_rate, minimum=1)
    return tuple(base * u for u in units)


def aspp_branch_shapes(
    in_channels: int,
    feature_size: IntOrPair,
    out_channels: int = 256,
    rates: Sequence[int] = (6, 12, 18),
) -> dict[str, tuple[int, int, int]]:
    """Output shape ``(C, H, W)`` of every branch of an ASPP head, and of the head.

    DeepLabv3's ASPP (section 3.3) runs, in parallel on a ``C_in x H x W`` feature map:

    - a 1x1 convolution,
    - one 3x3 convolution per rate ``r`` with padding ``r`` (so the size is kept),
    - image pooling: global average pooling to ``1 x 1``, a 1x1 convolution, then bilinear
      upsampling back to ``H x W``;

    each with ``out_channels`` channels. The branches are concatenated to
    ``(len(rates) + 2) * out_channels`` channels and projected back to ``out_channels`` by a
    1x1 convolution.

    Parameters
    ----------
    in_channels : int
    feature_size : int or (int, int)
        Height and width of the input feature map.
    out_channels : int
    rates : sequence of int

    Returns
    -------
    dict from str to (int, int, int)
        Keys ``"1x1"``, ``"rate r"`` for each rate, ``"pool"`` (before upsampling),
        ``"pool upsampled"``, ``"concat"`` and ``"project"``.

    Examples
    --------
    >>> shapes = aspp_branch_shapes(2048, 33)
    >>> shapes["rate 18"], shapes["pool"], shapes["concat"], shapes["project"]
    ((256, 33, 33), (256, 1, 1), (1280, 33, 33), (256, 33, 33))
    """
    check_int("in_channels", in_channels, minimum=1)
    out_channels = check_int("out_channels", out_channels, minimum=1)
    rates = check_rates("rates", rates)
    h, w = pair(feature_size, "feature_size")
    if min(h, w) < 1:
        raise ValueError(f"feature_size must be >= 1, got {feature_size!r}")
    shapes = {"1x1": (out_channels, *pair(conv_output_size((h, w), 1)))}
    for rate in rates:
        size = pair(conv_output_size((h, w), 3, padding=rate, dilation=rate))
        shapes[f"rate {rate}"] = (out_channels, *size)
    shapes["pool"] = (out_channels, 1, 1)
    shapes["pool upsampled"] = (out_channels, h, w)
    shapes["concat"] = ((len(rates) + 2) * out_channels, h, w)
    shapes["project"] = (out_channels, h, w)
    return shapes
