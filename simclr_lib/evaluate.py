"""How good is ``h``? Frozen features, kNN, linear probe, logistic regression, label efficiency.

SimCLR (Chen et al., ICML 2020, Section 2.3 and Appendices B.6 and B.8) judges a
representation by the *linear evaluation protocol*: freeze the encoder ``f``, compute
``h = f(x)`` for every image (no augmentation) and train a linear classifier on top. A
weighted k-nearest-neighbour classifier on the same features (Wu et al., "Unsupervised
Feature Learning via Non-Parametric Instance Discrimination", CVPR 2018) needs no training
at all, so it is the usual monitor during pre-training.

Every function here takes precomputed tensors, so the same features can be scored many
ways without touching the encoder again. Related modules, one level up:
:mod:`simclr_lib.diagnostics` (alignment, uniformity, effective rank, retrieval) and
:mod:`simclr_lib.baselines` (fine-tuning, random encoder, raw pixels, supervised).

Introduced in notebooks/05_evaluation.ipynb.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .device import autocast, autocast_dtype, module_device

# ----------------------------------------------------------------------------- features

def images_to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images in 0..255 -> float32 in [0, 1]; float images pass through as float32.

    Unlike :func:`simclr_lib.augment.to_float`, float64 becomes float32 and other integer
    dtypes are accepted (cast as they are).
    """
    return x.float().div_(255) if x.dtype == torch.uint8 else x.float()


def _images(data: Any) -> torch.Tensor:
    images = data.images if hasattr(data, "images") else data
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError("data must be an image tensor (N, C, H, W) or a dataset with "
                         f".images; got {type(images).__name__} "
                         f"{tuple(getattr(images, 'shape', ()))}")
    return images


def on_device(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` itself when its parameters are on ``device``, else a copy moved there.

    The module passed in is never moved: a caller's encoder stays where the caller put it.
    """
    if module_device(module) == device:
        return module
    return copy.deepcopy(module).to(device)


@torch.no_grad()
def extract_features(encoder: nn.Module, data: Any, batch_size: int = 512,
                     device: torch.device | str | None = None, *, head: nn.Module | None = None,
                     progress: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Frozen representations ``h = f(x)`` (and optionally ``z = g(h)``) of a whole dataset.

    The encoder runs in eval mode (BatchNorm uses its running statistics, so each image's
    features do not depend on its batch-mates) under ``torch.no_grad()``, on ``device``
    (a copy of the encoder is moved there when it lives elsewhere; the encoder passed in is
    never moved), in 16-bit autocast on CUDA (bf16 where the GPU has it natively, else
    fp16). No augmentation: the result is deterministic. Every module's train/eval mode is
    restored afterwards, so this is safe to call in the middle of training.

    Args:
        encoder: ``f``, mapping (B, 3, H, W) float images in [0, 1] to (B, D).
        data: uint8 (0..255) or float ([0, 1]) images (N, 3, H, W) on any device, or a
            dataset with an ``.images`` tensor (e.g. ``ImageTensorDataset``).
        batch_size: images per forward pass.
        device: where to run; defaults to the encoder's device.
        head: optional ``g``; if given, ``z = g(h)`` is returned as well. Any module
            taking ``h`` works (a linear classifier gives logits).
        progress: show a tqdm progress bar.

    Returns:
        ``h`` as float32 on the CPU, (N, D); or ``(h, z)`` when ``head`` is given.

    Example:
        >>> f = build_encoder("small_cnn", width=4)
        >>> extract_features(f, torch.zeros(10, 3, 32, 32, dtype=torch.uint8)).shape
        torch.Size([10, 32])
    """
    images = _images(data)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = torch.device(device) if device is not None else module_device(encoder)
    modules = list(encoder.modules()) + (list(head.modules()) if head is not None else [])
    modes = [(m, m.training) for m in modules]
    f = on_device(encoder, device).eval()
    g = on_device(head, device).eval() if head is not None else None
    amp = autocast_dtype("auto", device)
    hs, zs = [], []
    try:
        from tqdm.auto import tqdm
        starts = range(0, images.shape[0], batch_size)
        for s in tqdm(starts, desc="features", disable=not progress, leave=False):
            x = images_to_float(images[s:s + batch_size].to(device, non_blocking=True))
            with autocast(device, amp):
                h = f(x)  # (B, D)
                z = g(h) if g is not None else None
            hs.append(h.float().cpu())
            if z is not None:
                zs.append(z.float().cpu())
    finally:
        for m, mode in modes:
            m.training = mode
    h = torch.cat(hs) if hs else torch.empty(0, 0)
    if head is None:
        return h
    return h, (torch.cat(zs) if zs else torch.empty(0, 0))


# ---------------------------------------------------------------------------------- kNN

def check_features(h: torch.Tensor, y: torch.Tensor, name: str) -> None:
    """Raise ``ValueError`` unless ``h`` is (N, D) and ``y`` (N,) non-negative labels, N > 0.

    ``name`` (``"train"``, ``"test"``, ...) appears in the message.
    """
    if h.dim() != 2 or y.dim() != 1 or h.shape[0] != y.shape[0]:
        raise ValueError(f"{name}_h must be (N, D) and {name}_y (N,) with the same N, got "
                         f"{tuple(h.shape)} and {tuple(y.shape)}")
    if h.shape[0] == 0:
        raise ValueError(f"{name}_h is empty")
    if (y < 0).any():
        raise ValueError(f"{name}_y contains negative (unlabelled, -1) labels; pass only "
                         "labelled examples")


def infer_num_classes(num_classes: int | None, *ys: torch.Tensor | None) -> int:
    """``num_classes`` when given, else the largest label in ``ys`` + 1."""
    if num_classes is not None:
        return int(num_classes)
    return int(max(int(y.max()) for y in ys if y is not None and y.numel())) + 1


@torch.no_grad()
def knn_accuracy(train_h: torch.Tensor, train_y: torch.Tensor, test_h: torch.Tensor,
                 test_y: torch.Tensor, k: int = 200, temperature: float = 0.1,
                 num_classes: int | None = None, chunk_size: int = 1024) -> dict[str, float]:
    """Weighted cosine k-nearest-neighbour accuracy (Wu et al. 2018, Section 3.4).

    Each test feature votes with its ``k`` most cosine-similar training features; neighbour
    ``j`` adds ``exp(sim_j / temperature)`` to the score of its class, and the class with the
    largest total wins. This is the kNN monitor of InstDisc, MoCo and most SimCLR
    re-implementations. Wu et al. use k = 200 and temperature 0.07 (the temperature of
    their instance-discrimination loss). We default to 0.1, the value of MoCo's CIFAR-10
    Colab demo (k = 200, t = 0.1), which most CIFAR re-implementations copied, so that our
    monitor numbers are comparable with theirs; it weighs the farther of the k neighbours
    a little more than 0.07 would. Test
    rows are processed in chunks, so memory is ``chunk_size x N_train``; everything runs
    on ``train_h``'s device.

    Args:
        train_h: (N, D) training features (the "memory bank").
        train_y: (N,) their labels, 0..C-1.
        test_h: (M, D) features to classify.
        test_y: (M,) their labels.
        k: neighbours per query; clipped to N.
        temperature: ``tau`` > 0 of the vote weights; small values trust the nearest
            neighbours most.
        num_classes: C; defaults to the largest label + 1.
        chunk_size: test rows per similarity matrix.

    Returns:
        ``{"top1": ..., "top5": ..., "k": k_used}``, accuracies as fractions in [0, 1].

    Raises:
        ValueError: bad shapes, negative labels, k < 1 or temperature <= 0.

    Example:
        >>> h = torch.randn(100, 8); y = torch.arange(100) % 2
        >>> knn_accuracy(h, y, h, y, k=1)["top1"]
        1.0
    """
    check_features(train_h, train_y, "train")
    check_features(test_h, test_y, "test")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    device = train_h.device
    bank = F.normalize(train_h.float(), dim=1)  # (N, D) unit rows
    bank_y = train_y.to(device).long()
    query = F.normalize(test_h.float().to(device), dim=1)  # (M, D)
    query_y = test_y.to(device).long()
    c = infer_num_classes(num_classes, train_y, test_y)
    k = min(k, bank.shape[0])
    top1 = top5 = 0
    for s in range(0, query.shape[0], chunk_size):
        sim = query[s:s + chunk_size] @ bank.T  # (b, N) cosine similarities
        sim_k, idx = sim.topk(k, dim=1)  # (b, k), most similar first
        # exp(sim / tau), divided by the nearest neighbour's weight so it cannot overflow;
        # a common factor per row does not change which class wins.
        weights = ((sim_k - sim_k[:, :1]) / temperature).exp()  # (b, k)
        scores = torch.zeros(sim.shape[0], c, device=device)  # (b, C)
        scores.scatter_add_(1, bank_y[idx], weights)
        pred = scores.topk(min(5, c), dim=1).indices  # (b, 5)
        hit = pred == query_y[s:s + chunk_size, None]
        top1 += int(hit[:, 0].sum())
        top5 += int(hit.any(dim=1).sum())
    m = query.shape[0]
    return {"top1": top1 / m, "top5": top5 / m, "k": k}


def capped_knn_k(train_y: torch.Tensor, k: int = 200) -> int:
    """``k`` for a kNN classifier on a bank with labels ``train_y``, capped for small banks.

    With k = 200 (Wu et al. 2018) on CIFAR-10 a query's neighbours are 4% of one class
    (5000 images); on a folder with 60 images per class, 200 neighbours would span several
    classes and the vote measures little. The cap is half the median class size (at least
    1): it leaves CIFAR-10, CIFAR-100 (k = 200 of 500 per class) and ``shapes``' 500 per
    class alone, and gives k = 30 for 60 images per class.

    Args:
        train_y: (N,) labels of the bank (``-1``, unlabelled, is not a class).
        k: the k asked for.

    Returns:
        ``min(k, max(1, median class size // 2))``.

    Example:
        >>> capped_knn_k(torch.arange(300) % 5)  # 60 images per class
        30
    """
    counts = torch.bincount(train_y[train_y >= 0].long().cpu())
    counts = counts[counts > 0]
    if counts.numel() == 0:
        return max(1, k)
    return max(1, min(k, int(counts.median()) // 2))


# ------------------------------------------------------------------------- linear probe

def _standardise(ref: torch.Tensor, *xs: torch.Tensor) -> list[torch.Tensor]:
    """Centre and scale every ``x`` by the per-feature mean and std of ``ref``."""
    mean = ref.mean(0)
    std = ref.std(0, correction=0)
    std = torch.where(std > 1e-8, std, torch.ones_like(std))  # constant features stay 0
    return [(x - mean) / std for x in xs]


def _fit_linear(x: torch.Tensor, y: torch.Tensor, num_classes: int, weight_decay: float,
                max_iter: int) -> nn.Linear:
    """Multinomial logistic regression by full-batch L-BFGS.

    Minimises ``cross_entropy(W x + b, y) + weight_decay / 2 * ||W||^2`` (the penalty SGD's
    ``weight_decay`` implies; the bias is not penalised). Zero initialisation and a
    full batch make it deterministic; the problem is convex for ``weight_decay > 0``.
    """
    linear = nn.Linear(x.shape[1], num_classes).to(x.device)
    nn.init.zeros_(linear.weight)
    nn.init.zeros_(linear.bias)
    opt = torch.optim.LBFGS(linear.parameters(), lr=1, max_iter=max_iter, history_size=20,
                            tolerance_grad=1e-6, tolerance_change=1e-9,
                            line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(linear(x), y) + 0.5 * weight_decay * linear.weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return linear.requires_grad_(False)


@torch.no_grad()
def _accuracy(linear: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    logits = linear(x)  # (M, C)
    pred = logits.topk(min(5, logits.shape[1]), dim=1).indices
    hit = pred == y[:, None]
    return hit[:, 0].float().mean().item(), hit.any(1).float().mean().item()


def _split(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = max(1, int(round(val_fraction * n)))
    if n_val >= n:
        raise ValueError(f"cannot split {n} examples into train and validation")
    return perm[n_val:], perm[:n_val]


WEIGHT_DECAYS = (0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2)  # the L2 strengths a probe tries on val


def linear_probe(train_h: torch.Tensor, train_y: torch.Tensor, val_h: torch.Tensor | None,
                 val_y: torch.Tensor | None, test_h: torch.Tensor, test_y: torch.Tensor, *,
                 weight_decays: Sequence[float] = WEIGHT_DECAYS,
                 epochs: int = 100, num_classes: int | None = None, val_fraction: float = 0.2,
                 seed: int = 0, device: torch.device | str | None = None) -> dict[str, Any]:
    """Linear evaluation of frozen features (SimCLR Section 2.3, Appendix B.8).

    The protocol of the paper's transfer experiments (Appendix B.8): a linear classifier on
    standardised features, fitted by full-batch L-BFGS with an L2 penalty (see
    ``_fit_linear``), for each weight decay in ``weight_decays``. The one with
    the best validation accuracy is kept (ties go to the larger weight decay), the
    classifier is refitted on train + validation with it, and the test set is scored once:
    test labels never influence any choice. Deterministic.

    Args:
        train_h, train_y: (N, D) features and (N,) labels to fit on.
        val_h, val_y: validation features and labels for choosing the weight decay; if
            ``None``, a random ``val_fraction`` of the training set is held out instead.
        test_h, test_y: (M, D) and (M,) to report.
        weight_decays: the grid searched on validation.
        epochs: the most L-BFGS iterations per fit (each is one or a few full-batch passes).
        num_classes: C; defaults to the largest label + 1.
        val_fraction, seed: the held-out split used when ``val_h`` is ``None``.
        device: where to fit; defaults to ``train_h``'s device.

    Returns:
        ``{"top1", "top5"}`` test accuracies in [0, 1], ``"val_top1"`` (best validation
        accuracy), ``"weight_decay"`` (chosen) and ``"val_accs"`` (weight decay -> accuracy).

    Raises:
        ValueError: bad shapes, negative labels, or an empty weight-decay grid.

    Example:
        >>> r = linear_probe(h_train, y_train, h_val, y_val, h_test, y_test)
        >>> r["top1"], r["weight_decay"]
    """
    if len(weight_decays) == 0:
        raise ValueError("weight_decays must not be empty")
    device = torch.device(device) if device is not None else train_h.device
    if val_h is None or val_y is None:
        tr, va = _split(train_h.shape[0], val_fraction, seed)
        train_h, train_y, val_h, val_y = train_h[tr], train_y[tr], train_h[va], train_y[va]
    for h, y, name in ((train_h, train_y, "train"), (val_h, val_y, "val"),
                       (test_h, test_y, "test")):
        check_features(h, y, name)
    c = infer_num_classes(num_classes, train_y, val_y, test_y)
    xs = [h.float().to(device) for h in (train_h, val_h, test_h)]
    ys = [y.long().to(device) for y in (train_y, val_y, test_y)]

    # 1) choose the weight decay on validation (statistics from train only)
    x_tr, x_va = _standardise(xs[0], xs[0], xs[1])
    val_accs = {}
    for wd in weight_decays:
        val_accs[wd] = _accuracy(_fit_linear(x_tr, ys[0], c, wd, epochs), x_va, ys[1])[0]
    best_acc = max(val_accs.values())
    best_wd = max(wd for wd, acc in val_accs.items() if acc == best_acc)

    # 2) refit on train + validation, score the test set once
    x_all, y_all = torch.cat(xs[:2]), torch.cat(ys[:2])
    x_all, x_te = _standardise(x_all, x_all, xs[2])
    top1, top5 = _accuracy(_fit_linear(x_all, y_all, c, best_wd, epochs), x_te, ys[2])
    return {"top1": top1, "top5": top5, "val_top1": best_acc, "weight_decay": best_wd,
            "val_accs": val_accs}


def images_labels(ds: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images, labels)`` of a dataset with those attributes, or of an ``(x, y)`` pair."""
    if isinstance(ds, (tuple, list)) and len(ds) == 2:
        return ds[0], ds[1]
    return ds.images, ds.labels


def linear_probe_encoder(encoder: nn.Module, train_ds: Any, val_ds: Any, test_ds: Any, *,
                         batch_size: int = 512, device: torch.device | str | None = None,
                         progress: bool = False, **probe_kwargs: Any) -> dict[str, Any]:
    """Extract frozen features with :func:`extract_features`, then :func:`linear_probe`.

    The encoder is not changed: no gradient reaches it, BatchNorm running statistics are
    not updated (eval mode) and its train/eval mode is restored.

    Args:
        encoder: ``f``.
        train_ds, val_ds, test_ds: datasets with ``.images`` and ``.labels`` (e.g.
            ``ImageTensorDataset``) or ``(images, labels)`` tuples; ``val_ds`` may be
            ``None`` (a part of train is held out, see :func:`linear_probe`).
        batch_size, device, progress: passed to :func:`extract_features`.
        **probe_kwargs: passed to :func:`linear_probe` (``weight_decays``, ``epochs``, ...).

    Returns:
        The dictionary of :func:`linear_probe`.
    """
    def feats(ds: Any) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = images_labels(ds)
        return extract_features(encoder, x, batch_size, device, progress=progress), y

    train_h, train_y = feats(train_ds)
    val_h, val_y = feats(val_ds) if val_ds is not None else (None, None)
    test_h, test_y = feats(test_ds)
    return linear_probe(train_h, train_y, val_h, val_y, test_h, test_y, **probe_kwargs)


def logistic_regression(train_h: torch.Tensor, train_y: torch.Tensor, test_h: torch.Tensor,
                        test_y: torch.Tensor, C: float = 1.0, max_iter: int = 1000,
                        ) -> dict[str, float]:
    """Cross-check: scikit-learn ``LogisticRegression`` on ``StandardScaler``-ed features.

    Args:
        train_h, train_y: (N, D) features and (N,) labels.
        test_h, test_y: (M, D) and (M,).
        C: inverse L2 strength (scikit-learn's convention: larger = weaker penalty).
        max_iter: L-BFGS iterations.

    Returns:
        ``{"top1": test accuracy, "C": C}``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    check_features(train_h, train_y, "train")
    check_features(test_h, test_y, "test")
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))
    clf.fit(train_h.float().cpu().numpy(), train_y.cpu().numpy())
    acc = clf.score(test_h.float().cpu().numpy(), test_y.cpu().numpy())
    return {"top1": float(acc), "C": C}


# --------------------------------------------------------------------- label efficiency

def balanced_subset(labels: torch.Tensor, per_class: int,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Indices of a class-balanced random subset: exactly ``per_class`` of each class.

    Classes are those present in ``labels`` (negative, unlabelled entries are never picked).

    Args:
        labels: (N,) integer labels.
        per_class: examples to draw from each class, without replacement.
        generator: a CPU ``torch.Generator`` for reproducible draws.

    Returns:
        (per_class * num_present_classes,) int64 indices into ``labels``, grouped by class.

    Raises:
        ValueError: ``per_class < 1`` or a class with fewer than ``per_class`` examples.

    Example:
        >>> balanced_subset(torch.tensor([0, 0, 1, 1, 1]), 2, torch.Generator().manual_seed(0))
        tensor([0, 1, 2, 4])
    """
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    labels = labels.cpu()
    picked = []
    for c in labels[labels >= 0].unique().tolist():
        idx = (labels == c).nonzero().flatten()
        if idx.numel() < per_class:
            raise ValueError(f"class {c} has only {idx.numel()} examples, fewer than "
                             f"per_class={per_class}")
        picked.append(idx[torch.randperm(idx.numel(), generator=generator)[:per_class]])
    return torch.cat(picked)


def label_efficiency(train_h: torch.Tensor, train_y: torch.Tensor, test_h: torch.Tensor,
                     test_y: torch.Tensor, labels_per_class: Sequence[int | None] = (1, 10, 100,
                                                                                     None),
                     repeats: int = 3, seed: int = 0, *, weight_decay: float = 1e-3,
                     epochs: int = 100, num_classes: int | None = None,
                     device: torch.device | str | None = None) -> list[dict[str, Any]]:
    """Linear-probe accuracy against the number of labels (SimCLR Section 6, Table 7).

    For each level, ``repeats`` class-balanced random subsets of the *training* split are
    drawn (:func:`balanced_subset`), a linear classifier is fitted on each subset and scored
    on the whole test split, which is disjoint by construction. The weight decay is fixed
    (``weight_decay``): with one label per class there is nothing left to validate on.
    Features are standardised with the mean and std of *all* training features, which uses
    images but no labels, as in semi-supervised learning. Levels larger than the smallest
    class are skipped with a warning.

    Args:
        train_h, train_y: (N, D) training features and (N,) labels.
        test_h, test_y: (M, D) and (M,).
        labels_per_class: levels to evaluate; ``None`` means every training label (fitted
            once: there is no randomness to repeat).
        repeats: subsets per level.
        seed: subset ``r`` of every level uses generator seed ``seed * 10007 + r``.
        weight_decay: L2 strength of the probe (see :func:`linear_probe`).
        epochs: the most L-BFGS iterations per fit.
        num_classes: C; defaults to the largest label + 1.
        device: where to fit; defaults to ``train_h``'s device.

    Returns:
        One dict per level, in order: ``labels_per_class`` (int or None), ``n_labels``,
        ``mean`` and ``std`` (sample std over repeats, 0 for one) of the test accuracy in
        [0, 1], and ``accs`` (the list).
    """
    check_features(train_h, train_y, "train")
    check_features(test_h, test_y, "test")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    device = torch.device(device) if device is not None else train_h.device
    c = infer_num_classes(num_classes, train_y, test_y)
    x_tr, x_te = _standardise(train_h.float().to(device), train_h.float().to(device),
                              test_h.float().to(device))
    y_tr, y_te = train_y.long().to(device), test_y.long().to(device)
    counts = torch.bincount(train_y.cpu())
    smallest = int(counts[counts > 0].min())  # examples in the rarest present class
    results = []
    for level in labels_per_class:
        if level is not None and level > smallest:
            warnings.warn(f"skipping labels_per_class={level}: the smallest class has only "
                          f"{smallest} training examples", stacklevel=2)
            continue
        if level is None:
            subsets = [torch.arange(train_y.numel())]
        else:
            subsets = [balanced_subset(train_y, level,
                                       torch.Generator().manual_seed(seed * 10007 + r))
                       for r in range(repeats)]
        accs = []
        for idx in subsets:
            idx = idx.to(device)
            linear = _fit_linear(x_tr[idx], y_tr[idx], c, weight_decay, epochs)
            accs.append(_accuracy(linear, x_te, y_te)[0])
        t = torch.tensor(accs, dtype=torch.float64)
        results.append({"labels_per_class": level, "n_labels": int(subsets[0].numel()),
                        "mean": t.mean().item(),
                        "std": t.std().item() if len(accs) > 1 else 0.0, "accs": accs})
    return results
