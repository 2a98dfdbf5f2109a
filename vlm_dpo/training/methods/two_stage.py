"""Method ``sft_then_dpo``: the DPO pipeline's two stages in one run (Rafailov et al. 2023, section 4: the policy
starts from, and is regularised towards, the SFT model), ending with one adapter.

1. SFT: TRL's SFTTrainer trains the LoRA adapter on the chosen answers (sft.py).
2. DPO: a DPO trainer, chosen by ``choose_trainer`` (FastDPOTrainer where the fast path applies), trains the same
   adapter further, against the SFT model. TRL, given a model that already has an adapter, copies it into a frozen
   ``ref`` adapter and takes the reference log-probs from it; the fast path hashes that copy into the key of its
   reference cache. Without LoRA, TRL copies the whole SFT model as the reference instead.

The DPO stage continues the SFT adapter rather than merging it into the base and starting a second one: the run
still ends as one LoRA adapter on the original base, which infer.py, export and the report load like any other; the
policy starts from the SFT model and the reference is the SFT model either way. The frozen copy is deleted after
the stage, so the held-out evaluation's reference is the base again, as for every method.

Step budget: the total is ``max_steps``, or the optimizer steps ``num_train_epochs`` makes. The SFT stage runs
``sft_steps`` of them (default: half, rounded down), the DPO stage the rest; each stage has its own learning-rate
schedule (warm-up included) over its own steps, with the run's settings. Only the DPO stage saves checkpoints.
"""

import copy
import math

from vlm_dpo.errors import UserError
from vlm_dpo.training.methods.sft import Stage, chosen_rows, fine_tune
from vlm_dpo.training.trainers.choose import choose_trainer


def split_steps(total: int, sft_steps: int | None) -> tuple[int, int]:
    """(SFT steps, DPO steps) of a ``total`` budget: ``sft_steps``, or half of it; each stage at least one step."""
    sft = total // 2 if sft_steps is None else sft_steps
    if not 1 <= sft < total:
        raise UserError(f"--method sft_then_dpo splits its {total} optimizer steps between an SFT and a DPO stage of "
                        f"at least one step each, and sft_steps {sft} leaves "
                        f"{'no SFT stage' if sft < 1 else 'no DPO stage'}: train for 2 steps or more, or set "
                        f"--sft_steps between 1 and {total - 1}.")
    return sft, total - sft


def budget(args, n_train: int) -> int:
    """The run's optimizer steps: ``max_steps``, or those ``num_train_epochs`` makes, counted as transformers' Trainer
    counts them (batches per epoch over all processes, then gradient accumulation)."""
    if args.max_steps > 0:
        return args.max_steps
    batches = math.ceil(n_train / (args.per_device_train_batch_size * args.world_size))
    return math.ceil(args.num_train_epochs * max(batches // args.gradient_accumulation_steps, 1))


def train_sft_then_dpo(args, model, processor, train_set, eval_set, resume):
    """SFT for ``sft_steps``, then DPO against the SFT model for the rest, both on the evaluator's ``model``."""
    from accelerate.utils import is_peft_model

    sft_steps, dpo_steps = split_steps(budget(args, len(train_set)), args.sft_steps)
    sft = fine_tune(args, model, processor, chosen_rows(train_set), chosen_rows(eval_set), name="sft",
                    max_steps=sft_steps, save_strategy="no")
    stage_args = copy.copy(args)
    stage_args.max_steps = dpo_steps
    trainer_cls, _ = choose_trainer(stage_args, model, None, train_set, role="the DPO stage")
    trainer = trainer_cls(model=model, args=stage_args, train_dataset=train_set, eval_dataset=eval_set,
                          processing_class=processor)
    peft = is_peft_model(model)
    if peft and "ref" not in model.peft_config:  # TRL skips the copy only for PEFT < 0.20 with target_parameters
        raise UserError("method sft_then_dpo needs TRL to copy the SFT adapter as the DPO reference, which it did not "
                        "here (an old peft with lora_target_parameters): upgrade peft, or use --method dpo.")
    result = trainer.train()
    if peft:
        model.delete_adapter("ref")  # the held-out evaluation, and the saved folder, are the one tuned adapter
    return [sft, Stage("dpo", trainer, result)]
