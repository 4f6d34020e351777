"""The notebook explorers draw figures, and their sliders change what is drawn."""

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from simclr_lib.shapes import make_shapes
from simclr_lib.widgets import Explorer, augmentation_explorer, temperature_explorer


@pytest.fixture(scope="module")
def images():
    x, _ = make_shapes(6, seed=1)
    return x  # (6, 3, 32, 32) uint8


def _pixels(ax) -> np.ndarray:
    """The RGB array an image axes shows (H, W, 3)."""
    return np.asarray(ax.get_images()[0].get_array())[..., :3]


def _view_axes(fig: Figure, n: int) -> list:
    """show_views lays out n image axes, then n per view row; return the view axes."""
    return fig.axes[n:3 * n]


def test_augmentation_explorer_draws_image_and_two_views(images):
    ex = augmentation_explorer(images, n=3)
    assert isinstance(ex, Explorer)
    fig = ex.update()
    assert isinstance(fig, Figure) and ex.figure is fig
    assert len(fig.axes) == 3 * 3  # rows: image, x_i, x_j
    assert bytes(ex.image.value).startswith(b"\x89PNG")
    assert set(ex.values()) == {"min_scale", "strength", "grayscale_p", "blur_p", "seed"}


def test_grayscale_one_gives_gray_views_and_zero_keeps_colour(images):
    ex = augmentation_explorer(images, n=3, strength=0.0)
    gray = ex.update(grayscale_p=1.0)
    for ax in _view_axes(gray, 3):
        rgb = _pixels(ax)
        np.testing.assert_allclose(rgb[..., 0], rgb[..., 1], atol=1e-6)
        np.testing.assert_allclose(rgb[..., 1], rgb[..., 2], atol=1e-6)
    colour = ex.update(grayscale_p=0.0)
    spreads = [np.abs(_pixels(ax)[..., 0] - _pixels(ax)[..., 2]).max()
               for ax in _view_axes(colour, 3)]
    assert max(spreads) > 0.1


def test_same_values_same_picture_and_seed_changes_it(images):
    ex = augmentation_explorer(images, n=2)
    a = [_pixels(ax) for ax in _view_axes(ex.update(seed=3), 2)]
    b = [_pixels(ax) for ax in _view_axes(ex.update(seed=3), 2)]
    c = [_pixels(ax) for ax in _view_axes(ex.update(seed=4), 2)]
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert any(not np.array_equal(u, v) for u, v in zip(a, c, strict=True))


def test_full_crop_without_colour_ops_reproduces_the_image_up_to_flip(images):
    ex = augmentation_explorer(images, n=2, strength=0.0, grayscale_p=0.0, blur_p=0.0,
                               min_scale=1.0)
    fig = ex.update()
    originals = [_pixels(ax) for ax in fig.axes[:2]]
    for k, ax in enumerate(_view_axes(fig, 2)):
        view, image = _pixels(ax), originals[k % 2]
        assert np.allclose(view, image, atol=2e-3) or np.allclose(view, image[:, ::-1],
                                                                  atol=2e-3)


def test_augmentation_explorer_accepts_a_dataset_like_object(images):
    class Data:
        pass

    data = Data()
    data.images = images
    fig = augmentation_explorer(data, n=2, size=16).update()
    assert _pixels(fig.axes[2]).shape[:2] == (16, 16)


def test_augmentation_explorer_rejects_bad_images():
    with pytest.raises(ValueError, match="B, 3, H, W"):
        augmentation_explorer(torch.zeros(3, 32, 32, dtype=torch.uint8))


def _probabilities(fig: Figure) -> np.ndarray:
    """Bar heights of the softmax panel (the middle axes)."""
    (bars,) = fig.axes[1].containers
    return np.array([bar.get_height() for bar in bars])


def test_temperature_explorer_softmax_sums_to_one_and_masks_self():
    ex = temperature_explorer(n=4, anchor=2)
    p = _probabilities(ex.update(temperature=0.5))
    assert p.shape == (8,)
    assert p.sum() == pytest.approx(1.0, abs=1e-6)
    assert p[2] == 0.0  # the anchor is not its own candidate


def test_lower_temperature_sharpens_the_softmax():
    ex = temperature_explorer(n=6, anchor=0)
    hot = _probabilities(ex.update(temperature=5.0))
    cold = _probabilities(ex.update(temperature=0.05))
    assert cold.max() > hot.max()
    uniform = 1 / (2 * 6 - 1)
    assert np.abs(hot[hot > 0] - uniform).max() < 0.05  # nearly uniform when tau is large
    assert cold.max() > 0.5


def test_anchor_slider_moves_the_positive():
    z1 = torch.eye(3, 8)
    ex = temperature_explorer(z1, z1.clone(), temperature=0.1)
    for anchor, positive in [(0, 3), (4, 1)]:
        p = _probabilities(ex.update(anchor=anchor))
        assert int(p.argmax()) == positive


def test_update_rejects_unknown_controls_and_out_of_range_values():
    ex = temperature_explorer(n=3)
    with pytest.raises(ValueError, match="unknown control"):
        ex.update(tau=0.1)
    with pytest.raises(ValueError, match="temperature must be in"):
        ex.update(temperature=100.0)
    with pytest.raises(ValueError, match="give both"):
        temperature_explorer(torch.randn(3, 4))


def test_moving_a_slider_redraws():
    ex = temperature_explorer(n=3)
    first = ex.update()
    ex.controls["temperature"].value = 0.02  # what dragging the slider does
    assert ex.figure is not first
    assert ex.values()["temperature"] == pytest.approx(0.02)
