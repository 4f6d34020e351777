"""Datasets: the built-in ``shapes``, CIFAR-10/100 and STL-10 via torchvision, your own images.

SimCLR (Chen et al., "A Simple Framework for Contrastive Learning of Visual
Representations", ICML 2020) is pretrained on unlabelled images and evaluated with labels
(Section 4, Appendix B.9 for CIFAR-10). Every dataset here is loaded the same way, by
:func:`load_dataset`, into the *fast path* of DESIGN.md: one uint8 tensor ``(N, 3, H, W)``
in an :class:`ImageTensorDataset` (CIFAR-10's 50 000 training images are 150 MB), which can
live on the training device and be augmented a whole batch at a time. For folders of large
images, ``in_memory=False`` gives a *streaming* dataset that decodes files on access.

=========  ==============================================  ===================  =======
name       what                                            splits               size
=========  ==============================================  ===================  =======
shapes     10 generated shapes, no files (``shapes.py``)   train, val, test     32 px
colour_    the same images classed by the object's hue      train, val, test     32 px
shapes     (6 colours; the shape is random)
cifar10    10 classes, 50k train / 10k test                train, test          32 px
cifar100   100 classes, 50k train / 10k test               train, test          32 px
stl10      10 classes, 5k train / 8k test / 100k unlab.    train, test,         96 px
                                                           unlabeled,
                                                           train+unlabeled
folder     your images: ``DIR/<split>/<class>/*``,         train, val, test     64 px
           ``DIR/<class>/*`` or a flat ``DIR/*``
=========  ==============================================  ===================  =======

Downloads go to ``data/<name>/`` (see data/README.md). Without network, use ``shapes``
(or ``colour_shapes``) or ``folder``: :class:`DatasetDownloadError` says so.

Introduced in notebooks/01_augmentations.ipynb.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tarfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch.utils.data import Dataset, Subset
from tqdm.auto import tqdm

from .config import TrainConfig
from .images import holds_images, load_image, open_image, resize_image, resize_tensor
from .memory import check_fits, image_bytes
from .shapes import COLOUR_CLASSES, SHAPE_CLASSES, make_colour_shapes, make_shapes, shape_factors

DATASETS = ("shapes", "colour_shapes", "cifar10", "cifar100", "stl10", "folder")
# drawn from a seed, no files: (images, classes, per-image factors for ``meta`` or None)
GENERATED = {"shapes": (make_shapes, SHAPE_CLASSES, shape_factors),
             "colour_shapes": (make_colour_shapes, COLOUR_CLASSES, None)}
SPLITS = {
    "shapes": ("train", "val", "test"),
    "colour_shapes": ("train", "val", "test"),
    "cifar10": ("train", "test"),
    "cifar100": ("train", "test"),
    "stl10": ("train", "test", "unlabeled", "train+unlabeled"),
    "folder": ("train", "val", "test"),
}
NATIVE_SIZE = {"shapes": 32, "colour_shapes": 32, "cifar10": 32, "cifar100": 32, "stl10": 96,
               "folder": 64}
SHAPES_SPLIT_SIZES = {"train": 5000, "val": 1000, "test": 1000}  # also colour_shapes
TORCHVISION_SPLIT_SIZES = {"train": 50_000, "test": 10_000}  # CIFAR-10 and CIFAR-100
STL10_SPLIT_SIZES = {"train": 5000, "test": 8000, "unlabeled": 100_000,
                     "train+unlabeled": 105_000}
SKIPPED_NAMES_SHOWN = 10  # bad files named in the one-line message; the rest are counted
_TORCHVISION = {"cifar10": ("CIFAR10", "CIFAR-10", 170), "cifar100": ("CIFAR100", "CIFAR-100", 169),
                "stl10": ("STL10", "STL-10", 2640)}  # class, display name, download MB


class DatasetDownloadError(RuntimeError):
    """A dataset's files could not be downloaded, or are missing with ``download=False``."""


def _as_index(indices: torch.Tensor | Sequence[int]) -> torch.Tensor:
    idx = torch.as_tensor(indices)
    return idx.nonzero().flatten() if idx.dtype == torch.bool else idx.long()


class ImageTensorDataset(Dataset):
    """A whole image dataset as one uint8 tensor: the fast path of DESIGN.md.

    Args:
        images: uint8 ``(N, 3, H, W)``, on any device.
        labels: int ``(N,)`` class indices, ``-1`` for unlabelled images; default all ``-1``.
        classes: class names, ``classes[label]``; default ``["0", "1", ...]`` up to the
            largest label.
        transform: optional callable applied to each ``(3, H, W)`` uint8 image in
            ``__getitem__`` (batched augmentation instead indexes ``images`` directly).
        paths: optional file of each image (``folder`` datasets set them), so that every
            image, feature or embedding can be traced back to its file; kept by
            :meth:`subset` and :meth:`to`.
        meta: optional per-image metadata, ``name -> tensor`` with first dimension N
            (``shapes``: the factors of :func:`~simclr_lib.shapes.shape_factors`, such as
            ``meta["background"]``); :meth:`subset` and :meth:`to` keep it row-aligned.

    Example:
        >>> ds = ImageTensorDataset(torch.zeros(4, 3, 8, 8, dtype=torch.uint8),
        ...                         torch.tensor([0, 1, 0, 1]), ["cat", "dog"])
        >>> x, y = ds[1]
        >>> x.shape, y, ds.num_classes, ds.is_labelled
        (torch.Size([3, 8, 8]), 1, 2, True)
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | Sequence[int] | None = None,
                 classes: Sequence[str] | None = None, transform: Callable | None = None,
                 paths: Sequence[str | os.PathLike] | None = None,
                 meta: dict[str, torch.Tensor] | None = None) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError("images must be a uint8 tensor of shape (N, 3, H, W), got "
                             f"{images.dtype} {tuple(images.shape)}")
        n = images.shape[0]
        if labels is None:
            labels = torch.full((n,), -1, dtype=torch.int64)
        labels = torch.as_tensor(labels, dtype=torch.int64).to(images.device)
        if labels.shape != (n,):
            raise ValueError(f"labels must have shape ({n},), got {tuple(labels.shape)}")
        if classes is None:
            classes = [str(i) for i in range(int(labels.max()) + 1)] if n else []
        if paths is not None and len(paths) != n:
            raise ValueError(f"paths must name one file per image ({n}), got {len(paths)}")
        meta = dict(meta or {})
        for name, value in meta.items():
            if not isinstance(value, torch.Tensor) or value.dim() == 0 or value.shape[0] != n:
                raise ValueError(f"meta[{name!r}] must be a tensor with first dimension {n} "
                                 f"(one row per image), got {tuple(getattr(value, 'shape', ()))}")
        self.images, self.labels, self.classes = images, labels, list(classes)
        self.transform, self.meta = transform, meta
        self.paths = [Path(p) for p in paths] if paths is not None else None

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = self.images[i]  # (3, H, W) uint8
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[i])

    def to(self, device: torch.device | str) -> ImageTensorDataset:
        """A new dataset with ``images``, ``labels`` and ``meta`` on ``device`` (same
        transform)."""
        return ImageTensorDataset(self.images.to(device), self.labels.to(device), self.classes,
                                  self.transform, self.paths,
                                  {k: v.to(device) for k, v in self.meta.items()})

    def subset(self, indices: torch.Tensor | Sequence[int]) -> ImageTensorDataset:
        """A new dataset holding ``images[indices]`` (a copy; indices or a boolean mask)."""
        idx = _as_index(indices).to(self.images.device)
        paths = None if self.paths is None else [self.paths[i] for i in idx.tolist()]
        return ImageTensorDataset(self.images[idx], self.labels[idx], self.classes,
                                  self.transform, paths,
                                  {k: v[idx.to(v.device)] for k, v in self.meta.items()})

    @property
    def image_size(self) -> int | tuple[int, int]:
        """Side length ``H`` of the (square) images; ``(H, W)`` if they are not square."""
        h, w = self.images.shape[-2:]
        return h if h == w else (h, w)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def is_labelled(self) -> bool:
        """True when every image has a label (no ``-1``)."""
        return len(self) > 0 and bool((self.labels >= 0).all())

    def __repr__(self) -> str:
        return (f"ImageTensorDataset(N={len(self)}, image_size={self.image_size}, "
                f"classes={self.num_classes}, labelled={self.is_labelled}, "
                f"device={self.images.device})")


class FolderDataset(Dataset):
    """Images decoded from files on each access: the streaming path, for large images.

    Returned by ``load_dataset("folder", ..., in_memory=False)``. Items are ``(image,
    label)`` with ``image`` an RGB PIL image (original size unless ``image_size`` is given),
    or ``transform(image)``; meant for a ``DataLoader`` with per-sample transforms.
    """

    def __init__(self, files: Sequence[Path], labels: torch.Tensor, classes: Sequence[str],
                 image_size: int | None = None, transform: Callable | None = None) -> None:
        self.files, self.labels, self.classes = list(files), labels, list(classes)
        self.image_size, self.transform = image_size, transform

    def __len__(self) -> int:
        return len(self.files)

    @property
    def paths(self) -> list[Path]:
        """The file of each item (the same list as ``files``)."""
        return self.files

    def __getitem__(self, i: int):
        image = open_image(self.files[i], self.image_size)
        if self.image_size is not None:
            image = resize_image(image, self.image_size)
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[i])

    def subset(self, indices: torch.Tensor | Sequence[int]) -> FolderDataset:
        idx = _as_index(indices).cpu()
        return FolderDataset([self.files[i] for i in idx.tolist()], self.labels[idx],
                             self.classes, self.image_size, self.transform)

    num_classes = ImageTensorDataset.num_classes
    is_labelled = ImageTensorDataset.is_labelled


def _stratified_pick(labels: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """``k`` sorted indices; each label value (``-1`` too) gets its proportional share
    (largest remainder), drawn at random within the label."""
    labels = labels.cpu()
    g = torch.Generator().manual_seed(seed)
    values, counts = labels.unique(return_counts=True)
    quota = counts.double() * k / len(labels)
    take = quota.floor().long()
    take[torch.argsort(quota - take, descending=True, stable=True)[:k - int(take.sum())]] += 1
    picked = [(labels == v).nonzero().flatten()[torch.randperm(int(c), generator=g)[:t]]
              for v, c, t in zip(values, counts, take, strict=True)]
    return torch.cat(picked).sort().values


def _subset(dataset: Dataset, indices: torch.Tensor) -> Dataset:
    if hasattr(dataset, "subset"):
        return dataset.subset(indices)
    return Subset(dataset, indices.tolist())


def train_val_split(dataset: Dataset, val_fraction: float = 0.1, seed: int = 0,
                    ) -> tuple[Dataset, Dataset]:
    """Split off a validation set, stratified by label, deterministically.

    Each class (and the unlabelled images, label ``-1``, as one more group) keeps its share
    in both parts, so an unlabelled dataset gets a plain random split. Labels are read from
    ``dataset.labels`` (or ``.targets``); a dataset without them is treated as unlabelled.

    Args:
        dataset: an :class:`ImageTensorDataset`, :class:`FolderDataset` or any sized dataset.
        val_fraction: fraction of items in the validation part, ``0 < val_fraction < 1``
            (rounded; both parts get at least one item).
        seed: which items are drawn.

    Returns:
        ``(train, val)``: disjoint, together all of ``dataset``, each in the original order;
        ``.subset()`` results where the dataset has that method, else ``torch.utils.data.Subset``.

    Raises:
        ValueError: ``val_fraction`` outside (0, 1), or fewer than 2 items.

    Example:
        >>> train, val = train_val_split(load_dataset("shapes", size=100), 0.2)
        >>> len(train), len(val)
        (80, 20)
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n = len(dataset)
    if n < 2:
        raise ValueError(f"need at least 2 items to split, got {n}")
    labels = getattr(dataset, "labels", getattr(dataset, "targets", None))
    labels = torch.full((n,), -1) if labels is None else torch.as_tensor(labels).cpu()
    n_val = min(max(round(val_fraction * n), 1), n - 1)
    val_idx = _stratified_pick(labels, n_val, seed)
    keep = torch.ones(n, dtype=torch.bool)
    keep[val_idx] = False
    return _subset(dataset, keep.nonzero().flatten()), _subset(dataset, val_idx)


def _resize_tensor(images: torch.Tensor, size: int, progress: bool) -> torch.Tensor:
    """Shorter side to ``size`` (antialiased bilinear), then centre crop; in chunks."""
    if tuple(images.shape[-2:]) == (size, size):
        return images
    check_fits(image_bytes(len(images), size), "cpu",
               f"{len(images)} images of 3x{size}x{size}")
    out = torch.empty(len(images), 3, size, size, dtype=torch.uint8)
    for lo in tqdm(range(0, len(images), 1024), desc=f"resizing to {size}px", disable=not progress):
        out[lo:lo + 1024] = resize_tensor(images[lo:lo + 1024], size)
    return out


def report_skipped(bad: Sequence[Path], root: Path, total: int) -> None:
    """Print one plain line naming the files that could not be decoded (none: nothing).

    Paths are relative to ``root`` (split and class folders included), at most
    :data:`SKIPPED_NAMES_SHOWN` of them, then a count of the rest.
    """
    if not bad:
        return
    names = [p.relative_to(root).as_posix() if p.is_relative_to(root) else str(p)
             for p in bad[:SKIPPED_NAMES_SHOWN]]
    more = f" and {len(bad) - len(names)} more" if len(bad) > len(names) else ""
    print(f"warning: skipped {len(bad)} of {total} files in {root} that are not readable "
          f"images: {', '.join(names)}{more}", file=sys.stderr, flush=True)


def scan_folder(root: str | os.PathLike, split: str = "train",
                ) -> tuple[list[Path], torch.Tensor, list[str]]:
    """Files, labels and classes of one split of an image folder, without decoding any.

    The layouts are those of :func:`load_dataset` (``folder``). Hidden files and folders
    (``.name``) are left out; every other file is listed, readable image or not.

    Returns:
        ``(files, labels, classes)``: sorted paths under ``root``, int64 labels ``(N,)``
        (``-1`` in a flat folder), class names (sub-folders, sorted).

    Raises:
        FileNotFoundError: ``root`` is not a folder.
        ValueError: the split has no folder, or no files.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"image folder {str(root)!r} does not exist (or is not a folder); expected "
            "DIR/train/<class>/*.jpg, DIR/<class>/*.jpg or a flat folder DIR/*.jpg "
            "(see data/README.md)")

    def visible(p: Path) -> bool:
        return not p.name.startswith(".")

    split_dirs = sorted(d.name for d in root.iterdir()
                        if d.is_dir() and d.name in SPLITS["folder"])
    if split_dirs and split not in split_dirs:
        raise ValueError(f"{root} has no {split}/ folder; it has {', '.join(split_dirs)}")
    if not split_dirs and split != "train":
        raise ValueError(
            f"{root} has no {split}/ folder, so all its images form the 'train' split; hold "
            f"out images with train_val_split(dataset, val_fraction), or create "
            f"{root / split}/<class>/ folders")
    base = root / split if split_dirs else root
    classes = sorted(d.name for d in base.iterdir() if d.is_dir() and visible(d))
    files: list[Path] = []
    labels: list[int] = []
    if classes:  # ImageFolder layout: base/<class>/**/*
        for c, name in enumerate(classes):
            found = sorted(p for p in (base / name).rglob("*") if p.is_file()
                           and all(visible(q) for q in p.relative_to(base).parents) and visible(p))
            files += found
            labels += [c] * len(found)
    else:  # a flat folder: unlabelled
        files = sorted(p for p in base.iterdir() if p.is_file() and visible(p))
        labels = [-1] * len(files)
    if not files:
        raise ValueError(f"no image files found in {base}")
    return files, torch.tensor(labels, dtype=torch.int64), classes


def _load_folder(root: Path, split: str, image_size: int | None, in_memory: bool, seed: int,
                 size: int | None, progress: bool, transform: Callable | None) -> Dataset:
    files, labels, classes = scan_folder(root, split)
    if size is not None and size < len(files):
        idx = _stratified_pick(labels, size, seed)
        files, labels = [files[i] for i in idx.tolist()], labels[idx]
    s = image_size or NATIVE_SIZE["folder"]
    if in_memory:  # before decoding anything: stop now rather than run out of memory later
        check_fits(image_bytes(len(files), s), "cpu",
                   f"the {len(files)} images of the {split} split of {root} at 3x{s}x{s}")
    images = torch.empty(len(files) if in_memory else 0, 3, s, s, dtype=torch.uint8)
    bad, keep = [], []
    desc = f"{'loading' if in_memory else 'checking'} {root.name or root}/{split}"
    for i, path in enumerate(tqdm(files, desc=desc, disable=not progress, unit="img")):
        try:
            if in_memory:
                images[len(keep)] = load_image(path, s)  # (3, S, S)
            else:  # streaming: decode once (JPEGs at reduced scale), so that a truncated
                open_image(path, s)  # file is skipped now, not fatal in a worker mid-run
        except Exception:  # any file PIL cannot decode is skipped
            bad.append(path)
            continue
        keep.append(i)
    report_skipped(bad, root, len(files))
    if not keep:
        raise ValueError(f"no readable images in {root} (split {split!r}); {len(bad)} file(s) "
                         "could not be decoded")
    paths = [files[i] for i in keep]
    if not in_memory:
        return FolderDataset(paths, labels[keep], classes, image_size, transform)
    # A view of the first rows when files were skipped: no second copy of the images.
    return ImageTensorDataset(images[:len(keep)], labels[keep], classes, transform, paths)


def _offline_help() -> str:
    return ("Offline alternatives: the built-in generated dataset needs no files, "
            'load_dataset("shapes", ...) or --dataset shapes; or use your own images, '
            'load_dataset("folder", split, root=DIR) or --dataset folder --data-dir DIR '
            "(layout in data/README.md).")


def _load_torchvision(name: str, split: str, root: str | Path, download: bool,
                      ) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(images uint8 (N, 3, H, W), labels int64 (N,), classes) via torchvision.datasets."""
    cls_name, pretty, mb = _TORCHVISION[name]
    cls = getattr(torchvision.datasets, cls_name)
    path = Path(root) / name
    kwargs = {"split": split} if name == "stl10" else {"train": split == "train"}
    try:
        ds = cls(root=str(path), download=download, **kwargs)
    except (OSError, RuntimeError, EOFError, tarfile.TarError) as e:  # URLError is an OSError
        if download:
            msg = (f"Downloading {pretty} (about {mb} MB) from {cls.url} into {path}/ failed "
                   f"({type(e).__name__}: {e}). This usually means there is no network "
                   f"access (or a proxy blocks it). You can also fetch {cls.filename} "
                   f"elsewhere and copy it into {path}/; it is checked and unpacked there. ")
        else:
            msg = (f"{pretty} files are missing or incomplete in {path}/ and download=False "
                   f"({e}). Download them once with load_dataset({name!r}, download=True) "
                   f"(about {mb} MB), or copy {cls.filename} from {cls.url} into {path}/. ")
        raise DatasetDownloadError(msg + _offline_help()) from e
    if name == "stl10":
        images = torch.from_numpy(ds.data)  # (N, 3, 96, 96) already
        labels = np.asarray(ds.labels, dtype=np.int64)  # -1 for unlabeled
    else:
        images = torch.from_numpy(ds.data).permute(0, 3, 1, 2)  # (N, 32, 32, 3) -> (N, 3, 32, 32)
        labels = np.asarray(ds.targets, dtype=np.int64)
    classes = list(getattr(ds, "classes", [])) or [str(i) for i in range(int(labels.max()) + 1)]
    return images, torch.from_numpy(labels), classes


def _shapes_seed(seed: int, split: str, name: str = "shapes") -> int:
    """A seed per (dataset, seed, split), so that splits never share an image."""
    return int.from_bytes(hashlib.sha256(f"{name}/{split}/{seed}".encode()).digest()[:8],
                          "little") >> 1


def resolve_dataset(dataset: str | None, data_dir: str | None, default: str,
                    ) -> tuple[str, str | None]:
    """The dataset a command reads, so that ``--data-dir`` is never silently ignored.

    Args:
        dataset: ``--dataset`` as given (``None``: not given).
        data_dir: ``--data-dir`` as given (``None``: not given).
        default: the dataset of the profile (``train``) or of the checkpoint (``eval``).

    Returns:
        ``(dataset, note)``: ``note`` is a line to print when ``--data-dir`` selected
        ``folder`` because it holds images, else ``None``.

    Raises:
        ValueError: ``--data-dir`` would be ignored: it holds images but an explicit
            ``--dataset`` does not read them, or the dataset is ``shapes`` (generated, no
            files).
    """
    if data_dir is None or (dataset or default) == "folder":
        return dataset or default, None
    images = holds_images(data_dir)
    if dataset is None and images:
        return "folder", (f"--data-dir {data_dir} holds images: using them (--dataset "
                          f"folder), not the default {default}")
    if images:
        raise ValueError(f"--data-dir {data_dir} holds images, but --dataset {dataset} does "
                         f"not read them (--data-dir is its download cache); pass --dataset "
                         f"folder to use them")
    chosen = dataset or default
    if chosen in GENERATED:
        what = ("holds no images" if Path(data_dir).expanduser().is_dir()
                else "does not exist")
        raise ValueError(f"--data-dir {data_dir} {what} (expected DIR/train/<class>/*.jpg, "
                         f"DIR/<class>/*.jpg or DIR/*.jpg), and --dataset {chosen} is generated "
                         f"and reads no files; fix the folder, or drop --data-dir")
    return chosen, None


def image_size_of(cfg: TrainConfig) -> int:
    """The side of the images a run trains on: ``cfg.image_size``, else the dataset's native.

    Example:
        >>> image_size_of(TrainConfig(dataset="folder"))
        64
    """
    return cfg.image_size or NATIVE_SIZE[cfg.dataset]


def dataset_nbytes(name: str, split: str = "train", root: str | Path = "data", *,
                   image_size: int | None = None, size: int | None = None) -> int:
    """Bytes that ``load_dataset(...)`` with the same arguments holds in memory, estimated
    before loading: ``N x 3 x S x S`` (a ``folder`` is listed, not decoded, so files that
    turn out unreadable are counted too).

    Example:
        >>> dataset_nbytes("cifar10", "train")  # 50 000 images of 3x32x32
        153600000
    """
    if name == "folder":
        n = len(scan_folder(Path(root).expanduser(), split)[0])
    elif name in GENERATED:
        n = SHAPES_SPLIT_SIZES[split]
    elif name == "stl10":
        n = STL10_SPLIT_SIZES[split]
    else:
        n = TORCHVISION_SPLIT_SIZES[split]
    if size is not None:
        n = min(n, size) if name not in GENERATED else size
    return image_bytes(n, image_size or NATIVE_SIZE[name])


def load_dataset(name: str, split: str = "train", root: str | Path = "data", *,
                 image_size: int | None = None, download: bool = True, in_memory: bool = True,
                 seed: int = 0, size: int | None = None, progress: bool = True,
                 transform: Callable | None = None) -> Dataset:
    """Load one split of a dataset, by default as an in-memory :class:`ImageTensorDataset`.

    Args:
        name: one of :data:`DATASETS`: ``shapes``, ``colour_shapes``, ``cifar10``,
            ``cifar100``, ``stl10``, ``folder``.
        split: one of ``SPLITS[name]``. ``shapes`` and ``colour_shapes``: ``train`` (5000
            images), ``val`` and ``test`` (1000 each), generated from different seeds. ``stl10``:
            ``train+unlabeled`` is the 105 000 images used for SimCLR pretraining (label
            ``-1`` for the unlabelled ones). ``folder``: see ``root``.
        root: download cache for torchvision datasets (files go to ``root/<name>/``). For
            ``folder`` it is *your image directory* ``DIR``, in one of three layouts:
            ``DIR/{train,val,test}/<class>/*`` (ImageFolder, per split), ``DIR/<class>/*``
            (all ``train``) or a flat ``DIR/*`` (all ``train``, unlabelled, label ``-1``).
            Files that cannot be decoded are skipped with one warning; grayscale, palette,
            RGBA and CMYK images become RGB (transparency over white).
        image_size: side of the square images. Default: native (32 for ``shapes`` and CIFAR,
            96 for STL-10), 64 for ``folder``. Otherwise images are resized (shorter side,
            antialiased; small images are upscaled) and centre-cropped; ``shapes`` are drawn
            at that size.
        download: download missing torchvision datasets.
        in_memory: ``True``: one uint8 tensor. ``False``: for ``folder``, a streaming
            :class:`FolderDataset` of RGB PIL images (original size unless ``image_size``);
            other datasets are small enough and still load in memory.
        seed: which images ``size`` selects (and the images ``shapes`` generates).
        size: at most this many images: a seeded subset, stratified by label (``shapes``:
            exactly this many are generated). Handy for quick runs.
        progress: show tqdm progress bars while decoding or resizing.
        transform: callable applied to each image in ``__getitem__``.

    Returns:
        An :class:`ImageTensorDataset`: ``images`` uint8 ``(N, 3, S, S)``, ``labels`` int64
        ``(N,)``, ``classes`` (``shapes`` also fills ``meta`` with each image's factors of
        variation, :func:`~simclr_lib.shapes.shape_factors`); or a :class:`FolderDataset`
        (``folder``, ``in_memory=False``).

    Raises:
        ValueError: unknown name or split, or a folder without readable images.
        DatasetDownloadError: a download failed, or files are missing with ``download=False``.
        FileNotFoundError: the ``folder`` directory does not exist.

    Example:
        >>> ds = load_dataset("shapes", "test", size=100)
        >>> ds.images.shape, ds.classes[:3]
        (torch.Size([100, 3, 32, 32]), ['disk', 'ring', 'square'])
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if split not in SPLITS[name]:
        raise ValueError(f"unknown split {split!r} for {name}; choose one of "
                         f"{', '.join(SPLITS[name])}")
    for arg, value in (("image_size", image_size), ("size", size)):
        if value is not None and value < 1:
            raise ValueError(f"{arg} must be >= 1 or None, got {value}")
    root = Path(root).expanduser()
    if name == "folder":
        return _load_folder(root, split, image_size, in_memory, seed, size, progress,
                            transform)
    side = image_size or NATIVE_SIZE[name]
    if name in GENERATED:
        make, classes, factors = GENERATED[name]
        n = size if size is not None else SHAPES_SPLIT_SIZES[split]
        check_fits(image_bytes(n, side), "cpu", f"{n} {name} images at 3x{side}x{side}")
        split_seed = _shapes_seed(seed, split, name)
        images, labels = make(n, seed=split_seed, image_size=side)
        meta = factors(n, seed=split_seed) if factors else None  # what drew each image
        return ImageTensorDataset(images, labels, classes, transform, meta=meta)
    images, labels, classes = _load_torchvision(name, split, root, download)
    if size is not None and size < len(labels):
        idx = _stratified_pick(labels, size, seed)
        images, labels = images[idx], labels[idx]
    images = _resize_tensor(images, side, progress).contiguous()  # STL-10 arrives transposed
    return ImageTensorDataset(images, labels, classes, transform)
