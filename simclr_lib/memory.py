"""Will the images fit? Free memory, and a check that stops before a run runs out of it.

The fast path of DESIGN.md holds a whole dataset as one uint8 tensor, ``N x 3 x S x S``
bytes, in RAM and again on the training GPU. 300 photos at ``--image-size 1024`` are
0.9 GB; 3000 are 9 GB, more than a Colab VM has. And one training step keeps every
layer's activations for the backward pass: a 16-channel convolution over 128 views of
1024 x 1024 is 8 GiB by itself. Finding that out from a traceback after minutes of decoding
helps nobody, so training estimates both first (:func:`saved_bytes_per_image` measures the
activations on small probe images and scales them with the image area) and, when they will
not fit, stops at once with an error that names the ways out: smaller images
(``--image-size``), a smaller batch (``--batch-size``), fewer images (``--train-size``) or
no copy of the images in memory at all (``--streaming``).

Used by notebook 07 (your own images).
"""

from __future__ import annotations

import copy
import os

import torch
from torch import nn

RAM_FRACTION = 0.8  # at most this share of the free RAM (the rest: Python, torch, others)
GPU_FRACTION = 0.9  # and of the free GPU memory (the rest: CUDA workspaces, fragmentation)
WAYS_OUT = ("use smaller images (--image-size, image_size=), fewer images (--train-size, "
            "size=), or stream them from disk (--streaming, in_memory=False)")
# Peak memory of a training step over the activations saved_bytes_per_image counts: the
# backward pass also holds gradients. Measured on a CPU (peak RSS growth of one forward and
# backward pass): 1.43x for small_cnn (64 views, 256 px), 1.17x for ResNet-18 (16, 128 px).
BACKWARD_FACTOR = 1.5


class NotEnoughMemoryError(ValueError):
    """A dataset would not fit in memory; raised before any of it is loaded."""


def format_bytes(n: float) -> str:
    """``1536`` -> ``'1.5 KiB'``: bytes in the largest binary unit that keeps a number >= 1.

    Example:
        >>> format_bytes(3 * 1024 ** 3)
        '3.0 GiB'
    """
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def available_memory(device: torch.device | str = "cpu") -> int | None:
    """Bytes that can still be allocated on ``device``, or ``None`` when unknown.

    CPU: ``MemAvailable`` of ``/proc/meminfo`` (Linux: free memory plus caches the kernel
    can drop), else ``os.sysconf`` free pages (other Unixes). CUDA: free bytes from
    ``torch.cuda.mem_get_info``. Other devices (MPS, ...): ``None``.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # the file counts kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def image_bytes(n: int, image_size: int, channels: int = 3) -> int:
    """Bytes of ``n`` uint8 images of ``channels x image_size x image_size``."""
    return n * channels * image_size * image_size


def saved_bytes_per_image(model: nn.Module, image_size: int, probe_size: int = 32) -> int:
    """Bytes autograd keeps for the backward pass per image of ``image_size``, estimated.

    One forward pass of two probe images of ``probe_size`` through a copy of ``model`` (in
    training mode; the model's own BatchNorm statistics are untouched) counts the tensors
    saved for backward, each storage once and parameters not at all; the count is scaled
    by ``(image_size / probe_size)^2``, since a convolutional network's activations grow
    with the image area. Float32; 16-bit autocast roughly halves it.

    Args:
        model: any module taking ``(B, 3, H, W)`` images (e.g. a :class:`SimCLR` model).
        image_size: side of the training images.
        probe_size: side of the probe images (at most ``image_size``).

    Returns:
        Estimated bytes per image (per view, for SimCLR: a step holds ``2 x batch`` views).

    Example:
        >>> f = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        >>> saved_bytes_per_image(f, 64) / (8 * 64 * 64 * 4)  # ReLU keeps one 8-channel map
        1.0
    """
    probe_size = min(probe_size, image_size)
    probe = copy.deepcopy(model).cpu().train()
    params = {p.untyped_storage().data_ptr() for p in probe.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    x = torch.ones(2, 3, probe_size, probe_size, requires_grad=True)
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        probe(x)
    seen.pop(x.untyped_storage().data_ptr(), None)  # the input itself is not an activation
    return int(sum(seen.values()) / 2 * (image_size / probe_size) ** 2)


def check_fits(nbytes: int, device: torch.device | str = "cpu", what: str = "the images",
               ways_out: str = WAYS_OUT) -> None:
    """Raise :class:`NotEnoughMemoryError` when ``nbytes`` will not fit on ``device``.

    "Fits" means at most :data:`RAM_FRACTION` of the free RAM, or :data:`GPU_FRACTION` of
    the free memory of a GPU (training needs the rest). Nothing happens when the free
    memory cannot be measured.

    Args:
        nbytes: size of what is about to be allocated.
        device: where it will live.
        what: how the message names it, e.g. ``"300 images of 3x1024x1024"``.
        ways_out: what the message suggests.

    Raises:
        NotEnoughMemoryError: with the estimate, the free memory and :data:`WAYS_OUT`.

    Example:
        >>> check_fits(1024)  # a kilobyte fits anywhere
    """
    device = torch.device(device)
    free = available_memory(device)
    if free is None:
        return
    share = GPU_FRACTION if device.type == "cuda" else RAM_FRACTION
    if nbytes > share * free:
        where = "RAM" if device.type == "cpu" else f"memory on {device}"
        raise NotEnoughMemoryError(
            f"{what} need {format_bytes(nbytes)} in memory, more than {share:.0%} of the "
            f"{format_bytes(free)} of free {where}; {ways_out}")
