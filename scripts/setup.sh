#!/usr/bin/env bash
# Create .venv and install smec-index with everything the tests and benchmarks use.
# Idempotent: a second run only checks. Installs the CPU torch wheel first when there is no
# GPU, so pip never pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${SMEC_VENV:-.venv}
stamp="$VENV/.smec-setup-$(sha1sum pyproject.toml | cut -c1-12)"
if [ -f "$stamp" ]; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    pip install torch
  else
    pip install "torch==2.13.0"
  fi
fi
pip install -e ".[embed,hnswlib,qdrant,milvus,milvus-server,dev,docs]"
touch "$stamp"
