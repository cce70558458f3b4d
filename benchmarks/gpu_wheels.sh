#!/usr/bin/env bash
# Run HERE (a machine with the package registries) before benchmarks/gpu.sh is sent to a
# GPU machine that cannot reach them: downloads into .whl/ the Python 3.12 wheels that
# mbwrap needs and such a machine's image lacks (it has torch with CUDA, jax, numpy,
# scipy, pandas, matplotlib, pytest, tensorboard, opencv...), and builds mbwrap's own
# wheel and the mbwrap-linear plugin's. About 30 MB. Keep .whl/ out of git
# (`echo /.whl/ >> .git/info/exclude`) and carry it with the run.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .whl && mkdir -p .whl
platforms=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 \
           manylinux2014_x86_64 manylinux1_x86_64; do
    platforms+=(--platform "$tag")
done
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${platforms[@]}" -d .whl \
    gymnasium farama-notifications stable-baselines3 mujoco glfw pyopengl pettingzoo \
    ale-py mctx dm-tree cma
python3 -m pip wheel --quiet --no-deps -w .whl . plugins/mbwrap-linear
rm -rf build plugins/mbwrap-linear/build  # setuptools leaves its build trees behind
du -sh .whl
ls .whl
