"""Global negatives: two gloo processes on CPU against one process with the global batch.

Each process holds half of the batch. After DDP-style gradient averaging, the loss and
the gradients must equal those of a single process that holds the whole batch.
Peers shipped gather bugs here for years (Spijkervet/SimCLR#13, lightly#1528).
"""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from simclr_lib.loss import nt_xent

N_GLOBAL, DIM, TAU, WORLD = 8, 5, 0.3, 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _global_batch():
    g = torch.Generator().manual_seed(123)
    x1 = torch.randn(N_GLOBAL, 6, generator=g, dtype=torch.float64)
    x2 = torch.randn(N_GLOBAL, 6, generator=g, dtype=torch.float64)
    w = torch.randn(6, DIM, generator=g, dtype=torch.float64)
    return x1, x2, w


def _worker(rank: int, port: int, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        x1, x2, w = _global_batch()
        w = w.clone().requires_grad_(True)  # a "parameter" shared by both processes
        n = N_GLOBAL // WORLD
        sl = slice(rank * n, (rank + 1) * n)
        loss = nt_xent(x1[sl] @ w, x2[sl] @ w, TAU)
        loss.backward()
        grad = w.grad.clone()
        dist.all_reduce(grad)  # what DDP does: average gradients over processes
        grad /= WORLD
        mean_loss = loss.detach().clone()
        dist.all_reduce(mean_loss)
        mean_loss /= WORLD
        out[rank] = (mean_loss, grad)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process_with_global_batch():
    x1, x2, w = _global_batch()
    w = w.clone().requires_grad_(True)
    loss = nt_xent(x1 @ w, x2 @ w, TAU)
    loss.backward()

    manager = mp.Manager()
    out = manager.dict()
    mp.start_processes(_worker, args=(_free_port(), out), nprocs=WORLD, join=True,
                       start_method="spawn")
    for rank in range(WORLD):
        dist_loss, dist_grad = out[rank]
        torch.testing.assert_close(dist_loss, loss.detach(), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(dist_grad, w.grad, rtol=1e-10, atol=1e-12)
    # and the gathered negatives matter: a per-process loss without them differs
    n = N_GLOBAL // WORLD
    local = nt_xent(x1[:n] @ w, x2[:n] @ w, TAU)
    assert abs(local.item() - loss.item()) > 1e-3
