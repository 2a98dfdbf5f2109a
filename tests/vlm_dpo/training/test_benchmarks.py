"""The benchmark scripts run end to end on the tiny architecture and end with their JSON summary line."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_benchmark_smoke_prints_json_last(tmp_path):
    env = {**os.environ, "VLM_DPO_CACHE": str(tmp_path), "TQDM_DISABLE": "1"}
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks/dpo_throughput.py"), "--smoke"], capture_output=True,
                         text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["max_loss_diff"] <= 1e-4 and summary["speedup"] > 0 and summary["trl"]["steps"] == 6


def test_demo_step_benchmark_smoke_prints_json_last(tmp_path):
    env = {**os.environ, "VLM_DPO_CACHE": str(tmp_path), "TQDM_DISABLE": "1"}
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks/demo_step.py"), "--smoke", "--batches", "1",
                          "--rounds", "1", "--threads", "1", "--train_steps", "2"], capture_output=True, text=True,
                         env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["max_loss_diff"] <= 1e-5 and summary["train_loop_max_loss_diff"] <= 1e-5
    assert 0 < summary["answer_positions"] < summary["real_tokens"] <= summary["packed_positions"]
    assert set(summary["cached_median_s"]) == {"every_position", "answers_only"}
