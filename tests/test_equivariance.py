"""Tests for cnnlab.equivariance: shifts against independent constructions, and the equivariance
of convolution under circular shifts as a property over random shapes."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from cnnlab.equivariance import (
    LayerReport,
    equivariance_error,
    equivariance_residual,
    format_reports,
    invariance_error,
    probe_layers,
    shift,
)
from cnnlab.numpy import conv2d

RNG = np.random.default_rng(0)


def zero_shift_reference(x, dy, dx):
    """Zero-filled shift by padding with zeros and slicing a window: no roll involved."""
    h, w = x.shape[-2:]
    p = max(abs(dy), abs(dx), 1)
    padded = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(p, p), (p, p)])
    return padded[..., p - dy : p - dy + h, p - dx : p - dx + w]


def circular_conv(x, w):
    """Convolution on the torus: wrap-pad by the kernel radius, then a 'valid' cnnlab conv."""
    kh, kw = w.shape[-2:]
    pads = [(0, 0), (0, 0), (kh // 2, kh - 1 - kh // 2), (kw // 2, kw - 1 - kw // 2)]
    return conv2d(np.pad(x, pads, mode="wrap"), w)


# ---------------------------------------------------------------------------- shift


def test_circular_shift_moves_content_down_and_right():
    x = np.zeros((4, 5))
    x[0, 0] = 1.0
    out = shift(x, 1, 2)
    assert out[1, 2] == 1.0 and out.sum() == 1.0


@pytest.mark.parametrize("dy,dx", [(0, 0), (1, 2), (-3, 1), (7, -9), (4, 5)])
def test_circular_shift_equals_indexing_modulo(dy, dx):
    x = RNG.standard_normal((2, 3, 4, 5))
    rows = (np.arange(4) - dy) % 4
    cols = (np.arange(5) - dx) % 5
    np.testing.assert_array_equal(shift(x, dy, dx), x[..., rows[:, None], cols[None, :]])


@pytest.mark.parametrize("dy,dx", [(0, 0), (1, 2), (-3, 1), (2, -4), (6, 0), (-1, -7)])
def test_zero_shift_equals_pad_and_slice(dy, dx):
    x = RNG.standard_normal((3, 5, 6))
    np.testing.assert_array_equal(shift(x, dy, dx, mode="zero"), zero_shift_reference(x, dy, dx))


@pytest.mark.parametrize("mode", ["circular", "zero"])
def test_torch_and_numpy_shifts_agree(mode):
    x = RNG.standard_normal((2, 3, 7, 6))
    t = torch.from_numpy(x).requires_grad_()
    out = shift(t, -2, 3, mode)
    assert isinstance(out, torch.Tensor)
    np.testing.assert_array_equal(out.detach().numpy(), shift(x, -2, 3, mode))
    out.sum().backward()  # differentiable
    assert t.grad is not None


def test_shift_does_not_modify_input():
    x = RNG.standard_normal((5, 5))
    before = x.copy()
    shift(x, 0, 0, mode="zero")
    shift(x, 2, 1, mode="zero")
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("dy,dx", [(1, 0), (-2, 3), (5, -4)])
def test_fourier_shift_by_integers_is_circular(dy, dx):
    x = RNG.standard_normal((2, 6, 7))
    np.testing.assert_allclose(
        shift(x, dy, dx, "fourier"), np.roll(x, (dy, dx), (-2, -1)), atol=1e-12
    )
    t = torch.from_numpy(x)
    np.testing.assert_allclose(
        shift(t, dy, dx, "fourier").numpy(), np.roll(x, (dy, dx), (-2, -1)), atol=1e-12
    )


@given(
    dy=st.floats(-5, 5),
    dx=st.floats(-5, 5),
    fy=st.integers(0, 3),
    fx=st.integers(0, 3),
    phase=st.floats(0, 6.3),
)
@settings(max_examples=30, deadline=None)
def test_fourier_shift_moves_a_sampled_cosine_exactly(dy, dx, fy, fx, phase):
    # A cosine below the Nyquist frequency, shifted by any real amount, is the cosine of the
    # shifted argument, sampled: the closed form the shift theorem must reproduce.
    h, w = 9, 8
    i, j = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    x = np.cos(2 * np.pi * (fy * i / h + fx * j / w) + phase)
    expected = np.cos(2 * np.pi * (fy * (i - dy) / h + fx * (j - dx) / w) + phase)
    np.testing.assert_allclose(shift(x, dy, dx, "fourier"), expected, atol=1e-10)


def test_shift_rejects_bad_arguments():
    x = np.zeros((4, 4))
    with pytest.raises(ValueError, match="mode"):
        shift(x, 1, 1, mode="wrap")
    with pytest.raises(TypeError, match="dy"):
        shift(x, 0.5, 0)
    with pytest.raises(ValueError, match="shape"):
        shift(np.zeros(4), 1, 1)
    with pytest.raises(TypeError, match="x must be"):
        shift([[1.0]], 1, 1)


# ------------------------------------------------------------ convolution, property tests


@given(
    n=st.integers(1, 2),
    c_in=st.integers(1, 3),
    c_out=st.integers(1, 3),
    h=st.integers(3, 10),
    w=st.integers(3, 10),
    kh=st.integers(1, 4),
    kw=st.integers(1, 4),
    dy=st.integers(-12, 12),
    dx=st.integers(-12, 12),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=40, deadline=None)
def test_circular_convolution_commutes_with_circular_shifts(
    n, c_in, c_out, h, w, kh, kw, dy, dx, seed
):
    kh, kw = min(kh, h), min(kw, w)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c_in, h, w))
    weight = rng.standard_normal((c_out, c_in, kh, kw))
    f = lambda a: circular_conv(a, weight)  # noqa: E731
    lhs, rhs = f(shift(x, dy, dx)), shift(f(x), dy, dx)
    assert np.linalg.norm(lhs - rhs) / np.linalg.norm(rhs) < 1e-12
    assert equivariance_error(f, x, dy, dx) < 1e-12


def test_torch_circular_conv_is_equivariant_and_zero_padded_is_not_at_the_border():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 5, padding=2, padding_mode="circular").double()
    zconv = nn.Conv2d(2, 3, 5, padding=2).double()
    zconv.load_state_dict(conv.state_dict())
    x = torch.randn(1, 2, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        assert equivariance_error(conv, x, 3, -2) < 1e-12
        assert equivariance_error(zconv, x, 3, -2, mode="zero") > 1e-2
        # The difference is confined to the border: max shift + kernel radius.
        assert equivariance_error(zconv, x, 3, -2, mode="zero", crop=3 + 2) < 1e-12
        residual = equivariance_residual(zconv, x, 3, -2, mode="zero")
        assert residual[..., 5:-5, 5:-5].abs().max() < 1e-12


def test_global_average_pooling_is_invariant_and_pointwise_maps_equivariant():
    x = RNG.standard_normal((2, 3, 8, 8))
    assert invariance_error(lambda a: a.mean(axis=(-2, -1)), x, 3, 5) < 1e-14
    assert invariance_error(lambda a: a, x, 1, 0) > 0.5
    assert equivariance_error(np.tanh, x, -3, 4) == 0.0


def test_stride_two_pooling_commutes_with_even_shifts_only():
    x = torch.randn(1, 2, 8, 8, dtype=torch.float64)
    pool = lambda a: F.max_pool2d(a, 2)  # noqa: E731
    assert equivariance_error(pool, x, 2, -4, stride=2) < 1e-15
    assert equivariance_error(pool, x, 1, 0, stride=2) > 1e-2


def test_convolution_commutes_with_rot90_only_with_the_rotated_kernel():
    x = RNG.standard_normal((1, 1, 9, 9))
    w = RNG.standard_normal((1, 1, 3, 3))
    conv = lambda a, k: conv2d(a, k, padding=1)  # noqa: E731
    rot = lambda a: np.rot90(a, 1, axes=(-2, -1))  # noqa: E731
    # Independent identity: correlating a rotated image = rotating the correlation with the
    # kernel rotated back.
    np.testing.assert_allclose(
        conv(rot(x), w), rot(conv(x, np.rot90(w, -1, axes=(-2, -1)))), atol=1e-12
    )
    assert np.linalg.norm(conv(rot(x), w) - rot(conv(x, w))) > 0.1
    symmetric = np.array([[[[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]]])
    np.testing.assert_allclose(conv(rot(x), symmetric), rot(conv(x, symmetric)), atol=1e-12)


def test_error_functions_reject_bad_arguments():
    x = np.zeros((6, 6))
    with pytest.raises(ValueError, match="crop"):
        equivariance_error(lambda a: a, x, 1, 1, crop=3)
    with pytest.raises(ValueError, match="output shape"):
        equivariance_error(lambda a: a[: a.shape[0] - int(a[0, 0] == 0)], x + np.eye(6), 1, 0)
    with pytest.raises(ValueError, match="stride"):
        equivariance_error(lambda a: a, x, 1, 1, stride=0)


def test_relative_error_handles_zero_output():
    x = np.zeros((4, 4))
    assert equivariance_error(lambda a: a, x, 1, 1) == 0.0
    assert invariance_error(lambda a: a, x, 1, 1) == 0.0


# ---------------------------------------------------------------------------- probe


def test_probe_layers_strides_and_measures():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, padding_mode="circular"),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3, padding=1, padding_mode="circular", stride=2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    ).double()
    x = torch.randn(2, 1, 16, 16, dtype=torch.float64)
    shifts = [(4, -8), (2, 0), (1, 1)]
    reports = probe_layers(net, x, shifts)
    assert [r.name for r in reports] == [str(i) for i in range(7)]
    assert [r.stride for r in reports] == [(1, 1), (1, 1), (2, 2), (4, 4), (4, 4), (4, 4), (4, 4)]
    # Output shapes agree with the strides: 16 / stride.
    for r in reports[:4]:
        assert r.shape[-1] == 16 // r.stride[1]
    assert [r.measure for r in reports[-2:]] == ["invariance", "invariance"]
    # Shifts by multiples of the cumulative stride: exact, to float64 precision.
    for r in reports:
        assert r.on_grid[0] and r.errors[0] < 1e-12
    # (2, 0) is on the grid of the first pooling, off it after the strided conv.
    assert reports[2].on_grid[1] and reports[2].errors[1] < 1e-12
    assert not reports[3].on_grid[1] and reports[3].errors[1] > 1e-3
    # Stride-1 layers are equivariant to any shift.
    assert reports[0].errors[2] < 1e-12 and reports[1].errors[2] < 1e-12
    # Global average pooling after circular layers: invariant to multiples of the stride only.
    assert reports[4].errors[0] < 1e-12


def test_probe_layers_names_repeated_calls():
    relu = nn.ReLU()
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="circular"), relu, relu)
    reports = probe_layers(net, torch.randn(1, 1, 6, 6), [(1, 0)])
    assert [r.name for r in reports] == ["0", "1", "1#2"]


def test_probe_layers_rejects_bad_input():
    with pytest.raises(ValueError, match="4-D"):
        probe_layers(nn.Identity(), torch.zeros(3, 4, 4), [(1, 0)])
    with pytest.raises(ValueError, match="pairs"):
        probe_layers(nn.Identity(), torch.zeros(1, 1, 4, 4), [(1, 0, 0)])


def test_format_reports_marks_off_grid_errors():
    r = LayerReport(
        "pool", "MaxPool2d", (2, 2), (1, 4, 8, 8), "equivariance", (0.0, 0.25), (True, False)
    )
    lines = format_reports([r], [(2, 0), (1, 0)]).splitlines()
    assert len(lines) == 2
    assert lines[1].split()[-2:] == ["0.000", "0.250*"]
    assert r.error == pytest.approx(0.125)


def test_probe_layers_runs_in_eval_mode_and_restores_the_mode():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1, padding_mode="circular"), nn.BatchNorm2d(3), nn.Dropout(0.5)
    )
    net.train()
    with torch.no_grad():  # give the running statistics values a batch would change
        net[1].running_mean.fill_(0.25)
        net[1].running_var.fill_(2.0)
    mean, var = net[1].running_mean.clone(), net[1].running_var.clone()
    batches = net[1].num_batches_tracked.clone()
    x = torch.randn(2, 1, 8, 8)
    reports = probe_layers(net, x, [(1, 0), (0, 3)])
    assert net.training and all(m.training for m in net.modules())
    assert torch.equal(net[1].running_mean, mean) and torch.equal(net[1].running_var, var)
    assert torch.equal(net[1].num_batches_tracked, batches)
    # In eval mode the circular conv, a fixed affine batch norm and the identity dropout all
    # commute with circular shifts; train-mode dropout noise would make these errors O(1).
    assert max(max(r.errors) for r in reports) < 1e-6
    net.eval()
    probe_layers(net, x, [(1, 0)])
    assert not net.training


def test_error_functions_call_f_once_per_input():
    calls = []

    def counting(a):
        calls.append(a.copy())
        return a * 2.0

    x = np.arange(36.0).reshape(6, 6)
    assert equivariance_error(counting, x, 1, 2) < 1e-15
    assert len(calls) == 2
    assert sum(np.array_equal(c, x) for c in calls) == 1  # f(x) once, f(shift x) once
    calls.clear()
    invariance_error(counting, x, 1, 2)
    assert len(calls) == 2


def test_stride_must_be_an_int_or_a_pair():
    x = np.ones((4, 4))
    with pytest.raises(ValueError, match="stride"):
        equivariance_error(lambda a: a, x, 1, 1, stride=(1, 1, 1))
    with pytest.raises(TypeError, match="stride"):
        equivariance_error(lambda a: a, x, 1, 1, stride="2")


def test_probe_layers_rejects_a_three_axis_stride():
    class Odd(nn.Module):
        stride = (1, 1, 1)

        def forward(self, a):
            return a

    with pytest.raises(ValueError, match="stride"):
        probe_layers(nn.Sequential(Odd()), torch.ones(1, 1, 4, 4), [(1, 0)])
