"""Shifts, and exact measurements of equivariance and invariance to them.

A map ``f`` is *equivariant* to a transformation ``g`` when ``f(g(x)) = g(f(x))``: transforming
the input transforms the output in the same way. It is *invariant* when ``f(g(x)) = f(x)``: the
output does not change at all. This module measures both for shifts (translations) of images,
as relative errors in the Frobenius norm, so that "exactly equivariant" means an error at
machine precision and anything else is a number to look at.

Everything works on NumPy arrays and on PyTorch tensors and shifts the last two axes
(height, width), so a batch ``(N, C, H, W)`` is shifted image by image. Positive ``dy`` moves
the content down and positive ``dx`` moves it right.

Three kinds of shift:

``"circular"``
    the image wraps around (the torus): what leaves at the bottom comes back at the top.
    Integer shifts only. Convolution with circular padding commutes with it exactly.
``"zero"``
    what leaves is lost and zeros come in. Integer shifts only.
``"fourier"``
    a circular shift by any real amount (sub-pixel), done by the shift theorem
    ``F[x(n - d)](k) = exp(-2 pi i k d / N) F[x](k)``: the band-limited interpolation of the
    samples, moved by ``d``. For integer ``d`` it equals the circular shift.

:func:`probe_layers` runs a PyTorch model and reports, layer by layer, how far each output is
from equivariant (or, for outputs without spatial axes, invariant), taking the stride into
account: after layers whose strides multiply to ``s``, a shift of ``s * k`` pixels at the input
should be a shift of ``k`` pixels of the feature map.
"""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnlab.shapes import pair

__all__ = [
    "shift",
    "to_numpy",
    "equivariance_residual",
    "equivariance_error",
    "invariance_error",
    "LayerReport",
    "probe_layers",
    "format_reports",
]

SHIFT_MODES = ("circular", "zero", "fourier")


def _is_tensor(x: object) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _check_array(name: str, x: object) -> None:
    if not (isinstance(x, np.ndarray) or _is_tensor(x)):
        raise TypeError(f"{name} must be a NumPy array or a torch.Tensor, got {type(x).__name__}")
    if x.ndim < 2:
        raise ValueError(
            f"{name} must have at least 2 axes (..., H, W), got shape {tuple(x.shape)}"
        )


def _as_integer(name: str, value: object, mode: str) -> int:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real) and float(value).is_integer():
        return int(value)
    raise TypeError(
        f"{name} must be an integer for mode={mode!r}, got {value!r}; use mode='fourier' for a "
        f"sub-pixel shift"
    )


def _fourier_shift(x: Any, dy: float, dx: float) -> Any:
    """Circular shift by real amounts through the Fourier shift theorem."""
    height, width = x.shape[-2], x.shape[-1]
    ky = np.fft.fftfreq(height)[:, None]
    kx = np.fft.fftfreq(width)[None, :]
    phase = np.exp(-2j * np.pi * (ky * dy + kx * dx))
    if _is_tensor(x):
        torch = sys.modules["torch"]
        spectrum = torch.fft.fft2(x)
        phase_t = torch.as_tensor(phase, dtype=spectrum.dtype, device=x.device)
        return torch.fft.ifft2(spectrum * phase_t).real.to(x.dtype)
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
    spectrum = np.fft.fft2(x, axes=(-2, -1))
    return np.fft.ifft2(spectrum * phase, axes=(-2, -1)).real.astype(dtype, copy=False)


def shift(x: Any, dy: float, dx: float, mode: str = "circular") -> Any:
    r"""Translate the content of ``x`` by ``dy`` rows and ``dx`` columns (last two axes).

    .. math:: \text{out}(\ldots, i, j) = x(\ldots, i - d_y, j - d_x)

    with the index taken modulo (H, W) for ``"circular"`` and ``"fourier"``, and ``x`` read as
    zero outside the image for ``"zero"``. Positive ``dy`` moves the content down, positive
    ``dx`` moves it right.

    Parameters
    ----------
    x : ndarray or Tensor, shape (..., H, W)
        Real-valued input; NumPy in, NumPy out; torch in, torch out (same device and dtype,
        differentiable).
    dy, dx : int, or float for ``mode="fourier"``
        The shift in pixels.
    mode : {'circular', 'zero', 'fourier'}
        What happens at the border (see the module docstring). ``'fourier'`` accepts sub-pixel
        shifts; for integers it equals ``'circular'`` up to rounding.

    Returns
    -------
    ndarray or Tensor, shape (..., H, W)
        A new array; ``x`` is not modified.

    Examples
    --------
    >>> x = np.arange(9).reshape(3, 3)
    >>> shift(x, 1, 0)
    array([[6, 7, 8],
           [0, 1, 2],
           [3, 4, 5]])
    >>> shift(x, 1, -1, mode="zero")
    array([[0, 0, 0],
           [1, 2, 0],
           [4, 5, 0]])
    >>> np.round(shift(np.array([[0.0, 1.0, 0.0]]), 0, 0.5, mode="fourier"), 3)
    array([[-0.333,  0.667,  0.667]])
    """
    _check_array("x", x)
    if mode not in SHIFT_MODES:
        raise ValueError(f"mode must be one of {SHIFT_MODES}, got {mode!r}")
    if mode == "fourier":
        for name, value in (("dy", dy), ("dx", dx)):
            if not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise TypeError(f"{name} must be a finite real number, got {value!r}")
        return _fourier_shift(x, float(dy), float(dx))
    dy, dx = _as_integer("dy", dy, mode), _as_integer("dx", dx, mode)
    if _is_tensor(x):
        out = sys.modules["torch"].roll(x, shifts=(dy, dx), dims=(-2, -1))
        out = out.clone() if (dy == 0 and dx == 0) else out
    else:
        out = np.roll(x, (dy, dx), axis=(-2, -1))
    if mode == "zero":
        if dy > 0:
            out[..., :dy, :] = 0
        elif dy < 0:
            out[..., dy:, :] = 0
        if dx > 0:
            out[..., :, :dx] = 0
        elif dx < 0:
            out[..., :, dx:] = 0
    return out


def to_numpy(x: Any) -> np.ndarray:
    """``x`` (an ndarray, a Tensor on any device, or array-like) as a float64 ndarray.

    Examples
    --------
    >>> to_numpy([1, 2]).dtype
    dtype('float64')
    """
    if _is_tensor(x):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def _output_shift(dy: float, dx: float, stride: int | tuple[int, int]) -> tuple[float, float, bool]:
    """Shift of a feature map of cumulative stride ``stride`` for an input shift (dy, dx)."""
    sy, sx = pair(stride, "stride")
    if min(sy, sx) < 1:
        raise ValueError(f"stride must be >= 1, got {stride!r}")
    oy, ox = dy / sy, dx / sx
    on_grid = float(oy).is_integer() and float(ox).is_integer()
    return (int(oy), int(ox), True) if on_grid else (oy, ox, False)


def equivariance_residual(
    f: Callable[[Any], Any],
    x: Any,
    dy: float,
    dx: float,
    mode: str = "circular",
    stride: int | tuple[int, int] = 1,
) -> Any:
    """The map ``f(shift(x)) - shift(f(x))``: zero everywhere exactly when ``f`` commutes.

    .. math:: r = f(T_{d} x) - T_{d / s} f(x)

    where ``T_d`` shifts by ``d = (dy, dx)`` and ``s`` is the stride of ``f`` (its output is
    ``s`` times smaller, so an input shift of ``d`` should move the output by ``d / s``). When
    ``d / s`` is a whole number of pixels the output is shifted with the same ``mode`` as the
    input; otherwise it is shifted by the sub-pixel amount with ``mode="fourier"``, the shift
    that a band-limited (alias-free) feature map would undergo.

    Parameters
    ----------
    f : callable
        Maps an array (or tensor) of shape (..., H, W) to one of shape (..., H', W').
    x : ndarray or Tensor, shape (..., H, W)
    dy, dx : int (or float with ``mode="fourier"``)
        Input shift.
    mode : {'circular', 'zero', 'fourier'}
        How the input is shifted; see :func:`shift`.
    stride : int or (int, int)
        Total stride of ``f``.

    Returns
    -------
    ndarray or Tensor, shape of ``f(x)``

    Examples
    --------
    >>> x = np.arange(16.0).reshape(4, 4)
    >>> square = lambda a: a ** 2
    >>> float(np.abs(equivariance_residual(square, x, 1, 2)).max())
    0.0
    """
    return _residual_and_output(f, x, dy, dx, mode, stride)[0]


def _residual_and_output(
    f: Callable[[Any], Any],
    x: Any,
    dy: float,
    dx: float,
    mode: str,
    stride: int | tuple[int, int],
) -> tuple[Any, Any]:
    """``(f(T_d x) - T_{d/s} f(x), f(x))``, calling ``f`` exactly twice."""
    _check_array("x", x)
    out_dy, out_dx, on_grid = _output_shift(dy, dx, stride)
    shifted_then_f = f(shift(x, dy, dx, mode))
    f_x = f(x)
    if tuple(shifted_then_f.shape) != tuple(f_x.shape):
        raise ValueError(
            f"f changes its output shape under the shift: f(x) has shape {tuple(f_x.shape)}, "
            f"f(shift(x)) has shape {tuple(shifted_then_f.shape)}"
        )
    out_mode = mode if on_grid else "fourier"
    return shifted_then_f - shift(f_x, out_dy, out_dx, out_mode), f_x


def _crop(a: np.ndarray, crop: int) -> np.ndarray:
    if crop == 0:
        return a
    return a[..., crop:-crop, crop:-crop]


def _check_crop(crop: int, shape: tuple[int, ...]) -> None:
    if isinstance(crop, bool) or not isinstance(crop, numbers.Integral) or crop < 0:
        raise ValueError(f"crop must be an int >= 0, got {crop!r}")
    if len(shape) < 2 or 2 * crop >= min(shape[-2:]):
        raise ValueError(f"crop={crop} leaves nothing of an output of shape {tuple(shape)}")


def _relative(numerator: np.ndarray, reference: np.ndarray) -> float:
    num = float(np.linalg.norm(numerator.ravel()))
    den = float(np.linalg.norm(reference.ravel()))
    if den == 0.0:
        return 0.0 if num == 0.0 else math.inf
    return num / den


def equivariance_error(
    f: Callable[[Any], Any],
    x: Any,
    dy: float,
    dx: float,
    mode: str = "circular",
    crop: int = 0,
    stride: int | tuple[int, int] = 1,
) -> float:
    r"""Relative distance of ``f`` from commuting with a shift, in the Frobenius norm.

    .. math::

        e = \frac{\lVert f(T_d x) - T_{d/s} f(x) \rVert_F}{\lVert f(x) \rVert_F}

    where ``||a||_F`` is the square root of the sum of squares of all entries (batch and
    channels included), ``T_d`` shifts by ``d = (dy, dx)`` and ``s`` is the stride of ``f``
    (see :func:`equivariance_residual`). ``e = 0`` means exactly equivariant; in float64 an
    equivariant ``f`` gives about 1e-16.

    With ``mode="zero"`` pixels near the border differ even for a convolution, because
    content leaves the image and zeros (from the shift and from the padding) come in. ``crop``
    drops that many pixels from every side of the output, in both numerator and denominator,
    so that only the interior is compared. For a stride-1 convolution with kernel radius ``r``
    the difference lies within ``max(|dy|, |dx|) + r`` pixels of the border.

    Parameters
    ----------
    f : callable
        Array (or tensor) of shape (..., H, W) to one of shape (..., H', W').
    x : ndarray or Tensor, shape (..., H, W)
    dy, dx : int (or float with ``mode="fourier"``)
    mode : {'circular', 'zero', 'fourier'}
    crop : int
        Border pixels of the output left out of both norms.
    stride : int or (int, int)
        Total stride of ``f``.

    Returns
    -------
    float
        ``e``; ``0.0`` when ``f(x)`` and the residual are both zero, ``inf`` when only ``f(x)``
        is.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((8, 8))
    >>> blur = lambda a: (a + np.roll(a, 1, axis=-1)) / 2  # a circular 1x2 average
    >>> equivariance_error(blur, x, 3, -2) < 1e-15
    True
    >>> flip = lambda a: a[..., ::-1, :]
    >>> round(equivariance_error(flip, x, 1, 0), 3) > 0.1
    True
    """
    residual, f_x = _residual_and_output(f, x, dy, dx, mode, stride)
    residual, reference = to_numpy(residual), to_numpy(f_x)
    _check_crop(crop, residual.shape)
    return _relative(_crop(residual, crop), _crop(reference, crop))


def invariance_error(
    f: Callable[[Any], Any], x: Any, dy: float, dx: float, mode: str = "circular"
) -> float:
    r"""Relative change of ``f``'s output when its input is shifted, in the Frobenius norm.

    .. math:: e = \frac{\lVert f(T_d x) - f(x) \rVert_F}{\lVert f(x) \rVert_F}

    ``e = 0`` means ``f`` is exactly invariant to the shift ``d = (dy, dx)``. ``f`` may return
    anything array-like (a feature map, a vector of class scores).

    Parameters
    ----------
    f : callable
    x : ndarray or Tensor, shape (..., H, W)
    dy, dx : int (or float with ``mode="fourier"``)
    mode : {'circular', 'zero', 'fourier'}

    Returns
    -------
    float

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((3, 8, 8))
    >>> global_mean = lambda a: a.mean(axis=(-2, -1))
    >>> invariance_error(global_mean, x, 2, 5) < 1e-15
    True
    """
    _check_array("x", x)
    shifted = to_numpy(f(shift(x, dy, dx, mode)))
    reference = to_numpy(f(x))
    if shifted.shape != reference.shape:
        raise ValueError(
            f"f changes its output shape under the shift: {reference.shape} vs {shifted.shape}"
        )
    return _relative(shifted - reference, reference)


@dataclass(frozen=True)
class LayerReport:
    """How far one layer's output is from equivariant (or invariant) to a set of shifts.

    Attributes
    ----------
    name : str
        The module's name in the model (``named_modules``); a module called more than once
        gets ``#2``, ``#3``, ... appended for the later calls.
    layer : str
        The module's class name.
    stride : (int, int)
        Cumulative stride of the layers run up to and including this one.
    shape : tuple of int
        Output shape for the unshifted input.
    measure : {'equivariance', 'invariance'}
        ``'equivariance'`` for outputs with spatial axes (4-D), ``'invariance'`` otherwise.
    errors : tuple of float
        One relative error per shift, in the order given.
    on_grid : tuple of bool
        Per shift: whether the input shift divided by the stride is a whole number of pixels,
        so the comparison is an exact integer shift (``True``), or a sub-pixel, Fourier one
        (``False``). Always ``True`` for invariance.
    """

    name: str
    layer: str
    stride: tuple[int, int]
    shape: tuple[int, ...]
    measure: str
    errors: tuple[float, ...]
    on_grid: tuple[bool, ...]

    @property
    def error(self) -> float:
        """Mean of ``errors`` over the shifts."""
        return float(np.mean(self.errors))


def _module_stride(module: Any) -> tuple[int, int]:
    stride = getattr(module, "stride", None)
    if stride is None:
        return (1, 1)
    if isinstance(stride, (tuple, list)) and len(stride) == 1:  # a 1-D layer's (s,)
        stride = stride[0]
    return pair(stride, "stride")


def probe_layers(
    model: Any,
    x: Any,
    shifts: Sequence[tuple[int, int]],
    mode: str = "circular",
) -> list[LayerReport]:
    """Run ``model`` on ``x`` and on shifted copies, and measure every leaf layer's output.

    For each leaf module (one with no submodules), in the order the forward pass first runs
    it, and for each input shift ``d = (dy, dx)``:

    * if its output has spatial axes (N, C, H, W), the equivariance error
      ``||g(T_d x) - T_{d/s} g(x)|| / ||g(x)||`` where ``g`` is the model up to that layer and
      ``s`` the cumulative stride, the product of the ``stride`` attributes of the leaf modules
      run so far (convolutions, poolings, :class:`cnnlab.torch.antialias.BlurPool2d`). When
      ``s`` divides ``d`` the output is compared with an exact integer circular shift by
      ``d / s``. When it does not, no integer shift of the feature map corresponds to the
      input shift, and the output is compared with the sub-pixel (Fourier) shift by ``d / s``,
      the shift an alias-free feature map would undergo; the report marks it ``on_grid=False``.
    * otherwise (flattened features, class scores) the invariance error
      ``||g(T_d x) - g(x)|| / ||g(x)||``.

    The stride bookkeeping follows a chain of layers; in a model with parallel branches each
    leaf still multiplies into one running product, so read such reports with care.

    Parameters
    ----------
    model : torch.nn.Module
        Run in eval mode (so batch norm uses its running statistics and leaves them
        unchanged, and dropout is off) under ``no_grad``; its previous mode is restored
        afterwards.
    x : Tensor, shape (N, C, H, W)
    shifts : sequence of (int, int)
        Input shifts ``(dy, dx)``.
    mode : {'circular', 'zero'}
        How the input is shifted. Feature maps are always compared with circular (or Fourier)
        shifts.

    Returns
    -------
    list of LayerReport
        One per leaf-module call, in execution order.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(
    ...     torch.nn.Conv2d(1, 2, 3, padding=1, padding_mode="circular"),
    ...     torch.nn.MaxPool2d(2),
    ... )
    >>> x = torch.randn(1, 1, 8, 8)
    >>> reports = probe_layers(net, x, [(2, 0), (1, 0)])
    >>> [(r.name, r.stride, r.on_grid) for r in reports]
    [('0', (1, 1), (True, True)), ('1', (2, 2), (True, False))]
    >>> reports[1].errors[0] < 1e-6
    True
    """
    torch = __import__("torch")
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(
            f"x must be a 4-D tensor (N, C, H, W), got {type(x).__name__} with shape "
            f"{tuple(getattr(x, 'shape', ()))}"
        )
    shifts = [tuple(s) for s in shifts]
    for s in shifts:
        if len(s) != 2:
            raise ValueError(f"shifts must be (dy, dx) pairs, got {s!r}")
    if mode not in ("circular", "zero"):
        raise ValueError(f"mode must be 'circular' or 'zero', got {mode!r}")

    leaves = [(name, m) for name, m in model.named_modules() if not list(m.children())]
    was_training = model.training
    model.eval()
    try:
        base = _leaf_outputs(model, leaves, x)
        shifted_runs = [_leaf_outputs(model, leaves, shift(x, dy, dx, mode)) for dy, dx in shifts]
    finally:
        model.train(was_training)
    reports = []
    sy, sx = 1, 1
    for index, (label, module, out) in enumerate(base):
        my, mx = _module_stride(module)
        sy, sx = sy * my, sx * mx
        measured = [
            _layer_error(out, run_k[index][2], d, (sy, sx))
            for d, run_k in zip(shifts, shifted_runs, strict=True)
        ]
        reports.append(
            LayerReport(
                name=label,
                layer=type(module).__name__,
                stride=(sy, sx),
                shape=tuple(out.shape),
                measure="equivariance" if out.ndim == 4 else "invariance",
                errors=tuple(error for error, _ in measured),
                on_grid=tuple(exact for _, exact in measured),
            )
        )
    return reports


def _leaf_outputs(
    model: Any, leaves: list[tuple[str, Any]], inp: Any
) -> list[tuple[str, Any, Any]]:
    """``(label, module, output)`` of every leaf-module call of one forward pass, in order.

    A module called twice is labelled ``name#2`` the second time; outputs are float64 copies.
    """
    torch = __import__("torch")
    records: list[tuple[str, Any, Any]] = []
    counts: dict[str, int] = {}

    def make_hook(name: str) -> Callable[..., None]:
        def hook(module: Any, args: Any, output: Any) -> None:
            counts[name] = counts.get(name, 0) + 1
            label = name if counts[name] == 1 else f"{name}#{counts[name]}"
            if isinstance(output, torch.Tensor):
                records.append((label, module, output.detach().double()))

        return hook

    handles = [m.register_forward_hook(make_hook(name)) for name, m in leaves]
    try:
        with torch.no_grad():
            model(inp)
    finally:
        for handle in handles:
            handle.remove()
    return records


def _layer_error(
    out: Any, out_shifted: Any, d: tuple[int, int], stride: tuple[int, int]
) -> tuple[float, bool]:
    """Error of one layer's output for the input shift ``d``, and whether it was on the grid.

    A feature map (N, C, H, W) is compared with its own shift by ``d / stride`` (circular when
    that is whole, Fourier otherwise); anything else with itself (invariance).
    """
    if out.ndim != 4:
        return _relative(to_numpy(out_shifted - out), to_numpy(out)), True
    oy, ox, exact = _output_shift(d[0], d[1], stride)
    expected = shift(out, oy, ox, "circular" if exact else "fourier")
    return _relative(to_numpy(out_shifted - expected), to_numpy(out)), exact


def format_reports(reports: Sequence[LayerReport], shifts: Sequence[tuple[int, int]]) -> str:
    """A plain-text table of :func:`probe_layers` results, errors to 3 decimals.

    Off-grid comparisons (sub-pixel, see :class:`LayerReport`) are marked with ``*``.

    Examples
    --------
    >>> r = LayerReport("0", "Conv2d", (1, 1), (1, 2, 8, 8), "equivariance", (0.0,), (True,))
    >>> print(format_reports([r], [(1, 0)]))
    layer      type           stride  measure       shift (1, 0)
    0          Conv2d         1       equivariance  0.000
    """
    header = f"{'layer':<10} {'type':<18} {'stride':<7} {'measure':<13}" + "".join(
        f" {'shift ' + str(tuple(s)):>13}" for s in shifts
    )
    lines = [header.rstrip()]
    for r in reports:
        stride = str(r.stride[0]) if r.stride[0] == r.stride[1] else f"{r.stride[0]}x{r.stride[1]}"
        cells = "".join(
            f" {f'{e:.3f}' + ('*' if not g else ' '):>13}"
            for e, g in zip(r.errors, r.on_grid, strict=True)
        )
        lines.append(f"{r.name:<10} {r.layer:<18} {stride:<7} {r.measure:<13}{cells}".rstrip())
    return "\n".join(lines)
