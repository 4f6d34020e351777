"""SimCLR augmentations: batched ops against torchvision's functional ops, and properties."""

import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch.testing import assert_close
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from simclr_lib import augment as A
from simclr_lib.augment import BatchedAugment, TwoViews, simclr_transform, to_float

OFF = dict(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, grayscale_p=0.0,
           blur=False)  # every random step switched off


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(b=8, h=32, w=32, seed=0) -> torch.Tensor:
    return torch.randint(0, 256, (b, 3, h, w), dtype=torch.uint8, generator=gen(seed))


def float_images(b=24, h=17, w=23, seed=0) -> torch.Tensor:
    """Random images with the cases HSV must handle: gray pixels, black, white, ties."""
    x = torch.rand(b, 3, h, w, generator=gen(seed))
    x[0:3] = x[0:3, :1]               # gray images (max == min)
    x[3] = 0.0
    x[4] = 1.0
    x[5:8] = (x[5:8] * 4).round() / 4  # many channel ties
    return x


# ---- to_float -----------------------------------------------------------------------------

def test_to_float():
    x = images(2)
    y = to_float(x)
    assert y.dtype == torch.float32 and y.shape == x.shape
    assert_close(y, x.double().div(255).float())
    assert_close(to_float(x[0]), y[0])
    f = torch.rand(3, 4, 4)
    assert to_float(f) is f
    with pytest.raises(TypeError, match="uint8 or floating"):
        to_float(x.long())


# ---- batched colour ops vs torchvision, image by image -----------------------------------

@pytest.mark.parametrize("op,lo,hi", [("brightness", 0.0, 2.0), ("contrast", 0.0, 2.0),
                                      ("saturation", 0.0, 2.0), ("hue", -0.5, 0.5)])
def test_color_op_matches_torchvision(op, lo, hi):
    x = float_images()
    f = lo + (hi - lo) * torch.rand(x.shape[0], generator=gen(1))
    f[0] = lo
    f[-1] = hi
    out = getattr(A, f"adjust_{op}")(x, f)
    tv_op = getattr(TF, f"adjust_{op}")
    ref = torch.stack([tv_op(xb, float(fb)) for xb, fb in zip(x, f, strict=True)])
    assert out.shape == x.shape
    assert_close(out, ref, rtol=0, atol=1e-6)


def test_rgb_to_grayscale_matches_torchvision():
    x = float_images()
    ref = torch.stack([TF.rgb_to_grayscale(xb) for xb in x])
    assert_close(A.rgb_to_grayscale(x), ref, rtol=0, atol=1e-7)


def test_hsv_conversions_match_torchvision_including_sector_edges():
    from torchvision.transforms.v2.functional import _color as tv_color  # the reference

    x = float_images()
    assert_close(torch.stack(A._rgb_to_hsv(x), -3), tv_color._rgb_to_hsv(x), rtol=0, atol=0)
    hsv = torch.rand(4, 3, 8, 8, generator=gen(3))
    edges = torch.tensor([0.0, 1 / 6, 2 / 6, 0.5, 4 / 6, 5 / 6, 1.0 - 2**-24, 1.0])  # 1.0 == 0
    hsv[:, 0, 0] = edges
    assert_close(A._hsv_to_rgb(*hsv.unbind(-3)), tv_color._hsv_to_rgb(hsv), rtol=0, atol=0)


def test_color_jitter_matches_torchvision_in_given_order():
    x = float_images()
    b = x.shape[0]
    g = gen(2)
    order = torch.rand(b, 4, generator=g).argsort(dim=1)
    br, co, sa = 0.2 + 1.6 * torch.rand(3, b, generator=g)
    hu = 0.4 * torch.rand(b, generator=g) - 0.2
    out = A.color_jitter(x, order, br, co, sa, hu)
    fns = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]
    ref = []
    for i in range(b):
        y = x[i]
        factors = [br[i], co[i], sa[i], hu[i]]
        for k in order[i].tolist():  # torchvision's ColorJitter loops over fn_idx like this
            y = fns[k](y, float(factors[k]))
        ref.append(y)
    assert_close(out, torch.stack(ref), rtol=0, atol=1e-5)


@pytest.mark.parametrize("kernel_size", [3, 7])
def test_gaussian_blur_matches_torchvision(kernel_size):
    x = float_images(b=6)
    sigma = torch.tensor([0.1, 0.5, 1.0, 1.5, 2.0, 0.3])
    out = A.gaussian_blur(x, sigma, kernel_size)
    ref = torch.stack([TF.gaussian_blur(xb, [kernel_size] * 2, [float(s)] * 2)
                       for xb, s in zip(x, sigma, strict=True)])
    assert_close(out, ref, rtol=0, atol=1e-6)


def test_blur_kernel_size_is_odd_ten_percent():
    assert [A.blur_kernel_size(s) for s in (8, 32, 64, 96, 224)] == [3, 3, 7, 9, 23]


# ---- crop parameters ----------------------------------------------------------------------

def test_crop_params_follow_ranges_and_span_them():
    aug = BatchedAugment(32)
    H, W, n = 480, 512, 10_000
    c = aug.sample_crop_params(n, H, W, gen())
    assert (c.top >= 0).all() and (c.left >= 0).all()
    assert (c.top + c.height <= H).all() and (c.left + c.width <= W).all()
    assert_close(c.area, c.height * c.width / (H * W))
    assert_close(c.aspect, c.width / c.height)
    # rounding the sides to pixels moves area and ratio by well under 1% at this size
    assert c.area.min() >= 0.08 * 0.99 and c.area.max() <= 1.0
    assert c.area.min() < 0.085 and c.area.max() > 0.99
    lr = c.aspect.log()
    assert lr.min() >= math.log(3 / 4) - 0.01 and lr.max() <= math.log(4 / 3) + 0.01
    assert lr.min() < math.log(3 / 4) + 0.01 and lr.max() > math.log(4 / 3) - 0.01
    # positions are uniform over the valid range: the crop centre averages to the centre
    assert abs((c.left + c.width / 2).mean().item() / W - 0.5) < 0.01


def test_crop_params_match_torchvision_distribution_on_small_images():
    # 32x24: many candidates are rejected, so the first-valid rule matters
    aug = BatchedAugment(16)
    c = aug.sample_crop_params(4000, 24, 32, gen())
    torch.manual_seed(0)
    rrc = v2.RandomResizedCrop(16, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3))
    ref = [rrc.make_params([torch.empty(3, 24, 32)]) for _ in range(4000)]
    ref_area = torch.tensor([p["height"] * p["width"] / (24 * 32) for p in ref])
    ref_aspect = torch.tensor([p["width"] / p["height"] for p in ref])
    q = torch.tensor([0.1, 0.25, 0.5, 0.75, 0.9])
    assert_close(c.area.quantile(q), ref_area.quantile(q), rtol=0, atol=0.03)
    assert_close(c.aspect.quantile(q), ref_aspect.quantile(q), rtol=0.03, atol=0)
    assert abs(c.top.mean() - torch.tensor([p["top"] for p in ref]).float().mean()) < 0.3
    assert (c.top + c.height <= 24).all() and (c.left + c.width <= 32).all()
    assert (c.height >= 1).all() and (c.width >= 1).all()


def test_crop_fallback_is_torchvisions_centre_crop():
    # no candidate can fit (area 1 with ratio 2 on a square), so both fall back
    aug = BatchedAugment(16, scale=(1.0, 1.0), ratio=(2.0, 2.0))
    c = aug.sample_crop_params(4, 30, 30, gen())
    ref = v2.RandomResizedCrop(16, scale=(1.0, 1.0), ratio=(2.0, 2.0)).make_params(
        [torch.empty(3, 30, 30)])
    got = [c.top[0], c.left[0], c.height[0], c.width[0]]
    assert [int(v) for v in got] == [ref["top"], ref["left"], ref["height"], ref["width"]]


# ---- geometry: the affine grid samples the right pixels -----------------------------------

def params_with_crop(aug, x, top, left, h, w, flip=False):
    p = aug.sample_params(x.shape[0], x.shape[-2], x.shape[-1], gen())
    n = x.shape[0]
    p.update(top=torch.full((n,), float(top)), left=torch.full((n,), float(left)),
             height=torch.full((n,), float(h)), width=torch.full((n,), float(w)),
             flip=torch.full((n,), flip))
    return p


@pytest.mark.parametrize("flip", [False, True])
def test_crop_of_output_size_is_an_exact_slice(flip):
    x = images(4, 32, 40)
    aug = BatchedAugment(16, **{**OFF, "scale": (0.08, 1.0)})
    out = aug.apply(x, params_with_crop(aug, x, top=5, left=11, h=16, w=16, flip=flip))
    ref = to_float(x)[..., 5:21, 11:27]
    assert_close(out, ref.flip(-1) if flip else ref, rtol=0, atol=1e-6)


def test_crop_twice_the_output_size_averages_pixel_pairs():
    x = images(4, 32, 32)
    aug = BatchedAugment(8, **OFF)
    out = aug.apply(x, params_with_crop(aug, x, top=8, left=0, h=16, w=16))
    ref = torch.nn.functional.avg_pool2d(to_float(x)[..., 8:24, 0:16], 2)
    assert_close(out, ref, rtol=0, atol=1e-6)


# ---- p = 0 / p = 1 behaviour --------------------------------------------------------------

@pytest.mark.parametrize("size", [24, 32])
def test_everything_off_is_identity(size):
    x = images(8, size, size)
    out = BatchedAugment(size, **OFF)(x, gen())
    assert_close(out, to_float(x), rtol=0, atol=1e-6)


def test_zero_strength_jitter_changes_nothing():
    x = images()
    out = BatchedAugment(32, **{**OFF, "jitter_p": 1.0, "strength": 0.0})(x, gen())
    assert_close(out, to_float(x), rtol=0, atol=1e-6)


def test_grayscale_p1_gives_equal_channels():
    out = BatchedAugment(32, grayscale_p=1.0)(images(), gen())
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])


def test_flip_p1_with_full_crop_is_a_mirror():
    x = images()
    out = BatchedAugment(32, **{**OFF, "flip_p": 1.0})(x, gen())
    assert_close(out, to_float(x).flip(-1), rtol=0, atol=1e-6)


def test_jitter_p1_changes_every_image():
    x = images(16)
    out = BatchedAugment(32, **{**OFF, "jitter_p": 1.0})(x, gen())
    diff = (out - to_float(x)).abs().amax(dim=(1, 2, 3))
    assert (diff > 1e-3).all()


def test_blur_p1_smooths_and_keeps_the_mean():
    x = images(4, 64, 64)
    out = BatchedAugment(64, **{**OFF, "blur": True}, blur_p=1.0)(x, gen())
    ref = to_float(x)
    tv = lambda t: (t[..., 1:, :] - t[..., :-1, :]).abs().mean()  # noqa: E731
    assert tv(out) < 0.8 * tv(ref)
    assert_close(out.mean(dim=(2, 3)), ref.mean(dim=(2, 3)), rtol=0, atol=0.01)


def test_sampled_probabilities_and_factor_ranges():
    aug = BatchedAugment(32, strength=0.5, flip_p=0.5, jitter_p=0.8, grayscale_p=0.2,
                         blur=True, blur_p=0.3)
    p = aug.sample_params(20_000, 32, 32, gen())
    for key, prob in [("flip", 0.5), ("jitter", 0.8), ("grayscale", 0.2), ("blur", 0.3)]:
        assert abs(p[key].float().mean().item() - prob) < 0.015, key
    assert (p["order"].sort(dim=1).values == torch.arange(4)).all()  # permutations
    assert abs((p["order"][:, 0] == 3).float().mean().item() - 0.25) < 0.015
    for key in ("brightness", "contrast", "saturation"):
        assert p[key].min() >= 0.6 and p[key].max() <= 1.4
        assert p[key].min() < 0.61 and p[key].max() > 1.39
    assert p["hue"].min() >= -0.1 and p["hue"].max() <= 0.1
    assert p["sigma"].min() >= 0.1 and p["sigma"].max() <= 2.0


# ---- seeds, views, shapes, dtypes ---------------------------------------------------------

def test_same_seed_same_views_and_two_views_differ():
    x = images()
    aug = BatchedAugment(32)
    x_i, x_j = aug.sample_views(x, gen(7))
    y_i, y_j = aug.sample_views(x, gen(7))
    assert torch.equal(x_i, y_i) and torch.equal(x_j, y_j)
    assert not torch.allclose(x_i, x_j)
    assert (x_i - x_j).abs().amax(dim=(1, 2, 3)).gt(1e-3).float().mean() > 0.9


@pytest.mark.parametrize("size,blur", [(24, False), (32, False), (64, True)])
def test_output_shape_dtype_range(size, blur):
    aug = BatchedAugment(size)
    assert aug.blur is blur
    out = aug(images(6), gen())
    assert out.shape == (6, 3, size, size) and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    assert out.is_contiguous()


def test_uint8_and_float_inputs_give_the_same_views():
    x = images()
    aug = BatchedAugment(24, blur=True)
    assert torch.equal(aug(x, gen(3)), aug(to_float(x), gen(3)))


def test_global_rng_and_bad_input():
    aug = BatchedAugment(16)
    assert aug(images(2)).shape == (2, 3, 16, 16)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        aug(images(1)[0])
    assert "size=16" in repr(aug) and "grayscale_p=0.2" in repr(aug)


@pytest.mark.parametrize("kwargs", [dict(strength=3.0), dict(scale=(0.0, 1.0)),
                                    dict(ratio=(2.0, 1.0)), dict(jitter_p=1.5), dict(flip_p=-0.1)])
def test_invalid_arguments(kwargs):
    with pytest.raises(ValueError):
        BatchedAugment(32, **kwargs)
    with pytest.raises(ValueError):
        simclr_transform(32, **kwargs)


# ---- per-sample pipeline ------------------------------------------------------------------

def test_simclr_transform_pil_and_uint8():
    t = simclr_transform(24)
    x = images(1, 40, 30)[0]
    pil = Image.fromarray(np.ascontiguousarray(x.permute(1, 2, 0).numpy()))
    for img in (pil, x):
        y = t(img)
        assert type(y) is torch.Tensor and y.shape == (3, 24, 24) and y.dtype == torch.float32
        assert y.min() >= 0 and y.max() <= 1


def has_blur(t: v2.Compose) -> bool:
    return any(isinstance(op, v2.RandomApply) and isinstance(op.transforms[0], v2.GaussianBlur)
               for op in t.transforms)


def test_simclr_transform_blur_default_and_override():
    assert not has_blur(simclr_transform(32)) and has_blur(simclr_transform(64))
    assert has_blur(simclr_transform(32, blur=True))
    assert not has_blur(simclr_transform(96, blur=False))
    blur = [op for op in simclr_transform(96).transforms if isinstance(op, v2.RandomApply)][-1]
    assert blur.transforms[0].kernel_size == (9, 9) and blur.p == 0.5


def test_simclr_transform_everything_off_is_identity():
    x = images(1)[0]
    assert_close(simclr_transform(32, **OFF)(x), to_float(x))


def test_two_views_differ():
    torch.manual_seed(0)
    x_i, x_j = TwoViews(simclr_transform(32))(images(1)[0])
    assert x_i.shape == x_j.shape == (3, 32, 32)
    assert not torch.equal(x_i, x_j)


# ---- CUDA ---------------------------------------------------------------------------------

@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_for_the_same_parameters():
    x = images(32, 48, 48)
    aug = BatchedAugment(32, blur=True)
    cpu = aug(x, gen(5))                           # parameters drawn on the CPU generator ...
    cuda = aug(x.cuda(), gen(5))                   # ... then moved: the same views
    assert cuda.device.type == "cuda"
    assert_close(cuda.cpu(), cpu, rtol=0, atol=1e-4)
    g = torch.Generator(device="cuda").manual_seed(0)
    out = aug(x.cuda(), g)                         # a CUDA generator works too
    assert out.shape == (32, 3, 32, 32) and 0 <= out.min() and out.max() <= 1


@pytest.mark.parametrize(("strength", "blur"), [(1.0, False), (0.5, True), (1.0, True)])
def test_sync_free_strategy_gives_the_same_views(strength, blur):
    # CUDA's strategy (transform every image, keep the selected ones) against the CPU's
    # (select with nonzero, transform those): equal image by image.
    x = torch.randint(0, 256, (48, 3, 40, 40), dtype=torch.uint8,
                      generator=torch.Generator().manual_seed(5))
    views = [BatchedAugment(32, strength=strength, blur=blur, grayscale_p=0.5, sync_free=free)
             (x, torch.Generator().manual_seed(1)) for free in (False, True)]
    assert_close(views[1], views[0], rtol=0, atol=1e-6)


class _Calls(torch.overrides.TorchFunctionMode):
    """Records the name of every torch function and tensor method called."""

    def __init__(self):
        super().__init__()
        self.names = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.names.add(getattr(func, "__name__", str(func)))
        return func(*args, **(kwargs or {}))


def test_sync_free_strategy_never_asks_the_device_how_many():
    # nonzero/item/tolist make the CPU wait for the GPU (a host synchronisation).
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    host_syncs = {"nonzero", "item", "tolist", "__bool__", "__int__", "__float__"}
    for free, expect_sync in ((True, False), (False, True)):
        with _Calls() as calls:
            BatchedAugment(32, blur=True, sync_free=free)(x, torch.Generator().manual_seed(0))
        assert bool(calls.names & host_syncs) is expect_sync, calls.names & host_syncs


def test_sync_free_is_the_default_on_cuda_only():
    aug = BatchedAugment(32)
    assert aug.sync_free is None  # decided per call from the device of x
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    with _Calls() as calls:
        aug(x, torch.Generator().manual_seed(0))
    assert "nonzero" in calls.names  # the CPU selects
