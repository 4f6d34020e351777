"""The command line: both flag spellings, --help, and one-line errors with exit code 2."""

import os
import subprocess
import sys
import urllib.error
import warnings
from pathlib import Path

import pytest
import torch

from simclr_lib.cli import build_parser, config_from_args, main

ROOT = Path(__file__).resolve().parents[1]
CI = ["train", "--profile", "ci", "--no-progress"]


def test_both_spellings_of_multi_word_flags():
    for argv in (["train", "--batch_size=32", "--lr=0.003"],
                 ["train", "--batch-size", "32", "--lr", "0.003"]):
        cfg = config_from_args(build_parser().parse_args(argv))
        assert cfg.batch_size == 32 and cfg.lr == 0.003
    cfg = config_from_args(build_parser().parse_args(
        ["train", "--profile", "ci", "--warmup_epochs", "3", "--knn-every", "0"]))
    assert (cfg.warmup_epochs, cfg.knn_every, cfg.dataset) == (3, 0, "shapes")
    cfg = config_from_args(build_parser().parse_args(["train", "--dataset", "colour_shapes"]))
    assert cfg.dataset == "colour_shapes"


@pytest.mark.parametrize(("flags", "expected"), [([], None), (["--sync-bn"], True),
                                                  (["--no-sync-bn"], False),
                                                  (["--no-sync_bn"], False)])
def test_sync_bn_defaults_to_automatic_and_can_be_turned_off(flags, expected):
    cfg = config_from_args(build_parser().parse_args(["train", *flags]))
    assert cfg.sync_bn is expected


def test_help_explains_every_flag(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--dataset", "--data-dir", "--image-size", "--encoder", "--epochs",
                 "--batch-size", "--lr", "--temperature", "--optimizer", "--seed", "--device",
                 "--precision", "--out", "--resume", "--profile"):
        assert flag in text


def _error(argv, capsys):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in err
    return err


@pytest.mark.parametrize("extra, message", [
    (["--batch-size", "1"], "batch size must be >= 2"),
    (["--temperature", "0"], "temperature must be > 0"),
    (["--batch-size", "100000"], "larger than the training set"),
])
def test_bad_settings_exit_2_with_one_line(extra, message, capsys, tmp_path):
    assert message in _error(CI + ["--out", str(tmp_path)] + extra, capsys)


@pytest.mark.parametrize("flag, value", [("--dataset", "imagenet"), ("--encoder", "vgg")])
def test_unknown_choice_exits_2(flag, value, capsys):
    with pytest.raises(SystemExit) as e:
        main(CI + [flag, value])
    assert e.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_missing_data_directory(capsys, tmp_path):
    err = _error(CI + ["--dataset", "folder", "--data-dir", str(tmp_path / "nope"),
                       "--out", str(tmp_path / "run")], capsys)
    assert "nope" in err


def test_offline_download_names_the_offline_alternatives(capsys, tmp_path, monkeypatch):
    import torchvision.datasets.utils as tv_utils

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(tv_utils, "download_url", offline)
    err = _error(CI + ["--dataset", "cifar10", "--data-dir", str(tmp_path),
                       "--out", str(tmp_path / "run")], capsys)
    assert "shapes" in err and "folder" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_gpu(capsys, tmp_path):
    assert "no CUDA GPU" in _error(CI + ["--device", "cuda", "--out", str(tmp_path)], capsys)


def test_resume_without_checkpoint(capsys, tmp_path):
    assert "no checkpoint" in _error(["train", "--resume", str(tmp_path)], capsys)


def test_resume_with_corrupt_checkpoint(capsys, tmp_path):
    (tmp_path / "last.pt").write_bytes(b"\x80\x04 truncated")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's own warning about the file must not leak
        assert "corrupt" in _error(["train", "--resume", str(tmp_path)], capsys)


def test_errors_print_no_traceback_from_a_real_process(tmp_path):
    r = subprocess.run([sys.executable, "-m", "simclr_lib", "train", "--batch_size=1",
                        "--out", str(tmp_path)], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 2
    assert r.stderr.strip() == "error: batch size must be >= 2 (NT-Xent needs negatives), got 1"


# ------------------------------------------------------------ --data-dir is never ignored

def _images_folder(root, n=4):
    from PIL import Image

    (root / "train" / "a").mkdir(parents=True)
    for i in range(n):
        Image.new("RGB", (12, 10), (i, 2 * i, 3 * i)).save(root / "train" / "a" / f"{i}.png")
    return root


def test_data_dir_holding_images_selects_folder(tmp_path, capsys):
    mine = _images_folder(tmp_path / "mine")
    for profile in ("ci", "gpu"):  # shapes and cifar10 by default
        cfg = config_from_args(build_parser().parse_args(
            ["train", "--profile", profile, "--data-dir", str(mine)]))
        assert (cfg.dataset, cfg.data_dir) == ("folder", str(mine))
        assert f"--data-dir {mine} holds images: using them (--dataset folder)" in \
            capsys.readouterr().err
    cache = tmp_path / "cache"  # a download cache stays one for cifar10 (gpu profile)
    cache.mkdir()
    cfg = config_from_args(build_parser().parse_args(["train", "--profile", "gpu",
                                                      "--data-dir", str(cache)]))
    assert (cfg.dataset, cfg.data_dir) == ("cifar10", str(cache))


@pytest.mark.parametrize("dataset, folder, message", [
    ("shapes", "mine", "--dataset shapes does not read them"),
    ("cifar10", "mine", "pass --dataset folder"),
    (None, "empty", "holds no images"),
    (None, "nope", "does not exist"),
    ("shapes", "empty", "shapes is generated and reads no files"),
    ("colour_shapes", "empty", "colour_shapes is generated and reads no files"),
    ("folder", None, "--dataset folder reads your images from --data-dir DIR"),
])
def test_a_data_dir_that_would_be_ignored_is_an_error(tmp_path, capsys, dataset, folder,
                                                      message):
    _images_folder(tmp_path / "mine")
    (tmp_path / "empty").mkdir()
    argv = CI + (["--data-dir", str(tmp_path / folder)] if folder else []) + \
        ["--out", str(tmp_path / "run")]
    err = _error(argv + (["--dataset", dataset] if dataset else []), capsys)
    assert message in err
    assert not (tmp_path / "run").exists()


def test_data_dir_of_images_trains_on_them_from_the_command_line(tmp_path, capsys):
    mine = _images_folder(tmp_path / "mine", n=8)
    code = main(CI + ["--data-dir", str(mine), "--image-size", "16", "--batch-size", "4",
                      "--max-steps", "1", "--out", str(tmp_path / "run")])
    assert code == 0, capsys.readouterr().err
    import json

    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["dataset"], config["data_dir"]) == ("folder", str(mine))


def test_an_existing_run_names_overwrite_and_resume(tmp_path, capsys):
    argv = CI + ["--max-steps", "1", "--knn-every", "0", "--out", str(tmp_path)]
    assert main(argv) == 0
    capsys.readouterr()
    err = _error(argv, capsys)
    assert "already holds a run" in err and "--overwrite" in err and "--resume" in err


def test_stem_flag_chooses_the_resnet_stem_and_the_model_follows():
    from simclr_lib.models import build_model
    parse = build_parser().parse_args
    assert config_from_args(parse(["train", "--profile", "ci"])).small_images
    cfg = config_from_args(parse(["train", "--profile", "ci", "--encoder", "resnet18",
                                  "--stem", "imagenet"]))
    assert cfg.small_images is False
    f = build_model(cfg).encoder
    assert f.conv1.kernel_size == (7, 7) and f.conv1.stride == (2, 2)
    assert not isinstance(f.maxpool, torch.nn.Identity)
    small = build_model(config_from_args(parse(["train", "--profile", "ci", "--encoder",
                                                "resnet18", "--stem", "small"]))).encoder
    assert small.conv1.kernel_size == (3, 3) and isinstance(small.maxpool, torch.nn.Identity)
    with pytest.raises(SystemExit):
        parse(["train", "--stem", "huge"])
