"""Before and after two speed changes that can be measured on a CPU, side by side in one run.

1. ``OMP_WAIT_POLICY``: PyTorch's OpenMP threads either spin while they wait for work
   (``ACTIVE``, the OpenMP default) or sleep (``PASSIVE``, what ``simclr_lib`` sets). Each
   policy is read once, when torch loads, so each measurement runs in a fresh process:
   forward + backward + step of the ``cpu`` profile's model on views made beforehand, the
   two policies alternating ``--rounds`` times. Spinning threads only hurt when the cores
   are shared with other work, so run this on a busy machine too.
2. LARS: one ``torch._foreach_*`` call per parameter group (``foreach=True``, the default on
   CUDA) against the per-tensor loop (``foreach=False``), on ResNet-18's parameters and
   gradients, alternating.

NT-Xent's before and after is ``bench_ntxent.py`` (ours against the ``masked_fill`` version
the library used before). Prints a table and appends it to benchmarks/RESULTS.md
(``--no-write`` to skip).

Example:
    python benchmarks/bench_before_after.py --rounds 3
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD = """
import torch
from simclr_lib.bench import raw_rate
from simclr_lib.config import get_profile
from simclr_lib.data import load_dataset
cfg = get_profile("cpu").train
x = load_dataset("shapes", "train", size=cfg.batch_size, progress=False).images
print(raw_rate(cfg, x, steps={steps}, warmup=3))
"""


def wait_policy_rates(rounds: int, steps: int) -> dict[str, list[float]]:
    """images/s of the raw training step under each OMP_WAIT_POLICY, one process each."""
    rates: dict[str, list[float]] = {"ACTIVE": [], "PASSIVE": []}
    for _ in range(rounds):
        for policy in rates:
            env = dict(os.environ, OMP_WAIT_POLICY=policy, PYTHONPATH=str(ROOT))
            out = subprocess.run([sys.executable, "-c", CHILD.format(steps=steps)], env=env,
                                 capture_output=True, text=True, check=True)
            rates[policy].append(float(out.stdout.strip().splitlines()[-1]))
    return rates


def lars_step_times(rounds: int, steps: int) -> dict[str, list[float]]:
    """Milliseconds per LARS step on ResNet-18's parameters, per-tensor loop vs foreach."""
    import torch
    import torchvision

    from simclr_lib.optim import LARS

    times: dict[str, list[float]] = {"loop": [], "foreach": []}
    model = torchvision.models.resnet18()
    params = list(model.parameters())
    for p in params:
        p.grad = torch.randn_like(p)
    optimizers = {"loop": LARS(params, lr=0.1, weight_decay=1e-6, foreach=False),
                  "foreach": LARS(params, lr=0.1, weight_decay=1e-6, foreach=True)}
    for opt in optimizers.values():
        opt.step()
    for _ in range(rounds):
        for name, opt in optimizers.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                opt.step()
            times[name].append((time.perf_counter() - t0) / steps * 1e3)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternations (default: 3)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    parser.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args(argv)

    from simclr_lib.bench import append_results

    wait = wait_policy_rates(args.rounds, args.steps)
    lars = lars_step_times(args.rounds, args.steps)
    a, p = statistics.median(wait["ACTIVE"]), statistics.median(wait["PASSIVE"])
    lo, fe = statistics.median(lars["loop"]), statistics.median(lars["foreach"])
    load = open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else "?"
    body = "\n".join([
        f"cpu profile's model, raw fwd+bwd+step, images/s (median of {args.rounds}; "
        f"load average {' '.join(load)}):",
        f"  OMP_WAIT_POLICY=ACTIVE   {a:8.0f}   rounds {[round(r) for r in wait['ACTIVE']]}",
        f"  OMP_WAIT_POLICY=PASSIVE  {p:8.0f}   rounds {[round(r) for r in wait['PASSIVE']]}",
        f"  PASSIVE / ACTIVE         {p / a:8.2f}x",
        "LARS step on ResNet-18's parameters, ms per step:",
        f"  per-tensor loop          {lo:8.2f}",
        f"  foreach                  {fe:8.2f}",
        f"  loop / foreach           {lo / fe:8.2f}x",
    ])
    print(body)
    if not args.no_write:
        append_results(ROOT / "benchmarks" / "RESULTS.md", "Before and after on a CPU",
                       "python benchmarks/bench_before_after.py " + " ".join(argv or sys.argv[1:]),
                       body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
