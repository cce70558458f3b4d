#!/usr/bin/env bash
# Builds the virtual environment of mctx (DeepMind's JAX tree search) for
# benchmarks/_mctx_search.py, kept apart from mbwrap's so that JAX never shares a process
# with torch.
#
# Usage: bash benchmarks/setup_mctx_venv.sh [VENV_DIR]
#        (default $MBWRAP_PEERS_DIR/mctx-venv, else the repository's ignored .peers/mctx-venv,
#        where benchmarks/search_speed.py and its test look for it)
#
# Without an NVIDIA GPU (no nvidia-smi) jax is installed without extras: the CPU-only jaxlib
# wheel. With one, jax[cuda12] is installed, so that `search_speed.py --device cuda` runs
# mctx on the GPU too. The benchmark picks JAX's backend itself (JAX_PLATFORMS) and sets the
# XLA thread flags per run.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-${MBWRAP_PEERS_DIR:-$REPO/.peers}/mctx-venv}"
mkdir -p "$(dirname "$VENV")"
JAX="jax"
if command -v nvidia-smi >/dev/null 2>&1; then
    JAX="jax[cuda12]"
fi

python3 -m venv "$VENV"
"$VENV/bin/pip" install --upgrade pip
"$VENV/bin/pip" install mctx "$JAX" numpy

"$VENV/bin/python" -c "import jax, mctx; \
print('mctx', mctx.__version__, 'jax', jax.__version__, jax.devices(), 'ready in $VENV')"
