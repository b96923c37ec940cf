"""Tests of the sliding-window figures and the feature-map helpers.

References are independent of cnnlab: scipy.signal.correlate2d, explicit block means, and the
BT.601 weights written out.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from scipy.signal import correlate2d  # noqa: E402

from cnnlab.numpy import corr2d  # noqa: E402
from cnnlab.viz.images import (  # noqa: E402
    classic_kernels,
    downsample,
    feature_maps,
    sample_image,
    show_feature_maps,
    to_grayscale,
)
from cnnlab.viz.sliding import (  # noqa: E402
    MAX_GRID,
    animate_correlation,
    draw_correlation_step,
    draw_tile_positions,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _grid_numbers(texts) -> np.ndarray:
    """The numbers written in a grid of Text artists; NaN for an empty cell."""
    return np.array(
        [[float(t.get_text()) if t.get_text() else np.nan for t in row] for row in texts]
    )


SOBEL_X = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def _small_image(seed: int = 0, shape=(5, 5)) -> np.ndarray:
    return np.random.default_rng(seed).integers(-9, 10, size=shape).astype(float)


def test_step_draws_three_panels_and_the_output_so_far():
    image = _small_image()
    step = draw_correlation_step(image, SOBEL_X, 1, 2)
    assert len(step.figure.axes) == 4  # input, kernel, output, and the formula panel
    assert step.axes == tuple(step.figure.axes[:3])
    expected = correlate2d(image, SOBEL_X, mode="valid")
    written = _grid_numbers(step.output_texts)
    filled = np.array([[True, True, True], [True, True, True], [False, False, False]])
    np.testing.assert_array_equal(np.isnan(written), ~filled)
    np.testing.assert_allclose(written[filled], expected[filled], rtol=1e-12)
    np.testing.assert_array_equal(written[filled], corr2d(image, SOBEL_X)[filled])
    np.testing.assert_array_equal(_grid_numbers(step.input_texts), image)
    np.testing.assert_array_equal(_grid_numbers(step.kernel_texts), SOBEL_X)
    # The tile covers rows 1..3 and columns 2..4; the outline of the current output cell is (1, 2).
    assert step.tile.get_xy() == (1.5, 0.5)
    assert (step.tile.get_width(), step.tile.get_height()) == (3, 3)
    assert step.cell.get_xy() == (1.5, 0.5)
    assert step.tile in step.axes[0].patches and step.cell in step.axes[2].patches


def test_the_written_sum_of_products_evaluates_to_the_cell_value():
    image = _small_image(seed=1)
    kernel = np.array([[2.0, -1.0], [0.5, 3.0]])
    for i, j in [(0, 0), (2, 3), (3, 1)]:
        step = draw_correlation_step(image, kernel, i, j)
        text = step.formula.get_text()
        lines = text.splitlines()
        assert lines[0].startswith(f"S({i},{j}) = ")
        products = " ".join(line.split("=", 1)[-1] for line in lines[:-1]).replace("\u00b7", "*")
        total = eval(products, {})  # only numbers, '+', '*', parentheses
        expected = float(correlate2d(image, kernel, mode="valid")[i, j])
        assert total == pytest.approx(expected, abs=1e-9)
        assert float(lines[-1].split("=")[-1]) == pytest.approx(expected, abs=1e-9)
        plt.close(step.figure)


def test_step_draws_on_given_axes():
    fig, axes = plt.subplots(1, 3)
    step = draw_correlation_step(np.arange(16.0).reshape(4, 4), np.ones((2, 2)), 0, 1, axes=axes)
    assert step.figure is fig
    assert step.axes == tuple(axes)
    assert step.formula.axes is axes[0]


@settings(max_examples=15, deadline=None)
@given(
    h=st.integers(1, 6),
    w=st.integers(1, 6),
    kh=st.integers(1, 3),
    kw=st.integers(1, 3),
    seed=st.integers(0, 2**16),
    data=st.data(),
)
def test_output_grid_matches_scipy_for_any_small_case(h, w, kh, kw, seed, data):
    kh, kw = min(kh, h), min(kw, w)
    rng = np.random.default_rng(seed)
    image = rng.integers(-5, 6, size=(h, w)).astype(float)
    kernel = rng.integers(-3, 4, size=(kh, kw)).astype(float)
    oh, ow = h - kh + 1, w - kw + 1
    i = data.draw(st.integers(0, oh - 1))
    j = data.draw(st.integers(0, ow - 1))
    step = draw_correlation_step(image, kernel, i, j)
    written = _grid_numbers(step.output_texts)
    order = np.arange(oh * ow).reshape(oh, ow)
    filled = order <= i * ow + j
    np.testing.assert_array_equal(written[filled], correlate2d(image, kernel, "valid")[filled])
    assert np.isnan(written[~filled]).all()
    plt.close(step.figure)


def test_animation_has_one_frame_per_output_cell_and_ends_full():
    image = _small_image(seed=2)
    anim = animate_correlation(image, SOBEL_X, interval=300)
    assert len(list(anim.new_frame_seq())) == 9
    html = anim.to_jshtml()
    assert html.count("data:image/png;base64") == 9
    assert len(html) < 1_500_000
    # Rendering left the figure on the last frame: every output cell written, equal to scipy's.
    assert anim.step.position == (2, 2)
    np.testing.assert_array_equal(
        _grid_numbers(anim.step.output_texts), correlate2d(image, SOBEL_X, mode="valid")
    )
    assert anim.step.tile.get_xy() == (1.5, 1.5)


def test_animation_frames_move_the_tile_one_pixel_at_a_time():
    anim = animate_correlation(np.arange(20.0).reshape(4, 5), np.ones((2, 3)))
    positions = []
    for k in anim.new_frame_seq():
        anim.step.show(*divmod(k, 3))
        positions.append(anim.step.tile.get_xy())
    anim.to_jshtml()  # render, so the animation is not discarded unused
    assert positions == [(j - 0.5, i - 0.5) for i in range(3) for j in range(3)]


@pytest.mark.parametrize(
    ("image", "kernel", "i", "j", "pattern"),
    [
        (np.zeros((3, 3, 3)), np.ones((2, 2)), 0, 0, r"image must be 2-D, got shape \(3, 3, 3\)"),
        (np.zeros((4, 4)), np.ones(3), 0, 0, r"kernel must be 2-D, got shape \(3,\)"),
        (
            np.zeros((3, 3)),
            np.ones((4, 2)),
            0,
            0,
            r"kernel shape \(4, 2\) is larger than image shape \(3, 3\)",
        ),
        (
            np.zeros((4, 4)),
            np.ones((3, 3)),
            2,
            0,
            r"\(2, 0\) is outside the output of shape \(2, 2\)",
        ),
        (np.zeros((4, 4)), np.ones((3, 3)), 0, -1, r"\(0, -1\) is outside"),
        (np.zeros((MAX_GRID + 1, 4)), np.ones((3, 3)), 0, 0, rf"image shape \({MAX_GRID + 1}, 4\)"),
    ],
)
def test_bad_input_raises_value_error_naming_shapes(image, kernel, i, j, pattern):
    with pytest.raises(ValueError, match=pattern):
        draw_correlation_step(image, kernel, i, j)


def test_animation_rejects_bad_shapes():
    with pytest.raises(
        ValueError, match=r"kernel shape \(6, 6\) is larger than image shape \(5, 5\)"
    ):
        animate_correlation(np.zeros((5, 5)), np.ones((6, 6)))


def test_tile_positions_one_panel_per_position():
    rects = draw_tile_positions(7, 5, [(0, 0), (0, 1), (2, 2)])
    assert [r.get_xy() for r in rects] == [(-0.5, -0.5), (0.5, -0.5), (1.5, 1.5)]
    assert all((r.get_width(), r.get_height()) == (5, 5) for r in rects)
    assert len({r.axes for r in rects}) == 3
    with pytest.raises(ValueError, match=r"\(0, 3\) does not fit: a 5x5 tile on a 7x7 input"):
        draw_tile_positions(7, 5, [(0, 3)])
    with pytest.raises(ValueError, match="kernel_size=8"):
        draw_tile_positions(7, 8, [(0, 0)])


# --- images and feature maps ---------------------------------------------------------------


def test_to_grayscale_uses_bt601_weights():
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, size=(4, 5, 3), dtype=np.uint8)
    expected = (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]) / 255.0
    np.testing.assert_allclose(to_grayscale(rgb), expected, rtol=1e-12)
    rgba = np.concatenate([rgb / 255.0, np.ones((4, 5, 1))], axis=2)
    np.testing.assert_allclose(to_grayscale(rgba), expected, rtol=1e-12)
    with pytest.raises(ValueError, match=r"\(4, 5, 2\)"):
        to_grayscale(np.zeros((4, 5, 2)))


def test_downsample_is_the_block_mean():
    image = np.random.default_rng(4).normal(size=(7, 9))
    out = downsample(image, 3)
    expected = np.array(
        [[image[3 * r : 3 * r + 3, 3 * c : 3 * c + 3].mean() for c in range(3)] for r in range(2)]
    )
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    with pytest.raises(ValueError, match="factor must be an int in"):
        downsample(image, 8)


def test_sample_image_is_a_small_grey_photo():
    image = sample_image(size=128)
    full = plt.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    factor = min(full.shape[:2]) // 128
    assert image.shape == (full.shape[0] // factor, full.shape[1] // factor)
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert image.std() > 0.05  # a photograph, not a flat field


def test_classic_kernels_sums_and_shapes():
    kernels = classic_kernels()
    assert {name: k.shape for name, k in kernels.items()} == {
        "sobel x": (3, 3),
        "sobel y": (3, 3),
        "laplacian": (3, 3),
        "box": (3, 3),
        "gaussian": (5, 5),
    }
    for name in ("sobel x", "sobel y", "laplacian"):
        assert kernels[name].sum() == 0
    for name in ("box", "gaussian"):
        assert kernels[name].sum() == pytest.approx(1.0)


def test_feature_maps_equal_scipy_correlation():
    image = np.random.default_rng(5).random((20, 17))
    kernels = classic_kernels()
    maps = feature_maps(image, kernels)
    assert list(maps) == list(kernels)
    for name, kernel in kernels.items():
        np.testing.assert_allclose(maps[name], correlate2d(image, kernel, mode="valid"), atol=1e-12)
    same = feature_maps(image, {"gaussian": kernels["gaussian"]}, padding="same")["gaussian"]
    np.testing.assert_allclose(
        same, correlate2d(image, kernels["gaussian"], mode="same", boundary="fill"), atol=1e-12
    )


def test_sobel_x_responds_to_a_vertical_edge_with_the_right_sign():
    step = np.zeros((6, 8))
    step[:, 4:] = 1.0  # dark on the left, bright on the right
    response = feature_maps(step, {"sobel x": classic_kernels()["sobel x"]})["sobel x"]
    assert response.max() == 4.0 and response.min() == 0.0
    np.testing.assert_array_equal(np.nonzero(response[0])[0], [2, 3])


def test_show_feature_maps_panels_hold_the_maps():
    image = np.random.default_rng(6).random((16, 16))
    kernels = classic_kernels()
    fig = show_feature_maps(image, kernels, ncols=3)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 1 + len(kernels)
    np.testing.assert_array_equal(panels[0].images[0].get_array(), image)
    for ax, (name, kernel) in zip(panels[1:], kernels.items(), strict=True):
        shown = np.asarray(ax.images[0].get_array())
        np.testing.assert_allclose(shown, correlate2d(image, kernel, mode="valid"), atol=1e-12)
        assert ax.get_title().startswith(name)
        if name in ("sobel x", "sobel y", "laplacian"):
            low, high = ax.images[0].get_clim()
            assert low == -high  # signed map: 0 is mid grey


def test_feature_map_bad_input():
    with pytest.raises(ValueError, match=r"image must be 2-D \(H, W\), got shape \(2, 3, 3\)"):
        feature_maps(np.zeros((2, 3, 3)), {"box": np.ones((2, 2))})
    with pytest.raises(ValueError, match=r"kernel 'edge' must be 2-D, got shape \(3,\)"):
        feature_maps(np.zeros((5, 5)), {"edge": np.ones(3)})
    with pytest.raises(ValueError, match="non-empty mapping"):
        show_feature_maps(np.zeros((5, 5)), {})
