"""``embed``: one row per readable image with its path, label and h; files any tool can read."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from simclr_lib.checkpoint import load_encoder
from simclr_lib.cli import main
from simclr_lib.config import get_profile
from simclr_lib.data import image_size_of, load_dataset
from simclr_lib.diagnostics import nearest_neighbours
from simclr_lib.embed import Embeddings, embed_folder, load_embeddings
from simclr_lib.evaluate import extract_features
from simclr_lib.images import prepare
from simclr_lib.train import fit

ROOT = Path(__file__).resolve().parents[1]
READABLE = ["train/cat/a0.jpg", "train/cat/a1.png", "train/cat/a2_gray.jpg",  # split order,
            "train/cat/a3.jpg", "train/dog/b0.png", "train/dog/b1_rgba.png",  # then class,
            "train/dog/b2.jpg", "train/dog/b3.jpg", "val/cat/v0.jpg",  # then name
            "val/dog/v1.png", "test/cat/t0.png", "test/dog/t1.jpg"]
BAD = ["train/cat/empty.jpg", "train/cat/notes.txt", "train/dog/truncated.jpg"]


def _photo(rng, w, h):
    """A smooth random image (photo-like gradients, so JPEG keeps it recognisable)."""
    small = rng.integers(0, 256, (5, 6, 3), np.uint8)
    return Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """train/ val/ test/<class>/ with JPEG, PNG, grayscale, RGBA and three bad files."""
    root = tmp_path_factory.mktemp("embed") / "my_images"
    rng = np.random.default_rng(0)
    for rel in READABLE:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        im = _photo(rng, int(rng.integers(40, 120)), int(rng.integers(40, 120)))
        if "gray" in rel:
            im = im.convert("L")
        if "rgba" in rel:
            im = im.convert("RGBA")
        im.save(path, **({"quality": 90} if rel.endswith(".jpg") else {}))
    (root / BAD[0]).write_bytes(b"")
    (root / BAD[1]).write_text("not an image")
    whole = root / "train/dog/b3.jpg"
    (root / BAD[2]).write_bytes(whole.read_bytes()[:300])  # the header reads fine
    return root


@pytest.fixture(scope="module")
def run(folder, tmp_path_factory):
    """A tiny run trained on the folder (two steps are enough: h only has to be some f)."""
    cfg = get_profile("ci").train
    cfg.dataset, cfg.data_dir, cfg.image_size, cfg.batch_size = "folder", str(folder), 24, 4
    cfg.out, cfg.max_steps, cfg.epochs, cfg.knn_every = str(tmp_path_factory.mktemp("run")), 2, \
        1, 0
    fit(cfg)
    return Path(cfg.out)


def test_embed_folder_has_one_row_per_readable_file(folder, run, capsys):
    f, cfg = load_encoder(run / "last.pt")
    emb = embed_folder(f, folder, image_size_of(cfg), batch_size=5, progress=False)
    assert emb.paths == READABLE  # relative to the folder, split and class included
    assert sorted(emb.skipped) == sorted(BAD)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and all(b in err for b in BAD)  # one plain line names them
    assert emb.classes == ["cat", "dog"]
    assert [emb.label_name(i) for i in range(len(emb))] == [p.split("/")[1] for p in READABLE]
    assert emb.h.shape == (len(READABLE), f.feature_dim) and emb.h.dtype == torch.float32
    # h is what evaluation computes on the in-memory dataset of the same files ...
    ds = load_dataset("folder", "train", root=folder, image_size=24, progress=False)
    rows = [emb.index(p) for p in ds.paths]
    torch.testing.assert_close(emb.h[rows], extract_features(f, ds.images))
    # ... and what f gives for prepare(path), one image at a time.
    for i in (0, 4, 7):
        with torch.no_grad():
            h = f(prepare(folder / emb.paths[i], 24))  # (1, D)
        torch.testing.assert_close(h[0], emb.h[i], rtol=1e-4, atol=1e-5)
    assert emb.root == str(folder)
    only = embed_folder(f, folder, 24, split="val", progress=False)
    assert only.paths == ["val/cat/v0.jpg", "val/dog/v1.png"]


def test_a_flat_folder_is_unlabelled(folder, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for p in READABLE[:3]:
        (flat / Path(p).name).write_bytes((folder / p).read_bytes())
    f = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(4))
    f(torch.zeros(1, 3 * 16 * 16))
    emb = embed_folder(f, flat, 16, progress=False)
    assert emb.paths == ["a0.jpg", "a1.png", "a2_gray.jpg"] and emb.labels.tolist() == [-1] * 3
    assert emb.classes == [] and emb.label_name(0) == ""


def _emb(n=30, d=6, labelled=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3 if labelled else torch.full((n,), -1)
    return Embeddings([f"c{i % 3}/img {i}.jpg" for i in range(n)], labels,
                      ["c0", "c1", "c2"] if labelled else [], torch.randn(n, d, generator=g),
                      root="/data/photos")


@pytest.mark.parametrize("suffix", [".csv", ".npz"])
def test_files_load_with_csv_and_numpy_and_round_trip(tmp_path, suffix):
    emb = _emb()
    path = emb.save(tmp_path / f"embeddings{suffix}")
    if suffix == ".csv":
        with open(path, newline="") as fh:
            rows = list(csv.reader(fh))
        assert rows[0] == ["path", "label"] + [f"h_{j}" for j in range(6)]
        assert [r[0] for r in rows[1:]] == emb.paths and rows[1][1] == "c0"
        h = np.array([r[2:] for r in rows[1:]], dtype=np.float32)
    else:
        z = np.load(path)  # no pickle needed
        assert z["paths"].tolist() == emb.paths and z["classes"].tolist() == emb.classes
        assert z["labels"].dtype == np.int64 and str(z["root"]) == "/data/photos"
        h = z["h"]
    assert np.array_equal(h, emb.h.numpy())  # float32 exactly, CSV too
    back = load_embeddings(path)
    assert back.paths == emb.paths and back.classes == emb.classes
    assert torch.equal(back.labels, emb.labels) and torch.equal(back.h, emb.h)
    unlabelled = _emb(labelled=False)
    back = load_embeddings(unlabelled.save(tmp_path / f"u{suffix}"))
    assert back.labels.tolist() == [-1] * 30 and back.classes == []


def test_load_embeddings_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_embeddings(tmp_path / "none.csv")
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not an embeddings file"):
        load_embeddings(tmp_path / "x.csv")
    with pytest.raises(ValueError, match=".csv or .npz"):
        _emb().save(tmp_path / "x.json")


def test_nearest_leaves_the_query_out_and_matches_brute_force():
    emb = _emb()
    hits = emb.nearest("c1/img 4.jpg", k=4)
    expected = nearest_neighbours(emb.h[4:5], emb.h, k=5)[0, 1:]  # [0] is the query itself
    assert [p for p, _ in hits] == [emb.paths[i] for i in expected.tolist()]
    sims = torch.nn.functional.cosine_similarity(emb.h[expected], emb.h[4:5])
    assert [s for _, s in hits] == pytest.approx(sims.tolist(), abs=1e-6)
    assert all(a >= b for (_, a), (_, b) in zip(hits, hits[1:], strict=False))
    assert emb.nearest(4, k=4) == hits
    assert emb.nearest("/data/photos/c1/img 4.jpg", k=4) == hits  # a path through root
    new = emb.h[4] + 0.01  # features of an image not in the set: nothing is left out
    assert emb.nearest(new, k=1)[0][0] == "c1/img 4.jpg"
    with pytest.raises(KeyError, match="not among the 30"):
        emb.nearest("elsewhere.jpg")
    with pytest.raises(ValueError, match="k must be in 1..29"):
        emb.nearest(0, k=30)


def test_plot_retrieval_draws_a_captioned_grid(folder, run):
    from matplotlib.figure import Figure

    from simclr_lib.plots import plot_retrieval

    f, cfg = load_encoder(run / "last.pt")
    emb = embed_folder(f, folder, 24, progress=False)
    fig = plot_retrieval(emb, [emb.paths[0], 3], k=4)
    assert isinstance(fig, Figure) and len(fig.axes) == 2 * 5
    first = emb.nearest(emb.paths[0], k=4)[0]
    assert fig.axes[1].get_xlabel() == f"{first[1]:.2f}\n{Path(first[0]).name}"
    with pytest.raises(ValueError, match="root"):
        plot_retrieval(load_embeddings(emb.save(folder.parent / "e.csv")), [0])


def _cli(argv, capsys):
    code = main(argv)
    return code, capsys.readouterr()


def test_embed_command_writes_csv_and_refuses_to_overwrite(folder, run, tmp_path, capsys):
    out = tmp_path / "embeddings.csv"
    argv = ["embed", "--checkpoint", str(run), "--data-dir", str(folder), "--out", str(out),
            "--no-progress"]
    code, io = _cli(argv, capsys)
    assert code == 0, io.err
    assert f"wrote {out}: {len(READABLE)} images" in io.out and "skipped 3" in io.out
    assert "train/dog/truncated.jpg" in io.err
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["path"] for r in rows] == READABLE
    assert [r["label"] for r in rows] == [p.split("/")[1] for p in READABLE]
    code, io = _cli(argv, capsys)
    assert code == 2 and "--overwrite" in io.err and "\n" not in io.err.strip()
    code, io = _cli(argv + ["--overwrite", "--split", "test"], capsys)
    assert code == 0 and load_embeddings(out).paths == READABLE[-2:]


@pytest.mark.parametrize("change, message", [
    ({"--out": "e.json"}, ".csv or .npz"),
    ({"--data-dir": "nope"}, "does not exist"),
    ({"--checkpoint": "nope"}, "no checkpoint"),
])
def test_embed_command_errors_are_one_line(folder, run, tmp_path, capsys, change, message):
    args = {"--checkpoint": str(run), "--data-dir": str(folder),
            "--out": str(tmp_path / "e.npz")}
    args.update({k: str(tmp_path / v) for k, v in change.items()})
    code, io = _cli(["embed", *[x for kv in args.items() for x in kv], "--no-progress"], capsys)
    err = io.err.strip()
    assert code == 2 and err.startswith("error:") and "\n" not in err and message in err


def test_embed_help_from_a_real_process():
    r = subprocess.run([sys.executable, "-m", "simclr_lib", "embed", "--help"],
                       capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0
    for flag in ("--checkpoint", "--data-dir", "--out", "--split", "--image-size",
                 "--overwrite", "csv", "numpy.load"):
        assert flag in r.stdout
