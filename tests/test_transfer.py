"""Tests for cnnlab.transfer: freezing, weight transfer, ablation, metrics, experiment structure."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import recall_score

from cnnlab.data import Split
from cnnlab.transfer import (
    ARMS,
    SmallCNN,
    TransferConfig,
    _train_above_frozen,
    ablated,
    ablation_drops,
    accuracy,
    class_specificity,
    fixed_threads,
    freeze_layers,
    per_class_accuracy,
    run_transfer_experiment,
    train,
    transfer_layers,
)


def _net(seed: int, n_classes: int = 3) -> SmallCNN:
    torch.manual_seed(seed)
    return SmallCNN(n_classes, channels=(4, 6, 6), pool_after=(0,), image_size=8)


def _toy_data(seed: int = 0, n: int = 60, n_classes: int = 3) -> Split:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % n_classes
    x = torch.rand(n, 1, 8, 8, generator=g) * 0.3
    for c in range(n_classes):  # a class-dependent bright column makes the task learnable
        x[y == c, 0, :, 2 * c + 1] += 1.0
    return Split(x, y, x.clone(), y.clone())


def _block_params(net: SmallCNN, i: int) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.layers[i].parameters()]


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_freezing_really_freezes(n: int) -> None:
    net = freeze_layers(_net(0), n)
    before = [_block_params(net, i) for i in range(3)]
    head_before = net.head.weight.detach().clone()
    data = _toy_data()
    train(net, data.x_train, data.y_train, epochs=1, lr=0.05, batch_size=20, seed=0)
    for i in range(3):
        after = list(net.layers[i].parameters())
        same = all(torch.equal(a, b) for a, b in zip(after, before[i], strict=True))
        if i < n:
            assert same, f"frozen block {i} changed"
            assert all(p.grad is None for p in after), f"frozen block {i} received a gradient"
        else:
            assert not same, f"trainable block {i} did not change"
    assert not torch.equal(net.head.weight, head_before)


def test_freeze_zero_unfreezes_everything() -> None:
    net = freeze_layers(freeze_layers(_net(0), 3), 0)
    assert all(p.requires_grad for p in net.parameters())


@pytest.mark.parametrize("n", [0, 1, 2, 3])
@pytest.mark.parametrize("freeze", [True, False])
def test_transfer_copies_exactly_the_first_n_blocks(n: int, freeze: bool) -> None:
    source, target = _net(1), _net(2)
    target_before = [_block_params(target, i) for i in range(3)]
    head_before = target.head.weight.detach().clone()
    transfer_layers(source, target, n, freeze=freeze)
    for i in range(3):
        src, dst = list(source.layers[i].parameters()), list(target.layers[i].parameters())
        if i < n:
            assert all(torch.equal(a, b) for a, b in zip(src, dst, strict=True))
            assert all(a.data_ptr() != b.data_ptr() for a, b in zip(src, dst, strict=True))
        else:
            assert all(torch.equal(a, b) for a, b in zip(dst, target_before[i], strict=True))
            assert not any(torch.equal(a, b) for a, b in zip(src, dst, strict=True))
        assert all(p.requires_grad == (not freeze or i >= n) for p in dst)
    assert torch.equal(target.head.weight, head_before)


def test_transfer_rejects_bad_depth_and_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="n must be"):
        transfer_layers(_net(0), _net(1), 4, freeze=True)
    wide = SmallCNN(3, channels=(5, 6, 6), pool_after=(0,))
    with pytest.raises(ValueError, match="block 0"):
        transfer_layers(wide, _net(1), 1, freeze=True)


@pytest.mark.parametrize("layer,k", [(0, 0), (0, 3), (1, 2), (2, 5)])
def test_ablation_zeroes_exactly_that_channel(layer: int, k: int) -> None:
    net = _net(0)
    with torch.no_grad():
        for block in net.layers:  # positive biases keep every channel alive
            block[0].bias.fill_(0.1)
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        clean = net.features(x)
        with ablated(net, layer, [k]):
            cut = net.features(x)
        restored = net.features(x)
    assert torch.count_nonzero(clean[layer][:, k]) > 0  # there was something to remove
    assert torch.count_nonzero(cut[layer][:, k]) == 0
    others = [c for c in range(net.channels[layer]) if c != k]
    assert torch.equal(cut[layer][:, others], clean[layer][:, others])
    for i in range(layer):
        assert torch.equal(cut[i], clean[i])
    for a, b in zip(restored, clean, strict=True):  # the hook is gone after the block
        assert torch.equal(a, b)


def test_ablation_rejects_bad_filter() -> None:
    with pytest.raises(ValueError, match="filters"), ablated(_net(0), 0, [4]):
        pass


def test_ablation_drops_equal_zeroing_the_filter_weights() -> None:
    # Independent route: zeroing a filter's weights and bias makes its ReLU (and max-pool)
    # output exactly 0, which is what the hook does.
    data = _toy_data(1)
    net = _net(3)
    train(net, data.x_train, data.y_train, epochs=3, lr=0.05, batch_size=20, seed=0)
    drops = ablation_drops(net, data.x_test, data.y_test, 3)
    assert [d.shape for d in drops] == [(4, 3), (6, 3), (6, 3)]
    base = per_class_accuracy(net, data.x_test, data.y_test, 3)
    for layer, k in [(0, 1), (1, 4), (2, 0)]:
        copy = _net(99)
        copy.load_state_dict(net.state_dict())
        with torch.no_grad():
            copy.layers[layer][0].weight[k] = 0.0
            copy.layers[layer][0].bias[k] = 0.0
        expected = base - per_class_accuracy(copy, data.x_test, data.y_test, 3)
        np.testing.assert_allclose(drops[layer][k], expected)


def test_per_class_accuracy_matches_sklearn_recall() -> None:
    data = _toy_data(2, n=90)
    net = _net(4)
    train(net, data.x_train, data.y_train, epochs=1, lr=0.01, batch_size=30, seed=1)
    with torch.no_grad():
        predicted = net(data.x_test).argmax(1).numpy()
    expected = recall_score(data.y_test.numpy(), predicted, average=None, labels=[0, 1, 2])
    np.testing.assert_allclose(per_class_accuracy(net, data.x_test, data.y_test, 3), expected)
    assert accuracy(net, data.x_test, data.y_test) == pytest.approx(
        float((predicted == data.y_test.numpy()).mean())
    )


@settings(max_examples=30, deadline=None)
@given(
    drops=st.lists(
        st.lists(st.floats(-0.2, 1.0, allow_nan=False), min_size=4, max_size=4),
        min_size=1,
        max_size=5,
    ),
    shift=st.integers(0, 3),
)
def test_class_specificity_bounds_and_class_permutation_invariance(drops, shift) -> None:
    d = np.array(drops)
    summary = class_specificity(d)
    rolled = class_specificity(np.roll(d, shift, axis=1))
    assert summary == pytest.approx(rolled, nan_ok=True) or (
        np.allclose(
            [summary.mean_drop, summary.concentration, summary.classes_hurt],
            [rolled.mean_drop, rolled.concentration, rolled.classes_hurt],
            equal_nan=True,
        )
    )
    if not np.isnan(summary.concentration):
        assert 0.25 - 1e-12 <= summary.concentration <= 1.0 + 1e-12
    if not np.isnan(summary.classes_hurt):
        assert 0.25 - 1e-12 <= summary.classes_hurt <= 1.0
    assert summary.active_filters == int((d >= 0.05).any(axis=1).sum())


def test_training_above_frozen_blocks_equals_training_the_whole_model() -> None:
    data = _toy_data(5)
    config = TransferConfig(channels=(4, 6, 6), pool_after=(0,), epochs=2, lr=0.02, batch_size=20)
    full, cached = _net(7), _net(7)
    freeze_layers(full, 2)
    freeze_layers(cached, 2)
    train(full, data.x_train, data.y_train, epochs=2, lr=0.02, batch_size=20, seed=11)
    _train_above_frozen(cached, 2, data, config, seed=11)
    for a, b in zip(full.parameters(), cached.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_fixed_threads_restores_count() -> None:
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), fixed_threads(1):
        assert torch.get_num_threads() == 1
        raise RuntimeError
    assert torch.get_num_threads() == before


def test_small_cnn_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="channels"):
        SmallCNN(3, channels=())
    with pytest.raises(ValueError, match="pool_after"):
        SmallCNN(3, channels=(4, 4), pool_after=(2,))


@pytest.fixture(scope="module")
def tiny_result():
    config = TransferConfig(
        channels=(4, 6, 6), pool_after=(0,), epochs=2, batch_size=25, seeds=(0, 1)
    )
    return run_transfer_experiment(config), config


def test_tiny_experiment_structure(tiny_result) -> None:
    result, config = tiny_result
    assert result.depths == (1, 2, 3)
    assert set(result.accuracy) == set(ARMS)
    assert set(result.task_a).isdisjoint(result.task_b)
    assert sorted(result.task_a + result.task_b) == list(range(10))
    for arm in ARMS:
        acc = result.accuracy[arm]
        assert acc.shape == (2, 3)
        assert np.all((acc >= 0) & (acc <= 1))
        np.testing.assert_allclose(result.mean(arm), acc.mean(axis=0))
    assert result.base_a.shape == result.base_b.shape == (2,)
    assert result.base_b.min() > 0.5  # two epochs learn five digits well above chance (0.2)
    table = result.table()
    assert table.count("\n") == len(ARMS) + 1 and "n=3" in table


def test_tiny_experiment_is_reproducible(tiny_result) -> None:
    result, config = tiny_result
    rng_before = torch.random.get_rng_state()
    again = run_transfer_experiment(config)
    assert torch.equal(torch.random.get_rng_state(), rng_before)  # caller's RNG left alone
    for arm in ARMS:
        np.testing.assert_array_equal(again.accuracy[arm], result.accuracy[arm])
    np.testing.assert_array_equal(again.base_b, result.base_b)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_ablation_keeps_the_model_dtype(dtype: torch.dtype) -> None:
    net = _net(0).to(dtype)
    x = torch.randn(2, 1, 8, 8, dtype=dtype)
    with torch.no_grad(), ablated(net, 0, [1]):
        feats = net.features(x)
        logits = net(x)
    assert all(f.dtype == dtype for f in feats) and logits.dtype == dtype
    assert torch.count_nonzero(feats[0][:, 1]) == 0


def test_ablation_follows_the_model_device() -> None:
    # The 'meta' device stands in for a GPU: a CPU mask cannot multiply its tensors.
    net = _net(0).to("meta")
    with torch.no_grad(), ablated(net, 1, [0, 2]):
        out = net(torch.empty(2, 1, 8, 8, device="meta"))
    assert out.device.type == "meta" and out.shape == (2, 3)
