#!/usr/bin/env bash
# One prepared script for a lent GPU (H200), under 8 minutes. Run from the repository root:
#   bash benchmarks/gpu.sh
# It needs a Python with torch (CUDA) and lanic-hub installed (it installs lanic-hub from this
# checkout if it can, and eai-sparsify from wheels in $WHEELS if given); it says exactly what is
# missing. Results: benchmarks/results/gpu_extract.json and gpu.json (read by docs/PERFORMANCE.md).
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
if ! $PY -c "import sparsify" 2>/dev/null; then
  if [ -n "${WHEELS:-}" ]; then
    $PY -m pip install -q --no-index --find-links "$WHEELS" eai-sparsify \
      || echo "gpu.sh: eai-sparsify not installable from $WHEELS; its row will say so" >&2
  else
    echo "gpu.sh: eai-sparsify not installed (set WHEELS=dir of wheels); its row will say so" >&2
  fi
fi
mkdir -p benchmarks/results
timeout 240 $PY -m benchmarks.gpu_extract benchmarks/results/gpu_extract.json \
  || echo "gpu.sh: extraction benchmark failed or ran past 240 s" >&2
timeout 240 $PY -m benchmarks.gpu_ensemble || echo "gpu.sh: ensemble benchmark failed or ran past 240 s" >&2
