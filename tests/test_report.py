"""``python -m simclr_lib eval``: metrics.json, baselines, t-SNE, and bad checkpoints."""

import json

import pytest

from simclr_lib.baselines import raw_pixels_baseline
from simclr_lib.checkpoint import load_encoder
from simclr_lib.cli import main
from simclr_lib.config import get_profile
from simclr_lib.data import load_dataset
from simclr_lib.diagnostics import effective_rank
from simclr_lib.evaluate import extract_features, knn_accuracy, linear_probe
from simclr_lib.train import fit


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = get_profile("ci").train
    cfg.out, cfg.epochs, cfg.train_size, cfg.knn_every = str(out), 1, 256, 0
    fit(cfg)
    return out


def test_eval_writes_metrics_with_baselines_and_tsne(run_dir, capsys):
    code = main(["eval", "--checkpoint", str(run_dir / "last.pt"), "--profile", "ci",
                 "--baselines", "--tsne", "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    assert "random encoder" in out and "raw pixels" in out
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["dataset"] == "shapes" and m["image_size"] == 32
    # The checkpoint's config is used: 256 training images, shapes' own val and test splits.
    assert m["sizes"] == {"train": 256, "val": 1000, "test": 1000}

    # Every number is what the library's public functions give when applied by hand to the
    # checkpoint's encoder and the same splits (so the report wires them correctly).
    f, cfg = load_encoder(run_dir / "last.pt")
    split = {s: load_dataset("shapes", s, size=256 if s == "train" else None, progress=False)
             for s in ("train", "val", "test")}
    h = {s: extract_features(f, ds.images) for s, ds in split.items()}
    y = {s: ds.labels for s, ds in split.items()}
    knn = knn_accuracy(h["train"], y["train"], h["test"], y["test"], k=m["knn_k"])
    probe = linear_probe(h["train"], y["train"], h["val"], y["val"], h["test"], y["test"])
    assert (m["knn_top1"], m["linear_top1"]) == (knn["top1"], probe["top1"])
    raw = raw_pixels_baseline(split["train"].images, y["train"], split["test"].images,
                              y["test"], val_images=split["val"].images, val_labels=y["val"],
                              k=m["knn_k"])
    assert m["baselines"]["raw_pixels"]["knn_top1"] == raw["knn_top1"]
    assert m["baselines"]["raw_pixels"]["linear_top1"] == raw["linear_top1"]
    assert m["diagnostics"]["effective_rank_h"] == pytest.approx(effective_rank(h["test"]),
                                                                 rel=1e-4)
    assert set(m["baselines"]) == {"random_init", "raw_pixels", "supervised"}
    assert m["baselines"]["supervised"]["epochs"] == get_profile("ci").baseline_epochs
    assert (run_dir / "tsne.png").stat().st_size > 10_000


@pytest.mark.parametrize("content", [None, b"not a checkpoint"])
def test_missing_or_corrupt_checkpoint_is_exit_2(tmp_path, capsys, content):
    path = tmp_path / "last.pt"
    if content is not None:
        path.write_bytes(content)
    assert main(["eval", "--checkpoint", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err
