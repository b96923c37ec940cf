"""Synthetic segmentation data and mean IoU, against scikit-learn's Jaccard score."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import jaccard_score

from cnnlab.segmentation import confusion_matrix, iou_per_class, make_shapes_dataset, mean_iou


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(1, 200), classes=st.integers(2, 5))
def test_mean_iou_matches_sklearn(seed, n, classes):
    rng = np.random.default_rng(seed)
    target = rng.integers(0, classes, n)
    prediction = np.where(rng.random(n) < 0.6, target, rng.integers(0, classes, n))
    present = np.union1d(target, prediction)
    expected = jaccard_score(target, prediction, labels=present, average="macro")
    assert mean_iou(prediction, target, classes) == pytest.approx(expected)
    per_class = jaccard_score(target, prediction, labels=present, average=None)
    np.testing.assert_allclose(iou_per_class(prediction, target, classes)[present], per_class)


def test_perfect_and_disjoint_predictions():
    target = np.array([[0, 1], [2, 2]])
    assert mean_iou(target, target, 3) == 1.0
    assert mean_iou((target + 1) % 3, target, 3) == 0.0


def test_confusion_matrix_checks_inputs():
    with pytest.raises(ValueError, match="same shape"):
        confusion_matrix(np.zeros(3, int), np.zeros(4, int), 2)
    with pytest.raises(ValueError, match="target labels"):
        confusion_matrix(np.zeros(3, int), np.array([0, 1, 2]), 2)
    with pytest.raises(TypeError, match="prediction"):
        confusion_matrix(np.zeros(3), np.zeros(3, int), 2)


def test_dataset_is_seeded_and_consistent():
    a = make_shapes_dataset(12, size=40, seed=3)
    b = make_shapes_dataset(12, size=40, seed=3)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.masks, b.masks)
    assert not np.array_equal(a.masks, make_shapes_dataset(12, size=40, seed=4).masks)
    # objects are bright, background dark: mean brightness per class is about 1 and 0
    assert abs(a.images[:, 0][a.masks == 0].mean()) < 0.1
    assert abs(a.images[:, 0][a.masks > 0].mean() - 1) < 0.1


def test_dataset_has_both_shapes_at_many_scales():
    data = make_shapes_dataset(200, size=64, radii=(3, 20), seed=0)
    areas = [
        np.count_nonzero(mask == label)
        for mask in data.masks
        for label in (1, 2)
        if (mask == label).any()
    ]
    assert set(np.unique(data.masks).tolist()) == {0, 1, 2}
    # objects from a few dozen pixels up to over a thousand
    assert min(areas) < 60 and max(areas) > 1000


def test_a_square_is_a_square():
    data = make_shapes_dataset(1, size=64, radii=(10, 10), objects=(1, 1), noise=0.0, seed=1)
    label = data.masks[0].max()
    ys, xs = np.nonzero(data.masks[0] == label)
    box = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
    if label == 2 and box == len(ys):  # square, entirely inside the image: fills its box
        assert True
    else:  # a disc covers about pi/4 of its box when fully inside
        assert label == 1 or box == len(ys)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_images": 0}, "num_images"),
        ({"num_images": 2, "radii": (5, 2)}, "radii"),
        ({"num_images": 2, "noise": -1.0}, "noise"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_shapes_dataset(**kwargs)
