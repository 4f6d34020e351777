"""Figures for the course: views, similarity matrices, t-SNE, label efficiency, retrieval.

Every function returns a :class:`matplotlib.figure.Figure` and never calls ``show()``.
Figures are created with ``Figure(...)``, not ``plt.subplots``, so they are not registered
with pyplot: in a notebook, a call that ends a cell displays its figure exactly once,
``fig = plot_...(...)`` displays nothing until ``fig`` (or ``display(fig)``), and figures
made in a loop do not pile up in memory. Save with ``fig.savefig("name.png")``.

Colours come from the Okabe-Ito palette, which stays distinguishable under the common
forms of colour blindness; where colour carries meaning, a second cue (marker, line
style) carries it too.

Introduced in notebooks/01_augmentations.ipynb (views, histograms) and used throughout.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from .images import load_image

# Okabe & Ito (2008), plus grey and brown for a tenth class.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#F0E442",
           "#000000", "#999999", "#8C510A")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
GOOD, BAD = "#009E73", "#D55E00"  # bluish green / vermillion


@functools.cache
def _enable_notebook_display() -> None:
    """Let Jupyter render our Figures (which pyplot does not know about) as images.

    The inline backend registers its PNG formatter for ``Figure`` when its module is
    imported, which pyplot normally does on its first figure; import it ourselves so a
    notebook that never touches pyplot still shows images rather than ``<Figure ...>``.
    """
    if "ipykernel" not in sys.modules:
        return
    import matplotlib

    backend = matplotlib.get_backend()
    if backend.startswith("module://"):
        module = backend.removeprefix("module://")
    elif backend.lower() == "inline":
        module = "matplotlib_inline.backend_inline"
    else:
        return
    with contextlib.suppress(ImportError):
        importlib.import_module(module)


def _figure(**kwargs: Any) -> Figure:
    _enable_notebook_display()
    return Figure(layout="constrained", **kwargs)


def to_numpy_images(images: Any) -> np.ndarray:
    """Images as the float RGB arrays that ``imshow`` draws.

    Args:
        images: uint8 (0..255) or float ([0, 1]) images, (B, C, H, W) or (C, H, W), with
            C = 1 (gray, repeated to RGB) or 3.

    Returns:
        A float32 array (B, H, W, 3) in [0, 1].

    Raises:
        ValueError: for any other shape.
    """
    x = torch.as_tensor(images).detach().cpu()
    if x.dim() == 3:
        x = x[None]
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"images must be (B, 1 or 3, H, W), got {tuple(x.shape)}")
    x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
    x = x.clamp(0, 1).expand(-1, 3, -1, -1)
    return x.permute(0, 2, 3, 1).numpy()


def image_axis(ax: Any, img: np.ndarray) -> Any:
    """Show ``img`` on ``ax`` with no ticks or frame; returns the ``AxesImage``."""
    shown = ax.imshow(img, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    return shown


def _class_style(c: int) -> tuple[str, str]:
    """Colour and marker of group ``c`` in a scatter plot (grey dots for unlabelled)."""
    if c < 0:
        return "#BBBBBB", "."
    return (SCATTER_COLOURS[c % len(SCATTER_COLOURS)],
            MARKERS[(c // len(SCATTER_COLOURS) + c) % len(MARKERS)])


OVERVIEW_STAGES = ("augment", "encoder", "head", "loss")
_MUTED = "#555555"


def plot_simclr_overview(images: Sequence[Any] | None = None,
                         highlight: str | Sequence[str] | None = None) -> Figure:
    """SimCLR in one picture: the paper's Figure 2, drawn from left to right.

    An image ``x`` becomes two views ``x~_i = t(x)`` and ``x~_j = t'(x)`` (``t, t' ~ T``,
    two random draws of one augmentation pipeline); the same encoder ``f`` maps each view
    to a representation ``h``, the same projection head ``g`` maps ``h`` to ``z``, and
    the contrastive loss (NT-Xent) maximises the agreement of ``z_i`` and ``z_j``. After
    training ``g`` is thrown away and ``h = f(x)`` is kept (Chen et al. 2020, Figure 2 and
    Section 2.1). Each stage is labelled with the course notebook that builds it.

    Introduced in notebooks/01_augmentations.ipynb; notebooks 02 and 03 highlight their part.

    Args:
        images: optional ``(x, x_i, x_j)``: an image and two augmented views of it, each
            (3, H, W) uint8 or float, drawn in place of the symbols ``x``, ``x~_i``,
            ``x~_j``.
        highlight: stage(s) to draw in colour, the rest in grey: ``"augment"`` (the views),
            ``"encoder"`` (``f`` and ``h``), ``"head"`` (``g`` and ``z``), ``"loss"``; a
            name or a sequence of names. ``None``: every stage in colour.

    Returns:
        A Figure with 1 axes (and 3 images when ``images`` is given). Artists of a stage
        carry the gid ``"stage:<name>"``.

    Raises:
        ValueError: for an unknown stage, or ``images`` that are not three images.

    Example:
        >>> fig = plot_simclr_overview(highlight="loss")
        >>> len(fig.axes)
        1
    """
    names = [highlight] if isinstance(highlight, str) else list(highlight or OVERVIEW_STAGES)
    unknown = [s for s in names if s not in OVERVIEW_STAGES]
    if unknown or not names:
        raise ValueError(f"unknown stage(s) {unknown or names}; choose from "
                         f"{', '.join(OVERVIEW_STAGES)}")
    if images is not None:
        if len(images) != 3:
            raise ValueError(f"images must be (x, x_i, x_j), got {len(images)} images")
        pictures = [to_numpy_images(img)[0] for img in images]
    colour = dict(zip(OVERVIEW_STAGES, (PALETTE[1], PALETTE[0], PALETTE[2], PALETTE[3]),
                      strict=True))
    colour = {s: (c if s in names else "#AAAAAA") for s, c in colour.items()}

    fig = _figure(figsize=(9.4, 3.9))
    fig.set_layout_engine("none")
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 18.8)
    ax.set_ylim(0, 7.8)
    ax.set_aspect("equal")
    ax.axis("off")
    top, bottom, side = 5.5, 2.2, 1.7  # rows of the two branches; side of the image boxes

    def box(x: float, y: float, label: str, stage: str | None, picture: Any = None) -> None:
        edge = colour[stage] if stage else _MUTED
        x0, y0 = x - side / 2, y - side / 2
        if picture is not None:
            ax.imshow(picture, extent=(x0, x0 + side, y0, y0 + side), zorder=1,
                      interpolation="antialiased")  # smooth when a photo is shrunk
        else:
            ax.text(x, y, label, ha="center", va="center", fontsize=17, zorder=2)
        frame = Rectangle((x0, y0), side, side, fill=False, edgecolor=edge, linewidth=2,
                          zorder=2)
        frame.set_gid(f"stage:{stage}" if stage else "input")
        ax.add_patch(frame)

    def vector(x: float, y: float, label: str, stage: str) -> None:
        text = ax.text(x, y, label, ha="center", va="center", fontsize=15, zorder=2,
                       bbox=dict(boxstyle="round,pad=0.35", facecolor="white",
                                 edgecolor=colour[stage], linewidth=2))
        text.set_gid(f"stage:{stage}")

    def arrow(x0: float, y0: float, x1: float, y1: float, stage: str, label: str = "",
              below: bool = False, both: bool = False) -> None:
        a = ax.annotate("", xy=(x1, y1), xytext=(x0, y0), zorder=1, arrowprops=dict(
            arrowstyle="<|-|>" if both else "-|>", color=colour[stage], linewidth=2,
            shrinkA=0, shrinkB=0, mutation_scale=16))
        a.set_gid(f"stage:{stage}")
        if label:
            ax.text((x0 + x1) / 2, (y0 + y1) / 2 + (-0.45 if below else 0.45), label,
                    ha="center", va="top" if below else "bottom", fontsize=12,
                    color=colour[stage] if colour[stage] != "#AAAAAA" else _MUTED)

    # input x, its two views, and the augmentation arrows t and t'
    xs = {"x": 1.2, "view": 5.0, "h": 8.9, "z": 12.8}
    middle = (top + bottom) / 2
    box(xs["x"], middle, "$x$", None, pictures[0] if images is not None else None)
    for row, (t, v, i) in enumerate(((r"$t \sim \mathcal{T}$", r"$\tilde{x}_i$", "i"),
                                     (r"$t' \sim \mathcal{T}$", r"$\tilde{x}_j$", "j"))):
        y = (top, bottom)[row]
        arrow(xs["x"] + side / 2, middle + (0.3 if row == 0 else -0.3), xs["view"] - side / 2,
              y, "augment")
        ax.text(2.95, (middle + y) / 2 + (0.35 if row == 0 else -0.35), t, fontsize=12,
                ha="center", va="bottom" if row == 0 else "top",
                color=colour["augment"] if "augment" in names else _MUTED)
        box(xs["view"], y, v, "augment", pictures[1 + row] if images is not None else None)
        arrow(xs["view"] + side / 2, y, xs["h"] - 0.55, y, "encoder",
              r"$f(\cdot)$ encoder", below=row == 1)
        vector(xs["h"], y, f"$h_{i}$", "encoder")
        arrow(xs["h"] + 0.55, y, xs["z"] - 0.5, y, "head", r"$g(\cdot)$ head", below=row == 1)
        vector(xs["z"], y, f"$z_{i}$", "head")
    arrow(xs["z"], top - 0.55, xs["z"], bottom + 0.55, "loss", both=True)
    ax.text(xs["z"] + 0.45, middle, "maximise agreement\n(NT-Xent loss):\nthe two views\n"
            "of one image", ha="left", va="center", fontsize=11,
            color=colour["loss"] if "loss" in names else _MUTED)

    # what is kept, what is thrown away, and which notebook builds what
    ax.text((xs["view"] + xs["z"]) / 2, middle, "the same $f$ and $g$ for both views",
            fontsize=10, color=_MUTED, ha="center", va="center", style="italic")
    ax.text(9.4, 0.15, "After training, $g$ is thrown away and the representation "
            "$h = f(x)$ is kept for downstream tasks.", fontsize=11, color=_MUTED,
            ha="center", va="bottom")
    tags = (((xs["x"] + xs["view"]) / 2, "01 augmentations", ("augment",)),
            ((xs["view"] + xs["z"]) / 2 + 1.2, "02 encoder and head", ("encoder", "head")),
            (xs["z"] + 2.4, "03 NT-Xent loss", ("loss",)))
    for x, tag, stages in tags:
        lit = len(names) < len(OVERVIEW_STAGES) and any(s in names for s in stages)
        ax.text(x, 7.65, tag, ha="center", va="top", fontsize=11, color=_MUTED,
                fontweight="bold" if lit else "normal")
    return fig


def show_views(images: Any, views_i: Any = None, views_j: Any = None, n: int = 8,
               titles: Sequence[str] | None = None) -> Figure:
    """A row of images, or columns of (image, view ``x_i``, view ``x_j``).

    Args:
        images: (B, 3, H, W) uint8 or float images.
        views_i, views_j: optional augmented views of the same images, same shape; each
            given one adds a row under the images.
        n: how many images to show (at most B). Without views they wrap after 8 per row.
        titles: optional title per image (e.g. class names).

    Returns:
        A Figure with ``n`` axes (images only) or ``n x rows`` axes.
    """
    imgs = to_numpy_images(images)
    n = max(1, min(n, len(imgs)))
    rows = [("image", imgs)]
    for name, v in (("view $x_i$", views_i), ("view $x_j$", views_j)):
        if v is not None:
            rows.append((name, to_numpy_images(v)))
    if len(rows) == 1:
        cols = min(n, 8)
        nrows = math.ceil(n / cols)
        fig = _figure(figsize=(1.5 * cols, 1.6 * nrows + 0.4))
        axes = fig.subplots(nrows, cols, squeeze=False).ravel()
        for i, ax in enumerate(axes):
            if i >= n:
                fig.delaxes(ax)
                continue
            image_axis(ax, imgs[i])
            if titles is not None and i < len(titles):
                ax.set_title(str(titles[i]), fontsize=9)
        fig.suptitle("Images")
        return fig
    fig = _figure(figsize=(1.5 * n + 0.6, 1.55 * len(rows) + 0.4))
    axes = fig.subplots(len(rows), n, squeeze=False)
    for r, (name, arr) in enumerate(rows):
        if len(arr) < n:
            raise ValueError(f"{name} has {len(arr)} images, fewer than n={n}")
        for c in range(n):
            image_axis(axes[r, c], arr[c])
        axes[r, 0].set_ylabel(name, fontsize=10)
    if titles is not None:
        for c in range(min(n, len(titles))):
            axes[0, c].set_title(str(titles[c]), fontsize=9)
    fig.suptitle("Each image and its augmented views")
    return fig


def plot_histograms(images: Any, bins: int = 32, n: int = 4,
                    titles: Sequence[str] | None = None) -> Figure:
    """Per-channel colour histograms of a few images, each under its image.

    Crops of one image share its colour histogram, so a network could match two views by
    colour alone; this is why SimCLR adds colour distortion (Section 3, Figure 6).

    Args:
        images: (B, 3, H, W) uint8 or float images.
        bins: histogram bins over the intensity range [0, 1] (uint8 values are divided
            by 255, as ``simclr_lib.augment.to_float`` does).
        n: how many images (at most B).
        titles: optional title per image.

    Returns:
        A Figure with ``2 n`` axes: images on top, histograms below. The histograms share
        one y range, from 0 to a little above their tallest bin, so no bin is cut off.
    """
    imgs = to_numpy_images(images)
    n = max(1, min(n, len(imgs)))
    fig = _figure(figsize=(2.8 * n, 5.0))
    fig.get_layout_engine().set(wspace=0.08)
    axes = fig.subplots(2, n, squeeze=False, gridspec_kw={"height_ratios": [1.1, 1]})
    edges = np.linspace(0, 1, bins + 1)
    channels = (("R", "#D55E00", "-"), ("G", "#009E73", "--"), ("B", "#0072B2", ":"))
    tallest = 0.0
    for i in range(n):
        image_axis(axes[0, i], imgs[i])
        if titles is not None and i < len(titles):
            axes[0, i].set_title(str(titles[i]), fontsize=9)
        ax = axes[1, i]
        for ch, (name, color, ls) in enumerate(channels):
            counts, _ = np.histogram(imgs[i][..., ch], bins=edges)  # [0, 1], 1 in last bin
            fraction = counts / counts.sum()
            tallest = max(tallest, float(fraction.max()))
            ax.stairs(fraction, edges, color=color, linestyle=ls, linewidth=1.8, label=name)
        ax.set_xlim(0, 1)
        ax.set_xticks([0, 0.5, 1])
        ax.set_xlabel("intensity")
        if i > 0:
            ax.tick_params(labelleft=False)
    for ax in axes[1]:  # one y range for all, fitted to the tallest bin of any histogram
        ax.set_ylim(0, 1.08 * tallest)
    axes[1, 0].set_ylabel("fraction of pixels")
    axes[1, 0].legend(fontsize=8, frameon=False)
    fig.suptitle("Per-channel colour histograms")
    return fig


def plot_similarity(logits_or_sim: Any, n_pairs: int, mark_positives: bool = True) -> Figure:
    """Heatmap of the (2N, 2N) similarity (or logit) matrix behind NT-Xent.

    Rows are anchors and columns candidates, ordered ``[x_i views; x_j views]`` as in
    :func:`simclr_lib.loss.similarity_logits`, so the positive of row ``k < N`` is column
    ``k + N`` and vice versa. The diagonal (each view against itself) is masked out of the
    loss and drawn in grey.

    Args:
        logits_or_sim: (2N, 2N) tensor or array; ``-inf`` entries count as masked.
        n_pairs: N, the number of images (pairs of views).
        mark_positives: outline the 2N positive cells.

    Returns:
        A Figure with 2 axes (the heatmap and its colour bar).
    """
    m = torch.as_tensor(logits_or_sim).detach().float().cpu().numpy().copy()
    n = int(n_pairs)
    if m.shape != (2 * n, 2 * n):
        raise ValueError(f"expected a ({2 * n}, {2 * n}) matrix for n_pairs={n}, got {m.shape}")
    m[~np.isfinite(m)] = np.nan
    np.fill_diagonal(m, np.nan)
    size = min(7.0, 2.5 + 0.18 * 2 * n)
    fig = _figure(figsize=(size + 1.3, size))
    ax = fig.subplots()
    import matplotlib as mpl
    cmap = mpl.colormaps["viridis"].with_extremes(bad="#BBBBBB")
    im = ax.imshow(np.ma.masked_invalid(m), cmap=cmap, interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.8, label="similarity (or logit)")
    ax.axhline(n - 0.5, color="white", linewidth=1.5)
    ax.axvline(n - 0.5, color="white", linewidth=1.5)
    centres = [(n - 1) / 2, n + (n - 1) / 2]
    ax.set_xticks(centres, ["$x_i$ views", "$x_j$ views"])
    ax.set_yticks(centres, ["$x_i$ views", "$x_j$ views"], rotation=90, va="center")
    ax.tick_params(length=0)
    ax.set_xlabel("candidate")
    ax.set_ylabel("anchor")
    handles = [Patch(facecolor="#BBBBBB", label="self (masked out)")]
    if mark_positives:
        lw = 2.0 if n <= 16 else 1.0
        for k in range(2 * n):
            col = (k + n) % (2 * n)
            ax.add_patch(Rectangle((col - 0.5, k - 0.5), 1, 1, fill=False, edgecolor=BAD,
                                   linewidth=lw))
        handles.insert(0, Patch(facecolor="none", edgecolor=BAD, linewidth=2,
                                label="positive pair"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2,
              frameon=False, fontsize=9)
    ax.set_title(f"Similarities of 2N = {2 * n} views")
    return fig


def _stratified(labels: np.ndarray, max_points: int, seed: int) -> np.ndarray:
    """Indices of at most ``max_points`` rows, keeping the class proportions."""
    n = len(labels)
    if n <= max_points:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    picked = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        take = max(1, int(round(max_points * len(idx) / n)))
        picked.append(rng.permutation(idx)[:take])
    return np.sort(np.concatenate(picked))[:max_points]


def _tsne_2d(x: Any, idx: np.ndarray, seed: int, perplexity: float) -> np.ndarray:
    """(len(idx), 2) t-SNE embedding of the rows ``idx`` of ``x``."""
    from sklearn.manifold import TSNE

    x = torch.as_tensor(x).detach().float().cpu().numpy()[idx]
    perp = float(min(perplexity, max(1.0, (len(x) - 1) / 3)))
    return TSNE(n_components=2, perplexity=perp, init="pca", learning_rate="auto",
                random_state=seed).fit_transform(x)


# Ten well-separated hues for scatter plots of up to ten groups (matplotlib's tab10): the
# Okabe-Ito palette has only eight, and its orange/vermillion and yellow pairs blur together
# when ten classes share one small scatter plot. The marker stays a second cue.
SCATTER_COLOURS = ("#1F77B4", "#FF7F0E", "#2CA02C", "#D62728", "#9467BD", "#8C564B",
                   "#E377C2", "#7F7F7F", "#BCBD22", "#17BECF")


def _scatter_groups(ax: Any, emb: np.ndarray, y: np.ndarray,
                    names: Sequence[str] | None) -> None:
    """One scatter per group of ``y`` (colour and marker per group), labelled for a legend."""
    for c in np.unique(y):
        color, marker = _class_style(int(c))
        name = "unlabelled" if c < 0 else (
            str(names[c]) if names is not None and c < len(names) else str(c))
        sel = y == c
        ax.scatter(emb[sel, 0], emb[sel, 1], s=20, color=color, marker=marker, alpha=0.85,
                   linewidths=0, label=name)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("t-SNE 1")
    ax.set_ylabel("t-SNE 2")


def plot_tsne(h: Any, labels: Any, z: Any = None, classes: Sequence[str] | None = None,
              max_points: int = 2000, seed: int = 0, perplexity: float = 30) -> Figure:
    """2-D t-SNE (van der Maaten & Hinton 2008) of ``h``, and of ``z`` side by side.

    Comparing the two shows what the projection head discards (SimCLR Section 4.2).
    t-SNE preserves neighbourhoods, not distances or cluster sizes: read it for which
    points group together, nothing more. Each class has its own colour (ten distinct hues,
    ``SCATTER_COLOURS``) and its own marker.

    Args:
        h: (N, D) features.
        labels: (N,) class labels (negative = unlabelled, drawn in grey).
        z: optional (N, D') projections of the same images.
        classes: optional class names indexed by label.
        max_points: subsample (stratified by class, with ``seed``) to at most this many
            points; t-SNE is quadratic-ish in N.
        seed: subsampling and t-SNE's random state.
        perplexity: t-SNE perplexity (clipped below N / 3).

    Returns:
        A Figure with 1 axes, or 2 when ``z`` is given.
    """
    y = torch.as_tensor(labels).cpu().numpy().astype(int)
    idx = _stratified(y, max_points, seed)
    panels = [("$h = f(x)$ (encoder)", h)] + ([("$z = g(h)$ (projection head)", z)]
                                               if z is not None else [])
    fig = _figure(figsize=(4.8 * len(panels) + 1.8, 4.8))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, x) in zip(axes, panels, strict=True):
        _scatter_groups(ax, _tsne_2d(x, idx, seed, perplexity), y[idx], classes)
        ax.set_title(title)
    if len(np.unique(y[idx])) <= 20:
        handles, names = axes[0].get_legend_handles_labels()
        fig.legend(handles, names, loc="outside right center", frameon=False,
                   markerscale=1.8, fontsize=9)
    fig.suptitle(f"t-SNE of {len(idx)} images")
    return fig


def plot_tsne_factors(h: Any, factors: Mapping[str, tuple[Any, Sequence[str] | None]],
                      max_points: int = 2000, seed: int = 0, perplexity: float = 30,
                      title: str = "$h = f(x)$") -> Figure:
    """One t-SNE of ``h``, drawn once per factor, each panel coloured by that factor.

    The same 2-D points in every panel: only the colours change. Colouring by the class
    and then by a nuisance factor (for ``shapes``, a solid or gradient background:
    :func:`simclr_lib.shapes.shape_factors`) shows which of the two organises the
    neighbourhoods of ``h``.

    Args:
        h: (N, D) features.
        factors: ``panel title -> (values, names)``: (N,) non-negative integer values and
            the name of each value (or ``None`` for the numbers). The first factor
            stratifies the subsample.
        max_points, seed, perplexity: as in :func:`plot_tsne`.
        title: what ``h`` is, for the figure's title.

    Returns:
        A Figure with one axes per factor, each with its own legend below it.

    Raises:
        ValueError: no factors, or a factor whose length differs from ``h``'s.
    """
    if not factors:
        raise ValueError("factors must name at least one (values, names) pair")
    n = len(h)
    values = {}
    for name, (v, _) in factors.items():
        values[name] = torch.as_tensor(v).cpu().numpy().astype(int)
        if values[name].shape != (n,):
            raise ValueError(f"factor {name!r} has shape {values[name].shape}, expected "
                             f"({n},), one value per row of h")
    first = next(iter(values.values()))
    idx = _stratified(first, max_points, seed)
    emb = _tsne_2d(h, idx, seed, perplexity)
    fig = _figure(figsize=(4.6 * len(factors), 5.6))
    axes = fig.subplots(1, len(factors), squeeze=False)[0]
    for ax, (name, (_, names)) in zip(axes, factors.items(), strict=True):
        _scatter_groups(ax, emb, values[name][idx], names)
        ax.set_title(f"coloured by {name}")
        k = len(np.unique(values[name][idx]))
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.06), ncol=min(k, 5),
                  frameon=False, markerscale=1.8, fontsize=9, columnspacing=0.8,
                  handletextpad=0.2)
    ways = {1: "one way", 2: "two ways", 3: "three ways"}.get(len(factors),
                                                             f"{len(factors)} ways")
    fig.suptitle(f"One t-SNE of {title} for {len(idx)} images, coloured {ways}")
    return fig


def plot_accuracies(table: Mapping[str, Mapping[str, float | None]],
                    chance: float | None = None, title: str = "Test accuracy",
                    colors: Mapping[str, str] | None = None) -> Figure:
    """Horizontal grouped bars: one group per method, one bar per metric, with values.

    Args:
        table: ``method -> {metric -> accuracy in [0, 1] or None}``, e.g.
            ``{"SimCLR": {"kNN": 0.45, "linear": 0.7}, "supervised": {"linear": 0.9}}``;
            a missing or ``None`` metric leaves a gap. Methods are drawn top to bottom in
            the order given.
        chance: optional accuracy of guessing, drawn as a dotted line.
        title: the axes title.
        colors: optional ``metric -> matplotlib colour``, so that one method keeps one
            colour across figures; metrics not named take the palette in order.

    Returns:
        A Figure with 1 axes. Metrics differ by colour and by hatching; each method's bars
        are centred on its label, so a method with fewer metrics leaves no empty slots.

    Raises:
        ValueError: an empty table, or an accuracy outside [0, 1].

    Example:
        >>> fig = plot_accuracies({"SimCLR": {"kNN": 0.45, "linear": 0.7}}, chance=0.1,
        ...                       colors={"linear": "#0072B2"})
    """
    if not table:
        raise ValueError("table is empty")
    metrics: list[str] = []
    for row in table.values():
        for metric, acc in row.items():
            if acc is not None and not 0 <= acc <= 1:
                raise ValueError(f"accuracies must be fractions in [0, 1], got {metric}={acc}")
            if metric not in metrics:
                metrics.append(metric)
    methods = list(table)
    present = [[x for x in metrics if table[m].get(x) is not None] for m in methods]
    slots = max(1, max(len(p) for p in present))  # bars in the fullest group
    fig = _figure(figsize=(8.4, 0.75 + 0.42 * len(methods) * slots))
    ax = fig.subplots()
    height = 0.8 / slots
    hatches = ("", "//", "..", "xx", "++")
    for j, metric in enumerate(metrics):
        rows = [(i, table[m][metric]) for i, m in enumerate(methods)
                if table[m].get(metric) is not None]
        # each group's bars are centred on its label, however many of the metrics it has
        ys = [i + (present[i].index(metric) - (len(present[i]) - 1) / 2) * height
              for i, _ in rows]
        accs = [100 * acc for _, acc in rows]
        color = (colors or {}).get(metric, PALETTE[j % len(PALETTE)])
        ax.barh(ys, accs, height=height * 0.92, color=color,
                hatch=hatches[j % len(hatches)], edgecolor="white", label=metric)
        for y, acc in zip(ys, accs, strict=True):
            ax.text(acc + 1, y, f"{acc:.1f}%", va="center", fontsize=9)
    if chance is not None:
        ax.axvline(100 * chance, color="#999999", linestyle=":", linewidth=1.5, label="chance")
    ax.set_yticks(range(len(methods)), methods)
    ax.invert_yaxis()
    ax.set_xlim(0, 110)
    ax.set_xticks(range(0, 101, 20))
    ax.set_xlabel("test accuracy (%)")
    ax.grid(True, axis="x", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    ncol = len(labels) if sum(map(len, labels)) <= 70 else min(3, len(labels))  # fits 8.4 in
    fig.legend(handles, labels, loc="outside lower center", ncol=ncol, fontsize=9,
               frameon=False)  # below the axes: never on top of a bar or its value
    ax.set_title(title)
    return fig


def _curves(results: Any) -> list[tuple[str, list[dict[str, Any]], bool]]:
    """``(name, rows, is_baseline)`` for every curve."""
    if isinstance(results, Mapping):
        return [(str(k), list(v), False) for k, v in results.items()]
    return [("SimCLR (linear probe)", list(results), False)]


def plot_label_efficiency(results: Any, baselines: Mapping[str, Any] | None = None,
                          colors: Mapping[str, str] | None = None) -> Figure:
    """Test accuracy against labels per class (log scale), with error bars over repeats.

    Args:
        results: the list returned by :func:`simclr_lib.evaluate.label_efficiency`, or a
            dict ``name -> list`` for several curves.
        baselines: optional ``name -> list`` (more curves, dashed; a list of one row is a
            single point, e.g. a model trained another way on all labels) or
            ``name -> accuracy`` in [0, 1] (a horizontal line).
        colors: optional ``name -> matplotlib colour`` for curves and lines, so that one
            method keeps one colour across figures; the others take the palette in order.

    Returns:
        A Figure with 1 axes and the legend below it. The ``None`` ("all labels") level is
        drawn at its real place on the log axis, its average number of labels per class,
        and its tick says how many that is ("all (500)"). A curve of one point is a marker
        alone, without a line, in the axes and in the legend.

    Example:
        >>> rows = [{"labels_per_class": 10, "n_labels": 100, "mean": 0.6, "std": 0.02},
        ...         {"labels_per_class": None, "n_labels": 5000, "mean": 0.8, "std": 0.0}]
        >>> fig = plot_label_efficiency({"SimCLR": rows}, colors={"SimCLR": "#0072B2"})
    """
    curves = _curves(results)
    lines: dict[str, float] = {}
    for name, value in (baselines or {}).items():
        if isinstance(value, (int, float)):
            lines[str(name)] = float(value)
        else:
            curves.append((str(name), list(value), True))
    fig = _figure(figsize=(7.2, 5.4))
    ax = fig.subplots()
    ticks: dict[float, str] = {}
    num_classes = None
    for _, rows, _ in curves:
        for r in rows:
            if r["labels_per_class"]:
                num_classes = r["n_labels"] / r["labels_per_class"]
    for i, (name, rows, dashed) in enumerate(curves):
        xs, ys, es = [], [], []
        for r in rows:
            level = r["labels_per_class"]
            x = float(level) if level else r["n_labels"] / (num_classes or 1)
            ticks[x] = str(level) if level else f"all ({x:.0f})" if num_classes else "all"
            xs.append(x)
            ys.append(100 * r["mean"])
            es.append(100 * r.get("std", 0.0))
        order = np.argsort(xs)
        single = len(xs) == 1  # one point, e.g. another recipe on all labels: a marker only
        ax.errorbar(np.array(xs)[order], np.array(ys)[order],
                    yerr=np.array(es)[order] if any(es) else None,  # no bars for one run
                    color=(colors or {}).get(name, PALETTE[i % len(PALETTE)]),
                    marker=MARKERS[i % len(MARKERS)], markersize=8 if single else 6,
                    linestyle="none" if single else "--" if dashed else "-", capsize=3,
                    label=name)
    for j, (name, acc) in enumerate(lines.items()):
        ax.axhline(100 * acc,
                   color=(colors or {}).get(name, PALETTE[(len(curves) + j) % len(PALETTE)]),
                   linestyle=(0, (5, 2, 1, 2)), linewidth=1.5, label=name)
    if num_classes:
        ax.axhline(100 / num_classes, color="#999999", linestyle=":", linewidth=1.2,
                   label="chance")
    ax.set_xscale("log")
    ax.set_xticks(list(ticks), list(ticks.values()))
    ax.minorticks_off()
    ax.set_ylim(0, 100)
    ax.grid(True, alpha=0.3)
    every = any(name.startswith("all") for name in ticks.values())
    ax.set_xlabel("labels per class (log scale)"
                  + ('; "all": every training label' if every else ""))
    ax.set_ylabel("test accuracy (%)")
    fig.legend(loc="outside lower center", ncols=2, frameon=False, fontsize=9)
    ax.set_title("Label efficiency")
    return fig


def plot_knn_grid(query_images: Any, bank_images: Any, indices: Any, n_queries: int = 6,
                  k: int = 8, query_labels: Any = None, bank_labels: Any = None,
                  classes: Sequence[str] | None = None) -> Figure:
    """Retrieval grid: each row a query image and its ``k`` nearest neighbours.

    Args:
        query_images: (Q, 3, H, W) uint8 or float images.
        bank_images: (N, 3, H, W) images searched.
        indices: (Q, >= k) neighbour indices into the bank, nearest first (e.g. from
            :func:`simclr_lib.diagnostics.nearest_neighbours`).
        n_queries: rows to show (at most Q).
        k: neighbours per row (at most ``indices.shape[1]``).
        query_labels, bank_labels: optional labels; when both are given each neighbour
            gets a border: solid green for the query's class, dashed orange (``BAD``,
            Okabe-Ito vermillion) otherwise.
        classes: optional class names indexed by label; with ``query_labels``, each
            query is captioned with its class name.

    Returns:
        A Figure with ``n_queries x (k + 1)`` axes.
    """
    queries, bank = to_numpy_images(query_images), to_numpy_images(bank_images)
    idx = torch.as_tensor(indices).cpu().long().numpy()
    n_queries = max(1, min(n_queries, len(queries), len(idx)))
    k = max(1, min(k, idx.shape[1]))
    labelled = query_labels is not None and bank_labels is not None
    if labelled:
        qy = torch.as_tensor(query_labels).cpu().numpy()
        by = torch.as_tensor(bank_labels).cpu().numpy()
    fig = _figure(figsize=(1.25 * (k + 1) + 0.3, 1.3 * n_queries + 0.6))
    axes = fig.subplots(n_queries, k + 1, squeeze=False,
                        gridspec_kw={"width_ratios": [1.15] + [1] * k})
    for r in range(n_queries):
        image_axis(axes[r, 0], queries[r])
        for spine in axes[r, 0].spines.values():
            spine.set_visible(True)
            spine.set_linewidth(2)
        if classes is not None and query_labels is not None:
            label = int(torch.as_tensor(query_labels)[r])
            axes[r, 0].set_ylabel(str(classes[label]) if 0 <= label < len(classes)
                                  else str(label), fontsize=10)
        for c in range(k):
            ax = axes[r, c + 1]
            j = idx[r, c]
            image_axis(ax, bank[j])
            if labelled:
                same = by[j] == qy[r]
                for spine in ax.spines.values():
                    spine.set_visible(True)
                    spine.set_color(GOOD if same else BAD)
                    spine.set_linewidth(3)
                    spine.set_linestyle("-" if same else "--")
    axes[0, 0].set_title("query", fontsize=10)
    for c in range(k):
        axes[0, c + 1].set_title(f"#{c + 1}", fontsize=10)
    title = "Nearest neighbours in feature space"
    if labelled:
        title += "\n(solid green border: same class, dashed orange: another class)"
    fig.suptitle(title, fontsize=11)
    return fig


def _thumbnail(path: Path, size: int) -> torch.Tensor:
    try:
        return load_image(path, size)  # (3, S, S) uint8, as the encoder saw it
    except Exception:  # moved or damaged since it was embedded: a grey square
        return torch.full((3, size, size), 128, dtype=torch.uint8)


def _short(name: str, width: int = 20) -> str:
    return name if len(name) <= width else "…" + name[-(width - 1):]


def plot_retrieval(embeddings: Any, queries: Sequence[str | int], k: int = 5,
                   root: str | Path | None = None, image_size: int = 96) -> Figure:
    """Retrieval grid from embeddings of your images: each row a query and its neighbours.

    Neighbours come from ``embeddings.nearest`` (cosine similarity of ``h``); each is
    captioned with its similarity and file name, and, when the images have classes, framed
    like :func:`plot_knn_grid` (solid green: the query's class, dashed orange: another).

    Args:
        embeddings: an :class:`~simclr_lib.embed.Embeddings` (from ``embed_folder`` or
            ``load_embeddings``).
        queries: paths as in ``embeddings.paths``, or row indices.
        k: neighbours per query.
        root: the image folder (default: ``embeddings.root``).
        image_size: side of the thumbnails, in pixels.

    Returns:
        A Figure with ``len(queries) x (k + 1)`` axes.

    Example:
        >>> fig = plot_retrieval(emb, [emb.paths[0]], k=5)            # doctest: +SKIP
        >>> fig.savefig("neighbours.png")                             # doctest: +SKIP
    """
    root = root if root is not None else embeddings.root
    if root is None:
        raise ValueError("pass root=: the folder the embedded images are in")
    if not queries:
        raise ValueError("no queries to plot")
    rows = [embeddings.index(q) if isinstance(q, str) else int(q) for q in queries]
    hits = [embeddings.nearest(r, k) for r in rows]  # [[(path, similarity), ...], ...]
    folder = Path(root).expanduser()
    query_images = torch.stack([_thumbnail(folder / embeddings.paths[r], image_size)
                                for r in rows])  # (Q, 3, S, S)
    bank_images = torch.stack([_thumbnail(folder / p, image_size)
                               for row in hits for p, _ in row])  # (Q k, 3, S, S)
    indices = torch.arange(len(rows) * k).view(len(rows), k)  # (Q, k)
    labels = {}
    if len(embeddings.classes):
        labels = {"query_labels": embeddings.labels[rows],
                  "bank_labels": torch.stack([embeddings.labels[embeddings.index(p)]
                                              for row in hits for p, _ in row])}
    fig = plot_knn_grid(query_images, bank_images, indices, n_queries=len(rows), k=k,
                        **labels)
    width, height = fig.get_size_inches()
    fig.set_size_inches(width, height + 0.35 * len(rows))  # room for two-line captions
    axes = np.array(fig.axes).reshape(len(rows), k + 1)
    for r, row in enumerate(hits):
        axes[r, 0].set_xlabel(_short(Path(embeddings.paths[rows[r]]).name), fontsize=7)
        for c, (path, sim) in enumerate(row):
            axes[r, c + 1].set_xlabel(f"{sim:.2f}\n{_short(Path(path).name)}", fontsize=7)
    fig.suptitle("Nearest neighbours by cosine similarity of h"
                 + ("\n(solid green border: same class, dashed orange: another class)"
                    if labels else ""), fontsize=11)
    return fig


def _read_history(history: Any) -> list[dict[str, Any]]:
    if isinstance(history, (str, Path)):
        with open(history) as f:
            return [json.loads(line) for line in f if line.strip()]
    return list(history)


def plot_history(history: Any, *, num_classes: int | None = None,
                 batch_size: int | None = None) -> Figure:
    """Training curves from ``history.jsonl``: loss, learning rate and kNN accuracy.

    Args:
        history: a list of dicts (one per epoch, keys ``epoch``, ``loss``, ``lr`` and
            optionally ``knn_top1`` in [0, 1] and ``images_per_s``), or the path of a
            ``history.jsonl`` file.
        num_classes: the number of classes of the kNN monitor's labels; when given, the kNN
            panel gets a dashed line at chance, ``100 / num_classes`` percent.
        batch_size: the (global) batch size N of the run; when given, the loss panel gets a
            dashed line at ln(2N - 1), the loss of a network that cannot tell the positive
            from the negatives (notebook 03).

    Returns:
        A Figure with 3 axes (loss, lr, kNN top-1), or 2 when no epoch has ``knn_top1``.
        The kNN axis starts at 0 %. The median throughput, when recorded, is in the title.

    Raises:
        ValueError: an empty history, ``num_classes`` < 2 or ``batch_size`` < 2.

    Example:
        >>> fig = plot_history("runs/cpu/history.jsonl", num_classes=10, batch_size=128)
    """
    rows = _read_history(history)
    if not rows:
        raise ValueError("history is empty")
    if num_classes is not None and num_classes < 2:
        raise ValueError(f"num_classes must be >= 2 for a chance line, got {num_classes}")
    if batch_size is not None and batch_size < 2:
        raise ValueError(f"batch_size must be >= 2 (NT-Xent needs a negative), got {batch_size}")
    epochs = [r.get("epoch", i + 1) for i, r in enumerate(rows)]
    knn = [(e, r["knn_top1"]) for e, r in zip(epochs, rows, strict=True)
           if r.get("knn_top1") is not None]
    panels = 3 if knn else 2
    fig = _figure(figsize=(4.2 * panels, 3.4))
    axes = fig.subplots(1, panels, squeeze=False)[0]
    series = [("loss", "NT-Xent loss", [r.get("loss") for r in rows], PALETTE[0]),
              ("lr", "learning rate", [r.get("lr") for r in rows], PALETTE[1])]
    for ax, (_, name, ys, color) in zip(axes, series, strict=False):
        pts = [(e, y) for e, y in zip(epochs, ys, strict=True) if y is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], color=color,
                marker="o" if len(pts) < 30 else None, markersize=3)
        ax.set_title(name)
        ax.set_ylabel(name)
    axes[1].ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    if batch_size is not None:
        untrained = math.log(2 * batch_size - 1)
        axes[0].axhline(untrained, color="#999999", linestyle="--", linewidth=1.2,
                        label=f"ln(2N − 1) = {untrained:.2f} (N = {batch_size})")
        axes[0].legend(fontsize=8, loc="best")
    if knn:
        ax = axes[2]
        ax.plot([e for e, _ in knn], [100 * a for _, a in knn], color=PALETTE[2], marker="s",
                markersize=3, label="kNN top-1")
        if num_classes is not None:
            ax.axhline(100 / num_classes, color="#999999", linestyle="--", linewidth=1.2,
                       label=f"chance ({100 / num_classes:.3g}%)")
            ax.legend(fontsize=8, loc="best")
        highest = max([100 * a for _, a in knn] + ([100 / num_classes] if num_classes else []))
        ax.set_ylim(0, min(100.0, 1.1 * highest) if highest > 0 else 1.0)  # chance inside
        ax.set_title("kNN top-1 accuracy")
        ax.set_ylabel("accuracy (%)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
    speeds = [r["images_per_s"] for r in rows if r.get("images_per_s")]
    title = "Training history"
    if speeds:
        title += f" (median {np.median(speeds):,.0f} images/s)"
    fig.suptitle(title)
    return fig


def plot_ablation(results: Mapping[str, Any], *, title: str, xlabel: str = "",
                  ylabel: str = "test accuracy (%)", lines: Mapping[str, float] | None = None,
                  default: str | None = None,
                  panels: Mapping[str, Mapping[str, float]] | None = None) -> Figure:
    """Accuracy per setting of an ablation: a bar at the mean, a dot for every seed.

    One setting changed at a time, the way the paper's ablations are read (Figures 5, 8 and
    9, Table 5 of SimCLR, Chen et al. 2020); the dots show the seed-to-seed spread, which
    decides whether two bars differ at all.

    Args:
        results: ``setting -> accuracies`` (one per seed, in [0, 1]), or ``setting ->
            {series: accuracies}`` for grouped bars (e.g. the probe of ``h`` and of ``z``);
            settings keep their order.
        title, xlabel, ylabel: texts of the figure.
        lines: optional ``name -> accuracy`` in [0, 1] drawn as labelled horizontal lines
            in the first panel (e.g. a random encoder, chance).
        default: the setting the profile trains with; its label gets "(default)".
        panels: optional ``series -> {name: accuracy}``: series drawn in a panel of their
            own, right of the first, with their own reference lines (e.g. the pretext
            accuracy, whose chance is not the probe's). Each panel is titled by its series.

    One line style means one kind of line in every panel and every figure: a line whose
    name starts with "chance" is dotted; the other kinds (a name up to its first " (" or
    ",", so "random encoder (shapes)" is a "random encoder") take dashed, dash-dotted and
    densely dotted, in the order they first appear.

    Returns:
        A Figure with one axes per panel, the legend below them. Each bar's mean, in
        percent, is written at its foot.

    Raises:
        ValueError: no settings, a setting without values, or a panel for a series the
            results do not have (or for every series).
    """
    if not results:
        raise ValueError("results is empty")
    grouped = {str(k): (dict(v) if isinstance(v, Mapping) else {"": v})
               for k, v in results.items()}
    series = list(dict.fromkeys(s for groups in grouped.values() for s in groups))
    for name, groups in grouped.items():
        if not any(len(v) for v in groups.values()):
            raise ValueError(f"setting {name!r} has no values")
    panels = dict(panels or {})
    unknown = [s for s in panels if s not in series]
    if unknown:
        raise ValueError(f"panels names series the results do not have: {unknown}; "
                         f"series: {series}")
    first = [s for s in series if s not in panels]
    if not first:
        raise ValueError("panels takes every series; leave at least one for the first panel")
    layout = [(first, dict(lines or {}))] + [([s], dict(v)) for s, v in panels.items()]
    n_set = len(grouped)
    widths = [1.0 + (0.75 + 0.45 * len(ss)) * n_set for ss, _ in layout]
    fig = _figure(figsize=(max(5.0, sum(widths)), 4.0 + 0.3 * (len(layout) > 1)))
    axes = fig.subplots(1, len(layout), width_ratios=widths, squeeze=False)[0]
    rng = np.random.default_rng(0)  # horizontal jitter of the seed dots, the same each time
    kinds: dict[str, Any] = {}  # kind of line -> its style, the same in every panel
    others = [(0, (5, 2)), "-.", (0, (1, 1)), (0, (3, 1, 1, 1, 1, 1))]  # all but chance's
    names = [f"{n}\n(default)" if n == default else n for n in grouped]
    for p, (ax, (shown, refs)) in enumerate(zip(axes, layout, strict=True)):
        width = 0.8 / len(shown)
        for j_local, s in enumerate(shown):
            j = series.index(s)  # colour, hatch and marker follow the series everywhere
            for i, groups in enumerate(grouped.values()):
                values = 100 * np.asarray(groups.get(s, []), dtype=float)
                if not len(values):
                    continue
                x = i + (j_local - (len(shown) - 1) / 2) * width
                ax.bar(x, values.mean(), width * 0.9, color=PALETTE[j % len(PALETTE)],
                       alpha=0.45, hatch=("", "//", "..", "xx")[j % 4],
                       edgecolor=PALETTE[j % len(PALETTE)], label=s if s and i == 0 else None)
                dots = x + rng.uniform(-0.15, 0.15, len(values)) * width * (len(values) > 1)
                ax.scatter(dots, values, s=22, color="black", marker=MARKERS[j % len(MARKERS)],
                           zorder=3, label="one seed" if p == 0 and i == 0 and j_local == 0
                           else None)
                ax.annotate(f"{values.mean():.0f}", (x, 0), xytext=(0, 3),  # the mean, at the foot
                            textcoords="offset points", ha="center", va="bottom", fontsize=8,
                            fontweight="bold")
        for name, acc in refs.items():
            kind = name.split(" (")[0].split(",")[0].strip()
            if kind not in kinds:
                n_other = sum(not k.startswith("chance") for k in kinds)
                kinds[kind] = ":" if kind.startswith("chance") else others[n_other % 4]
            pct = 100 * acc
            ax.axhline(pct, color="#555555", linestyle=kinds[kind], linewidth=1.3,
                       label=f"{name}: {pct:.0f}%" if pct >= 10 else f"{name}: {pct:.2g}%")
        ax.set_xticks(range(n_set), names, fontsize=9)
        ax.set_xlim(-0.6, n_set - 0.4)
        top = max([100 * float(np.max(g[s])) for g in grouped.values() for s in shown
                   if len(g.get(s, []))] + [100 * a for a in refs.values()])
        ax.set_ylim(0, min(105, top * 1.18 + 2))
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].set_ylabel(ylabel)
    for ax in axes:
        ax.set_xlabel(xlabel)
    if len(layout) == 1:
        axes[0].set_title(title)
    else:  # one title for the figure; each panel is titled by its series
        fig.suptitle(title)
        for ax, (shown, _) in zip(axes, layout, strict=True):
            ax.set_title(", ".join(s for s in shown if s), fontsize=10)
    handles, labels = [], []
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    ncol = len(labels) if len(labels) <= 4 else math.ceil(len(labels) / 2)  # one or two rows
    inches = [0.5 + 0.061 * len(label) for label in labels]  # at fontsize 8, with the handle
    while ncol > 1:  # fewer columns while the legend would be wider than the figure
        rows = math.ceil(len(labels) / ncol)  # a legend fills its columns one after the other
        if sum(max(inches[c:c + rows]) for c in range(0, len(labels), rows)) \
                <= fig.get_figwidth() - 0.2:
            break
        ncol -= 1
    fig.legend(handles, labels, loc="outside lower center", ncol=ncol, frameon=False,
               fontsize=8)
    return fig
