"""Tests of simclr_lib.evaluate, .diagnostics and .baselines against known answers."""

import copy
import math

import numpy as np
import pytest
import torch

from simclr_lib import baselines
from simclr_lib.baselines import (
    crop_flip,
    fine_tune,
    random_encoder_baseline,
    raw_pixels_baseline,
    reinitialised,
    supervised_baseline,
)
from simclr_lib.diagnostics import (
    alignment,
    effective_rank,
    nearest_neighbours,
    positive_pair_retrieval,
    uniformity,
)
from simclr_lib.evaluate import (
    balanced_subset,
    capped_knn_k,
    extract_features,
    knn_accuracy,
    label_efficiency,
    linear_probe,
    linear_probe_encoder,
    logistic_regression,
)
from simclr_lib.models import ProjectionHead, build_encoder

WDS = (0, 1e-4, 1e-2)  # a short grid keeps the probe tests fast


def clusters(n, num_classes=5, dim=16, noise=0.3, seed=0):
    """Gaussian clusters around orthogonal centres of norm 3, labels cycling 0..C-1."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % num_classes
    centres = 3 * torch.eye(num_classes, dim)
    return centres[y] + noise * torch.randn(n, dim, generator=g), y


def colour_images(n, num_classes=2, size=8, seed=0):
    """uint8 images whose class is the dominant colour channel (trivially learnable)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % num_classes
    x = torch.randint(0, 80, (n, 3, size, size), generator=g)
    x[torch.arange(n), y] += 150
    return x.to(torch.uint8), y


def tiny_encoder(seed=0):
    torch.manual_seed(seed)
    return build_encoder("small_cnn", width=4)  # feature_dim 32


def state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# ------------------------------------------------------------------------------ features

def test_extract_features_equals_encoder_in_eval_mode_and_restores_mode():
    f = tiny_encoder()
    f.train()
    f.features[1].eval()  # a mixed state must come back exactly as it was
    modes = [m.training for m in f.modules()]
    x = torch.randint(0, 256, (10, 3, 16, 16), dtype=torch.uint8)
    h = extract_features(f, x, batch_size=3)
    assert [m.training for m in f.modules()] == modes
    assert h.dtype == torch.float32 and h.device.type == "cpu" and h.shape == (10, 32)
    ref = copy.deepcopy(f).eval()
    with torch.no_grad():
        expected = ref(x.float() / 255)
    torch.testing.assert_close(h, expected)
    torch.testing.assert_close(extract_features(f, x, batch_size=7), h)  # deterministic
    torch.testing.assert_close(extract_features(f, x.float() / 255), h)  # float input


def test_extract_features_with_head_and_dataset_object():
    f, g = tiny_encoder(), ProjectionHead(32, 16, 8)
    x = torch.rand(6, 3, 8, 8)

    class DS:
        images = x

    h, z = extract_features(f, DS(), head=g)
    assert h.shape == (6, 32) and z.shape == (6, 8)
    with torch.no_grad():
        torch.testing.assert_close(z, g.eval()(h))
    with pytest.raises(ValueError, match="image tensor"):
        extract_features(f, torch.rand(6, 8))


# ----------------------------------------------------------------------------------- kNN

def test_knn_on_separated_clusters_is_perfect():
    tr_h, tr_y = clusters(200, seed=0)
    te_h, te_y = clusters(100, seed=1)
    r = knn_accuracy(tr_h, tr_y, te_h, te_y, k=20)
    assert r["top1"] == 1.0 and r["top5"] == 1.0


def test_knn_on_random_labels_is_chance():
    g = torch.Generator().manual_seed(0)
    tr_h, te_h = torch.randn(2000, 16, generator=g), torch.randn(1000, 16, generator=g)
    tr_y, te_y = torch.randint(0, 10, (2000,), generator=g), torch.randint(0, 10, (1000,),
                                                                           generator=g)
    r = knn_accuracy(tr_h, tr_y, te_h, te_y, k=20)
    assert abs(r["top1"] - 0.1) < 0.04  # 4 standard errors
    assert abs(r["top5"] - 0.5) < 0.07


@pytest.mark.parametrize("k,temperature,expected", [
    (1, 0.1, 1.0),  # the nearest neighbour is class 0
    (3, 0.1, 1.0),  # class 0: e^10 = 22026 > class 1: e^8 + e^0 = 2982
    (3, 1.0, 0.0),  # class 0: e^1 = 2.72 < class 1: e^0.8 + e^0 = 3.23
])
def test_knn_hand_computed(k, temperature, expected):
    # cosine similarities to the query (1, 0): 1 (class 0), 0.8 (class 1), 0 (class 1),
    # -1 (class 2)
    train_h = torch.tensor([[2.0, 0.0], [0.8, 0.6], [0.0, 3.0], [-1.0, 0.0]])
    train_y = torch.tensor([0, 1, 1, 2])
    r = knn_accuracy(train_h, train_y, torch.tensor([[5.0, 0.0]]), torch.tensor([0]), k=k,
                     temperature=temperature)
    assert r["top1"] == expected
    assert r["top5"] == 1.0  # 3 classes: always in the top 5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_knn_top5_at_least_top1_and_chunking_does_not_matter(seed):
    tr_h, tr_y = clusters(300, num_classes=10, noise=3.0, seed=seed)
    te_h, te_y = clusters(77, num_classes=10, noise=3.0, seed=seed + 10)
    r = knn_accuracy(tr_h, tr_y, te_h, te_y, k=15)
    assert r["top5"] >= r["top1"] and 0 < r["top1"] < 1
    assert knn_accuracy(tr_h, tr_y, te_h, te_y, k=15, chunk_size=8) == r


def test_knn_clips_k_and_rejects_bad_input():
    h, y = clusters(20)
    assert knn_accuracy(h, y, h, y, k=10_000)["k"] == 20
    with pytest.raises(ValueError, match="temperature"):
        knn_accuracy(h, y, h, y, temperature=0)
    with pytest.raises(ValueError, match="unlabelled"):
        knn_accuracy(h, torch.full_like(y, -1), h, y)
    with pytest.raises(ValueError, match="same N"):
        knn_accuracy(h, y[:5], h, y)


# -------------------------------------------------------------------------- linear probe

def test_linear_probe_on_separable_features():
    (tr_h, tr_y), (va_h, va_y), (te_h, te_y) = (clusters(n, seed=s) for n, s in
                                                 ((200, 0), (50, 1), (100, 2)))
    r = linear_probe(tr_h, tr_y, va_h, va_y, te_h, te_y, weight_decays=WDS, epochs=50)
    assert r["top1"] >= 0.98 and r["top5"] >= r["top1"]
    assert r["weight_decay"] in WDS and set(r["val_accs"]) == set(WDS)
    assert r["val_top1"] == max(r["val_accs"].values())


def test_linear_probe_never_looks_at_test_labels():
    # overlapping classes in many dimensions: the weight decay matters on validation
    g = torch.Generator().manual_seed(0)
    w = torch.randn(64, 3, generator=g)

    def data(n):
        h = torch.randn(n, 64, generator=g)
        return h, (h @ w + 2.0 * torch.randn(n, 3, generator=g)).argmax(1)

    tr, va, te = data(120), data(200), data(300)
    grid = (0, 1e-2, 1.0)
    r = linear_probe(*tr, *va, *te, weight_decays=grid, epochs=50)
    assert len(set(r["val_accs"].values())) > 1  # the choice is not trivial
    assert r["val_accs"][r["weight_decay"]] == r["val_top1"] == max(r["val_accs"].values())
    shuffled = te[1][torch.randperm(300, generator=g)]
    r2 = linear_probe(*tr, *va, te[0], shuffled, weight_decays=grid, epochs=50)
    assert r2["weight_decay"] == r["weight_decay"] and r2["val_accs"] == r["val_accs"]
    assert r2["top1"] != r["top1"]


def test_linear_probe_without_val_holds_out_part_of_train_deterministically():
    tr, te = clusters(100, seed=0), clusters(50, seed=1)
    a = linear_probe(*tr, None, None, *te, weight_decays=WDS, epochs=30)
    b = linear_probe(*tr, None, None, *te, weight_decays=WDS, epochs=30)
    assert a == b and a["top1"] >= 0.98


def test_logistic_regression_agrees_with_torch_probe():
    tr, va, te = (clusters(n, noise=1.5, seed=s) for n, s in ((300, 0), (100, 1), (300, 2)))
    torch_acc = linear_probe(*tr, *va, *te, weight_decays=WDS, epochs=50)["top1"]
    sk_acc = logistic_regression(*tr, *te)["top1"]
    assert 0.5 < sk_acc and abs(sk_acc - torch_acc) <= 0.05


def test_linear_probe_encoder_leaves_the_encoder_untouched():
    f = tiny_encoder()
    f.train()  # BatchNorm would update its running statistics if it saw a batch in train mode
    before = state(f)
    x, y = colour_images(40, size=8)
    r = linear_probe_encoder(f, (x[:20], y[:20]), (x[20:30], y[20:30]), (x[30:], y[30:]),
                             batch_size=8, weight_decays=WDS, epochs=20)
    # The same as extracting the features by hand and probing them.
    h = extract_features(copy.deepcopy(f), x, batch_size=8)
    assert r == linear_probe(h[:20], y[:20], h[20:30], y[20:30], h[30:], y[30:],
                             weight_decays=WDS, epochs=20)
    assert_same_state(before, state(f))  # parameters and BN buffers
    assert f.training and all(m.training for m in f.modules())
    assert all(p.grad is None for p in f.parameters())


# ---------------------------------------------------------------------- label efficiency

def test_balanced_subset_is_exactly_balanced_and_reproducible():
    labels = torch.tensor([0] * 10 + [1] * 7 + [2] * 5 + [-1] * 4)
    idx = balanced_subset(labels, 3, torch.Generator().manual_seed(0))
    assert idx.unique().numel() == idx.numel() == 9
    assert ((idx >= 0) & (idx < labels.numel())).all()
    assert torch.bincount(labels[idx]).tolist() == [3, 3, 3]
    again = balanced_subset(labels, 3, torch.Generator().manual_seed(0))
    assert torch.equal(idx, again)
    others = [balanced_subset(labels, 3, torch.Generator().manual_seed(s)) for s in range(1, 5)]
    assert any(not torch.equal(idx, o) for o in others)
    with pytest.raises(ValueError, match="class 2 has only 5"):
        balanced_subset(labels, 6)
    with pytest.raises(ValueError, match="per_class"):
        balanced_subset(labels, 0)


def test_label_efficiency_levels_repeats_and_all_labels():
    # dim = num_classes: no pure-noise dimensions for standardisation to blow up
    tr, te = clusters(100, dim=5, seed=0), clusters(50, dim=5, seed=1)
    res = label_efficiency(*tr, *te, labels_per_class=(1, 5, None), repeats=3, epochs=30)
    assert [r["labels_per_class"] for r in res] == [1, 5, None]
    assert [r["n_labels"] for r in res] == [5, 25, 100]
    assert [len(r["accs"]) for r in res] == [3, 3, 1]
    for r in res:
        assert r["mean"] == pytest.approx(float(np.mean(r["accs"])))
        expected_std = float(np.std(r["accs"], ddof=1)) if len(r["accs"]) > 1 else 0.0
        assert r["std"] == pytest.approx(expected_std)
    assert res[-1]["mean"] == 1.0 and res[0]["mean"] >= 0.9  # one label each suffices here
    with pytest.warns(UserWarning, match="skipping labels_per_class=50"):
        res = label_efficiency(*tr, *te, labels_per_class=(1, 50), repeats=1, epochs=10)
    assert [r["labels_per_class"] for r in res] == [1]


def test_label_efficiency_subsets_differ_between_repeats():
    tr, te = clusters(200, num_classes=4, noise=3.0, seed=0), clusters(200, num_classes=4,
                                                                       noise=3.0, seed=1)
    accs = label_efficiency(*tr, *te, labels_per_class=(2,), repeats=4, epochs=20)[0]["accs"]
    assert len(set(accs)) > 1


# --------------------------------------------------------------------------- diagnostics

def test_alignment_closed_forms():
    z = torch.randn(5, 8)
    assert alignment(z, 2.5 * z).item() == pytest.approx(0.0, abs=1e-6)
    assert alignment(z, -z).item() == pytest.approx(4.0)  # antipodal: |2|^2
    assert alignment(z, -z, alpha=1).item() == pytest.approx(2.0)
    e = torch.eye(2)
    assert alignment(e[:1], e[1:]).item() == pytest.approx(2.0)  # orthogonal: |sqrt 2|^2
    assert alignment(e[:1], e[1:], alpha=3).item() == pytest.approx(2 ** 1.5)
    with pytest.raises(ValueError, match="alpha"):
        alignment(z, z, alpha=0)


@pytest.mark.parametrize("t", [0.5, 2.0, 5.0])
def test_uniformity_closed_forms_and_brute_force(t):
    assert uniformity(torch.tensor([[3.0, 0.0], [-1.0, 0.0]]), t=t).item() == pytest.approx(
        math.log(math.exp(-4 * t)))
    assert uniformity(torch.ones(4, 3), t=t).item() == pytest.approx(0.0, abs=1e-6)
    z = torch.randn(7, 4, dtype=torch.float64)
    u = torch.nn.functional.normalize(z, dim=1).tolist()
    terms = [math.exp(-t * sum((a - b) ** 2 for a, b in zip(u[i], u[j], strict=True)))
             for i in range(7) for j in range(i + 1, 7)]
    assert uniformity(z, t=t).item() == pytest.approx(math.log(sum(terms) / len(terms)),
                                                      rel=1e-5)


@pytest.mark.parametrize("k", [1, 3, 6])
def test_effective_rank_counts_equal_variance_directions(k):
    g = torch.Generator().manual_seed(k)
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=g, dtype=torch.float64))
    coeff = torch.cat([torch.eye(k), -torch.eye(k)]).double()  # (2k, k): +-1 along each axis
    h = coeff @ q[:, :k].T + 5.0  # k orthonormal directions, offset removed by centring
    assert effective_rank(h) == pytest.approx(k, rel=1e-6)


def test_effective_rank_brute_force_and_collapse():
    h = torch.randn(30, 6, dtype=torch.float64)
    s = np.linalg.svd((h - h.mean(0)).numpy(), compute_uv=False)
    p = s / s.sum()
    assert effective_rank(h) == pytest.approx(float(np.exp(-(p * np.log(p)).sum())))
    assert effective_rank(torch.ones(10, 4)) == 0.0
    line = torch.randn(10, 1) * torch.randn(1, 4)  # everything along one direction
    assert effective_rank(line) == pytest.approx(1.0, rel=1e-5)


def test_positive_pair_retrieval():
    z = torch.randn(50, 8)
    assert positive_pair_retrieval(z, z) == 1.0
    assert positive_pair_retrieval(z, 3 * z, chunk_size=7) == 1.0
    assert positive_pair_retrieval(z, z.roll(1, dims=0)) == 0.0
    assert positive_pair_retrieval(z, torch.cat([z[:25], z[25:].roll(1, dims=0)])) == 0.5


def test_nearest_neighbours_matches_brute_force():
    bank, query = torch.randn(40, 6), torch.randn(9, 6)
    idx = nearest_neighbours(query, bank, k=5, chunk_size=4)
    bn = bank / bank.norm(dim=1, keepdim=True)
    qn = query / query.norm(dim=1, keepdim=True)
    assert torch.equal(idx, (qn @ bn.T).argsort(dim=1, descending=True)[:, :5])
    assert torch.equal(nearest_neighbours(bank, bank, k=1)[:, 0], torch.arange(40))
    with pytest.raises(ValueError, match="k must be"):
        nearest_neighbours(query, bank, k=41)


# ----------------------------------------------------------------- baselines, fine-tuning

def test_crop_flip_shapes_and_content():
    x = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    y = crop_flip(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.dtype == torch.uint8
    assert torch.equal(y, crop_flip(x, torch.Generator().manual_seed(0)))
    no_crop = crop_flip(x, torch.Generator().manual_seed(1), padding=0)
    flipped = [torch.equal(a, b.flip(-1)) for a, b in zip(no_crop, x, strict=True)]
    kept = [torch.equal(a, b) for a, b in zip(no_crop, x, strict=True)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert any(flipped) and any(kept)


def test_reinitialised_is_fresh_reproducible_and_leaves_the_original():
    f = tiny_encoder()
    before = state(f)
    rng = torch.random.get_rng_state()
    a, b = reinitialised(f, seed=3), reinitialised(f, seed=3)
    assert torch.equal(torch.random.get_rng_state(), rng)
    assert_same_state(before, state(f))
    assert_same_state(state(a), state(b))
    assert not torch.equal(a.features[0].weight, f.features[0].weight)


def test_fine_tune_copies_the_encoder_and_from_scratch_differs():
    f = tiny_encoder().eval()
    (x, y), (xt, yt) = colour_images(40, seed=0), colour_images(20, seed=1)
    with torch.no_grad():  # make the "pre-trained" weights differ from a re-initialisation
        f.features[0].weight.mul_(3)
    before = state(f)
    kw = dict(fraction=0.5, epochs=2, batch_size=8, seed=0)
    pre = fine_tune(f, x, y, xt, yt, **kw)
    scratch = fine_tune(f, x, y, xt, yt, from_scratch=True, **kw)
    assert_same_state(before, state(f))
    assert not f.training
    assert pre["n_labels"] == 20 and pre["labels_per_class"] == 10
    assert pre["top5"] >= pre["top1"]
    assert scratch["from_scratch"] and not pre["from_scratch"]
    assert pre["final_loss"] != scratch["final_loss"]
    assert fine_tune(f, x, y, xt, yt, **kw) == pre  # seeded: reproducible


def test_fine_tune_learns_a_separable_task_from_few_labels():
    # Colour decides the class: with 10% of the labels, fine-tuning must get far above the
    # 50% of chance on unseen test images.
    (x, y), (xt, yt) = colour_images(200, seed=0), colour_images(100, seed=1)
    r = fine_tune(tiny_encoder(), x, y, xt, yt, fraction=0.1, epochs=15, batch_size=8,
                  lr=0.1, seed=0)
    assert r["n_labels"] == 20
    assert r["top1"] >= 0.9, r
    assert r["final_loss"] < 0.3, r


def test_supervised_baseline_learns_an_easy_task():
    (x, y), (xt, yt) = colour_images(64, seed=0), colour_images(32, seed=1)
    r = supervised_baseline(lambda: build_encoder("small_cnn", width=4), x, y, xt, yt,
                            epochs=8, batch_size=16, lr=0.1, device="cpu")
    assert r["top1"] >= 0.9


def test_random_encoder_and_raw_pixel_baselines():
    (x, y), (xt, yt) = colour_images(60, seed=0), colour_images(30, seed=1)
    raw = raw_pixels_baseline(x, y, xt, yt, k=5, weight_decays=WDS, epochs=30)
    assert raw["knn_top1"] == 1.0 and raw["linear_top1"] == 1.0
    f = tiny_encoder()
    before = state(f)
    rnd = random_encoder_baseline(f, x, y, xt, yt, k=5, weight_decays=WDS, epochs=30)
    assert_same_state(before, state(f))
    assert set(rnd) == {"knn_top1", "knn_top5", "linear_top1", "linear_top5",
                        "linear_val_top1", "weight_decay"}
    # Random convolutions keep the mean colour that decides the class here.
    assert rnd["linear_top1"] >= 0.9 and rnd["knn_top1"] >= 0.9, rnd


def test_baselines_choose_the_weight_decay_on_the_validation_split_they_are_given():
    # The same protocol as the SimCLR features: kNN on train, probe chosen on val, test once.
    # The validation labels are inverted, so a probe that really validates on them scores
    # near 0 there, where a split held out of train would give near 1.
    (x, y), (xv, yv), (xt, yt) = (colour_images(n, seed=s) for n, s in ((60, 0), (30, 2),
                                                                         (30, 1)))
    kw = dict(k=5, weight_decays=WDS, epochs=30)
    f = tiny_encoder()
    rnd = random_encoder_baseline(f, x, y, xt, yt, val_images=xv, val_labels=1 - yv, seed=4,
                                  **kw)
    fresh = reinitialised(f, 4)
    h, hv, ht = (extract_features(fresh, a) for a in (x, xv, xt))
    probe = linear_probe(h, y, hv, 1 - yv, ht, yt, weight_decays=WDS, epochs=30)
    assert rnd["linear_val_top1"] == probe["val_top1"] < 0.5
    assert (rnd["linear_top1"], rnd["weight_decay"]) == (probe["top1"], probe["weight_decay"])
    assert rnd["knn_top1"] == knn_accuracy(h, y, ht, yt, k=5)["top1"]
    raw = raw_pixels_baseline(x, y, xt, yt, val_images=xv, val_labels=1 - yv, **kw)
    assert raw["linear_val_top1"] < 0.5
    assert raw_pixels_baseline(x, y, xt, yt, **kw)["linear_val_top1"] > 0.9  # held out of train


class _DeviceProbe(torch.nn.Module):
    """An encoder that records the devices of its weight and input at every call.

    On the ``meta`` device (shapes only, no data) a mismatch is the error a CUDA run shows;
    the features it returns are CPU zeros, so the caller's code runs to the end.
    """

    feature_dim = 4
    calls: list = []  # shared by copies: a class attribute is not deep-copied

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(3))
        _DeviceProbe.calls = []

    def forward(self, x):
        _DeviceProbe.calls.append((self.weight.device.type, x.device.type))
        return torch.zeros(x.shape[0], self.feature_dim)


def test_extract_features_runs_a_copy_of_the_encoder_on_the_device_asked_for():
    f = _DeviceProbe()
    extract_features(f, torch.zeros(10, 3, 4, 4, dtype=torch.uint8), 4, device="meta")
    assert _DeviceProbe.calls == [("meta", "meta")] * 3  # weights and batches on the same device
    assert f.weight.device.type == "cpu"  # the caller's encoder was not moved
    assert torch.equal(f.weight.detach(), torch.ones(3))


def test_random_encoder_baseline_runs_on_the_device_asked_for():
    # The eval --baselines crash on a GPU: the fresh encoder stayed on the CPU.
    (x, y), (xt, yt) = colour_images(20, seed=0), colour_images(10, seed=1)
    random_encoder_baseline(_DeviceProbe, x, y, xt, yt, k=3, device="meta",
                            weight_decays=(0,), epochs=2)
    calls = _DeviceProbe.calls
    assert calls and all(c == ("meta", "meta") for c in calls), calls


def test_evaluate_does_not_import_baselines_and_nothing_reexports():
    import importlib
    import subprocess
    import sys

    code = ("import sys, simclr_lib.evaluate; "
            "print('simclr_lib.baselines' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"
    evaluate_module = importlib.import_module("simclr_lib.evaluate")
    assert not hasattr(evaluate_module, "fine_tune")
    assert not hasattr(evaluate_module, "__getattr__")
    assert baselines.__name__ == "simclr_lib.baselines"


@pytest.mark.parametrize("per_class, classes, k, expected", [
    (5000, 10, 200, 200),  # CIFAR-10: k = 200 is 4% of a class, left alone
    (500, 100, 200, 200),  # CIFAR-100 and shapes: 500 per class, left alone
    (60, 5, 200, 30),      # a folder of 300 photos: half a class
    (60, 5, 20, 20),       # a k already small enough
    (1, 3, 200, 1),        # at least one neighbour
])
def test_capped_knn_k(per_class, classes, k, expected):
    labels = torch.arange(classes).repeat_interleave(per_class)
    assert capped_knn_k(labels, k) == expected


def test_capped_knn_k_ignores_unlabelled_and_uses_the_median_class():
    labels = torch.tensor([0] * 40 + [1] * 40 + [2] * 2 + [-1] * 500)
    assert capped_knn_k(labels, 200) == 20
    assert capped_knn_k(torch.full((10,), -1), 200) == 200
