"""ASPP: branch structure as DeepLabv3 section 3.3 describes it, output shapes, argument checks,
and the output-stride backbone's receptive field."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnlab.atrous import aspp_branch_shapes
from cnnlab.receptive_field import receptive_field_of
from cnnlab.torch import ASPP, SegmentationNet, TinyBackbone

torch.set_num_threads(1)


def _convs(module):
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


@pytest.mark.parametrize("rates", [(6, 12, 18), (12, 24, 36)])
def test_branch_structure_follows_the_paper(rates):
    aspp = ASPP(2048, rates=rates)
    # five branches: 1x1, three 3x3 atrous, image pooling
    assert len(aspp.branches) == 5
    one_by_one = _convs(aspp.branches[0])
    assert [(c.kernel_size, c.dilation) for c in one_by_one] == [((1, 1), (1, 1))]
    for branch, rate in zip(aspp.branches[1:4], rates, strict=True):
        (conv,) = _convs(branch)
        assert conv.kernel_size == (3, 3)
        assert conv.dilation == (rate, rate) and conv.padding == (rate, rate)
    pool = aspp.branches[4]
    assert any(
        isinstance(m, nn.AdaptiveAvgPool2d) and m.output_size in (1, (1, 1)) for m in pool.modules()
    )
    (pool_conv,) = _convs(pool)
    assert pool_conv.kernel_size == (1, 1)
    # every branch: conv (256 filters) + batch norm + ReLU
    for branch in aspp.branches:
        assert [c.out_channels for c in _convs(branch)] == [256]
        assert sum(isinstance(m, nn.BatchNorm2d) for m in branch.modules()) == 1
        assert sum(isinstance(m, nn.ReLU) for m in branch.modules()) == 1
    # concatenation (5 x 256) projected by a 1x1 conv to 256, with BN
    (project,) = _convs(aspp.project)
    assert (project.in_channels, project.out_channels, project.kernel_size) == (1280, 256, (1, 1))
    assert any(isinstance(m, nn.BatchNorm2d) for m in aspp.project.modules())


@settings(max_examples=8, deadline=None)
@given(
    h=st.integers(1, 20),
    w=st.integers(1, 20),
    c_in=st.integers(1, 6),
    c_out=st.integers(1, 5),
    rates=st.lists(st.integers(1, 25), min_size=1, max_size=4),
)
def test_output_and_branch_shapes(h, w, c_in, c_out, rates):
    aspp = ASPP(c_in, c_out, rates).eval()
    x = torch.randn(2, c_in, h, w)
    with torch.no_grad():
        outputs = aspp.branch_outputs(x)
        y = aspp(x)
    assert y.shape == (2, c_out, h, w)
    expected = aspp_branch_shapes(c_in, (h, w), c_out, rates)
    assert [tuple(o.shape[1:]) for o in outputs] == [
        expected["1x1"],
        *(expected[f"rate {r}"] for r in rates),
        expected["pool upsampled"],
    ]


def test_image_pooling_branch_is_constant_over_the_map():
    aspp = ASPP(3, 4).eval()
    with torch.no_grad():
        pooled = aspp.branch_outputs(torch.randn(1, 3, 9, 7))[-1]
    assert torch.allclose(pooled, pooled[..., :1, :1].expand_as(pooled))


def test_rate_beyond_the_map_acts_as_1x1():
    # A 3x3 filter at rate >= the map size only ever reads its centre tap inside the map.
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, padding=10, dilation=10, bias=False)
    centre = nn.Conv2d(2, 3, 1, bias=False)
    centre.weight.data = conv.weight.data[:, :, 1:2, 1:2].clone()
    x = torch.randn(1, 2, 8, 8)
    assert torch.allclose(conv(x), centre(x), atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"in_channels": 0}, ValueError, "in_channels"),
        ({"in_channels": 4, "out_channels": 0}, ValueError, "out_channels"),
        ({"in_channels": 4, "rates": (6, 0, 18)}, ValueError, "rates"),
        ({"in_channels": 4, "rates": (6, 1.5)}, TypeError, "rates"),
        ({"in_channels": 4, "rates": ()}, ValueError, "rates"),
        ({"in_channels": 4, "dropout": 1.0}, ValueError, "dropout"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        ASPP(**kwargs)


def test_wrong_input_channels_are_named():
    with pytest.raises(ValueError, match=r"\(N, 4, H, W\)"):
        ASPP(4, 2)(torch.zeros(1, 3, 5, 5))


@pytest.mark.parametrize("os_", [32, 16, 8])
def test_dilation_keeps_the_backbone_receptive_field(os_):
    # replacing strides with dilation keeps the receptive field of the last stage
    # (the stages are traced: forward's input check is control flow that torch.fx refuses)
    def field(output_stride):
        return receptive_field_of(nn.Sequential(*TinyBackbone(3, 2, output_stride).stages), 224)

    reference = field(32)
    assert reference.size == 187  # 1 + 2 * (1 + 2 + 2 + 4 + 4 + 8 + 8 + 16 + 16 + 32)
    assert field(os_).size == reference.size
    assert field(os_).stride == os_


def test_segmentation_net_shapes_with_and_without_aspp():
    for rates in (None, (1, 2, 3)):
        net = SegmentationNet(
            3, in_channels=1, width=2, output_stride=8, head_channels=4, rates=rates
        )
        with torch.no_grad():
            assert net.eval()(torch.zeros(2, 1, 40, 48)).shape == (2, 3, 40, 48)
    assert isinstance(SegmentationNet(3, rates=(6,)).head, ASPP)
