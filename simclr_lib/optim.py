"""LARS and the linear-warmup + cosine learning-rate schedule of SimCLR.

SimCLR (Chen et al., ICML 2020, Section 2.2 and Appendix B.1) trains with large batches
using LARS (You et al., "Large Batch Training of Convolutional Networks", 2017): every
weight tensor gets its own learning rate, proportional to ``||w|| / ||g||`` (the *trust
ratio*), so that no layer's update is large relative to its weights. Biases and
BatchNorm parameters are excluded from both the adaptation and the weight decay, as in the
paper's code. The learning rate warms up linearly for 10 epochs and then decays with a
cosine schedule without restarts, stepped every iteration.

Introduced in notebooks/04_training.ipynb.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from .config import TrainConfig


class LARS(torch.optim.Optimizer):
    """Layer-wise Adaptive Rate Scaling with momentum (SimCLR's optimizer).

    For a parameter ``w`` with gradient ``g`` in a group with ``exclude=False``::

        g = g + weight_decay * w
        trust = eta * ||w|| / ||g||    (1 when either norm is 0)
        v = momentum * v + lr * trust * g
        w = w - v

    Parameters in a group with ``exclude=True`` (biases, BatchNorm) use ``trust = 1`` and no
    weight decay, i.e. plain SGD with momentum. :func:`param_groups` builds such groups.

    Args:
        params: parameters or parameter groups (a group may set ``exclude``).
        lr: learning rate (after batch-size scaling).
        momentum: momentum factor.
        weight_decay: L2 penalty added to the gradient before the trust ratio.
        eta: trust coefficient (0.001 in SimCLR).
        nesterov: use Nesterov momentum.
        foreach: update all tensors of a group with a handful of ``torch._foreach_*`` calls
            (one kernel launch per op for the whole group) instead of ~10 launches per
            tensor; ``None`` (default): on when every parameter is on one CUDA device,
            where launch overhead is what a small-image step waits for. Both give the same
            update (tested).

    Example:
        >>> model = nn.Linear(4, 2)
        >>> opt = LARS(param_groups(model, weight_decay=1e-6), lr=0.3)
    """

    def __init__(self, params: Iterable, lr: float, momentum: float = 0.9,
                 weight_decay: float = 0.0, eta: float = 0.001, nesterov: bool = False,
                 foreach: bool | None = None) -> None:
        if lr < 0:
            raise ValueError(f"lr must be >= 0, got {lr}")
        if eta <= 0:
            raise ValueError(f"eta must be > 0, got {eta}")
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta,
                        nesterov=nesterov, exclude=False)
        super().__init__(params, defaults)
        self.foreach = foreach

    def _use_foreach(self, params: list[torch.Tensor]) -> bool:
        if self.foreach is not None:
            return self.foreach
        devices = {p.device for p in params}
        return len(devices) == 1 and next(iter(devices)).type == "cuda"

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102 - documented on the class
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params and self._use_foreach(params):
                self._step_foreach(group, params)
                continue
            lr, momentum, eta = group["lr"], group["momentum"], group["eta"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if not group["exclude"]:
                    if group["weight_decay"] != 0:
                        g = g.add(p, alpha=group["weight_decay"])
                    w_norm = torch.linalg.vector_norm(p)
                    g_norm = torch.linalg.vector_norm(g)
                    # No .item(): stays on the device, no host synchronisation.
                    trust = torch.where((w_norm > 0) & (g_norm > 0),
                                        eta * w_norm / g_norm.clamp_min(1e-12),
                                        torch.ones_like(w_norm))
                    g = g * trust
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                v = state["momentum_buffer"]
                v.mul_(momentum).add_(g, alpha=lr)
                update = v.mul(momentum).add(g, alpha=lr) if group["nesterov"] else v
                p.sub_(update)
        return loss

    def _step_foreach(self, group: dict, params: list[torch.Tensor]) -> None:
        """The update of :meth:`step` for a whole group, with ``torch._foreach_*`` ops."""
        lr, momentum, eta = group["lr"], group["momentum"], group["eta"]
        grads = [p.grad for p in params]
        if not group["exclude"]:
            if group["weight_decay"] != 0:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
            w_norm = torch.stack(torch._foreach_norm(params))  # (P,) one norm per tensor
            g_norm = torch.stack(torch._foreach_norm(grads))
            trust = torch.where((w_norm > 0) & (g_norm > 0),
                                eta * w_norm / g_norm.clamp_min(1e-12), torch.ones_like(w_norm))
            grads = torch._foreach_mul(grads, list(trust.unbind()))
        for p in params:
            if "momentum_buffer" not in self.state[p]:
                self.state[p]["momentum_buffer"] = torch.zeros_like(p)
        bufs = [self.state[p]["momentum_buffer"] for p in params]
        torch._foreach_mul_(bufs, momentum)
        torch._foreach_add_(bufs, grads, alpha=lr)
        if group["nesterov"]:
            update = torch._foreach_mul(bufs, momentum)
            torch._foreach_add_(update, grads, alpha=lr)
        else:
            update = bufs
        torch._foreach_sub_(params, update)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Split parameters into a decayed group and an excluded group (biases, BatchNorm).

    Tensors with one dimension or fewer (biases, BatchNorm/LayerNorm scales and shifts) get
    no weight decay and, under LARS, no trust-ratio adaptation (SimCLR, Appendix B.1).

    Returns:
        Two parameter groups, ``[{"params": weights, "weight_decay": wd},
        {"params": others, "weight_decay": 0.0, "exclude": True}]``.
    """
    decay, exclude = [], []
    for p in model.parameters():
        if p.requires_grad:
            (exclude if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay, "exclude": False},
            {"params": exclude, "weight_decay": 0.0, "exclude": True}]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer named by ``cfg.optimizer`` with the scaled learning rate.

    Biases and BatchNorm parameters get no weight decay for every optimizer.
    """
    lr = cfg.effective_lr()
    groups = param_groups(model, cfg.weight_decay)
    if cfg.optimizer == "lars":
        return LARS(groups, lr=lr, momentum=cfg.momentum)
    for g in groups:
        g.pop("exclude")
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum)
    if cfg.optimizer == "adamw":
        # The fused kernel (one launch for every tensor) where it exists: on CUDA.
        fused = all(p.is_cuda for g in groups for p in g["params"]) or None
        return torch.optim.AdamW(groups, lr=lr, fused=fused)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; choose lars, sgd or adamw")


def warmup_cosine_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Multiplier of the peak learning rate at iteration ``step`` (0-based).

    Linear warm-up from ``1 / warmup_steps`` to 1 over ``warmup_steps`` iterations, then
    cosine decay from 1 to 0 at ``total_steps`` (SGDR without restarts, Loshchilov & Hutter
    2017).
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int,
                  total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """A scheduler to step once per iteration (not per epoch): warm-up, then cosine to 0.

    Args:
        optimizer: its groups' ``lr`` is the peak learning rate.
        warmup_steps: iterations of linear warm-up (``warmup_epochs * steps_per_epoch``).
        total_steps: all iterations of the run (``epochs * steps_per_epoch``).

    Raises:
        ValueError: when ``total_steps < 1`` or ``warmup_steps`` is negative or too large.
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"warmup_steps must be in [0, total_steps={total_steps}], "
                         f"got {warmup_steps}")
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine_factor(step, warmup_steps, total_steps))
