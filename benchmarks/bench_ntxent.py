"""NT-Xent forward + backward: time and peak memory, ours against the straightforward one.

The straightforward implementation builds the (2N, 2N) similarity matrix, a boolean
(2N, 2N) mask and a masked copy (``masked_fill``); ours folds 1/tau into the (2N, D)
anchors and writes -inf on the diagonal in place. Times are medians of --repeats runs
(ours and the naive one alternate); peak memory is CUDA's allocator peak on a GPU, and on a
CPU the growth of a fresh process's peak resident memory. Prints a table and appends it to
benchmarks/RESULTS.md (--no-write to skip).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simclr_lib.bench import append_results, format_ntxent, ntxent_comparison  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096, 8192],
                    help="numbers of pairs N (default: 256 ... 8192)")
    ap.add_argument("--dim", type=int, default=128, help="D, the width of z (default: 128)")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per size")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    ap.add_argument("--no-memory", action="store_true", help="skip peak memory")
    ap.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    args = ap.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    rows = ntxent_comparison(args.sizes, args.dim, args.device, args.repeats,
                             memory=not args.no_memory)
    table = format_ntxent(rows)
    print(table)
    if not args.no_write:
        command = "python benchmarks/bench_ntxent.py " + " ".join(sys.argv[1:] if argv is None
                                                                 else argv)
        append_results(ROOT / "benchmarks" / "RESULTS.md", "NT-Xent time and memory", command,
                       table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
