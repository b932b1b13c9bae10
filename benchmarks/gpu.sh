#!/usr/bin/env bash
# One prepared script for a lent GPU (H200). Run from the repository root:  bash benchmarks/gpu.sh
# It needs a Python with torch (CUDA) and lanic-hub installed; it says exactly what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "gpu.sh: torch with CUDA is not importable by $PY (pip install torch torchvision)" >&2; exit 1
fi
if ! $PY -c "import lanic_hub" 2>/dev/null; then
  echo "gpu.sh: installing lanic-hub (pip install -e .)" >&2
  $PY -m pip install -q -e . || { echo "gpu.sh: pip install -e . failed (offline? carry wheels)" >&2; exit 1; }
fi
mkdir -p benchmarks/results
$PY -m benchmarks.gpu_extract benchmarks/results/gpu_extract.json
