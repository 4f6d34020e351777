"""DDP on CPU: two gloo processes take the same optimisation step as one process.

The step uses global negatives (``nt_xent`` gathers z with gradients) and DDP averages the
gradients; together they must equal one process holding the whole global batch. The model
has no BatchNorm, because BatchNorm normalises with per-process statistics (SyncBatchNorm
needs CUDA), which legitimately differs from one process.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from simclr_lib.checkpoint import load_checkpoint
from simclr_lib.models import ProjectionHead, SimCLR
from simclr_lib.optim import LARS, param_groups
from simclr_lib.train import train_step

ROOT = Path(__file__).resolve().parents[1]
N, TAU = 8, 0.2


class _Encoder(nn.Module):
    feature_dim = 16

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.Flatten(),
                                 nn.LazyLinear(16))

    def forward(self, x):
        return self.net(x)


def _model():
    torch.manual_seed(0)
    m = SimCLR(_Encoder(), ProjectionHead(16, 32, 8, batch_norm=False)).double()
    m(torch.zeros(2, 3, 8, 8, dtype=torch.float64))  # materialise the lazy layer
    return m


def _views():
    g = torch.Generator().manual_seed(1)
    return (torch.rand(N, 3, 8, 8, generator=g, dtype=torch.float64),
            torch.rand(N, 3, 8, 8, generator=g, dtype=torch.float64))


def _step(model, x_i, x_j):
    opt = LARS(param_groups(model, 1e-4), lr=0.5, momentum=0.9, eta=0.02)
    loss = train_step(model, x_i, x_j, opt, TAU)
    return loss


def _worker(rank, world, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    model = _model()
    ddp = DDP(model)
    x_i, x_j = _views()
    n = N // world
    _step(ddp, x_i[rank * n:(rank + 1) * n], x_j[rank * n:(rank + 1) * n])
    if rank == 0:
        torch.save({k: v.detach() for k, v in model.state_dict().items()}, out)
    dist.barrier()
    dist.destroy_process_group()


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_take_the_same_step_as_one(tmp_path):
    single = _model()
    before = {k: v.clone() for k, v in single.state_dict().items()}
    _step(single, *_views())
    out = tmp_path / "ddp.pt"
    mp.start_processes(_worker, args=(2, _free_port(), str(out)), nprocs=2,
                       start_method="spawn")
    ddp_state = torch.load(out)
    moved = 0
    for k, v in single.state_dict().items():
        torch.testing.assert_close(ddp_state[k], v, rtol=1e-10, atol=1e-12)
        moved += not torch.equal(v, before[k])
    assert moved > 0  # the step changed the parameters, so the comparison means something


def test_torchrun_two_processes_leave_one_history_and_checkpoint(tmp_path):
    out = tmp_path / "run"
    torchrun = Path(sys.executable).with_name("torchrun")
    r = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "simclr_lib", "train",
         "--profile", "ci", "--dataset", "shapes", "--epochs", "2", "--batch-size", "64",
         "--device", "cpu", "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    history = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2]
    assert {p.name for p in out.iterdir() if p.suffix == ".pt"} == {"last.pt", "best.pt"}
    assert r.stdout.count("epoch 2/2") == 1  # only rank 0 prints
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["world_size"] == 2 and ckpt["epoch"] == 2


# ------------------------------------------- fit() under DDP: stop on one rank, then resume

def _fit_worker(rank, world, ports, root):
    """One rank of three 2-process ``fit`` runs in a row (one spawn, so torch is imported
    once): whole; interrupt (SIGINT reaches rank 0 only, in the middle of epoch 2); resume."""
    import signal

    import simclr_lib.train as train_module
    from simclr_lib.config import get_profile

    torch.set_num_threads(1)
    real = train_module.train_step
    for phase, port in zip(("whole", "interrupt", "resume"), ports, strict=True):
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                          WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank))
        out = str(Path(root, "whole" if phase == "whole" else "cut"))
        cfg = get_profile("ci").train
        cfg.out, cfg.epochs, cfg.train_size, cfg.knn_every = out, 2, 1024, 0
        cfg.batch_size, cfg.device, cfg.progress = 64, "cpu", False
        calls = {"n": 0}

        def train_step(*args, _phase=phase, _calls=calls, **kwargs):
            loss = real(*args, **kwargs)
            _calls["n"] += 1
            if _phase == "interrupt" and rank == 0 and _calls["n"] == 16 + 2:
                os.kill(os.getpid(), signal.SIGINT)  # epoch 2, step 2 (16 steps per epoch)
            return loss

        train_module.train_step = train_step
        try:
            if phase == "resume":
                train_module.fit(None, resume=out)
            else:
                train_module.fit(cfg)
        except train_module.TrainingInterrupted as e:
            Path(out, f"interrupted-{rank}").write_text(str(e))


def _spawn_fit(root, timeout=300):
    ports = [_free_port() for _ in range(3)]
    ctx = mp.start_processes(_fit_worker, args=(2, ports, str(root)), nprocs=2,
                             start_method="spawn", join=False)
    deadline = time.monotonic() + timeout
    while not ctx.join(timeout=1):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            raise AssertionError("a run hung (ranks waiting for each other)")


def _epoch_losses(out):
    return [json.loads(x)["loss"] for x in (Path(out) / "history.jsonl").read_text().splitlines()]


def test_ddp_stop_seen_by_one_rank_then_resume_matches_the_uninterrupted_run(tmp_path):
    _spawn_fit(tmp_path)  # rank 1 never sees the signal: the ranks must agree on the stop
    cut = tmp_path / "cut"
    assert {p.name for p in cut.glob("interrupted-*")} == {"interrupted-0", "interrupted-1"}
    assert "at epoch 2, step 10" in (cut / "interrupted-1").read_text()  # mid-epoch 2
    # Every rank continues its own augmentation stream: the losses (means over both ranks'
    # anchors) equal the uninterrupted run's.
    torch.testing.assert_close(torch.tensor(_epoch_losses(cut), dtype=torch.float64),
                               torch.tensor(_epoch_losses(tmp_path / "whole"),
                                            dtype=torch.float64), rtol=1e-6, atol=0)
