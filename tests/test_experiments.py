"""Short scored runs (simclr_lib.experiments), checked against fit() and the evaluate functions
they wrap, and colour histograms against NumPy."""

import dataclasses

import numpy as np
import pytest
import torch

from simclr_lib import experiments
from simclr_lib.augment import BatchedAugment
from simclr_lib.config import get_profile
from simclr_lib.data import load_dataset
from simclr_lib.diagnostics import positive_pair_retrieval
from simclr_lib.evaluate import extract_features, knn_accuracy, linear_probe
from simclr_lib.experiments import (
    Ablation,
    ShortRun,
    colour_histograms,
    pretext_accuracy,
    probe,
    short_run,
    verdict,
)
from simclr_lib.train import fit

N_TRAIN = 128


@pytest.fixture(scope="module")
def cfg():
    return dataclasses.replace(get_profile("ci").train, train_size=N_TRAIN, epochs=2,
                               batch_size=32, progress=False)


@pytest.fixture(scope="module")
def splits():
    # the probe's train split is the run's own training images (same name, seed and size)
    return {"train": load_dataset("shapes", "train", size=N_TRAIN, progress=False),
            "val": load_dataset("shapes", "val", size=60, progress=False),
            "test": load_dataset("shapes", "test", size=80, progress=False)}


@pytest.fixture(scope="module")
def run(cfg, splits):
    return short_run(cfg, splits, pretext_images=64, k=20)


def test_short_run_is_fit_without_the_knn_monitor(cfg, run, tmp_path):
    ref = fit(dataclasses.replace(cfg, knn_every=0, out=str(tmp_path)))
    for a, b in zip(ref.model.state_dict().values(), run.model.state_dict().values(),
                    strict=True):
        torch.testing.assert_close(a, b)
    assert run.config.knn_every == 0 and run.config.temperature == cfg.temperature
    assert [r["loss"] for r in run.history] == [r["loss"] for r in ref.history]
    assert len(run.history) == cfg.epochs and run.loss == run.history[-1]["loss"]
    assert run.seconds > 0


def test_short_run_scores_are_the_evaluate_functions_on_its_model(run, splits):
    f, g = run.model.encoder, run.model.head
    for space in ("h", "z"):
        feats = {}
        for name, ds in splits.items():
            h, z = extract_features(f, ds.images, head=g)
            feats[name] = h if space == "h" else z
        lin = linear_probe(feats["train"], splits["train"].labels, feats["val"],
                           splits["val"].labels, feats["test"], splits["test"].labels)
        knn = knn_accuracy(feats["train"], splits["train"].labels, feats["test"],
                           splits["test"].labels, k=6)  # capped: 128 images, ~13 per class
        assert run.scores[space] == {"linear": lin["top1"], "knn": knn["top1"]}, space
    assert run.linear == run.scores["h"]["linear"] and run.knn == run.scores["h"]["knn"]
    assert run.scores["h"] != run.scores["z"]  # two different spaces


def test_pretext_accuracy_is_retrieval_of_the_runs_own_views(run, splits):
    images = splits["test"].images[:64]
    augment = BatchedAugment(**run.config.augment_kwargs(32))
    g = torch.Generator().manual_seed(0)
    x_i, x_j = augment(images, generator=g), augment(images, generator=g)
    z_i = extract_features(run.model.encoder, x_i, head=run.model.head)[1]
    z_j = extract_features(run.model.encoder, x_j, head=run.model.head)[1]
    assert run.pretext == positive_pair_retrieval(z_i, z_j)
    assert pretext_accuracy(run.model, images, run.config, n=64) == run.pretext
    assert pretext_accuracy(run.model, images, run.config, n=64, seed=1) != run.pretext
    with pytest.raises(ValueError, match="at least 2 images"):
        pretext_accuracy(run.model, images[:1], run.config)


def test_no_projection_head_scores_z_like_h(cfg, splits):
    r = short_run(dataclasses.replace(cfg, head_layers=0, epochs=1), splits,
                  pretext_images=0, k=20)
    assert r.scores["z"] == r.scores["h"]
    assert not list(r.model.head.parameters())
    assert np.isnan(r.pretext)


def test_probe_without_head_and_missing_splits(run, splits):
    scores = probe(run.model.encoder, splits, k=20)
    assert scores == {"h": run.scores["h"]}
    tuples = {name: (ds.images, ds.labels) for name, ds in splits.items()}
    assert probe(run.model.encoder, tuples, k=20) == scores
    with pytest.raises(ValueError, match="missing: val"):
        probe(run.model.encoder, {"train": splits["train"], "test": splits["test"]})
    with pytest.raises(ValueError, match="missing: train, test"):
        short_run(run.config, {"val": splits["val"]})


@pytest.mark.parametrize("bins", [1, 4, 8, 16])
def test_colour_histograms_match_numpy(bins):
    images = torch.randint(0, 256, (5, 3, 7, 9), dtype=torch.uint8)
    hist = colour_histograms(images, bins)
    assert hist.shape == (5, 3 * bins) and hist.dtype == torch.float32
    for n in range(5):
        for c in range(3):
            ref, _ = np.histogram(images[n, c].numpy() / 255, bins=bins, range=(0, 1))
            np.testing.assert_allclose(hist[n, c * bins:(c + 1) * bins].numpy(), ref / 63,
                                       rtol=1e-6)
    # float input in [0, 1] is the same image; pixel order does not matter
    torch.testing.assert_close(colour_histograms(images.float() / 255, bins), hist)
    shuffled = images.flatten(2)[:, :, torch.randperm(63)].view_as(images)
    torch.testing.assert_close(colour_histograms(shuffled, bins), hist)


def test_colour_histograms_errors():
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        colour_histograms(torch.zeros(3, 4, 4))
    with pytest.raises(ValueError, match="bins"):
        colour_histograms(torch.zeros(1, 3, 4, 4), bins=0)


def test_colour_histograms_match_crops_of_one_image_unless_colour_is_distorted():
    # the shortcut of the paper's Figure 6, measured: two crops of one image are found among
    # 200 by their colour histograms alone; after colour distortion much less often
    images = load_dataset("shapes", "test", size=200, progress=False).images
    g = torch.Generator().manual_seed(0)
    hits = {}
    for name, kw in {"crop": dict(jitter_p=0.0, grayscale_p=0.0),
                     "crop + colour": dict(strength=0.5, grayscale_p=0.2)}.items():
        augment = BatchedAugment(32, scale=(0.5, 1.0), **kw)
        x_i, x_j = augment(images, generator=g), augment(images, generator=g)
        hits[name] = positive_pair_retrieval(colour_histograms(x_i), colour_histograms(x_j))
    assert hits["crop"] > 0.8 and hits["crop + colour"] < 0.5, hits


def _fake_short_run(accuracy, calls):
    """A stand-in for short_run: accuracy(cfg) -> linear-probe accuracy, calls counted."""
    def fake(cfg, splits, **kwargs):
        calls.append((cfg.temperature, cfg.seed, kwargs))
        scores = {"h": {"linear": accuracy(cfg), "knn": 0.0}}
        return ShortRun(cfg, None, [{"loss": 1.0}], 0.0, scores, float("nan"))
    return fake


def test_ablation_trains_each_setting_once(monkeypatch, cfg, splits):
    calls = []
    monkeypatch.setattr(experiments, "short_run",
                        _fake_short_run(lambda c: c.temperature, calls))
    runs = Ablation(cfg, splits, probe_z=False)
    a = runs.run(temperature=0.5)
    assert runs.run(temperature=0.5) is a and runs.run(temperature=0.5, seed=cfg.seed) is a
    assert runs.run() is runs.run(temperature=cfg.temperature)  # no change is the base
    assert calls == [(0.5, cfg.seed, {"probe_z": False}), (cfg.temperature, cfg.seed,
                                                          {"probe_z": False})]
    with pytest.raises(TypeError):
        runs.run(temprature=0.5)  # a misspelt setting is not silently ignored


def test_ablation_gives_more_seeds_only_to_settings_within_the_spread(monkeypatch, cfg,
                                                                      splits):
    calls = []
    acc = {0.05: 0.30, 0.1: 0.32, 0.5: 0.10, 1.0: 0.60}  # seed 0; later seeds add 0.01
    monkeypatch.setattr(experiments, "short_run", _fake_short_run(
        lambda c: acc[c.temperature] + 0.01 * c.seed, calls))
    runs = Ablation(cfg, splits)
    settings = {str(t): {"temperature": t} for t in acc}
    out = runs.compare(settings, seeds=(0, 1, 2), spread=0.05)
    assert list(out) == ["0.05", "0.1", "0.5", "1.0"]
    assert {k: [r.config.seed for r in v] for k, v in out.items()} == {
        "0.05": [0, 1, 2], "0.1": [0, 1, 2], "0.5": [0], "1.0": [0]}
    assert out["0.1"][2].linear == pytest.approx(0.34)
    everything = runs.compare(settings, seeds=(0, 1))  # spread None: all seeds, cached ones kept
    assert [len(v) for v in everything.values()] == [3, 3, 2, 2]
    assert len(calls) == 4 + 4 + 2  # seed 0 of all, seeds 1-2 of two, seed 1 of the other two
    assert runs.seeds_of(temperature=0.05) == everything["0.05"]
    assert runs.seeds_of(temperature=0.2) == []
    assert runs.spread() == pytest.approx(0.02)  # seeds 0-2 of one setting: 0.30 to 0.32
    assert runs.spread(lambda r: r.linear * 10) == pytest.approx(0.2)
    assert Ablation(cfg, splits).spread() == 0.0
    with pytest.raises(ValueError, match="seeds"):
        runs.compare(settings, seeds=())


def test_verdict_counts_only_differences_beyond_the_spread():
    assert verdict([0.2, 0.1], spread=0.05) == "yes"
    assert verdict([0.2, 0.05], spread=0.05) == "partly"  # equal to the spread: noise
    assert verdict([0.04, -0.3], spread=0.05) == "no"
    assert verdict([0.01], spread=0.0) == "yes"
    with pytest.raises(ValueError, match="empty"):
        verdict([], spread=0.1)
    with pytest.raises(ValueError, match="spread"):
        verdict([0.1], spread=-1)
    assert verdict([0.2, 0.2], spread=[0.1, 0.3]) == "partly"  # one spread per comparison
    with pytest.raises(ValueError, match="one per difference"):
        verdict([0.2, 0.2], spread=[0.1])
