"""Tests for cnnlab.data: shapes, disjoint and deterministic splits, class subsets, generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_digits

from cnnlab.data import (
    Split,
    load_digits_tensors,
    split_classes,
    subset_classes,
    textured_shapes,
)


@pytest.fixture(scope="module")
def digits() -> Split:
    return load_digits_tensors(size=8, seed=0)


def _sorted_rows(a: np.ndarray) -> np.ndarray:
    return a[np.lexsort(a.T[::-1])]


def test_digits_shapes_and_dtypes(digits: Split) -> None:
    assert digits.x_train.shape[1:] == (1, 8, 8) and digits.x_test.shape[1:] == (1, 8, 8)
    assert digits.x_train.shape[0] + digits.x_test.shape[0] == 1797
    assert digits.x_train.dtype == torch.float32 and digits.y_train.dtype == torch.int64
    assert digits.y_train.shape == (digits.x_train.shape[0],)


def test_digits_train_and_test_partition_the_dataset(digits: Split) -> None:
    # Reference: scikit-learn's own arrays. Train + test must be the whole set, each image once.
    reference = load_digits()
    ref = np.hstack([reference.images.reshape(-1, 64) / 16.0, reference.target[:, None]])
    ours = np.vstack(
        [
            np.hstack([s[0].reshape(-1, 64).numpy(), s[1].numpy()[:, None]])
            for s in ((digits.x_train, digits.y_train), (digits.x_test, digits.y_test))
        ]
    )
    np.testing.assert_allclose(_sorted_rows(ours), _sorted_rows(ref), rtol=0, atol=1e-7)


def test_digits_split_is_stratified(digits: Split) -> None:
    counts = np.bincount(load_digits().target)
    test_counts = np.bincount(digits.y_test.numpy(), minlength=10)
    assert np.all(np.abs(test_counts - counts / 3) <= 1)


def test_digits_split_is_deterministic_and_depends_on_seed(digits: Split) -> None:
    again = load_digits_tensors(size=8, seed=0)
    for a, b in zip(digits, again, strict=True):
        assert torch.equal(a, b)
    other = load_digits_tensors(size=8, seed=1)
    assert not torch.equal(digits.y_train, other.y_train)


def test_digits_upsampled_match_torch_interpolate() -> None:
    data = load_digits_tensors(size=16, seed=0)
    assert data.x_train.shape[1:] == (1, 16, 16)
    assert float(data.x_train.min()) >= 0.0 and float(data.x_train.max()) <= 1.0
    small = load_digits_tensors(size=8, seed=0)
    expected = torch.nn.functional.interpolate(small.x_test, size=16, mode="bilinear").clamp(0, 1)
    torch.testing.assert_close(data.x_test, expected)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"size": 1}, ValueError),
        ({"size": 8.5}, TypeError),  # not an int: a TypeError, as everywhere in cnnlab
        ({"test_fraction": 0.0}, ValueError),
        ({"test_fraction": 1.5}, ValueError),
    ],
)
def test_digits_bad_arguments(kwargs: dict, error: type) -> None:
    with pytest.raises(error, match=next(iter(kwargs))):
        load_digits_tensors(**kwargs)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 40), seed=st.integers(0, 2**31))
def test_split_classes_disjoint_cover_deterministic(n: int, seed: int) -> None:
    a, b = split_classes(n, seed)
    assert set(a).isdisjoint(b)
    assert sorted(a + b) == list(range(n))
    assert len(a) - len(b) in (0, 1)
    assert list(a) == sorted(a) and list(b) == sorted(b)
    assert split_classes(n, seed) == (a, b)


def test_split_classes_rejects_one_class() -> None:
    with pytest.raises(ValueError, match="n_classes"):
        split_classes(1)


def test_subset_classes_matches_numpy_reference(digits: Split) -> None:
    classes = [7, 2, 9]
    sub = subset_classes(digits, classes)
    y = digits.y_test.numpy()
    keep = np.isin(y, classes)
    expected_labels = np.array([classes.index(v) for v in y[keep]])
    np.testing.assert_array_equal(sub.y_test.numpy(), expected_labels)
    np.testing.assert_array_equal(sub.x_test.numpy(), digits.x_test.numpy()[keep])
    assert sub.x_train.shape[0] == int(np.isin(digits.y_train.numpy(), classes).sum())


def test_subset_classes_of_two_tasks_are_disjoint(digits: Split) -> None:
    a, b = split_classes(10, 0)
    n_a = subset_classes(digits, a).x_train.shape[0]
    n_b = subset_classes(digits, b).x_train.shape[0]
    assert n_a + n_b == digits.x_train.shape[0]


@pytest.mark.parametrize("classes", [[], [1, 1]])
def test_subset_classes_rejects_bad_classes(digits: Split, classes: list) -> None:
    with pytest.raises(ValueError, match="classes"):
        subset_classes(digits, classes)


def test_textured_shapes_shapes_balance_and_determinism() -> None:
    x, y = textured_shapes(60, size=16, seed=3)
    assert x.shape == (60, 1, 16, 16) and x.dtype == torch.float32
    assert torch.bincount(y).tolist() == [10] * 6
    x2, y2 = textured_shapes(60, size=16, seed=3)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(x, textured_shapes(60, size=16, seed=4)[0])


def test_textured_shapes_objects_are_visible_and_textured() -> None:
    x, _ = textured_shapes(30, size=24, seed=0)
    # Every image has object pixels at both texture levels (0.35 and 1, up to noise).
    flat = x.flatten(1)
    assert bool(((flat - 1.0).abs() < 0.25).any(1).all())
    assert bool(((flat - 0.35).abs() < 0.1).any(1).all())


@pytest.mark.parametrize("kwargs", [{"n": 0}, {"n": 4, "size": 4}])
def test_textured_shapes_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        textured_shapes(**kwargs)
