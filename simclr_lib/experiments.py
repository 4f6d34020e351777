"""Short SimCLR runs, scored: the paper's ablations at the scale of a laptop.

Each ablation of SimCLR (Chen et al., "A Simple Framework for Contrastive Learning of Visual
Representations", ICML 2020) trains models that differ in one setting and compares them by
linear evaluation of the frozen representation ``h`` (Section 2.3): the augmentations in
Figure 5, the projection head in Figure 8, the temperature in Table 5, the batch size in
Figure 9. :func:`short_run` is one such run: ``fit(cfg)`` in a temporary directory, then a
linear probe and a kNN classifier on ``h`` (and on ``z = g(h)``) of labelled splits, and the
accuracy of the pretext task itself on held-out views (:func:`pretext_accuracy`, the
"contrastive acc." of Table 5). :func:`colour_histograms` gives features that see nothing
but colour: the shortcut of the paper's Figure 6.

Introduced in notebooks/06_experiments.ipynb.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from .augment import BatchedAugment
from .config import TrainConfig
from .data import image_size_of
from .device import module_device
from .diagnostics import positive_pair_retrieval
from .evaluate import (
    WEIGHT_DECAYS,
    capped_knn_k,
    extract_features,
    images_labels,
    images_to_float,
    knn_accuracy,
    linear_probe,
)
from .models import SimCLR
from .train import fit

SPLIT_NAMES = ("train", "val", "test")


@dataclasses.dataclass
class ShortRun:
    """What :func:`short_run` returns.

    Attributes:
        config: the settings the run trained with (kNN monitor off, its own ``out``).
        model: the trained ``f`` (``model.encoder``) and ``g`` (``model.head``).
        history: ``fit``'s per-epoch records (loss, learning rate, images/s).
        seconds: wall-clock time of ``fit``.
        scores: ``{"h": {"linear": ..., "knn": ...}, "z": {...}}``, test accuracies in
            [0, 1] (``"z"`` only when the head was probed).
        pretext: the contrastive accuracy on held-out views (see :func:`pretext_accuracy`).
    """

    config: TrainConfig
    model: SimCLR
    history: list[dict]
    seconds: float
    scores: dict[str, dict[str, float]]
    pretext: float

    @property
    def linear(self) -> float:
        """Linear-probe test accuracy of ``h``: the paper's yardstick."""
        return self.scores["h"]["linear"]

    @property
    def knn(self) -> float:
        """Weighted kNN test accuracy of ``h``."""
        return self.scores["h"]["knn"]

    @property
    def loss(self) -> float:
        """Mean NT-Xent loss of the last epoch."""
        return self.history[-1]["loss"]


def _check_splits(splits: Mapping[str, Any]) -> None:
    missing = [name for name in SPLIT_NAMES if name not in splits]
    if missing:
        raise ValueError(f"splits needs labelled 'train', 'val' and 'test' (datasets with "
                         f".images and .labels, or (images, labels)); missing: "
                         f"{', '.join(missing)}")


def probe(encoder: nn.Module, splits: Mapping[str, Any], *, head: nn.Module | None = None,
          k: int = 200, knn_temperature: float = 0.1,
          weight_decays: Sequence[float] = WEIGHT_DECAYS, batch_size: int = 512,
          device: torch.device | str | None = None) -> dict[str, dict[str, float]]:
    """Linear probe and weighted kNN of the frozen ``h = f(x)`` (and of ``z = g(h)``).

    The protocol of notebook 05 (SimCLR Section 2.3, Appendix B.8): features of the
    original images (no augmentation, eval mode), the probe's weight decay chosen on
    ``val``, ``test`` scored once; the kNN classifier (Wu et al. 2018) votes with the
    ``train`` features, ``k`` capped for small classes (:func:`capped_knn_k`).

    Args:
        encoder: ``f``.
        splits: ``{"train", "val", "test"}``: labelled datasets (``.images``, ``.labels``)
            or ``(images, labels)`` tuples.
        head: optional ``g``; when given, ``z`` is scored too.
        k, knn_temperature: of :func:`~simclr_lib.evaluate.knn_accuracy`.
        weight_decays: the probe's grid (see :func:`~simclr_lib.evaluate.linear_probe`).
        batch_size: of :func:`~simclr_lib.evaluate.extract_features`.
        device: where features are computed and the probe is fitted (default: the
            encoder's device; on a GPU the L-BFGS fit is much faster than on a small CPU).

    Returns:
        ``{"h": {"linear": top-1, "knn": top-1}}``, plus ``"z"`` when ``head`` is given;
        test accuracies in [0, 1].

    Raises:
        ValueError: a split is missing (and the errors of the probes).
    """
    _check_splits(splits)
    device = torch.device(device) if device is not None else module_device(encoder)
    feats: dict[str, dict[str, torch.Tensor]] = {"h": {}, "z": {}}
    labels = {}
    for name in SPLIT_NAMES:
        images, labels[name] = images_labels(splits[name])
        out = extract_features(encoder, images, batch_size, device, head=head)
        if head is None:
            feats["h"][name] = out  # (N, D)
        else:
            feats["h"][name], feats["z"][name] = out  # (N, D), (N, proj_dim)
    k = capped_knn_k(labels["train"], k)
    scores = {}
    for space in ("h", "z") if head is not None else ("h",):
        x = feats[space]
        lin = linear_probe(x["train"], labels["train"], x["val"], labels["val"], x["test"],
                           labels["test"], weight_decays=weight_decays, device=device)
        knn = knn_accuracy(x["train"], labels["train"], x["test"], labels["test"], k=k,
                           temperature=knn_temperature)
        scores[space] = {"linear": lin["top1"], "knn": knn["top1"]}
    return scores


@torch.no_grad()
def pretext_accuracy(model: SimCLR, images: torch.Tensor, cfg: TrainConfig, *, n: int = 512,
                     seed: int = 0, batch_size: int = 512,
                     device: torch.device | str | None = None) -> float:
    """How often the pretext task is solved: each view's nearest ``z`` is its partner's.

    Two views of each of the first ``n`` images, drawn with the run's own augmentation
    (``cfg``) from a generator seeded with ``seed``; ``z = g(f(x))`` in eval mode; the hit
    rate of :func:`~simclr_lib.diagnostics.positive_pair_retrieval` among the ``n`` second
    views (chance ``1 / n``). The paper's Table 5 reports the same accuracy ("contrastive
    acc.") over 4096 examples, and Section 3.1 notes that a model can solve this task almost
    perfectly and still learn a poor representation.

    Args:
        model: the trained SimCLR model.
        images: (N, 3, H, W) uint8 or float held-out images, N >= 2.
        cfg: the run's config (its augmentation settings).
        n: images used (at most N).
        seed: the views' random draws.
        batch_size, device: of :func:`~simclr_lib.evaluate.extract_features`.

    Returns:
        A float in [0, 1].
    """
    x = images[:n].cpu()
    if x.shape[0] < 2:
        raise ValueError(f"pretext accuracy needs at least 2 images, got {x.shape[0]}")
    augment = BatchedAugment(**cfg.augment_kwargs(image_size_of(cfg)))
    g = torch.Generator().manual_seed(seed)
    x_i, x_j = augment(x, generator=g), augment(x, generator=g)  # (n, 3, S, S) each
    z_i = extract_features(model.encoder, x_i, batch_size, device, head=model.head)[1]
    z_j = extract_features(model.encoder, x_j, batch_size, device, head=model.head)[1]
    return positive_pair_retrieval(z_i, z_j)


def short_run(cfg: TrainConfig, splits: Mapping[str, Any], *, probe_z: bool = True,
              pretext_images: int = 512, k: int = 200, knn_temperature: float = 0.1,
              weight_decays: Sequence[float] = WEIGHT_DECAYS, batch_size: int = 512,
              quiet: bool = True) -> ShortRun:
    """Train one short SimCLR run with :func:`~simclr_lib.train.fit` and score it.

    The run trains exactly as ``cfg`` says, except that ``fit``'s kNN monitor is off (the
    run is scored once, afterwards, so it trains on all ``cfg.train_size`` images) and it
    writes to a temporary directory, removed afterwards. Then :func:`probe` scores ``h``
    (and ``z``) on ``splits``, and :func:`pretext_accuracy` the pretext task on the first
    ``pretext_images`` test images. One point of an ablation such as the paper's Figure 5,
    8 or 9 or Table 5.

    Args:
        cfg: the run's settings (``dataclasses.replace(profile.train, temperature=0.5)``).
        splits: labelled ``{"train", "val", "test"}`` to score on (see :func:`probe`).
        probe_z: score ``z = g(h)`` as well.
        pretext_images: images for :func:`pretext_accuracy` (0: skip it, NaN).
        k, knn_temperature, weight_decays, batch_size: of :func:`probe`.
        quiet: silence ``fit``'s progress bars and per-epoch lines (the history keeps
            them).

    Returns:
        A :class:`ShortRun`.

    Raises:
        ValueError: invalid settings or a missing split.

    Example:
        >>> run = short_run(dataclasses.replace(cfg, temperature=0.5), splits)  # doctest: +SKIP
        >>> run.linear, run.scores["z"]["linear"], run.pretext                   # doctest: +SKIP
    """
    _check_splits(splits)
    with tempfile.TemporaryDirectory(prefix="simclr-short-run-") as tmp:
        cfg = dataclasses.replace(cfg, knn_every=0, out=tmp, progress=cfg.progress and not quiet)
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext():
            result = fit(cfg, overwrite=True)
        seconds = time.perf_counter() - start
    model = result.model.eval()
    scores = probe(model.encoder, splits, head=model.head if probe_z else None, k=k,
                   knn_temperature=knn_temperature, weight_decays=weight_decays,
                   batch_size=batch_size)
    pretext = float("nan")
    if pretext_images:
        pretext = pretext_accuracy(model, images_labels(splits["test"])[0], cfg,
                                   n=pretext_images, batch_size=batch_size)
    return ShortRun(cfg, model, result.history, seconds, scores, pretext)


class Ablation:
    """Short runs of one base configuration, each changed in a few settings, trained once.

    ``runs.run(temperature=0.5)`` trains and scores ``base`` with that change
    (:func:`short_run`) the first time and returns the kept :class:`ShortRun` afterwards,
    so that an ablation can reuse the base run of another. :meth:`compare` is one ablation,
    read the way the paper's should be: a difference smaller than the seed-to-seed spread
    is no difference, so settings that close get more seeds.

    Args:
        base: the settings every run starts from.
        splits: labelled ``{"train", "val", "test"}`` to score on (see :func:`probe`).
        **kwargs: passed to :func:`short_run` (``probe_z``, ``pretext_images``, ``k``, ...).

    Example:
        >>> runs = Ablation(cfg, splits)                                    # doctest: +SKIP
        >>> runs.compare({"0.1": {}, "0.5": {"temperature": 0.5}}, spread=0.05)  # doctest: +SKIP
    """

    def __init__(self, base: TrainConfig, splits: Mapping[str, Any], **kwargs: Any) -> None:
        _check_splits(splits)
        self.base, self.splits, self.kwargs = base, splits, kwargs
        self.runs: dict[tuple, dict[int, ShortRun]] = {}  # settings but seed -> seed -> run

    def run(self, **changes: Any) -> ShortRun:
        """``base`` with ``changes`` (field names of :class:`TrainConfig`), trained once."""
        cfg = dataclasses.replace(self.base, **changes)
        seeds = self.runs.setdefault(_setting(cfg), {})
        if cfg.seed not in seeds:
            seeds[cfg.seed] = short_run(cfg, self.splits, **self.kwargs)
        return seeds[cfg.seed]

    def seeds_of(self, **changes: Any) -> list[ShortRun]:
        """Every run so far of ``base`` with ``changes``, whatever its seed, by seed."""
        seeds = self.runs.get(_setting(dataclasses.replace(self.base, **changes)), {})
        return [seeds[s] for s in sorted(seeds)]

    def spread(self, metric: Callable[[ShortRun], float] | None = None) -> float:
        """The seed-to-seed spread seen so far: the largest range of ``metric`` (default: the
        linear-probe accuracy of ``h``) over the seeds of one setting, among the settings
        run with two seeds or more; 0 when there are none. A few seeds pin a spread down
        poorly, so the widest one seen is the safer yardstick."""
        metric = metric or (lambda r: r.linear)
        ranges = [max(values) - min(values) for values in
                  ([metric(r) for r in seeds.values()] for seeds in self.runs.values())
                  if len(values) > 1]
        return max(ranges, default=0.0)

    def compare(self, settings: Mapping[str, Mapping[str, Any]], seeds: Sequence[int] = (0, 1),
                spread: float | None = None) -> dict[str, list[ShortRun]]:
        """Runs of each setting: the first seed always, every seed where it matters.

        Args:
            settings: ``name -> changes`` of ``base`` (``{}`` is ``base`` itself).
            seeds: the seeds a setting may get; ``seeds[0]`` is run for every setting.
            spread: the seed-to-seed spread of the linear-probe accuracy (e.g. the range of
                the base run over seeds). A setting gets all ``seeds`` when its first-seed
                accuracy is within ``spread`` of another setting's; ``None``: every setting
                gets all seeds.

        Returns:
            ``name -> [ShortRun, ...]`` in the order of ``settings``: every run of the
            setting so far, by seed (including seeds run earlier, e.g. for the base).
        """
        if not seeds:
            raise ValueError("seeds must not be empty")
        first = {name: self.run(**{**changes, "seed": seeds[0]})
                 for name, changes in settings.items()}
        for name, changes in settings.items():
            close = spread is None or any(
                abs(first[name].linear - first[other].linear) < spread
                for other in settings if other != name)
            if close:
                for s in seeds[1:]:
                    self.run(**{**changes, "seed": s})
        return {name: self.seeds_of(**{k: v for k, v in changes.items() if k != "seed"})
                for name, changes in settings.items()}


def _setting(cfg: TrainConfig) -> tuple:
    """What a run is, apart from its seed (hashable)."""
    return tuple(sorted((k, v) for k, v in dataclasses.asdict(cfg).items() if k != "seed"))


def verdict(differences: Sequence[float], spread: float | Sequence[float]) -> str:
    """Does a finding of the paper reproduce? ``yes``, ``partly`` or ``no``.

    Each difference is one comparison the finding makes, measured here and signed so that
    a positive value agrees with the paper (e.g. accuracy with crop + colour minus
    accuracy with crop alone). A comparison counts only when its difference exceeds the
    seed-to-seed ``spread``: smaller differences are noise.

    Args:
        differences: one per comparison, in the paper's direction.
        spread: the seed-to-seed spread (>= 0) in the same unit, or one per comparison.

    Returns:
        ``"yes"`` when every difference exceeds ``spread``, ``"no"`` when none does,
        ``"partly"`` otherwise.

    Example:
        >>> verdict([0.20, 0.01], spread=0.05)
        'partly'
    """
    if not differences:
        raise ValueError("differences must not be empty")
    spreads = list(spread) if isinstance(spread, Sequence) else [spread] * len(differences)
    if len(spreads) != len(differences) or not all(s >= 0 for s in spreads):
        raise ValueError(f"spread must be >= 0, one for all or one per difference, got {spread}")
    agree = [d > s for d, s in zip(differences, spreads, strict=True)]
    return "yes" if all(agree) else "partly" if any(agree) else "no"


def colour_histograms(images: torch.Tensor, bins: int = 8) -> torch.Tensor:
    """Per-channel colour histograms: features that see colour and nothing else.

    Crops of one image share its colour distribution (SimCLR Figure 6), so without colour
    distortion the pretext task can be solved by comparing histograms, and a network trained
    on crops alone learns to do that (Section 3.1).

    Args:
        images: (N, 3, H, W) uint8 (0..255) or float ([0, 1]) images.
        bins: equal-width bins per channel over [0, 1] (the last one includes 1).

    Returns:
        (N, 3 * bins) float32: the R, G and B histograms one after the other, each summing
        to 1.

    Example:
        >>> colour_histograms(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), bins=2)
        tensor([[1., 0., 1., 0., 1., 0.]])
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (N, 3, H, W), got {tuple(images.shape)}")
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    x = images_to_float(images.cpu()).clamp(0, 1).flatten(2)  # (N, 3, H*W)
    idx = (x * bins).long().clamp(max=bins - 1)  # (N, 3, H*W) bin of each value
    counts = torch.zeros(x.shape[0], 3, bins).scatter_add_(2, idx, torch.ones_like(x))
    return (counts / x.shape[2]).flatten(1)  # (N, 3 * bins)
