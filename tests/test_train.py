"""The training loop: run files, exact resume after SIGKILL and SIGINT, divergence handling."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import simclr_lib.train as train_module
from simclr_lib.checkpoint import load_checkpoint, load_encoder
from simclr_lib.config import get_profile
from simclr_lib.train import NonFiniteLossError, fit

ROOT = Path(__file__).resolve().parents[1]
# One thread everywhere, so that separate processes compute bit-identical floats.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
RUN = ["--profile", "ci", "--epochs", "4", "--train-size", "1024", "--batch-size", "64",
       "--knn-every", "2", "--no-progress", "--seed", "3"]


def _train(out, *extra):
    return [sys.executable, "-m", "simclr_lib", "train", *RUN, "--out", str(out), *extra]


def _history(out):
    path = Path(out) / "history.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _losses(out):
    return [r["loss"] for r in _history(out)]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    subprocess.run(_train(out), env=ENV, check=True, capture_output=True, cwd=ROOT)
    return out


def _wait_for_epochs(proc, out, n, timeout=120):
    t0 = time.time()
    while len(_history(out)) < n:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() - t0 < timeout, "training did not progress"
        time.sleep(0.01)


def test_run_writes_config_history_and_checkpoints(uninterrupted):
    names = {p.name for p in uninterrupted.iterdir()}
    assert {"config.json", "history.jsonl", "last.pt", "best.pt"} <= names
    history = _history(uninterrupted)
    assert [r["epoch"] for r in history] == [1, 2, 3, 4]
    for r in history:
        assert {"epoch", "loss", "lr", "images_per_s"} <= set(r)
        assert r["images_per_s"] > 0
    assert "knn_top1" in history[1] and "knn_top1" in history[3]
    assert "knn_top1" not in history[0]
    # The schedule is stepped per iteration: after the last step the cosine has reached ~0.
    assert history[-1]["lr"] < 0.01 * history[0]["lr"] + 1e-12
    config = json.loads((uninterrupted / "config.json").read_text())
    assert config["epochs"] == 4 and config["batch_size"] == 64
    ckpt = load_checkpoint(uninterrupted / "last.pt")
    assert ckpt["epoch"] == 4 and {"python", "torch"} <= set(ckpt["rng"])
    for key in ("model", "optimizer", "scheduler", "scaler", "history", "config", "encoder"):
        assert key in ckpt
    f, cfg = load_encoder(uninterrupted / "best.pt")
    assert cfg.encoder == "small_cnn" and f(torch.rand(2, 3, 32, 32)).shape[0] == 2


def test_resume_after_sigkill_in_epoch_3_matches_uninterrupted_run(tmp_path, uninterrupted):
    out = tmp_path / "killed"
    proc = subprocess.Popen(_train(out), env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _wait_for_epochs(proc, out, 2)
    proc.send_signal(signal.SIGKILL)  # somewhere inside epoch 3
    proc.wait()
    assert len(_history(out)) == 2, "the kill must land during epoch 3"
    assert load_checkpoint(out / "last.pt")["epoch"] == 2

    subprocess.run([sys.executable, "-m", "simclr_lib", "train", "--resume", str(out)],
                   env=ENV, cwd=ROOT, check=True, capture_output=True)
    expected, got = _losses(uninterrupted), _losses(out)
    assert len(got) == 4
    torch.testing.assert_close(torch.tensor(got, dtype=torch.float64),
                               torch.tensor(expected, dtype=torch.float64), rtol=1e-5, atol=0)


def test_sigint_saves_mid_epoch_and_resume_is_exact(tmp_path, uninterrupted):
    out = tmp_path / "interrupted"
    proc = subprocess.Popen(_train(out), env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _wait_for_epochs(proc, out, 1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    err = err.decode()
    assert proc.returncode == 130, err
    assert f"--resume {out}" in err and "Traceback" not in err
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["step_in_epoch"] > 0 or ckpt["epoch"] > 1

    subprocess.run([sys.executable, "-m", "simclr_lib", "train", "--resume", str(out)],
                   env=ENV, cwd=ROOT, check=True, capture_output=True)
    torch.testing.assert_close(torch.tensor(_losses(out), dtype=torch.float64),
                               torch.tensor(_losses(uninterrupted), dtype=torch.float64),
                               rtol=1e-5, atol=0)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    real = train_module.nt_xent
    calls = {"n": 0}

    def diverging(z1, z2, temperature):
        calls["n"] += 1
        loss = real(z1, z2, temperature)
        return loss * float("nan") if calls["n"] > 8 else loss  # epoch 1 has 8 steps

    monkeypatch.setattr(train_module, "nt_xent", diverging)
    cfg = get_profile("ci").train
    cfg.out, cfg.epochs = str(tmp_path), 3
    with pytest.raises(NonFiniteLossError, match="lower the learning rate"):
        fit(cfg)
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


def test_new_run_refuses_to_overwrite_an_existing_one(tmp_path):
    cfg = get_profile("ci").train
    cfg.out, cfg.epochs, cfg.knn_every = str(tmp_path), 1, 0
    fit(cfg)
    with pytest.raises(ValueError, match="already holds a run"):
        fit(cfg)
    assert len(fit(cfg, overwrite=True).history) == 1


def test_streaming_path_trains_on_a_folder_of_images(tmp_path):
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(40):
        side = 24 + 8 * (i % 5)  # mixed sizes, resized to --image-size when loaded
        pixels = torch.randint(0, 256, (side, side + 4, 3), generator=g, dtype=torch.uint8)
        Image.fromarray(pixels.numpy()).save(images / f"{i}.png")
    cfg = get_profile("ci").train
    cfg.dataset, cfg.data_dir, cfg.image_size, cfg.in_memory = "folder", str(images), 32, False
    cfg.num_workers, cfg.batch_size, cfg.epochs, cfg.out = 0, 16, 2, str(tmp_path / "run")
    result = fit(cfg)
    assert [r["epoch"] for r in result.history] == [1, 2]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in result.history)
    assert (tmp_path / "run" / "best.pt").exists()
