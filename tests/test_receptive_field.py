"""Receptive fields: published figures, the traced field against the closed form, and the field
found by perturbing input pixels against the computed interval."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlab.receptive_field import (
    Interval,
    Layer,
    ReceptiveField,
    UnalignedPathsError,
    UnknownLayerError,
    alexnet_v2_layers,
    effective_receptive_field,
    receptive_field,
    receptive_field_of,
    receptive_field_steps,
    resnet_v1_50_layers,
    vgg16_layers,
)


@pytest.fixture(autouse=True)
def float64_by_default():
    """Exact float64 for this module's perturbation tests, restored afterwards so that the
    default dtype does not leak into other test modules."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


# ------------------------------------------------------------------------------------------
# Published figures (Araujo, Norris & Sim, Distill 2019, table of classic networks)
# ------------------------------------------------------------------------------------------


def test_alexnet_v2_matches_distill_table():
    assert receptive_field(alexnet_v2_layers()) == ReceptiveField(195, 32, 64)


def test_vgg16_matches_distill_table():
    assert receptive_field(vgg16_layers()) == ReceptiveField(212, 32, 90)


def test_resnet_v1_50_matches_distill_table():
    rf = receptive_field(resnet_v1_50_layers(224))
    assert (rf.size, rf.stride) == (483, 32)
    # Padding: conv1 pads 3, pool1 is TF 'SAME' on an even 112 input (nothing at the start), and
    # every one of the 16 3x3 convolutions pads 1 at the jump of its input:
    # 3 + 1*4*3 (block1) + 1*8*4 (block2) + 1*16*6 (block3) + 1*32*3 (block4).
    assert rf.padding == 3 + 4 * 3 + 8 * 4 + 16 * 6 + 32 * 3 == 239


# ------------------------------------------------------------------------------------------
# torchvision-layout ResNet-50, written here as a module and traced
# ------------------------------------------------------------------------------------------


class Bottleneck(nn.Module):
    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = 4 * width
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += identity
        return self.relu(out)


RESNET50_STAGES = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))


class ResNet50(nn.Module):
    def __init__(self, width_divisor: int = 1) -> None:
        super().__init__()
        c = 64 // width_divisor
        self.conv1 = nn.Conv2d(3, c, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        cin = c
        for index, (width, blocks, stride) in enumerate(RESNET50_STAGES, start=1):
            width //= width_divisor
            units = []
            for block in range(blocks):
                units.append(Bottleneck(cin, width, stride if block == 0 else 1))
                cin = 4 * width
            setattr(self, f"layer{index}", nn.Sequential(*units))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(cin, 1000)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def resnet50_by_hand() -> tuple[int, int, int]:
    """Size, stride and padding along the deepest path, by the recurrence written out here."""
    size, jump, padding = 1, 1, 0
    path = [(7, 2, 3), (3, 2, 1)]  # conv1, maxpool
    for _, blocks, stride in RESNET50_STAGES:
        path += [(3, stride, 1)] + [(3, 1, 1)] * (blocks - 1)  # the 1x1 convs add nothing
    for k, s, p in path:
        size += (k - 1) * jump
        padding += p * jump
        jump *= s
    return size, jump, padding


@pytest.fixture(scope="module")
def resnet50():
    return ResNet50(width_divisor=16)


def test_resnet50_traced_matches_hand_derivation(resnet50):
    size, stride, padding = resnet50_by_hand()
    assert (size, stride, padding) == (427, 32, 213)  # 427 is the figure usually quoted
    assert receptive_field_of(resnet50, 224, output="layer4") == ReceptiveField(size, 32, padding)


def test_resnet50_full_width_traces_without_running():
    rf = receptive_field_of(ResNet50(), 224, output="layer4")
    assert rf.stride == 32 and rf.size == resnet50_by_hand()[0]


def test_resnet50_stages(resnet50):
    report = receptive_field_of(resnet50, 224, stages=["maxpool", "layer1", "layer2", "layer3"])
    assert [rf.stride for rf in report.values()] == [4, 4, 8, 16]
    assert report["maxpool"] == receptive_field([Layer(7, 2, 3), Layer(3, 2, 1)])
    # stages=True lists the direct children up to the first the field cannot pass (flatten)
    every = receptive_field_of(resnet50, 224, stages=True)
    assert list(every) == ["conv1", "bn1", "relu", "maxpool"] + [
        f"layer{i}" for i in range(1, 5)
    ] + ["avgpool"]  # fmt: skip
    assert every["layer4"] == receptive_field_of(resnet50, 224, output="layer4")


def test_resnet50_global_pool_and_flatten(resnet50):
    with pytest.raises(UnknownLayerError, match="flatten"):
        receptive_field_of(resnet50, 224)
    # adaptive pooling of 7x7 to 1x1 is a 7x7/7 average pool
    rf = receptive_field_of(resnet50, 224, output="avgpool")
    assert (rf.size, rf.stride) == (427 + 6 * 32, 7 * 32)


# ------------------------------------------------------------------------------------------
# Random chains: traced = closed form = recurrence, and the field measured by perturbation
# ------------------------------------------------------------------------------------------


@st.composite
def layer_specs(draw):
    kind = draw(st.sampled_from(["conv", "conv", "max", "avg"]))
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    d = (1, 1) if kind == "avg" else (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    if kind == "conv":
        keff = [d[a] * (k[a] - 1) + 1 for a in range(2)]
        p = (draw(st.integers(0, keff[0] // 2)), draw(st.integers(0, keff[1] // 2)))
    else:
        p = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    return kind, k, s, p, d


def minimal_input(specs) -> tuple[int, int]:
    need = [1, 1]
    for _, k, s, p, d in reversed(specs):
        for a in range(2):
            keff = d[a] * (k[a] - 1) + 1
            need[a] = max(1, (need[a] - 1) * s[a] + keff - 2 * p[a])
    return need[0], need[1]


def build(specs, activations: bool = True) -> nn.Sequential:
    """A nested Sequential with all-ones kernels, no bias, and pointwise layers in between."""
    blocks = []
    for kind, k, s, p, d in specs:
        if kind == "conv":
            conv = nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d, bias=False)
            nn.init.ones_(conv.weight)
            layer = conv
        elif kind == "max":
            layer = nn.MaxPool2d(k, stride=s, padding=p, dilation=d)
        else:
            layer = nn.AvgPool2d(k, stride=s, padding=p)
        extra = [nn.ReLU(), nn.Identity()] if activations else []
        blocks.append(nn.Sequential(layer, *extra))
    return nn.Sequential(*blocks)


def layers_of(specs) -> list[Layer]:
    return [Layer(k, s, p, d) for _, k, s, p, d in specs]


def influence(net: nn.Module, h: int, w: int) -> np.ndarray:
    """influence[i, j, y, x]: does input pixel (y, x) change output unit (i, j)?"""
    impulses = torch.eye(h * w).reshape(h * w, 1, h, w)
    with torch.no_grad():
        out = net(impulses)  # (h*w, 1, ho, wo)
    ho, wo = out.shape[-2:]
    return (out[:, 0] > 0).numpy().reshape(h, w, ho, wo).transpose(2, 3, 0, 1)


def by_hand(specs) -> tuple[list[int], list[bool]]:
    """Field size per axis, and whether the field has no holes (each layer's taps, J d apart in
    input pixels, are at most one field of the layer below apart)."""
    size, jump, contiguous = [1, 1], [1, 1], [True, True]
    for _, k, s, _, d in specs:
        for a in range(2):
            if k[a] > 1 and d[a] * jump[a] > size[a]:
                contiguous[a] = False
            size[a] += (k[a] - 1) * d[a] * jump[a]
            jump[a] *= s[a]
    return size, contiguous


def check_perturbation(
    net: nn.Module, rf: ReceptiveField, h: int, w: int, contiguous, padded_inside: bool
) -> None:
    """Compare the pixels that move each output unit with the unit's computed interval.

    - No pixel outside the interval ever moves the unit.
    - A unit whose interval lies inside the image is moved by every pixel of it (no holes) or
      at least by both ends of it on each axis (holes from dilation or stride).
    - If no layer after the first pads (``padded_inside`` False), border units too are moved by
      every pixel of their interval clipped to the image. (Zero padding in a later layer cuts
      paths: a padded unit is a constant, so pixels reached only through it move nothing.)
    """
    seen = influence(net, h, w)
    ho, wo = seen.shape[:2]
    for i in range(ho):
        for j in range(wo):
            rows, cols = rf.interval((i, j))
            clipped = np.zeros((h, w), dtype=bool)
            clipped[rf.box((i, j), (h, w))] = True
            assert not np.any(seen[i, j] & ~clipped), f"unit {(i, j)} moved from outside"
            inside = rows.start >= 0 and cols.start >= 0 and rows.end < h and cols.end < w
            if all(contiguous) and (inside or not padded_inside):
                np.testing.assert_array_equal(seen[i, j], clipped, err_msg=f"unit {(i, j)}")
            elif inside:
                ys, xs = np.nonzero(seen[i, j])
                ends = (ys.min(), ys.max(), xs.min(), xs.max())
                assert ends == (rows.start, rows.end, cols.start, cols.end)


chains = st.lists(layer_specs(), min_size=1, max_size=3)


@settings(max_examples=40, deadline=None)
@given(specs=chains, extra=st.tuples(st.integers(0, 9), st.integers(0, 9)))
def test_traced_equals_closed_form_and_recurrence(specs, extra):
    h, w = (m + e for m, e in zip(minimal_input(specs), extra, strict=True))
    layers = layers_of(specs)
    closed = receptive_field(layers)
    assert receptive_field_of(build(specs), (h, w)) == closed
    assert receptive_field_steps(layers)[-1] == closed
    size, _ = by_hand(specs)
    assert closed.pairs()[0] == tuple(size)


@settings(max_examples=30, deadline=None)
@given(specs=chains, extra=st.tuples(st.integers(0, 6), st.integers(0, 6)))
def test_perturbation_field_equals_interval(specs, extra):
    h, w = (m + e for m, e in zip(minimal_input(specs), extra, strict=True))
    net = build(specs)
    rf = receptive_field(layers_of(specs))
    assert rf.pairs()[0] == tuple(by_hand(specs)[0])
    padded_inside = any(max(p) > 0 for _, _, _, p, _ in specs[1:])
    check_perturbation(net, rf, h, w, by_hand(specs)[1], padded_inside)


# ------------------------------------------------------------------------------------------
# Parallel paths: residual additions and concatenations
# ------------------------------------------------------------------------------------------


def ones_conv(cin, k, stride=1, padding=0, dilation=1, cout=1):
    conv = nn.Conv2d(cin, cout, k, stride=stride, padding=padding, dilation=dilation, bias=False)
    nn.init.ones_(conv.weight)
    return conv


class Residual(nn.Module):
    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x):
        return F.relu(x + self.body(x))


class TwoBranches(nn.Module):
    def __init__(self, a: nn.Module, b: nn.Module) -> None:
        super().__init__()
        self.a, self.b = a, b
        self.mix = ones_conv(2, 1)

    def forward(self, x):
        return self.mix(torch.cat([self.a(x), self.b(x)], dim=1))


centred = st.tuples(st.sampled_from([1, 3, 5]), st.integers(1, 3))  # odd kernel, dilation


@settings(max_examples=25, deadline=None)
@given(
    stem=st.tuples(st.integers(1, 3), st.integers(1, 2)),
    branch_a=st.lists(centred, min_size=1, max_size=2),
    branch_b=st.lists(centred, min_size=0, max_size=2),
    size=st.integers(12, 24),
)
def test_parallel_paths_union_is_exact(stem, branch_a, branch_b, size):
    k0, s0 = stem

    def chain(spec):
        return [Layer(k, 1, d * (k - 1) // 2, d) for k, d in spec]

    def module(spec):
        return nn.Sequential(*[ones_conv(1, k, 1, d * (k - 1) // 2, d) for k, d in spec])

    net = nn.Sequential(
        ones_conv(1, k0, s0),
        TwoBranches(module(branch_a), Residual(module(branch_b))),
    )
    stem_layers = [Layer(k0, s0)]
    longest = max(
        receptive_field(stem_layers + chain(branch_a)),
        receptive_field(stem_layers + chain(branch_b)),
        key=lambda rf: rf.size,
    )
    rf = receptive_field_of(net, size)
    assert rf == longest
    # where neither path has holes (a dilated tap skipping more than the field below it), the
    # pixels that move an output unit are exactly its interval, clipped to the image
    stem_spec = [("conv", (k0, k0), (s0, s0), 0, (1, 1))]
    holes = [
        not all(by_hand(stem_spec + [("conv", (k, k), (1, 1), 0, (d, d)) for k, d in spec])[1])
        for spec in (branch_a, branch_b)
    ]
    if not any(holes):
        check_perturbation(net, rf, size, size, [True, True], padded_inside=True)


def test_unaligned_strides_raise_naming_paths():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.strided = nn.Conv2d(1, 1, 2, stride=2)
            self.wide = nn.Conv2d(1, 1, 9)

        def forward(self, x):
            return self.strided(x) + self.wide(x)

    with pytest.raises(UnalignedPathsError, match="stride 2 along strided.*1 along wide"):
        receptive_field_of(Net(), 16)


def test_unaligned_centres_raise():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.shifted = nn.Conv2d(1, 1, 3)

        def forward(self, x):
            return x + self.shifted(F.pad(x, (2, 0, 2, 0)))

    with pytest.raises(UnalignedPathsError, match="centred"):
        receptive_field_of(Net(), 10)


def test_unknown_layer_is_named():
    net = nn.Sequential(nn.Conv2d(1, 1, 3), nn.Sequential(nn.Upsample(scale_factor=2)))
    with pytest.raises(UnknownLayerError, match=r"'1\.0' \(Upsample\)"):
        receptive_field_of(net, 8)
    # ... unless its geometry is given
    rf = receptive_field_of(net, 8, output="0")
    assert rf == ReceptiveField(3, 1, 0)


def test_custom_rule_and_functional_ops():
    class Blur(nn.Module):
        def forward(self, x):
            return x

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(1, 1, 3, 3))
            self.blur = Blur()

        def forward(self, x):
            x = F.conv2d(x, self.weight, padding=1)
            x = F.max_pool2d(torch.relu(x), 2)
            return self.blur(x) * 2.0

    # Blur is traced through (not a torch.nn layer), so it is the identity here
    assert receptive_field_of(Net(), 16) == receptive_field([Layer(3, 1, 1), Layer(2, 2)])


def test_same_padding_and_non_square():
    net = nn.Sequential(nn.Conv2d(1, 1, (1, 5), padding="same"), nn.Conv2d(1, 1, (3, 1)))
    rf = receptive_field_of(net, (8, 9))
    assert rf == ReceptiveField((3, 5), (1, 1), (0, 2))  # a pair in, pairs out
    assert rf.interval((1, 4)) == (Interval(1, 3, 2.0), Interval(2, 6, 4.0))


def test_layer_validation():
    with pytest.raises(ValueError, match="stride"):
        Layer(3, stride=0)
    with pytest.raises(TypeError, match=r"layers\[1\]"):
        receptive_field([Layer(3), (3, 1)])
    with pytest.raises(TypeError, match="module"):
        receptive_field_of([Layer(3)], 8)


# ------------------------------------------------------------------------------------------
# Effective receptive field
# ------------------------------------------------------------------------------------------


def test_erf_of_linear_net_counts_paths():
    # Two all-ones 3x3 convolutions: each input pixel reaches the centre unit along as many paths
    # as the full convolution of two 3-tap boxes has at that offset: [1, 2, 3, 2, 1] per axis.
    net = nn.Sequential(ones_conv(1, 3), ones_conv(1, 3))
    erf = effective_receptive_field(net, 9)
    tri = np.convolve(np.ones(3), np.ones(3))
    expected = np.zeros((9, 9))
    expected[2:7, 2:7] = np.outer(tri, tri)
    np.testing.assert_allclose(erf, expected)


@pytest.mark.parametrize("trained", [False, True])
def test_erf_lies_inside_the_theoretical_field(trained):
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 4, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(4, 3, 3, padding=2, dilation=2),
    )  # fmt: skip
    if trained:  # a few steps of a real optimiser: the field must stay inside
        x = torch.randn(8, 2, 21, 21)
        for _ in range(5):
            net.zero_grad()
            net(x).square().mean().backward()
            with torch.no_grad():
                for parameter in net.parameters():
                    parameter -= 0.1 * parameter.grad
    mode = net.training
    erf = effective_receptive_field(net, 21, n_samples=4)
    assert net.training == mode
    rf = receptive_field_of(net, 21)
    outside = np.ones_like(erf, dtype=bool)
    centre = (11 // 2, 11 // 2)
    outside[rf.box(centre, 21)] = False
    assert erf.shape == (21, 21)
    assert np.all(erf[outside] == 0)
    assert erf[~outside].max() > 0
