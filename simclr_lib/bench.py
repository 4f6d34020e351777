"""``python -m simclr_lib bench``: how close the fast path gets to the model's own speed.

Three numbers, measured side by side in one run on the same model and batch:

* ``augment``: views per second of :class:`~simclr_lib.augment.BatchedAugment` alone;
* ``raw``: images per second of forward + backward + optimizer step on views that were
  augmented once beforehand (the ceiling: no data work at all);
* ``fast path``: images per second of the real training step (index a batch of the uint8
  dataset on the device, draw two views, forward, backward, step).

The ratio ``fast path / raw`` says how much the data pipeline costs.
"""

from __future__ import annotations

import argparse
import time

import torch

from .augment import BatchedAugment
from .config import TrainConfig
from .device import autocast_dtype, resolve_device
from .models import build_model
from .optim import build_optimizer
from .train import train_step


def _timed(fn, steps: int, device: torch.device, warmup: int = 3) -> float:
    """Seconds per call of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - t0) / steps


def throughput(encoder: str = "resnet18", batch_size: int = 512, image_size: int = 32,
               steps: int = 30, device: str = "auto", precision: str = "auto",
               compile: bool = False, dataset_size: int = 50_000) -> dict:
    """Measure ``augment``, ``raw`` and ``fast path`` throughput (see the module docstring).

    Returns:
        A dict with ``augment_views_per_s``, ``raw_images_per_s``,
        ``fast_images_per_s``, ``ratio`` and the settings used.
    """
    dev = resolve_device(device)
    amp_dtype = autocast_dtype(precision, dev)
    cfg = TrainConfig(encoder=encoder, batch_size=batch_size, image_size=image_size,
                      optimizer="lars", lr=1.0)
    model = build_model(cfg).to(dev)
    channels_last = dev.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    net = torch.compile(model) if compile else model
    opt = build_optimizer(model, cfg)
    scaler = torch.amp.GradScaler(dev.type, enabled=amp_dtype == torch.float16)
    gen = torch.Generator(device=dev).manual_seed(0)
    images = torch.randint(0, 256, (dataset_size, 3, image_size, image_size),
                           dtype=torch.uint8, device=dev, generator=gen)
    augment = BatchedAugment(size=image_size, strength=0.5).to(dev)

    def fmt(x):
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x

    fixed = images[:batch_size]
    x_i, x_j = fmt(augment(fixed, generator=gen)), fmt(augment(fixed, generator=gen))

    def raw_step():
        train_step(net, x_i, x_j, opt, 0.5, amp_dtype=amp_dtype, scaler=scaler)

    def fast_step():
        idx = torch.randint(0, dataset_size, (batch_size,), device=dev, generator=gen)
        x = images[idx]
        v_i, v_j = fmt(augment(x, generator=gen)), fmt(augment(x, generator=gen))
        train_step(net, v_i, v_j, opt, 0.5, amp_dtype=amp_dtype, scaler=scaler)

    def augment_only():
        idx = torch.randint(0, dataset_size, (batch_size,), device=dev, generator=gen)
        augment(images[idx], generator=gen)

    t_aug = _timed(augment_only, steps, dev)
    t_raw = _timed(raw_step, steps, dev)
    t_fast = _timed(fast_step, steps, dev)
    return {
        "device": str(dev) if dev.type != "cuda" else torch.cuda.get_device_name(dev),
        "encoder": encoder, "batch_size": batch_size, "image_size": image_size,
        "precision": str(amp_dtype or "fp32"), "channels_last": channels_last,
        "compile": compile, "steps": steps,
        "augment_views_per_s": batch_size / t_aug,
        "raw_images_per_s": batch_size / t_raw,
        "fast_images_per_s": batch_size / t_fast,
        "ratio": t_raw / t_fast,
    }


def run_bench(args: argparse.Namespace) -> int:
    """CLI entry: print the three throughputs and the ratio."""
    r = throughput(args.encoder, args.batch_size, args.image_size, args.steps, args.device,
                   args.precision, args.compile)
    print(f"{r['encoder']}, batch {r['batch_size']}, {r['image_size']}px, {r['device']}, "
          f"{r['precision']}, channels_last={r['channels_last']}, compile={r['compile']}")
    print(f"  augment only        {r['augment_views_per_s']:>10.0f} views/s")
    print(f"  raw fwd+bwd+step    {r['raw_images_per_s']:>10.0f} images/s")
    print(f"  fast path (train)   {r['fast_images_per_s']:>10.0f} images/s")
    print(f"  fast / raw          {r['ratio']:>10.1%}")
    return 0
