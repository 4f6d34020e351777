"""NT-Xent, the normalized temperature-scaled cross-entropy loss of SimCLR.

For a batch of N images, each augmented twice, SimCLR (Chen et al., "A Simple Framework
for Contrastive Learning of Visual Representations", ICML 2020, Eq. 1 and Algorithm 1)
treats each of the 2N views as an *anchor*: its one *positive* is the other view of the
same image and its 2N - 2 *negatives* are the views of every other image. With cosine
similarity ``sim(u, v) = u.v / (|u| |v|)`` and temperature ``tau``::

    l(i, j) = -log  exp(sim(z_i, z_j) / tau) / sum_{k != i} exp(sim(z_i, z_k) / tau)

and the loss is the mean of ``l`` over all 2N anchors. It is a (2N - 1)-way softmax
classification: the "labels" are the column of each anchor's positive.

When a ``torch.distributed`` process group with more than one process is initialised,
every process's embeddings are gathered (gradients flow back to their owners), so each
anchor is contrasted against the negatives of the whole global batch. With DDP's
gradient averaging, the gradients then equal those of one process holding the global
batch (tested in tests/test_loss_distributed.py).

Introduced in notebooks/03_nt_xent_loss.ipynb.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def _world() -> tuple[int, int]:
    """(rank, world_size) of the default process group, or (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sends each slice of the gradient back to its owner.

    Forward: every process receives the concatenation of all processes' ``x`` (K*n, d).
    Backward: the gradient of the gathered tensor is summed over processes (each process
    computed the loss of its own anchors against everyone's embeddings) and each process
    keeps the slice that belongs to its own ``x``.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        world = dist.get_world_size()
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        ctx.rank, ctx.n = dist.get_rank(), x.shape[0]
        return torch.cat(parts)  # (K*n, d)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.n:(ctx.rank + 1) * ctx.n]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` (n, d) from all processes into (K*n, d), differentiably.

    Without a process group (or with one process) this returns ``x`` itself. All
    processes must pass tensors of the same shape.
    """
    _, world = _world()
    if world == 1:
        return x
    return _GatherWithGrad.apply(x)


def _check(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> None:
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if z1.dim() != 2 or z1.shape != z2.shape:
        raise ValueError(
            "z1 and z2 must both have shape (N, D) with the same N and D, got "
            f"{tuple(z1.shape)} and {tuple(z2.shape)}")


def similarity_logits(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5,
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """The logits-and-labels form of NT-Xent for the local anchors.

    Args:
        z1: projections of the first views, (N, D); need not be normalised.
        z2: projections of the second views, (N, D); row ``i`` is the positive of
            ``z1[i]``.
        temperature: ``tau`` > 0.

    Returns:
        ``(logits, labels)``: ``logits`` (2N, 2M) are the cosine similarities of the 2N
        local anchors ``[z1; z2]`` to all 2M candidates ``[Z1; Z2]`` of the global batch
        (M = N on one process), divided by ``tau``, with each anchor's similarity to
        itself set to ``-inf`` (so it drops out of the softmax without subtracting a large
        constant). ``labels`` (2N,) holds the column of each anchor's positive, so that
        ``F.cross_entropy(logits, labels)`` is the NT-Xent loss. Computed in float32
        (float64 inputs stay float64).

    Raises:
        ValueError: temperature <= 0, mismatched shapes, or fewer than 2 pairs in the
            global batch (one pair has no negatives).
    """
    _check(z1, z2, temperature)
    rank, world = _world()
    n = z1.shape[0]
    if n * world < 2:
        raise ValueError(
            f"NT-Xent needs at least 2 pairs in the (global) batch to have negatives, got "
            f"{n * world}; use a batch size of at least 2")
    dtype = torch.promote_types(z1.dtype, torch.float32)  # float32, or float64 for gradcheck
    z1 = F.normalize(z1.to(dtype), dim=1)  # (N, D), unit rows
    z2 = F.normalize(z2.to(dtype), dim=1)
    anchors = torch.cat([z1, z2])  # (2N, D)
    big1, big2 = gather_with_grad(z1), gather_with_grad(z2)  # (M, D) each, M = K*N
    candidates = torch.cat([big1, big2])  # (2M, D)
    m = big1.shape[0]
    logits = (anchors / temperature) @ candidates.T  # (2N, 2M); 1/tau on (2N, D), not on (2N, 2M)
    i = torch.arange(n, device=z1.device)
    own = rank * n + i  # global row of local image i in Z1 (and, shifted by M, in Z2)
    self_cols = torch.cat([own, own + m])  # (2N,) where each anchor meets itself
    labels = torch.cat([own + m, own])  # (2N,) the other view of the same image
    rows = torch.arange(2 * n, device=z1.device)
    minus_inf = torch.full((), float("-inf"), dtype=dtype, device=logits.device)
    # In place: the product's backward needs its inputs, not its output, so no (2N, 2M)
    # copy is made.
    logits.index_put_((rows, self_cols), minus_inf)
    return logits, labels


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """NT-Xent loss of SimCLR (Chen et al. 2020, Eq. 1), averaged over the 2N anchors.

    Inputs are compared by cosine similarity, so they need not be normalised. The loss
    is computed in float32 even under autocast, so bf16/fp16 training cannot overflow
    ``exp(sim / tau)``. In a multi-process ``torch.distributed`` run, negatives come from
    the global batch (see the module docstring).

    Args:
        z1: (N, D) projections ``z = g(f(x_i))`` of the first views.
        z2: (N, D) projections of the second views; ``z2[k]`` pairs with ``z1[k]``.
        temperature: ``tau`` > 0; smaller values sharpen the softmax over negatives.

    Returns:
        A scalar tensor. With all embeddings equal it is ``ln(2N - 1)``: the positive is
        no more similar than any of the 2N - 2 negatives.

    Raises:
        ValueError: temperature <= 0, z1 and z2 of different or non-2-D shapes, or fewer
            than 2 pairs in the global batch.

    Example:
        >>> z1, z2 = torch.randn(8, 128), torch.randn(8, 128)
        >>> nt_xent(z1, z2, temperature=0.5).shape
        torch.Size([])
    """
    device_type = z1.device.type if z1.device.type in ("cuda", "cpu") else "cpu"
    with torch.autocast(device_type=device_type, enabled=False):
        logits, labels = similarity_logits(z1, z2, temperature)
        return F.cross_entropy(logits, labels)


class NTXentLoss(nn.Module):
    """Module form of :func:`nt_xent`.

    Args:
        temperature: ``tau`` > 0 (0.5 in the paper's CIFAR-10 experiments, 0.1 to 0.2 at
            large batch sizes).

    Raises:
        ValueError: temperature <= 0.

    Example:
        >>> loss_fn = NTXentLoss(temperature=0.2)
        >>> loss = loss_fn(torch.randn(4, 16), torch.randn(4, 16))
    """

    def __init__(self, temperature: float = 0.5) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return nt_xent(z1, z2, self.temperature)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"
