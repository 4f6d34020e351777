"""The GPU check: proves the CUDA paths and measures them. Run by ``benchmarks/gpu_check.sh``.

Needs only PyTorch, torchvision, matplotlib, scikit-learn and tqdm (``PYTHONPATH=.``, no
install, no network). Every step writes what it measured to ``OUT/`` (``results.json``,
``summary.md``, the training run, the evaluation's metrics); a failing step is recorded
with its traceback and the others still run; the exit code is 1 if any step failed.

Steps:
    cuda_paths   BatchedAugment on CUDA equals the CPU for the same parameters, draws with a
                 CUDA generator without any host synchronisation (sync debug mode "error");
                 one training step in fp32, bf16 (where native) and fp16 + GradScaler, with
                 channels_last; extract_features with an encoder living on the CPU
    augment      BatchedAugment views/s on the GPU at 32 and 96 px, against the per-image
                 pipeline (simclr_transform) on the CPU
    bench        ResNet-18 (small-image stem), batch 512, 32 px: (a) fit()'s fast path and
                 (d) raw forward + backward, for fp32 / bf16 / fp16, channels_last on and off,
                 and torch.compile for bf16 + channels_last
    epoch        fit() on 50,000 generated shapes images with the gpu profile's model and
                 batch: seconds per epoch, images/s, peak GPU memory
    eval         python -m simclr_lib eval --checkpoint RUN/last.pt --baselines on the GPU
    resume       a two-epoch run stopped by SIGINT mid-epoch and resumed: losses equal to an
                 uninterrupted run's within bf16 tolerance

``--dry-run`` runs the same steps tiny on the CPU (what ``make test`` checks).

Usage:
    python benchmarks/gpu_check.py OUT [--dry-run] [--only STEP ...]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simclr_lib import bench  # noqa: E402
from simclr_lib import train as train_module  # noqa: E402
from simclr_lib.augment import BatchedAugment, simclr_transform  # noqa: E402
from simclr_lib.config import get_profile  # noqa: E402
from simclr_lib.data import ImageTensorDataset, load_dataset  # noqa: E402
from simclr_lib.device import native_bf16  # noqa: E402
from simclr_lib.evaluate import extract_features  # noqa: E402
from simclr_lib.models import build_encoder  # noqa: E402
from simclr_lib.train import TrainingInterrupted, fit  # noqa: E402


@dataclasses.dataclass
class Ctx:
    out: Path
    device: torch.device
    dry: bool

    def size(self, real, tiny):
        return tiny if self.dry else real


def _quiet():
    return contextlib.redirect_stdout(io.StringIO())


# ----------------------------------------------------------------------------- steps

def cuda_paths(ctx: Ctx) -> dict:
    dev, r = ctx.device, {}
    x = torch.randint(0, 256, (64, 3, 48, 48), dtype=torch.uint8,
                      generator=torch.Generator().manual_seed(0))
    aug = BatchedAugment(32, blur=True)
    on_cpu = aug(x, torch.Generator().manual_seed(5))
    on_dev = aug(x.to(dev), torch.Generator().manual_seed(5))  # CPU draws, device pixels
    r["augment_max_abs_diff_vs_cpu"] = float((on_dev.cpu() - on_cpu).abs().max())
    assert r["augment_max_abs_diff_vs_cpu"] < 1e-4, r
    g = torch.Generator(device=dev).manual_seed(0)
    xd = x.to(dev)
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")  # any host synchronisation raises
        try:
            views = aug(xd, generator=g)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        r["augment_host_syncs"] = 0
    else:
        views = aug(xd, generator=g)
    assert views.shape == (64, 3, 32, 32) and views.device.type == dev.type

    precisions = ["fp32"] + (["bf16", "fp16"] if dev.type == "cuda" else [])
    if dev.type == "cuda" and not native_bf16(dev):
        precisions.remove("bf16")
    cfg = dataclasses.replace(get_profile("ci").train, device=str(dev))
    for precision in precisions:
        for channels_last in (True, False):
            c = dataclasses.replace(cfg, precision=precision, channels_last=channels_last,
                                    epochs=1, max_steps=3, knn_every=0, progress=False)
            with tempfile.TemporaryDirectory() as out, _quiet():
                h = fit(dataclasses.replace(c, out=out)).history
            loss = h[-1]["loss"]
            assert loss == loss and abs(loss) < 100, (precision, loss)
            r[f"fit_loss_{precision}_cl{int(channels_last)}"] = loss

    f = build_encoder("small_cnn", width=8)  # lives on the CPU
    h = extract_features(f, x, 16, device=dev)  # eval --baselines' crash, fixed in issue 8
    assert h.shape == (64, 64)
    r["extract_features_from_cpu_encoder"] = "ok"
    ds = ImageTensorDataset(x, torch.arange(64) % 2).to(dev)
    assert ds.images.device.type == dev.type
    return r


def augment(ctx: Ctx) -> dict:
    r = {}
    dev = ctx.device
    for size, batch in ((32, ctx.size(512, 64)), (96, ctx.size(256, 16))):
        x = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, device=dev)
        aug = BatchedAugment(size, strength=0.5)
        g = torch.Generator(device=dev).manual_seed(0)
        gpu = bench.images_per_second(lambda aug=aug, x=x, g=g: aug(x, generator=g),
                                      ctx.size(50, 3), 3, batch, dev)
        per_image = simclr_transform(size, strength=0.5)
        xc = x.cpu()
        n = min(batch, ctx.size(256, 16))
        t0 = time.perf_counter()
        for i in range(n):
            per_image(xc[i])
        cpu = n / (time.perf_counter() - t0)
        r[f"{size}px"] = {"batched_views_per_s": gpu, "per_image_cpu_views_per_s": cpu,
                          "ratio": gpu / cpu, "batch": batch}
    return r


def bench_matrix(ctx: Ctx) -> dict:
    dev = ctx.device
    cfg = dataclasses.replace(get_profile("gpu").train, dataset="shapes", device=str(dev),
                              batch_size=ctx.size(512, 32), image_size=32)
    if ctx.dry:
        cfg = dataclasses.replace(cfg, encoder="small_cnn", encoder_width=8)
    steps, warmup = ctx.size(30, 2), ctx.size(5, 1)
    images = load_dataset("shapes", "train", size=steps * cfg.batch_size, progress=False).images
    combos = [(p, cl, False) for p in ("fp32", "bf16", "fp16") for cl in (True, False)]
    combos.append(("bf16", True, True))
    if dev.type != "cuda":
        combos = [("fp32", False, False), ("fp32", False, True)] if not ctx.dry else \
            [("fp32", False, False)]
    elif not native_bf16(dev):
        combos = [c for c in combos if c[0] != "bf16"] + [("fp16", True, True)]
    rows = []
    for precision, channels_last, compile_ in combos:
        c = dataclasses.replace(cfg, precision=precision, channels_last=channels_last,
                                compile=compile_)
        fast = bench.fast_path_rate(c, steps)
        raw = bench.raw_rate(c, images, steps, warmup)
        rows.append({"precision": precision, "channels_last": channels_last,
                     "compile": compile_, "fast_images_per_s": fast,
                     "raw_images_per_s": raw, "fast/raw": fast / raw})
        print(f"  bench {precision} channels_last={channels_last} compile={compile_}: "
              f"fast {fast:.0f}, raw {raw:.0f} images/s, (a)/(d) {fast / raw:.2f}", flush=True)
    return {"encoder": cfg.encoder, "batch_size": cfg.batch_size, "steps": steps, "rows": rows}


def epoch(ctx: Ctx) -> dict:
    dev = ctx.device
    n = ctx.size(50_000, 256)
    cfg = dataclasses.replace(get_profile("gpu").train, dataset="shapes", train_size=n,
                              epochs=2, knn_every=0, device=str(dev), progress=False,
                              out=str(ctx.out / "run"),
                              batch_size=ctx.size(512, 32))
    if ctx.dry:
        cfg = dataclasses.replace(cfg, encoder="small_cnn", encoder_width=8)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.perf_counter()
    history = fit(cfg, overwrite=True).history
    r = {"images": n, "batch_size": cfg.batch_size, "encoder": cfg.encoder,
         "precision": cfg.precision, "wall_s_including_setup": time.perf_counter() - t0,
         "epochs": [{"epoch": h["epoch"], "time_s": h["time_s"],
                     "images_per_s": h["images_per_s"], "loss": h["loss"],
                     "knn_top1": h.get("knn_top1")} for h in history]}
    if dev.type == "cuda":
        r["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated(dev) / 2**30
        r["gpu"] = torch.cuda.get_device_name(dev)
    return r


def evaluation(ctx: Ctx) -> dict:
    ckpt = ctx.out / "run" / "last.pt"
    if not ckpt.exists():
        raise RuntimeError("the epoch step did not leave a run to evaluate")
    cmd = [sys.executable, "-m", "simclr_lib", "eval", "--checkpoint", str(ckpt),
           "--baselines", "--profile", "ci", "--device", ctx.device.type, "--no-progress"]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    (ctx.out / "eval.txt").write_text(p.stdout + p.stderr)
    if p.returncode != 0:
        raise RuntimeError(f"eval exited {p.returncode}: {p.stderr[-2000:]}")
    metrics = json.loads((ctx.out / "run" / "metrics.json").read_text())
    return {"seconds": time.perf_counter() - t0, "command": " ".join(cmd[1:]),
            "knn_top1": metrics["knn_top1"], "linear_top1": metrics["linear_top1"],
            "baselines": {k: v.get("linear_top1", v.get("top1"))
                          for k, v in metrics["baselines"].items()}}


def resume(ctx: Ctx) -> dict:
    dev = ctx.device
    cfg = dataclasses.replace(get_profile("ci").train, device=str(dev), epochs=2,
                              train_size=ctx.size(4096, 256), batch_size=ctx.size(64, 32),
                              knn_every=0,
                              progress=False)
    steps = cfg.train_size // cfg.batch_size
    with tempfile.TemporaryDirectory() as tmp, _quiet():
        whole = fit(dataclasses.replace(cfg, out=f"{tmp}/whole")).history
        real, calls = train_module.train_step, {"n": 0}

        def interrupting(*args, **kwargs):
            loss = real(*args, **kwargs)
            calls["n"] += 1
            if calls["n"] == steps + 3:  # epoch 2, step 3
                os.kill(os.getpid(), signal.SIGINT)
            return loss

        train_module.train_step = interrupting
        try:
            fit(dataclasses.replace(cfg, out=f"{tmp}/cut"))
            raise AssertionError("the run was not interrupted")
        except TrainingInterrupted:
            pass
        finally:
            train_module.train_step = real
        resumed = fit(None, resume=f"{tmp}/cut").history
    a = torch.tensor([h["loss"] for h in whole])
    b = torch.tensor([h["loss"] for h in resumed])
    torch.testing.assert_close(b, a, rtol=1e-2, atol=1e-3)
    return {"whole": a.tolist(), "resumed": b.tolist(),
            "max_rel_diff": float(((a - b).abs() / a.abs()).max())}


STEPS = {"cuda_paths": cuda_paths, "augment": augment, "bench": bench_matrix, "epoch": epoch,
         "eval": evaluation, "resume": resume}


def _machine(dev: torch.device) -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__,
            "cpu_cores": bench.usable_cores(), "device": str(dev)}
    try:
        import torchvision
        info["torchvision"] = torchvision.__version__
    except ImportError:  # pragma: no cover
        pass
    if dev.type == "cuda":
        info.update(gpu=torch.cuda.get_device_name(dev),
                    capability=".".join(map(str, torch.cuda.get_device_capability(dev))),
                    cuda=torch.version.cuda)
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("out", help="directory for everything measured")
    ap.add_argument("--dry-run", action="store_true", help="the same steps, tiny, on the CPU")
    ap.add_argument("--only", nargs="+", choices=sorted(STEPS), help="run these steps only")
    args = ap.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print("error: no CUDA GPU here; use --dry-run to check the script on a CPU",
              file=sys.stderr)
        return 2
    ctx = Ctx(Path(args.out), torch.device("cpu" if args.dry_run else "cuda"), args.dry_run)
    ctx.out.mkdir(parents=True, exist_ok=True)
    results = {"machine": _machine(ctx.device), "dry_run": args.dry_run, "steps": {}}
    failed = []
    for name, step in STEPS.items():
        if args.only and name not in args.only:
            continue
        print(f"[gpu_check] {name} ...", flush=True)
        t0 = time.perf_counter()
        try:
            value, status = step(ctx), "ok"
        except Exception:  # noqa: BLE001 - every failure is recorded, the rest still runs
            value, status = traceback.format_exc(), "FAILED"
            failed.append(name)
            print(value, file=sys.stderr)
        results["steps"][name] = {"status": status, "seconds": time.perf_counter() - t0,
                                  "result": value}
        print(f"[gpu_check] {name}: {status} ({time.perf_counter() - t0:.0f} s)", flush=True)
        (ctx.out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    lines = [f"# GPU check ({'dry run, CPU' if args.dry_run else results['machine'].get('gpu')})",
             "", f"machine: {json.dumps(results['machine'])}", ""]
    for name, s in results["steps"].items():
        lines.append(f"- {name}: {s['status']} in {s['seconds']:.0f} s")
    bench_rows = results["steps"].get("bench", {}).get("result")
    if isinstance(bench_rows, dict):
        lines += ["", "| precision | channels_last | compile | (a) fast img/s | (d) raw img/s "
                  "| (a)/(d) |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['precision']} | {r['channels_last']} | {r['compile']} | "
                  f"{r['fast_images_per_s']:.0f} | {r['raw_images_per_s']:.0f} | "
                  f"{r['fast/raw']:.2f} |" for r in bench_rows["rows"]]
    ep = results["steps"].get("epoch", {}).get("result")
    if isinstance(ep, dict):
        lines += ["", "epochs: " + ", ".join(f"{e['time_s']:.1f} s ({e['images_per_s']:.0f} "
                                              f"img/s)" for e in ep["epochs"])]
    (ctx.out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if failed:
        print(f"[gpu_check] FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
