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


def test_collation_timing_smoke(tmp_path):
    env = {**os.environ, "VLM_DPO_CACHE": str(tmp_path), "TQDM_DISABLE": "1"}
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks/dpo_throughput.py"), "--smoke", "--collate_only",
                          "--batch", "2"], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    timings = json.loads(run.stdout.strip().splitlines()[-1])["collate_median_s"]
    assert set(timings) == {"trl", "fast_first_epoch", "fast_cached"} and all(t > 0 for t in timings.values())


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


def load_script(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_step_flops_counts_a_hand_computed_step():
    """One layer, hidden 2, intermediate 4, 1 head of 2, vocab 10, LoRA r 1; one pair (prompt 2, chosen 1,
    rejected 1): 5 packed tokens, 2 answer positions."""
    from types import SimpleNamespace

    config = SimpleNamespace(hidden_size=2, num_hidden_layers=1, num_attention_heads=1, head_dim=2,
                             num_key_value_heads=1, intermediate_size=4, vocab_size=10)
    frozen = 4 + 4 + 4 + 4 + 8 + 8 + 8  # q k v o (2x2), gate up down (2x4)
    lora = 1 * (4 * 4 + 3 * 6)  # r (in + out) per projection
    linear = 5 * (2 * frozen * 2 + 2 * lora * 3)
    attention = 2 * 2 * 5 * 5 / 2 * 2 * 3
    head = 2 * 2 * 10 * 2 * 2
    assert load_script("dpo_throughput").step_flops(config, [(2, 1, 1)], 1) == linear + attention + head


def test_gpu_wheels_keep_the_pins_and_one_cuda_build(tmp_path):
    """The wheel list comes from requirements.txt's pins; bitsandbytes keeps its CPU library and the named CUDA
    build, and its RECORD lists what it holds."""
    import zipfile

    wheels = load_script("gpu_wheels")
    pins = wheels.pins()
    assert "trl==1.16.0" in pins and any(pin.startswith("transformers==") for pin in pins)
    wheel = tmp_path / "bitsandbytes-0-py3-none-any.whl"
    names = ["bitsandbytes/__init__.py", "bitsandbytes/libbitsandbytes_cpu.so", "bitsandbytes/libbitsandbytes_cuda130.so",
             "bitsandbytes/libbitsandbytes_cuda128.so", "bitsandbytes/libbitsandbytes_rocm72.so"]
    with zipfile.ZipFile(wheel, "w") as archive:
        for name in names:
            archive.writestr(name, b"x")
        archive.writestr("bitsandbytes-0.dist-info/RECORD", "\n".join(f"{name},sha256=x,1" for name in names))
    wheels.slim_bitsandbytes(wheel, "130")
    with zipfile.ZipFile(wheel) as archive:
        kept = [name for name in archive.namelist() if not name.endswith("RECORD")]
        record = archive.read("bitsandbytes-0.dist-info/RECORD").decode()
    assert kept == names[:3]
    assert [line.split(",")[0] for line in record.splitlines()] == names[:3]
