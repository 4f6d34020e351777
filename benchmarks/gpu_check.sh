#!/usr/bin/env bash
# The GPU check of the performance issue: proves the CUDA paths and measures them.
#
#   benchmarks/gpu_check.sh OUT_DIR            on a CUDA machine (under 8 minutes on one GPU)
#   benchmarks/gpu_check.sh OUT_DIR --dry-run  the same steps, tiny, on a CPU (make test)
#
# Needs only PyTorch, torchvision, matplotlib, scikit-learn and tqdm: nothing is installed
# and nothing is downloaded (PYTHONPATH=. instead of an install). Everything measured goes
# to OUT_DIR (results.json, summary.md, nvidia-smi.txt, logs, the run). With pytest present
# the tests that need CUDA (pytest -m cuda) run first. Exit status: non-zero if anything fails.
set -uo pipefail
if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
OUT=$1
shift
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
status=0

if [[ " $* " != *" --dry-run "* ]]; then
    nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true
    if "$PY" -c "import pytest" 2>/dev/null; then
        "$PY" -m pytest -q -m cuda -p no:cacheprovider tests 2>&1 | tee "$OUT/pytest_cuda.txt"
        [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
    else
        echo "pytest is not installed: the CUDA tests of tests/ are skipped; gpu_check.py's" \
             "own CUDA checks still run" | tee "$OUT/pytest_cuda.txt"
    fi
fi
"$PY" benchmarks/gpu_check.py "$OUT" "$@" 2>&1 | tee "$OUT/gpu_check.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
echo "gpu_check: $([ $status -eq 0 ] && echo passed || echo FAILED); results in $OUT"
exit $status
