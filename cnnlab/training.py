"""One small training loop for the book's experiments: seeded, device-aware, with a history.

:func:`fit` trains a model on tensors in memory by minibatch gradient descent with Adam:

    for each epoch: for each minibatch B (a seeded random order):
        loss = mean over B of loss_fn(output(model(augment(x_B))), y_B);  Adam step on loss

and returns the mean loss of every epoch. The same seed gives the same minibatches and the same
augmentations; the initial weights are the caller's (seed them with ``torch.manual_seed``
before building the model). Chapters 3 to 6 and :mod:`cnnlab.transfer` all train with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.geometry import check_int

__all__ = ["History", "fit", "SCHEDULES"]

#: Learning-rate schedules: constant, linear decay from ``lr`` to ``lr / steps``, or one cycle
#: (:class:`torch.optim.lr_scheduler.OneCycleLR` with ``max_lr = lr``).
SCHEDULES = ("constant", "linear", "one-cycle")


@dataclass
class History:
    """What :func:`fit` did: the mean training loss of each epoch, and the steps taken.

    Attributes
    ----------
    loss : list of float
        ``loss[e]`` is the mean of the minibatch losses of epoch ``e``, weighted by batch size.
    steps : int
        Optimiser steps taken, ``epochs * ceil(N / batch_size)``.
    """

    loss: list[float] = field(default_factory=list)
    steps: int = 0


def _lr_factor(schedule: str, step: int, steps: int) -> float:
    """Multiplier of ``lr`` at ``step`` (0-based) for the schedules applied by hand."""
    return (steps - step) / steps if schedule == "linear" else 1.0


def fit(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    batch_size: int = 128,
    lr: float = 0.01,
    schedule: str = "constant",
    seed: int = 0,
    device: str | torch.device | None = None,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    output: Callable[[torch.Tensor], torch.Tensor] | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
) -> History:
    """Train the trainable parameters of ``model`` with Adam; return the loss of every epoch.

    Each epoch visits the ``N`` training examples once, in an order drawn from a
    ``torch.Generator`` seeded with ``seed``, in minibatches of ``batch_size``. Frozen
    parameters (``requires_grad=False``) are left out of the optimiser and never change. The
    model is in training mode while it learns and in evaluation mode when ``fit`` returns.

    Parameters
    ----------
    model : nn.Module
    x : Tensor, shape (N, ...)
        Inputs, on any device: each minibatch is moved to ``device``.
    y : Tensor, shape (N, ...)
        Targets (class indices for cross-entropy: (N,) for images, (N, H, W) for masks).
    epochs, batch_size : int
        At least 1.
    lr : float
        Adam's learning rate (the peak rate for ``'one-cycle'``).
    schedule : {'constant', 'linear', 'one-cycle'}
        ``'linear'`` decays the rate from ``lr`` at the first step to ``lr / steps`` at the last.
    seed : int
        Seed of the minibatch order and of the generator passed to ``augment``.
    device : str or torch.device, optional
        Where to train; default: the device of the model's parameters.
    augment : callable ``(x_batch, generator) -> x_batch``, optional
        Applied to every training minibatch (random shifts, say), drawing from the seeded
        generator.
    output : callable ``(model output) -> logits``, optional
        What the loss reads from the model's output (one unit of a map, say).
    loss_fn : callable ``(logits, targets) -> scalar``
        Mean loss of a minibatch; default cross-entropy.

    Returns
    -------
    History
        ``loss``: one float per epoch; ``steps``: the optimiser steps taken.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> model = nn.Linear(2, 2)
    >>> x = torch.randn(64, 2)
    >>> y = (x[:, 0] > 0).long()
    >>> history = fit(model, x, y, epochs=20, batch_size=16, lr=0.05)
    >>> len(history.loss), history.steps, history.loss[-1] < history.loss[0]
    (20, 80, True)
    """
    epochs = check_int("epochs", epochs, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"x and y must have the same length, got shapes {tuple(x.shape)} and {tuple(y.shape)}"
        )
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters")
    if device is None:
        device = params[0].device
    optimiser = torch.optim.Adam(params, lr=lr)
    n = x.shape[0]
    history = History(steps=epochs * -(-n // batch_size))
    cycle = None
    if schedule == "one-cycle":
        cycle = torch.optim.lr_scheduler.OneCycleLR(optimiser, lr, total_steps=history.steps)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    step = 0
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        total = 0.0
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            inputs = x[idx] if augment is None else augment(x[idx], generator)
            if cycle is None:
                for group in optimiser.param_groups:
                    group["lr"] = lr * _lr_factor(schedule, step, history.steps)
            step += 1
            optimiser.zero_grad(set_to_none=True)
            prediction = model(inputs.to(device))
            loss = loss_fn(prediction if output is None else output(prediction), y[idx].to(device))
            loss.backward()
            optimiser.step()
            if cycle is not None:
                cycle.step()
            total += loss.item() * len(idx)
        history.loss.append(total / n)
    model.eval()
    return history
