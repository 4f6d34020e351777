"""Evaluate a checkpoint end to end: ``python -m simclr_lib eval`` and ``evaluate_checkpoint``.

The protocol, with the mistakes peers made designed out:

* features ``h`` of the frozen encoder, computed once, deterministically (no augmentation);
* hyper-parameters (the probe's weight decay) chosen on a validation split: the dataset's
  own (``shapes``, folders with ``val/``) or one carved from the training split, never the
  test split, which is scored once;
* every test image counts (no ``drop_last`` anywhere in evaluation).

Introduced in notebooks/05_evaluation.ipynb.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from .augment import BatchedAugment
from .checkpoint import load_checkpoint, run_dir_of
from .config import config_from_dict, get_profile
from .data import SPLITS, load_dataset, train_val_split
from .device import resolve_device
from .diagnostics import alignment, effective_rank, positive_pair_retrieval, uniformity
from .evaluate import (
    extract_features,
    knn_accuracy,
    label_efficiency,
    linear_probe,
    logistic_regression,
)
from .models import build_model, encoder_from_config


def load_eval_splits(dataset: str, data_dir: str, image_size: int | None,
                     train_size: int | None = None, progress: bool = True) -> dict:
    """Labelled ``train``, ``val`` and ``test`` splits for evaluation.

    ``val`` is the dataset's own validation split where it has one, else 10% carved from
    ``train`` (stratified, seed 0). ``test`` is only ever used for the final scores.
    """
    def load(split, size=None):
        return load_dataset(dataset, split, root=data_dir, image_size=image_size, size=size,
                            progress=progress)

    labelled_train = "train"
    train = load(labelled_train, train_size)
    if "val" in SPLITS[dataset] and (dataset != "folder" or (Path(data_dir) / "val").is_dir()):
        val = load("val")
    else:
        train, val = train_val_split(train, 0.1, seed=0)
    if dataset == "folder" and not (Path(data_dir) / "test").is_dir():
        raise ValueError(f"evaluation needs labelled test images in {data_dir}/test/<class>/; "
                         f"add them (ImageFolder layout) to measure accuracy")
    test = load("test")
    for name, split in (("train", train), ("test", test)):
        if not split.is_labelled:
            raise ValueError(f"the {name} split of {dataset} has unlabelled images; "
                             f"evaluation needs labels (ImageFolder layout: <split>/<class>/*)")
    return {"train": train, "val": val, "test": test}


def _diagnostics(model, test, cfg, device, batch_size: int) -> dict:
    """Alignment/uniformity of z on two views of test images; effective rank of h."""
    size = test.images.shape[-1]
    augment = BatchedAugment(**cfg.augment_kwargs(size)).to(device)
    g = torch.Generator(device=device).manual_seed(0)
    x = test.images[:2000].to(device)
    f, head = model.encoder, model.head
    z1 = extract_features(f, augment(x, generator=g), batch_size, device, head=head)[1]
    z2 = extract_features(f, augment(x, generator=g), batch_size, device, head=head)[1]
    h = extract_features(f, x, batch_size, device)
    return {"alignment_z": float(alignment(z1, z2)), "uniformity_z": float(uniformity(z1)),
            "effective_rank_h": effective_rank(h), "feature_dim_h": h.shape[1],
            "positive_pair_retrieval_z": positive_pair_retrieval(z1, z2)}


def evaluate_checkpoint(checkpoint: str | Path, *, dataset: str | None = None,
                        data_dir: str | None = None, image_size: int | None = None,
                        device: str = "auto", baselines: bool = False,
                        label_efficiency_curve: bool = False, tsne: bool = False,
                        profile: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Score a checkpoint's frozen encoder and write ``metrics.json`` (and PNGs) beside it.

    Args:
        checkpoint: ``RUN/last.pt`` or ``RUN/best.pt`` (or the run directory).
        dataset, data_dir, image_size: default to those of the checkpoint's run.
        device: ``auto``, ``cpu`` or ``cuda``.
        baselines: also score a random encoder, raw pixels and supervised training of the
            same backbone, with the same protocol.
        label_efficiency_curve: probe accuracy with 1, 10, 100 and all labels per class.
        tsne: write ``tsne.png`` (t-SNE of ``h`` and ``z`` of test images).
        profile: sizes of the slow parts (t-SNE points, repeats, baseline epochs).

    Returns:
        The metrics written to ``metrics.json`` (accuracies as fractions in 0..1).
    """
    t0 = time.perf_counter()
    ckpt = load_checkpoint(checkpoint)
    cfg = config_from_dict(ckpt["config"])
    prof = get_profile(profile)
    dev = resolve_device(device)
    model = build_model(cfg)
    model.load_state_dict(ckpt["model"])
    model = model.to(dev).eval()
    dataset = dataset or cfg.dataset
    data_dir = data_dir or cfg.data_dir
    image_size = image_size or cfg.image_size
    train_size = cfg.train_size if dataset == cfg.dataset else None  # as in pre-training
    splits = load_eval_splits(dataset, data_dir, image_size, train_size, progress=progress)
    train, val, test = splits["train"], splits["val"], splits["test"]
    bs = prof.eval_batch_size

    feats = {name: extract_features(model.encoder, ds.images, bs, dev, head=model.head,
                                    progress=progress) for name, ds in splits.items()}
    (train_h, _), (val_h, _), (test_h, test_z) = feats["train"], feats["val"], feats["test"]
    k = min(200, len(train))
    knn = knn_accuracy(train_h, train.labels, test_h, test.labels, k=k)
    probe = linear_probe(train_h, train.labels, val_h, val.labels, test_h, test.labels,
                         device=dev)
    logreg = logistic_regression(train_h, train.labels, test_h, test.labels)
    run_dir = run_dir_of(checkpoint)
    metrics: dict[str, Any] = {
        "checkpoint": str(checkpoint), "epoch": ckpt.get("epoch"), "dataset": dataset,
        "image_size": int(test.images.shape[-1]), "encoder": cfg.encoder,
        "sizes": {name: len(ds) for name, ds in splits.items()},
        "knn_top1": knn["top1"], "knn_top5": knn["top5"], "knn_k": k,
        "linear_top1": probe["top1"], "linear_top5": probe["top5"],
        "linear_val_top1": probe["val_top1"], "linear_weight_decay": probe["weight_decay"],
        "logreg_top1": logreg["top1"],
        "diagnostics": _diagnostics(model, test, cfg, dev, bs),
    }
    if baselines:
        from .baselines import random_encoder_baseline, raw_pixels_baseline, supervised_baseline

        factory = lambda: encoder_from_config(cfg)  # noqa: E731
        metrics["baselines"] = {
            "random_init": random_encoder_baseline(factory, train.images, train.labels,
                                                   test.images, test.labels,
                                                   val_images=val.images,
                                                   val_labels=val.labels, k=k,
                                                   batch_size=bs, device=dev),
            "raw_pixels": raw_pixels_baseline(train.images, train.labels, test.images,
                                              test.labels, val_images=val.images,
                                              val_labels=val.labels, k=k),
            "supervised": supervised_baseline(factory, train.images, train.labels,
                                              test.images, test.labels, prof.baseline_epochs,
                                              batch_size=prof.baseline_batch_size, device=dev,
                                              progress=progress),
        }
    if label_efficiency_curve:
        from .plots import plot_label_efficiency

        curve = label_efficiency(train_h, train.labels, test_h, test.labels,
                                 repeats=prof.label_efficiency_repeats, device=dev)
        metrics["label_efficiency"] = curve
        plot_label_efficiency(curve).savefig(run_dir / "label_efficiency.png", dpi=120,
                                             bbox_inches="tight")
    if tsne:
        from .plots import plot_tsne

        fig = plot_tsne(test_h, test.labels, z=test_z, classes=test.classes,
                        max_points=prof.tsne_points)
        fig.savefig(run_dir / "tsne.png", dpi=120, bbox_inches="tight")
    metrics["eval_time_s"] = time.perf_counter() - t0
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n")
    return metrics


def format_table(m: dict[str, Any]) -> str:
    """A plain-text table of the headline numbers."""
    def pct(x):
        return "   -" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:6.1%}"

    rows = [("SimCLR (this checkpoint)", m["knn_top1"], m["linear_top1"])]
    for name, label in (("random_init", "random encoder"), ("raw_pixels", "raw pixels")):
        if name in m.get("baselines", {}):
            b = m["baselines"][name]
            rows.append((label, b["knn_top1"], b["linear_top1"]))
    if "supervised" in m.get("baselines", {}):
        rows.append(("supervised (same backbone)", None, m["baselines"]["supervised"]["top1"]))
    s = m["sizes"]
    lines = [f"{m['dataset']} test split ({s['test']} images; train {s['train']}, "
             f"val {s['val']}), encoder {m['encoder']}",
             f"{'':28s} {'kNN':>7s} {'linear':>7s}"]
    lines += [f"{name:28s} {pct(knn):>7s} {pct(lin):>7s}" for name, knn, lin in rows]
    for r in m.get("label_efficiency", []):
        per = r["labels_per_class"] or "all"
        lines.append(f"  {per!s:>5} labels/class: {r['mean']:.1%} ± {r['std']:.1%}")
    return "\n".join(lines)


def run_eval(args: argparse.Namespace) -> int:
    """CLI entry of ``python -m simclr_lib eval``."""
    m = evaluate_checkpoint(args.checkpoint, dataset=args.dataset, data_dir=args.data_dir,
                            image_size=args.image_size, device=args.device,
                            baselines=args.baselines,
                            label_efficiency_curve=args.label_efficiency, tsne=args.tsne,
                            profile=args.profile, progress=not args.no_progress)
    print(format_table(m))
    run_dir = run_dir_of(args.checkpoint)
    print(f"wrote {run_dir / 'metrics.json'}" + (f" and {run_dir / 'tsne.png'}"
                                                  if args.tsne else ""))
    return 0
