"""Shared fixtures: every test runs offline, with its own cache of built models."""

import os

import pytest

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
