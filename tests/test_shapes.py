"""cnnlab.shapes against torch's own layers and the closed-form laws."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from cnnlab import shapes


@st.composite
def layer_configs(draw):
    k = draw(st.integers(1, 7))
    d = draw(st.integers(1, 4))
    s = draw(st.integers(1, 4))
    p = draw(st.integers(0, 4))
    span = d * (k - 1) + 1
    i = draw(st.integers(max(1, span - 2 * p), 40))
    return i, k, s, p, d


@given(layer_configs())
def test_conv_output_size_matches_torch(config):
    i, k, s, p, d = config
    x = torch.zeros(1, 1, i, 1)
    w = torch.zeros(1, 1, k, 1)
    out = F.conv2d(x, w, stride=(s, 1), padding=(p, 0), dilation=(d, 1))
    assert shapes.conv_output_size(i, k, s, p, d) == out.shape[2]


@given(layer_configs(), layer_configs())
def test_conv_output_size_pairs_are_per_axis(cfg_h, cfg_w):
    got = shapes.conv_output_size(*zip(cfg_h, cfg_w, strict=True))
    assert got == (shapes.conv_output_size(*cfg_h), shapes.conv_output_size(*cfg_w))


@given(st.integers(1, 9), st.integers(1, 9))
def test_effective_kernel_size_counts_span_of_taps(k, d):
    taps = [m * d for m in range(k)]  # positions of the taps of a dilated kernel
    assert shapes.effective_kernel_size(k, d) == taps[-1] - taps[0] + 1


@given(st.integers(1, 4).map(lambda n: 2 * n + 1), st.integers(1, 6), st.integers(1, 30))
def test_same_padding_keeps_size(k, d, i):
    p = shapes.same_padding(k, d)
    span = d * (k - 1) + 1
    if span > i + 2 * p:
        return
    assert shapes.conv_output_size(i, k, 1, p, d) == i


def test_same_padding_rejects_even_effective_kernel():
    with pytest.raises(ValueError, match="odd effective kernel"):
        shapes.same_padding(4)


@given(st.lists(st.integers(1, 4), max_size=6))
def test_output_stride_is_product(strides):
    assert shapes.output_stride(strides) == math.prod(strides)


def test_seed_example_output_stride_16():
    # The seed page: output stride 16 turns 224x224 into 14x14.
    assert 224 // shapes.output_stride([2, 2, 2, 2]) == 14


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(size=5, kernel_size=3, stride=0), "stride must be >= 1"),
        (dict(size=5, kernel_size=3, dilation=0), "dilation must be >= 1"),
        (dict(size=5, kernel_size=3, padding=-1), "padding must be >= 0"),
        (dict(size=5, kernel_size=7), "more than the padded input"),
        (dict(size=5, kernel_size=(3, 3, 3)), "got 3 values"),
        (dict(size=5.0, kernel_size=3), "size must be an int"),
        (dict(size=5, kernel_size=True), "kernel_size must be an int"),
    ],
)
def test_bad_arguments_raise_with_names(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        shapes.conv_output_size(**kwargs)
