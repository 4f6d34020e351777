"""``python -m simclr_lib bench``: how fast pre-training runs, side by side with the alternatives.

Everything is measured in one process, on the same model, batch, data and optimizer, as
images (pairs of views) per second over the same number of steps after a warm-up:

* **(a) fast path**: :func:`~simclr_lib.train.fit` itself (its own loop: batches indexed
  from a uint8 tensor on the device, two views by ``BatchedAugment``, the step);
* **(b) classic**: what most SimCLR code does (SimCLR reference re-implementations,
  sthalles/SimCLR, the UvA tutorial): a ``DataLoader`` over PIL images with per-image
  ``torchvision.transforms`` in worker processes, at its best ``num_workers``;
* **(c) lightly**: lightly's ``SimCLRTransform`` and ``NTXentLoss`` in the same
  ``DataLoader`` set-up (optional: ``pip install "simclr-course[bench]"``);
* **(d) raw**: forward + backward + optimizer step on views augmented once beforehand,
  the ceiling (no data work at all).

and, separately, NT-Xent's forward + backward time and peak memory against the
straightforward implementation (:func:`naive_nt_xent`).

Introduced in notebooks/04_training.ipynb.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F

from .augment import BatchedAugment
from .config import TrainConfig, get_profile
from .data import load_dataset
from .device import autocast, autocast_dtype, resolve_device
from .loss import nt_xent
from .models import build_model
from .optim import build_optimizer, warmup_cosine
from .train import fit, train_step


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def images_per_second(step: Callable[[], Any], steps: int, warmup: int, batch_size: int,
          device: torch.device) -> float:
    """Images per second of ``step`` (one batch of ``batch_size`` per call) after ``warmup``
    untimed calls, waiting for the GPU at both ends of the timed stretch."""
    for _ in range(warmup):
        step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return steps * batch_size / (time.perf_counter() - t0)


# -------------------------------------------------------------------- (a) and (d)

def fast_path_rate(cfg: TrainConfig, steps: int) -> float:
    """(a): images/s of :func:`fit` itself over ``steps`` steps, after as many of warm-up.

    ``fit`` trains two epochs of ``steps`` steps on ``steps * batch_size`` images; the
    second epoch's ``images_per_s`` (timed by ``fit`` around its own loop) is returned.
    """
    cfg = dataclasses.replace(cfg, epochs=2, train_size=steps * cfg.batch_size, knn_every=0,
                              progress=False, max_steps=None, warmup_epochs=0)
    with tempfile.TemporaryDirectory() as out, contextlib.redirect_stdout(io.StringIO()):
        history = fit(dataclasses.replace(cfg, out=out)).history
    return history[-1]["images_per_s"]


def _model_and_optimizer(cfg: TrainConfig, device: torch.device, steps: int):
    torch.manual_seed(cfg.seed)
    model = build_model(cfg).to(device)
    channels_last = cfg.channels_last and device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, cfg)
    scheduler = warmup_cosine(optimizer, 0, 10 * steps)
    net = torch.compile(model) if cfg.compile else model
    return model, net, optimizer, scheduler, channels_last


def raw_rate(cfg: TrainConfig, images: torch.Tensor, steps: int, warmup: int) -> float:
    """(d): images/s of forward + backward + step on views augmented once beforehand."""
    device = resolve_device(cfg.device)
    _, net, opt, sched, channels_last = _model_and_optimizer(cfg, device, steps + warmup)
    amp = autocast_dtype(cfg.precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    augment = BatchedAugment(**cfg.augment_kwargs(images.shape[-1])).to(device)
    x = images[:cfg.batch_size].to(device)
    g = torch.Generator(device=device).manual_seed(0)
    x_i, x_j = augment(x, generator=g), augment(x, generator=g)
    if channels_last:
        x_i = x_i.contiguous(memory_format=torch.channels_last)
        x_j = x_j.contiguous(memory_format=torch.channels_last)

    def step():
        train_step(net, x_i, x_j, opt, cfg.temperature, amp_dtype=amp, scaler=scaler)
        sched.step()

    return images_per_second(step, steps, warmup, cfg.batch_size, device)


# -------------------------------------------------------------------- (b) and (c)

class _PILPairs(torch.utils.data.Dataset):
    """Images kept as (H, W, 3) uint8 arrays, turned into PIL images per item (as
    torchvision's CIFAR-10 does), each transformed twice."""

    def __init__(self, images: torch.Tensor, transform: Callable) -> None:
        self.arrays = images.permute(0, 2, 3, 1).contiguous().numpy()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, i: int):
        from PIL import Image

        image = Image.fromarray(self.arrays[i])
        views = self.transform(image)
        return tuple(views) if isinstance(views, list) else (views, self.transform(image))


def classic_transform(cfg: TrainConfig, size: int) -> Callable:
    """The per-image pipeline of most SimCLR code: ``torchvision.transforms`` on PIL."""
    from torchvision import transforms as T

    s = cfg.strength
    return T.Compose([
        T.RandomResizedCrop(size, scale=(cfg.min_scale, 1.0)),
        T.RandomHorizontalFlip(),
        T.RandomApply([T.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)], p=cfg.jitter_p),
        T.RandomGrayscale(p=cfg.grayscale_p),
        T.ToTensor(),
    ])


def lightly_transform(cfg: TrainConfig, size: int) -> Callable:
    """lightly's ``SimCLRTransform`` with this config's settings (two views per call).

    Raises:
        ImportError: lightly is not installed.
    """
    from lightly.transforms import SimCLRTransform

    return SimCLRTransform(input_size=size, cj_prob=cfg.jitter_p, cj_strength=cfg.strength,
                           min_scale=cfg.min_scale, random_gray_scale=cfg.grayscale_p,
                           gaussian_blur=0.0, normalize=None)


def _batches_forever(loader) -> Iterator:
    while True:
        yield from loader


def loader_rate(cfg: TrainConfig, images: torch.Tensor, transform: Callable,
                loss_fn: Callable, workers: int, steps: int, warmup: int) -> float:
    """(b)/(c): images/s of a DataLoader with ``workers`` processes feeding the step."""
    device = resolve_device(cfg.device)
    _, net, opt, sched, channels_last = _model_and_optimizer(cfg, device, steps + warmup)
    amp = autocast_dtype(cfg.precision, device)
    loader = torch.utils.data.DataLoader(
        _PILPairs(images, transform), batch_size=cfg.batch_size, shuffle=True,
        drop_last=True, num_workers=workers, persistent_workers=workers > 0,
        pin_memory=device.type == "cuda")
    batches = _batches_forever(loader)

    def step():
        x_i, x_j = (v.to(device, non_blocking=True) for v in next(batches))
        x = torch.cat([x_i, x_j])
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            _, z = net(x)
        loss = loss_fn(z[:len(x_i)].float(), z[len(x_i):].float())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()

    # The workers stop when the loader is garbage-collected, after this returns.
    return images_per_second(step, steps, warmup, cfg.batch_size, device)


def best_loader_rate(cfg, images, transform, loss_fn, worker_counts, steps, warmup):
    """The best ``loader_rate`` over ``worker_counts``: ``(rate, workers, all rates)``."""
    rates = {w: loader_rate(cfg, images, transform, loss_fn, w, steps, warmup)
             for w in worker_counts}
    best = max(rates, key=rates.get)
    return rates[best], best, rates


def pretrain_comparison(cfg: TrainConfig, steps: int = 20, warmup: int = 3,
                        worker_counts: list[int] | None = None,
                        lightly: bool = True) -> dict[str, Any]:
    """(a), (b), (c) and (d) of the module docstring, on ``cfg``'s model, batch and data.

    Returns:
        A dict with ``fast``, ``classic``, ``lightly`` (None when not installed) and ``raw``
        images/s, the best worker counts and every worker count's rate, and the ratios
        ``fast/classic``, ``fast/lightly``, ``fast/raw``.
    """
    if worker_counts is None:
        worker_counts = list(range(usable_cores() + 1))
    size = cfg.image_size or 32
    images = load_dataset(cfg.dataset, "train", root=cfg.data_dir, image_size=cfg.image_size,
                          size=steps * cfg.batch_size, progress=False).images
    nt = lambda z1, z2: nt_xent(z1, z2, cfg.temperature)  # noqa: E731
    result: dict[str, Any] = {"fast": fast_path_rate(cfg, steps)}
    result["classic"], result["classic_workers"], result["classic_rates"] = best_loader_rate(
        cfg, images, classic_transform(cfg, size), nt, worker_counts, steps, warmup)
    result["lightly"] = result["lightly_workers"] = None
    if lightly:
        try:
            from lightly.loss import NTXentLoss

            result["lightly"], result["lightly_workers"], _ = best_loader_rate(
                cfg, images, lightly_transform(cfg, size), NTXentLoss(cfg.temperature),
                worker_counts, steps, warmup)
        except ImportError:
            pass
    result["raw"] = raw_rate(cfg, images, steps, warmup)
    for other in ("classic", "lightly", "raw"):
        result[f"fast/{other}"] = (result["fast"] / result[other] if result[other] else None)
    return result


# ------------------------------------------------------------------------- NT-Xent

def naive_nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """The straightforward NT-Xent: a (2N, 2N) matrix, a boolean mask and ``masked_fill``.

    The same value as :func:`~simclr_lib.loss.nt_xent` (tested); the reference of the
    memory benchmark. Single process only.
    """
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)  # (2N, D)
    sim = z @ z.T / temperature  # (2N, 2N)
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)  # (2N, 2N)
    logits = sim.masked_fill(self_mask, float("-inf"))
    labels = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(logits, labels)


NT_XENT_IMPLEMENTATIONS = {"simclr_lib": nt_xent, "naive": naive_nt_xent}


def _loss_pass(impl: str, n: int, dim: int, device: torch.device, seed: int = 0):
    g = torch.Generator(device=device).manual_seed(seed)
    z1 = torch.randn(n, dim, device=device, generator=g, requires_grad=True)
    z2 = torch.randn(n, dim, device=device, generator=g, requires_grad=True)
    return lambda: NT_XENT_IMPLEMENTATIONS[impl](z1, z2, 0.5).backward()


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def _peak_rss_child(cases: list[tuple[str, int]], dim: int, queue) -> None:
    torch.set_num_threads(1)
    _loss_pass("naive", 8, dim, torch.device("cpu"))()  # start autograd's machinery first
    peaks = []
    for impl, n in cases:
        run = _loss_pass(impl, n, dim, torch.device("cpu"))
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak resident size (VmHWM) to the current one
        before = _rss_kib("VmRSS")
        run()
        peaks.append((_rss_kib("VmHWM") - before) * 1024)
        del run  # its tensors go back to the system (see peak_memories)
    queue.put(peaks)


def peak_memories(cases: list[tuple[str, int]], dim: int,
                  device: torch.device) -> list[int | None]:
    """Peak bytes one forward + backward adds, for each ``(implementation, N)``.

    On CUDA, the caching allocator's statistics. On a CPU, the growth of the peak resident
    memory (VmHWM, reset before each case) of one fresh process in which glibc returns every
    block of 64 KiB or more to the system when it is freed (so a freed matrix is not
    silently reused by the next case): page-granular, and ``None`` where ``/proc`` cannot do
    this (not Linux).
    """
    if device.type == "cuda":
        peaks = []
        for impl, n in cases:
            run = _loss_pass(impl, n, dim, device)
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
            run()
            torch.cuda.synchronize(device)
            peaks.append(torch.cuda.max_memory_allocated(device) - base)
            del run
        return peaks
    if not os.path.exists("/proc/self/clear_refs"):
        return [None] * len(cases)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    old = os.environ.get("MALLOC_MMAP_THRESHOLD_")
    os.environ["MALLOC_MMAP_THRESHOLD_"] = "65536"  # read by the child's glibc at start
    try:
        proc = ctx.Process(target=_peak_rss_child, args=(cases, dim, queue))
        proc.start()
    finally:
        if old is None:
            del os.environ["MALLOC_MMAP_THRESHOLD_"]
        else:
            os.environ["MALLOC_MMAP_THRESHOLD_"] = old
    peaks = queue.get(timeout=1800)
    proc.join()
    return peaks


def peak_memory(impl: str, n: int, dim: int, device: torch.device) -> int | None:
    """:func:`peak_memories` of one case."""
    return peak_memories([(impl, n)], dim, device)[0]


def ntxent_comparison(sizes: list[int], dim: int = 128, device: str = "auto", repeats: int = 3,
                      memory: bool = True) -> list[dict[str, Any]]:
    """Forward + backward seconds (median of ``repeats``) and peak memory per N and impl."""
    dev = resolve_device(device)
    rows = []
    for n in sizes:
        row: dict[str, Any] = {"n": n, "dim": dim, "device": dev.type}
        runs = {impl: _loss_pass(impl, n, dim, dev) for impl in NT_XENT_IMPLEMENTATIONS}
        times: dict[str, list[float]] = {impl: [] for impl in runs}
        for run in runs.values():
            run()  # warm-up
        for _ in range(repeats):  # alternate, so that load on the machine hits both alike
            for impl, run in runs.items():
                _sync(dev)
                t0 = time.perf_counter()
                run()
                _sync(dev)
                times[impl].append(time.perf_counter() - t0)
        del runs
        for impl in NT_XENT_IMPLEMENTATIONS:
            row[f"{impl}_s"] = statistics.median(times[impl])
        rows.append(row)
    cases = [(impl, n) for n in sizes for impl in NT_XENT_IMPLEMENTATIONS]
    peaks = peak_memories(cases, dim, dev) if memory else [None] * len(cases)
    for (impl, n), peak in zip(cases, peaks, strict=True):
        next(r for r in rows if r["n"] == n)[f"{impl}_bytes"] = peak
    return rows


# ------------------------------------------------------------------------- reports

def machine_description() -> str:
    """One line: CPU model and cores, torch/torchvision versions, GPU if any."""
    import platform

    import torchvision

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = (f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else
           ", no GPU")
    return (f"{cpu}, {usable_cores()} cores, {torch.get_num_threads()} torch threads{gpu}; "
            f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
            f"Python {platform.python_version()}")


def append_results(path: str | os.PathLike, title: str, command: str, body: str,
                   note: str = "") -> None:
    """Append one dated section (title, machine, command, the printed table) to ``path``."""
    import datetime

    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    text = (f"\n### {title} ({stamp})\n\nMachine: {machine_description()}."
            + (f" {note}" if note else "") + f"\n\n```\n{command}\n{body}\n```\n")
    with open(path, "a") as f:
        f.write(text)


# ----------------------------------------------------------------------------- CLI

def format_pretrain(r: dict[str, Any], cfg: TrainConfig, steps: int) -> str:
    def ratio(x):
        return "   -" if x is None else f"{x:5.2f}x"

    def rate(x):
        return "not installed" if x is None else f"{x:9.0f}"

    lines = [f"pre-training throughput, images (pairs) per second: {cfg.encoder} "
             f"(width {cfg.encoder_width}), batch {cfg.batch_size}, {cfg.optimizer}, "
             f"{resolve_device(cfg.device)}, {steps} timed steps",
             f"  (a) fast path, fit()                 {rate(r['fast'])}",
             f"  (b) classic DataLoader + PIL, best of workers {sorted(r['classic_rates'])}: "
             f"{rate(r['classic'])} (workers={r['classic_workers']})",
             f"  (c) lightly SimCLRTransform + NTXentLoss  {rate(r['lightly'])}"
             + (f" (workers={r['lightly_workers']})" if r["lightly"] else
                " (pip install 'simclr-course[bench]' to compare)"),
             f"  (d) raw fwd+bwd+step (ceiling)       {rate(r['raw'])}",
             f"  (a)/(b) {ratio(r['fast/classic'])}   (a)/(c) {ratio(r['fast/lightly'])}   "
             f"(a)/(d) {ratio(r['fast/raw'])}"]
    return "\n".join(lines)


def format_ntxent(rows: list[dict[str, Any]]) -> str:
    def mib(b):
        return "    -" if b is None else f"{b / 2**20:7.0f}"

    lines = ["NT-Xent forward + backward (D = {}, {}): simclr_lib vs naive masked_fill".format(
        rows[0]["dim"], rows[0]["device"]),
        f"  {'N':>6} {'ours ms':>9} {'naive ms':>9} {'ours MiB':>9} {'naive MiB':>10}"]
    for r in rows:
        lines.append(f"  {r['n']:>6} {1000 * r['simclr_lib_s']:9.1f} {1000 * r['naive_s']:9.1f} "
                     f"{mib(r['simclr_lib_bytes']):>9} {mib(r['naive_bytes']):>10}")
    return "\n".join(lines)


def run_bench(args: argparse.Namespace) -> int:
    """CLI entry: a quick version of every benchmark, printed as one report."""
    cfg = get_profile(args.profile).train
    changes = {k: getattr(args, k) for k in ("encoder", "batch_size", "precision", "device")
               if getattr(args, k, None) is not None}
    if args.compile:
        changes["compile"] = True
    cfg = dataclasses.replace(cfg, **changes)
    # The quick version tries one worker count (all cores); benchmarks/bench_pretrain.py
    # tries every count from 0 to the number of cores.
    workers = [usable_cores()] if args.workers is None else args.workers
    r = pretrain_comparison(cfg, steps=args.steps, warmup=args.warmup, worker_counts=workers,
                            lightly=not args.no_lightly)
    print(format_pretrain(r, cfg, args.steps))
    rows = ntxent_comparison(args.ntxent_sizes, device=cfg.device, memory=not args.no_memory)
    print(format_ntxent(rows))
    return 0
