"""``python -m simclr_lib eval``: metrics.json, baselines, t-SNE, and bad checkpoints."""

import json
from pathlib import Path

import pytest
import torch

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


# ------------------------------------------------------ evaluating a run on your own folder

@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("eval") / "mine"
    g = torch.Generator().manual_seed(0)
    for split, n in (("train", 30), ("val", 4), ("test", 5)):
        for c in ("a", "b", "c"):
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                pixels = torch.randint(0, 256, (20, 24, 3), generator=g, dtype=torch.uint8)
                Image.fromarray(pixels.numpy()).save(root / split / c / f"{i}.png")
    cfg = get_profile("ci").train
    cfg.dataset, cfg.data_dir, cfg.image_size, cfg.batch_size = "folder", str(root), 16, 16
    cfg.out, cfg.max_steps, cfg.knn_every = str(tmp_path_factory.mktemp("run")), 2, 0
    fit(cfg)
    return root, Path(cfg.out)


def _eval(argv, capsys):
    code = main(["eval", "--profile", "ci", "--no-progress", *argv])
    return code, capsys.readouterr()


def test_metrics_record_what_was_evaluated_and_cap_k(folder_run, capsys):
    root, run = folder_run
    code, io = _eval(["--checkpoint", str(run / "last.pt")], capsys)
    assert code == 0, io.err
    assert "warning" not in io.err  # evaluated on what it trained on
    m = json.loads((run / "metrics.json").read_text())
    assert (m["dataset"], m["data_dir"], m["image_size"]) == ("folder", str(root), 16)
    assert m["sizes"] == {"train": 90, "val": 12, "test": 15}
    assert m["val_from"] == "own val split" and m["mismatch"] == []
    assert m["trained_on"] == {"dataset": "folder", "data_dir": str(root), "image_size": 16}
    # 30 images per class: k = 200 would vote across every class; capped at 15.
    assert m["knn_k"] == 15 and "capped from 200 to 15" in m["knn_k_note"]
    assert "kNN k = 15" in io.out


def test_eval_never_replaces_an_earlier_result_silently(folder_run, capsys):
    root, run = folder_run
    metrics = run / "metrics.json"
    if not metrics.exists():
        assert _eval(["--checkpoint", str(run)], capsys)[0] == 0
    before = metrics.read_text()
    code, io = _eval(["--checkpoint", str(run)], capsys)
    err = io.err.strip()
    assert code == 2 and err.startswith("error:") and "\n" not in err
    assert "--overwrite" in err and "--out" in err
    assert metrics.read_text() == before
    # Another image size: a new file, and a warning that it is not what the run trained on.
    other = run / "metrics_24px.json"
    code, io = _eval(["--checkpoint", str(run), "--image-size", "24", "--out", str(other)],
                     capsys)
    assert code == 0, io.err
    assert io.err.startswith("warning: evaluating on image size 24 px (trained at 16 px)")
    m = json.loads(other.read_text())
    assert m["image_size"] == 24 and m["mismatch"] == ["image size 24 px (trained at 16 px)"]
    assert metrics.read_text() == before
    code, io = _eval(["--checkpoint", str(run), "--overwrite"], capsys)
    assert code == 0 and json.loads(metrics.read_text())["eval_time_s"] != \
        json.loads(before)["eval_time_s"]


def test_eval_on_another_dataset_warns(run_dir, capsys, tmp_path):
    code, io = _eval(["--checkpoint", str(run_dir), "--dataset", "folder", "--data-dir",
                      str(tmp_path / "nope"), "--out", str(tmp_path / "m.json")], capsys)
    assert code == 2  # the folder does not exist; the mismatch was said first
    assert io.err.startswith("warning: evaluating on dataset folder (trained on shapes)")
    assert io.err.splitlines()[1].startswith("error:")


def test_eval_data_dir_of_images_selects_folder(run_dir, folder_run, capsys, tmp_path):
    root, _ = folder_run
    code, io = _eval(["--checkpoint", str(run_dir), "--data-dir", str(root), "--out",
                      str(tmp_path / "m.json")], capsys)
    assert code == 0, io.err
    assert "holds images: using them (--dataset folder)" in io.err
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["dataset"] == "folder" and m["image_size"] == 32  # the size f was trained at
    assert m["mismatch"] == ["dataset folder (trained on shapes)"]
