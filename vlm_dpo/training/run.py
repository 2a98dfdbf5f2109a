"""``main()``: config -> data -> model + LoRA -> TRL DPOTrainer -> held-out evaluation -> a self-describing folder.

The output folder holds everything ``infer.py --adapter DIR`` needs: the PEFT adapter, the processor,
``run_config.yaml`` (the resolved config), ``eval_results.json`` (held-out metrics of the base and the
tuned model, flat keys) and ``training_curves.png``; both files also record, under ``data_preparation``, the
prepared data actually trained on. They are written all or nothing (``output.staged``).
"""

import dataclasses
import json
import logging
from pathlib import Path

import yaml

from data_prep.processors import at_training_size
from vlm_dpo.eval.compare import first_pairs
from vlm_dpo.eval.registry import eval_results_metrics
from vlm_dpo.models import is_vision_processor, load_model, load_processor, lora_config, quantization_config
from vlm_dpo.models.run_record import RunRecord
from vlm_dpo.report.compare import compare_on_dataset
from vlm_dpo.report.plots import plot_training_curves
from vlm_dpo.report.table import print_training_summary
from vlm_dpo.training import methods
from vlm_dpo.training.checkpoints import check_same_run, resolve_resume, run_identity
from vlm_dpo.training.compat import keep_tensorboard_in_output_dir, undo_eval_only_preparation
from vlm_dpo.training.data import load_or_prepare, preparation_record, training_splits
from vlm_dpo.training.output import single_writer, staged, weights_bytes
from vlm_dpo.training.own_negatives import add_own_negatives
from vlm_dpo.training.timing import Stopwatch, phase

logger = logging.getLogger(__name__)


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
    """Train and evaluate; returns the trainer, whose model holds the tuned adapter. One run at a time writes an
    output folder (``output.single_writer``: the main process holds its lock)."""
    from accelerate import PartialState

    if not PartialState().is_main_process:
        return _main(data_args, training_args, model_args)
    with single_writer(Path(training_args.output_dir)):
        return _main(data_args, training_args, model_args)


def _main(data_args, training_args, model_args):
    from accelerate import PartialState
    from transformers import set_seed

    clock = Stopwatch().start()  # any module adds a phase with one line: ``with phase("name"):``
    set_seed(training_args.seed)
    output_dir = Path(training_args.output_dir)
    model_name = model_args.model_name_or_path
    quantization = quantization_config(model_args)  # no GPU for QLoRA: fail before anything loads
    resume = resolve_resume(training_args.resume_from_checkpoint, output_dir)  # and before training a missing one
    main_process = PartialState().is_main_process
    saves_checkpoints = training_args.save_strategy != "no"
    if main_process and resume:  # a resume of another run fails in seconds, before its data are prepared
        check_same_run(output_dir, run_identity(data_args, training_args, model_args), resume, saves_checkpoints)
    with phase("model/processor load"):
        processor = load_processor(model_name)  # first: a missing hub fails here, in seconds
    vision = is_vision_processor(processor)
    at_training_size(processor, data_args.processor_longest_edge)

    with phase("data preparation"):
        with PartialState().main_process_first():  # under accelerate launch: rank 0 prepares, the others then load
            splits, data_folder = load_or_prepare(data_args, model_name, processor, training_args.max_length,
                                                  output_dir)
        train_set, eval_set = training_splits(splits, data_folder, data_args)  # before the model: empty data fails fast
        preparation = preparation_record(data_folder)
    if main_process:  # the data themselves, before the model loads
        check_same_run(output_dir, run_identity(data_args, training_args, model_args, preparation), resume,
                       saves_checkpoints)

    with phase("model/processor load"):
        model = load_model(model_name, model_args.dtype, model_args.attn_implementation, vision=vision,
                           quantization=quantization)
    own_negatives = None
    if data_args.own_negatives:  # before LoRA wraps it: the model is the base, whose mistakes these are
        with phase("own negatives"):
            train_set, own_negatives = add_own_negatives(
                model, processor, train_set, max_new_tokens=data_args.report_max_new_tokens,
                batch_size=training_args.per_device_eval_batch_size)
    peft_config = lora_config(model_args, vision) if model_args.use_peft else None
    # The DPO trainer that scores the held-out pairs; for --method dpo also the trainer (vlm_dpo.training.methods).
    with phase("trainer setup"):
        trainer = methods.evaluator(training_args, model, peft_config, processor, train_set, eval_set)
    keep_tensorboard_in_output_dir(trainer, output_dir)
    # Before any step the adapter is a no-op, so this is the base model (rewards are 0 by definition:
    # the reference is the base itself); its log-probs are the baseline the tuned model is judged against.
    with phase("base evaluation"):
        base_metrics = trainer.evaluate()
    # The fast path's per-pair log-probs of each evaluation (None elsewhere): the report takes them, not a second pass.
    report_logps = {"base": first_pairs(getattr(trainer, "eval_pair_logps", None), data_args.report_pairs)}
    undo_eval_only_preparation(trainer)  # or, under accelerate launch, no process would sync its gradients
    with phase("training"):
        train_result = methods.train(trainer, processor, train_set, eval_set, resume)
    with phase("tuned evaluation"):
        tuned_metrics = trainer.evaluate()
    report_logps["tuned"] = first_pairs(getattr(trainer, "eval_pair_logps", None), data_args.report_pairs)

    if not trainer.is_world_process_zero():
        return trainer
    results = {
        "n_train_pairs": len(train_set), "n_eval_pairs": len(eval_set),
        "train_runtime_s": round(train_result.metrics.get("train_runtime", 0.0), 2),
        "global_step": trainer.state.global_step, "num_processes": trainer.accelerator.num_processes,
        **flat_eval_metrics(base_metrics, "base"), **flat_eval_metrics(tuned_metrics, "tuned"),
        "data_preparation": preparation, **({"own_negatives": own_negatives} if own_negatives else {}),
    }
    # The previous run's report describes its adapter, not this one: it goes with it.
    with phase("saving"), staged(output_dir, weights_bytes(trainer.model), drop=("report",)) as stage:
        trainer.save_model(str(stage))  # adapter (or full weights without LoRA) + processor
        (stage / "eval_results.json").write_text(json.dumps(results, indent=2))
        (stage / "log_history.json").write_text(json.dumps(trainer.state.log_history, indent=2))
        config = {**resolved_config(data_args, model_args, training_args), "vision": vision,
                  "data_preparation": preparation}
        (stage / "run_config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        plot_training_curves(trainer.state.log_history, stage / "training_curves.png")
    if data_args.report_pairs:
        with phase("report"), staged(output_dir) as stage:  # phases marked inside it count apart
            report = write_generation_report(trainer, processor, eval_set, data_args, output_dir, stage / "report",
                                             report_logps,
                                             RunRecord.from_config(config, output_dir).tuned_generation)
            # What the answers say about the scenes (where the data has a ground truth), next to the DPO metrics.
            results |= eval_results_metrics(report)
            (stage / "eval_results.json").write_text(json.dumps(results, indent=2))
    print_training_summary(output_dir, results)
    clock.stop()
    results["timings_s"] = clock.seconds()
    with staged(output_dir) as stage:
        (stage / "eval_results.json").write_text(json.dumps(results, indent=2))
    print(f"\n{clock.table()}")
    return trainer


def write_generation_report(trainer, processor, eval_set, data_args, output_dir: Path, report_dir: Path,
                            given_logps: dict | None = None, tuned_generation: dict | None = None) -> dict:
    """Base and tuned answer held-out pairs; ``report_dir`` (OUTPUT_DIR/report/ once published) gets metrics.json,
    report.html and plots. Returns the report's metrics. ``given_logps``: the evaluations' per-pair log-probs of the
    report's pairs; ``tuned_generation``: how the tuned model is asked (``RunRecord.tuned_generation``)."""
    pairs = eval_set.select(range(min(data_args.report_pairs, len(eval_set))))
    model = trainer.accelerator.unwrap_model(trainer.model).eval()
    metrics, _, _ = compare_on_dataset(
        model, processor, pairs, report_dir, beta=trainer.args.beta,
        max_new_tokens=data_args.report_max_new_tokens, batch_size=trainer.args.per_device_eval_batch_size,
        run_dir=output_dir, details={"adapter": str(output_dir), "split": data_args.dataset_test_split},
        given_logps=given_logps, tuned_generation=tuned_generation,
    )
    return metrics

