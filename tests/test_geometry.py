"""cnnlab.geometry.Window against PyTorch, and the one int-or-pair rule across the package.

The output-size law is checked against the shape of ``F.conv2d`` / ``F.max_pool2d`` on zeros
(PyTorch's own law, including per-side padding through ``F.pad`` and pooling's ``ceil_mode``);
the taps against ``F.unfold``'s windows; 'same' padding against ``padding='same'``. Then every
module that answers with an int or a pair follows ``shapes``: ints in, int out; a pair in, a
pair out.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlab import shapes
from cnnlab.geometry import Window, is_pair, pair, same_form
from cnnlab.receptive_field import Layer, receptive_field, receptive_field_of, receptive_field_steps

pairs = st.tuples(st.integers(1, 4), st.integers(1, 4))


@st.composite
def windows_and_sizes(draw):
    k, s, d = draw(pairs), draw(pairs), draw(pairs)
    pads = tuple(tuple(draw(st.integers(0, 3)) for _ in range(2)) for _ in range(2))
    window = Window(k, s, pads, d)
    size = tuple(window.span[a] + draw(st.integers(0, 12)) for a in range(2))
    return window, size


def _torch_size(window: Window, size, ceil_mode=False):
    (top, bottom), (left, right) = window.padding
    x = F.pad(torch.zeros(1, 1, *size), (left, right, top, bottom))
    if ceil_mode:  # pooling pads symmetrically; only meaningful when both sides agree
        return tuple(
            F.max_pool2d(
                torch.zeros(1, 1, *size),
                window.kernel_size,
                window.stride,
                (top, left),
                window.dilation,
                ceil_mode=True,
            ).shape[-2:]
        )
    w = torch.zeros(1, 1, *window.kernel_size)
    return tuple(F.conv2d(x, w, stride=window.stride, dilation=window.dilation).shape[-2:])


@settings(max_examples=150, deadline=None)
@given(windows_and_sizes())
def test_output_size_is_torchs(case):
    window, size = case
    assert window.output_size(size) == _torch_size(window, size)


@settings(max_examples=150, deadline=None)
@given(pairs, pairs, pairs, st.integers(0, 12), st.integers(0, 12))
def test_ceil_mode_is_torchs_pooling(k, s, d, extra_h, extra_w):
    pad = (min(k[0] // 2, 1), min(k[1] // 2, 1))
    window = Window(k, s, pad, d)
    size = (window.span[0] + extra_h, window.span[1] + extra_w)
    assert window.output_size(size, ceil_mode=True) == _torch_size(window, size, ceil_mode=True)


@settings(max_examples=60, deadline=None)
@given(windows_and_sizes())
def test_taps_are_unfolds_windows(case):
    window, size = case
    (top, bottom), (left, right) = window.padding
    hp, wp = size[0] + top + bottom, size[1] + left + right
    index = torch.arange(hp * wp, dtype=torch.float64).reshape(1, 1, hp, wp)
    cols = F.unfold(index, window.kernel_size, window.dilation, 0, window.stride)[0]
    oh, ow = window.output_size(size)
    for r, c in {(0, 0), (oh - 1, ow - 1), (oh // 2, ow - 1)}:
        taps = window.taps((r, c))  # in unpadded coordinates
        expected = [int(v) for v in cols[:, r * ow + c]]
        assert [(i + top) * wp + (j + left) for i, j in taps] == expected


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
@pytest.mark.parametrize("k, d", [(3, 1), (4, 1), (2, 3), ((3, 4), (2, 1)), ((1, 5), 1)])
def test_same_padding_is_torchs(k, d):
    window = Window(k, padding="same", dilation=d)
    x = torch.arange(7 * 9, dtype=torch.float64).reshape(1, 1, 7, 9)
    w = torch.randn(1, 1, *pair(k), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    (top, bottom), (left, right) = window.padding
    ours = F.conv2d(F.pad(x, (left, right, top, bottom)), w, dilation=d)
    theirs = F.conv2d(x, w, padding="same", dilation=d)
    assert torch.equal(ours, theirs)
    assert window.output_size((7, 9)) == (7, 9)


def test_span_is_the_dilated_kernels_extent():
    for k in range(1, 6):
        for d in range(1, 5):
            dilated = np.zeros((d * (k - 1) + 1,))
            dilated[::d] = 1
            assert Window(k, dilation=d).span == (len(dilated), len(dilated))
            assert int(dilated.sum()) == k


def test_window_is_frozen_normalised_and_checked():
    window = Window(3, stride=(2, 1), padding=1)
    assert window == Window((3, 3), (2, 1), ((1, 1), (1, 1)), (1, 1))
    assert hash(window) == hash(Window((3, 3), (2, 1), ((1, 1), (1, 1))))
    with pytest.raises(dataclasses.FrozenInstanceError):
        window.stride = (1, 1)
    with pytest.raises(ValueError, match="stride must be >= 1, got 0"):
        Window(3, stride=0)
    with pytest.raises(ValueError, match="padding must be >= 0, got -1"):
        Window(3, padding=((0, -1), (0, 0)))
    with pytest.raises(TypeError, match="kernel_size must be an int or an"):
        Window(True)
    with pytest.raises(ValueError, match="'same' is only defined for stride 1"):
        Window(3, stride=2, padding="same")
    with pytest.raises(ValueError, match="spans 5 pixels on axis 0, more than the padded input 4"):
        Window(3, dilation=2).output_size(4)
    assert window.unpadded().padding == ((0, 0), (0, 0))


def test_pair_rule_helpers():
    assert not is_pair(3, 1, np.int64(2))
    assert is_pair(3, [1, 2])
    assert same_form((4, 4), 3) == 4 and same_form((4, 4), (3, 3)) == (4, 4)


# --- one rule across the package: ints in, int out; a pair in, a pair out -------------------


def test_shapes_answers_in_the_form_of_its_arguments():
    assert shapes.conv_output_size(9, 3) == 7
    assert shapes.conv_output_size((9, 9), 3) == (7, 7)
    assert shapes.effective_kernel_size(3, (2, 2)) == (5, 5)
    assert shapes.same_padding((3, 3)) == (1, 1)
    assert shapes.output_stride([2, (2, 2)]) == (4, 4)


def test_receptive_field_answers_in_the_form_of_its_layers():
    assert receptive_field([Layer(3), Layer(3)]).size == 5
    # a pair in, a pair out, even when the two axes agree
    square = receptive_field([Layer((1, 3)), Layer((3, 1))])
    assert square.size == (3, 3) and square.stride == (1, 1) and square.padding == (0, 0)
    assert receptive_field_steps([Layer(3), Layer((3, 3))])[0].size == (3, 3)
    assert receptive_field([]).size == 1


def test_traced_fields_answer_in_the_form_of_input_size():
    net = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(1, 1, 3, stride=2))
    assert receptive_field_of(net, 16).size == 5
    assert receptive_field_of(net, (16, 16)) == receptive_field([Layer((3, 3), 1, 1), Layer(3, 2)])
    # axes that differ cannot be one int
    wide = nn.Sequential(nn.Conv2d(1, 1, (1, 5)))
    assert receptive_field_of(wide, 16).size == (1, 5)
