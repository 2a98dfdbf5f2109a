"""Scaling out and surviving faults: QLoRA's guard, checkpoints and resume, export, tensorboard, accelerate.

Fast tests run a few tiny steps in this process; the ``slow`` ones start real training subprocesses
(``accelerate launch`` with 2 CPU processes, a run killed with SIGKILL and resumed).
"""

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

import train

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "recipes/tiny.yaml")
ACCELERATE_CONFIGS = sorted((ROOT / "recipes/accelerate").glob("*.yaml"))


# --- QLoRA


def test_qlora_without_cuda_fails_before_anything_loads(tmp_path, monkeypatch):
    import vlm_dpo.training.run
    from vlm_dpo.errors import GPURequiredError

    assert not torch.cuda.is_available()

    def must_not_load(*args, **kwargs):
        raise AssertionError("nothing may load before the QLoRA check")

    monkeypatch.setattr(vlm_dpo.training.run, "load_processor", must_not_load)
    monkeypatch.setattr(vlm_dpo.training.run, "load_model", must_not_load)
    with pytest.raises(GPURequiredError, match="load_in_4bit") as error:
        train.main(["--config", TINY, "--load_in_4bit", "true", "--output_dir", str(tmp_path)])
    assert "CUDA" in str(error.value) and "load_in_4bit: false" in str(error.value)


def test_qlora_config_is_nf4_with_bf16_compute(monkeypatch):
    from vlm_dpo.models import quantization_config

    model_args = train.parse(["--config", TINY, "--load_in_4bit", "true"])[2]
    plain = train.parse(["--config", TINY])[2]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # only the check sees a GPU
    config = quantization_config(model_args)
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4"
    assert config.bnb_4bit_compute_dtype == torch.bfloat16  # the recipe's float32 would make 4-bit pointless
    assert quantization_config(plain) is None


# --- checkpoints: which one to resume from


def _checkpoint(folder: Path, step: int) -> Path:
    from safetensors.torch import save_file

    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    save_file({"lora_A": torch.ones(4, 4)}, path / "adapter_model.safetensors")
    torch.save({"state": {}}, path / "optimizer.pt")
    (path / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return path


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_resume_true_picks_the_newest_complete_checkpoint(tmp_path, caplog):
    from vlm_dpo.training.checkpoints import resolve_resume

    good = _checkpoint(tmp_path, 2)
    (_checkpoint(tmp_path, 4) / "trainer_state.json").unlink()  # killed before the state was written
    _truncate(_checkpoint(tmp_path, 6) / "adapter_model.safetensors")  # killed while writing the weights
    _truncate(_checkpoint(tmp_path, 8) / "optimizer.pt")
    (_checkpoint(tmp_path, 10) / "trainer_state.json").write_text('{"global_st')
    (tmp_path / "checkpoint-12").mkdir()
    with caplog.at_level(logging.WARNING, logger="vlm_dpo.training.checkpoints"):
        assert resolve_resume("true", tmp_path) == str(good)
    log = caplog.text
    for step in (4, 6, 8, 10, 12):
        assert f"Skipping {tmp_path / f'checkpoint-{step}'}" in log
    assert f"Resuming from {good}" in log
    assert resolve_resume(str(good), tmp_path) == str(good)
    for off in (None, False, "false", ""):
        assert resolve_resume(off, tmp_path) is None


def test_resume_errors_name_the_fix(tmp_path):
    from vlm_dpo.training.checkpoints import resolve_resume

    with pytest.raises(FileNotFoundError, match="no complete checkpoint-N folder.*--save_steps"):
        resolve_resume("true", tmp_path / "missing")
    (_checkpoint(tmp_path, 4) / "trainer_state.json").unlink()
    with pytest.raises(FileNotFoundError, match="1 found, none complete"):
        resolve_resume("true", tmp_path)
    with pytest.raises(FileNotFoundError, match="not a complete checkpoint: no trainer_state.json"):
        resolve_resume(str(tmp_path / "checkpoint-4"), tmp_path)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        resolve_resume(str(tmp_path / "checkpoint-99"), tmp_path)


def test_resume_true_without_checkpoint_fails_before_training(tmp_path):
    start = time.monotonic()
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        train.main(["--config", TINY, "--output_dir", str(tmp_path), "--resume_from_checkpoint", "true"])
    assert time.monotonic() - start < 10


# --- one short run: checkpoint rotation and tensorboard


@pytest.fixture(scope="module")
def checkpointed(tmp_path_factory, tiny_model_dir):
    out = tmp_path_factory.mktemp("ckpt") / "run"
    train.main(["--config", TINY, "--output_dir", str(out), "--dataset_name", "synthetic:24", "--max_steps", "3",
                "--eval_strategy", "no", "--save_strategy", "steps", "--save_steps", "1", "--save_total_limit", "2",
                "--report_to", "tensorboard"])
    return out


def test_checkpoints_every_save_steps_and_save_total_limit(checkpointed):
    from vlm_dpo.training.checkpoints import incomplete_reason

    assert sorted(p.name for p in checkpointed.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-3"]
    for folder in checkpointed.glob("checkpoint-*"):
        assert incomplete_reason(folder) is None
        assert (folder / "adapter_model.safetensors").is_file() and (folder / "optimizer.pt").is_file()


def test_tensorboard_logs_offline(checkpointed):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = list((checkpointed / "runs").rglob("events.out.tfevents.*"))
    assert events, "report_to tensorboard writes OUTPUT_DIR/runs/*/events.out.tfevents.*"
    tags = set()
    for path in events:
        accumulator = EventAccumulator(str(path))
        accumulator.Reload()
        tags |= set(accumulator.Tags()["scalars"])
    assert {"train/loss", "train/rewards/accuracies", "eval/loss"} <= tags


# --- export


@pytest.fixture(scope="module")
def perturbed_adapter(tmp_path_factory, tiny_model_dir):
    """An adapter whose every LoRA matrix is random (B is zero at init: a merge of that proves nothing)."""
    from peft import get_peft_model
    from trl import ModelConfig

    from vlm_dpo.models import load_model, load_processor, lora_config

    out = tmp_path_factory.mktemp("adapter")
    model = get_peft_model(load_model("tiny-smolvlm", "float32"), lora_config(ModelConfig(lora_r=4), vision=True))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    model.save_pretrained(out)
    load_processor("tiny-smolvlm").save_pretrained(out)
    (out / "run_config.yaml").write_text(yaml.safe_dump({"model_name_or_path": "tiny-smolvlm", "dtype": "float32"}))
    return out


def test_export_help(capsys):
    from vlm_dpo import cli

    with pytest.raises(SystemExit) as code:
        cli.main(["export", "--help"])
    assert code.value.code == 0
    text = capsys.readouterr().out
    assert all(flag in text for flag in ("--adapter", "--output", "--dtype", "--model"))


def test_merged_model_generates_like_base_plus_adapter(perturbed_adapter, tmp_path):
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from vlm_dpo import cli
    from vlm_dpo.eval.generate import generate_answers
    from vlm_dpo.models.adapter import load_tuned

    merged_dir = tmp_path / "merged"
    assert cli.main(["export", "--adapter", str(perturbed_adapter), "--output", str(merged_dir)]) == 0
    assert not list(merged_dir.glob("adapter_*")), "a plain model, no adapter files"
    merged = AutoModelForImageTextToText.from_pretrained(merged_dir).eval()
    processor = AutoProcessor.from_pretrained(merged_dir)
    assert not any("lora_" in key for key in merged.state_dict())

    tuned, tuned_processor, _ = load_tuned(perturbed_adapter)
    images = [Image.new("RGB", (40, 30), color) for color in ("red", "blue", "green")]
    questions = ["What color is the circle?", "Describe the image.", "How many squares are there?"]
    kwargs = dict(max_new_tokens=12, batch_size=3)
    expected = generate_answers(tuned, tuned_processor, images, questions, **kwargs)
    base = generate_answers(tuned, tuned_processor, images, questions, use_adapter=False, **kwargs)
    assert expected != base, "the adapter must change the answers, or this test could not fail"

    class NoAdapter(torch.nn.Module):  # generate_answers' interface for a plain model
        def __init__(self, model):
            super().__init__()
            self.model, self.device = model, model.device

        def generate(self, **kwargs):
            return self.model.generate(**kwargs)

    assert generate_answers(NoAdapter(merged), processor, images, questions, **kwargs) == expected

    ids = torch.tensor([[1, 20, 30, 40, 50]])
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=ids).logits, tuned(input_ids=ids).logits, atol=1e-4, rtol=1e-4)


def test_export_dtype(perturbed_adapter, tmp_path):
    from transformers import AutoModelForImageTextToText

    from vlm_dpo import cli

    cli.main(["export", "--adapter", str(perturbed_adapter), "--output", str(tmp_path / "bf16"), "--dtype", "bfloat16"])
    assert AutoModelForImageTextToText.from_pretrained(tmp_path / "bf16", dtype="auto").dtype == torch.bfloat16


# --- accelerate configs


@pytest.mark.parametrize("config", ACCELERATE_CONFIGS, ids=lambda p: p.name)
def test_accelerate_configs_load(config):
    from accelerate.commands.config.config_args import load_config_from_file

    loaded = load_config_from_file(str(config))
    assert loaded.compute_environment.value == "LOCAL_MACHINE"
    assert loaded.num_processes >= 2


def test_every_kind_of_launch_has_a_config():
    names = {p.name for p in ACCELERATE_CONFIGS}
    assert {"ddp.yaml", "fsdp.yaml", "deepspeed_zero2.yaml", "deepspeed_zero3.yaml", "multi_node.yaml"} <= names


# --- slow: real subprocesses


def _env():
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TQDM_DISABLE": "1",
            "PYTHONPATH": str(ROOT)}


def _train_command(processes: int) -> list[str]:
    if processes == 1:
        return [sys.executable, str(ROOT / "train.py")]
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ROOT / "recipes/accelerate/cpu.yaml"),
            "--num_processes", str(processes), "--main_process_port", "29533", str(ROOT / "train.py")]


def _run(processes: int, args: list[str]) -> subprocess.CompletedProcess:
    result = subprocess.run(_train_command(processes) + ["--config", TINY, *args], env=_env(), cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


# 6 steps of global batch 8 over 48 training pairs; 16 held-out pairs, a multiple of 2 x 4, so that
# distributed evaluation pads nothing.
SHORT = ["--dataset_name", "synthetic:64", "--max_steps", "6", "--eval_strategy", "no", "--eval_limit", "16",
         "--learning_rate", "1e-3"]


@pytest.mark.slow
def test_two_processes_match_one_with_the_same_global_batch(tmp_path):
    data = ["--prepared_dir", str(tmp_path / "data")]
    # The 2-process run goes first: it prepares the data (rank 0, while rank 1 waits), the other run reuses it.
    two = _run(2, [*SHORT, *data, "--output_dir", str(tmp_path / "two"),
                   "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "4"])
    one = _run(1, [*SHORT, *data, "--output_dir", str(tmp_path / "one"),
                   "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "8"])
    # Only rank 0 prints the summary and writes files.
    assert two.stdout.count("Held-out pairs:") == 1 and one.stdout.count("Held-out pairs:") == 1
    assert json.loads((tmp_path / "data" / "prep_report.json").read_text())["read"] == 64
    a = json.loads((tmp_path / "one" / "eval_results.json").read_text())
    b = json.loads((tmp_path / "two" / "eval_results.json").read_text())
    print("\n1 process x 8 vs 2 processes x 4:")
    for key in sorted(a):
        if key.startswith(("base_", "tuned_")) and "runtime" not in key and "per_second" not in key:
            print(f"  {key:<28}{a[key]:>14.6f}{b[key]:>14.6f}{abs(a[key] - b[key]):>12.2e}")
    assert a["global_step"] == b["global_step"] == 6
    assert (a["num_processes"], b["num_processes"]) == (1, 2)
    assert b["tuned_rewards_margins"] != 0.0, "training moved the adapter"
    # Same pairs in every global step (the sampler's permutation is seeded and accelerate hands rank r the
    # r-th half of each global batch of 8), and the DPO loss is a mean over pairs, so DDP's averaged gradient
    # equals the 1-process gradient: only float32 summation order differs (batches of 4 vs 8, the
    # all-reduce), ~1e-7 relative per operation. Measured: every held-out metric within 1e-7 after 6 steps.
    # 1e-4 absolute leaves room for other CPUs' kernels and still fails when the processes do not sync their
    # gradients (each trains alone: margins differ by ~2e-3, reward accuracy by 0.06, as measured here).
    for key in ("loss", "rewards_accuracies", "rewards_margins", "rewards_chosen", "logps_chosen",
                "logps_rejected"):
        for prefix in ("base", "tuned"):
            assert abs(a[f"{prefix}_{key}"] - b[f"{prefix}_{key}"]) <= 1e-4, (prefix, key, a, b)


@pytest.mark.slow
def test_kill_after_a_checkpoint_then_resume_equals_an_uninterrupted_run(tmp_path):
    from safetensors.torch import load_file

    from vlm_dpo.training.checkpoints import incomplete_reason

    args = ["--dataset_name", "synthetic:64", "--max_steps", "12", "--eval_strategy", "no", "--eval_limit", "16",
            "--save_strategy", "steps", "--save_steps", "3", "--prepared_dir", str(tmp_path / "data")]
    _run(1, [*args, "--output_dir", str(tmp_path / "straight")])

    out = tmp_path / "killed"
    process = subprocess.Popen(_train_command(1) + ["--config", TINY, *args, "--output_dir", str(out)], env=_env(),
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not list(out.glob("checkpoint-*/trainer_state.json")):
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / "eval_results.json").exists(), "killed before the end"
    done = sorted(int(p.parent.name.split("-")[1]) for p in out.glob("checkpoint-*/trainer_state.json"))
    newest = max(step for step in done if incomplete_reason(out / f"checkpoint-{step}") is None)
    # A half-written checkpoint newer than the last good one: weights cut in half, no trainer_state.json.
    half = out / f"checkpoint-{newest + 3}"
    half.mkdir(exist_ok=True)
    good_weights = (out / f"checkpoint-{newest}" / "adapter_model.safetensors").read_bytes()
    (half / "adapter_model.safetensors").write_bytes(good_weights[: len(good_weights) // 2])
    (half / "trainer_state.json").unlink(missing_ok=True)

    resumed = _run(1, [*args, "--output_dir", str(out), "--resume_from_checkpoint", "true"])
    log = resumed.stdout + resumed.stderr
    assert f"Skipping {half}" in log and f"Resuming from {out / f'checkpoint-{newest}'}" in log

    a = json.loads((tmp_path / "straight" / "eval_results.json").read_text())
    b = json.loads((out / "eval_results.json").read_text())
    wa = load_file(tmp_path / "straight" / "adapter_model.safetensors")
    wb = load_file(out / "adapter_model.safetensors")
    diff = max((wa[key] - wb[key]).abs().max().item() for key in wa)
    print(f"\nkilled after checkpoint-{newest}, resumed; max |adapter difference| = {diff:.2e}")
    for key in sorted(a):
        if key.startswith("tuned_") and "runtime" not in key and "per_second" not in key:
            print(f"  {key:<28}{a[key]:>14.6f}{b[key]:>14.6f}{abs(a[key] - b[key]):>12.2e}")
    assert b["global_step"] == a["global_step"] == 12
    assert set(wa) == set(wb)
    # Resume restores weights, optimizer, scheduler, RNG and the data order (transformers skips the
    # batches already seen), so the same arithmetic is repeated: only float noise may differ.
    assert diff <= 1e-5
    for key in ("loss", "rewards_accuracies", "rewards_margins", "logps_chosen", "logps_rejected"):
        assert abs(a[f"tuned_{key}"] - b[f"tuned_{key}"]) <= 1e-4, key
