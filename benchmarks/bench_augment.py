"""Augmentation throughput: ``BatchedAugment`` on a batch vs ``simclr_transform`` per image.

Both produce the same kind of views (float32 in [0, 1]) from the same uint8 images. The
per-sample pipeline is what a DataLoader worker runs; the batched one is the fast path of
DESIGN.md. Times are medians over ``--repeats``; the two are measured alternately so that
a noisy, shared machine slows both alike.

Usage:
    python benchmarks/bench_augment.py [--threads 1] [--batch 256] [--size 32] [--repeats 7]
        [--strength 1.0] [--profile]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from simclr_lib.augment import BatchedAugment, simclr_transform


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def timed(fn, sync=None) -> float:
    t0 = time.perf_counter()
    fn()
    if sync is not None:
        sync()
    return time.perf_counter() - t0


def gpu_rate(size: int, batch: int, strength: float, repeats: int) -> float:
    """Views per second of BatchedAugment on CUDA, parameters drawn on the GPU."""
    x = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, device="cuda")
    aug = BatchedAugment(size, strength=strength)
    g = torch.Generator(device="cuda").manual_seed(0)
    for _ in range(3):
        aug(x, g)  # warm-up: kernels, allocator
    torch.cuda.synchronize()
    return batch / statistics.median(timed(lambda: aug(x, g), torch.cuda.synchronize)
                                     for _ in range(repeats))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--size", type=int, default=32, help="image side, input and output")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--strength", type=float, default=1.0, help="colour strength s")
    ap.add_argument("--profile", action="store_true", help="print BatchedAugment's top ops")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (args.batch, 3, args.size, args.size), dtype=torch.uint8,
                      generator=g)
    batched = BatchedAugment(args.size, strength=args.strength)
    per_sample = simclr_transform(args.size, strength=args.strength)

    def run_batched():
        batched(x, g)

    def run_per_sample():
        for img in x:  # (3, H, W) uint8, as a DataLoader worker sees them
            per_sample(img)

    run_batched()
    run_per_sample()  # warm-up
    tb, ts = [], []
    for _ in range(args.repeats):
        tb.append(timed(run_batched))
        ts.append(timed(run_per_sample))
    rate_b = args.batch / statistics.median(tb)
    rate_s = args.batch / statistics.median(ts)

    print(f"torch {torch.__version__}, {cpu_name()}, {torch.get_num_threads()} thread(s), "
          f"batch {args.batch}, {args.size}x{args.size} uint8 -> float32, "
          f"strength {args.strength}, median of {args.repeats}")
    print(f"  simclr_transform, image by image: {rate_s:10.0f} views/s")
    print(f"  BatchedAugment, one batch       : {rate_b:10.0f} views/s")
    print(f"  ratio                           : {rate_b / rate_s:10.1f}x")
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        for batch in (args.batch, 8 * args.batch):
            rate = gpu_rate(args.size, batch, args.strength, args.repeats)
            print(f"  BatchedAugment on {name}, batch {batch}: {rate:12.0f} views/s")
    else:
        print("  (no CUDA device: GPU throughput not measured)")

    if args.profile:
        from torch.profiler import profile

        with profile() as prof:
            for _ in range(args.repeats):
                run_batched()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
