"""Graded tests of exercise 06, atrous convolution (chapter 6).

Imported by the grading process only. Expected answers come from the cnnlab references
(``cnnlab.atrous``, ``cnnlab.shapes.effective_kernel_size``, ``cnnlab.receptive_field``); the
worker that runs a submission receives the inputs and nothing else.
"""

import numpy as np

from cnnlab.atrous import aspp_branch_shapes as _aspp_branch_shapes
from cnnlab.atrous import dilate_kernel as reference_dilate_kernel
from cnnlab.atrous import valid_weight_counts
from cnnlab.exercises.spec import Test
from cnnlab.receptive_field import Layer, receptive_field
from cnnlab.shapes import effective_kernel_size as _effective_kernel_size

# Library shortcuts replaced by raising stubs inside the grading worker.
FORBIDDEN = [
    "cnnlab.atrous.dilate_kernel",
    "cnnlab.atrous.valid_taps_1d",
    "cnnlab.atrous.valid_weight_counts",
    "cnnlab.atrous.valid_weight_fractions",
    "cnnlab.atrous.gridding_footprint",
    "cnnlab.atrous.aspp_branch_shapes",
    "cnnlab.shapes.effective_kernel_size",
    "cnnlab.receptive_field.receptive_field",
    "cnnlab.receptive_field.receptive_field_steps",
    "cnnlab.receptive_field.closed_form.receptive_field",
    "cnnlab.receptive_field.closed_form.receptive_field_steps",
    "cnnlab.receptive_field.closed_form.Layer",
    "cnnlab.geometry.Window",  # Window.span is the effective kernel size
]

DILATE_HINT = "w_d[d*m, d*n] = w[m, n] and 0 elsewhere; the result is d*(k-1)+1 on each side"
SIZE_HINT = "k_eff = k + (k - 1)(d - 1)"
RF_HINT = "stride-1 layers: R = 1 + sum over layers of (k_eff - 1)"
VALID_HINT = (
    "'same' padding, stride 1: output (i, j) reads rows i + r*(m - (k-1)/2) for m = 0..k-1; a "
    "weight is valid when both its row and its column lie inside the map"
)
ASPP_HINT = (
    "rows: 1x1 branch, one row per rate, image pooling before upsampling, concatenation, "
    "projection; every conv branch keeps H x W"
)


def reference_effective_kernel_size(kernel_size, dilation):
    return _effective_kernel_size(kernel_size, dilation)


def reference_stack_receptive_field(rates, kernel_size=3):
    return receptive_field([Layer(kernel_size, dilation=r) for r in rates]).size


def reference_count_valid_weights(size, rate, kernel_size=3):
    return valid_weight_counts(size, rate, kernel_size)


def reference_aspp_branch_shapes(in_channels, feature_size, out_channels, rates):
    shapes = _aspp_branch_shapes(in_channels, feature_size, out_channels, rates)
    keys = ["1x1", *(f"rate {r}" for r in rates), "pool", "concat", "project"]
    return np.array([shapes[k] for k in keys])


def _kernel(k, d):
    return lambda rng: (rng.normal(size=(k, k)), d)


def _rect_kernel(kh, kw, d):
    return lambda rng: (rng.normal(size=(kh, kw)), d)


TESTS = [
    Test(
        "dilate_3x3_rate2",
        "dilate_kernel",
        _kernel(3, 2),
        reference_dilate_kernel,
        points=1,
        hint=DILATE_HINT,
        description="a 3x3 kernel at rate 2 becomes 5x5",
    ),
    Test(
        "dilate_rate1_unchanged",
        "dilate_kernel",
        _kernel(3, 1),
        reference_dilate_kernel,
        points=1,
        hint=DILATE_HINT,
        description="rate 1 leaves the kernel as it is",
    ),
    *(
        Test(
            f"dilate_{kh}x{kw}_rate{d}",
            "dilate_kernel",
            _rect_kernel(kh, kw, d),
            reference_dilate_kernel,
            points=0.5,
            hidden=True,
            hint=DILATE_HINT,
        )
        for kh, kw, d in [(3, 3, 6), (2, 4, 3), (5, 1, 4), (1, 1, 7)]
    ),
    Test(
        "effective_size_3_rate2",
        "effective_kernel_size",
        (3, 2),
        reference_effective_kernel_size,
        points=1,
        exact=True,
        hint=SIZE_HINT,
    ),
    *(
        Test(
            f"effective_size_{k}_rate{d}",
            "effective_kernel_size",
            (k, d),
            reference_effective_kernel_size,
            points=0.5,
            hidden=True,
            exact=True,
            hint=SIZE_HINT,
        )
        for k, d in [(3, 18), (5, 3), (1, 9), (7, 1)]
    ),
    Test(
        "stack_rf_doubling",
        "stack_receptive_field",
        ((1, 2, 4),),
        reference_stack_receptive_field,
        points=1,
        exact=True,
        hint=RF_HINT,
        description="three 3x3 layers at rates 1, 2, 4",
    ),
    *(
        Test(
            f"stack_rf_{'_'.join(map(str, rates))}_k{k}",
            "stack_receptive_field",
            (rates, k),
            reference_stack_receptive_field,
            points=0.5,
            hidden=True,
            exact=True,
            hint=RF_HINT,
        )
        for rates, k in [((2, 2, 2), 3), ((1, 2, 5, 9), 3), ((1,), 3), ((1, 2, 4, 8, 16), 5)]
    ),
    Test(
        "valid_weights_7x7_rate2",
        "count_valid_weights",
        (7, 2),
        reference_count_valid_weights,
        points=1,
        exact=True,
        hint=VALID_HINT,
    ),
    Test(
        "valid_weights_5x5_rate5",
        "count_valid_weights",
        (5, 5),
        reference_count_valid_weights,
        points=1,
        exact=True,
        hint=VALID_HINT,
        description="rate equal to the map size: only the centre weight is valid",
    ),
    *(
        Test(
            f"valid_weights_{n}x{n}_rate{r}_k{k}",
            "count_valid_weights",
            (n, r, k),
            reference_count_valid_weights,
            points=0.5,
            hidden=True,
            exact=True,
            hint=VALID_HINT,
        )
        for n, r, k in [
            (65, 6, 3),
            (65, 24, 3),
            (65, 33, 3),
            (33, 18, 3),
            (8, 3, 3),
            (1, 1, 3),
            (20, 7, 3),
        ]
    ),
    Test(
        "valid_weights_5x5_kernel",
        "count_valid_weights",
        (12, 2, 5),
        reference_count_valid_weights,
        points=0.5,
        hidden=True,
        exact=True,
        hint=VALID_HINT,
    ),
    Test(
        "aspp_os16",
        "aspp_branch_shapes",
        (2048, 33, 256, (6, 12, 18)),
        reference_aspp_branch_shapes,
        points=1,
        exact=True,
        hint=ASPP_HINT,
        description="DeepLabv3 at output stride 16 on a 513x513 crop",
    ),
    *(
        Test(
            f"aspp_{c}_{h}x{w}_{len(rates)}rates",
            "aspp_branch_shapes",
            (c, (h, w), o, rates),
            reference_aspp_branch_shapes,
            points=0.5,
            hidden=True,
            exact=True,
            hint=ASPP_HINT,
        )
        for c, h, w, o, rates in [
            (2048, 65, 65, 256, (12, 24, 36)),
            (64, 8, 10, 32, (1, 2, 3)),
            (16, 1, 1, 8, (30,)),
            (512, 17, 9, 128, (2, 4, 8, 16)),
        ]
    ),
]
