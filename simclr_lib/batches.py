"""Where the batches of an epoch come from: the fast path and the streaming path.

Both paths of DESIGN.md take the images of an epoch in one order, a permutation seeded by
``(seed, epoch)`` (:func:`epoch_order`), split every global batch between the ranks in the
same way (:func:`batch_slice`), and seed every random draw of an augmentation by where it
happens: the epoch, the step and the rank on the fast path, the image's position in the
epoch on the streaming path (:func:`derive_seed`). Nothing random is carried from one step
to the next, so a run resumed at any step, with any number of DataLoader workers or
processes, draws exactly what the uninterrupted run drew, and every rank draws its own
views.

* :class:`FastBatches`: the whole training set as one uint8 tensor on the training device,
  two views per batch by :class:`~simclr_lib.augment.BatchedAugment` on that device.
* :class:`StreamingBatches`: a DataLoader over :class:`EpochBatchSampler` batches, each
  image augmented by :func:`~simclr_lib.augment.simclr_transform` in a worker.

Introduced in notebooks/04_training.ipynb.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .augment import BatchedAugment, simclr_transform
from .config import TrainConfig
from .distributed import DistInfo

# ------------------------------------------------------------------ seeds and batch order

def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed determined by ``parts`` alone (BLAKE2b of their text).

    Every random stream of a run is named by where it is used, e.g. ``(seed, epoch, step,
    rank)``; different names give unrelated streams, the same name the same stream.
    """
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The order of the ``n`` training images in ``epoch`` (a CPU permutation)."""
    g = torch.Generator().manual_seed(derive_seed(seed, "order", epoch))
    return torch.randperm(n, generator=g)


def batch_slice(step: int, global_batch: int, rank: int, local_batch: int) -> slice:
    """Positions in the epoch's order of this rank's share of global batch ``step``."""
    start = step * global_batch + rank * local_batch
    return slice(start, start + local_batch)


class FastBatches:
    """The fast path: views drawn by :class:`BatchedAugment` on the device holding the images.

    Calling it with ``(epoch, first)`` yields ``(x_i, x_j)`` for steps ``first, ...`` of the
    epoch. The augmentation generator is re-seeded at every step from ``(seed, epoch, step,
    rank)``: each rank draws its own views, and a resumed step draws the same ones.
    """

    def __init__(self, images: torch.Tensor, cfg: TrainConfig, size: int, info: DistInfo,
                 steps: int) -> None:
        self.images = images  # uint8 (N, 3, H, W) on the training device
        self.augment = BatchedAugment(**cfg.augment_kwargs(size)).to(images.device)
        self.generator = torch.Generator(device=images.device)
        self.seed, self.info, self.steps = cfg.seed, info, steps
        self.batch_size = cfg.batch_size

    def __call__(self, epoch: int, first: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = epoch_order(self.seed, epoch, len(self.images)).to(self.images.device)
        b = self.batch_size // self.info.world_size
        for step in range(first, self.steps):
            x = self.images[order[batch_slice(step, self.batch_size, self.info.rank, b)]]
            self.generator.manual_seed(derive_seed(self.seed, "views", epoch, step,
                                                   self.info.rank))
            yield self.augment(x, generator=self.generator), self.augment(x, self.generator)


class EpochBatchSampler(Sampler):
    """Batches of ``(index, seed)`` pairs: this rank's share of each global batch.

    The same order as the fast path (:func:`epoch_order`), from step ``first`` on (set with
    :meth:`set_epoch`). Each image gets a seed from its position in the epoch, so its two
    views do not depend on which worker (or how many) decodes it, and differ between ranks.
    """

    def __init__(self, n: int, steps: int, global_batch: int, info: DistInfo, seed: int) -> None:
        self.n, self.steps, self.global_batch, self.info, self.seed = (n, steps, global_batch,
                                                                      info, seed)
        self.epoch, self.first = 0, 0

    def set_epoch(self, epoch: int, first: int = 0) -> None:
        self.epoch, self.first = epoch, first

    def __len__(self) -> int:
        return self.steps - self.first

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order = epoch_order(self.seed, self.epoch, self.n)
        b = self.global_batch // self.info.world_size
        for step in range(self.first, self.steps):
            where = batch_slice(step, self.global_batch, self.info.rank, b)
            yield [(int(i), derive_seed(self.seed, "image", self.epoch, where.start + j))
                   for j, i in enumerate(order[where])]


class SeededViews(Dataset):
    """``dataset[i]``'s image through ``transform`` twice, with the global RNG seeded first."""

    def __init__(self, dataset: Dataset, transform: Callable) -> None:
        self.dataset, self.transform = dataset, transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, seed = item
        image, _ = self.dataset[index]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.transform(image), self.transform(image)


class StreamingBatches:
    """The streaming path: per-image ``simclr_transform`` in DataLoader workers."""

    def __init__(self, dataset: Dataset, cfg: TrainConfig, size: int, info: DistInfo,
                 steps: int, device: torch.device) -> None:
        self.sampler = EpochBatchSampler(len(dataset), steps, cfg.batch_size, info, cfg.seed)
        views = SeededViews(dataset, simclr_transform(**cfg.augment_kwargs(size)))
        self.loader = DataLoader(views, batch_sampler=self.sampler,
                                 num_workers=cfg.num_workers,
                                 pin_memory=device.type == "cuda",
                                 persistent_workers=cfg.num_workers > 0)
        self.device = device

    def __call__(self, epoch: int, first: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.sampler.set_epoch(epoch, first)
        for x_i, x_j in self.loader:
            yield (x_i.to(self.device, non_blocking=True),
                   x_j.to(self.device, non_blocking=True))
