"""Tests of simclr_lib.data and simclr_lib.shapes.

The torchvision datasets are tested on small files written here in their exact on-disk
formats (CIFAR pickles, STL-10 column-major binaries), with only the MD5 check replaced, so
the parsing under test is torchvision's own and nothing is downloaded.
"""

import os
import pickle
import urllib.error
import warnings

import numpy as np
import pytest
import torch
import torchvision.datasets.cifar as tv_cifar
import torchvision.datasets.stl10 as tv_stl10
from PIL import Image

from simclr_lib.data import (
    DATASETS,
    SPLITS,
    DatasetDownloadError,
    FolderDataset,
    ImageTensorDataset,
    load_dataset,
    train_val_split,
)
from simclr_lib.shapes import (
    BACKGROUND_TYPES,
    COLOUR_CLASSES,
    POLARITIES,
    SHAPE_CLASSES,
    hsv_to_rgb,
    make_colour_shapes,
    make_shapes,
    shape_factors,
)

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                 "ship", "truck"]


# ---------------------------------------------------------------- shapes

def test_make_shapes_is_deterministic_and_seeded():
    x1, y1 = make_shapes(60, seed=3)
    x2, y2 = make_shapes(60, seed=3)
    x3, y3 = make_shapes(60, seed=4)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(x1, x3)
    assert not torch.equal(y1, y3)


def test_make_shapes_shapes_dtypes_and_balance():
    x, y = make_shapes(205, seed=0)
    assert x.shape == (205, 3, 32, 32) and x.dtype == torch.uint8
    assert y.shape == (205,) and y.dtype == torch.int64
    counts = torch.bincount(y, minlength=10)
    assert len(SHAPE_CLASSES) == 10 and len(set(SHAPE_CLASSES)) == 10
    assert counts.tolist() == [21] * 5 + [20] * 5
    # images use the whole range of colours, not a few fixed ones
    assert len(torch.unique(x[:, 0, 0, 0])) > 100


def test_make_shapes_other_size_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    x, _ = make_shapes(12, seed=1, image_size=48)
    assert x.shape == (12, 3, 48, 48)
    assert torch.equal(torch.random.get_rng_state(), state)
    with pytest.raises(ValueError, match="image_size"):
        make_shapes(4, image_size=4)


def test_shapes_object_differs_from_background():
    # the object stays visible in grayscale (luminance contrast >= 0.12 by construction)
    x, _ = make_shapes(300, seed=2)
    gray = torch.einsum("nchw,c->nhw", x.float(), torch.tensor([0.299, 0.587, 0.114]))
    spread = gray.flatten(1).quantile(0.99, dim=1) - gray.flatten(1).quantile(0.01, dim=1)
    assert spread.min() > 25


def test_shape_templates_are_objects_not_holes():
    # each class covers a minority of its template and never touches its border; an
    # inverted inside-test (object and background swapped) would fail this
    from simclr_lib.shapes import _templates
    t = _templates(32)  # (10, 1, T, T)
    area = t.mean((1, 2, 3))
    assert ((area > 0.1) & (area < 0.45)).all()
    border = torch.cat([t[..., 0, :], t[..., -1, :], t[..., :, 0], t[..., :, -1]], -1)
    assert border.max() == 0 and t.min() >= 0 and t.max() <= 1


def _near_segment(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Distance of colours x (N, P, 3) to the RGB segments [a, b] (N, 3), per pixel."""
    ab = (b - a)[:, None]
    t = ((x - a[:, None]) * ab).sum(-1, keepdim=True) / (ab * ab).sum(-1, keepdim=True).clamp(1e-8)
    return (a[:, None] + t.clamp(0, 1) * ab - x).norm(dim=-1)  # (N, P)


def test_shape_factors_describe_the_images():
    n, seed = 400, 7
    images, labels = make_shapes(n, seed=seed)
    f = shape_factors(n, seed=seed)
    assert torch.equal(f["label"], labels)
    for name, shape in (("background", (n,)), ("polarity", (n,)),
                        ("background_colours", (n, 2, 3)),
                        ("object_colour", (n, 3)), ("angle", (n,)), ("scale", (n,)),
                        ("shift", (n, 2)), ("gradient_angle", (n,)), ("noise_std", (n,))):
        assert f[name].shape == shape, name
    bg = f["background"]
    assert bg.dtype == torch.int64 and set(bg.tolist()) == {0, 1} and len(BACKGROUND_TYPES) == 2
    assert 0.4 < bg.float().mean() < 0.6  # about half each, independent of the class
    c1, c2 = f["background_colours"].unbind(1)
    assert torch.equal((c1 != c2).any(1).long(), bg)  # solid: both end colours equal
    # polarity: the object is lighter than both background end colours, or darker than both
    lum = torch.tensor([0.299, 0.587, 0.114])
    lo, l1, l2 = f["object_colour"] @ lum, c1 @ lum, c2 @ lum
    lighter, darker = (lo > l1) & (lo > l2), (lo < l1) & (lo < l2)
    assert torch.equal(f["polarity"], lighter.long()) and bool((lighter ^ darker).all())
    assert len(POLARITIES) == 2 and 0.3 < f["polarity"].float().mean() < 0.7
    # most pixels are background, on the segment between the two end colours (a point for
    # a solid background); and some pixel shows the object's own colour
    x = images.float().div(255).permute(0, 2, 3, 1).flatten(1, 2)  # (N, P, 3)
    tol = 3 * f["noise_std"][:, None] + 0.03

    def fits(c1, c2, obj):
        on_bg = (_near_segment(x, c1, c2) <= tol).float().mean(1) >= 0.4
        has_obj = ((x - obj[:, None]).norm(dim=-1) <= tol * 1.8).any(1)
        return (on_bg & has_obj).float().mean().item()

    assert fits(c1, c2, f["object_colour"]) > 0.97
    other = torch.roll(torch.arange(n), 1)  # another image's factors do not fit
    assert fits(c1[other], c2[other], f["object_colour"][other]) < 0.1
    # the factors do not depend on the image size, and asking leaves the images unchanged
    assert torch.equal(shape_factors(50, seed=3)["angle"], shape_factors(50, seed=3)["angle"])
    assert torch.equal(make_shapes(n, seed=seed)[0], images)
    with pytest.raises(ValueError, match="n must be"):
        shape_factors(-1)


def test_shapes_datasets_carry_their_factors_through_subsets():
    ds = load_dataset("shapes", "test", size=60)
    assert torch.equal(ds.meta["label"], ds.labels)
    sub = ds.subset(torch.tensor([5, 0, 59]))
    for name, value in ds.meta.items():
        assert torch.equal(sub.meta[name], value[[5, 0, 59]]), name
    train, val = train_val_split(ds, 0.25)
    assert torch.equal(val.meta["label"], val.labels)
    assert torch.equal(train.meta["label"], train.labels)
    assert (val.meta["background"] >= 0).all() and len(val.meta["background"]) == len(val)


def test_make_shapes_output_is_unchanged_by_colour_shapes():
    # labels and per-image mean intensities of make_shapes before colour_shapes existed
    # (commit b68e9f4); the mean moves by 1/3072 per pixel rounded differently
    golden = {0: ([4, 1, 7, 5, 3, 9, 0, 8, 6, 2],
                  [104.1406, 133.6986, 127.3138, 116.3434, 136.0817, 66.4619, 140.2012,
                   174.6243, 98.6406, 177.4072]),
              1: ([5, 6, 1, 2, 0, 8, 9, 3, 7, 4],
                  [99.389, 154.0339, 138.6077, 118.2826, 150.6868, 110.1729, 164.3066,
                   125.971, 113.8574, 151.2334])}
    for seed, (labels, means) in golden.items():
        x, y = make_shapes(10, seed=seed)
        assert y.tolist() == labels
        torch.testing.assert_close(x.float().mean(dim=(1, 2, 3)), torch.tensor(means),
                                   rtol=0, atol=0.01)


def test_hsv_to_rgb_matches_colorsys():
    import colorsys
    hsv = torch.rand(200, 3, generator=torch.Generator().manual_seed(0))
    hsv[:6, 0] = torch.arange(6) / 6  # sector boundaries
    ref = torch.tensor([colorsys.hsv_to_rgb(*map(float, c)) for c in hsv])
    torch.testing.assert_close(hsv_to_rgb(hsv), ref)


def test_colour_shapes_class_is_the_hue_and_shape_is_random(monkeypatch):
    import colorsys

    import simclr_lib.shapes as shapes_module
    seen = {}
    render = shapes_module._render

    def spy(shape, angle, scale, shift, obj, bg1, bg2, *rest):
        seen.update(shape=shape, obj=obj, bg1=bg1, bg2=bg2)
        return render(shape, angle, scale, shift, obj, bg1, bg2, *rest)

    monkeypatch.setattr(shapes_module, "_render", spy)
    x, y = make_colour_shapes(600, seed=4)
    assert x.shape == (600, 3, 32, 32) and x.dtype == torch.uint8
    assert torch.bincount(y).tolist() == [100] * 6 and len(COLOUR_CLASSES) == 6
    hsv = torch.tensor([colorsys.rgb_to_hsv(*map(float, c)) for c in seen["obj"]])
    offset = torch.remainder(hsv[:, 0] - y / 6 + 0.5, 1.0) - 0.5  # turns from the class hue
    assert offset.abs().max() <= 1 / 24 + 1e-5
    assert hsv[:, 1].min() > 0.3 and seen["obj"].min() >= 0 and seen["obj"].max() <= 1
    # the luminance is the same for every class, so grayscale keeps nothing of the class
    lum = seen["obj"] @ torch.tensor([0.299, 0.587, 0.114])
    assert lum.min() >= 0.3 - 1e-5 and lum.max() <= 0.5 + 1e-5
    by_class = torch.stack([lum[y == c].mean() for c in range(6)])
    assert by_class.max() - by_class.min() < 0.03
    assert set(seen["shape"].tolist()) == set(range(len(SHAPE_CLASSES)))
    # the shape says nothing about the colour: every class holds many shapes
    for c in range(6):
        assert len(set(seen["shape"][y == c].tolist())) >= 8
    # and the object stands out from its background, as in shapes (visible in grayscale)
    assert shapes_module._stands_out(seen["obj"], seen["bg1"], seen["bg2"]).all()
    gray = torch.einsum("nchw,c->nhw", x.float(), torch.tensor([0.299, 0.587, 0.114]))
    spread = gray.flatten(1).quantile(0.99, dim=1) - gray.flatten(1).quantile(0.01, dim=1)
    assert spread.min() > 25


def test_colour_shapes_is_deterministic_and_a_dataset_of_its_own():
    x1, y1 = make_colour_shapes(30, seed=3)
    x2, y2 = make_colour_shapes(30, seed=3)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(make_colour_shapes(30, seed=4)[0], x1)
    with pytest.raises(ValueError, match="image_size"):
        make_colour_shapes(4, image_size=4)
    with pytest.raises(ValueError, match="n must be"):
        make_colour_shapes(-1)
    val = load_dataset("colour_shapes", "val", size=300)
    assert val.classes == list(COLOUR_CLASSES) and torch.bincount(val.labels).tolist() == [50] * 6
    test = load_dataset("colour_shapes", "test", size=300)
    shapes_val = load_dataset("shapes", "val", size=300)
    seen = {img.numpy().tobytes() for img in val.images}
    for other in (test, shapes_val):
        assert not seen & {img.numpy().tobytes() for img in other.images}
    assert torch.equal(load_dataset("colour_shapes", "val", size=300).images, val.images)


def test_load_shapes_splits_are_disjoint_and_sized():
    val = load_dataset("shapes", "val")
    assert len(val) == 1000 and val.classes == list(SHAPE_CLASSES)
    assert torch.bincount(val.labels).tolist() == [100] * 10
    assert val.is_labelled and val.image_size == 32
    train = load_dataset("shapes", "train", size=1500)
    test = load_dataset("shapes", "test", size=1000)
    assert len(train) == 1500 and len(test) == 1000
    seen = {img.numpy().tobytes() for img in train.images}
    for other in (val, test):
        assert not seen & {img.numpy().tobytes() for img in other.images}
    assert torch.equal(load_dataset("shapes", "test", size=1000).images, test.images)
    assert not torch.equal(load_dataset("shapes", "test", seed=1, size=10).images,
                           test.images[:10])


# ---------------------------------------------------------------- torchvision formats

@pytest.fixture
def no_md5(monkeypatch):
    """Replace only the MD5 check: a file counts as intact if it exists."""
    def exists(fpath, md5=None):
        return os.path.isfile(fpath)
    monkeypatch.setattr(tv_cifar, "check_integrity", exists)
    monkeypatch.setattr(tv_stl10, "check_integrity", exists)


@pytest.fixture
def no_network(monkeypatch):
    def fail(*args, **kwargs):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", fail)
    monkeypatch.setattr(tv_stl10, "download_and_extract_archive", fail)


def _pickle(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def _write_cifar(root, name, n=10):
    """CIFAR-10 or -100 python pickles; returns {file: (images (n,3,32,32), labels)}."""
    rng = np.random.default_rng(0)
    c100 = name == "cifar100"
    base = root / name / ("cifar-100-python" if c100 else "cifar-10-batches-py")
    base.mkdir(parents=True)
    files = ["train", "test"] if c100 else [f"data_batch_{i}" for i in range(1, 6)] + [
        "test_batch"]
    out = {}
    for file in files:
        x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        if file in ("data_batch_1", "train"):
            x[0] = 0
            x[0, 0, 1, 2] = 255  # a red pixel at row 1, column 2
        y = rng.integers(0, 100 if c100 else 10, n).tolist()
        # one row per image: 1024 red values (row-major), then 1024 green, 1024 blue
        entry = {"batch_label": file, "data": x.reshape(n, 3072),
                 "filenames": [f"{i}.png" for i in range(n)]}
        entry.update({"fine_labels": y, "coarse_labels": [v // 5 for v in y]} if c100
                     else {"labels": y})
        _pickle(base / file, entry)
        out[file] = (x, y)
    if c100:
        _pickle(base / "meta", {"fine_label_names": [f"fine{i}" for i in range(100)],
                                "coarse_label_names": [f"coarse{i}" for i in range(20)]})
    else:
        _pickle(base / "batches.meta", {"label_names": CIFAR10_NAMES, "num_vis": 3072,
                                        "num_cases_per_batch": n})
    return out


def test_cifar10_round_trips_pixels_and_labels(tmp_path, no_md5, no_network):
    written = _write_cifar(tmp_path, "cifar10")
    train = load_dataset("cifar10", "train", root=tmp_path, progress=False)  # no download
    x = np.concatenate([written[f"data_batch_{i}"][0] for i in range(1, 6)])
    y = sum((written[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    assert train.images.shape == (50, 3, 32, 32) and train.images.dtype == torch.uint8
    assert torch.equal(train.images, torch.from_numpy(x))
    assert train.labels.tolist() == y and train.classes == CIFAR10_NAMES
    assert train.images[0, 0, 1, 2] == 255 and train.images[0].sum() == 255
    test = load_dataset("cifar10", "test", root=tmp_path, download=False)
    assert torch.equal(test.images, torch.from_numpy(written["test_batch"][0]))


def test_cifar100_uses_fine_labels(tmp_path, no_md5):
    written = _write_cifar(tmp_path, "cifar100")
    ds = load_dataset("cifar100", "test", root=tmp_path, download=False, progress=False)
    assert torch.equal(ds.images, torch.from_numpy(written["test"][0]))
    assert ds.labels.tolist() == written["test"][1]
    assert ds.num_classes == 100 and ds.classes[7] == "fine7"


def test_cifar_resize_and_size_cap(tmp_path, no_md5):
    _write_cifar(tmp_path, "cifar10")
    ds = load_dataset("cifar10", root=tmp_path, image_size=16, size=7, seed=1, progress=False)
    assert ds.images.shape == (7, 3, 16, 16) and ds.image_size == 16
    full = load_dataset("cifar10", root=tmp_path, progress=False)
    picked = [int(torch.nonzero((full.images == img).flatten(1).all(1)).flatten()[0])
              for img in load_dataset("cifar10", root=tmp_path, size=7, seed=1).images]
    assert sorted(picked) == picked and len(set(picked)) == 7


def _write_stl10(root, n=10):
    rng = np.random.default_rng(1)
    base = root / "stl10" / "stl10_binary"
    base.mkdir(parents=True)
    out = {}
    for split in ("train", "test", "unlabeled"):
        x = rng.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8)
        x[0] = 0
        x[0, 2, 3, 50] = 255  # a blue pixel at row 3, column 50
        # column-major within each channel: h varies fastest
        (base / f"{split}_X.bin").write_bytes(np.ascontiguousarray(x.transpose(0, 1, 3, 2))
                                              .tobytes())
        y = rng.integers(1, 11, n).astype(np.uint8)  # 1-based on disk
        if split != "unlabeled":
            (base / f"{split}_y.bin").write_bytes(y.tobytes())
        out[split] = (x, (y.astype(np.int64) - 1).tolist())
    names = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
    (base / "class_names.txt").write_text("\n".join(names) + "\n")
    (base / "fold_indices.txt").write_text("\n".join(" ".join(map(str, range(n)))
                                                     for _ in range(10)) + "\n")
    return out


def test_stl10_splits_round_trip(tmp_path, no_md5, no_network):
    written = _write_stl10(tmp_path)
    train = load_dataset("stl10", "train", root=tmp_path, progress=False)
    assert train.images.shape == (10, 3, 96, 96) and train.images.is_contiguous()
    assert torch.equal(train.images, torch.from_numpy(written["train"][0]))
    assert train.images[0, 2, 3, 50] == 255 and train.images[0].sum() == 255
    assert train.labels.tolist() == written["train"][1] and train.classes[7] == "monkey"
    unl = load_dataset("stl10", "unlabeled", root=tmp_path, download=False)
    assert (unl.labels == -1).all() and not unl.is_labelled
    both = load_dataset("stl10", "train+unlabeled", root=tmp_path, image_size=48,
                        progress=False)
    assert both.images.shape == (20, 3, 48, 48)
    assert both.labels[:10].tolist() == written["train"][1] and (both.labels[10:] == -1).all()
    test = load_dataset("stl10", "test", root=tmp_path, download=False)
    assert test.labels.tolist() == written["test"][1]


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "stl10"])
def test_failed_download_names_offline_alternatives(tmp_path, no_network, name):
    with pytest.raises(DatasetDownloadError) as info:
        load_dataset(name, root=tmp_path, download=True)
    msg = str(info.value)
    assert "failed" in msg and "no network" in msg
    assert 'load_dataset("shapes"' in msg and "--dataset shapes" in msg
    assert "--dataset folder --data-dir DIR" in msg
    assert isinstance(info.value.__cause__, urllib.error.URLError)


def test_missing_files_without_download(tmp_path):
    with pytest.raises(DatasetDownloadError, match="download=True") as info:
        load_dataset("cifar10", root=tmp_path, download=False)
    assert "missing" in str(info.value) and "shapes" in str(info.value)
    assert not (tmp_path / "cifar10").exists() or not any((tmp_path / "cifar10").iterdir())


def test_unknown_name_and_split():
    with pytest.raises(ValueError, match="cifar100.*stl10"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match="train, test, unlabeled, train\\+unlabeled"):
        load_dataset("stl10", "val")
    assert set(SPLITS) == set(DATASETS)


# ---------------------------------------------------------------- folder

def _solid(mode, size, colour):
    return Image.new(mode, size, colour)


@pytest.fixture
def image_dir(tmp_path):
    root = tmp_path / "mine"
    cat, dog = root / "train" / "cat", root / "train" / "dog"
    cat.mkdir(parents=True)
    dog.mkdir(parents=True)
    _solid("RGB", (40, 30), (200, 10, 30)).save(cat / "a_rgb.png")
    _solid("L", (50, 50), 77).save(cat / "b_gray.jpg", quality=100)
    pal = _solid("P", (20, 20), 0)
    pal.putpalette([10, 120, 230] + [0] * 765)
    pal.save(cat / "c_palette.png")
    (cat / "d_corrupt.jpg").write_bytes(os.urandom(300))
    (cat / "notes.txt").write_text("not an image")
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8))
    photo.save(cat / "e_whole.jpg", quality=90)
    data = (cat / "e_whole.jpg").read_bytes()
    (cat / "e_whole.jpg").unlink()
    (cat / "e_truncated.jpg").write_bytes(data[:len(data) // 2])  # the header reads fine
    _solid("RGBA", (30, 40), (0, 0, 0, 0)).save(dog / "a_clear.png")  # transparent -> white
    _solid("RGB", (8, 8), (0, 255, 0)).save(dog / "b_tiny.png")  # upscaled
    _solid("CMYK", (32, 32), (0, 255, 255, 0)).save(dog / "c_cmyk.jpg", quality=100)
    (dog / "d_empty.png").write_bytes(b"")
    (dog / ".DS_Store").write_bytes(b"\0\1")  # hidden: ignored silently
    return root


SKIPPED = ("train/cat/d_corrupt.jpg", "train/cat/e_truncated.jpg", "train/cat/notes.txt",
           "train/dog/d_empty.png")


def _skipped_line(capsys, image_dir):
    """The message about unreadable files: one plain line, paths relative to the folder."""
    err = capsys.readouterr().err
    assert err == (f"warning: skipped 4 of 10 files in {image_dir} that are not readable "
                   f"images: {', '.join(SKIPPED)}\n")


def test_folder_in_memory(image_dir, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no UserWarning with a source line any more
        ds = load_dataset("folder", "train", root=image_dir, image_size=16, progress=False)
    _skipped_line(capsys, image_dir)
    assert isinstance(ds, ImageTensorDataset)
    assert [p.relative_to(image_dir).as_posix() for p in ds.paths] == [
        "train/cat/a_rgb.png", "train/cat/b_gray.jpg", "train/cat/c_palette.png",
        "train/dog/a_clear.png", "train/dog/b_tiny.png", "train/dog/c_cmyk.jpg"]
    assert ds.images.shape == (6, 3, 16, 16) and ds.images.dtype == torch.uint8
    assert ds.classes == ["cat", "dog"] and ds.labels.tolist() == [0, 0, 0, 1, 1, 1]
    colours = ds.images.flatten(2).float().mean(2).round().int().tolist()  # mean (r, g, b)
    assert colours == [[200, 10, 30], [77, 77, 77], [10, 120, 230], [255, 255, 255],
                       [0, 255, 0], [255, 0, 0]]


def test_folder_streaming(image_dir, capsys):
    # A truncated JPEG passes a header check and then kills a worker mid-run: it must be
    # found (and skipped) when the folder is scanned.
    ds = load_dataset("folder", root=image_dir, in_memory=False, progress=False)
    _skipped_line(capsys, image_dir)
    assert isinstance(ds, FolderDataset) and len(ds) == 6 and ds.is_labelled
    assert ds.paths[1] == image_dir / "train" / "cat" / "b_gray.jpg"
    image, label = ds[1]
    assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (50, 50)
    assert label == 0 and ds[4][0].size == (8, 8)
    ds.transform = lambda im: im.size
    assert ds[0] == ((40, 30), 0)
    train, val = train_val_split(ds, 0.5)
    assert isinstance(val, FolderDataset) and sorted(val.labels.tolist()) == [0, 0, 1]


def test_folder_layouts_and_errors(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(3):
        _solid("RGB", (10 + i, 12), (i, i, i)).save(flat / f"{i}.png")
    ds = load_dataset("folder", root=flat, progress=False)
    assert ds.labels.tolist() == [-1, -1, -1] and ds.classes == [] and not ds.is_labelled
    assert ds.image_size == 64  # the default for folders
    assert len(load_dataset("folder", root=flat, size=2, image_size=8, progress=False)) == 2
    with pytest.raises(ValueError, match="train_val_split"):
        load_dataset("folder", "val", root=flat)
    classes = tmp_path / "classes"
    (classes / "x").mkdir(parents=True)
    (classes / "y" / "nested").mkdir(parents=True)
    _solid("RGB", (9, 9), (1, 2, 3)).save(classes / "x" / "0.png")
    _solid("RGB", (9, 9), (1, 2, 3)).save(classes / "y" / "nested" / "1.png")
    ds = load_dataset("folder", root=classes, image_size=8, progress=False)
    assert ds.classes == ["x", "y"] and ds.labels.tolist() == [0, 1]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no image files"):
        load_dataset("folder", root=empty)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset("folder", root=tmp_path / "nope")
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.jpg").write_bytes(b"junk")
    with pytest.raises(ValueError, match="no readable images"):
        load_dataset("folder", root=junk, progress=False)


def test_skipped_files_beyond_ten_are_counted(tmp_path, capsys):
    for i in range(13):
        (tmp_path / f"bad{i:02d}.jpg").write_bytes(b"")
    _solid("RGB", (9, 9), (1, 2, 3)).save(tmp_path / "good.png")
    assert len(load_dataset("folder", root=tmp_path, image_size=8, progress=False)) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "skipped 13 of 14 files" in err
    assert "bad09.jpg and 3 more" in err and "bad10.jpg" not in err


def test_paths_follow_subset_and_to(image_dir, capsys):
    ds = load_dataset("folder", root=image_dir, image_size=8, progress=False)
    sub = ds.subset(torch.tensor([4, 0]))
    assert [p.name for p in sub.paths] == ["b_tiny.png", "a_rgb.png"]
    assert sub.to("cpu").paths == sub.paths
    train, val = train_val_split(ds, 0.5)
    assert sorted(p.name for p in train.paths + val.paths) == sorted(p.name for p in ds.paths)
    assert load_dataset("shapes", size=4).paths is None
    with pytest.raises(ValueError, match="one file per image"):
        ImageTensorDataset(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), paths=["a.jpg"])


def test_folder_split_missing(image_dir):
    with pytest.raises(ValueError, match="no val/ folder"):
        load_dataset("folder", "val", root=image_dir)


# ---------------------------------------------------------------- datasets and splits

def _numbered(labels):
    """Image i is filled with the value i, so items can be identified after a split."""
    n = len(labels)
    images = torch.arange(n, dtype=torch.uint8)[:, None, None, None].expand(n, 3, 4, 4)
    return ImageTensorDataset(images.contiguous(), torch.tensor(labels), ["a", "b", "c", "d"])


def test_train_val_split_is_stratified_disjoint_and_deterministic():
    ds = _numbered([0] * 40 + [1] * 30 + [2] * 20 + [3] * 10)
    train, val = train_val_split(ds, val_fraction=0.2, seed=0)
    ids_t, ids_v = train.images[:, 0, 0, 0].tolist(), val.images[:, 0, 0, 0].tolist()
    assert len(ids_v) == 20 and not set(ids_t) & set(ids_v)
    assert sorted(ids_t + ids_v) == list(range(100))
    assert torch.bincount(val.labels, minlength=4).tolist() == [8, 6, 4, 2]
    assert torch.equal(train_val_split(ds, 0.2, seed=0)[1].images, val.images)
    assert not torch.equal(train_val_split(ds, 0.2, seed=1)[1].images, val.images)
    with pytest.raises(ValueError, match="val_fraction"):
        train_val_split(ds, 1.0)


def test_train_val_split_unlabelled_and_plain_datasets():
    ds = _numbered([-1] * 50)
    train, val = train_val_split(ds, 0.1, seed=3)
    assert (len(train), len(val)) == (45, 5)
    assert not set(train.images[:, 0, 0, 0].tolist()) & set(val.images[:, 0, 0, 0].tolist())
    plain = list(range(10))  # no labels, no subset(): a torch Subset comes back
    a, b = train_val_split(plain, 0.3)
    assert sorted(list(a) + list(b)) == plain and len(b) == 3


def test_image_tensor_dataset_api():
    images = torch.randint(0, 256, (5, 3, 6, 6), dtype=torch.uint8)
    ds = ImageTensorDataset(images, [2, 0, 1, 2, 0], transform=lambda x: x.float() / 255)
    x, y = ds[3]
    assert x.dtype == torch.float32 and torch.equal(x, images[3].float() / 255)
    assert isinstance(y, int) and y == 2
    assert ds.classes == ["0", "1", "2"] and ds.num_classes == 3 and ds.is_labelled
    assert ds.image_size == 6 and len(ds) == 5
    sub = ds.subset(torch.tensor([4, 1]))
    assert torch.equal(sub.images, images[[4, 1]]) and sub.labels.tolist() == [0, 0]
    assert ds.subset(ds.labels == 2).labels.tolist() == [2, 2]  # a boolean mask
    assert ds.meta == {} and sub.meta == {}
    with_meta = ImageTensorDataset(images, [2, 0, 1, 2, 0], meta={"w": torch.arange(5.0)})
    assert with_meta.subset([4, 1]).meta["w"].tolist() == [4.0, 1.0]
    moved = with_meta.to("meta")  # a device without memory: checks that every tensor moves
    assert moved.images.device.type == moved.labels.device.type == "meta"
    assert moved.meta["w"].device.type == "meta"
    moved = ds.to("meta")
    assert ds.images.device.type == "cpu" and moved.transform is ds.transform
    assert not ImageTensorDataset(images).is_labelled
    with pytest.raises(ValueError, match="uint8"):
        ImageTensorDataset(images.float())
    with pytest.raises(ValueError, match="labels"):
        ImageTensorDataset(images, [0, 1])
    with pytest.raises(ValueError, match=r"meta\['w'\] must be a tensor with first dimension 5"):
        ImageTensorDataset(images, meta={"w": torch.zeros(4)})


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_image_tensor_dataset_to_cuda():
    ds = load_dataset("shapes", "test", size=20).to("cuda")
    x, y = ds[0]
    assert x.is_cuda and ds.labels.is_cuda and isinstance(y, int)
