"""End-to-end pre-training throughput: our fast path against the classic pipeline and lightly.

Same model, batch, data and optimizer (a profile's), images (pairs) per second over the
same number of steps after a warm-up:

  (a) fit()'s own fast path          (b) DataLoader + PIL + per-image torchvision transforms
  (c) lightly's SimCLRTransform and  (d) forward + backward + step on views augmented once
      NTXentLoss (if installed)          beforehand: the ceiling

(b) and (c) try every num_workers from 0 to the number of cores and keep the best. With
--rounds R the whole comparison runs R times in a row and each rate is the median, so that
a noisy machine slows every pipeline alike. Prints a table and appends it to
benchmarks/RESULTS.md (--no-write to skip).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simclr_lib.bench import (  # noqa: E402
    append_results,
    format_pretrain,
    pretrain_comparison,
    usable_cores,
)
from simclr_lib.config import PROFILE_NAMES, get_profile  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", choices=PROFILE_NAMES, default="cpu",
                    help="model, batch, data and optimizer (default: cpu)")
    ap.add_argument("--device", default=None, help="override the profile's device")
    ap.add_argument("--steps", type=int, default=20, help="timed steps (default: 20)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (default: 3)")
    ap.add_argument("--rounds", type=int, default=1, help="repeat and take medians")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    ap.add_argument("--workers", type=int, nargs="+", default=None,
                    help=f"worker counts for (b)/(c) (default: 0..{usable_cores()})")
    ap.add_argument("--no-lightly", action="store_true", help="skip (c)")
    ap.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    args = ap.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = get_profile(args.profile).train
    if args.device:
        cfg = dataclasses.replace(cfg, device=args.device)
    runs = [pretrain_comparison(cfg, args.steps, args.warmup, args.workers,
                                lightly=not args.no_lightly) for _ in range(args.rounds)]
    result = dict(runs[-1])
    for key in ("fast", "classic", "lightly", "raw"):
        values = [r[key] for r in runs if r[key] is not None]
        result[key] = statistics.median(values) if values else None
    for other in ("classic", "lightly", "raw"):
        result[f"fast/{other}"] = result["fast"] / result[other] if result[other] else None
    table = format_pretrain(result, cfg, args.steps)
    if args.rounds > 1:
        table += "\n  per round (a)/(b), (a)/(d): " + ", ".join(
            f"{r['fast/classic']:.2f} / {r['fast/raw']:.2f}" for r in runs)
    print(table)
    if not args.no_write:
        command = "python benchmarks/bench_pretrain.py " + " ".join(sys.argv[1:] if argv is None
                                                                   else argv)
        append_results(ROOT / "benchmarks" / "RESULTS.md",
                       f"Pre-training throughput, {args.profile} profile", command, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
