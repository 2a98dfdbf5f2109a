"""Whether the packed fast path (``FastDPOTrainer``) can train a setup, and if not, why: a list of conditions read off
the config, the model, the LoRA config and the data, before any trainer is built. The chooser
(``choose.choose_trainer``) asks it to pick a trainer; ``FastDPOTrainer`` asks it again on the wrapped model.

    reason = fast_path_reason(args, model, peft_config, train_dataset)   # None: the fast path applies
"""

import copy
import os

from vlm_dpo.training import compat

VISION_MODEL_TYPES = ("idefics3", "smolvlm")  # one pixel row per sample, get_image_features, mm_encoder_outputs


def fast_path_reason(args, model, peft_config=None, train_dataset=None, ref_model=None) -> str | None:
    """Why the packed fast path cannot train this setup, or None. ``model`` as the trainer gets it: a plain model
    with ``peft_config``, or one already wrapped in its adapter."""
    from accelerate.utils import is_peft_model

    if why := compat.fast_path_unproven():
        return f"it relies on TRL and transformers internals proven on other versions than {why}"
    peft = model.peft_config[model.active_adapter] if is_peft_model(model) else peft_config
    if peft is None or ref_model is not None:
        return "the reference must be the base model with the adapter off (use_peft, no ref_model)"
    if peft.is_prompt_learning:
        return "prompt-learning adapters prepend virtual tokens to every sequence"
    if moe_aux_loss(args, model):
        return "the MoE router loss needs TRL's unpacked sequences"
    if sharded(args):
        return "FSDP and DeepSpeed are not supported (sharded weights cannot be hashed for the reference cache)"
    if model.config._attn_implementation not in ("eager", "sdpa"):
        return f"attn_implementation {model.config._attn_implementation} takes no 4D attention mask"
    if not has_images(train_dataset):
        return None
    if model.config.model_type not in VISION_MODEL_TYPES:
        return f"image features of {model.config.model_type} models are not supported (only Idefics3 / SmolVLM)"
    if vision_side_trained(model, None if is_peft_model(model) else peft_config):
        return "the vision tower or connector is trained, so its features cannot be computed once"
    return None


def moe_aux_loss(args, model) -> bool:
    """TRL's rule for adding the router loss (``DPOTrainer.aux_loss_enabled``), before the trainer exists."""
    text_config = model.config.get_text_config()
    coef = getattr(args, "router_aux_loss_coef", None)
    coef = getattr(text_config, "router_aux_loss_coef", 0.0) if coef is None else coef
    return hasattr(text_config, "output_router_logits") and coef != 0.0


def sharded(args) -> bool:
    """FSDP or DeepSpeed, from the config or from ``accelerate launch`` (which says so in the environment)."""
    launched = any(os.environ.get(name, "false").lower() in ("true", "1")
                   for name in ("ACCELERATE_USE_FSDP", "ACCELERATE_USE_DEEPSPEED"))
    return launched or bool(getattr(args, "fsdp", None) or getattr(args, "deepspeed", None))


def has_images(dataset) -> bool:
    """TRL's test for a vision dataset (an ``image`` or ``images`` column)."""
    if dataset is None:
        return False
    names = getattr(dataset, "column_names", None) or list(next(iter(dataset), {}))
    return "image" in names or "images" in names


def vision_side_trained(model, peft_config) -> bool:
    """Whether any vision-tower or connector weight trains. With a LoRA config not yet applied, it is applied to a
    weightless (meta-device) copy of the model: PEFT's own matching decides, at no memory cost."""
    if peft_config is not None:
        import torch
        from peft import get_peft_model

        with torch.device("meta"):
            model = get_peft_model(type(model)._from_config(copy.deepcopy(model.config)), copy.deepcopy(peft_config))
    params = model.get_base_model().model.named_parameters()
    return any(p.requires_grad for name, p in params if not name.startswith("text_model."))
