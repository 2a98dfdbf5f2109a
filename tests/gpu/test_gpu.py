"""What only a GPU shows: the fast path in bf16 against plain TRL, 4-bit QLoRA steps, batched generation on the
device. Each check runs in its own process with the GPU visible (tests/gpu/gpu_checks.py); without CUDA they skip."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.gpu
CHECKS = Path(__file__).with_name("gpu_checks.py")
ROOT = CHECKS.parents[2]

# bf16 keeps 8 bits of mantissa: a summed answer log-prob of ~ -100 carries an error near 0.5, and the two trainers
# round in different places (packed rows, cached features), so their per-step numbers agree to what that allows.
BF16_LOSS_TOLERANCE = 2e-2
BF16_LOGP_TOLERANCE = 1.0  # summed log-probs of one answer (tens of tokens)


def run_check(name: str, gpu_env, tmp_path) -> dict:
    out = tmp_path / f"{name}.json"
    env = {**gpu_env, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), gpu_env.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, str(CHECKS), name, str(out)], cwd=ROOT, env=env, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text())


def test_bf16_fast_path_matches_plain_trl_on_the_gpu(gpu_env, tmp_path):
    result = run_check("bf16_fast_vs_trl", gpu_env, tmp_path)
    plain, fast = result["DPOTrainer"], result["FastDPOTrainer"]
    for arm in (plain, fast):
        assert arm["device"].startswith("cuda") and arm["bf16"] and arm["dtype"] == "torch.bfloat16"
    assert len(plain["logs"]) == len(fast["logs"]) == 8
    for a, b in zip(plain["logs"], fast["logs"]):
        assert math.isfinite(b["loss"]) and abs(a["loss"] - b["loss"]) <= BF16_LOSS_TOLERANCE, (a["loss"], b["loss"])
        for key in ("logps/chosen", "logps/rejected"):
            assert abs(a[key] - b[key]) <= BF16_LOGP_TOLERANCE, (key, a[key], b[key])
    # the second epoch (4 batches) reads cached features: no image processed, no pixels sent to the device
    assert fast["batches_with_pixels"][-4:] == [False] * 4
    assert not fast["checkpointing"]  # the tiny model's activations fit: checkpointing off


def test_qlora_trains_on_the_gpu(gpu_env, tmp_path):
    result = run_check("qlora", gpu_env, tmp_path)
    if "skip" in result:
        pytest.skip(result["skip"])
    assert result["four_bit"]
    assert len(result["losses"]) == 2 and all(math.isfinite(loss) for loss in result["losses"])
    assert result["lora_b_moved"] == result["lora_b"] > 0


def test_batched_generation_on_the_gpu_answers_as_one_by_one(gpu_env, tmp_path):
    result = run_check("batched_generation", gpu_env, tmp_path)
    assert result["device"].startswith("cuda")
    assert result["batched"] == result["single"] and len(result["batched"]) == 6
    assert len(set(result["batched"])) > 1  # answers differ by image and question, so a mix-up would show
