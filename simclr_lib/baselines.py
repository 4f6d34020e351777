"""Fine-tuning, and the baselines every SimCLR number should be read against.

A linear-probe accuracy means little on its own. Scored with the same protocol
(:mod:`simclr_lib.evaluate`), three baselines frame it:

* a **random encoder** of the same architecture: how much comes from the architecture alone
  (random convolutional features are surprisingly good);
* **raw pixels**: how much any encoder adds at all;
* a **supervised** encoder trained with cross-entropy on all labels: the ceiling.

:func:`fine_tune` is the semi-supervised protocol of SimCLR (Chen et al. 2020, Section 6,
Table 7 and Appendix B.5): start from the pre-trained encoder, add a linear head, and train both
on a small class-balanced fraction of the labels; ``from_scratch=True`` gives the
comparison with no pre-training.

Introduced in notebooks/05_evaluation.ipynb.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .device import autocast, autocast_dtype, module_device
from .evaluate import (
    balanced_subset,
    check_features,
    extract_features,
    images_to_float,
    infer_num_classes,
    knn_accuracy,
    linear_probe,
)

Augment = Callable[..., torch.Tensor]


def crop_flip(x: torch.Tensor, generator: torch.Generator | None = None,
              padding: int = 4) -> torch.Tensor:
    """Standard supervised augmentation: random crop after zero padding, horizontal flip.

    The CIFAR recipe (``RandomCrop(32, padding=4)`` + ``RandomHorizontalFlip()``),
    vectorised with per-sample random offsets so it runs on any device and any dtype.

    Args:
        x: (B, C, H, W) images, uint8 or float.
        generator: a ``torch.Generator`` on ``x``'s device, for reproducible draws.
        padding: pixels of zero padding on each side; the crop is H x W again.

    Returns:
        (B, C, H, W), same dtype and device as ``x``.
    """
    b, _, h, w = x.shape
    dev = x.device
    xp = F.pad(x, (padding,) * 4)  # (B, C, H + 2p, W + 2p)
    oy = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=dev)
    ox = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=dev)
    flip = torch.rand(b, generator=generator, device=dev) < 0.5
    rows = oy[:, None] + torch.arange(h, device=dev)  # (B, H)
    cols = ox[:, None] + torch.arange(w, device=dev)  # (B, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    batch = torch.arange(b, device=dev)[:, None, None]
    out = xp[batch, :, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()


def reinitialised(encoder: nn.Module, seed: int = 0) -> nn.Module:
    """A deep copy of ``encoder`` with fresh random weights (the same architecture).

    Every submodule with a ``reset_parameters`` method is reset (PyTorch's default
    initialisation per layer; BatchNorm running statistics are reset too). The global
    random state is left untouched. The original is not modified.
    """
    device = module_device(encoder)
    fresh = copy.deepcopy(encoder).cpu()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in fresh.modules():
            if callable(getattr(m, "reset_parameters", None)):
                m.reset_parameters()
    return fresh.to(device)


def _fresh_encoder(encoder: nn.Module | Callable[[], nn.Module], seed: int) -> nn.Module:
    """A randomly initialised encoder: a re-initialised copy of a module, or a factory's."""
    if isinstance(encoder, nn.Module):
        return reinitialised(encoder, seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return encoder()


def _feature_dim(encoder: nn.Module, images: torch.Tensor, device: torch.device) -> int:
    if hasattr(encoder, "feature_dim"):
        return int(encoder.feature_dim)
    return extract_features(encoder, images[:2], device=device).shape[1]


def _train_classifier(encoder: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                      num_classes: int, *, epochs: int, lr: float, weight_decay: float,
                      nesterov: bool, batch_size: int, augment: Augment | None,
                      device: torch.device, seed: int, progress: bool,
                      ) -> tuple[nn.Sequential, float]:
    """Train ``encoder`` + a linear head with cross-entropy; SGD, momentum 0.9, cosine lr.

    Returns the model (``model[0]`` the encoder, ``model[1]`` the head) and the mean loss of
    the last epoch. Batches of one image are skipped (BatchNorm cannot train on them).
    """
    from tqdm.auto import tqdm

    n = labels.numel()
    if n < 2:
        raise ValueError(f"need at least 2 labelled images to train, got {n}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = nn.Linear(_feature_dim(encoder, images, device), num_classes)
    model = nn.Sequential(encoder, head).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=nesterov,
                          weight_decay=weight_decay)
    steps_per_epoch = math.ceil(n / batch_size)
    total = max(1, epochs * steps_per_epoch)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total)))
    order_gen = torch.Generator().manual_seed(seed)  # CPU: which images form each batch
    aug_gen = torch.Generator(device=device).manual_seed(seed)  # device: augmentation draws
    augment = augment if augment is not None else crop_flip
    labels = labels.long()
    amp = autocast_dtype("auto", device)  # bf16 where native, fp16 (+ GradScaler) on older GPUs
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    last = float("nan")
    for _ in tqdm(range(epochs), desc="train", disable=not progress, leave=False):
        perm = torch.randperm(n, generator=order_gen)
        losses = []
        for s in range(0, n, batch_size):
            idx = perm[s:s + batch_size]
            if idx.numel() < 2:
                continue
            x = images[idx.to(images.device)].to(device, non_blocking=True)
            y = labels[idx.to(labels.device)].to(device, non_blocking=True)
            x = images_to_float(augment(x, generator=aug_gen))
            with autocast(device, amp):
                logits = model(x)  # (B, C)
            loss = F.cross_entropy(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            losses.append(loss.item())
        last = sum(losses) / max(1, len(losses))
    return model, last


def _test_scores(model: nn.Sequential, images: torch.Tensor, labels: torch.Tensor,
                 device: torch.device) -> dict[str, float]:
    _, logits = extract_features(model[0], images, device=device, head=model[1])  # (M, C)
    pred = logits.topk(min(5, logits.shape[1]), dim=1).indices
    hit = pred == labels.cpu().long()[:, None]
    return {"top1": hit[:, 0].float().mean().item(), "top5": hit.any(1).float().mean().item()}


def fine_tune(encoder: nn.Module, train_images: torch.Tensor, train_labels: torch.Tensor,
              test_images: torch.Tensor, test_labels: torch.Tensor, *, fraction: float = 0.1,
              epochs: int = 30, lr: float | None = None, batch_size: int = 256,
              augment: Augment | None = None, device: torch.device | str | None = None,
              seed: int = 0, from_scratch: bool = False, num_classes: int | None = None,
              progress: bool = False) -> dict[str, Any]:
    """Semi-supervised fine-tuning on a fraction of the labels (SimCLR Appendix B.5).

    A class-balanced random ``fraction`` of the training labels is drawn; a *copy* of the
    encoder plus a new linear head is trained on it end to end with the paper's recipe at
    small scale: SGD with Nesterov momentum 0.9, ``lr = 0.05 * batch_size / 256``, no
    warm-up, no weight decay, cosine decay, random crop + horizontal flip only. The paper
    trains 60 epochs on 1% and 30 epochs on 10% of ImageNet's labels. The test split is
    scored once at the end. The passed encoder is never modified.

    Args:
        encoder: the pre-trained ``f``.
        train_images, train_labels: (N, 3, H, W) uint8/float images and (N,) labels.
        test_images, test_labels: (M, 3, H, W) and (M,).
        fraction: share of the training labels to use, in (0, 1]; rounded to a whole
            number of images per class (at least 1).
        epochs, lr, batch_size: the optimisation (``lr=None``: the paper's rule above).
        augment: ``augment(x, generator=g) -> x`` on a batch (uint8 or float); defaults to
            :func:`crop_flip`. ``g`` is a ``torch.Generator`` on ``device``.
        device: defaults to the encoder's device.
        seed: chooses the labelled subset, the head's initialisation, the batches and the
            augmentations.
        from_scratch: start from a randomly re-initialised copy instead (the "no
            pre-training" comparison).
        num_classes: C; defaults to the largest label + 1.
        progress: show a tqdm bar over epochs.

    Returns:
        ``{"top1", "top5"}`` test accuracies in [0, 1], ``"n_labels"``,
        ``"labels_per_class"``, ``"final_loss"`` (mean training loss of the last epoch) and
        ``"from_scratch"``.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    check_features(train_images.flatten(1), train_labels, "train")
    c = infer_num_classes(num_classes, train_labels, test_labels)
    counts = torch.bincount(train_labels.cpu().long())
    per_class = max(1, round(fraction * train_labels.numel() / c))
    per_class = min(per_class, int(counts[counts > 0].min()))
    idx = balanced_subset(train_labels, per_class, torch.Generator().manual_seed(seed))
    device = torch.device(device) if device is not None else module_device(encoder)
    f = reinitialised(encoder, seed) if from_scratch else copy.deepcopy(encoder)
    model, last = _train_classifier(
        f, train_images[idx.to(train_images.device)], train_labels[idx.to(train_labels.device)],
        c, epochs=epochs, lr=lr if lr is not None else 0.05 * batch_size / 256,
        weight_decay=0.0, nesterov=True, batch_size=batch_size, augment=augment,
        device=device, seed=seed, progress=progress)
    return {**_test_scores(model, test_images, test_labels, device), "n_labels": idx.numel(),
            "labels_per_class": per_class, "final_loss": last, "from_scratch": from_scratch}


def supervised_baseline(encoder_factory: Callable[[], nn.Module] | nn.Module,
                        train_images: torch.Tensor, train_labels: torch.Tensor,
                        test_images: torch.Tensor, test_labels: torch.Tensor, epochs: int, *,
                        batch_size: int = 256, lr: float | None = None,
                        weight_decay: float = 5e-4, augment: Augment | None = None,
                        device: torch.device | str | None = None, seed: int = 0,
                        num_classes: int | None = None, progress: bool = False,
                        ) -> dict[str, Any]:
    """The supervised ceiling: the same backbone + a linear head trained with cross-entropy.

    Trained from scratch on every training label with the standard recipe: SGD, momentum
    0.9, ``lr = 0.1 * batch_size / 256``, weight decay 5e-4, cosine decay, random crop +
    horizontal flip (:func:`crop_flip`).

    Args:
        encoder_factory: a function returning a fresh encoder, e.g.
            ``lambda: build_encoder("resnet18")``; or an encoder, whose architecture is
            copied with fresh weights (:func:`reinitialised`).
        train_images, train_labels, test_images, test_labels: as in :func:`fine_tune`.
        epochs, batch_size, lr, weight_decay: the optimisation (``lr=None``: the rule above).
        augment, device, seed, num_classes, progress: as in :func:`fine_tune`; ``device``
            defaults to CUDA when available.

    Returns:
        ``{"top1", "top5", "final_loss", "epochs"}``.
    """
    check_features(train_images.flatten(1), train_labels, "train")
    c = infer_num_classes(num_classes, train_labels, test_labels)
    f = _fresh_encoder(encoder_factory, seed)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    model, last = _train_classifier(
        f, train_images, train_labels, c, epochs=epochs,
        lr=lr if lr is not None else 0.1 * batch_size / 256, weight_decay=weight_decay,
        nesterov=False, batch_size=batch_size, augment=augment, device=device, seed=seed,
        progress=progress)
    return {**_test_scores(model, test_images, test_labels, device), "final_loss": last,
            "epochs": epochs}


def _knn_and_linear(train_h: torch.Tensor, train_y: torch.Tensor, val_h: torch.Tensor | None,
                    val_y: torch.Tensor | None, test_h: torch.Tensor, test_y: torch.Tensor,
                    k: int, temperature: float, probe_kwargs: dict[str, Any]) -> dict[str, Any]:
    knn = knn_accuracy(train_h, train_y, test_h, test_y, k=k, temperature=temperature)
    lin = linear_probe(train_h, train_y, val_h, val_y, test_h, test_y, **probe_kwargs)
    return {"knn_top1": knn["top1"], "knn_top5": knn["top5"], "linear_top1": lin["top1"],
            "linear_top5": lin["top5"], "linear_val_top1": lin["val_top1"],
            "weight_decay": lin["weight_decay"]}


def random_encoder_baseline(encoder: nn.Module | Callable[[], nn.Module],
                            train_images: torch.Tensor, train_labels: torch.Tensor,
                            test_images: torch.Tensor, test_labels: torch.Tensor, *,
                            val_images: torch.Tensor | None = None,
                            val_labels: torch.Tensor | None = None,
                            seed: int = 0, k: int = 200, temperature: float = 0.1,
                            batch_size: int = 512, device: torch.device | str | None = None,
                            **probe_kwargs: Any) -> dict[str, Any]:
    """kNN and linear probe on a randomly initialised encoder of the same architecture.

    Args:
        encoder: the trained encoder (only its architecture is used: see
            :func:`reinitialised`) or a factory returning a fresh one.
        train_images, train_labels, test_images, test_labels: as in :func:`fine_tune`.
        val_images, val_labels: the validation split on which the probe's weight decay is
            chosen, as for the SimCLR features (the same protocol); when ``None``,
            :func:`~simclr_lib.evaluate.linear_probe` holds out part of the training set.
        seed: the random initialisation.
        k, temperature: of :func:`~simclr_lib.evaluate.knn_accuracy`.
        batch_size, device: of :func:`~simclr_lib.evaluate.extract_features`.
        **probe_kwargs: passed to :func:`~simclr_lib.evaluate.linear_probe`.

    Returns:
        ``{"knn_top1", "knn_top5", "linear_top1", "linear_top5", "linear_val_top1",
        "weight_decay"}``: test accuracies, the probe's best validation accuracy and the
        weight decay chosen with it.
    """
    f = _fresh_encoder(encoder, seed)
    device = torch.device(device) if device is not None else module_device(f)
    f = f.to(device)  # our own fresh copy: built on the CPU, run where we are asked to
    train_h = extract_features(f, train_images, batch_size, device)
    val_h = extract_features(f, val_images, batch_size, device) if val_images is not None \
        else None
    test_h = extract_features(f, test_images, batch_size, device)
    return _knn_and_linear(train_h, train_labels, val_h, val_labels, test_h, test_labels, k,
                           temperature, probe_kwargs)


def raw_pixels_baseline(train_images: torch.Tensor, train_labels: torch.Tensor,
                        test_images: torch.Tensor, test_labels: torch.Tensor, *,
                        val_images: torch.Tensor | None = None,
                        val_labels: torch.Tensor | None = None, k: int = 200,
                        temperature: float = 0.1, **probe_kwargs: Any) -> dict[str, Any]:
    """kNN and linear probe on flattened pixels in [0, 1] (``h = x.flatten()``).

    Args and Returns as in :func:`random_encoder_baseline` (without the encoder).
    """
    def pixels(x: torch.Tensor) -> torch.Tensor:
        return images_to_float(x.cpu()).flatten(1)  # (N, C*H*W)

    val_h = pixels(val_images) if val_images is not None else None
    return _knn_and_linear(pixels(train_images), train_labels, val_h, val_labels,
                           pixels(test_images), test_labels, k, temperature, probe_kwargs)
