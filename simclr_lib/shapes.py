"""``shapes``: a built-in, generated image dataset that needs no download.

Ten classes defined by *shape only*. Everything else is random and independent of the
class: the object's colour, a solid or linear-gradient background, position, scale,
rotation and pixel noise. A classifier on raw pixels therefore does poorly, while a small
CNN (or a SimCLR encoder) that learns shape does well, which makes ``shapes`` a quick,
offline stand-in for CIFAR-10 in the course.

The classes were chosen so that SimCLR's augmentations (Chen et al. 2020, Section 3) never
turn one class into another: random-resized-crop's aspect-ratio jitter would map circle to
ellipse and square to rectangle, so only one of each pair is used; rotation would map a
square onto a diamond, so there is no diamond; every class is mirror-symmetric, so a
horizontal flip keeps its label; and no class is defined by colour.

Each class is an implicit function ``inside(u, v)`` on object coordinates in about
``[-1, 1]^2``, drawn once into an antialiased template. Each image samples its class's
template with ``grid_sample`` at 2x2 points per pixel, through a random rotation, scale and
translation; a batch of images is rendered at once (7000 images in about a second on one
CPU core).

``colour_shapes`` (:func:`make_colour_shapes`) draws the same kind of images with the
classes the other way round: the class is the object's hue and the shape is random, a
dataset on which SimCLR's colour augmentations hurt (notebooks/06_experiments.ipynb).

Introduced in notebooks/01_augmentations.ipynb.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

SHAPE_CLASSES = ("disk", "ring", "square", "frame", "triangle", "plus", "star", "heart",
                 "crescent", "arrow")
# colour_shapes: the hue of the object, in sixths of a turn (0 red, 1/6 yellow, ...)
COLOUR_CLASSES = ("red", "yellow", "green", "cyan", "blue", "magenta")


def _polygon(u: torch.Tensor, v: torch.Tensor, sides: int, radius: float) -> torch.Tensor:
    """Inside a regular polygon with one vertex pointing up (circumradius ``radius``)."""
    inside = torch.ones_like(u, dtype=torch.bool)
    for k in range(sides):
        a = -math.pi / 2 + math.pi / sides + 2 * math.pi * k / sides  # edge normal
        inside &= u * math.cos(a) + v * math.sin(a) <= radius * math.cos(math.pi / sides)
    return inside


def _star(u: torch.Tensor, v: torch.Tensor, outer: float = 1.0, inner: float = 0.45,
          points: int = 5) -> torch.Tensor:
    """Inside a star: fold the angle into one half-spike, then test one edge line."""
    sector = math.pi / points
    angle = torch.atan2(v, u) + math.pi / 2  # 0 at a tip pointing up
    b = torch.remainder(angle + sector, 2 * sector) - sector  # in [-sector, sector)
    rho = torch.sqrt(u * u + v * v)
    qx, qy = rho * torch.cos(b), rho * torch.sin(b).abs()  # folded point, tip at (outer, 0)
    ix, iy = inner * math.cos(sector), inner * math.sin(sector)  # inner vertex
    # cross((I - T), (q - T)) has the sign of the origin's side of the edge T-I
    return (ix - outer) * qy - iy * (qx - outer) >= 0


def _heart(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    x, y = u / 0.78, -v / 0.78 + 0.12  # image rows grow downwards; lobes on top
    return (x * x + y * y - 1) ** 3 - x * x * y ** 3 <= 0


def _crescent(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    u = u - 0.2  # centre the visible mass
    return (u * u + v * v <= 0.85 ** 2) & ((u - 0.45) ** 2 + v * v >= 0.7 ** 2)


def _arrow(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    shaft = (v.abs() <= 0.16) & (u >= -0.95) & (u <= 0.1)
    head = (u >= 0.0) & (v.abs() <= 0.6 * (0.95 - u) / 0.95)
    return shaft | head


def _frame_or_square(u: torch.Tensor, v: torch.Tensor, outer: float, inner: float):
    m = torch.maximum(u.abs(), v.abs())  # the square "radius" (L-infinity norm)
    return (m <= outer) & (m >= inner)


_INSIDE = {
    "disk": lambda u, v: u * u + v * v <= 0.8 ** 2,
    "ring": lambda u, v: ((u * u + v * v) <= 0.92 ** 2) & ((u * u + v * v) >= 0.52 ** 2),
    "square": lambda u, v: _frame_or_square(u, v, 0.7, 0.0),
    "frame": lambda u, v: _frame_or_square(u, v, 0.8, 0.45),
    "triangle": lambda u, v: _polygon(u, v + 0.15, 3, 1.0),
    "plus": lambda u, v: ((u.abs() <= 0.26) & (v.abs() <= 0.9))
    | ((v.abs() <= 0.26) & (u.abs() <= 0.9)),
    "star": _star,
    "heart": _heart,
    "crescent": _crescent,
    "arrow": _arrow,
}


def _luminance(rgb: torch.Tensor) -> torch.Tensor:
    return rgb @ torch.tensor([0.299, 0.587, 0.114])


def _dist_to_segment(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Distance from points ``p`` to segments ``[a, b]`` (rows; any trailing dim)."""
    ab = b - a
    t = ((p - a) * ab).sum(-1, keepdim=True) / (ab * ab).sum(-1, keepdim=True).clamp_min(1e-8)
    return (a + t.clamp(0, 1) * ab - p).norm(dim=-1)


def _stands_out(o: torch.Tensor, c1: torch.Tensor, c2: torch.Tensor) -> torch.Tensor:
    """(m,) whether each object colour ``o`` stands out from its background ``c1 -> c2``."""
    return (_dist_to_segment(o, c1, c2) >= 0.4) & (_dist_to_segment(
        _luminance(o)[:, None], _luminance(c1)[:, None], _luminance(c2)[:, None]) >= 0.12)


def _colours(n: int, g: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Object colour, background end colours and whether the background is a gradient.

    The colours are resampled until the object stands out: it must be at least 0.4 away
    (RGB in [0, 1]) from every colour of the background gradient, and 0.12 away in
    luminance, so it stays visible after a grayscale augmentation. A solid background has
    equal end colours.
    """
    obj, bg1, bg2 = (torch.empty(n, 3) for _ in range(3))
    gradient = torch.rand(n, generator=g) < 0.5
    todo = torch.arange(n)
    for _ in range(100):
        m = len(todo)
        o, c1, c2 = (torch.rand(m, 3, generator=g) for _ in range(3))
        c2 = torch.where(gradient[todo, None], c2, c1)
        ok = _stands_out(o, c1, c2)
        obj[todo[ok]], bg1[todo[ok]], bg2[todo[ok]] = o[ok], c1[ok], c2[ok]
        todo = todo[~ok]
        if len(todo) == 0:
            break
    else:  # practically never: fall back to black on white
        obj[todo], bg1[todo], bg2[todo] = 0.0, 1.0, 1.0
    return obj, bg1, bg2, gradient


def _backgrounds(obj: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Background end colours for given object colours (n, 3), resampled as in
    :func:`_colours` until each object stands out from its background."""
    n = obj.shape[0]
    bg1, bg2 = torch.empty(n, 3), torch.empty(n, 3)
    gradient = torch.rand(n, generator=g) < 0.5
    todo = torch.arange(n)
    for _ in range(100):
        c1, c2 = (torch.rand(len(todo), 3, generator=g) for _ in range(2))
        c2 = torch.where(gradient[todo, None], c2, c1)
        ok = _stands_out(obj[todo], c1, c2)
        bg1[todo[ok]], bg2[todo[ok]] = c1[ok], c2[ok]
        todo = todo[~ok]
        if len(todo) == 0:
            break
    else:  # practically never: white behind dark objects, black behind light ones
        bg1[todo] = bg2[todo] = (_luminance(obj[todo]) < 0.5).float()[:, None]
    return bg1, bg2


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """Colours from hue, saturation and value, all in [0, 1]: (..., 3) -> (..., 3).

    The standard formula (hue in turns: 0 red, 1/3 green, 2/3 blue), the same as Python's
    ``colorsys.hsv_to_rgb``: channel ``c`` is ``v - v s clamp(min(k, 4 - k), 0, 1)`` with
    ``k = (n_c + 6 h) mod 6`` and ``n = 5, 3, 1`` for red, green and blue.

    Example:
        >>> hsv_to_rgb(torch.tensor([2 / 3, 1.0, 1.0]))  # pure blue
        tensor([0., 0., 1.])
    """
    h, s, v = hsv.unbind(-1)
    n = torch.tensor([5.0, 3.0, 1.0])
    k = torch.remainder(n + 6 * h[..., None], 6)  # (..., 3)
    return v[..., None] - (v * s)[..., None] * torch.minimum(k, 4 - k).clamp(0, 1)


_EXTENT = 1.2  # templates cover object coordinates [-_EXTENT, _EXTENT]^2


@functools.lru_cache(maxsize=4)
def _templates(image_size: int) -> torch.Tensor:
    """(10, 1, T, T) coverage masks of the classes (4x4 supersampled), with one template
    pixel per object unit / ``image_size``: a little finer than ``make_shapes`` samples."""
    t = math.ceil(2 * _EXTENT * image_size)
    coords = ((torch.arange(4 * t) + 0.5) / (4 * t) * 2 - 1) * _EXTENT
    u, v = coords[None, :], coords[:, None]  # columns, rows
    masks = torch.stack([_INSIDE[name](u.expand(4 * t, -1), v.expand(-1, 4 * t))
                         for name in SHAPE_CLASSES])  # (10, 4T, 4T)
    return F.avg_pool2d(masks.float()[:, None], 4)


BACKGROUND_TYPES = ("solid", "gradient")  # index = shape_factors(...)["background"]
POLARITIES = ("dark object", "light object")  # index = shape_factors(...)["polarity"]


def _draw_factors(n: int, g: torch.Generator) -> tuple[dict[str, torch.Tensor], int]:
    """Every random choice behind ``n`` images, in the order ``make_shapes`` draws them."""
    labels = (torch.arange(n) % len(SHAPE_CLASSES))[torch.randperm(n, generator=g)]
    angle = torch.rand(n, generator=g) * 2 * math.pi
    scale = 0.45 + 0.35 * torch.rand(n, generator=g)  # object radius, fraction of half-width
    shift = (torch.rand(n, 2, generator=g) * 2 - 1) * (0.95 - scale[:, None])
    obj, bg1, bg2, gradient = _colours(n, g)
    grad_angle = torch.rand(n, generator=g) * 2 * math.pi
    noise_std = 0.06 * torch.rand(n, generator=g)
    noise_seed = int(torch.randint(2 ** 62, (1,), generator=g))
    # _colours keeps the object's luminance 0.12 away from every background colour's, so
    # the object is either lighter or darker than the whole background
    lighter = _luminance(obj) > (_luminance(bg1) + _luminance(bg2)) / 2
    factors = {"label": labels, "angle": angle, "scale": scale, "shift": shift,
               "object_colour": obj, "background_colours": torch.stack([bg1, bg2], 1),
               "background": gradient.long(), "polarity": lighter.long(),
               "gradient_angle": grad_angle, "noise_std": noise_std}
    return factors, noise_seed


def shape_factors(n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """The factors of variation behind ``make_shapes(n, seed)``, one row per image.

    ``make_shapes`` draws every image from a few random factors: the class, which is the
    only thing a label says, and nuisance factors independent of it (pose, colours,
    background, noise). This returns what was drawn, without rendering, so that features
    can be read against a nuisance factor: does ``h`` still know whether the background
    was a gradient? The images are not changed by asking; any ``image_size`` gives the same
    factors.

    Args:
        n: number of images, as passed to :func:`make_shapes`.
        seed: the seed passed to :func:`make_shapes`.

    Returns:
        A dict of CPU tensors with first dimension ``n``:

        * ``label`` (n,) int64: the class, equal to ``make_shapes(n, seed)[1]``;
        * ``background`` (n,) int64: index into :data:`BACKGROUND_TYPES`, 0 ``solid``
          or 1 ``gradient`` (about half each);
        * ``background_colours`` (n, 2, 3): the gradient's end colours, RGB in [0, 1]
          (equal for a solid background); ``gradient_angle`` (n,) its direction, radians;
        * ``object_colour`` (n, 3): RGB in [0, 1];
        * ``polarity`` (n,) int64: index into :data:`POLARITIES`, 1 when the object is
          lighter (in luminance) than its background, 0 when it is darker; no image is
          in between, so the polarity survives grayscale and every colour jitter that
          keeps the order of brightnesses;
        * ``angle`` (n,) rotation in radians, ``scale`` (n,) object radius as a fraction
          of the half-width, ``shift`` (n, 2) centre offset in [-1, 1] image units (x, y);
        * ``noise_std`` (n,): standard deviation of the pixel noise, in [0, 0.06].

    Raises:
        ValueError: ``n < 0``.

    Example:
        >>> f = shape_factors(100, seed=0)
        >>> torch.equal(f["label"], make_shapes(100, seed=0)[1])
        True
        >>> [BACKGROUND_TYPES[b] for b in f["background"][:3].tolist()]  # doctest: +SKIP
        ['gradient', 'solid', 'solid']
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return _draw_factors(n, torch.Generator().manual_seed(seed))[0]


def make_shapes(n: int, seed: int = 0, image_size: int = 32,
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate ``n`` images of the ``shapes`` dataset, deterministically from ``seed``.

    Classes are balanced (``n // 10`` or one more each) and shuffled. The same
    ``(n, seed, image_size)`` gives the same images (computed on the CPU in float32; other
    CPUs may round a pixel differently).

    Args:
        n: number of images.
        seed: seed of a private ``torch.Generator``; the global RNG is untouched.
        image_size: side ``S`` of the square images (the shapes are drawn at this
            resolution, not resized).

    Returns:
        ``(images, labels)``: uint8 ``(n, 3, S, S)`` and int64 ``(n,)`` indices into
        :data:`SHAPE_CLASSES`.

    Raises:
        ValueError: ``n < 0`` or ``image_size < 8``.

    Example:
        >>> images, labels = make_shapes(100, seed=0)
        >>> images.shape, images.dtype, torch.bincount(labels).tolist()
        (torch.Size([100, 3, 32, 32]), torch.uint8, [10, 10, 10, 10, 10, 10, 10, 10, 10, 10])
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if image_size < 8:
        raise ValueError(f"image_size must be >= 8, got {image_size}")
    factors, noise_seed = _draw_factors(n, torch.Generator().manual_seed(seed))
    labels, angle, scale, shift = (factors[k] for k in ("label", "angle", "scale", "shift"))
    obj, (bg1, bg2) = factors["object_colour"], factors["background_colours"].unbind(1)
    grad_angle, noise_std = factors["gradient_angle"], factors["noise_std"]

    images = _render(labels, angle, scale, shift, obj, bg1, bg2, grad_angle, noise_std,
                     noise_seed, image_size)
    return images, labels


def make_colour_shapes(n: int, seed: int = 0, image_size: int = 32,
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate ``n`` images of ``colour_shapes``: the ``shapes`` images, classed by colour.

    The opposite of ``shapes``: the class is the object's *hue*, one of the six of
    :data:`COLOUR_CLASSES` (centre ``c / 6`` of a turn, plus or minus 1/24), and everything
    else is random and independent of it: which of the ten shapes, the object's luminance
    (in [0.3, 0.5], so that a grayscale image says nothing of the class), its saturation
    (60% to 100% of the most its hue allows at that luminance), the background (resampled
    until the object stands out, as in ``shapes``), position, scale, rotation and noise.
    A task for which SimCLR's colour augmentations (hue jitter and grayscale, Chen et al.
    2020, Section 3) teach the encoder to ignore the very cue the labels need. Introduced
    in notebooks/06_experiments.ipynb.

    Args:
        n: number of images.
        seed: seed of a private ``torch.Generator``; the global RNG is untouched.
        image_size: side ``S`` of the square images.

    Returns:
        ``(images, labels)``: uint8 ``(n, 3, S, S)`` and int64 ``(n,)`` indices into
        :data:`COLOUR_CLASSES`, balanced (``n // 6`` or one more each) and shuffled.

    Raises:
        ValueError: ``n < 0`` or ``image_size < 8``.

    Example:
        >>> images, labels = make_colour_shapes(60, seed=0)
        >>> images.shape, torch.bincount(labels).tolist()
        (torch.Size([60, 3, 32, 32]), [10, 10, 10, 10, 10, 10])
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if image_size < 8:
        raise ValueError(f"image_size must be >= 8, got {image_size}")
    k = len(COLOUR_CLASSES)
    g = torch.Generator().manual_seed(seed)
    labels = (torch.arange(n) % k)[torch.randperm(n, generator=g)]
    shape = torch.randint(len(SHAPE_CLASSES), (n,), generator=g)  # independent of the class
    angle = torch.rand(n, generator=g) * 2 * math.pi
    scale = 0.45 + 0.35 * torch.rand(n, generator=g)
    shift = (torch.rand(n, 2, generator=g) * 2 - 1) * (0.95 - scale[:, None])
    u = torch.rand(n, 3, generator=g)
    hue = torch.remainder(labels / k + (u[:, 0] - 0.5) / (2 * k), 1.0)  # +-1/24 of a turn
    # the luminance is drawn apart from the class, so a grayscale view keeps no trace of it:
    # at value 1, saturation s lowers the luminance from 1 to 1 - s * loss(hue)
    lum = 0.3 + 0.2 * u[:, 2]                                            # (n,) in [0.3, 0.5]
    loss = 1 - _luminance(hsv_to_rgb(torch.stack([hue, torch.ones(n), torch.ones(n)], 1)))
    sat = ((1 - lum) / loss).clamp(max=1) * (0.6 + 0.4 * u[:, 1])       # as vivid as allowed
    obj = hsv_to_rgb(torch.stack([hue, sat, lum / (1 - sat * loss)], 1))  # luminance = lum
    bg1, bg2 = _backgrounds(obj, g)
    grad_angle = torch.rand(n, generator=g) * 2 * math.pi
    noise_std = 0.06 * torch.rand(n, generator=g)
    noise_seed = int(torch.randint(2 ** 62, (1,), generator=g))
    images = _render(shape, angle, scale, shift, obj, bg1, bg2, grad_angle, noise_std,
                     noise_seed, image_size)
    return images, labels


def _render(shape: torch.Tensor, angle: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor,
            obj: torch.Tensor, bg1: torch.Tensor, bg2: torch.Tensor, grad_angle: torch.Tensor,
            noise_std: torch.Tensor, noise_seed: int, image_size: int) -> torch.Tensor:
    """Draw n images from their factors: ``shape`` (n,) indices into :data:`SHAPE_CLASSES`,
    pose (n,), (n,), (n, 2), colours (n, 3) each, gradient angle and noise (n,). Returns
    uint8 (n, 3, S, S)."""
    n = shape.shape[0]
    s = image_size
    templates = _templates(s)  # (10, 1, T, T) antialiased masks
    # sub-pixel p in [-1, 1]^2 samples the template at R(-angle) (p - shift) / (scale * _EXTENT):
    # the inverse of rotating, scaling and moving the object; theta holds it as [A | b]
    cos, sin = angle.cos(), angle.sin()
    a = torch.stack([torch.stack([cos, sin], 1), torch.stack([-sin, cos], 1)], 1)
    a = a / (scale * _EXTENT)[:, None, None]  # (n, 2, 2)
    theta = torch.cat([a, -(a @ shift[:, :, None])], 2)  # (n, 2, 3)
    pix = (torch.arange(s) + 0.5) / s * 2 - 1  # pixel centres in [-1, 1]
    sub = (torch.arange(2 * s) + 0.5) / (2 * s) * 2 - 1  # 2x2 sub-pixel centres
    images = torch.empty(n, 3, s, s, dtype=torch.uint8)
    noise_g = torch.Generator().manual_seed(noise_seed)
    for lo in range(0, n, 512):
        sl = slice(lo, min(n, lo + 512))
        th = theta[sl, :, :, None, None]  # (B, 2, 3, 1, 1)
        grid = th[:, :, 0] * sub[None, None, :] + th[:, :, 1] * sub[None, :, None] + th[:, :, 2]
        grid = grid.permute(0, 2, 3, 1)  # (B, 2S, 2S, 2): template (x, y) of each sub-pixel
        cover = F.grid_sample(templates[shape[sl]], grid, align_corners=False)
        cover = F.avg_pool2d(cover, 2)  # (B, 1, S, S): 2x2 supersampled coverage in [0, 1]
        d = torch.stack([grad_angle[sl].cos(), grad_angle[sl].sin()], 1)  # (B, 2)
        w = (d[:, 0, None, None] * pix[None, None, :] + d[:, 1, None, None] * pix[None, :, None])
        w = ((w / math.sqrt(2) + 1) / 2)[:, None]  # (B, 1, S, S) position along the gradient
        bg = bg1[sl, :, None, None] * (1 - w) + bg2[sl, :, None, None] * w  # (B, 3, S, S)
        img = bg * (1 - cover) + obj[sl, :, None, None] * cover
        img = img + noise_std[sl, None, None, None] * torch.randn(img.shape, generator=noise_g)
        images[sl] = (img.clamp(0, 1) * 255).round().to(torch.uint8)
    return images
