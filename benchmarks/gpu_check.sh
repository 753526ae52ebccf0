#!/usr/bin/env bash
# GPU checks, under five minutes on one GPU: teacher fine-tune MFU, soft-labelling throughput, one
# quick study cell. Needs a Python with CUDA torch and this project's dependencies (PYTHON=...).
# Writes benchmarks/gpu/gpu_check.json (or $OUT/gpu_check.json when OUT is set, as on the device tool).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}"
OUT="${OUT:-benchmarks/gpu}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PYTHON" -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
HF_HUB_OFFLINE=1 PYTHONPATH=. timeout 290 "$PYTHON" benchmarks/gpu_check.py --out "$OUT" "$@"
