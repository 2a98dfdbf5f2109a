"""How much instruction data the demo model needs to read its image tokens, per training configuration.

Instruction-tunes ``demo-smolvlm`` (stage 1 only, the shipped stage 2 left out) on multi-turn conversations about
generated scenes (``vlm_dpo.training.demo_instruct``, balanced existence questions unless --absent_share says
otherwise) and measures, on fixed held-out scenes, existence accuracy, yes-ratio and yes/no AUROC at the first
answer token, accuracy on adversarial absent objects, count and colour accuracy. The measurements are taken along
one run, after a doubling series of scenes seen (--first, 2x --first, ... up to --scenes); the schedule is
warm-up then constant, so each point is the same run stopped there. The frozen vision encoder runs once per image.

    python benchmarks/demo_learnability.py --scenes 2000 --config lora16-all+connector --output bench/learn.json
    python benchmarks/demo_learnability.py --config connector --config lora16-attn --scenes 1000

Configurations (--config, repeatable): ``connector`` (the connector only, as stage 1 but on questions),
``loraR-all`` / ``loraR-attn`` (LoRA of rank R on all linear layers / attention only, connector frozen), and either
with ``+connector`` (the connector trains too); a ``:text`` suffix gives each scene in words where the image
would be (``described_scenes``: the control that tells whether the image tokens or the training budget limit).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parse_config(name: str) -> dict:
    if name.endswith(":text"):  # the scene in words instead of the image (``described_scenes``)
        return {**parse_config(name.removesuffix(":text")), "text": True}
    if name == "connector":
        return {"lora_r": 0, "targets": "all", "train_connector": True, "text": False}
    match = re.fullmatch(r"lora(\d+)-(all|attn)(\+connector)?", name)
    if not match:
        raise SystemExit(f"--config {name}: expected connector, loraR-all, loraR-attn, optionally +connector")
    return {"lora_r": int(match[1]), "targets": {"all": "all", "attn": "attention"}[match[2]],
            "train_connector": bool(match[3]), "text": False}


def run_config(name: str, args, encoded, held, questions, model_processor) -> list[dict]:
    import torch

    from vlm_dpo.training import demo_instruct as di

    model, processor = model_processor()
    tokenizer = processor.tokenizer
    config = parse_config(name)
    if config["text"]:
        encoded, held = (di.described_scenes(tokenizer, [item.scene for item in items]) for items in (encoded, held))
    if config["lora_r"]:
        model, params = di.add_lora(model, config["lora_r"], 2 * config["lora_r"], config["targets"],
                                    config["train_connector"])
    else:
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        params = list(model.model.connector.parameters())
        for parameter in params:
            parameter.requires_grad_(True)
    points = []
    marks = []
    n = args.first
    while n <= args.scenes:
        marks.append(n // args.batch_size)
        n *= 2
    steps = marks[-1]
    began = time.monotonic()
    training_seconds = [0.0]

    def measure(step):
        figures = di.evaluate(model, tokenizer, held, questions)
        point = {"config": name, "step": step, "scenes": step * args.batch_size,
                 "training_seconds": round(training_seconds[0], 1), **figures}
        points.append(point)
        print(json.dumps(point), flush=True)

    measure(0)
    last = [time.monotonic()]

    def on_step(step, losses, _optimizer):
        training_seconds[0] += time.monotonic() - last[0]
        if step in marks:
            measure(step)
        last[0] = time.monotonic()

    torch.manual_seed(0)
    di.train(model, tokenizer, encoded, params, steps, args.lr, args.batch_size, 1, di.INSTRUCT_SEED, args.questions,
             args.absent_share, progress=not args.quiet, on_step=on_step, constant=True)
    print(f"{name}: {steps} steps in {time.monotonic() - began:.0f} s", flush=True)
    return points


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--config", action="append", help="training configuration (repeatable; default "
                        "lora16-all+connector)")
    parser.add_argument("--scenes", type=int, default=2000, help="training scenes (one conversation each)")
    parser.add_argument("--first", type=int, default=250, help="first measurement after this many scenes; "
                        "then doubling")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--questions", type=int, default=6, help="questions drawn per conversation (repeats dropped)")
    parser.add_argument("--absent_share", type=float, default=0.5, help="share of existence questions about absent "
                        "objects (0.5: balanced)")
    parser.add_argument("--heldout", type=int, default=150, help="held-out scenes")
    parser.add_argument("--output", default="bench/demo_learnability.json")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    configs = args.config or ["lora16-all+connector"]
    for name in configs:
        parse_config(name)

    from vlm_dpo.models.demo import assemble
    from vlm_dpo.training import demo_instruct as di

    def model_processor():
        return assemble(stage2=None)

    model, processor = model_processor()
    rng = random.Random(f"instruct-scenes/{di.INSTRUCT_SEED}")
    encoded = di.encode_scenes(model, processor, [di.instruct_scene(rng) for _ in range(args.scenes)],
                               di.INSTRUCT_SEED, progress=not args.quiet)
    held_rng = random.Random(f"instruct-scenes/{di.HELDOUT_SEED}")
    held = di.encode_scenes(model, processor, [di.instruct_scene(held_rng) for _ in range(args.heldout)],
                            di.HELDOUT_SEED, progress=not args.quiet, desc="encoding held-out scenes")
    questions = di.heldout_questions(held)
    del model
    points = []
    for name in configs:
        points += run_config(name, args, encoded, held, questions, model_processor)
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps({"settings": vars(args), "points": points}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
