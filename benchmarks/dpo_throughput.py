"""LoRA DPO throughput on SmolVLM-shaped models: plain TRL DPOTrainer against vlm_dpo's FastDPOTrainer.

``--shape 256m`` has SmolVLM-256M-Instruct's exact architecture (SigLIP-B/16 at 512px, 64 tokens per tile after the
pixel shuffle, the SmolLM2-135M decoder) with SmolVLM's processor splitting images at a 1024px longest edge: every
image is 4 tiles + 1 global, 320 image tokens. ``--shape 2b`` has SmolVLM-Instruct's (SigLIP so400m at 384px, 81
tokens per tile, the SmolLM2-1.7B decoder; 2.2B parameters) at a 768px longest edge (its default, 1536px, gives 17
tiles): 4 tiles + 1 global, 405 image tokens. Weights are random. Both arms train the same pairs with the same seed
and settings (LoRA on the language model, gradient checkpointing on as TRL's default; float32 on the CPU, bf16
weights and autocast on a GPU, as the pipeline loads them), each in its own subprocess so that peak memory is per
arm; the fast arm starts with an empty reference cache, so its first epoch pays for the reference forward.

    python benchmarks/dpo_throughput.py            # 8 pairs, 2 per step, 3 epochs (about 30 min on 2 quiet CPU cores)
    python benchmarks/dpo_throughput.py --quick    # 2 pairs, 1 step per epoch (under 15 min)
    python benchmarks/dpo_throughput.py --smoke    # tiny architecture, seconds: checks the script end to end
    python benchmarks/dpo_throughput.py --device cuda --pairs 48 --batch 8             # one GPU
    python benchmarks/dpo_throughput.py --device cuda --shape 2b --pairs 32 --batch 8

It prints a table (median step time, pairs per second, peak memory, for the first epoch, the later ones and the
whole run) and, as its last line, a JSON object with ``speedup`` (whole-run time, TRL over ours),
``first_epoch_speedup``, ``max_loss_diff`` (largest per-step difference of the training loss), and the work a step
must do: ``flops_per_step`` (the language model's forward and backward over the packed pairs, LoRA and the answer
positions' vocabulary projection included; the recompute of checkpointing and the repeats plain TRL does are not
counted), each arm's achieved TFLOP/s on it and their share of ``peak_tflops``, a large matrix product's rate
measured on the same device and dtype first.
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


# Each shape: vision tower, decoder, pixel-shuffle factor, tile edge, longest edge, tokens per tile, image side.
SHAPES = {
    "256m": dict(vision=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                             image_size=512, patch_size=16),
                 text=dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                           num_key_value_heads=3, head_dim=64, vocab_size=49280, rope_theta=100000.0),
                 scale_factor=4, tile=512, longest_edge=1024, image_seq_len=64, side=768),
    "2b": dict(vision=dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
                           image_size=384, patch_size=14),
               text=dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=24, num_attention_heads=32,
                         num_key_value_heads=32, head_dim=64, vocab_size=49155, rope_theta=273768.0),
               scale_factor=3, tile=384, longest_edge=768, image_seq_len=81, side=768),
}


def build_model(tokenizer, shape: str, smoke: bool, device: str, dtype):
    """The shape's configuration (or, for --smoke, vlm_dpo.models.tiny's), random weights, seed 0, on ``device``."""
    import torch
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration

    from vlm_dpo.models import tiny

    if smoke:
        return tiny.build_model(tokenizer, seed=0).to(device, dtype)
    spec = SHAPES[shape]
    text = {key: value for key, value in spec["text"].items() if key != "rope_theta"}
    config = Idefics3Config(
        vision_config=spec["vision"],
        text_config=dict(model_type="llama", **text, max_position_embeddings=16384, rms_norm_eps=1e-5,
                         rope_parameters={"rope_type": "default", "rope_theta": spec["text"]["rope_theta"]},
                         tie_word_embeddings=shape == "256m", bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id),
        scale_factor=spec["scale_factor"], image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        tie_word_embeddings=shape == "256m",
    )
    torch.manual_seed(0)
    with torch.device(device):  # a 2.2B model initialises in seconds on a GPU, minutes on a CPU
        return Idefics3ForConditionalGeneration(config).to(dtype)


def processor_for(shape: str, smoke: bool):
    """SmolVLM's processor layout (vlm_dpo.models.tiny's tokenizer and template) at the shape's tile and edge."""
    from vlm_dpo.models import tiny

    processor = tiny.build_processor()
    if not smoke:
        spec = SHAPES[shape]
        processor.image_processor.size = {"longest_edge": spec["longest_edge"]}
        processor.image_processor.max_image_size = {"longest_edge": spec["tile"]}
        processor.image_seq_len = spec["image_seq_len"]
    return processor


def step_flops(text_config, lengths: list[tuple[int, int, int]], lora_r: int) -> float:
    """Floating-point operations of one LoRA DPO step of packed pairs ``(prompt, chosen, rejected)`` lengths: the
    decoder's forward and backward (gradients of the activations and of LoRA's weights; the frozen weights get none),
    causal attention over each packed row, and the vocabulary projection of the answer positions only."""
    h, layers, heads = text_config.hidden_size, text_config.num_hidden_layers, text_config.num_attention_heads
    head_dim = getattr(text_config, "head_dim", None) or h // heads
    kv, inter = text_config.num_key_value_heads * head_dim, text_config.intermediate_size
    shapes = [(h, heads * head_dim), (h, kv), (h, kv), (heads * head_dim, h), (h, inter), (h, inter), (inter, h)]
    frozen = sum(a * b for a, b in shapes)
    lora = sum(lora_r * (a + b) for a, b in shapes)
    tokens = sum(p + c + r + 1 for p, c, r in lengths)
    widths = [p + c + r + 1 for p, c, r in lengths]
    answers = sum(c + r for _, c, r in lengths)
    linear = layers * tokens * (2 * frozen * 2 + 2 * lora * 3)  # forward + input gradients; LoRA also its weights
    attention = layers * sum(2 * 2 * width * width / 2 * heads * head_dim for width in widths) * 3  # fwd + 2x bwd
    head = answers * 2 * text_config.vocab_size * h * 2
    return linear + attention + head


def matmul_tflops(device: str, dtype) -> float:
    """A large square matrix product's rate on ``device`` in ``dtype`` (median of 5 after a warm-up)."""
    import torch

    n = 8192 if device == "cuda" else 2048
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    times = []
    for _ in range(6):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 2 * n ** 3 / statistics.median(times[1:]) / 1e12


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
    cuda = args.device == "cuda"
    dtype = torch.bfloat16 if cuda else torch.float32
    processor = processor_for(args.shape, args.smoke)
    data = pairs(args.pairs, 64 if args.smoke else SHAPES[args.shape]["side"])
    steps = []

    class Timer(TrainerCallback):
        """Wall time from one step's end to the next: the batch's collation (which the trainer runs before a step
        begins) included."""

        def on_train_begin(self, *_, **__):
            self.last = time.perf_counter()

        def on_step_end(self, _args, state, *_, **__):
            if cuda:
                torch.cuda.synchronize()
            now = time.perf_counter()
            steps.append({"time": now - self.last, "epoch": int(state.epoch - 1e-9)})
            self.last = now

    config = TrainConfig(
        output_dir=str(out.parent / f"{arm}-run"), per_device_train_batch_size=args.batch, num_train_epochs=args.epochs,
        learning_rate=1e-4, logging_steps=1, gradient_checkpointing=True, max_length=None, seed=0, report_to="none",
        save_strategy="no", disable_tqdm=False, use_cpu=not cuda, bf16=cuda,
    )
    cls = FastDPOTrainer if arm == "fast" else DPOTrainer
    model_args = ModelConfig(use_peft=True)
    trainer = cls(model=build_model(processor.tokenizer, args.shape, args.smoke, args.device, dtype), args=config,
                  train_dataset=data, processing_class=processor, peft_config=lora_config(model_args, vision=True),
                  callbacks=[Timer()])
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    first = trainer_batch(processor, batches_of(data, args.batch)[0])
    flops = None
    if arm == "fast":  # its collator knows every image's tiles by now: packing the data again only tokenises
        text_config = trainer.accelerator.unwrap_model(trainer.model).config.get_text_config()
        flops = statistics.mean(step_flops(text_config, trainer.data_collator(rows)["packed"].lengths,
                                           model_args.lora_r) for rows in batches_of(trainer.train_dataset, args.batch))
    out.write_text(json.dumps({
        "steps": steps, "losses": losses, "sequence_length": int(first["attention_mask"].sum(1).max()),
        "tiles_per_image": int(first["pixel_values"][0].flatten(1).ne(0).any(1).sum()), "flops_per_step": flops,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        "optimizer": str(getattr(trainer.args.optim, "value", trainer.args.optim)),
        "checkpointing": bool(trainer.args.gradient_checkpointing),
    }))


def batches_of(data, size: int) -> list[list[dict]]:
    """The rows of ``data`` in order, ``size`` at a time."""
    return [[data[i] for i in range(start, min(start + size, len(data)))] for start in range(0, len(data), size)]


def trainer_batch(processor, rows):
    """TRL's collation of ``rows``, as both arms start from it."""
    from trl.trainer.dpo_trainer import DataCollatorForVisionPreference

    return DataCollatorForVisionPreference(processor)([dict(row) for row in rows])


def time_collation(args) -> dict:
    """The host work of a step before the model runs, in this process: TRL's collator against the fast path's, while
    the batch's images have no features yet (first epoch) and once they are cached (later epochs); median seconds per
    batch of ``--batch`` pairs over the data, from encoded images as the trainers hold them."""
    import torch
    from trl.trainer.dpo_trainer import DataCollatorForVisionPreference

    from vlm_dpo.training.trainers.fast_collate import FastCollator, undecoded
    from vlm_dpo.training.trainers.fast_dpo import FeatureCache

    processor = processor_for(args.shape, args.smoke)
    data, decode = undecoded(pairs(args.pairs, 64 if args.smoke else SHAPES[args.shape]["side"]))
    trl = DataCollatorForVisionPreference(processor)
    features = FeatureCache(1 << 30)
    fast = FastCollator(trl, features, processor.tokenizer.pad_token_id, decode)
    times = {"trl": [], "fast_first_epoch": [], "fast_cached": []}
    for rows in batches_of(data, args.batch):
        for name, collate in (("trl", lambda rows: trl([{**row, "images": [decode(i) for i in row["images"]]}
                                                        for row in rows])), ("fast_first_epoch", fast)):
            start = time.perf_counter()
            batch = collate(rows)
            times[name].append(time.perf_counter() - start)
        for key in batch["image_keys"]:
            features.put(key, torch.zeros(1))
        start = time.perf_counter()
        fast(rows)
        times["fast_cached"].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def summarise(result: dict, batch: int, peak_tflops: float, flops: float) -> dict:
    """One arm's timings; ``flops``: the work of a step (counted by the fast arm), for both arms' TFLOP/s."""
    first = [s["time"] for s in result["steps"] if s["epoch"] == 0]
    later = [s["time"] for s in result["steps"] if s["epoch"] > 0] or first
    every = [s["time"] for s in result["steps"]]
    tflops = flops / statistics.median(later) / 1e12
    return {
        "first_epoch_s": sum(first), "total_s": sum(every),
        "median_step_first_epoch_s": statistics.median(first), "median_step_later_s": statistics.median(later),
        "median_step_s": statistics.median(every),
        "pairs_per_s_first_epoch": batch * len(first) / sum(first),
        "pairs_per_s_later": batch * len(later) / sum(later), "pairs_per_s": batch * len(every) / sum(every),
        "tflops_later": tflops, "peak_share_later": tflops / peak_tflops,
        "peak_rss_mb": result["peak_rss_mb"], "peak_gpu_mb": result["peak_gpu_mb"], "steps": len(every),
        "optimizer": result["optimizer"], "checkpointing": result["checkpointing"],
        "step_times_s": [round(step["time"], 4) for step in result["steps"]],
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
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="cpu (float32) or cuda (bf16 weights and autocast, as the pipeline trains on a GPU)")
    parser.add_argument("--shape", choices=tuple(SHAPES), default="256m",
                        help="256m: SmolVLM-256M-Instruct (default); 2b: SmolVLM-Instruct, 2.2B parameters")
    parser.add_argument("--collate_only", action="store_true",
                        help="time only the collation of a step (TRL's, and the fast path's before and after its "
                             "features are cached), on this machine's CPU")
    parser.add_argument("--arm", choices=("trl", "fast"), help=argparse.SUPPRESS)  # internal: one arm, in-process
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.pairs = args.pairs or (2 if args.quick else 4 if args.smoke else 8)
    if args.arm:
        return run_arm(args.arm, args, args.out)
    if args.collate_only:
        summary = time_collation(args)
        print(json.dumps({"collate_median_s": summary, "shape": args.shape, "batch": args.batch, "pairs": args.pairs}))
        return summary

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA GPU is visible")
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    peak = matmul_tflops(args.device, dtype)
    print(f"--- peak: a large {str(dtype).removeprefix('torch.')} matrix product runs at {peak:.1f} TFLOP/s on "
          f"{torch.cuda.get_device_name() if args.device == 'cuda' else 'this CPU'}", file=sys.stderr)

    results = {}
    with tempfile.TemporaryDirectory() as work:
        for arm in ("trl", "fast"):
            print(f"--- {arm}: {args.pairs} pairs, {args.batch} per step, {args.epochs} epochs", file=sys.stderr)
            out = Path(work) / f"{arm}.json"
            command = [sys.executable, __file__, "--arm", arm, "--out", str(out), "--pairs", str(args.pairs),
                       "--batch", str(args.batch), "--epochs", str(args.epochs)]
            command += ["--smoke"] * args.smoke + (["--threads", str(args.threads)] if args.threads else [])
            command += ["--device", args.device, "--shape", args.shape]
            # An empty cache: the fast arm computes its reference log-probs in the first epoch, as a new run would.
            env = {**os.environ, "VLM_DPO_CACHE": str(Path(work) / f"cache-{arm}"),
                   "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
            subprocess.run(command, check=True, env=env)
            results[arm] = json.loads(out.read_text())

    flops = results["fast"]["flops_per_step"]
    trl, fast = (summarise(results[arm], args.batch, peak, flops) for arm in ("trl", "fast"))
    diff = max(abs(a - b) for a, b in zip(results["trl"]["losses"], results["fast"]["losses"]))
    print(f"\n{args.shape} shape on {args.device}: sequence length {results['trl']['sequence_length']} tokens, "
          f"{results['trl']['tiles_per_image']} tiles per image, {args.pairs} pairs, {args.batch} per step; "
          f"{flops / 1e12:.2f} TFLOP per step counted, peak {peak:.1f} TFLOP/s; "
          f"optimizer {fast['optimizer']}, checkpointing TRL {trl['checkpointing']}, ours {fast['checkpointing']}")
    print(f"{'(ratio > 1: ours better)':<34}{'TRL DPOTrainer':>16}{'FastDPOTrainer':>16}{'ratio':>8}")
    for key, label in (("median_step_first_epoch_s", "median step, first epoch (s)"),
                       ("first_epoch_s", "first epoch (s)"), ("pairs_per_s_first_epoch", "pairs/s, first epoch"),
                       ("median_step_later_s", "median step, later epochs (s)"),
                       ("pairs_per_s_later", "pairs/s, later epochs"), ("tflops_later", "TFLOP/s, later epochs"),
                       ("peak_share_later", "share of peak, later epochs"),
                       ("median_step_s", f"median step, {args.epochs} epochs (s)"),
                       ("total_s", f"{args.epochs} epochs (s)"), ("pairs_per_s", f"pairs/s, {args.epochs} epochs"),
                       ("peak_rss_mb", "peak RSS (MB)"), ("peak_gpu_mb", "peak GPU memory (MB)")):
        if trl[key] is None:
            continue
        higher_better = "pairs_per_s" in key or "tflops" in key or "share" in key
        ratio = fast[key] / trl[key] if higher_better else trl[key] / fast[key]
        print(f"{label:<34}{trl[key]:>16.2f}{fast[key]:>16.2f}{ratio:>7.2f}x")
    summary = {"speedup": trl["total_s"] / fast["total_s"], "first_epoch_speedup": trl["first_epoch_s"] /
               fast["first_epoch_s"], "max_loss_diff": diff, "trl": trl, "fast": fast,
               "sequence_length": results["trl"]["sequence_length"], "pairs": args.pairs, "batch": args.batch,
               "epochs": args.epochs, "device": args.device, "shape": args.shape, "flops_per_step": flops,
               "peak_tflops": peak}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
