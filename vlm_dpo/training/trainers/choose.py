"""Which trainer runs: the one place that decides between the packed fast path and TRL's plain path.

``choose_trainer`` looks at what the trainer will be given (config, model, LoRA config, data) before anything is
built, returns the class and, when it is TRL's plain path, the reason, and logs that reason once.
``fast_path_reason`` is the list of what the fast path needs; ``FastDPOTrainer`` asks it again on the wrapped model
and refuses to be built where it does not hold.

    trainer_cls, reason = choose_trainer(training_args, model, peft_config, train_set)
"""

import copy
import logging
import os

from vlm_dpo.training import compat

logger = logging.getLogger(__name__)

VISION_MODEL_TYPES = ("idefics3", "smolvlm")  # one pixel row per sample, get_image_features, mm_encoder_outputs


def choose_trainer(args, model, peft_config, train_dataset, role: str = "this run") -> tuple[type, str | None]:
    """The trainer class for this run (FastDPOTrainer, TRL's DPOTrainer, or DDPO's packed or plain trainer) and,
    when TRL's plain path runs, why. ``role`` names what it serves in that log line (the held-out evaluation of an
    SFT run, the DPO stage of sft_then_dpo)."""
    from trl import DPOTrainer

    from vlm_dpo.training.trainers.ddpo import DDPOTrainer, FastDDPOTrainer
    from vlm_dpo.training.trainers.fast_dpo import FastDPOTrainer

    dense = "ddpo" in args.loss_type
    if dense:
        check_ddpo_seam()
    reason = fast_path_reason(args, model, peft_config, train_dataset) if args.fast_dpo else "fast_dpo is off"
    if reason is None:
        return (FastDDPOTrainer if dense else FastDPOTrainer), None
    log = logger.warning if args.fast_dpo else logger.info  # off: as asked, nothing to warn about
    log("fast_dpo: %s, so %s takes TRL's plain DPOTrainer path.", reason, role)
    return (DDPOTrainer if dense else DPOTrainer), reason


def note_sft_path(args, stage: str) -> None:
    """SFT (methods sft and coh, the first stage of sft_then_dpo) trains through TRL's SFTTrainer: the packed path
    packs preference pairs, so it has nothing to pack there; it still serves the run's DPO parts. Said as a
    warning, like any other place where fast_dpo is asked for and does not apply."""
    if args.fast_dpo:
        logger.warning("fast_dpo: the %s training runs TRL's SFTTrainer, which the packed path does not cover (it "
                       "packs preference pairs); it serves the held-out DPO evaluation%s.", stage,
                       " and the DPO stage" if args.method == "sft_then_dpo" else "")


def check_ddpo_seam() -> None:
    """DDPO weights the per-token log-probs that TRL's private ``_compute_loss`` and ``compute_ref_log_probs`` read:
    without them it would silently train plain DPO."""
    from trl import DPOTrainer

    from vlm_dpo.errors import UserError

    why = compat.unproven("trl")
    if why is None:
        return
    missing = [name for name in ("_compute_loss", "compute_ref_log_probs") if not hasattr(DPOTrainer, name)]
    if missing:
        raise UserError(f"--loss_type ddpo hooks TRL's DPOTrainer.{missing[0]}, which this {why} does not have: "
                        "install the trl version in requirements.txt, or choose another loss_type.")
    logger.warning("loss_type ddpo hooks TRL's private DPOTrainer._compute_loss: %s.", why)


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
