"""Atrous helpers: zero-inserted kernels against torch's dilation, valid weights and footprints
against brute force, the HDC condition against footprints, multi-grid rates against the paper's
examples."""

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlab.atrous import (
    aspp_branch_shapes,
    dilate_kernel,
    gridding_footprint,
    hdc_condition,
    hdc_max_distance,
    multi_grid_rates,
    valid_taps_1d,
    valid_weight_counts,
    valid_weight_fractions,
)
from cnnlab.numpy import conv2d as np_conv2d
from cnnlab.receptive_field import Layer, receptive_field
from cnnlab.shapes import effective_kernel_size

torch.set_num_threads(1)


@settings(max_examples=25, deadline=None)
@given(
    k=st.integers(1, 4),
    dh=st.integers(1, 4),
    dw=st.integers(1, 4),
    h=st.integers(1, 6),
    extra=st.integers(0, 6),
    padding=st.integers(0, 3),
    seed=st.integers(0, 2**16),
)
def test_zero_inserted_kernel_equals_dilated_convolution(k, dh, dw, h, extra, padding, seed):
    rng = np.random.default_rng(seed)
    size = effective_kernel_size(k, max(dh, dw)) + extra
    x = rng.normal(size=(2, 3, size + h, size)).astype(np.float64)
    w = rng.normal(size=(4, 3, k, k))
    reference = F.conv2d(
        torch.from_numpy(x), torch.from_numpy(w), padding=padding, dilation=(dh, dw)
    ).numpy()
    wide = dilate_kernel(w, (dh, dw))
    assert wide.shape[-2:] == (dh * (k - 1) + 1, dw * (k - 1) + 1)
    # NumPy conv with dilation 1 and the zero-inserted kernel
    np.testing.assert_allclose(np_conv2d(x, wide, padding=padding), reference, atol=1e-10)
    # and torch, to rule out a shared mistake in cnnlab's conv2d
    via_torch = F.conv2d(torch.from_numpy(x), torch.from_numpy(wide), padding=padding).numpy()
    np.testing.assert_allclose(via_torch, reference, atol=1e-10)


def test_dilate_kernel_keeps_taps_and_inserts_zeros():
    w = np.arange(1, 10).reshape(3, 3)
    wide = dilate_kernel(w, 3)
    assert wide.shape == (7, 7)
    assert wide.sum() == w.sum() and np.count_nonzero(wide) == 9
    assert wide[6, 3] == w[2, 1]


@pytest.mark.parametrize("bad", [0, -1])
def test_dilate_kernel_rejects_bad_dilation(bad):
    with pytest.raises(ValueError, match="dilation"):
        dilate_kernel(np.ones((3, 3)), bad)


def test_dilate_kernel_rejects_vectors():
    with pytest.raises(ValueError, match="kernel"):
        dilate_kernel(np.ones(3), 2)


def _brute_force_counts(size, rate, k=3):
    """Pad an all-ones map with zeros, as 'same' padding does, and count nonzero taps."""
    pad = rate * (k - 1) // 2
    ones = np.pad(np.ones((size, size)), pad)
    counts = np.zeros((size, size), int)
    for i in range(size):
        for j in range(size):
            for m in range(k):
                for n in range(k):
                    counts[i, j] += ones[i + rate * m, j + rate * n] > 0
    return counts


@settings(max_examples=30, deadline=None)
@given(size=st.integers(1, 20), rate=st.integers(1, 25), k=st.sampled_from([1, 3, 5]))
def test_valid_weight_counts_match_brute_force(size, rate, k):
    np.testing.assert_array_equal(
        valid_weight_counts(size, rate, k), _brute_force_counts(size, rate, k)
    )


@settings(max_examples=30, deadline=None)
@given(size=st.integers(1, 40), rate=st.integers(1, 60))
def test_valid_taps_closed_form(size, rate):
    taps = valid_taps_1d(size, rate)
    # all three taps inside: rate <= i <= n-1-rate; only the centre: i < rate and i > n-1-rate
    assert (taps == 3).sum() == max(0, size - 2 * rate)
    assert (taps == 1).sum() == max(0, min(size, 2 * rate - size))


def test_valid_weight_fractions_65x65_paper_shape():
    rates = list(range(1, 66))
    f = valid_weight_fractions(65, rates)
    for i, r in enumerate(rates):
        assert math.isclose(sum(f[c][i] for c in f), 1.0)
        # closed form: (n - 2r)^2 positions see all 9 weights
        assert math.isclose(f[9][i], max(0, 65 - 2 * r) ** 2 / 65**2)
    # the paper's reading: small rates use all 9 weights, large rates only the centre one
    assert f[9][0] > 0.9 and f[1][0] == 0
    assert f[1][-1] == 1.0 and f[9][-1] == 0.0
    # degenerate (1x1) everywhere once r >= n
    assert valid_weight_fractions(65, [65, 100])[1].tolist() == [1.0, 1.0]


def test_valid_weight_fractions_rejects_bad_rates():
    with pytest.raises(ValueError, match="rates"):
        valid_weight_fractions(65, [])
    with pytest.raises(ValueError, match="rates"):
        valid_weight_fractions(65, [1, 0])


def _brute_force_footprint(rates, k=3):
    """Push a single output impulse back through each layer with torch's transposed conv."""
    impulse = torch.ones(1, 1, 1, 1, dtype=torch.float64)
    ones = torch.ones(1, 1, k, k, dtype=torch.float64)
    for r in reversed(rates):
        impulse = F.conv_transpose2d(impulse, ones, dilation=r)
    return impulse[0, 0].numpy()


@pytest.mark.parametrize("rates", [(2, 2, 2), (1, 2, 5), (1, 2, 3), (3,), (2, 4), (1, 1)])
def test_gridding_footprint_counts_paths(rates):
    footprint = gridding_footprint(rates)
    np.testing.assert_array_equal(footprint, _brute_force_footprint(rates))
    size = receptive_field([Layer(3, dilation=r) for r in rates]).size
    assert footprint.shape == (size, size)


def test_equal_rates_leave_holes_mixed_rates_do_not():
    assert (gridding_footprint([2, 2, 2]) == 0).any()
    assert (gridding_footprint([1, 2, 5]) > 0).all()
    # equal rates r only reach offsets that are multiples of r
    reached = np.argwhere(gridding_footprint([3, 3]) > 0)
    assert (reached % 3 == 0).all()


def test_coprime_rates_can_leave_holes():
    # (2, 3) have no common factor, yet reach 81 of 121 pixels (66.9%)
    footprint = gridding_footprint([2, 3])
    assert math.gcd(2, 3) == 1
    assert (footprint > 0).sum() == 81 and footprint.size == 121
    assert round(100 * (footprint > 0).mean(), 1) == 66.9


def test_hdc_condition_on_the_papers_examples():
    # Wang et al.: with K = 3, (1, 2, 5) works (M_2 = 2) and (1, 2, 9) does not (M_2 = 5)
    assert hdc_condition([1, 2, 5]) and (gridding_footprint([1, 2, 5]) > 0).all()
    assert not hdc_condition([1, 2, 9]) and (gridding_footprint([1, 2, 9]) == 0).any()
    # M_2 = 3 <= 3 for (2, 3), but without a first layer at rate 1 nothing closes the gaps
    assert not hdc_condition([2, 3])
    assert hdc_condition([1]) and not hdc_condition([2])
    assert (hdc_max_distance([1, 2, 5]), hdc_max_distance([1, 2, 9])) == (2, 5)
    assert hdc_max_distance([2, 3]) == 3


def _sweep(kernel_size, lengths=range(1, 5), largest_rate=8):
    """(rates, condition, full coverage) for every stack of the given lengths and rates."""
    return [
        (
            rates,
            hdc_condition(rates, kernel_size),
            bool((gridding_footprint(rates, kernel_size) > 0).all()),
        )
        for n in lengths
        for rates in itertools.product(range(1, largest_rate + 1), repeat=n)
    ]


def test_hdc_condition_is_sufficient_and_exact_on_increasing_rates():
    """Where the HDC condition and full coverage agree, over all 4680 stacks of 1 to 4 layers
    with rates 1 to 8 and 3x3 kernels (the counts the docstring of `hdc_condition` quotes)."""
    sweep = _sweep(3)
    assert len(sweep) == 4680
    # sufficient: every stack that meets the condition reaches its whole field
    assert all(full for _, condition, full in sweep if condition)
    assert sum(condition for _, condition, _ in sweep) == 142
    assert sum(full for _, _, full in sweep) == 1210
    # exact on rates in increasing (non-decreasing) order
    increasing = [(r, c, f) for r, c, f in sweep if list(r) == sorted(r)]
    assert len(increasing) == 494
    assert all(condition == full for _, condition, full in increasing)
    # not necessary: the stacks it misses are all out of order, such as (2, 1)
    missed = [rates for rates, condition, full in sweep if full and not condition]
    assert len(missed) == 1068 and (2, 1) in missed
    assert all(list(rates) != sorted(rates) for rates in missed)
    # the footprint does not depend on the order, so the sorted rates decide every stack
    assert all(hdc_condition(sorted(rates)) == full for rates, _, full in sweep)


def test_hdc_condition_with_5x5_kernels_is_sufficient_only():
    sweep = _sweep(5)
    assert all(full for _, condition, full in sweep if condition)
    missed = [r for r, c, f in sweep if f and not c and list(r) == sorted(r)]
    # the recursion is written for 3 taps per row; with 5 it misses two increasing stacks
    assert missed == [(1, 1, 8), (1, 1, 8, 8)]


def test_hdc_condition_rejects_bad_arguments():
    with pytest.raises(ValueError, match="kernel_size"):
        hdc_condition([1, 2], kernel_size=4)
    with pytest.raises(ValueError, match="kernel_size"):
        hdc_condition([1, 2], kernel_size=1)
    with pytest.raises(ValueError, match="rates"):
        hdc_condition([])
    with pytest.raises(ValueError, match="two layers"):
        hdc_max_distance([1])


def test_multi_grid_rates_do_not_fill_the_holes():
    # DeepLabv3's multi-grid (1, 2, 4) at block rate 2: rates (2, 4, 8), 225 of 841 pixels
    footprint = gridding_footprint(multi_grid_rates((1, 2, 4), 2))
    assert (footprint > 0).sum() == 225 and footprint.size == 841
    assert round(100 * (footprint > 0).mean(), 1) == 26.8
    assert not hdc_condition(multi_grid_rates((1, 2, 4), 2))


def test_multi_grid_rates_follow_the_paper():
    # DeepLabv3 section 3.2: Multi_Grid = (1, 2, 4) and rate = 2 give rates (2, 4, 8)
    assert multi_grid_rates((1, 2, 4), 2) == (2, 4, 8)
    assert multi_grid_rates((1, 1, 1), 4) == (4, 4, 4)
    with pytest.raises(ValueError, match="base_rate"):
        multi_grid_rates((1, 2, 4), 0)
    with pytest.raises(TypeError, match="unit_rates"):
        multi_grid_rates((1, 2.5, 4), 2)


@settings(max_examples=15, deadline=None)
@given(
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    rates=st.lists(st.integers(1, 30), min_size=1, max_size=4),
)
def test_aspp_branch_shapes_keep_the_feature_size(h, w, rates):
    shapes = aspp_branch_shapes(16, (h, w), 8, rates)
    for r in rates:
        assert shapes[f"rate {r}"] == (8, h, w)
    assert shapes["concat"] == (8 * (len(rates) + 2), h, w)
    assert shapes["pool"] == (8, 1, 1)


def test_fft_conv_and_atrous_share_one_dilate_kernel():
    import cnnlab.atrous
    import cnnlab.numpy

    assert cnnlab.atrous.dilate_kernel is cnnlab.numpy.dilate_kernel
