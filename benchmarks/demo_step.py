"""Seconds per DPO step of the offline demo on the fast path: the LM head over every position of a packed row (what
TRL's fused head does on a CPU) against the answer positions only (``fast_dpo.answer_positions_only``), on the same
batches in one process, with the same losses.

    python benchmarks/demo_step.py                       # demo recipe, 4 batches of 8 pairs, 3 rounds
    python benchmarks/demo_step.py --dataset_name DIR    # a prepared demo folder (else prepared into a temp folder)
    python benchmarks/demo_step.py --smoke               # tiny recipe, seconds: checks the script end to end
    python benchmarks/demo_step.py --train_steps 10      # then 10 steps of the training loop per arm
    python benchmarks/demo_step.py --per_device_train_batch_size 16    # any other option: a recipe override

A measured step is a training step's model work: the packed forward (policy; in the first epoch also the reference,
adapter off) and the backward. "first epoch": an empty reference cache, as in the demo, whose 60 steps of 8 pairs
never see a pair twice; "cached reference": its log-probs come from the cache (later epochs, later runs). Image
features are computed in an untimed warm-up round (the same work in both arms). The arms alternate batch by batch, so
load from other processes slows both; the table gives the median and the fastest of the rounds, and the last line is
JSON with ``speedup_first_epoch``, ``speedup_cached`` (medians) and ``max_loss_diff``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARMS = {"every position": False, "answers only": True}  # PackedModel.answers_only


def build_trainer(overrides: list[str], work: Path, smoke: bool):
    """The recipe's FastDPOTrainer, as train.py builds it, on the recipe's (or --dataset_name's) training pairs."""
    from data_prep.processors import at_training_size
    from vlm_dpo.cli import quiet_libraries
    from vlm_dpo.models import is_vision_processor, load_model, load_processor, lora_config
    from vlm_dpo.training.data import load_or_prepare, training_splits
    from vlm_dpo.training.recipe import parse as parse_train
    from vlm_dpo.training.trainers.choose import choose_trainer
    from vlm_dpo.training.trainers.fast_dpo import FastDPOTrainer

    quiet_libraries()
    recipe = ["--config", str(ROOT / "recipes" / "tiny.yaml"), "--dataset_name", "synthetic:48"] if smoke else []
    data_args, args, model_args = parse_train([*recipe, "--output_dir", str(work / "run"), "--eval_strategy", "no",
                                               *overrides])
    name = model_args.model_name_or_path
    processor = at_training_size(load_processor(name), data_args.processor_longest_edge)
    vision = is_vision_processor(processor)
    splits, folder = load_or_prepare(data_args, name, processor, args.max_length, work / "run")
    train_set, _ = training_splits(splits, folder, data_args)
    model = load_model(name, model_args.dtype, model_args.attn_implementation, vision=vision)
    peft_config = lora_config(model_args, vision)
    cls, reason = choose_trainer(args, model, peft_config, train_set)
    if not issubclass(cls, FastDPOTrainer):
        raise SystemExit(f"this recipe does not take the fast path: {reason}")
    return cls(model=model, args=args, train_dataset=train_set, processing_class=processor, peft_config=peft_config)


def measure(trainer, batches: list[dict], rounds: int, work: Path) -> dict:
    """{arm: {"first": [(loss, s)], "cached": [(loss, s)]}}, per round and batch, the arms interleaved."""
    from vlm_dpo.training.trainers.fast_dpo import PackedModel
    from vlm_dpo.training.trainers.ref_cache import RefLogpCache

    def step(batch) -> tuple[float, float]:
        start = time.perf_counter()
        loss = trainer.compute_loss(trainer.model, batch)
        trainer.accelerator.backward(loss)
        seconds = time.perf_counter() - start
        trainer.model.zero_grad(set_to_none=True)
        trainer._metrics["train"].clear()
        return loss.item(), seconds

    trainer.model.train()
    results = {arm: {"first": [], "cached": []} for arm in ARMS}
    for count in range(rounds + 1):  # round 0 warms up
        warm_up = count == 0
        for i, batch in enumerate(batches):
            for arm, answers_only in ARMS.items():
                PackedModel.answers_only = answers_only
                trainer._ref_cache = RefLogpCache(work / f"ref-{count}-{i}-{answers_only}.jsonl")  # empty
                first, cached = step(batch), step(batch)
                if not warm_up:
                    results[arm]["first"].append(first)
                    results[arm]["cached"].append(cached)
                print(f"round {count}{' (warm-up)' * warm_up} batch {i} {arm}: first epoch {first[1]:.2f} s, "
                      f"cached reference {cached[1]:.2f} s", file=sys.stderr)
    PackedModel.answers_only = True
    return results


def train_loop(overrides: list[str], work: Path, smoke: bool, steps: int, answers_only: bool) -> dict:
    """A fresh trainer's first ``steps`` training steps, with an empty reference cache of its own: seconds per step
    (TRL's train_runtime: data, packed passes, optimizer) and the logged losses."""
    from vlm_dpo.training.trainers import fast_dpo

    trainer = build_trainer([*overrides, "--max_steps", str(steps), "--logging_steps", "1"], work, smoke)
    fast_dpo.PackedModel.answers_only = answers_only
    fast_dpo.default_cache_dir = lambda: work / f"cache-{answers_only}"
    runtime = trainer.train().metrics["train_runtime"]
    fast_dpo.PackedModel.answers_only = True
    return {"s_per_step": round(runtime / steps, 3),
            "losses": [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--batches", type=int, default=4, help="training batches measured (default 4)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds over the batches (default 3)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--smoke", action="store_true", help="tiny recipe and data: seconds")
    parser.add_argument("--train_steps", type=int, default=0, help=(
        "then also train this many steps per arm, each with a fresh model and reference cache (default: none)"))
    args, overrides = parser.parse_known_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        trainer = build_trainer(overrides, work, args.smoke)
        batches = [trainer._prepare_inputs(batch)
                   for batch in itertools.islice(trainer.get_train_dataloader(), args.batches)]
        results = measure(trainer, batches, args.rounds, work)
        del trainer
        loops = {arm: train_loop(overrides, work, args.smoke, args.train_steps, answers_only)
                 for arm, answers_only in ARMS.items()} if args.train_steps else {}

    from vlm_dpo.training.trainers.pack import pack_pairs

    rows = real = answers = 0
    for batch in batches:
        packed = pack_pairs(batch["input_ids"], batch["attention_mask"], batch["completion_mask"], 0)
        rows += packed.input_ids.numel()
        real += sum(p + c + r + 1 for p, c, r in packed.lengths)
        answers += sum(c + r for _, c, r in packed.lengths)
    summary = {"pairs_per_step": batches[0]["input_ids"].size(0) // 2, "batches": len(batches), "rounds": args.rounds,
               "threads": torch.get_num_threads(), "packed_positions": rows, "real_tokens": real,
               "answer_positions": answers}
    print(f"\n{summary['pairs_per_step']} pairs per step, {len(batches)} batches x {args.rounds} rounds, "
          f"{summary['threads']} threads; packed rows: {rows} positions ({real} real tokens), {answers} scored")
    print(f"{'seconds per step':<34}{'every position':>16}{'answers only':>14}{'ratio':>8}")
    for phase, label in (("first", "first epoch"), ("cached", "cached reference")):
        for stat, fn in (("median", statistics.median), ("fastest", min)):
            every, only = (fn([s for _, s in results[arm][phase]]) for arm in ARMS)
            summary[f"{phase}_{stat}_s"] = {"every_position": round(every, 3), "answers_only": round(only, 3)}
            print(f"{f'{label}, {stat}':<34}{every:>16.2f}{only:>14.2f}{every / only:>7.2f}x")
        summary[f"speedup_{phase if phase == 'cached' else 'first_epoch'}"] = round(
            summary[f"{phase}_median_s"]["every_position"] / summary[f"{phase}_median_s"]["answers_only"], 3)
    losses = [[loss for loss, _ in results[arm]["first"] + results[arm]["cached"]] for arm in ARMS]
    summary["max_loss_diff"] = max(abs(a - b) for a, b in zip(*losses, strict=True))
    print(f"largest loss difference between the arms: {summary['max_loss_diff']:.2e}")
    if loops:
        every, only = (loops[arm]["s_per_step"] for arm in ARMS)
        summary["train_loop_s_per_step"] = {"every_position": every, "answers_only": only}
        summary["train_loop_max_loss_diff"] = max(abs(a - b) for a, b in zip(*(loops[arm]["losses"] for arm in ARMS),
                                                                             strict=True))
        print(f"{f'training loop, {args.train_steps} steps':<34}{every:>16.2f}{only:>14.2f}{every / only:>7.2f}x"
              f"   (largest loss difference {summary['train_loop_max_loss_diff']:.2e})")
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
