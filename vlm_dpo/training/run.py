"""``main()``: config -> data -> model + LoRA -> TRL DPOTrainer -> held-out evaluation -> a self-describing folder.

The output folder holds everything ``infer.py --adapter DIR`` needs: the PEFT adapter, the processor,
``run_config.yaml`` (the resolved config), ``eval_results.json`` (held-out metrics of the base and the
tuned model, flat keys) and ``training_curves.png``.
"""

import dataclasses
import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def load_or_prepare(data_args, model_name: str, processor, max_length: int | None, output_dir: Path):
    """A folder written by data_prep is used as is; any other source is prepared once into ``prepared_dir``."""
    from data_prep.prepare import is_prepared, load_prepared, prepare

    target = Path(data_args.dataset_name if is_prepared(data_args.dataset_name) else
                  data_args.prepared_dir or output_dir / "data")
    reusable = target == Path(data_args.dataset_name) or (
        is_prepared(target) and prepared_from(target) == data_args.dataset_name)
    if is_prepared(target) and reusable:
        check_fits(target, max_length)
    else:  # nothing there yet, or a preparation of another source: (re)prepare
        logger.info("Preparing %s into %s", data_args.dataset_name, target)
        prepare(
            data_args.dataset_name, target, processor_name=model_name, processor=processor, max_length=max_length,
            longest_edge=data_args.image_longest_edge, test_size=data_args.test_size, seed=data_args.data_seed_split,
            max_prompt_length=data_args.max_prompt_length, max_completion_length=data_args.max_completion_length,
        )
    return load_prepared(target)


def prepared_from(prepared: Path) -> str | None:
    """The ``--input`` a prepared folder was made from."""
    return json.loads((prepared / "prep_report.json").read_text()).get("input")


def check_fits(prepared: Path, max_length: int | None) -> None:
    """TRL's collator would cut sequences longer than max_length, image tokens included: refuse such data."""
    counted = json.loads((prepared / "prep_report.json").read_text()).get("max_length")
    if max_length is not None and (counted is None or counted > max_length):
        raise ValueError(
            f"{prepared} was prepared for max_length={counted}, but training uses max_length={max_length}: longer "
            f"pairs would be truncated. Prepare it again with --max_length {max_length}, or raise max_length."
        )


def flat_eval_metrics(metrics: dict, prefix: str) -> dict:
    """``eval_rewards/accuracies`` -> ``{prefix}_rewards_accuracies``; numbers only."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, (int, float)) and key.startswith("eval_"):
            out[f"{prefix}_{key.removeprefix('eval_').replace('/', '_')}"] = value
    return out


def resolved_config(*configs) -> dict:
    """One flat mapping of every field of every config, as ``run_config.yaml`` stores it."""
    merged = {}
    for config in configs:
        values = config.to_dict() if hasattr(config, "to_dict") else dataclasses.asdict(config)
        merged.update({key: value for key, value in values.items() if not key.startswith("_")})
    return json.loads(json.dumps(merged, default=str))  # plain YAML-safe types


def main(data_args, training_args, model_args):
    """Train and evaluate; returns the trainer, whose model holds the tuned adapter."""
    import yaml
    from accelerate import PartialState
    from transformers import set_seed
    from trl import DPOTrainer

    from vlm_dpo.models import is_vision_processor, load_model, load_processor, lora_config, quantization_config
    from vlm_dpo.report.plots import plot_training_curves
    from vlm_dpo.training.checkpoints import resolve_resume

    set_seed(training_args.seed)
    output_dir = Path(training_args.output_dir)
    model_name = model_args.model_name_or_path
    quantization = quantization_config(model_args)  # no GPU for QLoRA: fail before anything loads
    resume = resolve_resume(training_args.resume_from_checkpoint, output_dir)  # and before training a missing one
    processor = load_processor(model_name)  # first: a missing hub fails here, in seconds
    vision = is_vision_processor(processor)
    if vision and data_args.processor_longest_edge:
        processor.image_processor.size = {"longest_edge": data_args.processor_longest_edge}

    with PartialState().main_process_first():  # under accelerate launch: rank 0 prepares, the others then load
        splits = load_or_prepare(data_args, model_name, processor, training_args.max_length, output_dir)
    train_set = splits[data_args.dataset_train_split]
    eval_set = splits[data_args.dataset_test_split]
    if data_args.eval_limit:
        eval_set = eval_set.select(range(min(data_args.eval_limit, len(eval_set))))

    model = load_model(model_name, model_args.dtype, model_args.attn_implementation, vision=vision,
                       quantization=quantization)
    peft_config = lora_config(model_args, vision) if model_args.use_peft else None
    if "ddpo" in training_args.loss_type:  # RLHF-V's dense DPO: weighted log-probs, packed where fast_dpo is on
        from vlm_dpo.training.trainers.ddpo import DDPOTrainer as DPOTrainer
    elif training_args.fast_dpo:  # one vision pass per image, one prompt pass per pair, cached reference
        from vlm_dpo.training.trainers.fast_dpo import FastDPOTrainer as DPOTrainer
    trainer = DPOTrainer(
        model=model, args=training_args, train_dataset=train_set, eval_dataset=eval_set,
        processing_class=processor, peft_config=peft_config,
    )
    keep_tensorboard_in_output_dir(trainer, output_dir)
    # Before any step the adapter is a no-op, so this is the base model (rewards are 0 by definition:
    # the reference is the base itself); its log-probs are the baseline the tuned model is judged against.
    base_metrics = trainer.evaluate()
    undo_eval_only_preparation(trainer)  # or, under accelerate launch, no process would sync its gradients
    train_result = trainer.train(resume_from_checkpoint=resume)
    tuned_metrics = trainer.evaluate()

    if not trainer.is_world_process_zero():
        return trainer
    trainer.save_model(str(output_dir))  # adapter (or full weights without LoRA) + processor
    results = {
        "n_train_pairs": len(train_set), "n_eval_pairs": len(eval_set),
        "train_runtime_s": round(train_result.metrics.get("train_runtime", 0.0), 2),
        "global_step": trainer.state.global_step, "num_processes": trainer.accelerator.num_processes,
        **flat_eval_metrics(base_metrics, "base"), **flat_eval_metrics(tuned_metrics, "tuned"),
    }
    (output_dir / "eval_results.json").write_text(json.dumps(results, indent=2))
    (output_dir / "log_history.json").write_text(json.dumps(trainer.state.log_history, indent=2))
    with open(output_dir / "run_config.yaml", "w") as handle:
        yaml.safe_dump(resolved_config(data_args, model_args, training_args), handle, sort_keys=False)
    plot_training_curves(trainer.state.log_history, output_dir / "training_curves.png")
    if data_args.report_pairs:
        report = write_generation_report(trainer, processor, eval_set, data_args, output_dir)
        # What the answers say about the scenes (where the data has a ground truth), next to the DPO metrics.
        results |= {key: value for key, value in report.items()
                    if ("hallucination" in key or "attribute_accuracy" in key) and value is not None}
        results["n_report_pairs"] = report["n"]
        (output_dir / "eval_results.json").write_text(json.dumps(results, indent=2))
    print_summary(output_dir, results)
    return trainer


def write_generation_report(trainer, processor, eval_set, data_args, output_dir: Path) -> dict:
    """Base and tuned answer held-out pairs; OUTPUT_DIR/report/ gets metrics.json, report.html and plots.
    Returns the report's metrics."""
    from vlm_dpo.eval.compare import compare_on_dataset

    pairs = eval_set.select(range(min(data_args.report_pairs, len(eval_set))))
    model = trainer.accelerator.unwrap_model(trainer.model).eval()
    metrics, _, _ = compare_on_dataset(
        model, processor, pairs, output_dir / "report", beta=trainer.args.beta,
        max_new_tokens=data_args.report_max_new_tokens, batch_size=trainer.args.per_device_eval_batch_size,
        run_dir=output_dir, details={"adapter": str(output_dir), "split": data_args.dataset_test_split},
    )
    return metrics


def undo_eval_only_preparation(trainer) -> None:
    """Let ``train()`` wrap the model in DDP after an ``evaluate()`` that came first.

    On a Trainer that has not trained, transformers' ``evaluate()`` calls accelerate's
    ``prepare_model(model, evaluation_mode=True)``: no DDP wrapper, but the model is flagged
    ``_is_accelerate_prepared``, so ``train()``'s ``accelerator.prepare`` returns it unwrapped and every
    process trains its own copy, gradients never averaged (seen here as a different grad norm on each rank;
    transformers 5.23, accelerate 1.15). Undo that preparation: the flag, the registration and the
    mixed-precision forward wrapper, which ``train()`` then applies again. FSDP and DeepSpeed are fully
    prepared (wrapped) by ``evaluate()`` and need nothing.
    """
    model = trainer.model
    if trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled or trainer.model_wrapped is not model:
        return
    if not getattr(model, "_is_accelerate_prepared", False):
        return
    if "_original_forward" in vars(model):
        model.forward = vars(model).pop("_original_forward")
    del model._is_accelerate_prepared
    trainer.accelerator._models[:] = [m for m in trainer.accelerator._models if m is not model]


def keep_tensorboard_in_output_dir(trainer, output_dir: Path) -> None:
    """``report_to: tensorboard`` logs to OUTPUT_DIR/runs/DATE_HOST.

    transformers' TensorBoardCallback only picks that folder in ``on_train_begin``; the evaluation we run
    before training would open its writer first, in ./runs of the current directory, and the training
    curves would follow it there. Setting the folder up front (its ``TENSORBOARD_LOGGING_DIR`` seam) avoids that.
    """
    from transformers.integrations.integration_utils import TensorBoardCallback, default_logdir

    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback) and callback.logging_dir is None:
            callback.logging_dir = str(output_dir / default_logdir())


def print_summary(output_dir: Path, results: dict) -> None:
    keys = ("loss", "rewards_accuracies", "rewards_margins", "logps_chosen", "logps_rejected", "hallucination_rate",
            "attribute_accuracy")
    print(f"\nHeld-out pairs: {results['n_eval_pairs']}   steps: {results['global_step']}")
    print(f"{'metric':<22}{'base':>12}{'tuned':>12}")
    for key in keys:
        base, tuned = results.get(f"base_{key}"), results.get(f"tuned_{key}")
        if base is not None and tuned is not None:
            print(f"{key:<22}{base:>12.4f}{tuned:>12.4f}")
    print(f"\nResults in {output_dir}/ (adapter, eval_results.json, training_curves.png, run_config.yaml)")
    if (output_dir / "report" / "report.html").exists():
        print(f"Report: {output_dir}/report/report.html")
    if (output_dir / "processor_config.json").exists():  # a vision-language run
        print(f'Next: python infer.py --adapter {output_dir} --image YOUR_IMAGE.png --question "Describe the image."')
    else:
        print(f'Next: python infer.py --adapter {output_dir} --prompt "YOUR QUESTION"')
