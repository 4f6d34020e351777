"""Will the images fit? Free memory, and a check that stops before a run runs out of it.

The fast path of DESIGN.md holds a whole dataset as one uint8 tensor, ``N x 3 x S x S``
bytes, in RAM and again on the training GPU. 300 photos at ``--image-size 1024`` are
0.9 GB; 3000 are 9 GB, more than a Colab VM has. Finding that out from a traceback after
minutes of decoding helps nobody, so loading estimates the size first and, when it will not
fit, stops at once with an error that names the three ways out: smaller images
(``--image-size``), fewer images (``--train-size``) or no copy in memory at all
(``--streaming``).

Used by notebook 07 (your own images).
"""

from __future__ import annotations

import os

import torch

RAM_FRACTION = 0.8  # at most this share of the free RAM for one image tensor
GPU_FRACTION = 0.5  # and of the free GPU memory (the model, its activations need the rest)
WAYS_OUT = ("use smaller images (--image-size, image_size=), fewer images (--train-size, "
            "size=), or stream them from disk (--streaming, in_memory=False)")


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


def check_fits(nbytes: int, device: torch.device | str = "cpu", what: str = "the images",
               ) -> None:
    """Raise :class:`NotEnoughMemoryError` when ``nbytes`` will not fit on ``device``.

    "Fits" means at most :data:`RAM_FRACTION` of the free RAM, or :data:`GPU_FRACTION` of
    the free memory of a GPU (training needs the rest). Nothing happens when the free
    memory cannot be measured.

    Args:
        nbytes: size of what is about to be allocated.
        device: where it will live.
        what: how the message names it, e.g. ``"300 images of 3x1024x1024"``.

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
            f"{format_bytes(free)} of free {where}; {WAYS_OUT}")
