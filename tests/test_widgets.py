"""The notebook explorers draw figures, and their sliders change what is drawn."""

import io

import matplotlib.colors
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from simclr_lib.shapes import make_shapes
from simclr_lib.widgets import (
    LOOKALIKE,
    MAX_WIDTH,
    NARROW,
    Explorer,
    _png,
    augmentation_explorer,
    lookalike_columns,
    temperature_explorer,
)


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


def _similarities(fig: Figure) -> np.ndarray:
    """Bar heights of the similarity panel (the top axes)."""
    (bars,) = fig.axes[0].containers
    return np.array([bar.get_height() for bar in bars])


def _bar_colours(fig: Figure) -> list[str]:
    (bars,) = fig.axes[1].containers
    return [matplotlib.colors.to_hex(bar.get_facecolor()) for bar in bars]


def test_lookalike_columns_are_both_views_of_the_twin_image():
    assert lookalike_columns(0, 8) == [1, 9]
    assert lookalike_columns(9, 8) == [0, 8]   # view 2 of image 1: twin is image 0
    assert lookalike_columns(13, 8) == [4, 12]
    assert lookalike_columns(2, 3) == [] and lookalike_columns(5, 3) == []  # no twin


@pytest.mark.parametrize("n", [8, 6])
def test_toy_batch_has_a_hard_negative_for_every_anchor(n):
    """As promised in notebook 03: with the defaults, each anchor's look-alikes are less
    similar than its positive and more similar than every other negative, so at a moderate
    temperature they get more probability than any other negative."""
    ex = temperature_explorer(n=n)
    for anchor in range(2 * n):
        fig = ex.update(anchor=anchor, temperature=0.1)
        sims, probs = _similarities(fig), _probabilities(fig)
        positive, hard = (anchor + n) % (2 * n), lookalike_columns(anchor, n)
        others = [k for k in range(2 * n) if k not in (anchor, positive, *hard)]
        assert sims[hard].min() > sims[others].max() + 0.1, anchor
        assert sims[positive] > sims[hard].max(), anchor
        assert probs[hard].min() > 2 * probs[others].max(), anchor
        colours = _bar_colours(fig)
        assert {colours[k] for k in hard} == {matplotlib.colors.to_hex(LOOKALIKE)}
        assert matplotlib.colors.to_hex(LOOKALIKE) not in {colours[k] for k in others}


def test_masked_self_has_no_bar_in_the_softmax_and_the_legend_covers_none():
    ex = temperature_explorer(n=8)
    for anchor, tau in [(0, 0.1), (5, 0.03), (15, 5.0)]:
        fig = ex.update(anchor=anchor, temperature=tau)
        ax_sim, ax_p = fig.axes[:2]
        assert _probabilities(fig)[anchor] == 0.0
        # the anchor's column: a hatched, unfilled bar of its self-similarity 1 on top only
        (self_bar,) = [p for p in ax_sim.patches if p.get_hatch()]
        assert not self_bar.get_fill() and self_bar.get_height() == 1
        assert self_bar.get_x() + self_bar.get_width() / 2 == anchor
        (bars,) = ax_p.containers
        assert [p for p in ax_p.patches if p not in bars.patches] == []  # no span, no box
        labels = [t for t in ax_p.texts if "masked" in t.get_text()]
        assert len(labels) == 1 and labels[0].get_position()[0] == anchor
        # the colour legend lies inside the softmax panel, above p = 1, so no bar reaches it
        fig.draw_without_rendering()
        legend = ax_p.get_legend().get_window_extent()
        panel = ax_p.get_window_extent()
        top_of_bars = ax_p.transData.transform((0, 1.0))[1]
        assert panel.x0 <= legend.x0 and legend.x1 <= panel.x1 and legend.y1 <= panel.y1
        assert legend.y0 > top_of_bars


def test_own_embeddings_have_no_lookalikes():
    z1 = torch.eye(3, 8)
    fig = temperature_explorer(z1, z1.clone()).update()
    assert matplotlib.colors.to_hex(LOOKALIKE) not in _bar_colours(fig)
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert not any("look-alike" in t for t in legend)


@pytest.mark.parametrize("which", ["augmentation", "temperature"])
def test_snapshot_is_the_picture_the_widget_shows(images, which):
    ex = (augmentation_explorer(images, n=2) if which == "augmentation"
          else temperature_explorer(n=4))
    first = ex.snapshot()  # draws once when update() was never called
    assert ex.figure is not None and first.data == bytes(ex.image.value)
    assert first.data.startswith(b"\x89PNG") and first.format == "png"
    ex.update(seed=5) if which == "augmentation" else ex.update(temperature=0.02)
    assert ex.snapshot().data == bytes(ex.image.value) != first.data


def test_update_rejects_unknown_controls_and_out_of_range_values():
    ex = temperature_explorer(n=3)
    with pytest.raises(ValueError, match="unknown control"):
        ex.update(tau=0.1)
    with pytest.raises(ValueError, match="temperature must be in"):
        ex.update(temperature=100.0)
    with pytest.raises(ValueError, match="give both"):
        temperature_explorer(torch.randn(3, 4))


def test_moving_a_slider_redraws_the_same_figure():
    ex = temperature_explorer(n=3)
    first = ex.update()
    png, before = bytes(ex.image.value), _probabilities(first)
    ex.controls["temperature"].value = 0.02  # what dragging the slider does
    assert ex.values()["temperature"] == pytest.approx(0.02)
    assert ex.figure is first  # updated in place, not rebuilt
    assert bytes(ex.image.value) != png
    assert not np.allclose(_probabilities(ex.figure), before)


@pytest.mark.parametrize("which", ["augmentation", "temperature"])
def test_redraws_update_artists_instead_of_adding_them(images, which):
    ex = (augmentation_explorer(images, n=3) if which == "augmentation"
          else temperature_explorer(n=4))
    fig = ex.update()

    def count():
        return [len(ax.get_children()) for ax in fig.axes] + [len(fig.get_children())]

    before = count()
    name = "seed" if which == "augmentation" else "anchor"
    for value in (1, 2, 3):
        ex.controls[name].value = value
    assert ex.figure is fig and count() == before


@pytest.mark.parametrize("which", ["augmentation", "temperature"])
def test_layout_natural_size_and_aligned_sliders(which):
    # As the notebooks call them: 01 shows three 160-px photos as 96-px views, 03 N = 8.
    if which == "augmentation":
        photos = torch.randint(0, 256, (3, 3, 160, 160), dtype=torch.uint8)
        ex = augmentation_explorer(photos, n=3, size=96)
    else:
        ex = temperature_explorer(n=8)
    fig = ex.update()
    width, height = fig.get_size_inches() * fig.dpi
    png_width, png_height = _png_size(bytes(ex.image.value))
    assert (png_width, png_height) == (round(width), round(height))
    assert png_width <= (MAX_WIDTH if which == "augmentation" else NARROW)
    assert png_height <= 740  # with the sliders, fits a 1000-px-high window
    assert ex.image.layout.width == f"{png_width}px"  # natural size, not the output's width
    assert ex.image.layout.max_width == "100%" and ex.image.layout.height == "auto"
    labels = {c.style.description_width for c in ex.controls.values()}
    widths = {c.layout.width for c in ex.controls.values()}
    assert len(labels) == 1 and len(widths) == 1, (labels, widths)
    longest = max(len(c.description) for c in ex.controls.values())
    assert int(labels.pop().removesuffix("px")) >= 7 * longest


def test_views_are_drawn_at_an_integer_zoom():
    photos = torch.randint(0, 256, (3, 3, 160, 160), dtype=torch.uint8)
    fig = augmentation_explorer(photos, n=3, size=96).update()
    for ax in fig.axes:
        box = ax.get_window_extent()
        assert box.width == pytest.approx(192, abs=0.5) and box.height == pytest.approx(192,
                                                                                   abs=0.5)
        assert _pixels(ax).shape[:2] == (96, 96)  # the images too, at the views' resolution


@pytest.mark.parametrize("which", ["augmentation", "temperature"])
def test_blitted_picture_equals_a_full_draw(images, which):
    """Redrawing only the changing artists gives the picture a full redraw gives."""
    if which == "augmentation":
        ex = augmentation_explorer(images, n=3)
        changes = [{"seed": 5}, {"grayscale_p": 1.0}, {"min_scale": 0.9, "seed": 7}]
    else:
        ex = temperature_explorer(n=6)
        changes = [{"temperature": 0.03}, {"anchor": 9}, {"temperature": 4.0, "anchor": 2}]
    ex.update()
    for change in changes:
        fig = ex.update(**change)
        blitted, full = _rgb(bytes(ex.image.value)), _rgb(_png(fig))
        assert blitted.shape == full.shape
        differ = np.abs(blitted.astype(int) - full.astype(int)).max(axis=-1) > 8
        # only where a redrawn line crosses an axis spine may the two orders of drawing differ
        assert differ.mean() < 1e-3, f"{which} {change}: {differ.sum()} pixels differ"


def _rgb(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def _png_size(png: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    assert png.startswith(b"\x89PNG")
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
