#!/usr/bin/env bash
# Builds sheeprl's own virtual environment for benchmarks/_sheeprl_dreamer.py (sheeprl's
# DreamerV3 on CartPole-v1, timed beside mbwrap's Dreamer), kept apart from mbwrap's.
#
# Usage: bash benchmarks/setup_sheeprl_venv.sh [VENV_DIR]
#        (default $SHEEPRL_VENV, else $MBWRAP_PEERS_DIR/sheeprl-venv, else the repository's
#        ignored .peers/sheeprl-venv, where benchmarks/dreamer_speed.py looks for it)
#
# What is installed, and why no pin needed loosening:
# * sheeprl 0.8.4 (the newest on PyPI when this was written) requires torch>=2.6,
#   lightning>=2.6.1, gymnasium[classic-control]>=1.1,<2, hydra-core>=1.3.2,<1.4, numpy>=1.26,<3,
#   torchmetrics, tensorboard, moviepy, opencv-python, rich, python-dotenv. None of these
#   conflicts with torch 2.13.0, so sheeprl is installed with its own dependencies, resolved by
#   pip under constraints.txt (torch==2.13.0). `pip check` is clean. Resolved when written:
#   torch 2.13.0+cpu, lightning 2.6.6, gymnasium 1.4.0, hydra-core 1.3.8, omegaconf 2.3.1,
#   numpy 2.4.6, torchmetrics 1.9.0.
# * No extras: CartPole-v1 needs only gymnasium[classic-control] (a core dependency).
#   tensorboard, moviepy and opencv are imported by sheeprl but unused by the benchmark
#   (it turns logging and video capture off).
# * torch is pinned to 2.13.0, the CPU wheel these machines carry locally (constraints.txt);
#   any other version pulls gigabytes of CUDA packages.
# * SHEEPRL_VERSION overrides the sheeprl version (e.g. to rebuild with an older one).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-${SHEEPRL_VENV:-${MBWRAP_PEERS_DIR:-$REPO/.peers}/sheeprl-venv}}"
SHEEPRL_VERSION="${SHEEPRL_VERSION:-0.8.4}"
mkdir -p "$(dirname "$VENV")"

python3 -m venv "$VENV"
"$VENV/bin/pip" install --upgrade pip
"$VENV/bin/pip" install -c "$REPO/constraints.txt" \
    torch==2.13.0 \
    "sheeprl==$SHEEPRL_VERSION"
"$VENV/bin/pip" check

"$VENV/bin/python" -c "import sheeprl, torch, gymnasium, lightning, sheeprl.cli; \
from sheeprl.algos.dreamer_v3 import dreamer_v3; \
print('sheeprl', sheeprl.__version__, 'torch', torch.__version__, 'gymnasium', gymnasium.__version__, \
'lightning', lightning.__version__, 'ready in $VENV')"
