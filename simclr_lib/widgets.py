"""Interactive explorers for the notebooks: sliders that redraw a figure.

Each explorer is an :class:`Explorer`: ``explorer.widget`` is the ipywidgets box to
display (sliders above a picture), and ``explorer.update(**values)`` sets sliders, redraws
and returns the matplotlib ``Figure`` it drew. Moving a slider calls ``update()`` too, so
a notebook can (and should) call it once itself; that way the drawing code also runs
where nobody moves a slider (nbmake, CI, a static copy of the notebook)::

    explorer = temperature_explorer()
    explorer.update(temperature=0.1)   # draws once, returns the Figure
    display(explorer.widget)           # sliders + picture, live in Jupyter

Figures are ``matplotlib.figure.Figure`` objects (never registered with pyplot, like those
of :mod:`simclr_lib.plots`), rendered to PNG and shown in an ``ipywidgets.Image``, so
Jupyter's inline backend does not show them a second time below the widget. The picture is
shown at its natural size (one figure pixel per screen pixel, at most the output's width),
so its text matches the notebook's other figures. An explorer builds its figure once and
then only updates the artists that change (image data, bar heights, a line, a few texts),
with its layout fixed after the first draw: a redraw costs one render and one PNG, a
fraction of a second on two CPU cores (``benchmarks/bench_explorers.py`` measures it).

This is the only module of :mod:`simclr_lib` that imports ipywidgets; the explorers use
core widgets only, which ipywidgets 7 (Colab) and 8 (JupyterLab 4) both have.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import ipywidgets
import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from IPython.display import Image as DisplayImage
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from PIL import Image

from .augment import BatchedAugment
from .loss import nt_xent, similarity_logits
from .plots import BAD, GOOD, PALETTE, image_axis, to_numpy_images

DPI = 100          # explorer figures: 100 pixels per inch, the notebook figures' density
# JupyterLab's notebook column (file browser open) is about 960 px wide in a 1400-px window
# and 460 px in a 900-px one, where wider pictures shrink to fit (and their text with them).
MAX_WIDTH = 760    # px: the widest explorer picture (01's three photos take 620)
NARROW = 460       # px: pictures with small text (03's tick labels) keep to this width
GREY = "#999999"   # negatives
LOOKALIKE = PALETTE[5]  # reddish purple: the look-alike (hard) negatives of the toy batch
LOOKALIKE_SPREAD = 0.5  # toy images: look-alike pair centre + this much noise per dimension
TRACK_WIDTH = 190  # px of every slider's track, whatever the length of its label
READOUT_WIDTH = 64  # px reserved for a slider's value


def _png(fig: Figure) -> bytes:
    """The figure as PNG at its own size (no tight bounding box: that draws it twice)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi)
    return buf.getvalue()


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch on one thread inside: an explorer's tensors are tiny, and on a busy
    2-core machine two spinning OpenMP threads made one augmentation of three 160-px
    photos 50x slower (0.29 s instead of 0.005 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _label_width(controls: dict[str, ipywidgets.ValueWidget]) -> int:
    """Pixels for the longest description, so that every track starts at the same x."""
    return 12 + round(7.5 * max(len(c.description) for c in controls.values()))


class Explorer:
    """Named sliders and a picture redrawn by ``render(**slider_values)``.

    The sliders get one label width and one track width, so their tracks line up; the
    picture keeps its natural size and shrinks only when the output is narrower.

    Args:
        render: draws one figure from keyword arguments named like the controls.
        controls: ipywidgets value widgets (sliders), by the keyword they feed.
        redraw: the artists that ``render`` changes, if it updates one figure in place
            (returns the same ``Figure`` every time). Then only they are drawn on each
            update, in this order, over a cached picture of the rest (matplotlib's
            *blitting*); list every changing artist, and any artist that must stay on
            top of them. Empty: the whole figure is drawn every time.

    Attributes:
        widget: the ``ipywidgets.VBox`` to display: controls above the picture.
        controls: the value widgets, by name.
        image: the ``ipywidgets.Image`` holding the last figure as PNG.
        figure: the last ``Figure`` drawn (``None`` before the first update).

    Example:
        >>> ex = temperature_explorer()
        >>> fig = ex.update(temperature=0.2)
        >>> ex.values()["temperature"]
        0.2
    """

    def __init__(self, render: Callable[..., Figure],
                 controls: dict[str, ipywidgets.ValueWidget],
                 redraw: Sequence[Artist] = ()) -> None:
        self._render = render
        self._redraw = list(redraw)
        self._background: Any = None  # the figure without the redraw artists, as pixels
        self.controls = controls
        label = _label_width(controls)
        for control in controls.values():
            control.style.description_width = f"{label}px"
            control.layout.width = f"{label + TRACK_WIDTH + READOUT_WIDTH}px"
        self.image = ipywidgets.Image(
            format="png", layout=ipywidgets.Layout(max_width="100%", height="auto"))
        sliders = ipywidgets.HBox(list(controls.values()),
                                  layout=ipywidgets.Layout(flex_flow="row wrap"))
        self.widget = ipywidgets.VBox([sliders, self.image],
                                      layout=ipywidgets.Layout(align_items="flex-start"))
        self.figure: Figure | None = None
        self._holding = False
        for control in controls.values():
            control.observe(self._on_change, names="value")

    def snapshot(self) -> DisplayImage:
        """The picture shown now, as a plain PNG output to ``display`` beside the widget.

        A static copy of a notebook (GitHub, an HTML export) shows no sliders and, with
        them, no picture; this one is an ordinary image output, so it is there too. It is
        exactly the PNG of :attr:`image` (drawn once first if :meth:`update` was never
        called), at its natural size.

        Returns:
            An ``IPython.display.Image`` (PNG).

        Example:
            >>> ex = temperature_explorer(n=4)
            >>> ex.snapshot().data[:4]
            b'\\x89PNG'
        """
        if self.figure is None:
            self.update()
        return DisplayImage(data=bytes(self.image.value), format="png")

    def values(self) -> dict[str, Any]:
        """The current value of every control, by name."""
        return {name: control.value for name, control in self.controls.items()}

    def update(self, **values: Any) -> Figure:
        """Set the given controls, redraw with all current values, return the figure.

        Args:
            **values: new values for some controls, e.g. ``temperature=0.1``.

        Returns:
            The ``Figure`` now shown in :attr:`image` (the explorers of this module
            return the same object every time, redrawn).

        Raises:
            ValueError: for an unknown control name or a value outside its slider's range.
        """
        for name, value in values.items():
            if name not in self.controls:
                raise ValueError(f"unknown control {name!r}; choose from "
                                 f"{', '.join(self.controls)}")
            control = self.controls[name]
            low, high = getattr(control, "min", None), getattr(control, "max", None)
            if isinstance(control, ipywidgets.FloatLogSlider):  # min, max are exponents
                low, high = control.base ** low, control.base ** high
            if low is not None and not low <= value <= high:
                raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
        self._holding = True  # one redraw below, not one per changed slider
        try:
            for name, value in values.items():
                self.controls[name].value = value
        finally:
            self._holding = False
        fig = self._render(**self.values())
        self.figure = fig
        png = self._blit(fig) if self._redraw else _png(fig)
        self.image.layout.width = f"{round(fig.get_figwidth() * fig.dpi)}px"  # natural size
        self.image.value = png
        return fig

    def _blit(self, fig: Figure) -> bytes:
        """PNG of ``fig``: the cached background, then the ``redraw`` artists over it."""
        if not isinstance(fig.canvas, FigureCanvasAgg):
            FigureCanvasAgg(fig)  # attaches itself as fig.canvas
        canvas = fig.canvas
        if self._background is None:
            for artist in self._redraw:
                artist.set_animated(True)  # a full draw skips animated artists
            try:
                canvas.draw()
                self._background = canvas.copy_from_bbox(fig.bbox)
            finally:
                for artist in self._redraw:  # so that fig.savefig() still draws everything
                    artist.set_animated(False)
        else:
            canvas.restore_region(self._background)
        for artist in self._redraw:
            (artist.axes or fig).draw_artist(artist)
        rgb = np.asarray(canvas.buffer_rgba())[..., :3]
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format="png")
        return buf.getvalue()

    def _on_change(self, change: dict) -> None:
        if not self._holding:
            self.update()


def _slider(description: str, value: float, low: float, high: float, step: float,
            ) -> ipywidgets.FloatSlider:
    return ipywidgets.FloatSlider(value=value, min=low, max=high, step=step,
                                  description=description, continuous_update=False)


def _views_figure(images: np.ndarray, size: int) -> tuple[Figure, list[list[Any]]]:
    """Columns of (image, view x_i, view x_j), laid out once in pixels.

    ``images`` come at the views' resolution (``size``), and everything is drawn at one
    integer zoom (``nearest``: each pixel becomes a square of zoom x zoom screen pixels),
    so nothing looks blurred or unevenly blocky, and the PNG stays small.

    Returns:
        The figure and its ``AxesImage`` artists by row: ``rows[0]`` the images,
        ``rows[1]`` and ``rows[2]`` the two views (blank until the first update).
    """
    n = len(images)
    zoom = max(1, min(192, (MAX_WIDTH - 40) // n) // size)
    cell = zoom * size
    left, top, gap, pad = 26, 34, 6, 6  # px
    width = left + n * cell + (n - 1) * gap + pad
    height = top + 3 * cell + 2 * gap + pad
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    rows: list[list[Any]] = []
    blank = np.ones((size, size, 3), dtype=np.float32)
    for r, label in enumerate(("image", "view $x_i$", "view $x_j$")):
        row = []
        for c in range(n):
            x0 = left + c * (cell + gap)
            y0 = height - top - (r + 1) * cell - r * gap
            ax = fig.add_axes((x0 / width, y0 / height, cell / width, cell / height))
            row.append(image_axis(ax, images[c] if r == 0 else blank))
        row[0].axes.set_ylabel(label, fontsize=10)
        rows.append(row)
    fig.text(left / width, 1 - 8 / height, f"Each image and two augmented views, {size} px"
             + (f" (shown {zoom}x)" if zoom > 1 else ""), va="top", fontsize=11)
    return fig, rows

def augmentation_explorer(images: Any, n: int = 4, size: int | None = None, seed: int = 0, *,
                          min_scale: float = 0.08, strength: float = 0.5,
                          grayscale_p: float = 0.2, blur_p: float = 0.5) -> Explorer:
    """Sliders for the SimCLR augmentations, showing ``n`` images and two views of each.

    The sliders are the lower bound of the random-resized-crop area (``min_scale``), the
    colour-jitter strength ``s``, the probability of grayscale and the probability of
    Gaussian blur (Chen et al. 2020, Appendix A), plus ``seed`` to draw new random views.
    Views come from :class:`simclr_lib.augment.BatchedAugment` with a seeded generator, so
    the same slider values always give the same picture.

    Introduced in notebooks/01_augmentations.ipynb.

    Args:
        images: uint8 images (B, 3, H, W), or a dataset with an ``images`` attribute
            (e.g. :class:`simclr_lib.data.ImageTensorDataset`); the first ``n`` are shown.
        n: number of images (rows of the picture).
        size: side of the views in pixels; ``None`` keeps the images' height. The images
            are shown at this resolution too (shorter side), so that the three rows compare
            like with like, all at one integer zoom.
        seed: initial value of the ``seed`` slider.
        min_scale: initial smallest crop area fraction, in [0.05, 1].
        strength: initial colour-jitter strength, in [0, 1.5].
        grayscale_p: initial grayscale probability, in [0, 1].
        blur_p: initial blur probability, in [0, 1].

    Returns:
        An :class:`Explorer` with controls ``min_scale``, ``strength``, ``grayscale_p``,
        ``blur_p`` and ``seed``.

    Raises:
        ValueError: if ``images`` is not a (B, 3, H, W) batch with at least one image.

    Example:
        >>> from simclr_lib.data import load_dataset
        >>> ex = augmentation_explorer(load_dataset("shapes", size=16), n=2)
        >>> fig = ex.update(grayscale_p=1.0)  # every view gray
    """
    images = getattr(images, "images", images)
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images)
        raise ValueError(f"images must be a (B, 3, H, W) tensor, got {shape}")
    if n < 1 or images.shape[0] < 1:
        raise ValueError(f"need n >= 1 and at least one image, got n={n}, "
                         f"{images.shape[0]} images")
    x = images[:n]
    size = size or x.shape[-2]
    # the images at the views' resolution: what a view of the whole image would look like
    shown = x if x.shape[-2:] == (size, size) else TF.resize(x, size, antialias=True)
    fig, rows = _views_figure(to_numpy_images(shown), size)

    def render(min_scale: float, strength: float, grayscale_p: float, blur_p: float,
               seed: int) -> Figure:
        augment = BatchedAugment(size, strength=strength, scale=(min_scale, 1.0),
                                 grayscale_p=grayscale_p, blur=True, blur_p=blur_p)
        g = torch.Generator(device=x.device).manual_seed(int(seed))
        with torch.no_grad(), _one_thread():
            x_i = augment(x, generator=g)  # (n, 3, size, size)
            x_j = augment(x, generator=g)
        for row, views in zip(rows[1:], (x_i, x_j), strict=True):
            for artist, view in zip(row, to_numpy_images(views), strict=True):
                artist.set_data(view)
        return fig

    controls = {
        "min_scale": _slider("min crop area", min_scale, 0.05, 1.0, 0.01),
        "strength": _slider("jitter strength s", strength, 0.0, 1.5, 0.05),
        "grayscale_p": _slider("grayscale p", grayscale_p, 0.0, 1.0, 0.05),
        "blur_p": _slider("blur p", blur_p, 0.0, 1.0, 0.05),
        "seed": ipywidgets.IntSlider(value=seed, min=0, max=99, description="seed",
                                     continuous_update=False),
    }
    return Explorer(render, controls, redraw=rows[1] + rows[2])


def _toy_embeddings(n: int, dim: int, noise: float, seed: int,
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Toy pairs: images come in look-alike pairs (2k, 2k+1), views are noisy copies.

    The look-alike of each image (``k ^ 1``) is a *hard negative*: less similar than the
    positive, more similar than every other negative (for the defaults of
    :func:`temperature_explorer` this holds for every anchor; tested).
    """
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn((n + 1) // 2, dim, generator=g).repeat_interleave(2, dim=0)[:n]
    images = centres + LOOKALIKE_SPREAD * torch.randn(n, dim, generator=g)  # (N, D)
    z1 = images + noise * torch.randn(n, dim, generator=g)
    z2 = images + noise * torch.randn(n, dim, generator=g)
    return z1, z2


def lookalike_columns(anchor: int, n: int) -> list[int]:
    """Columns of the look-alike (hard) negatives of ``anchor`` in the toy batch.

    In the toy batch of :func:`temperature_explorer` image ``k`` looks like image ``k ^ 1``;
    with the ``[z1; z2]`` layout, both views of that image are hard negatives of both views
    of image ``k``.

    Args:
        anchor: row of the (2N, 2N) similarity matrix.
        n: number of pairs N.

    Returns:
        The (at most two) columns, in increasing order; none when N is odd and ``anchor``
        is a view of the last image, which has no look-alike.
    """
    twin = (anchor % n) ^ 1
    return [twin, twin + n] if twin < n else []


def _temperature_figure(n: int, taus: list[float], curve: list[float], lookalikes: bool,
                        ) -> tuple[Callable[..., Figure], list[Artist]]:
    """The temperature explorer's figure, built once.

    Three panels stacked in a column narrow enough to stay at natural size in a 900-px
    window: the anchor's cosine similarities, NT-Xent's softmax over them (sharing the
    candidate axis, so each bar sits under its similarity), and the batch's loss against
    tau. The anchor's own column is hatched where its similarity is (1) and labelled
    "masked" with no bar in the softmax panel, where its probability is 0. The colour
    legend sits inside the softmax panel, above 1, where no probability can reach; the
    loss panel's legend sits below it.

    Returns:
        ``draw(temperature, anchor, positive, sims, probs, loss)``, which updates the
        figure and returns it, and the artists it changes (with those drawn over them),
        in drawing order, for :class:`Explorer`'s ``redraw``. With ``lookalikes`` the
        look-alike negatives of the toy batch (:func:`lookalike_columns`) get their own
        colour.
    """
    cols = list(range(2 * n))
    uniform, chance = 1 / (2 * n - 1), float(np.log(2 * n - 1))
    fig = Figure(figsize=(NARROW / DPI, 7.2), dpi=DPI, layout="constrained")
    ax_sim, ax_p, ax_loss = fig.subplots(3, 1, height_ratios=(1, 1.35, 1))
    ax_p.sharex(ax_sim)

    sim_bars = ax_sim.bar(cols, [0.0] * len(cols), color=GREY)
    ax_sim.set_ylim(-1.05, 1.05)
    zero = ax_sim.axhline(0, color="black", lw=0.5)
    ax_sim.set_ylabel("cosine similarity")
    ax_sim.tick_params(axis="x", labelbottom=False)
    p_bars = ax_p.bar(cols, [0.0] * len(cols), color=GREY)
    ax_p.set_ylim(0, 1.5)  # 0 to 1 for the bars, the rest for the legend
    ax_p.set_yticks([0, 0.25, 0.5, 0.75, 1])
    uniform_line = ax_p.axhline(uniform, color=PALETTE[0], ls=":", lw=1.2)
    ax_p.set_ylabel("probability")
    ax_p.set_xlabel("candidate k")
    ax_p.set_xticks(cols)
    ax_p.tick_params(axis="x", labelsize=8)
    # The anchor's own column: its similarity to itself is 1 (a hatched, empty bar), but
    # the mask takes it out of the softmax, so it gets no bar there, only a label.
    self_bar = Rectangle((-0.4, 0), 0.8, 1, fill=False, hatch="////", edgecolor=BAD, lw=0.8)
    ax_sim.add_patch(self_bar)
    sim_text = ax_sim.text(0, -0.06, "self, masked", ha="center", va="top", rotation=90,
                           fontsize=7, color=BAD)
    p_text = ax_p.text(0, 0.03, "self: masked, p = 0", ha="center", va="bottom",
                       rotation=90, fontsize=7, color=BAD)

    ax_loss.semilogx(taus, curve, color=PALETTE[0])
    ax_loss.axhline(chance, color="gray", ls="--", lw=1)
    tau_line = ax_loss.axvline(taus[0], color=PALETTE[1], lw=1.5)
    ax_loss.set_xlabel("temperature τ")
    ax_loss.set_ylabel("NT-Xent")

    handles = [Patch(color=GOOD, label="positive (other view)"),
               Patch(color=GREY, label="negatives")]
    if lookalikes:
        handles.append(Patch(color=LOOKALIKE, label="look-alikes (hard negatives)"))
    handles += [Patch(facecolor="none", edgecolor=BAD, hatch="////",
                      label="the anchor itself (masked)"),
                Line2D([], [], color=PALETTE[0], ls=":",
                       label=f"uniform 1/(2N-1) = {uniform:.3f}")]
    ax_p.legend(handles=handles, loc="upper center", ncols=2, fontsize=8,
                borderaxespad=0.3, columnspacing=1.0, handlelength=1.6)
    ax_loss.legend(handles=[
        Line2D([], [], color="gray", ls="--", label=f"ln(2N-1) = {chance:.3f}"),
        Line2D([], [], color=PALETTE[1], label="current τ"),
    ], loc="upper center", bbox_to_anchor=(0.5, -0.22), ncols=2, fontsize=9, frameon=False)
    titles = {"fontsize": 10}
    fixed = False

    def draw(temperature: float, anchor: int, positive: int, sims: list[float],
             probs: list[float], loss: float) -> Figure:
        nonlocal fixed
        hard = lookalike_columns(anchor, n) if lookalikes else []
        for k, (s_bar, p_bar) in enumerate(zip(sim_bars, p_bars, strict=True)):
            colour = GOOD if k == positive else LOOKALIKE if k in hard else GREY
            s_bar.set_height(sims[k])
            s_bar.set_facecolor(colour)
            p_bar.set_height(probs[k])
            p_bar.set_facecolor(colour)
        self_bar.set_x(anchor - 0.4)
        sim_text.set_x(anchor)
        p_text.set_x(anchor)
        ax_sim.set_title(f"cosine similarity of anchor {anchor} to each candidate k",
                         **titles)
        ax_p.set_title(f"softmax(sim / τ) at τ = {temperature:.3g}:  p(positive) = "
                       f"{probs[positive]:.2f}", **titles)
        ax_loss.set_title(f"NT-Xent of the batch (N = {n} pairs): {loss:.3f} at τ = "
                          f"{temperature:.3g}", **titles)
        tau_line.set_xdata([temperature, temperature])
        if not fixed:  # lay out once, then keep it: constrained layout is most of a draw
            fig.draw_without_rendering()
            fig.set_layout_engine("none")
            fixed = True
        return fig

    redraw = [*sim_bars, self_bar, zero, sim_text, ax_sim.title,
              *p_bars, uniform_line, p_text, ax_p.title, tau_line, ax_loss.title]
    return draw, redraw


def temperature_explorer(z1: torch.Tensor | None = None, z2: torch.Tensor | None = None, *,
                         n: int = 8, dim: int = 64, noise: float = 0.3,
                         temperature: float = 0.5, anchor: int = 0, seed: int = 0,
                         ) -> Explorer:
    """A temperature slider showing how NT-Xent's softmax over candidates sharpens.

    For one anchor view, three panels: its cosine similarities to the 2N candidates
    (independent of the temperature; its positive in green, itself masked), the softmax
    of ``similarity / tau`` over the 2N - 1 others that NT-Xent's cross-entropy uses, and
    the batch's loss as a function of ``tau`` with the current value marked. As ``tau``
    falls, the probability mass moves onto the most similar candidates, so hard negatives
    dominate the gradient; as it grows, the softmax flattens towards uniform and the loss
    tends to ``ln(2N - 1)`` (Chen et al. 2020, Section 5.1 and Table 5).

    The toy batch (no ``z1``, ``z2``) has images in look-alike pairs: each anchor's two
    look-alike candidates (:func:`lookalike_columns`, drawn in their own colour) are less
    similar than its positive and more similar than any other negative, so at a moderate
    ``tau`` (0.1 to 0.5) they take most of the negatives' probability, and at a very low
    one the positive takes nearly all of it.

    Introduced in notebooks/03_nt_xent_loss.ipynb.

    Args:
        z1: (N, D) first-view embeddings; ``None`` draws a toy batch: images in
            look-alike pairs, each view the image plus Gaussian noise.
        z2: (N, D) second-view embeddings, row ``i`` pairs with ``z1[i]``.
        n: number of pairs N of the toy embeddings.
        dim: dimension D of the toy embeddings.
        noise: standard deviation of the toy views around their image, per dimension
            (look-alike images lie ``LOOKALIKE_SPREAD`` = 0.5 around their shared centre).
        temperature: initial ``tau``, in [0.01, 10].
        anchor: initial anchor row, in [0, 2N).
        seed: seed of the toy embeddings.

    Returns:
        An :class:`Explorer` with controls ``temperature`` and ``anchor``.

    Raises:
        ValueError: if only one of ``z1``, ``z2`` is given, or their shapes differ.

    Example:
        >>> ex = temperature_explorer(n=4)
        >>> fig = ex.update(temperature=0.05, anchor=1)
    """
    if (z1 is None) != (z2 is None):
        raise ValueError("give both z1 and z2, or neither (for toy embeddings)")
    toy = z1 is None
    if toy:
        z1, z2 = _toy_embeddings(n, dim, noise, seed)
    if z1.dim() != 2 or z1.shape != z2.shape or z1.shape[0] < 2:
        raise ValueError("z1 and z2 must both have shape (N, D) with N >= 2, got "
                         f"{tuple(z1.shape)} and {tuple(z2.shape)}")
    z1, z2 = z1.detach().float().cpu(), z2.detach().float().cpu()
    n = z1.shape[0]
    taus = torch.logspace(-2, 1, 61)
    with torch.no_grad(), _one_thread():
        curve = torch.stack([nt_xent(z1, z2, float(t)) for t in taus])  # (61,)
        cosine, labels = similarity_logits(z1, z2, temperature=1.0)  # (2N, 2N), (2N,)
    draw, redraw = _temperature_figure(n, taus.tolist(), curve.tolist(), lookalikes=toy)

    def render(temperature: float, anchor: int) -> Figure:
        with torch.no_grad(), _one_thread():
            sims = cosine[anchor]  # (2N,), -inf at the anchor itself
            probs = F.softmax(sims / temperature, dim=0)  # (2N,), 0 at the anchor itself
            shown = torch.where(torch.isinf(sims), torch.zeros_like(sims), sims)
            loss = float(nt_xent(z1, z2, temperature))
        return draw(temperature, anchor, int(labels[anchor]), shown.tolist(),
                    probs.tolist(), loss)

    controls = {
        "temperature": ipywidgets.FloatLogSlider(
            value=temperature, base=10, min=-2, max=1, step=0.05, description="τ",
            continuous_update=False, readout_format=".3f"),
        "anchor": ipywidgets.IntSlider(value=anchor, min=0, max=2 * n - 1,
                                       description="anchor", continuous_update=False),
    }
    return Explorer(render, controls, redraw=redraw)
