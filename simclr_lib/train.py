"""The SimCLR pre-training loop: ``fit(config)``.

One loop, two ways to feed it (DESIGN.md):

* **fast path** (``in_memory=True``, the default): the whole training set is one uint8
  tensor on the training device; every step indexes a batch and draws two views with
  :class:`~simclr_lib.augment.BatchedAugment` on that device. No DataLoader workers.
* **streaming path** (``in_memory=False``, for folders of large images): a DataLoader runs
  :func:`~simclr_lib.augment.simclr_transform` per image in worker processes.

Each step follows Algorithm 1 of SimCLR (Chen et al., ICML 2020): two views ``x_i, x_j``
of every image, ``h = f(x)``, ``z = g(h)``, NT-Xent over the 2N views (with the negatives of
all processes under DDP), an optimizer step and a per-iteration learning-rate step.
Every epoch ``last.pt`` is written atomically, ``best.pt`` whenever the kNN accuracy on a
validation split (carved from the labelled training data, never the test split) improves,
and ``history.jsonl`` gets one line. ``fit(cfg, resume=DIR)`` continues exactly.

Introduced in notebooks/04_training.ipynb.
"""

from __future__ import annotations

import dataclasses
import json
import math
import signal
import threading
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm.auto import tqdm

from .augment import BatchedAugment, TwoViews, simclr_transform
from .checkpoint import (
    atomic_save,
    encoder_from_config,
    load_checkpoint,
    rng_states,
    run_dir_of,
    set_rng_states,
)
from .config import TrainConfig, config_from_dict, config_to_dict
from .data import load_dataset, train_val_split
from .distributed import DistInfo, all_reduce_mean, barrier, cleanup, init_distributed
from .evaluate import extract_features, knn_accuracy
from .loss import nt_xent
from .models import ProjectionHead, SimCLR
from .optim import build_optimizer, warmup_cosine

HINT_NONFINITE = "lower the learning rate (--lr) or use --precision bf16 instead of fp16"


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class TrainingInterrupted(RuntimeError):
    """SIGINT/SIGTERM stopped the run after saving a checkpoint; ``fit(resume=...)`` goes on."""


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` returns: the trained model (``f`` is ``model.encoder``) and its logs."""

    model: SimCLR
    history: list[dict]
    out_dir: Path
    config: TrainConfig

    @property
    def encoder(self) -> nn.Module:
        return self.model.encoder


def resolve_device(name: str) -> torch.device:
    """``auto`` means CUDA when available, else CPU; asking for CUDA without a GPU fails."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was requested but no CUDA GPU is available; "
                         "use --device cpu (or auto)")
    return device


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: bf16 where the GPU supports it, else fp16; ``None`` = fp32."""
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("--precision fp16 needs a CUDA GPU; use fp32 or bf16 on the CPU")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def build_model(cfg: TrainConfig) -> SimCLR:
    """The SimCLR model ``(f, g)`` that ``cfg`` describes (random initialisation)."""
    f = encoder_from_config(cfg)
    g = ProjectionHead(f.feature_dim, cfg.head_hidden_dim, cfg.proj_dim, cfg.head_layers)
    return SimCLR(f, g)


def augment_kwargs(cfg: TrainConfig, size: int) -> dict:
    """Keyword arguments shared by ``BatchedAugment`` and ``simclr_transform``."""
    return dict(size=size, strength=cfg.strength, scale=(cfg.min_scale, 1.0),
                jitter_p=cfg.jitter_p, grayscale_p=cfg.grayscale_p, blur=cfg.blur)


def train_step(model: nn.Module, x_i: torch.Tensor, x_j: torch.Tensor,
               optimizer: torch.optim.Optimizer, temperature: float, *,
               amp_dtype: torch.dtype | None = None,
               scaler: torch.amp.GradScaler | None = None) -> torch.Tensor:
    """One SimCLR step on the views ``x_i, x_j`` (each (n, 3, H, W)); returns the loss.

    Both views go through the network as one batch of 2n (so BatchNorm sees both).
    """
    n = x_i.shape[0]
    x = torch.cat([x_i, x_j])  # (2n, 3, H, W)
    autocast = (torch.autocast(x.device.type, dtype=amp_dtype) if amp_dtype is not None
                else nullcontext())
    with autocast:
        _, z = model(x)  # (2n, proj_dim)
    loss = nt_xent(z[:n], z[n:], temperature)  # float32 inside, global negatives under DDP
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None and scaler.is_enabled():
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    return loss.detach()


def _epoch_seed(seed: int, epoch: int, stream: int = 0) -> int:
    """Independent seeds per (run seed, epoch, stream): resuming at an epoch is exact."""
    return (seed * 1_000_003 + epoch * 1009 + stream) % (2**63)


@contextmanager
def _stop_on_signals():
    """Turn SIGINT/SIGTERM into a flag the loop checks after each step."""
    flag: dict = {"signum": None}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, _frame):
        flag["signum"] = signum

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _prepare_data(cfg: TrainConfig, info: DistInfo):
    """Training set, plus a labelled kNN bank and validation split for the monitor."""
    show = cfg.progress and info.is_main
    ds = load_dataset(cfg.dataset, cfg.split, root=cfg.data_dir, image_size=cfg.image_size,
                      size=cfg.train_size, progress=show,
                      in_memory=cfg.in_memory)
    if not cfg.in_memory:
        return ds, None, None  # streaming: no in-memory bank, so no kNN monitor
    labelled = ds.labels >= 0
    if cfg.knn_every <= 0 or cfg.val_fraction <= 0 or int(labelled.sum()) < 20:
        return ds, None, None
    train, val = train_val_split(ds, cfg.val_fraction, seed=0)
    val = val.subset(torch.nonzero(val.labels >= 0).flatten())  # STL-10 mixes in -1
    if cfg.val_size is not None:
        val = val.subset(torch.arange(min(cfg.val_size, len(val))))
    bank = train.subset(torch.nonzero(train.labels >= 0).flatten())
    return train, bank, val


def _knn_monitor(model: SimCLR, bank, val, cfg: TrainConfig, device) -> dict:
    f = model.encoder
    bank_h = extract_features(f, bank.images, batch_size=512, device=device)
    val_h = extract_features(f, val.images, batch_size=512, device=device)
    acc = knn_accuracy(bank_h, bank.labels, val_h, val.labels, k=cfg.knn_k,
                       temperature=cfg.knn_temperature)
    return {"knn_top1": float(acc["top1"]), "knn_top5": float(acc["top5"])}


def _write_history(out: Path, history: list[dict]) -> None:
    tmp = out / ".history.jsonl.tmp"
    tmp.write_text("".join(json.dumps(r) + "\n" for r in history))
    tmp.replace(out / "history.jsonl")


def fit(cfg: TrainConfig, *, resume: str | Path | None = None,
        overwrite: bool = False) -> FitResult:
    """Pre-train SimCLR as ``cfg`` says and write the run to ``cfg.out``.

    Args:
        cfg: the run's settings (see :class:`~simclr_lib.config.TrainConfig`).
        resume: a run directory (or checkpoint) to continue exactly where it stopped; its
            own config is used and ``cfg`` is ignored.
        overwrite: allow starting a new run in a directory that already holds one.

    Returns:
        A :class:`FitResult` with the trained model, the per-epoch history and the run dir.

    Raises:
        ValueError: invalid settings (with the fix in the message).
        CheckpointError: ``resume`` names no readable checkpoint.
        NonFiniteLossError: the loss diverged; ``last.pt`` still holds the last good epoch.
        TrainingInterrupted: SIGINT/SIGTERM; a checkpoint was saved first.
    """
    ckpt = None
    if resume is not None:
        ckpt = load_checkpoint(resume)
        cfg = dataclasses.replace(config_from_dict(ckpt["config"]), out=str(run_dir_of(resume)))
    cfg.validate()
    device = resolve_device(cfg.device)
    info = init_distributed(device.type)
    try:
        return _fit(cfg, ckpt, device, info, overwrite)
    finally:
        cleanup(info)


def _fit(cfg: TrainConfig, ckpt: dict | None, device: torch.device, info: DistInfo,
         overwrite: bool) -> FitResult:
    if device.type == "cuda" and info.enabled:
        device = torch.device("cuda", info.local_rank)
    amp_dtype = resolve_precision(cfg.precision, device)
    if cfg.batch_size % info.world_size:
        raise ValueError(f"batch size {cfg.batch_size} must be divisible by the number of "
                         f"processes ({info.world_size})")
    out = Path(cfg.out)
    if ckpt is None and (out / "last.pt").exists() and not overwrite:
        raise ValueError(f"{out} already holds a run (last.pt); continue it with "
                         f"--resume {out}, or choose another --out")
    log = print if info.is_main else (lambda *a, **k: None)

    torch.manual_seed(cfg.seed)
    train, bank, val = _prepare_data(cfg, info)
    B, b = cfg.batch_size, cfg.batch_size // info.world_size
    if len(train) < B:
        raise ValueError(f"batch size {B} is larger than the training set ({len(train)} "
                         f"images); use --batch-size {len(train)} or less")
    steps = len(train) // B  # the last incomplete batch of an epoch is dropped
    total = cfg.epochs * steps
    size = cfg.image_size or (train.images.shape[-1] if cfg.in_memory else 64)

    model = build_model(cfg).to(device)
    if cfg.sync_bn and info.enabled:
        if device.type != "cuda":
            raise ValueError("--sync-bn needs CUDA GPUs (SyncBatchNorm does not run on CPU)")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    channels_last = cfg.channels_last and device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, cfg)
    # Warm-up takes at most half the run, so a short run (--epochs 2) still decays.
    warmup = min(total // 2, round(cfg.warmup_epochs * steps))
    scheduler = warmup_cosine(optimizer, warmup, total)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)

    start_epoch, start_step, history, best = 0, 0, [], -1.0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        set_rng_states(ckpt["rng"])
        start_epoch, start_step = ckpt["epoch"], ckpt["step_in_epoch"]
        history, best = ckpt["history"], ckpt["best_knn"]
        log(f"resuming {out} at epoch {start_epoch + 1}, step {start_step}")
    net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if info.enabled else model
    if cfg.compile:
        net = torch.compile(net)

    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(config_to_dict(cfg), indent=2) + "\n")

    def save(name: str, epoch: int, step: int, aug_state=None, loss_sum=0.0) -> None:
        if info.is_main:
            atomic_save({
                "format_version": 1, "config": config_to_dict(cfg),
                "model": model.state_dict(), "encoder": model.encoder.state_dict(),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(), "rng": rng_states(), "epoch": epoch,
                "step_in_epoch": step, "aug_gen": aug_state, "loss_sum": loss_sum,
                "history": history, "best_knn": best, "world_size": info.world_size,
            }, out / name)

    if cfg.in_memory:
        images = train.images.to(device)  # uint8 (N, 3, H, W): the fast path
        augment = BatchedAugment(**augment_kwargs(cfg, size)).to(device)
    else:
        loader = _streaming_loader(train, cfg, size, info, b)

    with _stop_on_signals() as stop:
        for epoch in range(start_epoch, cfg.epochs):
            model.train()
            aug_gen = torch.Generator(device=device).manual_seed(
                _epoch_seed(cfg.seed, epoch, 1 + info.rank))
            first, loss_sum = 0, torch.zeros((), device=device)
            if ckpt is not None and epoch == start_epoch and start_step > 0:
                first = start_step
                aug_gen.set_state(ckpt["aug_gen"])  # a CPU ByteTensor for every device
                loss_sum += ckpt["loss_sum"]
            if cfg.in_memory:
                perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(
                    _epoch_seed(cfg.seed, epoch))).to(device)
                batches = ((images[perm[s * B + info.rank * b: s * B + (info.rank + 1) * b]],
                            None) for s in range(first, steps))
            else:
                if hasattr(loader.sampler, "set_epoch"):  # DistributedSampler
                    loader.sampler.set_epoch(epoch)
                batches = (((xi, xj), None) for (xi, xj), _ in loader)
            bar = tqdm(total=steps, initial=first, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                       disable=not (cfg.progress and info.is_main), leave=True,
                       unit="step")
            t0, done = time.perf_counter(), 0
            for step, (x, _) in enumerate(batches, start=first):
                if cfg.in_memory:
                    x_i, x_j = augment(x, generator=aug_gen), augment(x, generator=aug_gen)
                else:
                    x_i, x_j = (v.to(device, non_blocking=True) for v in x)
                if channels_last:
                    x_i = x_i.contiguous(memory_format=torch.channels_last)
                    x_j = x_j.contiguous(memory_format=torch.channels_last)
                loss = train_step(net, x_i, x_j, optimizer, cfg.temperature,
                                  amp_dtype=amp_dtype, scaler=scaler)
                scheduler.step()
                loss_sum += loss
                done += 1
                if device.type == "cpu" or step % 25 == 0 or step == steps - 1:
                    value = loss.item()
                    if not math.isfinite(value):
                        raise NonFiniteLossError(
                            f"the loss became {value} at epoch {epoch + 1}, step {step + 1}; "
                            f"{HINT_NONFINITE}. The last good checkpoint is {out / 'last.pt'}")
                    rate = done * B / (time.perf_counter() - t0)
                    bar.set_postfix(loss=f"{value:.3f}", img_s=f"{rate:.0f}", refresh=False)
                bar.update(1)
                if stop["signum"] is not None:
                    bar.close()
                    save("last.pt", epoch, step + 1, aug_gen.get_state(), loss_sum.item())
                    barrier(info)
                    raise TrainingInterrupted(
                        f"stopped by signal {stop['signum']} at epoch {epoch + 1}, step "
                        f"{step + 1}; checkpoint saved. Continue with: "
                        f"python -m simclr_lib train --resume {out}")
                if cfg.max_steps is not None and epoch * steps + step + 1 >= cfg.max_steps:
                    break
            bar.close()
            elapsed = time.perf_counter() - t0
            epoch_loss = all_reduce_mean(loss_sum / max(1, first + done), info).item()
            record = {"epoch": epoch + 1, "loss": epoch_loss,
                      "lr": optimizer.param_groups[0]["lr"],
                      "images_per_s": done * B / max(elapsed, 1e-9), "time_s": elapsed}
            last = epoch + 1 == cfg.epochs or cfg.max_steps is not None
            if bank is not None and info.is_main and ((epoch + 1) % cfg.knn_every == 0 or last):
                record.update(_knn_monitor(model, bank, val, cfg, device))
            history.append(record)
            if info.is_main:
                improved = record.get("knn_top1", -1.0) > best
                best = max(best, record.get("knn_top1", -1.0))
                save("last.pt", epoch + 1, 0)
                if improved or bank is None:
                    save("best.pt", epoch + 1, 0)
                _write_history(out, history)
                knn = f", kNN {record['knn_top1']:.1%}" if "knn_top1" in record else ""
                log(f"epoch {epoch + 1}/{cfg.epochs}: loss {epoch_loss:.4f}, "
                    f"{record['images_per_s']:.0f} img/s{knn}", flush=True)
            barrier(info)
            if cfg.max_steps is not None and (epoch + 1) * steps >= cfg.max_steps:
                break
    log(f"wrote config.json, history.jsonl, last.pt and best.pt to {out}")
    return FitResult(model, history, out, cfg)


def _streaming_loader(train, cfg: TrainConfig, size: int, info: DistInfo, b: int):
    """DataLoader with per-image ``simclr_transform`` in workers (the streaming path)."""
    from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

    train.transform = TwoViews(simclr_transform(**augment_kwargs(cfg, size)))
    g = torch.Generator().manual_seed(cfg.seed)
    sampler = (DistributedSampler(train, info.world_size, info.rank, seed=cfg.seed,
                                  drop_last=True) if info.enabled
               else RandomSampler(train, generator=g))
    return DataLoader(train, batch_size=b, sampler=sampler, num_workers=cfg.num_workers,
                      drop_last=True, pin_memory=torch.cuda.is_available(),
                      persistent_workers=cfg.num_workers > 0)
