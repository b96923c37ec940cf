"""Graded tests of exercise 06, atrous convolution (chapter 6).

Imported by the grading process only. Expected answers come from the cnnlab references
(``cnnlab.atrous``, ``cnnlab.receptive_field``, ``cnnlab.torch.ASPP``); the worker that runs a
submission receives the inputs and nothing else.

The ASPP module a student builds cannot cross the worker boundary (only plain data does), so it
is graded through three locked helpers of the notebook that build it and return plain data:
``aspp_shapes`` (the output shape of every branch and of the head, on a seeded input),
``aspp_parameter_count`` and ``aspp_taps`` (which input pixels reach the centre output pixel of
each branch, by autograd). The same measurements of ``cnnlab.torch.ASPP`` are the references.

Every hint has two levels: a nudge (what to look at), shown on a failure, and the full formula,
shown by ``check(name, function, hint=2)``.
"""

import numpy as np
import torch

from cnnlab.atrous import aspp_branch_shapes as _aspp_branch_shapes
from cnnlab.atrous import dilate_kernel as reference_dilate_kernel
from cnnlab.atrous import gridding_footprint as _gridding_footprint
from cnnlab.atrous import valid_weight_counts
from cnnlab.exercises.spec import Test
from cnnlab.receptive_field import Layer, receptive_field
from cnnlab.torch import ASPP

# Library shortcuts replaced by raising stubs inside the grading worker.
FORBIDDEN = [
    "cnnlab.atrous.dilate_kernel",
    "cnnlab.numpy.dilate_kernel",
    "cnnlab.numpy.dilation.dilate_kernel",
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
    "cnnlab.torch.ASPP",
    "cnnlab.torch.SegmentationNet",
    "cnnlab.torch.aspp.ASPP",
    "cnnlab.torch.aspp.ASPPPooling",
    "cnnlab.torch.aspp.SegmentationNet",
    "cnnlab.torch.aspp._conv_bn_relu",
]

DILATE_HINT = (
    "where does tap (m, n) of the kernel land in the dilated kernel, and how many rows and "
    "columns does the dilated kernel have?",
    "w_d[d*m, d*n] = w[m, n] and 0 elsewhere; the result is d*(k-1)+1 on each side",
)
RF_HINT = (
    "a stride-1 layer widens the receptive field by its span minus one; what is the span of "
    "`kernel_size` taps at rate r?",
    "stride-1 layers: R = 1 + sum over layers of (k - 1) * r_l",
)
FOOTPRINT_HINT = (
    "go down one layer at a time from the output unit: every pixel reached so far reads its "
    "own k x k taps at that layer's rate; the reached set is not the union of the layers' taps",
    "per axis: S = {0}, then for each layer S = {s + r_l (m - (k-1)/2) : s in S, m = 0..k-1}; "
    "out[i, j] = 1 when i - (R-1)/2 and j - (R-1)/2 are both in S, R = 1 + (k-1) sum_l r_l",
)
VALID_HINT = (
    "a weight is valid when the pixel it reads lies inside the map, along the rows and along "
    "the columns",
    "'same' padding, stride 1: output (i, j) reads rows i + r*(m - (k-1)/2) for m = 0..k-1; a "
    "weight is valid when both its row and its column lie inside the map",
)
ASPP_HINT = (
    "one row per branch, in order; which branch changes the spatial size, and which one the "
    "number of channels?",
    "rows: 1x1 branch, one row per rate, image pooling before upsampling, concatenation, "
    "projection; every conv branch keeps H x W",
)
MODULE_SHAPES_HINT = (
    "every branch must give (N, out_channels, H, W): which padding keeps H x W for a 3x3 conv "
    "at rate r, and where does the pooling branch get back to H x W?",
    "1x1 conv (no padding); 3x3 conv with dilation=r and padding=r; pooling branch: "
    "AdaptiveAvgPool2d(1), 1x1 conv, BN, ReLU, F.interpolate(size=x.shape[-2:], "
    "mode='bilinear'); the projection takes (len(rates) + 2) * out_channels channels",
)
PARAMETERS_HINT = (
    "count the weights of every conv and batch norm: does a conv carry a bias that its batch "
    "norm makes redundant? does every branch, the pooling one included, have its batch norm?",
    "C_in C_out (1x1) + len(rates) 9 C_in C_out + C_in C_out (pooling) + (len(rates) + 2) "
    "C_out^2 (projection), plus 2 C_out for each of the len(rates) + 3 batch norms; no bias",
)
TAPS_HINT = (
    "a 3x3 branch at rate r reads pixels r apart: give the convolution its dilation, not only "
    "its padding",
    "branch 0 reads the centre pixel only; the branch of rate r reads the centre + r (-1, 0, 1) "
    "in each direction (those inside the map); the pooling branch reads every pixel",
)


# --- References. ---------------------------------------------------------------------------


def reference_stack_receptive_field(rates, kernel_size=3):
    return receptive_field([Layer(kernel_size, dilation=r) for r in rates]).size


def reference_gridding_footprint(rates, kernel_size=3):
    return (_gridding_footprint(rates, kernel_size) > 0).astype(np.int64)


def reference_count_valid_weights(size, rate, kernel_size=3):
    return valid_weight_counts(size, rate, kernel_size)


def reference_aspp_branch_shapes(in_channels, feature_size, out_channels, rates):
    shapes = _aspp_branch_shapes(in_channels, feature_size, out_channels, rates)
    keys = ["1x1", *(f"rate {r}" for r in rates), "pool", "concat", "project"]
    return np.array([shapes[k] for k in keys])


# The measurements that the notebook's locked helpers make of the student's module, made here
# of cnnlab's ASPP (same seeds, same input, float64, eval mode).


def seeded_aspp(in_channels, out_channels, rates) -> torch.nn.Module:
    torch.manual_seed(0)
    return ASPP(in_channels, out_channels, tuple(rates)).double().eval()


def _input(batch, channels, size, requires_grad=False) -> torch.Tensor:
    h, w = (size, size) if np.isscalar(size) else size
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(batch, channels, h, w, dtype=torch.float64, generator=generator)
    return x.requires_grad_(requires_grad)


def measure_shapes(module: torch.nn.Module, in_channels: int, size) -> np.ndarray:
    """Rows (N, C, H, W): each branch's output, then the module's, on a (2, C_in, H, W) input."""
    x = _input(2, in_channels, size)
    with torch.no_grad():
        rows = [tuple(branch(x).shape) for branch in module.branches]
        rows.append(tuple(module(x).shape))
    return np.array(rows)


def measure_taps(module: torch.nn.Module, in_channels: int, size: int) -> np.ndarray:
    """(branches, size, size) of 0/1: input pixels with a nonzero gradient of the centre output
    of each branch (summed over channels, four images)."""
    x = _input(4, in_channels, size, requires_grad=True)
    masks = []
    for branch in module.branches:
        (grad,) = torch.autograd.grad(branch(x)[:, :, size // 2, size // 2].sum(), x)
        masks.append((grad != 0).any(dim=1).any(dim=0).numpy())
    return np.array(masks, dtype=np.int64)


def reference_aspp_shapes(in_channels, out_channels, rates, size):
    return measure_shapes(seeded_aspp(in_channels, out_channels, rates), in_channels, size)


def reference_aspp_parameter_count(in_channels, out_channels, rates):
    return sum(p.numel() for p in ASPP(in_channels, out_channels, tuple(rates)).parameters())


def reference_aspp_taps(in_channels, out_channels, rates, size):
    return measure_taps(seeded_aspp(in_channels, out_channels, rates), in_channels, size)


def _kernel(k, d):
    return lambda rng: (rng.normal(size=(k, k)), d)


def _rect_kernel(kh, kw, d):
    return lambda rng: (rng.normal(size=(kh, kw)), d)


TESTS = [
    # dilate_kernel
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
    # stack_receptive_field
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
    Test(
        "stack_rf_5x5",
        "stack_receptive_field",
        ((1, 3), 5),
        reference_stack_receptive_field,
        points=1,
        exact=True,
        hint=RF_HINT,
        description="two 5x5 layers at rates 1 and 3",
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
    # gridding_footprint
    Test(
        "footprint_equal_rates",
        "gridding_footprint",
        ((2, 2),),
        reference_gridding_footprint,
        points=1,
        exact=True,
        hint=FOOTPRINT_HINT,
        uses=("stack_receptive_field",),
        description="two 3x3 layers at rate 2: a grid with holes, 25 of 81 pixels",
    ),
    Test(
        "footprint_coprime_rates",
        "gridding_footprint",
        ((2, 3),),
        reference_gridding_footprint,
        points=1,
        exact=True,
        hint=FOOTPRINT_HINT,
        uses=("stack_receptive_field",),
        description="rates 2 and 3 have no common factor and still leave holes",
    ),
    Test(
        "footprint_5x5",
        "gridding_footprint",
        ((2, 3), 5),
        reference_gridding_footprint,
        points=1,
        exact=True,
        hint=FOOTPRINT_HINT,
        uses=("stack_receptive_field",),
        description="the same rates with 5x5 kernels",
    ),
    *(
        Test(
            f"footprint_{'_'.join(map(str, rates))}_k{k}",
            "gridding_footprint",
            (rates, k),
            reference_gridding_footprint,
            points=0.5,
            hidden=True,
            exact=True,
            hint=FOOTPRINT_HINT,
            uses=("stack_receptive_field",),
        )
        for rates, k in [
            ((1, 2, 5), 3),
            ((1, 2, 9), 3),
            ((2, 4, 8), 3),
            ((5, 2, 1), 3),
            ((4, 6), 3),
            ((3,), 3),
            ((1, 1, 8), 5),
        ]
    ),
    # count_valid_weights
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
    # aspp_branch_shapes
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
    # build_aspp, through the notebook's locked helpers
    Test(
        "module_shapes_small",
        "aspp_shapes",
        (4, 6, (2, 4, 6), (9, 12)),
        reference_aspp_shapes,
        points=1,
        exact=True,
        hint=MODULE_SHAPES_HINT,
        description="4 channels in, 6 out, rates (2, 4, 6), a 9x12 map",
    ),
    Test(
        "module_shapes_rate_beyond_map",
        "aspp_shapes",
        (3, 5, (12,), (5, 7)),
        reference_aspp_shapes,
        points=1,
        hidden=True,
        exact=True,
        hint=MODULE_SHAPES_HINT,
    ),
    Test(
        "module_shapes_one_pixel",
        "aspp_shapes",
        (8, 4, (1, 2, 3, 4), 1),
        reference_aspp_shapes,
        points=1,
        hidden=True,
        exact=True,
        hint=MODULE_SHAPES_HINT,
    ),
    Test(
        "module_parameters_small",
        "aspp_parameter_count",
        (16, 8, (6, 12, 18)),
        reference_aspp_parameter_count,
        points=1,
        exact=True,
        hint=PARAMETERS_HINT,
        description="16 channels in, 8 out, rates (6, 12, 18)",
    ),
    Test(
        "module_parameters_deeplabv3",
        "aspp_parameter_count",
        (2048, 256, (6, 12, 18)),
        reference_aspp_parameter_count,
        points=1,
        hidden=True,
        exact=True,
        hint=PARAMETERS_HINT,
    ),
    Test(
        "module_parameters_two_rates",
        "aspp_parameter_count",
        (5, 3, (1, 2)),
        reference_aspp_parameter_count,
        points=1,
        hidden=True,
        exact=True,
        hint=PARAMETERS_HINT,
    ),
    Test(
        "module_taps_small",
        "aspp_taps",
        (3, 8, (1, 3, 6), 13),
        reference_aspp_taps,
        points=1,
        exact=True,
        hint=TAPS_HINT,
        description="3 channels in, 8 out, rates (1, 3, 6), a 13x13 map",
    ),
    Test(
        "module_taps_rate_beyond_map",
        "aspp_taps",
        (2, 8, (2, 5), 9),
        reference_aspp_taps,
        points=1,
        hidden=True,
        exact=True,
        hint=TAPS_HINT,
    ),
    Test(
        "module_taps_even_map",
        "aspp_taps",
        (4, 8, (4,), 8),
        reference_aspp_taps,
        points=1,
        hidden=True,
        exact=True,
        hint=TAPS_HINT,
    ),
]
