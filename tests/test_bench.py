"""The benchmarks cannot rot: each runs in a tiny setting, and NT-Xent's reference agrees."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from simclr_lib.bench import naive_nt_xent, peak_memory
from simclr_lib.cli import main
from simclr_lib.loss import nt_xent

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


@pytest.mark.parametrize("n", [2, 7, 64])
def test_naive_nt_xent_equals_ours(n):
    g = torch.Generator().manual_seed(n)
    z1, z2 = torch.randn(n, 16, generator=g), torch.randn(n, 16, generator=g)
    torch.testing.assert_close(naive_nt_xent(z1, z2, 0.3), nt_xent(z1, z2, 0.3))


def test_peak_memory_counts_at_least_the_similarity_matrix():
    n = 1024
    peak = peak_memory("naive", n, 32, torch.device("cpu"))
    if peak is None:
        pytest.skip("peak memory needs Linux's /proc")
    matrix = (2 * n) ** 2 * 4  # one (2N, 2N) float32 matrix: 16 MiB
    assert 2 * matrix < peak < 12 * matrix  # logits, softmax and gradient are all alive


def test_bench_command_runs_every_benchmark_in_a_tiny_setting(capsys):
    code = main(["bench", "--profile", "ci", "--steps", "2", "--warmup", "1", "--workers", "0",
                 "--ntxent-sizes", "8", "--batch-size", "16", "--no-memory"])
    assert code == 0
    out = capsys.readouterr().out
    for label in ("(a) fast path", "(b) classic", "(c) lightly", "(d) raw", "(a)/(d)",
                  "NT-Xent"):
        assert label in out, label


def _script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "benchmarks").glob("*.py")))
def test_benchmark_scripts_have_help(name, capsys):
    with pytest.raises(SystemExit) as e:
        _script(name).main(["--help"])
    assert e.value.code == 0 and "usage" in capsys.readouterr().out.lower()


def test_gpu_check_dry_run_passes_on_the_cpu(tmp_path):
    r = subprocess.run(["bash", "benchmarks/gpu_check.sh", str(tmp_path), "--dry-run"],
                       capture_output=True, text=True, cwd=ROOT,
                       env={**ENV, "PYTHON": sys.executable}, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert {s: v["status"] for s, v in results["steps"].items()} == {
        s: "ok" for s in ("cuda_paths", "augment", "bench", "epoch", "eval", "resume")}
    assert (tmp_path / "summary.md").read_text().startswith("# GPU check (dry run")
    assert (tmp_path / "run" / "metrics.json").exists()


def test_gpu_check_refuses_to_run_without_a_gpu_unless_dry(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert _script("gpu_check").main([str(tmp_path)]) == 2
    assert "--dry-run" in capsys.readouterr().err
