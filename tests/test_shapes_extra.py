"""conv_params, conv_macs, transposed_output_size, conv_input_sizes, split_padding vs torch."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

from cnnlab.shapes import (
    conv_input_sizes,
    conv_macs,
    conv_output_size,
    conv_params,
    split_padding,
    transposed_output_size,
)

FAST = settings(max_examples=40, deadline=None)


@st.composite
def layers(draw):
    groups = draw(st.integers(1, 3))
    c_in, c_out = groups * draw(st.integers(1, 4)), groups * draw(st.integers(1, 4))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    h = draw(st.integers(max(1, dilation[0] * (kh - 1) + 1 - 2 * padding[0]), 14))
    w = draw(st.integers(max(1, dilation[1] * (kw - 1) + 1 - 2 * padding[1]), 14))
    bias = draw(st.booleans())
    return dict(
        c_in=c_in,
        c_out=c_out,
        k=(kh, kw),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        size=(h, w),
        bias=bias,
    )


@FAST
@given(layers())
def test_conv_params_matches_torch(layer):
    conv = nn.Conv2d(
        layer["c_in"], layer["c_out"], layer["k"], groups=layer["groups"], bias=layer["bias"]
    )
    expected = sum(p.numel() for p in conv.parameters())
    got = conv_params(
        layer["c_in"], layer["c_out"], layer["k"], groups=layer["groups"], bias=layer["bias"]
    )
    assert got == expected


@FAST
@given(layers())
def test_conv_macs_is_output_elements_times_dot_product_length(layer):
    conv = nn.Conv2d(
        layer["c_in"],
        layer["c_out"],
        layer["k"],
        stride=layer["stride"],
        padding=layer["padding"],
        dilation=layer["dilation"],
        groups=layer["groups"],
        bias=False,
    )
    with torch.no_grad():
        out = conv(torch.zeros(1, layer["c_in"], *layer["size"]))
    per_output = (layer["c_in"] // layer["groups"]) * layer["k"][0] * layer["k"][1]
    expected = out.numel() * per_output
    got = conv_macs(
        layer["c_in"],
        layer["c_out"],
        layer["k"],
        layer["size"],
        layer["stride"],
        layer["padding"],
        layer["dilation"],
        layer["groups"],
    )
    assert got == expected


def test_conv_macs_counts_multiplications_of_a_direct_loop():
    # Independent count: multiplications done by an explicit loop over outputs and taps.
    c_in, c_out, k, size, stride, padding = 2, 3, 3, 6, 2, 1
    o = (size + 2 * padding - k) // stride + 1
    loops = sum(
        1
        for _ in range(c_out)
        for _ in range(o)
        for _ in range(o)
        for _ in range(c_in)
        for _ in range(k)
        for _ in range(k)
    )
    assert conv_macs(c_in, c_out, k, size, stride, padding) == loops


def test_conv_macs_grows_with_the_square_of_resolution():
    assert conv_macs(16, 16, 3, 128, padding=1) == 4 * conv_macs(16, 16, 3, 64, padding=1)


@FAST
@given(
    size=st.tuples(st.integers(1, 6), st.integers(1, 6)),
    k=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    dilation=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    padding=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    data=st.data(),
)
def test_transposed_output_size_matches_torch(size, k, stride, dilation, padding, data):
    op = tuple(
        data.draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation, strict=True)
    )
    full = [  # the uncropped size, written out here; padding crops p from each side
        (i - 1) * s + d * (kk - 1) + o + 1
        for i, s, d, kk, o in zip(size, stride, dilation, k, op, strict=True)
    ]
    if min(f - 2 * p for f, p in zip(full, padding, strict=True)) < 1:
        with pytest.raises(ValueError):
            transposed_output_size(size, k, stride, padding, op, dilation)
        return
    x = torch.zeros(1, 1, *size)
    w = torch.zeros(1, 1, *k)
    y = F.conv_transpose2d(
        x, w, stride=stride, padding=padding, output_padding=op, dilation=dilation
    )
    assert transposed_output_size(size, k, stride, padding, op, dilation) == tuple(y.shape[-2:])


def test_transposed_output_size_rejects_output_padding_torch_rejects():
    with pytest.raises(ValueError, match="output_padding"):
        transposed_output_size(4, 3, stride=2, output_padding=2)
    with pytest.raises(RuntimeError):
        F.conv_transpose2d(
            torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 3, 3), stride=2, output_padding=2
        )


@FAST
@given(
    o=st.integers(1, 8),
    k=st.integers(1, 4),
    s=st.integers(1, 4),
    p=st.integers(0, 2),
    d=st.integers(1, 3),
)
def test_conv_input_sizes_are_exactly_the_preimage(o, k, s, p, d):
    sizes = set(conv_input_sizes(o, k, s, p, d))
    span = d * (k - 1) + 1
    brute = {i for i in range(1, 60) if i + 2 * p >= span and conv_output_size(i, k, s, p, d) == o}
    assert sizes == brute


@FAST
@given(o=st.integers(1, 8), k=st.integers(1, 4), s=st.integers(2, 4), p=st.integers(0, 2))
def test_output_padding_recovers_each_input_size(o, k, s, p):
    # Every input size of a strided convolution is reached by one output_padding in [0, s).
    # Skip the degenerate cases where padding alone would make the smallest input size < 1.
    assume((o - 1) * s + k - 2 * p >= 1)
    for i in conv_input_sizes(o, k, s, p):
        op = i - transposed_output_size(o, k, s, p)
        assert 0 <= op < s
        y = F.conv_transpose2d(
            torch.zeros(1, 1, o, o), torch.zeros(1, 1, k, k), stride=s, padding=p, output_padding=op
        )
        assert y.shape[-1] == i


@FAST
@given(total=st.integers(0, 20), i=st.integers(1, 12), k=st.integers(1, 5), s=st.integers(1, 3))
def test_split_padding_gives_the_total_padding_law(total, i, k, s):
    before, after = split_padding(total)
    assert before + after == total and 0 <= after - before <= 1
    if i + total < k:
        return
    x = torch.arange(float(i)).reshape(1, 1, i)
    y = F.conv1d(F.pad(x, (before, after)), torch.ones(1, 1, k), stride=s)
    assert y.shape[-1] == (i + total - k) // s + 1  # the total-padding form of the law


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="groups"):
        conv_params(3, 4, 3, groups=2)
    with pytest.raises(TypeError, match="bias"):
        conv_params(3, 4, 3, bias=1)
    with pytest.raises(ValueError, match="in_channels"):
        conv_macs(0, 4, 3, 8)
    with pytest.raises(ValueError, match="total_padding"):
        split_padding(-1)
    with pytest.raises(ValueError, match="stride"):
        conv_input_sizes(3, 3, stride=0)


def test_check_int_names_the_argument_and_value():
    import numpy as np

    from cnnlab.shapes import check_int

    assert check_int("n", np.int64(3), minimum=1) == 3 and type(check_int("n", np.int64(3))) is int
    with pytest.raises(ValueError, match=r"^n must be >= 2, got 1$"):
        check_int("n", 1, minimum=2)
    for bad in (True, 2.0, "2", None):
        with pytest.raises(TypeError, match=r"^n must be an int, got "):
            check_int("n", bad)


def test_window_output_size_agrees_with_torch_pooling_in_ceil_mode():
    from cnnlab.shapes import window_output_size

    for size in range(3, 12):
        for k, s, p in [(3, 2, 0), (3, 2, 1), (2, 2, 0), (3, 3, 1), (5, 3, 2)]:
            for ceil in (False, True):
                pool = torch.nn.MaxPool2d(k, s, p, ceil_mode=ceil)
                expected = tuple(pool(torch.zeros(1, 1, size, size + 1)).shape[-2:])
                got = window_output_size((size, size + 1), (k, k), (s, s), ((p, p), (p, p)), ceil)
                assert got == expected, (size, k, s, p, ceil)
