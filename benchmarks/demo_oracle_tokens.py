"""Can the demo's language model read image tokens that look like words? The oracle control for instruction tuning.

Replaces the vision encoder and connector by an oracle: one image token per object, whose embedding is the sum of
the language model's own embeddings of the object's colour word and shape word. LoRA on the language model is
then instruction-tuned on the same conversations as ``demo_learnability.py`` and measured on the same held-out
scenes. If the model learns from these tokens but not from the real ones, the real image tokens, not the amount
of instruction data, are what limits it. Also prints how far the real connector's outputs are from text
(their norms and how similar they are across images).

    python benchmarks/demo_oracle_tokens.py --scenes 288 --batch_size 4 --output bench/oracle.json
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def connector_statistics(model, items) -> dict:
    """Norms of the real connector outputs against the word embeddings', and their cosine across images."""
    import torch

    with torch.no_grad():
        f = torch.stack([model.model.connector(it.encoded.float()) for it in items]).flatten(1, 2)
        g = torch.nn.functional.normalize(f, dim=-1)
        cos = torch.einsum("apw,bpw->abp", g, g).mean(-1)
        words = model.model.text_model.embed_tokens.weight
        return {"image_token_norm": f.norm(dim=-1).mean().item(),
                "norm_of_mean_image_token": f.mean((0, 1)).norm().item(),
                "word_embedding_norm": words.norm(dim=-1).mean().item(),
                "cosine_across_images": cos[~torch.eye(len(items), dtype=torch.bool)].mean().item()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--scenes", type=int, default=288, help="training scenes (one conversation each)")
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--heldout", type=int, default=100, help="held-out scenes")
    parser.add_argument("--output", default="bench/demo_oracle_tokens.json")
    args = parser.parse_args(argv)

    import torch

    from vlm_dpo.models.demo import assemble
    from vlm_dpo.training import demo_instruct as di

    model, processor = assemble(stage2=None)
    tokenizer = processor.tokenizer
    stats = connector_statistics(model, di.encode_scenes(
        model, processor, [di.instruct_scene(random.Random(f"oracle-stats/{i}")) for i in range(64)], 5))
    print(json.dumps(stats), flush=True)
    words = model.model.text_model.embed_tokens.weight.detach()
    image_id = model.config.image_token_id

    def word(text):
        return words[tokenizer(" " + text, add_special_tokens=False)["input_ids"][0]]

    def oracle(scenes):
        out = []
        for scene in scenes:
            objects = list(scene["objects"])
            random.Random(str(scene)).shuffle(objects)
            ids = tokenizer("<|im_start|>User:", add_special_tokens=False)["input_ids"] + [image_id] * len(objects)
            tokens = torch.stack([word(o["color"]) + word(o["shape"]) for o in objects])  # 2-D: no connector
            out.append(di.EncodedScene(scene, ids, tokens))
        return out

    train_rng, held_rng = (random.Random(f"instruct-scenes/{seed}") for seed in (di.INSTRUCT_SEED, di.HELDOUT_SEED))
    items = oracle([di.instruct_scene(train_rng) for _ in range(args.scenes)])
    held = oracle([di.instruct_scene(held_rng) for _ in range(args.heldout)])
    questions = di.heldout_questions(held)
    wrapped, params = di.add_lora(model, 16, 32, "all", False)
    steps = args.scenes // args.batch_size
    points, began = [], time.monotonic()

    def measure(step):
        figures = di.evaluate(wrapped, tokenizer, held, questions)
        points.append({"step": step, "scenes": step * args.batch_size, "seconds": round(time.monotonic() - began),
                       **figures})
        print(json.dumps(points[-1]), flush=True)

    measure(0)
    torch.manual_seed(0)
    di.train(wrapped, tokenizer, items, params, steps, args.lr, args.batch_size, 1, di.INSTRUCT_SEED, 6, 0.5,
             on_step=lambda step, *_: measure(step) if step % max(1, steps // 4) == 0 else None, constant=True)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps({"settings": vars(args), "connector": stats, "points": points}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
