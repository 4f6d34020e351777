"""Evaluate a checkpoint end to end: ``python -m simclr_lib eval`` and ``evaluate_checkpoint``.

The protocol, with the mistakes peers made designed out:

* features ``h`` of the frozen encoder, computed once, deterministically (no augmentation);
* hyper-parameters (the probe's weight decay) chosen on a validation split: the dataset's
  own (``shapes``, folders with ``val/``) or one carved from the training split, never the
  test split, which is scored once;
* every test image counts (no ``drop_last`` anywhere in evaluation);
* ``metrics.json`` records what was evaluated (dataset, folder, image size, split sizes, the
  kNN's k), a mismatch with what the run trained on is said, and an earlier result is never
  replaced without ``overwrite=True`` (``--overwrite``).

Introduced in notebooks/05_evaluation.ipynb.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

from .augment import BatchedAugment
from .checkpoint import load_checkpoint, run_dir_of
from .config import TrainConfig, config_from_dict, get_profile
from .data import (
    GENERATED,
    SPLITS,
    image_size_of,
    load_dataset,
    resolve_dataset,
    train_val_split,
)
from .device import resolve_device
from .diagnostics import alignment, effective_rank, positive_pair_retrieval, uniformity
from .evaluate import (
    capped_knn_k,
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


KNN_K = 200  # Wu et al. 2018; capped for small banks by evaluate.capped_knn_k


def _same_folder(a: str, b: str) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def input_mismatch(cfg: TrainConfig, dataset: str, data_dir: str, image_size: int) -> list[str]:
    """How the evaluation's inputs differ from what the run trained on (empty: they agree).

    Compares the dataset, the image folder (for ``folder``) and the image size with the
    run's config (the ``config.json`` saved in the checkpoint).
    """
    trained = image_size_of(cfg)
    out = []
    if dataset != cfg.dataset:
        out.append(f"dataset {dataset} (trained on {cfg.dataset})")
    elif dataset == "folder" and not _same_folder(data_dir, cfg.data_dir):
        out.append(f"image folder {data_dir} (trained on {cfg.data_dir})")
    if image_size != trained:
        out.append(f"image size {image_size} px (trained at {trained} px)")
    return out


def metrics_paths(checkpoint: str | Path, out: str | Path | None, tsne: bool,
                  label_efficiency_curve: bool) -> dict[str, Path]:
    """Where an evaluation writes: ``metrics`` (default ``RUN/metrics.json``) and its
    figures (``tsne.png``, ``label_efficiency.png`` beside it; ``<stem>_tsne.png`` ... when
    ``out`` names another file)."""
    metrics = Path(out) if out is not None else run_dir_of(checkpoint) / "metrics.json"
    prefix = "" if metrics.name == "metrics.json" else f"{metrics.stem}_"
    paths = {"metrics": metrics}
    if tsne:
        paths["tsne"] = metrics.with_name(f"{prefix}tsne.png")
    if label_efficiency_curve:
        paths["label_efficiency"] = metrics.with_name(f"{prefix}label_efficiency.png")
    return paths


def evaluate_checkpoint(checkpoint: str | Path, *, dataset: str | None = None,
                        data_dir: str | None = None, image_size: int | None = None,
                        device: str = "auto", baselines: bool = False,
                        label_efficiency_curve: bool = False, tsne: bool = False,
                        profile: str | None = None, progress: bool = True,
                        out: str | Path | None = None,
                        overwrite: bool = False) -> dict[str, Any]:
    """Score a checkpoint's frozen encoder and write ``metrics.json`` (and PNGs) beside it.

    Args:
        checkpoint: ``RUN/last.pt`` or ``RUN/best.pt`` (or the run directory).
        dataset, data_dir, image_size: default to those of the checkpoint's run. When they
            differ from what the run trained on, a warning line says so and
            ``metrics["mismatch"]`` lists the differences.
        device: ``auto``, ``cpu`` or ``cuda``.
        baselines: also score a random encoder, raw pixels and supervised training of the
            same backbone, with the same protocol.
        label_efficiency_curve: probe accuracy with 1, 10, 100 and all labels per class.
        tsne: write ``tsne.png`` (t-SNE of ``h`` and ``z`` of test images).
        profile: sizes of the slow parts (t-SNE points, repeats, baseline epochs).
        progress: progress bars.
        out: the metrics file (default ``RUN/metrics.json``); figures go beside it.
        overwrite: replace an earlier result in ``out`` (and its figures).

    Returns:
        The metrics written to ``out`` (accuracies as fractions in 0..1), with the
        evaluation's inputs: ``dataset``, ``data_dir``, ``image_size``, ``train_size``,
        ``sizes`` of the splits, ``val_from``, ``knn_k``, and ``trained_on``.

    Raises:
        FileExistsError: ``out`` (or a figure) exists and ``overwrite`` is False; checked
            before anything is computed.
    """
    t0 = time.perf_counter()
    paths = metrics_paths(checkpoint, out, tsne, label_efficiency_curve)
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{existing[0]} holds an earlier evaluation; pass --overwrite (overwrite=True) "
            f"to replace it, or --out FILE (out=) to keep both")
    ckpt = load_checkpoint(checkpoint)
    cfg = config_from_dict(ckpt["config"])
    prof = get_profile(profile)
    dev = resolve_device(device)
    model = build_model(cfg)
    model.load_state_dict(ckpt["model"])
    model = model.to(dev).eval()
    dataset, note = resolve_dataset(dataset, data_dir, cfg.dataset)  # --data-dir of images
    if note:
        print(note, file=sys.stderr, flush=True)
    data_dir = str(data_dir or cfg.data_dir)
    image_size = image_size or image_size_of(cfg)  # default: the size f was trained at
    train_size = cfg.train_size if dataset == cfg.dataset else None  # as in pre-training
    mismatch = input_mismatch(cfg, dataset, data_dir, image_size)
    if mismatch:
        print(f"warning: evaluating on {', '.join(mismatch)}, not on what "
              f"{run_dir_of(checkpoint)} trained on (its config.json)", file=sys.stderr,
              flush=True)
    splits = load_eval_splits(dataset, data_dir, image_size, train_size, progress=progress)
    train, val, test = splits["train"], splits["val"], splits["test"]
    bs = prof.eval_batch_size

    feats = {name: extract_features(model.encoder, ds.images, bs, dev, head=model.head,
                                    progress=progress) for name, ds in splits.items()}
    (train_h, _), (val_h, _), (test_h, test_z) = feats["train"], feats["val"], feats["test"]
    k = capped_knn_k(train.labels, KNN_K)
    knn = knn_accuracy(train_h, train.labels, test_h, test.labels, k=k)
    probe = linear_probe(train_h, train.labels, val_h, val.labels, test_h, test.labels,
                         device=dev)
    logreg = logistic_regression(train_h, train.labels, test_h, test.labels)
    own_val = "val" in SPLITS[dataset] and (dataset != "folder" or
                                            (Path(data_dir).expanduser() / "val").is_dir())
    metrics: dict[str, Any] = {
        "checkpoint": str(checkpoint), "epoch": ckpt.get("epoch"), "dataset": dataset,
        "data_dir": None if dataset in GENERATED else data_dir,
        "image_size": int(test.images.shape[-1]), "train_size": train_size,
        "encoder": cfg.encoder,
        "sizes": {name: len(ds) for name, ds in splits.items()},
        "val_from": "own val split" if own_val else "10% of train (stratified, seed 0)",
        "trained_on": {"dataset": cfg.dataset, "data_dir": cfg.data_dir,
                       "image_size": image_size_of(cfg)},
        "mismatch": mismatch,
        "knn_top1": knn["top1"], "knn_top5": knn["top5"], "knn_k": k,
        "knn_k_note": (f"k capped from {KNN_K} to {k}: half the median class size of the "
                       f"{len(train)}-image bank" if k < KNN_K else
                       f"k = {KNN_K} (Wu et al. 2018)"),
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
        plot_label_efficiency(curve).savefig(paths["label_efficiency"], dpi=120,
                                             bbox_inches="tight")
    if tsne:
        from .plots import plot_tsne

        fig = plot_tsne(test_h, test.labels, z=test_z, classes=test.classes,
                        max_points=prof.tsne_points)
        fig.savefig(paths["tsne"], dpi=120, bbox_inches="tight")
    metrics["eval_time_s"] = time.perf_counter() - t0
    paths["metrics"].parent.mkdir(parents=True, exist_ok=True)
    paths["metrics"].write_text(json.dumps(metrics, indent=2, default=float) + "\n")
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
             f"val {s['val']}) at {m['image_size']} px, encoder {m['encoder']}, "
             f"kNN k = {m['knn_k']}",
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
                            profile=args.profile, progress=not args.no_progress,
                            out=args.out, overwrite=args.overwrite)
    print(format_table(m))
    paths = metrics_paths(args.checkpoint, args.out, args.tsne, args.label_efficiency)
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0
