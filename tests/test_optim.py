"""LARS against a hand transcription of its update rule, its exclusions, and the schedule."""

import math

import pytest
import torch
from torch import nn

from simclr_lib.config import TrainConfig
from simclr_lib.optim import (
    LARS,
    build_optimizer,
    param_groups,
    warmup_cosine,
    warmup_cosine_factor,
)


def _reference_lars_step(w, g, v, lr, momentum, wd, eta):
    """One LARS step written out with Python floats (You et al. 2017, SimCLR's variant)."""
    w, g, v = w.tolist(), g.tolist(), v.tolist()
    g = [gi + wd * wi for gi, wi in zip(g, w, strict=True)]
    w_norm = math.sqrt(sum(x * x for x in w))
    g_norm = math.sqrt(sum(x * x for x in g))
    trust = eta * w_norm / g_norm if w_norm > 0 and g_norm > 0 else 1.0
    v = [momentum * vi + lr * trust * gi for vi, gi in zip(v, g, strict=True)]
    w = [wi - vi for wi, vi in zip(w, v, strict=True)]
    return torch.tensor(w, dtype=torch.float64), torch.tensor(v, dtype=torch.float64)


def test_lars_matches_reference_over_several_steps():
    torch.manual_seed(0)
    w = nn.Parameter(torch.randn(5, 3, dtype=torch.float64))
    opt = LARS([w], lr=0.7, momentum=0.9, weight_decay=1e-2, eta=0.01)
    ref_w, ref_v = w.detach().flatten().clone(), torch.zeros(15, dtype=torch.float64)
    for _ in range(4):
        g = torch.randn(5, 3, dtype=torch.float64)
        w.grad = g.clone()
        opt.step()
        ref_w, ref_v = _reference_lars_step(ref_w, g.flatten(), ref_v, 0.7, 0.9, 1e-2, 0.01)
        torch.testing.assert_close(w.detach().flatten(), ref_w)


def test_lars_trust_ratio_makes_update_independent_of_gradient_scale():
    torch.manual_seed(0)
    updates = []
    for scale in (1.0, 1000.0):
        w = nn.Parameter(torch.ones(4, 4))
        opt = LARS([w], lr=1.0, momentum=0.0, weight_decay=0.0, eta=0.001)
        w.grad = scale * torch.arange(16.0).reshape(4, 4)
        opt.step()
        updates.append(1.0 - w.detach())
    torch.testing.assert_close(updates[0], updates[1])
    # ||update|| = eta * ||w|| exactly.
    assert updates[0].norm().item() == pytest.approx(0.001 * 4.0, rel=1e-5)


def test_lars_excludes_biases_and_batchnorm_from_decay_and_adaptation():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    groups = param_groups(model, weight_decay=0.5)
    decayed = {id(p) for p in groups[0]["params"]}
    excluded = {id(p) for p in groups[1]["params"]}
    assert decayed == {id(model[0].weight)}
    assert excluded == {id(model[0].bias), id(model[1].weight), id(model[1].bias)}
    assert groups[1]["weight_decay"] == 0.0 and groups[1]["exclude"]

    opt = LARS(groups, lr=0.1, momentum=0.0, eta=0.001)
    bias_before = model[0].bias.detach().clone()
    for p in model.parameters():
        p.grad = torch.full_like(p, 2.0)
    opt.step()
    # Excluded: plain SGD, no trust ratio (which would shrink the step ~1000x), no decay.
    torch.testing.assert_close(model[0].bias.detach(), bias_before - 0.1 * 2.0)


def test_lars_zero_weights_fall_back_to_trust_one():
    w = nn.Parameter(torch.zeros(3, 3))
    opt = LARS([w], lr=0.5, momentum=0.0)
    w.grad = torch.ones(3, 3)
    opt.step()
    torch.testing.assert_close(w.detach(), torch.full((3, 3), -0.5))


@pytest.mark.parametrize("name, cls", [("lars", LARS), ("sgd", torch.optim.SGD),
                                       ("adamw", torch.optim.AdamW)])
def test_build_optimizer_scales_lr_and_skips_decay_on_biases(name, cls):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    cfg = TrainConfig(optimizer=name, lr=0.3, batch_size=512, lr_scaling="linear",
                      weight_decay=1e-4)
    opt = build_optimizer(model, cfg)
    assert isinstance(opt, cls)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.6)
    assert opt.param_groups[0]["weight_decay"] == 1e-4
    assert opt.param_groups[1]["weight_decay"] == 0.0


def test_schedule_shape_warmup_then_cosine_to_zero():
    warmup, total = 10, 110
    f = [warmup_cosine_factor(s, warmup, total) for s in range(total)]
    # Linear warm-up, reaching the peak at the end of warm-up.
    assert f[0] == pytest.approx(0.1)
    assert all(b - a == pytest.approx(0.1) for a, b in zip(f[:9], f[1:10], strict=True))
    assert f[9] == pytest.approx(1.0) and f[10] == pytest.approx(1.0)
    # Cosine: half-way through the decay the factor is 0.5, and it ends near 0.
    assert f[60] == pytest.approx(0.5)
    assert f[-1] == pytest.approx(0.5 * (1 + math.cos(math.pi * 99 / 100)))
    assert warmup_cosine_factor(total, warmup, total) == pytest.approx(0.0)
    assert all(b <= a for a, b in zip(f[10:], f[11:], strict=False))


def test_scheduler_is_stepped_per_iteration():
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=2.0)
    sched = warmup_cosine(opt, warmup_steps=4, total_steps=20)
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.5)
    assert lrs[3] == pytest.approx(2.0)
    assert lrs[-1] < 0.05
    with pytest.raises(ValueError, match="warmup_steps"):
        warmup_cosine(opt, warmup_steps=30, total_steps=20)


@pytest.mark.parametrize("nesterov", [False, True])
def test_lars_foreach_update_equals_the_per_tensor_loop(nesterov):
    def run(foreach):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.BatchNorm1d(5),
                                    torch.nn.Linear(5, 3))
        opt = LARS(param_groups(model, 1e-3), lr=0.4, momentum=0.9, eta=0.02,
                   nesterov=nesterov, foreach=foreach)
        x = torch.randn(8, 6, generator=torch.Generator().manual_seed(1))
        for _ in range(3):
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
        return model.state_dict()

    loop, foreach = run(False), run(True)
    for k in loop:
        torch.testing.assert_close(foreach[k], loop[k], rtol=1e-6, atol=1e-7)
    torch.manual_seed(0)  # the same initial weights: the steps did move them
    start = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.BatchNorm1d(5),
                                torch.nn.Linear(5, 3)).state_dict()
    assert not torch.equal(start["0.weight"], loop["0.weight"])
    assert not torch.equal(start["1.bias"], loop["1.bias"])  # the excluded group too


def test_lars_uses_foreach_by_default_on_cuda_only():
    w = torch.nn.Parameter(torch.ones(3))
    assert LARS([w], lr=0.1)._use_foreach([w]) is False
    w_meta = torch.nn.Parameter(torch.ones(3, device="meta"))
    assert LARS([w_meta], lr=0.1)._use_foreach([w_meta]) is False
    assert LARS([w], lr=0.1, foreach=True)._use_foreach([w]) is True
