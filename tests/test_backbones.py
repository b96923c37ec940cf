"""TinyBackbone: output stride by one argument, stage sizes against a forward pass."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlab.shapes import output_stride
from cnnlab.torch.backbones import TinyBackbone, stage_plan

torch.set_num_threads(1)


@pytest.mark.parametrize("os_", [32, 16, 8])
def test_strides_multiply_to_the_output_stride(os_):
    plan = stage_plan(os_)
    assert output_stride([s for s, _ in plan]) == os_
    # DeepLabv3: every stride removed doubles the dilation of what follows.
    for (_, d_prev), (s, d) in zip(plan, plan[1:], strict=False):
        assert d == (d_prev * 2 if s == 1 else d_prev)


@settings(max_examples=8, deadline=None)
@given(
    os_=st.sampled_from([32, 16, 8]),
    h=st.integers(8, 70),
    w=st.integers(8, 70),
)
def test_stage_shapes_match_a_forward_pass(os_, h, w):
    net = TinyBackbone(in_channels=2, width=2, output_stride=os_).eval()
    with torch.no_grad():
        features = net.forward_stages(torch.zeros(1, 2, h, w))
    rows = net.stage_shapes((h, w))
    assert [tuple(f.shape[1:]) for f in features] == [(r.channels, *r.size) for r in rows]


@pytest.mark.parametrize(("os_", "expected"), [(32, 7), (16, 14), (8, 28)])
def test_224_input_gives_224_over_output_stride(os_, expected):
    net = TinyBackbone(width=4, output_stride=os_).eval()
    with torch.no_grad():
        y = net(torch.zeros(1, 3, 224, 224))
    assert y.shape[-2:] == (224 // os_, 224 // os_) == (expected, expected)


def test_dilation_keeps_the_receptive_field():
    # Closed form for a chain of layers: r = 1 + sum_l (k_l - 1) d_l prod_{j<l} s_j. At output
    # stride 32 (ten 3x3 convolutions, strides 2,1 per stage, no dilation):
    # r = 1 + 2 * (1 + 2 + 2 + 4 + 4 + 8 + 8 + 16 + 16 + 32) = 187.
    # With all weights positive and a positive input no ReLU is ever off, so the gradient of the
    # centre output is non-zero exactly on its receptive field.
    for os_ in (32, 16, 8):
        net = TinyBackbone(in_channels=1, width=1, output_stride=os_).double().eval()
        with torch.no_grad():
            for conv in net.modules():
                if isinstance(conv, torch.nn.Conv2d):
                    conv.weight.fill_(0.1)
        x = torch.ones(1, 1, 512, 512, dtype=torch.float64, requires_grad=True)
        y = net(x)
        y[0, 0, y.shape[2] // 2, y.shape[3] // 2].backward()
        rows = (x.grad[0, 0].sum(dim=1) > 0).nonzero()
        assert int(rows.max() - rows.min() + 1) == 187, os_


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="output_stride"):
        TinyBackbone(output_stride=4)
    with pytest.raises(ValueError, match="width"):
        TinyBackbone(width=0)
    with pytest.raises(TypeError, match="in_channels"):
        TinyBackbone(in_channels=3.0)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        TinyBackbone()(torch.zeros(1, 1, 8, 8))
