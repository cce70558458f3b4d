#!/usr/bin/env bash
# One command on a machine with one NVIDIA GPU: the `gpu` tests, then the throughput
# benchmarks, in under 8 minutes. Writes gpu_results.md ($OUT/ when set, else
# benchmarks/) with each benchmark's Markdown table under its command, to append to
# benchmarks/RESULTS.md, and gpu_log.txt beside it.
#
#   bash benchmarks/gpu_wheels.sh      # first, where the package registries are reachable
#   bash benchmarks/gpu.sh             # on the GPU machine, .whl/ carried along
#
# Figures to record against (issue targets): the ensemble at 65,536 envs at least 10M
# imagined transitions/s; a CEM decision for 16 envs at most 3x one env's; the search at
# 16,384 roots at least mctx on the same GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-benchmarks}"
results="$out/gpu_results.md"
log="$out/gpu_log.txt"
: >"$results"
: >"$log"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg MUJOCO_GL=egl
python3 - <<'PY' | tee -a "$results"
import torch
name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
print(f"# GPU run: {name}, torch {torch.__version__}\n")
PY

# step TITLE SECONDS COMMAND...: run COMMAND under a time limit; its output goes to the
# log, and its Markdown table lines (and a failure) under TITLE in the results.
step() {
    local title=$1 limit=$2
    shift 2
    echo "## $title" >>"$results"
    printf '\n`%s`\n\n' "$*" >>"$results"
    local start=$SECONDS
    timeout "$limit" "$@" >"$out/step.txt" 2>&1
    local rc=$?
    cat "$out/step.txt" >>"$log"
    grep -E '^\|' "$out/step.txt" >>"$results"
    if [ $rc -ne 0 ]; then
        printf '\n**failed** (exit %s); the last lines:\n\n```\n' "$rc" >>"$results"
        tail -n 15 "$out/step.txt" >>"$results"
        printf '```\n' >>"$results"
    fi
    printf '\n(%s s)\n\n' "$((SECONDS - start))" >>"$results"
    echo "$title: exit $rc, $((SECONDS - start)) s"
    rm -f "$out/step.txt"
}

step "gpu tests" 180 python3 -m pytest -q -p no:cacheprovider -m gpu tests/gpu \
    -o addopts="--import-mode=importlib" -rfE --tb=line
# The summary line of pytest is not a table: keep it.
tail -n 3 "$log" | grep -E 'passed|failed|error' | sed 's/^/    /' >>"$results"
step "imagined transitions/s, HalfCheetah-sized ensemble" 90 \
    python3 benchmarks/ensemble_throughput.py --device cuda --num-envs 4096 65536 --seconds 3
step "one CEM decision at PETS's settings" 90 \
    python3 benchmarks/planning_speed.py --device cuda --mbrl-python none --num-envs 1 16
step "tree search, 1 to 16,384 roots" 150 \
    python3 benchmarks/search_speed.py --device cuda --no-pin --batches 1 64 1024 16384 \
    --simulations 50 --repeats 3 --python-max-roots 2 --python-check-roots 2 \
    --check-batch 64 --mctx-python "$(command -v python3)"
step "Dreamer gradient steps/s, size S, 64x64 pixels" 90 \
    python3 benchmarks/dreamer_pixels.py --device cuda --steps 20
echo "results: $results"
