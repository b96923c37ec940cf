"""cnnlab.training.fit against the training loop written out by hand with torch.optim.

The reference loops below are the textbook ones (``zero_grad``, loss, ``backward``, ``step``),
with the same seeded minibatch order; ``fit`` must give the same weights, bit for bit on one
thread. Then: the seed decides everything, frozen parameters stay put, ``augment`` and
``output`` are applied, errors name the problem, and a CUDA model trains on the GPU.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.training import fit


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _data(n=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 6, 6, generator=g)
    y = (x.mean(dim=(1, 2, 3)) > 0).long()
    return x, y


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(64, 2))


def _by_hand(model, x, y, epochs, batch_size, lr, seed, schedule):
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * -(-len(x) // batch_size)
    cycle = None
    if schedule == "one-cycle":
        cycle = torch.optim.lr_scheduler.OneCycleLR(optimiser, lr, total_steps=steps)
    generator = torch.Generator().manual_seed(seed)
    step = 0
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), batch_size):
            idx = order[start : start + batch_size]
            if schedule == "linear":
                for group in optimiser.param_groups:
                    group["lr"] = lr * (steps - step) / steps
            step += 1
            optimiser.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            optimiser.step()
            if cycle is not None:
                cycle.step()
    return model


@pytest.mark.parametrize("schedule", ["constant", "linear", "one-cycle"])
def test_fit_is_the_textbook_loop(schedule):
    x, y = _data()
    ours, reference = _model(), _model()
    history = fit(ours, x, y, epochs=3, batch_size=16, lr=0.01, seed=5, schedule=schedule)
    _by_hand(reference, x, y, 3, 16, 0.01, 5, schedule)
    for a, b in zip(ours.parameters(), reference.parameters(), strict=True):
        assert torch.equal(a, b)
    assert len(history.loss) == 3 and history.steps == 3 * 4
    assert not ours.training  # evaluation mode when it returns


def test_the_seed_decides_the_batches():
    x, y = _data()
    runs = []
    for seed in (1, 1, 2):
        model = _model()
        runs.append((fit(model, x, y, epochs=2, batch_size=8, seed=seed).loss, model))
    assert runs[0][0] == runs[1][0] and runs[0][0] != runs[2][0]
    assert torch.equal(runs[0][1][0].weight, runs[1][1][0].weight)


def test_frozen_parameters_do_not_move():
    x, y = _data()
    model = _model()
    model[0].requires_grad_(False)
    frozen = model[0].weight.detach().clone()
    fit(model, x, y, epochs=2, batch_size=8)
    assert torch.equal(model[0].weight, frozen)


def test_augment_and_output_are_applied():
    x, y = _data()
    seen = []

    def flip(batch, generator):
        assert isinstance(generator, torch.Generator)
        seen.append(len(batch))
        return batch.flip(-1)

    class Map(nn.Module):  # a dense map; the loss reads its centre unit
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3, padding=1)

        def forward(self, inputs):
            return self.conv(inputs)

    model = Map()
    fit(model, x, y, epochs=1, batch_size=20, augment=flip, output=lambda out: out[:, :, 3, 3])
    assert seen == [20, 20, 10]


def test_errors_name_the_problem():
    x, y = _data()
    with pytest.raises(ValueError, match="same length"):
        fit(_model(), x, y[:-1], epochs=1)
    with pytest.raises(ValueError, match="schedule must be one of"):
        fit(_model(), x, y, epochs=1, schedule="cosine")
    with pytest.raises(ValueError, match="epochs must be >= 1, got 0"):
        fit(_model(), x, y, epochs=0)
    with pytest.raises(ValueError, match="no trainable parameters"):
        fit(_model().requires_grad_(False), x, y, epochs=1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fit_trains_on_the_models_device():
    x, y = _data()
    model = _model().cuda()
    history = fit(model, x, y, epochs=5, batch_size=16, lr=0.01)  # CPU data, moved per batch
    assert next(model.parameters()).is_cuda
    reference = _by_hand(_model(), x, y, 5, 16, 0.01, 0, "constant")
    for a, b in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a.cpu(), b, rtol=1e-3, atol=1e-4)
    assert history.loss[-1] < history.loss[0]
