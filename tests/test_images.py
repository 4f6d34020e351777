"""Image files to tensors: ``prepare`` gives what a folder dataset holds, for every input kind."""

import numpy as np
import pytest
import torch
from PIL import Image

from simclr_lib.data import load_dataset
from simclr_lib.images import holds_images, prepare, resize_tensor


@pytest.fixture
def photos(tmp_path):
    """A labelled folder of photo-like JPEGs and PNGs (one grayscale, one RGBA, one large)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "photos" / "train"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
    smooth = rng.integers(0, 256, (6, 8, 3), np.uint8)  # upsampled: photo-like gradients
    big = Image.fromarray(smooth).resize((640, 480), Image.Resampling.BICUBIC)
    big.save(root / "a" / "big.jpg", quality=90)  # decoded at a reduced scale (draft)
    big.crop((0, 0, 100, 70)).convert("L").save(root / "a" / "gray.png")
    rgba = np.array(big.crop((10, 10, 60, 90)).convert("RGBA"))
    rgba[:, :20, 3] = 0
    Image.fromarray(rgba).save(root / "b" / "clear.png")
    big.crop((200, 100, 290, 180)).save(root / "b" / "crop.jpg", quality=80)
    return tmp_path / "photos"


def test_prepare_of_a_file_is_what_the_folder_dataset_holds(photos):
    ds = load_dataset("folder", root=photos, image_size=48, progress=False)
    assert [p.name for p in ds.paths] == ["big.jpg", "gray.png", "clear.png", "crop.jpg"]
    expected = ds.images.float() / 255  # (4, 3, 48, 48), what evaluation feeds f
    x = prepare(ds.paths, 48)
    assert x.shape == (4, 3, 48, 48) and x.dtype == torch.float32
    assert torch.equal(x, expected)
    for i, path in enumerate(ds.paths):
        assert torch.equal(prepare(path, 48), expected[i:i + 1])  # one path: (1, 3, S, S)
        assert torch.equal(prepare(str(path), 48), expected[i:i + 1])
        with Image.open(path) as im:  # a PIL image, unloaded JPEG included
            assert torch.equal(prepare(im, 48), expected[i:i + 1])
    # Tensors already at the size are only converted to float.
    assert torch.equal(prepare(ds.images[1], 48), expected[1:2])
    assert torch.equal(prepare(ds.images, 48), expected)


def test_prepare_resizes_tensors_and_accepts_grayscale_and_float():
    x = torch.randint(0, 256, (3, 40, 60), dtype=torch.uint8)
    out = prepare(x, 32)
    assert out.shape == (1, 3, 32, 32) and 0 <= out.min() and out.max() <= 1
    assert torch.equal(out, resize_tensor(x[None], 32).float() / 255)
    gray = prepare(torch.rand(1, 32, 32), 32)  # float, one channel -> three equal channels
    assert gray.shape == (1, 3, 32, 32) and torch.equal(gray[0, 0], gray[0, 2])
    assert prepare([x, x.float() / 255], 32).shape == (2, 3, 32, 32)


@pytest.mark.parametrize("bad, message", [(torch.zeros(2, 5, 5), "must be"),
                                          (torch.zeros(2, 4, 5, 5), "must be"),
                                          ([], "empty"), (3.0, "cannot prepare")])
def test_prepare_errors(bad, message):
    with pytest.raises(ValueError, match=message):
        prepare(bad, 32)


def test_prepare_of_an_unreadable_file_raises(tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"")
    with pytest.raises(Exception, match="x.jpg|identify"):
        prepare(tmp_path / "x.jpg", 32)


def test_holds_images_looks_three_levels_deep(tmp_path):
    assert not holds_images(tmp_path / "nope")
    (tmp_path / "cache" / "cifar10").mkdir(parents=True)
    (tmp_path / "cache" / "cifar10" / "data_batch_1").write_bytes(b"\0")
    assert not holds_images(tmp_path / "cache")
    deep = tmp_path / "mine" / "train" / "cat"
    deep.mkdir(parents=True)
    (deep / ".hidden.jpg").write_bytes(b"")
    assert not holds_images(tmp_path / "mine")
    (deep / "a.JPG").write_bytes(b"")
    assert holds_images(tmp_path / "mine")
    assert not holds_images(tmp_path / "mine", depth=2)
