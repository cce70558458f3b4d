#!/usr/bin/env bash
# Builds mbrl-lib's own virtual environment for benchmarks/_mbrl_cem_decision.py, kept apart
# from mbwrap's (mbrl-lib pins Gymnasium 0.26.3, which mbwrap does not run on).
#
# Usage: bash benchmarks/setup_mbrl_venv.sh [VENV_DIR]
#        (default $MBWRAP_PEERS_DIR/mbrl-venv, else the repository's ignored .peers/mbrl-venv,
#        where benchmarks/planning_speed.py looks for it)
#
# Why mbrl is installed with --no-deps and its requirements listed by hand:
# * mbrl 0.2.0 pins hydra-core==1.0.3 and omegaconf<2.1. hydra-core 1.0.3 does not import on
#   Python 3.11, and omegaconf 2.0.x carries metadata (`PyYAML>=5.1.*`) that pip >= 24.1
#   rejects, so pip cannot resolve mbrl's own pins at all. hydra-core 1.3.2 with omegaconf
#   2.3.0 works; the one change it needs (`_recursive_: False` on the model and agent
#   configs, since Hydra >= 1.1 instantiates nested configs by default) is made in the
#   benchmark's config dicts, not in site-packages.
# * jupyter, pytest, sk-video and tensorboard are required by mbrl's metadata but never
#   imported by the model/planning code the benchmark uses, so they are left out
#   (`pip check` lists them, and the hydra/omegaconf mismatch, as expected).
# * torch is pinned to 2.13.0, the CPU wheel these machines carry locally (constraints.txt);
#   any other version pulls gigabytes of CUDA packages.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-${MBWRAP_PEERS_DIR:-$REPO/.peers}/mbrl-venv}"
mkdir -p "$(dirname "$VENV")"

python3 -m venv "$VENV"
"$VENV/bin/pip" install --upgrade pip
"$VENV/bin/pip" install --no-deps mbrl==0.2.0
"$VENV/bin/pip" install -c "$REPO/constraints.txt" \
    torch==2.13.0 \
    hydra-core==1.3.2 \
    omegaconf==2.3.0 \
    gymnasium==0.26.3 \
    "numpy>=1.19.1" \
    "termcolor>=1.1.0" \
    "imageio>=2.9.0" \
    "matplotlib>=3.3.1" \
    "tqdm>=4.48.2"

"$VENV/bin/python" -c "import mbrl, mbrl.models, mbrl.planning, mbrl.util.common; \
print('mbrl', mbrl.__version__, 'ready in $VENV')"
