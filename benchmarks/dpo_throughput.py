"""LoRA DPO throughput on a SmolVLM-256M-shaped model: plain TRL DPOTrainer against vlm_dpo's FastDPOTrainer.

The model has SmolVLM-256M-Instruct's exact architecture (SigLIP-B/16 at 512px, 64 tokens per tile after the
pixel shuffle, the SmolLM2-135M decoder) with random weights, and SmolVLM's processor with image splitting at a
1024px longest edge: every image is 4 tiles + 1 global, 320 image tokens. Both arms train the same pairs with
the same seed and settings (float32, gradient checkpointing on as TRL's default, LoRA on the language model),
each in its own subprocess so that peak memory (ru_maxrss) is per arm; the fast arm starts with an empty
reference cache, so its first epoch pays for the reference forward.

    python benchmarks/dpo_throughput.py            # 8 pairs, 2 per step, 3 epochs (about 30 min on 2 quiet CPU cores)
    python benchmarks/dpo_throughput.py --quick    # 2 pairs, 1 step per epoch (under 15 min)
    python benchmarks/dpo_throughput.py --smoke    # tiny architecture, seconds: checks the script end to end

It prints a table (median step time, pairs per second, peak memory, for the first epoch and the whole run) and,
as its last line, a JSON object with ``speedup`` (whole-run time, TRL over ours), ``first_epoch_speedup`` and
``max_loss_diff`` (largest per-step difference of the training loss).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ("Describe the image.", "What color is the shape?", "How many shapes are there?")


def smolvlm_256m(tokenizer, smoke: bool):
    """SmolVLM-256M-Instruct's configuration (or, for --smoke, vlm_dpo.models.tiny's), random weights, seed 0."""
    import torch
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration

    from vlm_dpo.models import tiny

    if smoke:
        return tiny.build_model(tokenizer, seed=0)
    config = Idefics3Config(
        vision_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                           image_size=512, patch_size=16),
        text_config=dict(model_type="llama", hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, head_dim=64, vocab_size=49280,
                         max_position_embeddings=8192, rope_parameters={"rope_type": "default", "rope_theta": 100000.0},
                         rms_norm_eps=1e-5, tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id),
        scale_factor=4, image_token_id=tokenizer.convert_tokens_to_ids("<image>"), tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    return Idefics3ForConditionalGeneration(config)


def processor_for(smoke: bool):
    """SmolVLM's processor layout (vlm_dpo.models.tiny's tokenizer and template), 512px tiles, 1024px longest edge."""
    from vlm_dpo.models import tiny

    processor = tiny.build_processor()
    if not smoke:
        processor.image_processor.size = {"longest_edge": 1024}
        processor.image_processor.max_image_size = {"longest_edge": 512}
        processor.image_seq_len = 64
    return processor


def pairs(n: int, side: int):
    """n preference pairs on synthetic scenes, squared to side x side so that every image splits alike."""
    from datasets import Dataset

    from data_prep.chat import messages
    from data_prep.images import load_image
    from data_prep.synthetic.scenes import make_row

    rows = []
    for i in range(n):
        row = make_row(i, seed=7)
        text = json.loads(row["text"])
        image = load_image(row["image"]["bytes"])
        rows.append({**messages(QUESTIONS[i % len(QUESTIONS)], text["chosen"], text["rejected"]),
                     "images": [image.resize((side, side))]})
    return Dataset.from_list(rows)


def run_arm(arm: str, args, out: Path) -> None:
    """One arm, in this process: train and write per-step times, losses and peak RSS to ``out``."""
    import torch
    from transformers import TrainerCallback
    from trl import DPOTrainer, ModelConfig

    from vlm_dpo.models import lora_config
    from vlm_dpo.training.config import TrainConfig
    from vlm_dpo.training.trainers.fast_dpo import FastDPOTrainer

    if args.threads:
        torch.set_num_threads(args.threads)
    processor = processor_for(args.smoke)
    data = pairs(args.pairs, 64 if args.smoke else 768)
    steps = []

    class Timer(TrainerCallback):
        def on_step_begin(self, *_, **__):
            self.start = time.perf_counter()

        def on_step_end(self, _args, state, *_, **__):
            steps.append({"time": time.perf_counter() - self.start, "epoch": int(state.epoch - 1e-9)})

    config = TrainConfig(
        output_dir=str(out.parent / f"{arm}-run"), per_device_train_batch_size=args.batch, num_train_epochs=args.epochs,
        learning_rate=1e-4, logging_steps=1, gradient_checkpointing=True, max_length=None, seed=0, report_to="none",
        save_strategy="no", disable_tqdm=False,
    )
    cls = FastDPOTrainer if arm == "fast" else DPOTrainer
    trainer = cls(model=smolvlm_256m(processor.tokenizer, args.smoke), args=config, train_dataset=data,
                  processing_class=processor, peft_config=lora_config(ModelConfig(use_peft=True), vision=True),
                  callbacks=[Timer()])
    batch = trainer.data_collator([data[i] for i in range(min(args.batch, len(data)))])
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    out.write_text(json.dumps({
        "steps": steps, "losses": losses, "sequence_length": int(batch["attention_mask"].sum(1).max()),
        "tiles_per_image": int(batch["pixel_values"][0].flatten(1).ne(0).any(1).sum()),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


def summarise(result: dict, batch: int) -> dict:
    first = [s["time"] for s in result["steps"] if s["epoch"] == 0]
    every = [s["time"] for s in result["steps"]]
    return {
        "first_epoch_s": sum(first), "total_s": sum(every),
        "median_step_first_epoch_s": statistics.median(first), "median_step_s": statistics.median(every),
        "pairs_per_s_first_epoch": batch * len(first) / sum(first), "pairs_per_s": batch * len(every) / sum(every),
        "peak_rss_mb": result["peak_rss_mb"], "steps": len(every),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--quick", action="store_true", help="2 pairs, 1 step per epoch: under 15 min on 2 cores")
    parser.add_argument("--smoke", action="store_true", help="tiny architecture and images: seconds, for tests")
    parser.add_argument("--pairs", type=int, help="training pairs (default 8; --quick 2; --smoke 4)")
    parser.add_argument("--batch", type=int, default=2, help="pairs per step (default 2)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs (default 3)")
    parser.add_argument("--threads", type=int, help="torch threads per arm (default: torch's)")
    parser.add_argument("--arm", choices=("trl", "fast"), help=argparse.SUPPRESS)  # internal: one arm, in-process
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.pairs = args.pairs or (2 if args.quick else 4 if args.smoke else 8)
    if args.arm:
        return run_arm(args.arm, args, args.out)

    results = {}
    with tempfile.TemporaryDirectory() as work:
        for arm in ("trl", "fast"):
            print(f"--- {arm}: {args.pairs} pairs, {args.batch} per step, {args.epochs} epochs", file=sys.stderr)
            out = Path(work) / f"{arm}.json"
            command = [sys.executable, __file__, "--arm", arm, "--out", str(out), "--pairs", str(args.pairs),
                       "--batch", str(args.batch), "--epochs", str(args.epochs)]
            command += ["--smoke"] * args.smoke + (["--threads", str(args.threads)] if args.threads else [])
            # An empty cache: the fast arm computes its reference log-probs in the first epoch, as a new run would.
            env = {**os.environ, "VLM_DPO_CACHE": str(Path(work) / f"cache-{arm}"),
                   "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
            subprocess.run(command, check=True, env=env)
            results[arm] = json.loads(out.read_text())

    trl, fast = (summarise(results[arm], args.batch) for arm in ("trl", "fast"))
    diff = max(abs(a - b) for a, b in zip(results["trl"]["losses"], results["fast"]["losses"]))
    print(f"\nsequence length {results['trl']['sequence_length']} tokens, "
          f"{results['trl']['tiles_per_image']} tiles per image, {args.pairs} pairs, {args.batch} per step")
    print(f"{'(ratio > 1: ours better)':<34}{'TRL DPOTrainer':>16}{'FastDPOTrainer':>16}{'ratio':>8}")
    for key, label in (("median_step_first_epoch_s", "median step, first epoch (s)"),
                       ("first_epoch_s", "first epoch (s)"), ("pairs_per_s_first_epoch", "pairs/s, first epoch"),
                       ("median_step_s", f"median step, {args.epochs} epochs (s)"),
                       ("total_s", f"{args.epochs} epochs (s)"), ("pairs_per_s", f"pairs/s, {args.epochs} epochs"),
                       ("peak_rss_mb", "peak RSS (MB)")):
        ratio = trl[key] / fast[key] if "pairs_per_s" not in key else fast[key] / trl[key]
        print(f"{label:<34}{trl[key]:>16.2f}{fast[key]:>16.2f}{ratio:>7.2f}x")
    summary = {"speedup": trl["total_s"] / fast["total_s"], "first_epoch_speedup": trl["first_epoch_s"] /
               fast["first_epoch_s"], "max_loss_diff": diff, "trl": trl, "fast": fast,
               "sequence_length": results["trl"]["sequence_length"], "pairs": args.pairs, "batch": args.batch,
               "epochs": args.epochs}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
