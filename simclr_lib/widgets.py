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
Jupyter's inline backend does not show them a second time below the widget.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import ipywidgets
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from .augment import BatchedAugment
from .loss import nt_xent, similarity_logits
from .plots import BAD, GOOD, PALETTE, show_views


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, bbox_inches="tight")
    return buf.getvalue()


class Explorer:
    """Named sliders and a picture redrawn by ``render(**slider_values)``.

    Args:
        render: draws one figure from keyword arguments named like the controls.
        controls: ipywidgets value widgets (sliders), by the keyword they feed.

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
                 controls: dict[str, ipywidgets.ValueWidget]) -> None:
        self._render = render
        self.controls = controls
        self.image = ipywidgets.Image(format="png")
        sliders = ipywidgets.HBox(list(controls.values()),
                                  layout=ipywidgets.Layout(flex_flow="row wrap"))
        self.widget = ipywidgets.VBox([sliders, self.image])
        self.figure: Figure | None = None
        self._holding = False
        for control in controls.values():
            control.observe(self._on_change, names="value")

    def values(self) -> dict[str, Any]:
        """The current value of every control, by name."""
        return {name: control.value for name, control in self.controls.items()}

    def update(self, **values: Any) -> Figure:
        """Set the given controls, redraw with all current values, return the figure.

        Args:
            **values: new values for some controls, e.g. ``temperature=0.1``.

        Returns:
            The ``Figure`` now shown in :attr:`image`.

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
        self.image.value = _png(fig)
        return fig

    def _on_change(self, change: dict) -> None:
        if not self._holding:
            self.update()


def _slider(description: str, value: float, low: float, high: float, step: float,
            ) -> ipywidgets.FloatSlider:
    return ipywidgets.FloatSlider(value=value, min=low, max=high, step=step,
                                  description=description, continuous_update=False,
                                  style={"description_width": "initial"})


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
        size: side of the views in pixels; ``None`` keeps the images' height.
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

    def render(min_scale: float, strength: float, grayscale_p: float, blur_p: float,
               seed: int) -> Figure:
        augment = BatchedAugment(size, strength=strength, scale=(min_scale, 1.0),
                                 grayscale_p=grayscale_p, blur=True, blur_p=blur_p)
        g = torch.Generator(device=x.device).manual_seed(int(seed))
        with torch.no_grad():
            x_i = augment(x, generator=g)  # (n, 3, size, size)
            x_j = augment(x, generator=g)
        return show_views(x, x_i, x_j, n=x.shape[0])

    controls = {
        "min_scale": _slider("crop scale (min area)", min_scale, 0.05, 1.0, 0.01),
        "strength": _slider("jitter strength s", strength, 0.0, 1.5, 0.05),
        "grayscale_p": _slider("grayscale p", grayscale_p, 0.0, 1.0, 0.05),
        "blur_p": _slider("blur p", blur_p, 0.0, 1.0, 0.05),
        "seed": ipywidgets.IntSlider(value=seed, min=0, max=99, description="seed",
                                     continuous_update=False),
    }
    return Explorer(render, controls)


def _toy_embeddings(n: int, dim: int, noise: float, seed: int,
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Toy pairs: images come in look-alike pairs (2k, 2k+1), views are noisy copies.

    The look-alike of each image is a *hard negative*: nearly as similar as the positive.
    """
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn((n + 1) // 2, dim, generator=g).repeat_interleave(2, dim=0)[:n]
    images = centres + 0.7 * torch.randn(n, dim, generator=g)  # (N, D)
    z1 = images + noise * torch.randn(n, dim, generator=g)
    z2 = images + noise * torch.randn(n, dim, generator=g)
    return z1, z2


def temperature_explorer(z1: torch.Tensor | None = None, z2: torch.Tensor | None = None, *,
                         n: int = 8, dim: int = 16, noise: float = 0.5,
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

    Introduced in notebooks/03_nt_xent_loss.ipynb.

    Args:
        z1: (N, D) first-view embeddings; ``None`` draws toy ones (``z2 = z1 + noise``).
        z2: (N, D) second-view embeddings, row ``i`` pairs with ``z1[i]``.
        n: number of pairs N of the toy embeddings.
        dim: dimension D of the toy embeddings.
        noise: how far the toy positives lie from their anchors.
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
    if z1 is None:
        z1, z2 = _toy_embeddings(n, dim, noise, seed)
    if z1.dim() != 2 or z1.shape != z2.shape or z1.shape[0] < 2:
        raise ValueError("z1 and z2 must both have shape (N, D) with N >= 2, got "
                         f"{tuple(z1.shape)} and {tuple(z2.shape)}")
    z1, z2 = z1.detach().float().cpu(), z2.detach().float().cpu()
    n = z1.shape[0]
    taus = torch.logspace(-2, 1, 61)
    with torch.no_grad():
        curve = torch.stack([nt_xent(z1, z2, float(t)) for t in taus])  # (61,)
        cosine, labels = similarity_logits(z1, z2, temperature=1.0)  # (2N, 2N), (2N,)

    def render(temperature: float, anchor: int) -> Figure:
        sims = cosine[anchor]  # (2N,), -inf at the anchor itself
        probs = F.softmax(sims / temperature, dim=0)  # (2N,), 0 at the anchor itself
        positive = int(labels[anchor])
        colours = [GOOD if k == positive else "#999999" for k in range(2 * n)]
        cols = range(2 * n)
        fig = Figure(figsize=(13, 3.6), layout="constrained")
        ax_sim, ax_p, ax_loss = fig.subplots(1, 3)

        shown = torch.where(torch.isinf(sims), torch.zeros_like(sims), sims)
        ax_sim.bar(cols, shown.tolist(), color=colours)
        ax_sim.set_ylim(-1.05, 1.05)
        ax_sim.set_ylabel("sim(z_anchor, z_k)")
        ax_p.set_ylabel("probability")
        ax_sim.axhline(0, color="black", lw=0.5)
        ax_sim.set_title(f"cosine similarity of anchor {anchor}")

        ax_p.bar(cols, probs.tolist(), color=colours)
        ax_p.set_ylim(0, 1.02)
        ax_p.axhline(1 / (2 * n - 1), color=PALETTE[0], ls=":", lw=1,
                     label=f"uniform 1/(2N-1) = {1 / (2 * n - 1):.3f}")
        ax_p.set_title(f"softmax(sim / τ), τ = {temperature:.3g}:  p(positive) = "
                       f"{float(probs[positive]):.2f}")
        ax_p.legend(loc="upper right", fontsize=8)
        for ax in (ax_sim, ax_p):
            ax.set_xlabel("candidate column k")
            ax.set_xticks(list(cols))
            ax.tick_params(axis="x", labelsize=7)
            ax.axvspan(anchor - 0.4, anchor + 0.4, color=BAD, alpha=0.15, lw=0)
            ax.text(anchor, 0.97, "self\n(masked)", ha="center", va="top", fontsize=7,
                    transform=ax.get_xaxis_transform(), color=BAD)

        loss = float(nt_xent(z1, z2, temperature))
        ax_loss.semilogx(taus.tolist(), curve.tolist(), color=PALETTE[0])
        ax_loss.axvline(temperature, color=PALETTE[1], lw=1.5,
                        label=f"τ = {temperature:.3g}: loss {loss:.3f}")
        ax_loss.axhline(float(torch.log(torch.tensor(2.0 * n - 1))), color="gray", ls="--",
                        lw=1, label=f"ln(2N-1) = {torch.log(torch.tensor(2.0 * n - 1)):.3f}")
        ax_loss.set_xlabel("temperature τ")
        ax_loss.set_ylabel("NT-Xent of the batch")
        ax_loss.set_title(f"NT-Xent against τ (N = {n} pairs)")
        ax_loss.legend(loc="lower right", fontsize=8)
        return fig

    controls = {
        "temperature": ipywidgets.FloatLogSlider(
            value=temperature, base=10, min=-2, max=1, step=0.05, description="τ",
            continuous_update=False, readout_format=".3f"),
        "anchor": ipywidgets.IntSlider(value=anchor, min=0, max=2 * n - 1,
                                       description="anchor", continuous_update=False),
    }
    return Explorer(render, controls)
