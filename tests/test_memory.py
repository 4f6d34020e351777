"""Out of memory is foreseen: a clear error before anything is loaded, tested without the memory."""

import numpy as np
import pytest
import torch
from PIL import Image

import simclr_lib.images as images_module
import simclr_lib.memory as memory
import simclr_lib.train as train_module
from simclr_lib.cli import main
from simclr_lib.config import get_profile
from simclr_lib.data import dataset_nbytes, load_dataset
from simclr_lib.distributed import DistInfo
from simclr_lib.memory import NotEnoughMemoryError, check_fits, format_bytes
from simclr_lib.models import build_model

WAYS_OUT = ("--image-size", "--train-size", "--streaming")


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "mine"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (30, 40, 3), np.uint8)).save(root / f"{i}.png")
    return root


@pytest.fixture
def little_memory(monkeypatch):
    """100 MB of free RAM and 1 GB on any GPU, whatever the machine has."""
    def available(device="cpu"):
        return 10**9 if torch.device(device).type == "cuda" else 100 * 10**6

    monkeypatch.setattr(memory, "available_memory", available)


@pytest.fixture
def no_decoding(monkeypatch):
    """Count image decodes: the check must come before any."""
    calls = []
    real = images_module.open_image

    def counted(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(images_module, "open_image", counted)
    return calls


def test_available_memory_of_this_machine_is_a_positive_number():
    free = memory.available_memory("cpu")
    assert free is None or free > 0
    assert memory.available_memory("meta") is None


def test_format_bytes():
    assert format_bytes(512) == "512 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(8 * 1024**3) == "8.0 GiB"


def test_check_fits_compares_with_a_share_of_the_free_memory(little_memory):
    check_fits(79 * 10**6, "cpu")  # under 80% of 100 MB
    with pytest.raises(NotEnoughMemoryError, match="more than 80% of the 95.4 MiB") as e:
        check_fits(81 * 10**6, "cpu", "my images")
    assert str(e.value).startswith("my images need 77.2 MiB")
    assert all(w in str(e.value) for w in WAYS_OUT)
    check_fits(899 * 10**6, "cuda")  # 90% of a GPU's free memory
    with pytest.raises(NotEnoughMemoryError, match="memory on cuda"):
        check_fits(901 * 10**6, "cuda")


def test_unknown_free_memory_never_blocks(monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda device="cpu": None)
    check_fits(10**15, "cpu")


def test_folder_too_large_stops_before_decoding(folder, little_memory, no_decoding):
    # 12 images at 2048 px are 151 MB: more than 80% of the 100 MB "free".
    with pytest.raises(NotEnoughMemoryError, match="12 images"):
        load_dataset("folder", root=folder, image_size=2048, progress=False)
    assert no_decoding == []
    assert len(load_dataset("folder", root=folder, image_size=32, progress=False)) == 12
    assert len(no_decoding) == 12
    # Streaming holds no tensor: no check, nothing refused.
    assert len(load_dataset("folder", root=folder, image_size=2048, in_memory=False,
                            progress=False)) == 12


def test_shapes_too_large_is_refused_before_drawing(little_memory):
    with pytest.raises(NotEnoughMemoryError, match="shapes"):
        load_dataset("shapes", size=5000, image_size=128)  # 246 MB


def test_command_line_exits_2_at_once_naming_the_three_ways_out(folder, little_memory,
                                                                 no_decoding, tmp_path,
                                                                 capsys):
    code = main(["train", "--profile", "ci", "--dataset", "folder", "--data-dir", str(folder),
                 "--image-size", "2048", "--batch-size", "4", "--out", str(tmp_path / "run"),
                 "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in err
    assert all(w in err for w in WAYS_OUT)
    assert no_decoding == []


def test_dataset_nbytes_matches_what_loading_holds(folder):
    ds = load_dataset("folder", root=folder, image_size=24, size=5, progress=False)
    assert dataset_nbytes("folder", root=folder, image_size=24, size=5) == \
        ds.images.numel() == 5 * 3 * 24 * 24
    assert dataset_nbytes("cifar10", "train") == 50_000 * 3 * 32 * 32
    assert dataset_nbytes("stl10", "train+unlabeled", image_size=64) == 105_000 * 3 * 64 * 64
    assert dataset_nbytes("shapes", "val") == 1000 * 3 * 32 * 32


def test_saved_bytes_per_image_counts_activations_and_scales_with_the_area():
    f = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                            torch.nn.Conv2d(8, 4, 3, stride=2, padding=1))
    # ReLU keeps its (8, S, S) output, which the second conv also keeps (counted once);
    # the input and the weights are not activations.
    assert memory.saved_bytes_per_image(f, 32) == 8 * 32 * 32 * 4
    assert memory.saved_bytes_per_image(f, 256) == 8 * 256 * 256 * 4  # probed at 32, scaled
    model = build_model(get_profile("ci").train)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    measured = memory.saved_bytes_per_image(model, 64, probe_size=64)
    assert memory.saved_bytes_per_image(model, 64) == pytest.approx(measured, rel=0.05)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_a_few_hundred_images_at_1024_px_stop_at_once(tmp_path, monkeypatch, no_decoding,
                                                      capsys):
    """The issue's case: the images fit (0.9 GiB), one step's activations do not."""
    root = tmp_path / "mine"
    root.mkdir()
    for i in range(300):
        Image.new("RGB", (16, 12), (i % 256, 0, 0)).save(root / f"{i}.png")
    monkeypatch.setattr(memory, "available_memory", lambda device="cpu": 4 * 1024**3)
    code = main(["train", "--profile", "ci", "--data-dir", str(root), "--image-size", "1024",
                 "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2, err
    assert err.startswith("error: one training step (128 views at 1024 px, estimated) and "
                          "the 300 training images at 3x1024x1024 need")
    assert all(w in err for w in ("--image-size", "--batch-size", "--train-size",
                                  "--streaming"))
    assert no_decoding == [] and not (tmp_path / "run").exists()


def test_training_checks_the_gpu_copy_too(folder, monkeypatch):
    """The fast path copies the training images to the GPU: checked before loading."""
    gpu_free = {"bytes": 10**12}

    def available(device="cpu"):
        return 10**12 if torch.device(device).type == "cpu" else gpu_free["bytes"]

    monkeypatch.setattr(memory, "available_memory", available)
    cfg = get_profile("ci").train
    cfg.dataset, cfg.data_dir, cfg.image_size = "folder", str(folder), 64
    rng_before = torch.get_rng_state()
    for device in ("cpu", "cuda"):
        train_module._check_memory(cfg, torch.device(device), DistInfo())
    assert torch.equal(torch.get_rng_state(), rng_before)  # the run's model init is untouched
    gpu_free["bytes"] = 10**5
    with pytest.raises(NotEnoughMemoryError, match="and the images.*memory on cuda.*"
                       "--streaming"):
        train_module._check_memory(cfg, torch.device("cuda"), DistInfo())
    cfg.in_memory = False  # streaming: no copy of the images, the step alone is too much
    with pytest.raises(NotEnoughMemoryError, match=r"estimated\) need") as e:
        train_module._check_memory(cfg, torch.device("cuda"), DistInfo())
    assert "--streaming" not in str(e.value)
