"""Image files to the tensors ``f`` sees: decode, convert to RGB, resize, :func:`prepare`.

Every image of a ``folder`` dataset, of ``python -m simclr_lib embed`` and of
:func:`prepare` takes the same road, so an image gives the same ``h = f(x)`` whichever way
it reaches the encoder:

1. :func:`open_image`: decode the file (a JPEG at a reduced scale that is still at least
   the target size, which is much faster for large photos), apply the EXIF rotation,
   convert any mode to RGB (grayscale, palette, 16-bit, CMYK; transparency over white);
2. :func:`resize_image`: shorter side to ``image_size`` (antialiased bilinear; small images
   are upscaled), then the centre square;
3. uint8 ``(3, S, S)``, and for the encoder float32 in ``[0, 1]``, as in evaluation.

Used by :mod:`simclr_lib.data` (folders), :mod:`simclr_lib.embed` and notebook 07 (your
own images).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image, ImageOps

# File name endings that mark a folder as holding images (files are still decoded to know).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff",
                            ".ppm", ".pgm", ".pbm", ".jfif"})

ImageLike = str | os.PathLike | Image.Image | torch.Tensor


def to_rgb(im: Image.Image, size: int | None = None) -> Image.Image:
    """A loaded RGB copy of ``im``: EXIF rotation applied, alpha composited on white.

    Args:
        im: any PIL image. An unloaded JPEG (fresh from ``Image.open``) is decoded at the
            smallest reduced scale whose shorter side is still >= ``size``.
        size: the size it will be resized to, or ``None`` (full-scale decoding).
    """
    if size is not None:
        im.draft(None, (size, size))  # JPEG only; a no-op for loaded or other images
    im = ImageOps.exif_transpose(im)  # a loaded copy
    if im.mode.startswith("I") or im.mode == "F":  # 16/32-bit or float: rescale to 8 bit
        a = np.asarray(im, dtype=np.float32)
        im = Image.fromarray((a.clip(0) * (255 / max(float(a.max()), 1e-6))).astype(np.uint8))
    if im.mode in ("P", "PA", "LA", "RGBA", "La", "RGBa") or "transparency" in im.info:
        im = Image.alpha_composite(Image.new("RGBA", im.size, "white"), im.convert("RGBA"))
    return im.convert("RGB")  # also L, 1, CMYK, YCbCr


def open_image(path: str | os.PathLike, size: int | None = None) -> Image.Image:
    """Decode an image file to RGB (see :func:`to_rgb`); any failure raises.

    Raises:
        OSError, ValueError, ...: whatever Pillow raises for a file it cannot decode (an
            empty, truncated or non-image file); callers that skip bad files catch
            ``Exception``.
    """
    with Image.open(path) as im:
        return to_rgb(im, size)


def resize_image(im: Image.Image, size: int) -> Image.Image:
    """Shorter side to ``size`` (antialiased; small images are upscaled), centre crop."""
    w, h = im.size
    nw, nh = max(size, round(w * size / min(w, h))), max(size, round(h * size / min(w, h)))
    im = im.resize((nw, nh), Image.Resampling.BILINEAR)
    left, top = (nw - size) // 2, (nh - size) // 2
    return im.crop((left, top, left + size, top + size))


def pil_to_uint8(im: Image.Image) -> torch.Tensor:
    """An RGB PIL image as a uint8 tensor ``(3, H, W)``."""
    return torch.from_numpy(np.array(im)).permute(2, 0, 1).contiguous()  # (3, H, W)


def load_image(source: str | os.PathLike | Image.Image, size: int) -> torch.Tensor:
    """A file or PIL image as the uint8 ``(3, size, size)`` tensor a folder dataset holds."""
    im = open_image(source, size) if not isinstance(source, Image.Image) else to_rgb(source,
                                                                                     size)
    return pil_to_uint8(resize_image(im, size))


def resize_tensor(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 or float images ``(B, 3, H, W)``: shorter side to ``size``, then centre crop.

    Images already ``size x size`` are returned unchanged (the same tensor).
    """
    if tuple(images.shape[-2:]) == (size, size):
        return images
    return TF.center_crop(TF.resize(images, [size], antialias=True), [size, size])


def _as_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 -> float32 0..1 (the same operation as evaluation's); floats as float32."""
    return x.float().div_(255) if x.dtype == torch.uint8 else x.float()


def _one(x: ImageLike, size: int) -> torch.Tensor:
    """One image -> float32 (3, size, size)."""
    if isinstance(x, torch.Tensor):
        if x.dim() != 3 or x.shape[0] not in (1, 3):
            raise ValueError(f"an image tensor must be (3, H, W) or (1, H, W), got "
                             f"{tuple(x.shape)}")
        return _as_float(resize_tensor(x.expand(3, -1, -1)[None].cpu(), size)[0])
    if not isinstance(x, (str, os.PathLike, Image.Image)):
        raise ValueError(f"cannot prepare a {type(x).__name__}; pass a path, a PIL image or "
                         "an image tensor")
    return _as_float(load_image(x, size))


def prepare(images: ImageLike | Sequence[ImageLike], image_size: int) -> torch.Tensor:
    """Images as the encoder sees them in evaluation: float32 ``(B, 3, S, S)`` in [0, 1].

    Files and PIL images take exactly the road of a ``folder`` dataset and of
    ``python -m simclr_lib embed`` (:func:`open_image`, :func:`resize_image`), so
    ``f(prepare(path, S))`` is the ``h`` that ``embed`` wrote for that file (up to float
    rounding). Tensors already ``S x S`` (``dataset.images[i]``) are only converted to
    float; other tensors are resized with torchvision (shorter side, centre crop), which
    can differ from Pillow's resize by a grey level.

    Args:
        images: a path, a PIL image, a uint8 (0..255) or float ([0, 1]) tensor
            ``(3, H, W)`` or ``(B, 3, H, W)``, or a list of paths / PIL images / tensors.
        image_size: ``S``, the size the encoder was trained at (``image_size_of(cfg)``
            from :mod:`simclr_lib.data` for a run's config).

    Returns:
        float32 ``(B, 3, S, S)`` on the CPU: ``B = 1`` for a single image.

    Raises:
        ValueError: a tensor of another shape; OSError (or what Pillow raises) for a file
            that is not a readable image.

    Example:
        >>> x = prepare(torch.zeros(3, 40, 50, dtype=torch.uint8), 32)
        >>> x.shape, x.dtype
        (torch.Size([1, 3, 32, 32]), torch.float32)
        >>> h = f(x)  # (1, f.feature_dim)  # doctest: +SKIP
    """
    if image_size < 1:
        raise ValueError(f"image_size must be >= 1, got {image_size}")
    if isinstance(images, torch.Tensor) and images.dim() == 4:
        if images.shape[1] != 3:
            raise ValueError(f"image tensors must be (B, 3, H, W), got {tuple(images.shape)}")
        return _as_float(resize_tensor(images.cpu(), image_size))  # (B, 3, S, S)
    if isinstance(images, (list, tuple)):
        if not images:
            raise ValueError("no images to prepare (an empty list)")
        return torch.stack([_one(im, image_size) for im in images])  # (B, 3, S, S)
    return _one(images, image_size)[None]  # (1, 3, S, S)


def holds_images(root: str | os.PathLike, depth: int = 3) -> bool:
    """Whether ``root`` is a folder with a file named like an image within ``depth`` levels.

    Looks at names only (``IMAGE_SUFFIXES``), so it is quick; it covers the three layouts
    of a ``folder`` dataset (``DIR/*``, ``DIR/<class>/*``, ``DIR/<split>/<class>/*``).
    Hidden files and folders (``.name``) do not count.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        return False
    level = [root]
    for _ in range(depth):
        nxt = []
        for d in level:
            try:
                entries = list(os.scandir(d))
            except OSError:
                continue
            for e in entries:
                if e.name.startswith("."):
                    continue
                if e.is_file() and Path(e.name).suffix.lower() in IMAGE_SUFFIXES:
                    return True
                if e.is_dir():
                    nxt.append(Path(e.path))
        level = nxt
    return False
