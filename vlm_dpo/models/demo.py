"""``demo-smolvlm``: SmolVLM's architecture on the real SmolLM2-135M-Instruct, with a small vision side.

Why: the offline demo must show DPO doing what RLHF-V does (fewer hallucinated details), which a
random tiny model cannot. The language model is the real SmolLM2-135M-Instruct (SmolVLM-256M's own
decoder, converted offline by ``vlm_dpo.models.smollm2``); the vision side is a small SigLIP-style encoder
and SmolVLM's pixel-shuffle connector, in ``Idefics3ForConditionalGeneration`` with SmolVLM's special
tokens, chat template and image-splitting processor, so the demo and the real SmolVLM share one
code path.

Sizes (chosen by measuring on a 2-core CPU, see docs/demo.md): images are scaled to a
128px longest edge and split into 64px tiles (at most 2x2 + 1 global), patches of 8px, pixel
shuffle 4 (as SmolVLM), so 4 image tokens per tile and at most 20 per image; 3 encoder layers, 128 wide.

This module builds the model; its vision side gets the stage-1 weights (~3 MB, the language model is not among
them) shipped in ``vlm_dpo/models/assets/``, so a fresh clone only converts the GGUF file and loads them. How
those weights are trained (stage 0, vision pre-training; stage 1, connector SFT) is ``vlm_dpo.training.demo_stages``.

    vlm-dpo build-model demo-smolvlm            # build (or reuse) the cached model, print its folder
    vlm-dpo build-demo-stage1                   # retrain the shipped weights (~16 min on 2 cores)
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path

from vlm_dpo.errors import MissingInputError
from vlm_dpo.models.cache import default_cache_dir, save_atomically
from vlm_dpo.models.smollm2 import ensure_smollm2
from vlm_dpo.models.tiny import SMOLVLM_CHAT_TEMPLATE, SPECIAL_TOKENS

logger = logging.getLogger(__name__)

DEMO_MODEL_NAME = "demo-smolvlm"
TILE = 64  # max_image_size: one tile
LONGEST_EDGE = 128  # images are scaled to this longest edge: at most 2x2 tiles + 1 global
PATCH = 8
SCALE_FACTOR = 4  # SmolVLM's pixel shuffle
IMAGE_SEQ_LEN = (TILE // PATCH) ** 2 // SCALE_FACTOR**2  # 4 tokens per tile
VISION_CONFIG = dict(hidden_size=128, intermediate_size=512, num_hidden_layers=3, num_attention_heads=4,
                     image_size=TILE, patch_size=PATCH)
ASSET = Path(__file__).resolve().parent / "assets" / "demo_stage1.safetensors"
ADDED_TOKENS = [token for token in SPECIAL_TOKENS if token not in ("<|endoftext|>", "<|im_start|>", "<|im_end|>")]


# --------------------------------------------------------------------------- building blocks


def build_tokenizer(lm_folder: str | Path):
    """SmolLM2's tokenizer with SmolVLM's added tokens, special-token roles and chat template."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(lm_folder)
    tokenizer.add_special_tokens({"additional_special_tokens": ADDED_TOKENS})
    tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token = "<|im_start|>", "<end_of_utterance>", "<|im_end|>"
    tokenizer.chat_template = SMOLVLM_CHAT_TEMPLATE
    return tokenizer


def build_processor(tokenizer):
    """SmolVLM's processor, image splitting on, scaled to 64px tiles and a 128px longest edge."""
    from transformers import Idefics3Processor
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    image_processor = Idefics3ImageProcessorPil(
        do_image_splitting=True, size={"longest_edge": LONGEST_EDGE}, max_image_size={"longest_edge": TILE},
        image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
    )
    return Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=IMAGE_SEQ_LEN,
                             chat_template=SMOLVLM_CHAT_TEMPLATE)


def build_model(tokenizer, lm_folder: str | Path, seed: int = 0):
    """Idefics3 with SmolLM2-135M-Instruct as its text model; the vision side is freshly initialised."""
    import torch
    from transformers import AutoModelForCausalLM, Idefics3Config, Idefics3ForConditionalGeneration

    lm = AutoModelForCausalLM.from_pretrained(lm_folder, dtype=torch.float32)
    torch.manual_seed(seed)
    lm.resize_token_embeddings(len(tokenizer), pad_to_multiple_of=64, mean_resizing=True)
    text_config = lm.config.to_dict()
    text_config.update(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                       pad_token_id=tokenizer.pad_token_id)
    config = Idefics3Config(vision_config=VISION_CONFIG, text_config=text_config, scale_factor=SCALE_FACTOR,
                            image_token_id=tokenizer.convert_tokens_to_ids("<image>"), tie_word_embeddings=True)
    model = Idefics3ForConditionalGeneration(config)
    model.model.text_model.load_state_dict(lm.model.state_dict())
    model.tie_weights()
    # Image tokens start at the scale of SmolLM2's token embeddings (per-entry std ~0.14); the default
    # init makes them ~7x larger, and the frozen LM then spends the first hundred steps on noise.
    projection = model.model.connector.modality_projection.proj.weight
    with torch.no_grad():
        projection.normal_(0.0, lm.model.embed_tokens.weight.std().item() / projection.shape[1] ** 0.5)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model.eval()


def original_vocab_size(tokenizer) -> int:
    """Rows below this are SmolLM2's own embeddings (frozen); the rows above are the added tokens."""
    return min(tokenizer.convert_tokens_to_ids(token) for token in ADDED_TOKENS)


def stage1_state(model, tokenizer) -> dict:
    """The stage-1 weights: vision encoder, connector and the added tokens' embedding rows."""
    first = original_vocab_size(tokenizer)
    inner = model.model
    state = {f"vision_model.{k}": v for k, v in inner.vision_model.state_dict().items()}
    state |= {f"connector.{k}": v for k, v in inner.connector.state_dict().items()}
    state["added_token_embeddings"] = inner.text_model.embed_tokens.weight[first:]
    return {key: value.detach().contiguous().clone() for key, value in state.items()}


def load_stage1_state(model, tokenizer, state: dict) -> None:
    import torch

    inner = model.model
    def prefixed(prefix):
        return {k.removeprefix(prefix): v.float() for k, v in state.items() if k.startswith(prefix)}
    inner.vision_model.load_state_dict(prefixed("vision_model."))
    inner.connector.load_state_dict(prefixed("connector."))
    rows = state["added_token_embeddings"].float()
    first = original_vocab_size(tokenizer)
    with torch.no_grad():
        inner.text_model.embed_tokens.weight[first:first + rows.shape[0]] = rows


def apply_stage2(model, state: dict) -> None:
    """Merge stage-2 weights into a plain demo model: W += B @ A for each LoRA pair, the connector replaced."""
    import torch

    modules = dict(model.named_modules())
    with torch.no_grad():
        for key, a in state.items():
            if key.endswith(".lora_A"):
                path = key.removesuffix(".lora_A")
                b = state[f"{path}.lora_B"]
                modules[path].weight += b.float() @ a.float()
    connector = {k.removeprefix("connector."): v.float() for k, v in state.items() if k.startswith("connector.")}
    model.model.connector.load_state_dict(connector)


def read_stage1(path: str | Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


# --------------------------------------------------------------------------- the cached model


def assemble(stage1: str | Path | None = ASSET, stage2: str | Path | None = None):
    """(model, processor): SmolLM2 + fresh vision side, with the stage-1 weights of ``stage1`` loaded (None: left
    untrained, as ``vlm_dpo.training.demo_stages`` starts them), then, when ``stage2`` names a file written by
    ``vlm-dpo build-demo-stage2``, its instruction tuning merged in (None: stage 1 only)."""
    lm_folder = ensure_smollm2()
    tokenizer = build_tokenizer(lm_folder)
    processor = build_processor(tokenizer)
    model = build_model(tokenizer, lm_folder)
    if stage1 is not None:
        if not Path(stage1).is_file():
            raise MissingInputError(f"The demo model's stage-1 weights {stage1} are missing (they come with the "
                                    "repository): restore them with git, or rebuild them with vlm-dpo "
                                    f"build-demo-stage1 --output {stage1}")
        load_stage1_state(model, tokenizer, read_stage1(stage1))
    if stage2 is not None:
        if not Path(stage2).is_file():
            raise MissingInputError(f"The demo model's stage-2 weights {stage2} are missing (they come with the "
                                    "repository): restore them with git, or rebuild them with vlm-dpo "
                                    f"build-demo-stage2 --output {stage2}")
        apply_stage2(model, read_stage1(stage2))
    return model, processor


def _digest(path: str | Path | None) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest() if path and Path(path).is_file() else "none"


def ensure_demo_model(folder: str | Path | None = None, stage1: str | Path | None = ASSET,
                      stage2: str | Path | None = None) -> Path:
    """Build demo-smolvlm into ``folder`` once (convert the GGUF, load stage 1, merge ``stage2`` if given, save);
    later calls reuse it.

    The folder records the sha256 of the weights it was built from: after a ``git pull`` that brings new weights,
    the stale cached model is rebuilt instead of silently reused.
    """
    folder = Path(folder) if folder else default_cache_dir() / DEMO_MODEL_NAME
    digest = f"{_digest(stage1)} {_digest(stage2)}"
    stamp = folder / "stage1.sha256"
    if (folder / "config.json").exists() and (folder / "processor_config.json").exists():
        if stamp.is_file() and stamp.read_text().strip() == digest:
            return folder
        logger.warning("%s was built from other weights: rebuilding it.", folder)
        shutil.rmtree(folder)
    model, processor = assemble(stage1, stage2)

    class Stamp:  # written inside the atomic build, so a folder without it is never taken for a current one
        @staticmethod
        def save_pretrained(path):
            (Path(path) / "stage1.sha256").write_text(digest + "\n")

    return save_atomically(folder, model, processor, Stamp)
