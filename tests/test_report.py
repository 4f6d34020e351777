"""``python -m simclr_lib eval``: metrics.json, baselines, t-SNE, and bad checkpoints."""

import json

import pytest

from simclr_lib.cli import main
from simclr_lib.config import get_profile
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
    for key in ("knn_top1", "linear_top1", "logreg_top1"):
        assert 0.0 <= m[key] <= 1.0
    assert m["dataset"] == "shapes" and m["image_size"] == 32
    # The checkpoint's config is used: 256 training images, shapes' own val and test splits.
    assert m["sizes"] == {"train": 256, "val": 1000, "test": 1000}
    for name in ("random_init", "raw_pixels"):
        assert 0.0 <= m["baselines"][name]["knn_top1"] <= 1.0
        assert 0.0 <= m["baselines"][name]["linear_top1"] <= 1.0
    assert 0.0 <= m["baselines"]["supervised"]["top1"] <= 1.0
    assert m["diagnostics"]["effective_rank_h"] >= 1.0
    assert (run_dir / "tsne.png").stat().st_size > 10_000


@pytest.mark.parametrize("content", [None, b"not a checkpoint"])
def test_missing_or_corrupt_checkpoint_is_exit_2(tmp_path, capsys, content):
    path = tmp_path / "last.pt"
    if content is not None:
        path.write_bytes(content)
    assert main(["eval", "--checkpoint", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err
