"""Shared fixtures: every test runs offline, with its own cache of built models."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The suite is the CPU float32 reference: it checks the fast path against TRL to float32 round-off, and the device
# would otherwise choose bf16 weights and autocast wherever CUDA is visible. So the GPU is hidden from these tests and
# from the commands they start; the tests marked `gpu` (tests/gpu) run their checks in a process that sees it.
VISIBLE_GPUS = os.environ.get("CUDA_VISIBLE_DEVICES")
os.environ["CUDA_VISIBLE_DEVICES"] = ""
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory):
    """Build offline models once per test session, away from the user's cache."""
    cache = tmp_path_factory.mktemp("vlm_dpo_cache")
    os.environ["VLM_DPO_CACHE"] = str(cache)
    return cache


@pytest.fixture(scope="session")
def gpu_env(model_cache):
    """The environment with the GPU visible again, for a check run in its own process; skips without CUDA."""
    env = {key: value for key, value in os.environ.items() if key != "CUDA_VISIBLE_DEVICES"}
    if VISIBLE_GPUS is not None:
        env["CUDA_VISIBLE_DEVICES"] = VISIBLE_GPUS
    probe = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.is_available())"], env=env,
                           capture_output=True, text=True)
    if probe.stdout.strip() != "True":
        pytest.skip("needs a CUDA GPU (none is visible)")
    return env


@pytest.fixture(scope="session")
def tiny_model_dir(model_cache):
    from vlm_dpo.models.tiny import ensure_tiny_model

    return ensure_tiny_model()


@pytest.fixture(scope="session")
def tiny_processor(tiny_model_dir):
    from vlm_dpo.models import load_processor

    return load_processor("tiny-smolvlm")


@pytest.fixture(scope="session")
def tiny_text_model_dir(model_cache):
    from vlm_dpo.models.tiny import ensure_tiny_text_model

    return ensure_tiny_text_model()


@pytest.fixture(scope="session")
def tiny_text_tokenizer(tiny_text_model_dir):
    from vlm_dpo.models import load_processor

    return load_processor("tiny-smollm2")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, model_cache) -> Path:
    """``train.py`` on the tiny recipe for two steps (about a minute): an output folder with every file a finished
    run writes (adapter, prepared data, held-out report, plots), for the app's tests."""
    out = tmp_path_factory.mktemp("tiny_run")
    result = subprocess.run([sys.executable, "train.py", "--config", "recipes/tiny.yaml", "--max_steps", "2",
                             "--output_dir", str(out)], cwd=ROOT, env=dict(os.environ), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return out
