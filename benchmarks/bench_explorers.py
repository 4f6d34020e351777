"""Redraw time of the notebook explorers, from a slider's change to the new PNG.

Builds each explorer as its notebook does (01: three photos, 96-px views; 03: toy batch
of 8 pairs, the profile's temperature), draws it once, then moves one slider through a
few values the way a learner's drag does (``control.value = v``, which calls
``update()``), timing each redraw and recording the PNG's size. Prints the median and
the slowest redraw per explorer. The profile (``SIMCLR_PROFILE``, default ``cpu``) sets
the augmentation settings, as in the notebooks; torch keeps its default thread count.

Usage:
    SIMCLR_PROFILE=cpu python benchmarks/bench_explorers.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from matplotlib import cbook
from PIL import Image
from sklearn.datasets import load_sample_images

from simclr_lib.config import get_profile
from simclr_lib.widgets import augmentation_explorer, temperature_explorer


def photos(size: int = 160) -> torch.Tensor:
    """The three sample photos of notebook 01, centre squares (3, 3, size, size) uint8."""
    with cbook.get_sample_data("grace_hopper.jpg") as file:
        hopper = np.asarray(Image.open(file).convert("RGB"))
    china, flower = load_sample_images().images
    out = []
    for a in (hopper, china, flower):
        img = torch.from_numpy(np.array(a)).permute(2, 0, 1)
        side = min(img.shape[1:])
        out.append(TF.resize(TF.center_crop(img, [side, side]), [size, size], antialias=True))
    return torch.stack(out)


def time_slider(explorer, name: str, values: list, repeats: int) -> tuple[list[float], int]:
    """Seconds per redraw for each slider value (``repeats`` passes), and the last PNG size."""
    times = []
    for _ in range(repeats):
        for v in values:
            t0 = time.perf_counter()
            explorer.controls[name].value = v  # what moving the slider does
            times.append(time.perf_counter() - t0)
    return times, len(explorer.image.value)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3, help="passes over the slider values")
    args = ap.parse_args(argv)
    profile = get_profile(os.environ.get("SIMCLR_PROFILE", "cpu"))
    cfg = profile.train
    print(f"profile {profile.name}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs")

    t0 = time.perf_counter()
    aug = augmentation_explorer(photos(), n=3, size=96, seed=0, min_scale=cfg.min_scale,
                                strength=1.0, grayscale_p=cfg.grayscale_p, blur_p=0.5)
    aug.update()
    first = time.perf_counter() - t0
    rows = [("01 augmentation_explorer", first,
             *time_slider(aug, "seed", [1, 2, 3, 4, 5, 6], args.repeats))]

    t0 = time.perf_counter()
    temp = temperature_explorer(n=8, temperature=cfg.temperature)
    temp.update(temperature=cfg.temperature, anchor=0)
    first = time.perf_counter() - t0
    rows.append(("03 temperature_explorer", first,
                 *time_slider(temp, "temperature", [0.02, 0.05, 0.2, 0.5, 2.0, 5.0],
                              args.repeats)))

    print(f"{'explorer':26s} {'build+1st':>9s} {'median':>8s} {'slowest':>8s} {'PNG':>8s}")
    for name, first, times, png in rows:
        print(f"{name:26s} {first:8.3f}s {statistics.median(times):7.3f}s "
              f"{max(times):7.3f}s {png / 1024:6.0f}KB")


if __name__ == "__main__":
    main()
