"""The SimCLR pre-training loop: ``fit(config)``.

``fit`` reads as its steps: set up the run, restore a checkpoint, then for every epoch run
its batches through the training step and close the epoch (history, kNN monitor,
checkpoints). One loop serves both ways of feeding it (DESIGN.md), which differ only in
where the two views of a batch come from (:mod:`simclr_lib.batches`): the fast path
(``in_memory=True``, the default) augments a uint8 tensor on the training device, the
streaming path (``in_memory=False``) runs per-image transforms in DataLoader workers.
Neither carries random state between steps, so a resumed run is exact.

Each step follows Algorithm 1 of SimCLR (Chen et al., ICML 2020): two views ``x_i, x_j``
of every image, ``h = f(x)``, ``z = g(h)``, NT-Xent over the 2N views (with the negatives of
all processes under DDP), an optimizer step and a per-iteration learning-rate step.
Every epoch ``last.pt`` is written atomically, ``best.pt`` whenever the kNN accuracy on a
validation split (a folder's own ``val/``, else carved from the labelled training data; never
the test split) improves, and ``history.jsonl`` gets one line. ``fit(cfg, resume=DIR)``
continues exactly.

Introduced in notebooks/04_training.ipynb.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm.auto import tqdm

from .batches import FastBatches, StreamingBatches
from .checkpoint import (
    FORMAT_VERSION,
    atomic_save,
    load_checkpoint,
    rng_states,
    run_dir_of,
    set_rng_states,
)
from .config import TrainConfig, config_from_dict, config_to_dict
from .data import (
    ImageTensorDataset,
    dataset_nbytes,
    image_size_of,
    load_dataset,
    train_val_split,
)
from .device import autocast, autocast_dtype, resolve_device
from .distributed import (
    DistInfo,
    all_reduce_max,
    all_reduce_mean,
    barrier,
    cleanup,
    init_distributed,
)
from .evaluate import capped_knn_k, extract_features, knn_accuracy
from .loss import nt_xent
from .memory import BACKWARD_FACTOR, check_fits, saved_bytes_per_image
from .models import SimCLR, build_model
from .optim import build_optimizer, warmup_cosine

HINT_NONFINITE = "lower the learning rate (--lr) or use --precision bf16 instead of fp16"
STOP_CHECK_EVERY_DDP = 10  # steps between the ranks' agreement on a stop signal


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class TrainingInterrupted(RuntimeError):
    """SIGINT/SIGTERM (or ``stop_after_steps``) stopped the run after saving a checkpoint;
    ``fit(resume=...)`` goes on."""


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


def train_step(model: nn.Module, x_i: torch.Tensor, x_j: torch.Tensor,
               optimizer: torch.optim.Optimizer, temperature: float, *,
               amp_dtype: torch.dtype | None = None,
               scaler: torch.amp.GradScaler | None = None) -> torch.Tensor:
    """One SimCLR step on the views ``x_i, x_j`` (each (n, 3, H, W)); returns the loss.

    Both views go through the network as one batch of 2n (so BatchNorm sees both).
    """
    n = x_i.shape[0]
    x = torch.cat([x_i, x_j])  # (2n, 3, H, W)
    with autocast(x.device, amp_dtype):
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


# --------------------------------------------------------------------------- the run

@dataclasses.dataclass
class _Run:
    """Everything one training run holds, built by :func:`_set_up`."""

    cfg: TrainConfig
    info: DistInfo
    device: torch.device
    out: Path
    model: SimCLR  # the bare model: its state is what checkpoints hold
    net: nn.Module  # what the step calls: the model, wrapped by DDP / torch.compile
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    channels_last: bool
    batches: FastBatches | StreamingBatches
    steps: int  # optimisation steps per epoch
    bank: ImageTensorDataset | None  # labelled features' bank of the kNN monitor
    val: ImageTensorDataset | None  # its validation split
    history: list[dict] = dataclasses.field(default_factory=list)
    best: float = -1.0
    start_epoch: int = 0
    start_step: int = 0
    loss_carry: float = 0.0  # sum of the losses of the steps before start_step
    stop_after: int | None = None  # fit's stop_after_steps: stop after this many steps...
    steps_done: int = 0  # ...of this call to fit, counted here

    def log(self, *args, **kwargs) -> None:
        if self.info.is_main:
            print(*args, **kwargs)


def wants_sync_bn(sync_bn: bool | None, distributed: bool, device_type: str) -> bool:
    """Whether to convert BatchNorm to ``SyncBatchNorm``: SimCLR's global BN (Section 2.2).

    Both views of a positive pair sit on the same device, so per-device BatchNorm
    statistics leak which views belong together; synchronised statistics do not. ``None``
    (the default) means on whenever DDP runs on CUDA.

    Raises:
        ValueError: ``sync_bn=True`` under DDP on CPUs (SyncBatchNorm runs on CUDA only).
    """
    if not distributed:
        return False
    if sync_bn is None:
        return device_type == "cuda"
    if sync_bn and device_type != "cuda":
        raise ValueError("--sync-bn needs CUDA GPUs (SyncBatchNorm does not run on CPU); "
                         "drop it, or use --no-sync-bn")
    return sync_bn


def _has_own_val_split(cfg: TrainConfig) -> bool:
    """Whether the kNN monitor can use the dataset's own validation images: a ``folder``
    with ``DIR/val/`` (when pre-training on its ``train`` split)."""
    return (cfg.dataset == "folder" and cfg.split == "train"
            and (Path(cfg.data_dir).expanduser() / "val").is_dir())


def _labelled(ds: ImageTensorDataset) -> ImageTensorDataset:
    """The labelled images of ``ds`` (``ds`` itself when all are: no copy)."""
    keep = ds.labels >= 0
    return ds if bool(keep.all()) else ds.subset(keep.nonzero().flatten())


def _check_memory(cfg: TrainConfig, device: torch.device, info: DistInfo) -> None:
    """Stop before loading when the training images, or one step's activations, will not
    fit in RAM or on the GPU (estimates; see :mod:`simclr_lib.memory`).

    Under torchrun every process of a machine holds its own copy of the images in RAM.
    """
    s = image_size_of(cfg)
    copies = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))  # processes per machine (torchrun)
    nbytes = dataset_nbytes(cfg.dataset, cfg.split, cfg.data_dir, image_size=cfg.image_size,
                            size=cfg.train_size)
    n = nbytes // (3 * s * s)
    data = nbytes if cfg.in_memory else 0
    data_what = f"the {n} training images at 3x{s}x{s}" + (
        f", once per process ({copies})" if copies > 1 else "")
    if data:
        check_fits(data * copies, "cpu", data_what)
    with torch.random.fork_rng(devices=[]):  # the run's own model is built from the seed
        per_view = saved_bytes_per_image(build_model(cfg), s)
    if cfg.precision in ("bf16", "fp16") or (cfg.precision == "auto" and device.type == "cuda"):
        per_view //= 2  # 16-bit activations under autocast
    views = 2 * min(cfg.batch_size, n) // info.world_size  # a larger batch fails later
    step = int(BACKWARD_FACTOR * per_view * views)
    what = f"one training step ({views} views at {s} px, estimated)"
    step_only = "use smaller images (--image-size) or a smaller batch (--batch-size)"
    with_data = ("use smaller images (--image-size), a smaller batch (--batch-size), fewer "
                 "images (--train-size) or stream them from disk (--streaming)")
    if device.type == "cuda":  # the step, and the fast path's copy of the images
        check_fits(data + step, device, what + (" and the images" if data else ""),
                   with_data if data else step_only)
    else:
        check_fits((data + step) * copies, "cpu", what + (f" and {data_what}" if data else ""),
                   with_data if data else step_only)


def _prepare_data(cfg: TrainConfig, info: DistInfo):
    """Training set, plus a labelled kNN bank and validation split for the monitor.

    The monitor's validation images are the dataset's own (``DIR/val/`` of a folder) when
    it has them, else ``val_fraction`` of the labelled training images, held out of
    training. Where they come from is said once.
    """
    def load(split, size=None, in_memory=True):
        return load_dataset(cfg.dataset, split, root=cfg.data_dir, image_size=cfg.image_size,
                            size=size, progress=cfg.progress and info.is_main,
                            in_memory=in_memory)

    def say(text):
        if info.is_main:
            print(f"kNN monitor: {text}", flush=True)

    ds = load(cfg.split, cfg.train_size, cfg.in_memory)
    if cfg.knn_every <= 0:
        return ds, None, None
    if not isinstance(ds, ImageTensorDataset):
        say("off with --streaming (it needs the images in memory)")
        return ds, None, None  # a streamed folder: no in-memory bank, so no kNN monitor
    labelled = int((ds.labels >= 0).sum())
    where = f"{cfg.dataset}/{cfg.split}"
    if cfg.dataset == "folder":
        split_dir = Path(cfg.data_dir) / cfg.split
        where = str(split_dir if split_dir.is_dir() else Path(cfg.data_dir))
    if labelled < 20:
        say(f"off: {where} has {labelled} labelled images (it needs 20; labels come from "
            f"class sub-folders, <class>/*.jpg)")
        return ds, None, None
    if _has_own_val_split(cfg):
        val = _labelled(load("val", cfg.val_size))
        if len(val):
            say(f"validation on the {len(val)} labelled images of "
                f"{Path(cfg.data_dir) / 'val'}, neighbours from the {labelled} of {where}")
            return ds, _labelled(ds), val
    if cfg.val_fraction <= 0:
        say("off: val_fraction is 0 and there is no val split of its own")
        return ds, None, None
    train, val = train_val_split(ds, cfg.val_fraction, seed=0)
    val = _labelled(val)  # STL-10 mixes in -1
    if cfg.val_size is not None:
        val = val.subset(torch.arange(min(cfg.val_size, len(val))))
    say(f"{len(ds) - len(train)} of the {len(ds)} training images of {where} "
        f"({cfg.val_fraction:.0%}) are held out of training to validate it"
        + (f"; add {Path(cfg.data_dir) / 'val'}/<class>/ to use your own"
           if cfg.dataset == "folder" else ""))
    return train, _labelled(train), val


def _set_up(cfg: TrainConfig, device: torch.device, info: DistInfo, resuming: bool,
            overwrite: bool) -> _Run:
    """Data, model, optimizer, schedule and batch source of a fresh run (or one to resume)."""
    if device.type == "cuda" and info.enabled:
        device = torch.device("cuda", info.local_rank)
    amp_dtype = autocast_dtype(cfg.precision, device)
    if cfg.batch_size % info.world_size:
        raise ValueError(f"batch size {cfg.batch_size} must be divisible by the number of "
                         f"processes ({info.world_size})")
    out = Path(cfg.out)
    if not resuming and (out / "last.pt").exists() and not overwrite:
        raise ValueError(f"{out} already holds a run (last.pt); continue it with "
                         f"--resume {out}, start again with --overwrite, or choose another "
                         f"--out")
    torch.manual_seed(cfg.seed)
    _check_memory(cfg, device, info)
    train, bank, val = _prepare_data(cfg, info)
    if len(train) < cfg.batch_size:
        raise ValueError(f"batch size {cfg.batch_size} is larger than the training set "
                         f"({len(train)} images); use --batch-size {len(train)} or less")
    steps = len(train) // cfg.batch_size  # the last incomplete batch of an epoch is dropped
    size = image_size_of(cfg)  # both paths: the dataset's own size

    model = build_model(cfg).to(device)
    if wants_sync_bn(cfg.sync_bn, info.enabled, device.type):
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    channels_last = cfg.channels_last and device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, cfg)
    total = cfg.epochs * steps
    warmup = min(total // 2, round(cfg.warmup_epochs * steps))  # at most half the run
    net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if info.enabled else model
    if cfg.compile:
        net = torch.compile(net)
    if isinstance(train, ImageTensorDataset) and cfg.in_memory:
        batches = FastBatches(train.images.to(device), cfg, size, info, steps)
    else:
        batches = StreamingBatches(train, cfg, size, info, steps, device)
    return _Run(cfg, info, device, out, model, net, optimizer,
                warmup_cosine(optimizer, warmup, total),
                torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16),
                amp_dtype, channels_last, batches, steps, bank, val)


def _restore(run: _Run, ckpt: dict) -> None:
    """Load model, optimizer, schedule, scaler, RNG states and the place to go on from."""
    run.model.load_state_dict(ckpt["model"])
    run.optimizer.load_state_dict(ckpt["optimizer"])
    run.scheduler.load_state_dict(ckpt["scheduler"])
    run.scaler.load_state_dict(ckpt["scaler"])
    set_rng_states(ckpt["rng"])
    run.start_epoch, run.start_step = ckpt["epoch"], ckpt["step_in_epoch"]
    run.loss_carry = ckpt["loss_sum"]
    run.history, run.best = ckpt["history"], ckpt["best_knn"]
    run.log(f"resuming {run.out} at epoch {run.start_epoch + 1}, step {run.start_step}")


def _save(run: _Run, name: str, epoch: int, step: int, loss_sum: float = 0.0) -> None:
    """Write a checkpoint (main process only): continue at ``step`` of ``epoch``."""
    if not run.info.is_main:
        return
    atomic_save({
        "format_version": FORMAT_VERSION, "config": config_to_dict(run.cfg),
        "model": run.model.state_dict(), "encoder": run.model.encoder.state_dict(),
        "optimizer": run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict(), "rng": rng_states(), "epoch": epoch,
        "step_in_epoch": step, "loss_sum": loss_sum, "history": run.history,
        "best_knn": run.best, "world_size": run.info.world_size,
    }, run.out / name)


def _step(run: _Run, x_i: torch.Tensor, x_j: torch.Tensor) -> torch.Tensor:
    """One optimisation step and one learning-rate step; returns the (detached) loss."""
    if run.channels_last:
        x_i = x_i.contiguous(memory_format=torch.channels_last)
        x_j = x_j.contiguous(memory_format=torch.channels_last)
    loss = train_step(run.net, x_i, x_j, run.optimizer, run.cfg.temperature,
                      amp_dtype=run.amp_dtype, scaler=run.scaler)
    run.scheduler.step()
    return loss


def _stop_requested(run: _Run, flag: dict, step: int) -> bool:
    """Whether to stop after ``step``, agreed by every rank (so none waits for the others)."""
    if not run.info.enabled:
        return flag["why"] is not None
    if (step + 1) % STOP_CHECK_EVERY_DDP and step + 1 != run.steps:
        return False  # the same steps on every rank, so the collective always pairs up
    seen = torch.tensor(float(flag["why"] is not None),
                        device=run.device if run.device.type == "cuda" else "cpu")
    return bool(all_reduce_max(seen, run.info).item())


def _run_epoch(run: _Run, epoch: int, first: int, flag: dict) -> tuple[float, int, float]:
    """The batches of one epoch from step ``first``; returns (mean loss, steps done, s)."""
    cfg = run.cfg
    loss_sum = torch.full((), run.loss_carry if first else 0.0, device=run.device)
    bar = tqdm(total=run.steps, initial=first, desc=f"epoch {epoch + 1}/{cfg.epochs}",
               disable=not (cfg.progress and run.info.is_main), leave=True, unit="step")
    t0, done, step = time.perf_counter(), 0, first
    for step, (x_i, x_j) in enumerate(run.batches(epoch, first), start=first):
        loss = _step(run, x_i, x_j)
        loss_sum += loss
        done += 1
        run.steps_done += 1
        if run.stop_after is not None and run.steps_done >= run.stop_after and not flag["why"]:
            flag["why"] = f"stop_after_steps={run.stop_after}"  # as if SIGINT arrived now
        if run.device.type == "cpu" or step % 25 == 0 or step == run.steps - 1:
            value = loss.item()
            if not math.isfinite(value):
                raise NonFiniteLossError(
                    f"the loss became {value} at epoch {epoch + 1}, step {step + 1}; "
                    f"{HINT_NONFINITE}. The last good checkpoint is {run.out / 'last.pt'}")
            rate = done * cfg.batch_size / (time.perf_counter() - t0)
            bar.set_postfix(loss=f"{value:.3f}", img_s=f"{rate:.0f}", refresh=False)
        bar.update(1)
        if _stop_requested(run, flag, step) and step + 1 < run.steps:
            bar.close()
            carry = all_reduce_mean(loss_sum, run.info).item()
            _save(run, "last.pt", epoch, step + 1, carry)
            barrier(run.info)
            raise TrainingInterrupted(
                f"stopped by {flag['why'] or 'a signal on another rank'} at epoch "
                f"{epoch + 1}, step {step + 1}; checkpoint saved. Continue with: "
                f"python -m simclr_lib train --resume {run.out}")
        if cfg.max_steps is not None and epoch * run.steps + step + 1 >= cfg.max_steps:
            break
    bar.close()
    mean = all_reduce_mean(loss_sum / max(1, step + 1), run.info).item()
    return mean, done, time.perf_counter() - t0


def _knn_monitor(run: _Run) -> dict:
    f = run.model.encoder
    bank_h = extract_features(f, run.bank.images, batch_size=512, device=run.device)
    val_h = extract_features(f, run.val.images, batch_size=512, device=run.device)
    k = capped_knn_k(run.bank.labels, run.cfg.knn_k)
    acc = knn_accuracy(bank_h, run.bank.labels, val_h, run.val.labels, k=k,
                       temperature=run.cfg.knn_temperature)
    return {"knn_top1": float(acc["top1"]), "knn_top5": float(acc["top5"]), "knn_k": k}


def _write_history(out: Path, history: list[dict]) -> None:
    tmp = out / ".history.jsonl.tmp"
    tmp.write_text("".join(json.dumps(r) + "\n" for r in history))
    tmp.replace(out / "history.jsonl")


def _max_steps_reached(cfg: TrainConfig, epoch: int, steps: int) -> bool:
    return cfg.max_steps is not None and (epoch + 1) * steps >= cfg.max_steps


def _end_epoch(run: _Run, epoch: int, loss: float, done: int, elapsed: float) -> None:
    """History line, kNN monitor (every ``knn_every`` epochs and at the end), checkpoints."""
    cfg = run.cfg
    record = {"epoch": epoch + 1, "loss": loss, "lr": run.optimizer.param_groups[0]["lr"],
              "images_per_s": done * cfg.batch_size / max(elapsed, 1e-9), "time_s": elapsed}
    final = epoch + 1 == cfg.epochs or _max_steps_reached(cfg, epoch, run.steps)
    if run.bank is not None and run.info.is_main and ((epoch + 1) % cfg.knn_every == 0
                                                      or final):
        record.update(_knn_monitor(run))
    run.history.append(record)
    if run.info.is_main:
        improved = record.get("knn_top1", -1.0) > run.best
        run.best = max(run.best, record.get("knn_top1", -1.0))
        _save(run, "last.pt", epoch + 1, 0)
        if improved or run.bank is None:
            _save(run, "best.pt", epoch + 1, 0)
        _write_history(run.out, run.history)
        knn = f", kNN {record['knn_top1']:.1%}" if "knn_top1" in record else ""
        run.log(f"epoch {epoch + 1}/{cfg.epochs}: loss {loss:.4f}, "
                f"{record['images_per_s']:.0f} img/s{knn}", flush=True)
    barrier(run.info)


@contextmanager
def _stop_on_signals():
    """Turn SIGINT/SIGTERM into a flag the loop checks after each step.

    ``flag["why"]`` is ``None`` until a stop is asked for, then says why ("signal 2").
    """
    flag: dict = {"why": None}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, _frame):
        flag["why"] = f"signal {signum}"

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def fit(cfg: TrainConfig, *, resume: str | Path | None = None, overwrite: bool = False,
        stop_after_steps: int | None = None) -> FitResult:
    """Pre-train SimCLR as ``cfg`` says and write the run to ``cfg.out``.

    Args:
        cfg: the run's settings (see :class:`~simclr_lib.config.TrainConfig`).
        resume: a run directory (or checkpoint) to continue exactly where it stopped; its
            own config is used and ``cfg`` is ignored.
        overwrite: allow starting a new run in a directory that already holds one.
        stop_after_steps: stop after this many optimisation steps of this call, exactly as
            SIGINT would stop it there (checkpoint, then ``TrainingInterrupted``): a
            deterministic stand-in for Ctrl-C or Jupyter's stop button, which send SIGINT.
            Not part of the config, so a resumed run does not inherit it. Under DDP the
            stop lands on the next step where the ranks agree on stopping (every 10 steps).
            A run that ends before that step simply ends.

    Returns:
        A :class:`FitResult` with the trained model, the per-epoch history and the run dir.

    Raises:
        ValueError: invalid settings (with the fix in the message).
        CheckpointError: ``resume`` names no readable checkpoint.
        NonFiniteLossError: the loss diverged; ``last.pt`` still holds the last good epoch.
        TrainingInterrupted: SIGINT/SIGTERM or ``stop_after_steps``; a checkpoint was
            saved first.

    Example:
        >>> fit(cfg, stop_after_steps=10)  # doctest: +SKIP  (TrainingInterrupted)
        >>> fit(None, resume=cfg.out)      # doctest: +SKIP  (the rest of the run)
    """
    ckpt = None
    if resume is not None:
        ckpt = load_checkpoint(resume)
        cfg = dataclasses.replace(config_from_dict(ckpt["config"]), out=str(run_dir_of(resume)))
    cfg.validate()
    if stop_after_steps is not None and stop_after_steps < 1:
        raise ValueError(f"stop_after_steps must be >= 1 or None, got {stop_after_steps}")
    device = resolve_device(cfg.device)
    info = init_distributed(device.type)
    try:
        run = _set_up(cfg, device, info, ckpt is not None, overwrite)
        if ckpt is not None:
            _restore(run, ckpt)
        run.stop_after = stop_after_steps
        if info.is_main:
            run.out.mkdir(parents=True, exist_ok=True)
            (run.out / "config.json").write_text(json.dumps(config_to_dict(cfg), indent=2)
                                                 + "\n")
        with _stop_on_signals() as flag:
            for epoch in range(run.start_epoch, cfg.epochs):
                first = run.start_step if epoch == run.start_epoch else 0
                run.model.train()
                loss, done, elapsed = _run_epoch(run, epoch, first, flag)
                _end_epoch(run, epoch, loss, done, elapsed)
                if _max_steps_reached(cfg, epoch, run.steps):
                    break
                if _stop_requested(run, flag, run.steps - 1) and epoch + 1 < cfg.epochs:
                    raise TrainingInterrupted(
                        f"stopped by {flag['why'] or 'a signal on another rank'} after "
                        f"epoch {epoch + 1}; checkpoint saved. Continue with: "
                        f"python -m simclr_lib train --resume {run.out}")
        run.log(f"wrote config.json, history.jsonl, last.pt and best.pt to {run.out}")
        return FitResult(run.model, run.history, run.out, cfg)
    finally:
        cleanup(info)
