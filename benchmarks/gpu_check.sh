#!/usr/bin/env bash
# The GPU checks in one go (about 5 minutes on one H200): the tests marked `gpu`, then the throughput benchmark on
# the SmolVLM-256M and SmolVLM-Instruct (2.2B) shapes, plain TRL against the fast path, bf16.
#
#   benchmarks/gpu_check.sh [WHEEL_DIR]
#
# WHEEL_DIR: wheels made by `python benchmarks/gpu_wheels.py WHEEL_DIR` on a machine with a package index, for a GPU
# machine without one; they are installed into a folder of their own, ahead of the machine's packages.
# Logs and each benchmark's JSON go to GPU_CHECK_OUT (default gpu-check/).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${GPU_CHECK_OUT:-gpu-check}"
mkdir -p "$out"
if [ -n "${1:-}" ]; then
    site="$(mktemp -d)"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$1"/*.whl
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1 VLM_DPO_CACHE="${VLM_DPO_CACHE:-$(mktemp -d)}"
python3 -c "import torch, transformers, trl, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__, 'peft', peft.__version__, torch.cuda.get_device_name())"
status=0
python3 -m pytest -q -m gpu tests/gpu 2>&1 | tee "$out/tests.log" || status=1
for shape in 256m 2b; do
    pairs=$([ "$shape" = 256m ] && echo 48 || echo 32)
    python3 benchmarks/dpo_throughput.py --device cuda --shape "$shape" --pairs "$pairs" --batch 8 --epochs 3 \
        > "$out/throughput-$shape.log" 2> "$out/throughput-$shape.err" || { tail -30 "$out/throughput-$shape.err"; status=1; }
    grep -v '^{' "$out/throughput-$shape.log" || true
    tail -1 "$out/throughput-$shape.log" > "$out/throughput-$shape.json"
done
exit $status
