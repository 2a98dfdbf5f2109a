"""How a run trains (``--method``), behind one call: every method leaves the same trainer state, adapter and held-out
DPO metrics, so the output folder, the report and ``infer.py`` do not depend on it.

    dpo           the preference losses of loss_type, through TRL's DPOTrainer or FastDPOTrainer (the default)
    sft           TRL's SFTTrainer on the chosen answers, loss on the answer tokens (sft.py)
    sft_then_dpo  an SFT stage, then DPO against the SFT model, one adapter (two_stage.py)
    coh           Chain of Hindsight: both answers after feedback phrases, loss on the answers (coh.py)

Every method is judged alike: a DPO trainer built on the base model and the LoRA config (the *evaluator*, whose
reference is the base with the adapter off) scores the held-out pairs before and after training. For ``dpo`` it is
also the trainer; for the others, their trainers train the evaluator's own adapter, and the evaluator takes over
their steps and logs, so that run.py saves and reports it like any run.

    trainer = evaluator(args, model, peft_config, processor, train_set, eval_set)
    base_metrics = trainer.evaluate()
    train_result = train(trainer, processor, train_set, eval_set, resume)
    tuned_metrics = trainer.evaluate()
"""

from vlm_dpo.errors import UserError
from vlm_dpo.training.methods.coh import after_positive, train_coh
from vlm_dpo.training.methods.sft import train_sft
from vlm_dpo.training.methods.two_stage import split_steps, train_sft_then_dpo
from vlm_dpo.training.trainers.choose import choose_trainer

METHODS = ("dpo", "sft", "sft_then_dpo", "coh")
# method -> the function that trains by it: (args, model, processor, train_set, eval_set, resume) -> [Stage, ...],
# each stage training the evaluator's model in place (sft.Stage); dpo is the evaluator's own training.
TRAINERS = {"sft": train_sft, "coh": train_coh, "sft_then_dpo": train_sft_then_dpo}


def check_method(args) -> None:
    """Method settings that cannot work fail at parse time, naming the option."""
    if args.method not in METHODS:
        raise UserError(f"Unknown --method {args.method!r}: choose among {', '.join(METHODS)} (docs/methods.md).")
    if args.sft_steps is not None:
        if args.method != "sft_then_dpo":
            raise UserError(f"--sft_steps is the SFT stage of --method sft_then_dpo; this run's method is "
                            f"{args.method}: leave sft_steps unset.")
        if args.sft_steps < 1:
            raise UserError(f"--sft_steps must be at least 1, got {args.sft_steps}.")
    if args.method == "sft_then_dpo":
        if args.max_steps > 0:
            split_steps(args.max_steps, args.sft_steps)
        if str(args.resume_from_checkpoint).lower() not in {"none", "", "false", "no", "0"}:
            raise UserError("--resume_from_checkpoint cannot resume --method sft_then_dpo (two trainers, one after "
                            "the other): train it again, or resume a dpo, sft or coh run.")
    if args.method == "coh":
        positive, negative = args.coh_positive.strip(), args.coh_negative.strip()
        if not positive or not negative or positive == negative:
            raise UserError(f"--coh_positive {args.coh_positive!r} and --coh_negative {args.coh_negative!r} must be "
                            "two different, non-empty phrases.")


def evaluator(args, model, peft_config, processor, train_set, eval_set):
    """The DPO trainer (chosen by ``choose_trainer``) that scores the held-out pairs before and after training, its
    reference the base model (adapter off); for ``dpo`` it is also the trainer. A CoH run is scored as it is used,
    its answers after the positive phrase (``coh.after_positive``)."""
    dpo = args.method == "dpo"
    if args.method == "coh":
        eval_set = after_positive(eval_set, args.coh_positive)
    trainer_cls, _ = choose_trainer(args, model, peft_config, train_set,
                                    role="this run" if dpo else "the held-out evaluation")
    # An evaluator never trains: its training set only has to look like the data, so the held-out pairs serve.
    return trainer_cls(model=model, args=args, train_dataset=train_set if dpo else eval_set, eval_dataset=eval_set,
                       processing_class=processor, peft_config=peft_config)


def train(trainer, processor, train_set, eval_set, resume):
    """Train the evaluator's adapter by its ``args.method`` (after the base evaluation); returns transformers'
    ``TrainOutput``. For methods other than ``dpo`` the evaluator then holds the steps and the log history of the
    trainers that ran (``adopt``), so the run saves and reports it like a DPO run."""
    from transformers.trainer_utils import TrainOutput

    if trainer.args.method == "dpo":
        return trainer.train(resume_from_checkpoint=resume)
    stages = TRAINERS[trainer.args.method](trainer.args, trainer.model, processor, train_set, eval_set, resume)
    steps = adopt(trainer, stages)
    runtime = sum(stage.result.metrics.get("train_runtime", 0.0) for stage in stages)
    return TrainOutput(steps, stages[-1].result.training_loss, {"train_runtime": runtime})


def adopt(evaluator, stages) -> int:
    """The evaluator takes over the stages' steps and logs: one step count and one log history, the stages one after
    the other (each entry tagged with its stage, later stages' steps shifted by the earlier ones)."""
    offset, logs = 0, []
    for stage in stages:
        for entry in stage.trainer.state.log_history:
            logs.append({**entry, "step": entry.get("step", 0) + offset, "stage": stage.name})
        offset += stage.trainer.state.global_step
    evaluator.state.global_step = offset
    evaluator.state.epoch = stages[-1].trainer.state.epoch
    evaluator.state.log_history += logs
    return offset
