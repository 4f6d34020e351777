"""The training loop: run files, exact resume after SIGKILL and SIGINT on both data paths,
divergence handling, and the choices the loop makes (sizes, kNN monitor, SyncBatchNorm)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import simclr_lib.batches as batches_module
import simclr_lib.train as train_module
from simclr_lib.batches import EpochBatchSampler, FastBatches
from simclr_lib.checkpoint import load_checkpoint, load_encoder
from simclr_lib.config import get_profile
from simclr_lib.distributed import DistInfo
from simclr_lib.train import (
    NonFiniteLossError,
    TrainingInterrupted,
    fit,
    wants_sync_bn,
)

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


PATHS = {"fast": [], "streaming": ["--streaming", "--num-workers", "2"]}


@pytest.fixture(scope="module", params=sorted(PATHS))
def path(request):
    """Each data path: the fast one and the streaming one (DataLoader with 2 workers)."""
    return request.param


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, path):
    out = tmp_path_factory.mktemp(f"uninterrupted-{path}")
    subprocess.run(_train(out, *PATHS[path]), env=ENV, check=True, capture_output=True,
                   cwd=ROOT)
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


def test_resume_after_sigkill_in_epoch_3_matches_uninterrupted_run(tmp_path, uninterrupted,
                                                                    path):
    out = tmp_path / "killed"
    proc = subprocess.Popen(_train(out, *PATHS[path]), env=ENV, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
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


# Where the signal lands is up to timing; the in-process test below forces mid-epoch, on
# both paths. The command line's handling does not depend on the path: tested on one.
@pytest.mark.parametrize("path", ["fast"], indirect=True)
def test_sigint_on_the_command_line_saves_exits_130_and_resumes_exactly(tmp_path,
                                                                        uninterrupted, path):
    out = tmp_path / "interrupted"
    proc = subprocess.Popen(_train(out, *PATHS[path]), env=ENV, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
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


# ------------------------------------------------------------- in-process, exact resume

def _ci(out, **changes):
    cfg = get_profile("ci").train
    cfg.out, cfg.epochs, cfg.train_size, cfg.knn_every, cfg.progress = str(out), 3, 512, 0, False
    for k, v in changes.items():
        setattr(cfg, k, v)
    return cfg


def _count_steps(monkeypatch, sigint_at=None):
    """Wrap train_step: count the calls, and send SIGINT to this process after call
    ``sigint_at`` (the handler sets the flag; the loop stops after that step)."""
    real, calls = train_module.train_step, {"n": 0, "shapes": [], "sigint_at": sigint_at}

    def wrapped(model, x_i, x_j, *args, **kwargs):
        calls["n"] += 1
        calls["shapes"].append(tuple(x_i.shape))
        loss = real(model, x_i, x_j, *args, **kwargs)
        if calls["n"] == calls["sigint_at"]:
            os.kill(os.getpid(), signal.SIGINT)
        return loss

    monkeypatch.setattr(train_module, "train_step", wrapped)
    return calls


# Streaming with 2 workers; 0 workers gives the same results (tested below).
STREAMING = [dict(in_memory=True), dict(in_memory=False, num_workers=2)]


@pytest.mark.parametrize("path", STREAMING, ids=["fast", "streaming-2"])
def test_sigint_mid_epoch_then_resume_equals_the_uninterrupted_run(tmp_path, monkeypatch,
                                                                   path):
    whole = fit(_ci(tmp_path / "whole", **path)).history
    steps = 512 // 64  # no kNN monitor, so no validation split is held out
    calls = _count_steps(monkeypatch, sigint_at=steps + 2)  # step 2 of epoch 2: mid-epoch
    with pytest.raises(TrainingInterrupted, match="epoch 2, step 2"):
        fit(_ci(tmp_path / "cut", **path))
    ckpt = load_checkpoint(tmp_path / "cut" / "last.pt")
    assert (ckpt["epoch"], ckpt["step_in_epoch"]) == (1, 2)  # really mid-epoch
    calls["n"], calls["sigint_at"] = 0, None
    resumed = fit(None, resume=tmp_path / "cut").history
    assert calls["n"] == 3 * steps - (steps + 2)  # exactly the steps that were left
    torch.testing.assert_close(torch.tensor([r["loss"] for r in resumed], dtype=torch.float64),
                               torch.tensor([r["loss"] for r in whole], dtype=torch.float64),
                               rtol=1e-6, atol=0)
    assert [r["lr"] for r in resumed] == pytest.approx([r["lr"] for r in whole], rel=1e-9)


def test_stop_after_steps_stops_as_sigint_would_and_counts_per_call(tmp_path, monkeypatch):
    whole = fit(_ci(tmp_path / "whole")).history
    steps = 512 // 64
    cut = tmp_path / "cut"
    # The last step of epoch 1: the epoch is closed first, as with SIGINT there.
    with pytest.raises(TrainingInterrupted, match=r"stop_after_steps=8 after epoch 1;"):
        fit(_ci(cut), stop_after_steps=steps)
    assert _checkpoint_position(cut) == (1, 0)
    assert len(_history(cut)) == 1
    # Counted from the start of each call, not of the run: 2 more steps, mid-epoch 2.
    with pytest.raises(TrainingInterrupted, match=r"stop_after_steps=2 at epoch 2, step 2;"):
        fit(None, resume=cut, stop_after_steps=2)
    assert _checkpoint_position(cut) == (1, 2)
    calls = _count_steps(monkeypatch)
    resumed = fit(None, resume=cut, stop_after_steps=100).history  # ends before step 100
    assert calls["n"] == 3 * steps - (steps + 2)
    torch.testing.assert_close(torch.tensor([r["loss"] for r in resumed], dtype=torch.float64),
                               torch.tensor([r["loss"] for r in whole], dtype=torch.float64),
                               rtol=1e-6, atol=0)


def _checkpoint_position(out):
    ckpt = load_checkpoint(out / "last.pt")
    return ckpt["epoch"], ckpt["step_in_epoch"]


def test_stop_after_steps_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="stop_after_steps must be >= 1 or None, got 0"):
        fit(_ci(tmp_path), stop_after_steps=0)
    assert not (tmp_path / "last.pt").exists()


def test_streaming_results_do_not_depend_on_the_number_of_workers(tmp_path):
    runs = [fit(_ci(tmp_path / str(w), epochs=1, in_memory=False, num_workers=w)).history
            for w in (0, 2)]
    assert runs[0][0]["loss"] == runs[1][0]["loss"]


def test_streaming_trains_at_the_datasets_own_size_without_blur(tmp_path, monkeypatch):
    calls = _count_steps(monkeypatch)
    made = []
    real_transform = batches_module.simclr_transform
    monkeypatch.setattr(batches_module, "simclr_transform",
                        lambda **kw: made.append(kw) or real_transform(**kw))
    fit(_ci(tmp_path, epochs=1, in_memory=False, num_workers=0))
    assert set(calls["shapes"]) == {(64, 3, 32, 32)}  # shapes' native 32 px, not 64
    assert made[0]["size"] == 32 and made[0]["blur"] is None  # None: off below 64 px


def test_resumed_epoch_runs_only_its_remaining_steps():
    sampler = EpochBatchSampler(n=100, steps=6, global_batch=16, info=DistInfo(), seed=0)
    sampler.set_epoch(1)
    full = list(sampler)
    sampler.set_epoch(1, first=4)
    assert len(sampler) == 2 and list(sampler) == full[4:]
    sampler.set_epoch(2)
    assert list(sampler) != full  # a new order (and new seeds) every epoch


def test_ranks_get_disjoint_images_and_their_own_augmentations():
    two = [EpochBatchSampler(100, 3, 16, DistInfo(rank=r, world_size=2), seed=0)
           for r in (0, 1)]
    one = EpochBatchSampler(100, 3, 16, DistInfo(), seed=0)
    for b0, b1, whole in zip(*two, one, strict=True):
        assert len(b0) == len(b1) == 8
        assert b0 + b1 == whole  # the same global batch, split between ranks
        assert not {i for i, _ in b0} & {i for i, _ in b1}
        assert not {s for _, s in b0} & {s for _, s in b1}  # streaming: seeds per image

    cfg = _ci("unused", batch_size=8)
    images = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8).expand(16, 3, 32, 32)
    views = [next(FastBatches(images, cfg, 32, DistInfo(rank=r, world_size=2), 2)(0, 0))
             for r in (0, 1)]
    assert not torch.equal(views[0][0], views[1][0])  # fast path: rank in the seed


def test_knn_monitor_with_max_steps_runs_every_knn_every_epochs_and_at_the_end(tmp_path):
    steps = 410 // 64  # 512 images, 20% held out for the kNN monitor's validation split
    history = fit(_ci(tmp_path, epochs=5, knn_every=2, max_steps=3 * steps)).history
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert ["knn_top1" in r for r in history] == [False, True, True]


@pytest.mark.parametrize(("sync_bn", "distributed", "device", "expected"), [
    (None, True, "cuda", True),    # the default under DDP on GPUs: global BN
    (False, True, "cuda", False),  # --no-sync-bn
    (True, True, "cuda", True),
    (None, True, "cpu", False),    # gloo on CPUs: SyncBatchNorm cannot run
    (None, False, "cuda", False),  # one process: nothing to synchronise
    (True, False, "cpu", False),
])
def test_sync_batch_norm_by_default_under_ddp_on_cuda(sync_bn, distributed, device, expected):
    assert wants_sync_bn(sync_bn, distributed, device) is expected


def test_sync_bn_asked_for_on_cpus_is_a_clear_error():
    with pytest.raises(ValueError, match="needs CUDA GPUs.*--no-sync-bn"):
        wants_sync_bn(True, True, "cpu")


def test_set_up_converts_batch_norm_when_sync_bn_applies(tmp_path, monkeypatch):
    monkeypatch.setattr(train_module, "wants_sync_bn", lambda *a: True)
    run = train_module._set_up(_ci(tmp_path), torch.device("cpu"), DistInfo(), False, False)
    kinds = {type(m).__name__ for m in run.model.modules()}
    assert "SyncBatchNorm" in kinds and "BatchNorm2d" not in kinds


# ------------------------------------------------------- the kNN monitor on your own folder

def _labelled_folder(root, per_class, splits=("train",)):
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for split in splits:
        for c in ("a", "b"):
            (root / split / c).mkdir(parents=True)
            for i in range(per_class if split == "train" else 3):
                pixels = torch.randint(0, 256, (20, 20, 3), generator=g, dtype=torch.uint8)
                Image.fromarray(pixels.numpy()).save(root / split / c / f"{i}.png")
    return root


def _folder_run(root, out, **changes):
    return _ci(out, dataset="folder", data_dir=str(root), image_size=16, batch_size=8,
               epochs=1, knn_every=1, val_fraction=0.1, **changes)


def test_knn_monitor_uses_the_folders_own_val_split(tmp_path, monkeypatch, capsys):
    root = _labelled_folder(tmp_path / "mine", per_class=12, splits=("train", "val"))
    seen = {}
    real = train_module.knn_accuracy

    def spy(bank_h, bank_y, val_h, val_y, **kwargs):
        seen.update(bank=len(bank_h), val=len(val_h), k=kwargs["k"])
        return real(bank_h, bank_y, val_h, val_y, **kwargs)

    monkeypatch.setattr(train_module, "knn_accuracy", spy)
    calls = _count_steps(monkeypatch)
    history = fit(_folder_run(root, tmp_path / "run")).history
    assert seen["bank"] == 24 and seen["val"] == 6  # all of train/, all of val/
    assert calls["n"] == 24 // 8  # nothing held out of training
    out = capsys.readouterr().out
    assert out.count("kNN monitor:") == 1
    assert f"validation on the 6 labelled images of {root / 'val'}, neighbours from the 24 " \
           f"of {root / 'train'}" in out
    # k = 20 of the ci profile, capped at half the 12 images of a class.
    assert seen["k"] == 6 and history[0]["knn_k"] == 6


def test_knn_monitor_without_val_says_how_many_are_held_out_and_from_where(tmp_path,
                                                                            monkeypatch,
                                                                            capsys):
    root = _labelled_folder(tmp_path / "mine", per_class=15)
    calls = _count_steps(monkeypatch)
    fit(_folder_run(root, tmp_path / "run"))
    out = capsys.readouterr().out
    assert out.count("kNN monitor:") == 1
    assert f"3 of the 30 training images of {root / 'train'} (10%) are held out of training" \
        in out and f"add {root / 'val'}/<class>/ to use your own" in out
    assert calls["n"] == 27 // 8


def test_knn_monitor_off_says_why(tmp_path, capsys):
    flat = tmp_path / "flat"
    flat.mkdir()
    from PIL import Image

    for i in range(16):
        Image.new("RGB", (10, 10), (i, i, i)).save(flat / f"{i}.png")
    fit(_folder_run(flat, tmp_path / "run"))
    assert f"kNN monitor: off: {flat} has 0 labelled images" in capsys.readouterr().out
