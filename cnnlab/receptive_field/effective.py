"""The effective receptive field: how strongly each input pixel moves one output unit.

Luo, Li, Urtasun & Zemel ("Understanding the Effective Receptive Field in Deep Convolutional
Neural Networks", NeurIPS 2016) measure ``|d y_centre / d x|``: zero outside the theoretical
field of :mod:`cnnlab.receptive_field.closed_form` and, for deep networks, a Gaussian-like blob
well inside it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cnnlab.geometry import IntOrPair, pair

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

__all__ = ["effective_receptive_field"]


def effective_receptive_field(
    module: torch.nn.Module,
    input_size: IntOrPair,
    *,
    in_channels: int | None = None,
    inputs: torch.Tensor | None = None,
    n_samples: int = 8,
    position: IntOrPair | None = None,
    seed: int = 0,
) -> np.ndarray:
    r"""Return the effective receptive field: how much each input pixel moves the centre unit.

    .. math::

        \text{ERF}[h, w] = \frac{1}{N} \sum_{n=1}^{N} \sum_{c}
            \left| \frac{\partial \sum_k y_n[k, i_0, j_0]}{\partial x_n[c, h, w]} \right|

    the gradient of the output unit at ``(i_0, j_0)`` (all its channels summed) with respect to
    the input, in absolute value, summed over input channels and averaged over ``N`` images
    (Luo et al. 2016). It is zero outside the theoretical receptive field and, for deep
    networks, concentrated in a Gaussian-like blob well inside it.

    The module runs in eval mode (batch-norm running statistics, no dropout) and is put back in
    its previous mode; its parameters are not changed and their gradients are not touched.

    Parameters
    ----------
    module : torch.nn.Module
        A fully convolutional network taking (N, C, H, W).
    input_size : int or (int, int)
        Spatial size (H, W) of the input images.
    in_channels : int, optional
        Channels ``C`` of the input; default: ``in_channels`` of the first ``Conv2d`` found.
    inputs : Tensor (N, C, H, W), optional
        Images to average over; default: ``n_samples`` standard-normal images drawn with
        ``seed``.
    n_samples : int
        Number of random images when ``inputs`` is not given.
    position : int or (int, int), optional
        Output unit; default: the centre ``(H_out // 2, W_out // 2)``.
    seed : int
        Seed of the random images.

    Returns
    -------
    ndarray, shape (H, W), float64

    Examples
    --------
    >>> import torch.nn as nn
    >>> net = nn.Conv2d(1, 1, 3, bias=False)
    >>> _ = nn.init.ones_(net.weight)
    >>> effective_receptive_field(net, 5)
    array([[0., 0., 0., 0., 0.],
           [0., 1., 1., 1., 0.],
           [0., 1., 1., 1., 0.],
           [0., 1., 1., 1., 0.],
           [0., 0., 0., 0., 0.]])
    """
    import torch
    import torch.nn as nn

    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    h, w = pair(input_size, "input_size")
    parameter = next(module.parameters(), None)
    dtype = parameter.dtype if parameter is not None else torch.float32
    device = parameter.device if parameter is not None else torch.device("cpu")
    if inputs is None:
        inputs = _random_inputs(module, (h, w), in_channels, n_samples, seed, dtype)
    elif inputs.dim() != 4 or tuple(inputs.shape[-2:]) != (h, w):
        raise ValueError(
            f"inputs must have shape (N, C, {h}, {w}) to match input_size, "
            f"got {tuple(inputs.shape)}"
        )
    x = inputs.detach().to(device=device, dtype=dtype).clone().requires_grad_(True)
    was_training = module.training
    module.eval()
    try:
        with torch.enable_grad():
            y = module(x)
            i0, j0 = _output_unit(tuple(y.shape), position)
            (grad,) = torch.autograd.grad(y[:, :, i0, j0].sum(), x)
    finally:
        module.train(was_training)
    return grad.abs().sum(dim=1).mean(dim=0).detach().cpu().double().numpy()


def _random_inputs(
    module: torch.nn.Module,
    size: tuple[int, int],
    in_channels: int | None,
    n_samples: int,
    seed: int,
    dtype: torch.dtype,
) -> torch.Tensor:
    """``n_samples`` standard-normal images (N, C, H, W) drawn with ``seed``."""
    import torch
    import torch.nn as nn

    if in_channels is None:
        conv = next((m for m in module.modules() if isinstance(m, nn.Conv2d)), None)
        if conv is None:
            raise ValueError("in_channels is needed: the module has no Conv2d to read it from")
        in_channels = conv.in_channels
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n_samples, in_channels, *size, generator=generator, dtype=dtype)


def _output_unit(y_shape: tuple[int, ...], position: IntOrPair | None) -> tuple[int, int]:
    """The output unit ``(i0, j0)``: ``position``, or the centre of the (N, C, H, W) output."""
    if len(y_shape) != 4:
        raise ValueError(f"the module must output (N, C, H, W), got shape {y_shape}")
    if position is None:
        return y_shape[-2] // 2, y_shape[-1] // 2
    i0, j0 = pair(position, "position")
    if not (0 <= i0 < y_shape[-2] and 0 <= j0 < y_shape[-1]):
        raise ValueError(f"position {position!r} is outside the output of size {y_shape[-2:]}")
    return i0, j0
