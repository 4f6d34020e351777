"""The SimCLR augmentations: random crop, flip, colour distortion, grayscale, blur.

SimCLR (Chen et al., "A Simple Framework for Contrastive Learning of Visual
Representations", ICML 2020, Section 3 and Appendix A) makes two views ``x_i, x_j`` of
each image with one random pipeline: a random resized crop with a horizontal flip, colour
jitter of strength ``s`` (probability 0.8), grayscale (0.2) and, for large images, Gaussian
blur. Crop plus colour matters most (Figure 5): crops of one image share a colour
histogram, so without colour distortion the encoder can match views by colour alone.

Two implementations, both giving float images in [0, 1] (no mean/std normalisation):
:func:`simclr_transform` (per-sample torchvision v2, for DataLoader workers) and
:class:`BatchedAugment` (a whole ``(B, 3, H, W)`` batch per call, per-image random
parameters, on any device). Its colour ops (:func:`adjust_brightness`, ...) take one
factor per image and follow the formulas of ``torchvision.transforms.v2.functional``.

Introduced in notebooks/01_augmentations.ipynb.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 ``(..., 3, H, W)`` -> float32 in [0, 1]; floating input is returned unchanged."""
    if x.dtype == torch.uint8:
        return TF.to_dtype(x, torch.float32, scale=True)  # x.float() * (1 / 255)
    if x.is_floating_point():
        return x
    raise TypeError(f"expected uint8 or floating images, got {x.dtype}")


def blur_kernel_size(size: int) -> int:
    """Odd Gaussian-blur kernel of about 10% of the image side (Appendix A): 96 -> 9, 224 -> 23."""
    k = max(3, int(0.1 * size))
    return k + 1 - k % 2


def _check(size: int, strength: float, scale, ratio, **probs: float) -> None:
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    if not 0 <= strength <= 2.5:  # hue factor 0.2 s must stay in [-0.5, 0.5]
        raise ValueError(f"strength must be in [0, 2.5], got {strength}")
    if not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f"scale must satisfy 0 < min <= max <= 1, got {scale}")
    if not 0 < ratio[0] <= ratio[1]:
        raise ValueError(f"ratio must satisfy 0 < min <= max, got {ratio}")
    for name, p in probs.items():
        if not 0 <= p <= 1:
            raise ValueError(f"{name} must be a probability in [0, 1], got {p}")


def simclr_transform(size: int, *, strength: float = 1.0, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3),
                     flip_p: float = 0.5, jitter_p: float = 0.8, grayscale_p: float = 0.2,
                     blur: bool | None = None, blur_p: float = 0.5) -> v2.Compose:
    """The paper's per-sample augmentation pipeline (Chen et al. 2020, Appendix A): random
    resized crop, flip, ColorJitter(0.8 s, 0.8 s, 0.8 s, 0.2 s), grayscale, optional blur.

    Args:
        size: side of the square output.
        strength: colour distortion strength ``s`` (1.0 for ImageNet, 0.5 for CIFAR-10).
        scale: range of the crop area as a fraction of the image area.
        ratio: range of the crop aspect ratio (width / height), sampled log-uniformly.
        flip_p, jitter_p, grayscale_p, blur_p: probabilities of each step.
        blur: Gaussian blur (kernel ~10% of ``size``, sigma in [0.1, 2.0]); ``None`` means
            on iff ``size >= 64`` (the paper drops blur for CIFAR-10).

    Returns:
        A callable mapping a PIL image or a uint8 tensor ``(3, H, W)`` to a float32 tensor
        ``(3, size, size)`` in [0, 1]. Colour ops run on uint8, as torchvision does.

    Example:
        >>> t = simclr_transform(32, strength=0.5)
        >>> t(torch.randint(0, 256, (3, 40, 40), dtype=torch.uint8)).shape
        torch.Size([3, 32, 32])
    """
    _check(size, strength, scale, ratio, flip_p=flip_p, jitter_p=jitter_p,
           grayscale_p=grayscale_p, blur_p=blur_p)
    s = strength
    ops = [v2.ToImage(),  # PIL and tensors take the same (tensor) path
           v2.RandomResizedCrop(size, scale=scale, ratio=ratio, antialias=True),
           v2.RandomHorizontalFlip(flip_p),
           v2.RandomApply([v2.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)], p=jitter_p),
           v2.RandomGrayscale(grayscale_p)]
    if size >= 64 if blur is None else blur:
        ops.append(v2.RandomApply([v2.GaussianBlur(blur_kernel_size(size), (0.1, 2.0))], blur_p))
    return v2.Compose(ops + [v2.ToDtype(torch.float32, scale=True), v2.ToPureTensor()])


class TwoViews:
    """Apply ``transform`` twice, independently: ``TwoViews(t)(img) -> (x_i, x_j)``."""

    def __init__(self, transform) -> None:
        self.transform = transform

    def __call__(self, img) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(img), self.transform(img)


# ---- batched colour ops: x is float (B, 3, H, W) in [0, 1], f has shape (B,) -------------

def rgb_to_grayscale(x: torch.Tensor) -> torch.Tensor:
    """Luma ``0.2989 R + 0.587 G + 0.114 B``: (B, 3, H, W) -> (B, 1, H, W)."""
    r, g, b = x.unbind(dim=-3)
    return r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).unsqueeze(-3)


def _blend(x: torch.Tensor, y: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    # f x + (1 - f) y, fused like torchvision's add_(y, alpha=1 - f). In place with expanded
    # operands: the out-of-place torch.addcmul(x * f, y, 1 - f) is 20x slower on CPU.
    f = f.view(-1, 1, 1, 1)
    return (x * f).addcmul_(y.expand_as(x), (1 - f).expand_as(x)).clamp_(0, 1)


def adjust_brightness(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Scale by ``f`` (0 gives black): ``clamp(f x)``."""
    return (x * f.view(-1, 1, 1, 1)).clamp_(0, 1)


def adjust_contrast(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Blend with the image's mean gray level (0 gives a uniform gray image)."""
    return _blend(x, rgb_to_grayscale(x).mean(dim=(-3, -2, -1), keepdim=True), f)


def adjust_saturation(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Blend with the grayscale image (0 gives grayscale, > 1 oversaturates)."""
    return _blend(x, rgb_to_grayscale(x), f)


def _zero(x: torch.Tensor) -> torch.Tensor:
    # 1.0 where x == 0 else 0.0, for x >= 0. On CPU comparisons, where and masked_fill cost
    # 5-30x a multiply, so masks are 0/1 floats: a product with them selects exactly.
    return 1.0 - torch.sign(x)


def _rgb_to_hsv(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # torchvision's _rgb_to_hsv (after Pillow), with its bool masks written as 0/1 floats.
    r, g, b = x.unbind(dim=-3)
    maxc = torch.maximum(torch.maximum(r, g), b)
    crange = maxc - torch.minimum(torch.minimum(r, g), b)
    eqc = _zero(crange)  # gray pixel: torchvision divides by 1 instead of 0 (numerator is 0)
    s = crange / (maxc + eqc)
    rc, gc, bc = ((maxc.unsqueeze(-3) - x) / (crange + eqc).unsqueeze(-3)).unbind(dim=-3)
    is_r = _zero(maxc - r)
    is_g = _zero(maxc - g).mul_(1.0 - is_r)
    is_b = 1.0 - is_r - is_g
    h = (bc - gc).mul_(is_r).add_((rc + 2.0).sub_(bc).mul_(is_g)).add_(
        (gc + 4.0).sub_(rc).mul_(is_b))
    h = h.mul_(1.0 / 6.0).add_(1.0)
    return h - h.floor(), s, maxc  # h.fmod(1.0), exactly


def _hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    # torchvision's _hsv_to_rgb: each channel is one of (v, p, q, t), chosen by hue sector i.
    h6 = h.mul(6)
    i = torch.floor(h6)
    f = h6.sub_(i)
    sxf = s * f
    one_minus_s = 1.0 - s
    q = (1.0 - sxf).mul_(v).clamp_(0.0, 1.0)
    t = sxf.add_(one_minus_s).mul_(v).clamp_(0.0, 1.0)
    p = one_minus_s.mul_(v).clamp_(0.0, 1.0)
    i = i - 6.0 * torch.floor(i * (1.0 / 6.0))  # i % 6 (h == 1 gives sector 6 == 0)
    m = [(1.0 - (i - k).abs_()).relu_() for k in range(6)]  # m[k] = (i == k) as 0/1
    rgb = [v * (m[a] + m[b]) + q * m[c] + p * (m[d] + m[e]) + t * m[g]
           for a, b, c, d, e, g in ((0, 5, 1, 2, 3, 4), (1, 2, 3, 4, 5, 0), (3, 4, 5, 0, 1, 2))]
    return torch.stack(rgb, dim=-3)


def adjust_hue(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Rotate the hue by ``f`` turns, ``f`` in [-0.5, 0.5], via RGB -> HSV -> RGB."""
    h, s, v = _rgb_to_hsv(x)
    h = h.add_(f.view(-1, 1, 1))
    return _hsv_to_rgb(h - h.floor(), s, v)  # h.remainder(1.0), exactly, 5x faster on CPU


def color_jitter(x: torch.Tensor, order: torch.Tensor, brightness: torch.Tensor,
                 contrast: torch.Tensor, saturation: torch.Tensor,
                 hue: torch.Tensor, *, sync_free: bool = False) -> torch.Tensor:
    """Batched ``ColorJitter``: image b gets op ``order[b, k]`` k-th (0 brightness,
    1 contrast, 2 saturation, 3 hue, like torchvision's ``fn_idx``) with its own factors.

    Brightness, contrast and saturation are all ``clamp(f x + (1 - f) y)`` with y = 0, the
    mean gray or the gray image, so each position is one blend over the whole batch (hue
    images get f = 1, which is exact) plus :func:`adjust_hue` on the images whose k-th op
    is hue (on every image, then selected, when ``sync_free``; see :func:`apply_where`).
    Shapes: x (B, 3, H, W), order (B, 4), factors (B,).
    """
    factors = torch.stack((brightness, contrast, saturation, torch.ones_like(hue)), dim=1)
    for k in range(4):
        op = (order[:, k, None] == torch.arange(4, device=x.device)).to(x.dtype)  # (B, 4) 0/1
        f = (op * factors).sum(dim=1)  # exact: one non-zero term; 1 for hue
        gray = rgb_to_grayscale(x)                                          # (B, 1, H, W)
        mean = gray.mean(dim=(-3, -2, -1), keepdim=True)                    # (B, 1, 1, 1)
        y = (gray * op[:, 2].view(-1, 1, 1, 1)).add_(mean * op[:, 1].view(-1, 1, 1, 1))
        x = _blend(x, y, f)  # y = 0 for brightness; f = 1 leaves hue images unchanged
        x = apply_where(x, order[:, k] == 3, lambda xs, i: adjust_hue(xs, hue[i]), sync_free)
    return x


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Gaussian blur with one ``sigma`` per image, reflect padding (torchvision's kernel),
    as two separable grouped convolutions. x (B, C, H, W), sigma (B,)."""
    B, C, H, W = x.shape
    lim = (kernel_size - 1) / (2.0 * math.sqrt(2.0))
    t = torch.linspace(-lim, lim, kernel_size, dtype=x.dtype, device=x.device)
    k1 = torch.softmax((t / sigma.view(-1, 1)).pow(2).neg(), dim=1)   # (B, k)
    w = k1.repeat_interleave(C, dim=0)                                  # (B C, k)
    pad = kernel_size // 2
    y = F.pad(x, [pad] * 4, mode="reflect").reshape(1, B * C, H + 2 * pad, W + 2 * pad)
    y = F.conv2d(y, w.view(B * C, 1, 1, kernel_size), groups=B * C)   # along W
    y = F.conv2d(y, w.view(B * C, 1, kernel_size, 1), groups=B * C)   # along H
    return y.view(B, C, H, W)


def apply_where(x: torch.Tensor, mask: torch.Tensor, fn, sync_free: bool = False,
                ) -> torch.Tensor:
    """``x[b] = fn(x[mask], idx)[...]`` for the images ``b`` where ``mask`` is True.

    ``fn(xs, idx)`` maps the images ``xs`` (the ones at ``idx`` in the batch) to new ones;
    every op here works image by image, so an image's result does not depend on the others.

    Two strategies, equal image by image (tested):

    * ``sync_free=False`` (the CPU's): select the images with ``mask.nonzero()``, transform
      only those and copy them back in place. Least arithmetic, but ``nonzero`` must know
      how many images it found, which on a GPU is a host synchronisation: the CPU stops
      queueing work until the GPU has caught up.
    * ``sync_free=True`` (CUDA's): transform every image and keep the result where ``mask``
      is set (``torch.where``). More arithmetic, cheap on a GPU at these sizes, and the CPU
      never waits, so it can queue the model's kernels ahead of the GPU.
    """
    if sync_free:
        everything = torch.arange(x.shape[0], device=x.device)
        return torch.where(mask.view(-1, 1, 1, 1), fn(x, everything), x)
    idx = mask.nonzero().squeeze(1)
    if idx.numel() == 0:
        return x
    if idx.numel() == x.shape[0]:
        return fn(x, idx)
    return x.index_copy_(0, idx, fn(x.index_select(0, idx), idx))


def _rand(generator: torch.Generator | None, device):
    # rand(*shape): uniform in [0, 1) on the generator's device (else on ``device``)
    dev = generator.device if generator is not None else device
    return lambda *shape: torch.rand(shape, generator=generator, device=dev)


class CropParams(NamedTuple):
    """Random resized crops, one per image, as float tensors of shape (B,)."""
    top: torch.Tensor     # first row, integer-valued
    left: torch.Tensor    # first column
    height: torch.Tensor  # crop height in pixels
    width: torch.Tensor   # crop width in pixels
    area: torch.Tensor    # height * width / (H * W)
    aspect: torch.Tensor  # width / height


class BatchedAugment(nn.Module):
    """The SimCLR augmentation of :func:`simclr_transform` for a whole batch at once.

    Every image gets its own random crop, flip, jitter factors and op order, grayscale and
    blur, computed with batched tensor ops (no Python loop over the batch) on the device of
    ``x``: crop and flip are one affine sampling grid and a bilinear ``grid_sample`` (not
    antialiased when a crop is shrunk, unlike torchvision's resize); colour ops follow
    torchvision's formulas in float32 (torchvision rounds to uint8 after each op).

    Random parameters are drawn with ``generator`` on the generator's device (default: the
    global RNG on ``x.device``) and then moved to ``x.device``, so a CPU generator gives
    the same views on CPU and CUDA.

    Args:
        size, strength, scale, ratio, flip_p, jitter_p, grayscale_p, blur, blur_p: as in
            :func:`simclr_transform`.
        sync_free: how ops that apply to some images only are done (see
            :func:`apply_where`); ``None`` (default): without host synchronisation on CUDA,
            by selecting the images on the CPU. Both give the same views.

    Example:
        >>> aug = BatchedAugment(32, strength=0.5)
        >>> x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
        >>> x_i, x_j = aug.sample_views(x, torch.Generator().manual_seed(0))
        >>> x_i.shape, x_i.dtype
        (torch.Size([8, 3, 32, 32]), torch.float32)
    """

    def __init__(self, size: int, *, strength: float = 1.0, scale=(0.08, 1.0),
                 ratio=(3 / 4, 4 / 3), flip_p: float = 0.5, jitter_p: float = 0.8,
                 grayscale_p: float = 0.2, blur: bool | None = None, blur_p: float = 0.5,
                 sync_free: bool | None = None) -> None:
        super().__init__()
        self.sync_free = sync_free
        _check(size, strength, scale, ratio, flip_p=flip_p, jitter_p=jitter_p,
               grayscale_p=grayscale_p, blur_p=blur_p)
        self.size, self.strength = size, float(strength)
        self.scale, self.ratio = tuple(map(float, scale)), tuple(map(float, ratio))
        self.flip_p, self.jitter_p, self.grayscale_p = flip_p, jitter_p, grayscale_p
        self.blur = size >= 64 if blur is None else bool(blur)
        self.blur_p, self.kernel_size = blur_p, blur_kernel_size(size)

    def extra_repr(self) -> str:
        return (f"size={self.size}, strength={self.strength}, scale={self.scale}, "
                f"ratio=({self.ratio[0]:.4g}, {self.ratio[1]:.4g}), flip_p={self.flip_p}, "
                f"jitter_p={self.jitter_p}, grayscale_p={self.grayscale_p}, blur={self.blur}, "
                f"blur_p={self.blur_p}, kernel_size={self.kernel_size}")

    def sample_crop_params(self, batch_size: int, height: int, width: int,
                           generator: torch.Generator | None = None,
                           device: torch.device | str | None = None) -> CropParams:
        """torchvision's RandomResizedCrop sampling, vectorised: 10 candidates per image
        (area fraction uniform in ``scale``, aspect log-uniform in ``ratio``, sides rounded),
        keep the first that fits, else the same centre-crop fallback as torchvision."""
        n, area = 10, height * width
        rand = _rand(generator, device)
        target = area * (self.scale[0] + (self.scale[1] - self.scale[0]) * rand(batch_size, n))
        lo, hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = torch.exp(lo + (hi - lo) * rand(batch_size, n))
        w = torch.sqrt(target * aspect).round_()                             # (B, n)
        h = torch.sqrt(target / aspect).round_()
        ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)
        first = ok.to(torch.uint8).argmax(dim=1, keepdim=True)  # first candidate that fits
        found = ok.any(dim=1)
        in_ratio = width / height  # torchvision's fallback: whole image or centre crop
        fw = round(height * self.ratio[1]) if in_ratio > self.ratio[1] else width
        fh = round(width / self.ratio[0]) if in_ratio < self.ratio[0] else height
        w = torch.where(found, w.gather(1, first).squeeze(1), float(fw))
        h = torch.where(found, h.gather(1, first).squeeze(1), float(fh))
        top = torch.minimum((rand(batch_size) * (height - h + 1)).floor_(), height - h)
        left = torch.minimum((rand(batch_size) * (width - w + 1)).floor_(), width - w)
        top = torch.where(found, top, float((height - fh) // 2))
        left = torch.where(found, left, float((width - fw) // 2))
        return CropParams(top, left, h, w, h * w / area, w / h)

    def sample_params(self, batch_size: int, height: int, width: int,
                      generator: torch.Generator | None = None,
                      device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        """All random parameters for a batch (each tensor has leading dim B), on the
        generator's device (or ``device`` with the global RNG)."""
        B, rand = batch_size, _rand(generator, device)
        p = self.sample_crop_params(B, height, width, generator, device)._asdict()
        s = self.strength
        lo, hi = max(0.0, 1 - 0.8 * s), 1 + 0.8 * s
        u = rand(B, 4)
        p.update(flip=rand(B) < self.flip_p, jitter=rand(B) < self.jitter_p,
                 order=rand(B, 4).argsort(dim=1),  # a uniform random permutation per image
                 brightness=lo + (hi - lo) * u[:, 0], contrast=lo + (hi - lo) * u[:, 1],
                 saturation=lo + (hi - lo) * u[:, 2], hue=0.2 * s * (2 * u[:, 3] - 1),
                 grayscale=rand(B) < self.grayscale_p,
                 blur=(rand(B) < self.blur_p) & self.blur, sigma=0.1 + 1.9 * rand(B))
        return p

    def apply(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """Augment ``x`` (B, 3, H, W), uint8 or float, with given parameters -> float32
        (B, 3, size, size) in [0, 1]."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(x.shape)}")
        x = to_float(x).float()
        B, _, H, W = x.shape
        p = {k: v.to(x.device) for k, v in params.items()}
        # Crop + flip as one affine map from output to input coordinates in [-1, 1]:
        # F.affine_grid for theta = [[+-w/W, 0, cx], [0, h/H, cy]], written out because its
        # bmm is slow on CPU. align_corners=False samples pixel centres, like a resize.
        S = self.size
        base = (torch.arange(S, device=x.device, dtype=x.dtype) * 2 + 1) / S - 1   # (S,)
        sx = (p["width"] / W) * (1 - 2 * p["flip"].to(x.dtype))
        cx = (2 * p["left"] + p["width"]) / W - 1                                   # crop centre
        cy = (2 * p["top"] + p["height"]) / H - 1
        gx = (sx.view(B, 1, 1) * base).add_(cx.view(B, 1, 1)).expand(B, S, S)
        gy = ((p["height"] / H).view(B, 1, 1) * base.view(S, 1)).add_(cy.view(B, 1, 1))
        grid = torch.stack((gx, gy.expand(B, S, S)), dim=-1)                   # (B, S, S, 2)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        free = x.device.type == "cuda" if self.sync_free is None else self.sync_free
        if self.strength > 0:
            x = apply_where(x, p["jitter"], lambda xs, i: color_jitter(
                xs, p["order"][i], p["brightness"][i], p["contrast"][i], p["saturation"][i],
                p["hue"][i], sync_free=free), free)
        x = apply_where(x, p["grayscale"], lambda xs, i: rgb_to_grayscale(xs).repeat(1, 3, 1, 1),
                        free)
        if self.blur:
            x = apply_where(x, p["blur"], lambda xs, i: gaussian_blur(xs, p["sigma"][i],
                                                                       self.kernel_size), free)
        return x.clamp_(0, 1).contiguous()

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One view of every image: (B, 3, H, W) uint8 or float -> float32 (B, 3, size, size)."""
        params = self.sample_params(x.shape[0], x.shape[-2], x.shape[-1], generator, x.device)
        return self.apply(x, params)

    def sample_views(self, x: torch.Tensor, generator: torch.Generator | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Two independent views ``(x_i, x_j)`` of every image (two calls of ``forward``)."""
        return self(x, generator), self(x, generator)
