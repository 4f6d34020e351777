"""Use a trained encoder on your own images: ``embed`` a folder, save it, find neighbours.

After pre-training, the encoder ``f`` is what you keep (SimCLR, Chen et al. 2020, Section
2.1: the head ``g`` is thrown away and ``h = f(x)`` is the representation). This module
turns a folder of images into one row per readable file, ``(path, label, h)``:

* :func:`embed_folder` decodes every file the way evaluation does
  (:func:`simclr_lib.images.prepare` gives the same ``h`` for one image), skipping and
  naming files that are not readable images;
* :class:`Embeddings` holds the rows; :meth:`Embeddings.save` writes ``.csv`` (one row per
  image: ``path,label,h_0,...``; read it with the ``csv`` module) or ``.npz`` (arrays
  ``paths``, ``labels``, ``classes``, ``h``, ``root``; read it with ``numpy.load``);
  :func:`load_embeddings` reads either back;
* :meth:`Embeddings.nearest` finds the most similar images to one image (cosine
  similarity of ``h``), and :func:`simclr_lib.plots.plot_retrieval` draws them.

``python -m simclr_lib embed --checkpoint RUN --data-dir DIR --out embeddings.csv`` is the
command-line face of the same functions.

Used by notebook 07 (your own images).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import numbers
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .checkpoint import load_encoder
from .data import SPLITS, image_size_of, report_skipped, scan_folder
from .device import module_device, resolve_device
from .diagnostics import nearest_neighbours
from .evaluate import extract_features, on_device
from .images import load_image

FORMATS = (".csv", ".npz")


@dataclasses.dataclass
class Embeddings:
    """Features ``h = f(x)`` of the images of a folder, one row per readable file.

    Attributes:
        paths: each image's path relative to ``root``, with ``/`` separators
            (``"train/cat/001.jpg"``).
        labels: int64 ``(N,)`` indices into ``classes``; ``-1`` where the layout has no
            class (a flat folder).
        classes: class names (sub-folder names, sorted).
        h: float32 ``(N, D)`` features.
        root: the folder the paths are relative to (``None`` when unknown).
        skipped: files that could not be decoded, relative to ``root``.

    Example:
        >>> emb = embed_folder(f, "my_images", image_size=64)        # doctest: +SKIP
        >>> emb.nearest(emb.paths[0], k=3)                            # doctest: +SKIP
        [('train/cat/017.jpg', 0.93), ('train/cat/004.jpg', 0.91), ...]
    """

    paths: list[str]
    labels: torch.Tensor
    classes: list[str]
    h: torch.Tensor
    root: str | None = None
    skipped: list[str] = dataclasses.field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        return (f"Embeddings(N={len(self)}, D={self.h.shape[1] if self.h.dim() == 2 else 0}, "
                f"classes={len(self.classes)}, root={self.root!r})")

    def label_name(self, i: int) -> str:
        """The class name of row ``i`` (``""`` when unlabelled)."""
        y = int(self.labels[i])
        return self.classes[y] if y >= 0 else ""

    def index(self, path: str | os.PathLike) -> int:
        """The row of ``path``: relative to ``root`` as in ``paths``, or a path that lies
        inside ``root``.

        Raises:
            KeyError: no row has that path.
        """
        rows = self._rows()
        key = Path(path).as_posix()
        if key not in rows and self.root is not None:  # a path through root, e.g. DIR/a.jpg
            root = os.path.abspath(Path(self.root).expanduser())
            if os.path.abspath(path).startswith(root + os.sep):
                key = Path(os.path.relpath(os.path.abspath(path), root)).as_posix()
        if key not in rows:
            raise KeyError(f"{path} is not among the {len(self)} embedded images"
                           + (f" of {self.root}" if self.root else ""))
        return rows[key]

    def _rows(self) -> dict[str, int]:
        return {p: i for i, p in enumerate(self.paths)}

    def nearest(self, query: str | os.PathLike | int | torch.Tensor, k: int = 5,
                ) -> list[tuple[str, float]]:
        """The ``k`` images most similar to ``query`` (cosine similarity of ``h``).

        Args:
            query: a path (as in ``paths``), a row index, or features ``(D,)`` /
                ``(1, D)`` of any image, e.g. ``f(prepare(new_photo, S))``. A query that
                is one of the rows is left out of its own neighbours.
            k: how many, at most ``N`` (``N - 1`` for a query among the rows).

        Returns:
            ``[(path, similarity), ...]``, most similar first; similarities in [-1, 1].

        Raises:
            KeyError: an unknown path. IndexError: a row out of range. ValueError: a bad
                ``k`` or feature shape.
        """
        if isinstance(query, torch.Tensor):
            q, own = query.detach().reshape(1, -1).float().cpu(), None  # (1, D)
        else:
            own = int(query) if isinstance(query, numbers.Integral) else self.index(query)
            if not 0 <= own < len(self):
                raise IndexError(f"row {own} is out of range for {len(self)} images")
            q = self.h[own][None]  # (1, D)
        n = len(self) - (own is not None)
        if not 1 <= k <= n:
            raise ValueError(f"k must be in 1..{n}, got {k}")
        idx = nearest_neighbours(q, self.h, k=k + (own is not None))[0]  # (k or k+1,)
        idx = idx[idx != own][:k] if own is not None else idx
        sims = F.normalize(self.h[idx], dim=1) @ F.normalize(q[0], dim=0)  # (k,)
        return [(self.paths[i], float(s)) for i, s in zip(idx.tolist(), sims, strict=True)]

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``.csv`` (``path,label,h_0,...,h_{D-1}``; label = class name or empty) or
        ``.npz`` (``paths``, ``labels``, ``classes``, ``h``, ``root``), atomically.

        Raises:
            ValueError: another file ending.
        """
        path = Path(path)
        if path.suffix.lower() not in FORMATS:
            raise ValueError(f"embeddings are written as .csv or .npz, not {path.name!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        h = self.h.float().cpu().numpy()
        if path.suffix.lower() == ".npz":
            with open(tmp, "wb") as fh:
                np.savez(fh, paths=np.array(self.paths, dtype=str),
                         labels=self.labels.cpu().numpy().astype(np.int64),
                         classes=np.array(self.classes, dtype=str), h=h,
                         root=np.array(self.root or ""))
        else:
            with open(tmp, "w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh)
                w.writerow(["path", "label"] + [f"h_{j}" for j in range(h.shape[1])])
                for i, row in enumerate(h):  # 9 digits: float32 values read back exactly
                    w.writerow([self.paths[i], self.label_name(i)] + [f"{v:.9g}" for v in row])
        os.replace(tmp, path)
        return path


def load_embeddings(path: str | os.PathLike, root: str | os.PathLike | None = None,
                    ) -> Embeddings:
    """Read what :meth:`Embeddings.save` (or ``python -m simclr_lib embed``) wrote.

    Args:
        path: a ``.csv`` or ``.npz`` file.
        root: the image folder (a ``.npz`` remembers it; a ``.csv`` does not).

    Raises:
        FileNotFoundError: no such file. ValueError: not an embeddings file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no embeddings file {path}")
    if path.suffix.lower() == ".npz":
        with np.load(path, allow_pickle=False) as z:
            if not {"paths", "labels", "classes", "h"} <= set(z.files):
                raise ValueError(f"{path} is not an embeddings file (it holds {z.files})")
            saved_root = str(z["root"]) if "root" in z.files else ""
            return Embeddings([str(p) for p in z["paths"]], torch.from_numpy(z["labels"]),
                              [str(c) for c in z["classes"]], torch.from_numpy(z["h"]),
                              str(root) if root is not None else (saved_root or None))
    if path.suffix.lower() != ".csv":
        raise ValueError(f"embeddings are .csv or .npz files, not {path.name!r}")
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if not rows or rows[0][:2] != ["path", "label"]:
        raise ValueError(f"{path} is not an embeddings file (its header is not path,label,h_0..)")
    body = rows[1:]
    classes = sorted({r[1] for r in body if r[1]})
    index = {c: i for i, c in enumerate(classes)}
    labels = torch.tensor([index.get(r[1], -1) for r in body], dtype=torch.int64)
    h = torch.tensor(np.array([r[2:] for r in body], dtype=np.float32).reshape(
        len(body), len(rows[0]) - 2))
    return Embeddings([r[0] for r in body], labels, classes, h,
                      str(root) if root is not None else None)


class _Files(Dataset):
    """Decode files to uint8 (3, S, S); a file that fails gives an empty tensor instead."""

    def __init__(self, files: list[Path], size: int) -> None:
        self.files, self.size = files, size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        try:
            return load_image(self.files[i], self.size), i
        except Exception:  # any file Pillow cannot decode is skipped (and named)
            return torch.empty(0, dtype=torch.uint8), i


def _collate(items: list[tuple[torch.Tensor, int]]):
    good = [(x, i) for x, i in items if x.numel()]
    bad = [i for x, i in items if not x.numel()]
    images = torch.stack([x for x, _ in good]) if good else None  # (B, 3, S, S)
    return images, [i for _, i in good], bad


def folder_files(root: str | os.PathLike, split: str | None = None,
                 ) -> tuple[list[Path], list[str], list[str]]:
    """Every file of an image folder, with its class name (``""`` where it has none).

    Args:
        root: a folder in any layout of ``load_dataset("folder", ...)``.
        split: one split of a ``train/ val/ test/`` layout; ``None``: all of them.

    Returns:
        ``(files, class_names, classes)``: files in a stable order (split, class, name),
        the class of each, and the sorted class names.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {str(root)!r} does not exist (or is not a "
                                "folder)")
    present = [s for s in SPLITS["folder"] if (root / s).is_dir()]
    if split is not None:
        splits = [split]
    else:
        splits = present or ["train"]
    files: list[Path] = []
    names: list[str] = []
    for s in splits:
        found, labels, classes = scan_folder(root, s)
        files += found
        names += [classes[y] if y >= 0 else "" for y in labels.tolist()]
    return files, names, sorted(set(n for n in names if n))


@torch.no_grad()
def embed_folder(encoder: nn.Module, root: str | os.PathLike, image_size: int, *,
                 split: str | None = None, batch_size: int = 256,
                 device: torch.device | str | None = None, num_workers: int = 0,
                 progress: bool = True) -> Embeddings:
    """``h = f(x)`` of every readable image in a folder, streamed (never all in memory).

    Each file is decoded and resized exactly as a ``folder`` dataset and
    :func:`simclr_lib.images.prepare` do, and the encoder runs as in evaluation
    (:func:`simclr_lib.evaluate.extract_features`: eval mode, no augmentation; 16-bit
    autocast on a GPU). Files that cannot be decoded are skipped and named in one line.

    Args:
        encoder: ``f``, e.g. from :func:`simclr_lib.checkpoint.load_encoder`.
        root: the image folder: flat, ``<class>/*`` or ``{train,val,test}/<class>/*``.
        image_size: ``S``, the size ``f`` was trained at (``image_size_of(cfg)``).
        split: only this split of a ``train/ val/ test/`` folder (default: all).
        batch_size: images per forward pass.
        device: where ``f`` runs (default: where it is).
        num_workers: DataLoader processes that decode files (0: in this process).
        progress: a progress bar.

    Returns:
        :class:`Embeddings` with paths relative to ``root``.

    Raises:
        FileNotFoundError: ``root`` is not a folder. ValueError: no readable image in it.

    Example:
        >>> f, cfg = load_encoder("runs/mine/best.pt")                       # doctest: +SKIP
        >>> emb = embed_folder(f, "my_images", image_size_of(cfg))           # doctest: +SKIP
        >>> emb.h.shape                                                      # doctest: +SKIP
        torch.Size([300, 128])
    """
    root_path = Path(root).expanduser()
    files, names, classes = folder_files(root_path, split)
    device = torch.device(device) if device is not None else module_device(encoder)
    f = on_device(encoder, device)
    loader = DataLoader(_Files(files, image_size), batch_size=batch_size,
                        num_workers=num_workers, collate_fn=_collate)
    hs, kept, bad = [], [], []
    bar = tqdm(total=len(files), desc=f"embedding {root_path.name or root_path}", unit="img",
               disable=not progress)
    for images, good, failed in loader:
        if images is not None:
            hs.append(extract_features(f, images, batch_size, device))  # (B, D)
        kept += good
        bad += failed
        bar.update(len(good) + len(failed))
    bar.close()
    report_skipped([files[i] for i in bad], root_path, len(files))
    if not kept:
        raise ValueError(f"no readable images in {root_path}; {len(bad)} file(s) could not "
                         "be decoded")
    index = {c: i for i, c in enumerate(classes)}
    return Embeddings(
        paths=[files[i].relative_to(root_path).as_posix() for i in kept],
        labels=torch.tensor([index.get(names[i], -1) for i in kept], dtype=torch.int64),
        classes=classes, h=torch.cat(hs), root=str(root),
        skipped=[files[i].relative_to(root_path).as_posix() for i in bad])


def run_embed(args: argparse.Namespace) -> int:
    """CLI entry of ``python -m simclr_lib embed``."""
    out = Path(args.out)
    if out.suffix.lower() not in FORMATS:
        raise ValueError(f"--out must end in .csv or .npz, got {str(out)!r}")
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it, or choose "
                              f"another --out")
    t0 = time.perf_counter()
    f, cfg = load_encoder(args.checkpoint)
    size = args.image_size or image_size_of(cfg)
    emb = embed_folder(f, args.data_dir, size, split=args.split, batch_size=args.batch_size,
                       device=resolve_device(args.device), num_workers=args.num_workers,
                       progress=not args.no_progress)
    emb.save(out)
    labelled = f", {len(emb.classes)} classes" if emb.classes else ", unlabelled"
    print(f"wrote {out}: {len(emb)} images of {args.data_dir} at {size} px{labelled}, "
          f"h of {emb.h.shape[1]} numbers each ({time.perf_counter() - t0:.0f} s)"
          + (f"; skipped {len(emb.skipped)} unreadable file(s)" if emb.skipped else ""),
          file=sys.stdout)
    return 0
