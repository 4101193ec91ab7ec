#!/usr/bin/env bash
# One prepared GPU check (issue 25): see benchmarks/gpu_check.py for the parts, budgets and files.
#
#   bash benchmarks/gpu_check.sh --prepare        # here: .gpu-check/ (reference data + xautodl) to carry
#   bash benchmarks/gpu_check.sh OUT_DIR          # on the GPU machine: at most 8 minutes, 7 files in OUT_DIR
#   DRY=1 bash benchmarks/gpu_check.sh OUT_DIR    # CPU, smoke sizes, about a minute (or --dry)
#
# Installs nothing. Python: $PYTHON, else this checkout's .venv if it has torch, else python3 (on the
# device machine: its own python3 with a CUDA torch); the package is imported from this checkout.
set -u
cd "$(dirname "$0")/.." || exit 1
if [ -n "${PYTHON:-}" ]; then
    py=$PYTHON
elif [ -x .venv/bin/python ] && .venv/bin/python -c 'import torch' >/dev/null 2>&1; then
    py=.venv/bin/python
else
    py=python3
fi
if ! command -v "$py" >/dev/null 2>&1; then
    echo "missing: no python ($py): cannot run the GPU check" >&2
    exit 1
fi
export PYTHONUNBUFFERED=1
exec "$py" benchmarks/gpu_check.py "$@"
