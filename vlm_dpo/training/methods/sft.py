"""Supervised fine-tuning through TRL's SFTTrainer: method ``sft`` (the chosen answers), the first stage of
``sft_then_dpo``, and the trainer Chain of Hindsight runs with its own collator (coh.py).

The pairs become TRL's prompt-completion rows (``prompt``; ``completion``, the chosen answer; ``images``), which TRL
renders with the chat template as its DPO collator renders a pair. With ``completion_only_loss`` the loss is the NLL
of the answer tokens and the template's end-of-turn tokens; prompt and image tokens are masked. TRL tokenizes text
rows once, up front, and collates image rows on the fly (``DataCollatorForVisionLanguageModeling``). The run's
optimiser, schedule, precision, logging and seed carry over (``sft_config``); LoRA is the evaluator's adapter, which
the SFT trainer trains in place.
"""

import contextlib
import dataclasses
import logging

from vlm_dpo.training.trainers.choose import note_sft_path

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Stage:
    """One trainer that trained the run's adapter, under a name its log entries carry (``sft``, ``dpo``, ``coh``)."""

    name: str
    trainer: object
    result: object  # transformers' TrainOutput


def sft_config(args, **changes):
    """TRL's SFTConfig with the run's TrainingArguments fields, its ``max_length`` and answer-only loss, then
    ``changes``. DPO-only fields (beta, loss_type, ...) stay behind: SFTConfig has its own ``loss_type``."""
    from transformers import TrainingArguments
    from trl import SFTConfig

    shared = {field.name for field in dataclasses.fields(TrainingArguments) if field.init}
    values = {key: value for key, value in args.to_dict().items() if key in shared}
    values["hub_token"] = args.hub_token  # to_dict() masks it
    values.update(max_length=args.max_length, completion_only_loss=True, **changes)
    return SFTConfig(**values)


def chosen_rows(pairs):
    """Prompt-completion rows for SFTTrainer: the prompt, the chosen answer as the completion, the images."""
    keep = [name for name in ("images", "prompt", "chosen") if name in pairs.column_names]
    return pairs.select_columns(keep).rename_column("chosen", "completion")


def sft_trainer(args, model, processor, train_rows, eval_rows, collator=None, **changes):
    """TRL's SFTTrainer on ``train_rows`` with the run's settings (``sft_config``); ``eval_rows`` give its held-out
    loss when the run evaluates during training."""
    from trl import SFTTrainer

    config = sft_config(args, **changes)
    return SFTTrainer(model=model, args=config, data_collator=collator, train_dataset=train_rows,
                      eval_dataset=eval_rows if config.eval_strategy != "no" else None, processing_class=processor)


def fine_tune(args, model, processor, train_rows, eval_rows, *, name: str, resume=None, collator=None,
              **changes) -> Stage:
    """Train ``model`` (the evaluator's adapter, in place) with ``sft_trainer``; the stage is called ``name``."""
    note_sft_path(args, name)
    with evaluator_forward(model):
        trainer = sft_trainer(args, model, processor, train_rows, eval_rows, collator, **changes)
        result = trainer.train(resume_from_checkpoint=resume)
    return Stage(name, trainer, result)


def train_sft(args, model, processor, train_set, eval_set, resume) -> list[Stage]:
    """Method ``sft``: the whole step budget on the chosen answers."""
    return [fine_tune(args, model, processor, chosen_rows(train_set), chosen_rows(eval_set), name="sft",
                      resume=resume)]


@contextlib.contextmanager
def evaluator_forward(model):
    """Keep the DPO evaluator's forward. Both trainers patch the model's forward with TRL's fused LM head, SFT's
    computing fewer per-token fields than DPO's metrics read (no mean logits): the evaluator's patch goes back
    once the SFT trainer is done."""
    from accelerate.utils import is_peft_model

    base = model.get_base_model() if is_peft_model(model) else model
    patched = vars(base).get("forward")
    try:
        yield
    finally:
        if patched is None:
            vars(base).pop("forward", None)
        else:
            base.forward = patched
