"""Command line: ``python -m simclr_lib train | eval | embed | bench``.

Every multi-word flag has two spellings, ``--batch-size`` and ``--batch_size`` (the seed
project documented one and implemented the other). Settings start from a profile
(``--profile``, else ``SIMCLR_PROFILE``, else ``gpu`` with CUDA and ``cpu`` without) and the
flags you give override it. Bad input ends with a one-line error and exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from .config import OPTIMIZERS, PRECISIONS, PROFILE_NAMES, get_profile
from .data import DATASETS, resolve_dataset
from .models import ENCODERS

DATASET_CHOICES = DATASETS
EXIT_BAD_INPUT = 2


def _flag(parser: argparse.ArgumentParser, name: str, **kwargs) -> None:
    """Add ``--multi-word`` and its alias ``--multi_word`` for one setting."""
    dashed = "--" + name.replace("_", "-")
    names = [dashed] + (["--" + name] if "_" in name else [])
    parser.add_argument(*names, dest=name, **kwargs)


# (field, type or action, help). Defaults come from the profile, so every flag defaults to
# None here, meaning "keep the profile's value".
_TRAIN_FLAGS = [
    ("dataset", dict(choices=DATASET_CHOICES), "dataset to pre-train on; shapes is built in "
     "(no download), folder is your own images in --data-dir"),
    ("data_dir", dict(metavar="DIR"), "your image folder (DIR/train/<class>/*.jpg, "
     "DIR/<class>/*.jpg or a flat folder of images: selects --dataset folder), or the "
     "download cache of cifar10/cifar100/stl10"),
    ("split", dict(), "split to pre-train on (stl10: unlabeled, train, train+unlabeled)"),
    ("image_size", dict(type=int, metavar="N"), "resize images to N x N (default: native)"),
    ("train_size", dict(type=int, metavar="N"), "use only N training images"),
    ("encoder", dict(choices=ENCODERS), "the encoder f"),
    ("encoder_width", dict(type=int, metavar="N"), "channels of small_cnn's first stage"),
    ("epochs", dict(type=int, metavar="N"), "passes over the training set"),
    ("batch_size", dict(type=int, metavar="N"), "global batch of N images (2N views); "
     "split across processes under torchrun"),
    ("optimizer", dict(choices=OPTIMIZERS), "lars (the paper's), sgd or adamw"),
    ("lr", dict(type=float, metavar="X"), "base learning rate; the rule of --lr-scaling "
     "turns it into the used one"),
    ("lr_scaling", dict(choices=("linear", "sqrt", "none")), "linear: lr*batch/256 "
     "(paper); sqrt: lr*sqrt(batch) (small batches); none"),
    ("weight_decay", dict(type=float, metavar="X"), "weight decay (not on biases/BatchNorm)"),
    ("warmup_epochs", dict(type=float, metavar="N"), "linear warm-up epochs before cosine"),
    ("temperature", dict(type=float, metavar="X"), "NT-Xent temperature tau (> 0)"),
    ("strength", dict(type=float, metavar="S"), "colour-jitter strength (0.5 CIFAR, 1 ImageNet)"),
    ("grayscale_p", dict(type=float, metavar="P"), "probability of a grayscale view"),
    ("min_scale", dict(type=float, metavar="X"), "smallest random-crop area fraction"),
    ("seed", dict(type=int, metavar="N"), "random seed (init, batch order, augmentations)"),
    ("device", dict(metavar="auto|cpu|cuda"), "where to train"),
    ("precision", dict(choices=PRECISIONS), "auto: bf16 autocast on GPUs that run it natively "
     "(A100, L4, RTX 30xx and newer), fp16 with loss scaling on older ones (T4); fp32 on CPU"),
    ("num_workers", dict(type=int, metavar="N"), "DataLoader workers (streaming path only)"),
    ("knn_every", dict(type=int, metavar="K"), "kNN accuracy on a validation split every K "
     "epochs (0: never)"),
    ("max_steps", dict(type=int, metavar="N"), "stop after N optimisation steps (smoke test)"),
    ("out", dict(metavar="DIR"), "output directory for config.json, history.jsonl, last.pt, "
     "best.pt"),
]


def _train_parser(sub) -> None:
    p = sub.add_parser("train", help="pre-train SimCLR",
                       description="Pre-train SimCLR. Defaults come from the profile; flags "
                       "override them. Example: python -m simclr_lib train --profile cpu")
    _flag(p, "profile", choices=PROFILE_NAMES,
          help="start from this profile (default: SIMCLR_PROFILE, else gpu/cpu by hardware)")
    for name, kwargs, text in _TRAIN_FLAGS:
        _flag(p, name, help=text, **kwargs)
    _flag(p, "resume", metavar="DIR", help="continue the run in DIR exactly where it stopped")
    _flag(p, "compile", action="store_true", default=None, help="torch.compile the model")
    _flag(p, "sync_bn", action=argparse.BooleanOptionalAction, default=None,
          help="SyncBatchNorm across GPUs under torchrun, SimCLR's global BN (default: on "
          "whenever torchrun runs on CUDA GPUs, because per-GPU statistics leak which views "
          "form a pair; --no-sync-bn turns it off)")
    _flag(p, "streaming", action="store_true",
          help="stream images through DataLoader workers instead of holding them in memory")
    _flag(p, "stem", choices=("small", "imagenet"),
          help="ResNet stem: small (3x3 stride-1 conv, no max-pool: the paper's choice for "
          "CIFAR-10, Appendix B.9; the default) or imagenet (7x7 stride-2 conv and max-pool, "
          "for images of about 96 px and more)")
    _flag(p, "overwrite", action="store_true", help="allow --out to hold an earlier run")
    _flag(p, "no_progress", action="store_true", help="no progress bar")


def _eval_parser(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint (kNN, linear probe, baselines)",
                       description="Evaluate the frozen encoder of a checkpoint and write "
                       "metrics.json beside it.")
    _flag(p, "checkpoint", required=True, metavar="PATH", help="RUN/last.pt or RUN/best.pt")
    _flag(p, "dataset", choices=DATASET_CHOICES, help="default: the checkpoint's")
    _flag(p, "data_dir", metavar="DIR", help="default: the checkpoint's; a folder of images "
          "selects --dataset folder")
    _flag(p, "image_size", type=int, metavar="N", help="default: the checkpoint's")
    _flag(p, "device", default="auto", metavar="auto|cpu|cuda", help="where to evaluate")
    _flag(p, "baselines", action="store_true",
          help="also random encoder, raw pixels and supervised training")
    _flag(p, "label_efficiency", action="store_true",
          help="probe accuracy with 1, 10, 100, all labels per class")
    _flag(p, "tsne", action="store_true", help="write tsne.png (h and z)")
    _flag(p, "profile", choices=PROFILE_NAMES, help="evaluation sizes (default: as train)")
    _flag(p, "out", metavar="FILE", help="metrics file (default: metrics.json beside the "
          "checkpoint); figures are written beside it")
    _flag(p, "overwrite", action="store_true", help="replace an earlier metrics file")
    _flag(p, "no_progress", action="store_true", help="no progress bar")


def _embed_parser(sub) -> None:
    p = sub.add_parser(
        "embed", help="features h of every image in a folder -> .csv or .npz",
        description="Compute h = f(x) with a trained encoder for every readable image in "
        "a folder (decoded and resized exactly as in evaluation) and write one row per "
        "image: its path relative to --data-dir, its class where the layout has one, and "
        "h. Unreadable files are skipped and named. Read .csv with the csv module, .npz "
        "with numpy.load, either with simclr_lib.embed.load_embeddings. Example: python -m "
        "simclr_lib embed --checkpoint runs/mine --data-dir my_images --out embeddings.csv")
    _flag(p, "checkpoint", required=True, metavar="PATH",
          help="RUN (its last.pt), RUN/last.pt or RUN/best.pt")
    _flag(p, "data_dir", required=True, metavar="DIR",
          help="image folder: flat, DIR/<class>/*, or DIR/{train,val,test}/<class>/*")
    _flag(p, "out", required=True, metavar="FILE", help="embeddings.csv or embeddings.npz")
    _flag(p, "split", choices=("train", "val", "test"),
          help="only this split of a train/ val/ test/ folder (default: all images)")
    _flag(p, "image_size", type=int, metavar="N",
          help="default: the size the encoder was trained at")
    _flag(p, "batch_size", type=int, default=256, metavar="N", help="images per forward pass")
    _flag(p, "num_workers", type=int, default=0, metavar="N",
          help="processes decoding files (0: the main one)")
    _flag(p, "device", default="auto", metavar="auto|cpu|cuda", help="where to run f")
    _flag(p, "overwrite", action="store_true", help="replace an existing --out file")
    _flag(p, "no_progress", action="store_true", help="no progress bar")


def _bench_parser(sub) -> None:
    p = sub.add_parser(
        "bench", help="training throughput against the classic pipeline; NT-Xent memory",
        description="A quick version of every benchmark (benchmarks/ has the full ones): "
        "images/s of (a) fit()'s fast path, (b) a DataLoader with per-image torchvision "
        "transforms at its best num_workers, (c) lightly's pipeline (if installed) and (d) "
        "forward+backward on pre-augmented views, on the same model, batch and data; then "
        "NT-Xent forward+backward time and peak memory against a naive implementation.")
    _flag(p, "profile", choices=PROFILE_NAMES,
          help="model, batch, data and optimizer of this profile (default: as train)")
    _flag(p, "encoder", choices=ENCODERS, help="override the profile's encoder")
    _flag(p, "batch_size", type=int, metavar="N", help="override the profile's batch size")
    _flag(p, "device", metavar="auto|cpu|cuda", help="where to run (default: the profile's)")
    _flag(p, "precision", choices=PRECISIONS, help="autocast dtype (default: the profile's)")
    _flag(p, "compile", action="store_true", help="torch.compile the model")
    _flag(p, "steps", type=int, default=10, metavar="N", help="timed steps per measurement")
    _flag(p, "warmup", type=int, default=2, metavar="N", help="untimed steps first")
    _flag(p, "workers", type=int, nargs="+", metavar="N",
          help="DataLoader worker counts to try for (b) and (c), keeping the best (default: all "
          "cores only; benchmarks/bench_pretrain.py tries 0 to all)")
    _flag(p, "ntxent_sizes", type=int, nargs="+", default=[256, 1024], metavar="N",
          help="numbers of pairs N for the NT-Xent comparison")
    _flag(p, "no_lightly", action="store_true", help="skip (c) even if lightly is installed")
    _flag(p, "no_memory", action="store_true", help="skip NT-Xent peak memory")


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m simclr_lib`` parser with its ``train``, ``eval``, ``bench`` commands."""
    parser = argparse.ArgumentParser(
        prog="python -m simclr_lib",
        description="SimCLR: pre-train, evaluate, embed your images and benchmark "
        "(simclr-course).")
    sub = parser.add_subparsers(dest="command", required=True,
                                metavar="{train,eval,embed,bench}")
    _train_parser(sub)
    _eval_parser(sub)
    _embed_parser(sub)
    _bench_parser(sub)
    return parser


def config_from_args(args: argparse.Namespace):
    """The profile's :class:`TrainConfig` with the flags the user gave applied."""
    cfg = get_profile(args.profile).train
    changes = {name: getattr(args, name) for name, _, _ in _TRAIN_FLAGS
               if getattr(args, name) is not None}
    dataset, note = resolve_dataset(args.dataset, args.data_dir, cfg.dataset)
    if note:
        print(note, file=sys.stderr)
    if dataset == "folder" and args.data_dir is None:
        raise ValueError("--dataset folder reads your images from --data-dir DIR; pass it "
                         "(DIR/train/<class>/*.jpg, DIR/<class>/*.jpg or DIR/*.jpg)")
    if dataset != cfg.dataset:
        changes["dataset"] = dataset
    if args.compile:
        changes["compile"] = True
    if args.sync_bn is not None:
        changes["sync_bn"] = args.sync_bn
    if args.streaming:
        changes["in_memory"] = False
    if args.stem is not None:
        changes["small_images"] = args.stem == "small"
    if args.no_progress:
        changes["progress"] = False
    return dataclasses.replace(cfg, **changes)


def _train(args: argparse.Namespace) -> int:
    from .train import fit

    if args.resume is not None:
        fit(None, resume=args.resume)  # the run's own config.json is used
        return 0
    cfg = config_from_args(args)
    fit(cfg, overwrite=args.overwrite)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m simclr_lib`` and of the ``simclr`` script."""
    args = build_parser().parse_args(argv)
    from .checkpoint import CheckpointError
    from .data import DatasetDownloadError
    from .train import NonFiniteLossError, TrainingInterrupted

    try:
        if args.command == "train":
            return _train(args)
        if args.command == "eval":
            from .report import run_eval

            return run_eval(args)
        if args.command == "embed":
            from .embed import run_embed

            return run_embed(args)
        from .bench import run_bench

        return run_bench(args)
    except (ValueError, FileNotFoundError, FileExistsError, CheckpointError,
            DatasetDownloadError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except NonFiniteLossError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except TrainingInterrupted as e:
        print(str(e), file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
