#!/usr/bin/env bash
# Build the separate virtualenv that runs Meta's Matrix (fair-matrix 0.2.6) for the
# side-by-side benchmark. Matrix is never a dependency of matrixhpc: it lives in its own
# venv (git-ignored), reached only by the driver as a subprocess.
#
#   bash benchmarks/matrix/setup_venv.sh [VENV]     # default benchmarks/matrix/.venv
#
# Why these pins: with Ray >= 2.56 every Matrix LLM turn fails silently (ray.put(...,
# _owner=...) was removed; see /work/shared/notes/matrix-reference.md), so Ray stays at
# 2.55.1. Its peer-to-peer agents need no torch, vLLM or SGLang. matplotlib is only for the
# comparison's plot (the project venv does not carry it). pip's cache is used, so a rebuild
# downloads nothing new.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${1:-$here/.venv}"
python="${PYTHON:-python3.11}"
if [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c 'import matrix, ray, hydra, zstandard' 2>/dev/null; then
    echo "Matrix venv ready: $venv"
    exit 0
fi
"$python" -m venv "$venv"
"$venv/bin/pip" install --upgrade pip
"$venv/bin/pip" install 'fair-matrix==0.2.6' hydra-core zstandard 'ray==2.55.1' matplotlib
"$venv/bin/python" -c 'import matrix, ray; print("fair-matrix ready, ray", ray.__version__)'
echo "Matrix venv ready: $venv"
