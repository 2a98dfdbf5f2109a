"""How the demo model's shipped stage-1 weights are made: stage 0 trains the vision encoder, stage 1 the connector.

Stage 0 pre-trains the vision encoder alone, as SigLIP is pre-trained before SmolVLM's stage 1: every
patch learns which object (colour and shape) lies under it, from the generator's label maps
(``pretrain_vision``; the language model is not run). Through the frozen language model alone, a random
encoder learnt colours in a few hundred steps but shapes barely (docs/demo.md); with dense
labels, shapes come after a plateau of ~400 steps and reach ~95% per patch by 1,500.

Stage 1 (SFT; the DPO pipeline prescribes SFT first, then preference learning) then aligns the connector
on the chosen answers of *training* scenes (``STAGE1_SEED``, never the seed the DPO data is drawn from),
encoder and language model frozen; only the embedding rows of the tokens added for SmolVLM
(``<end_of_utterance>``, ``<fake_token_around_image>``, ...) train with it, so that the model learns to
stop. It is short on purpose: the encoder sees the scene, but the base reads it badly and makes colour,
shape and count mistakes that the DPO stage (recipes/demo.yaml) then reduces.

    vlm-dpo build-demo-stage1                                  # retrain the shipped weights (~16 min on 2 cores)
    vlm-dpo build-demo-stage1 --vision_steps 5 --steps 5 --output /tmp/s1.safetensors   # a quick rebuild
    vlm-dpo build-demo-stage1 --resume vlm_dpo/models/assets/demo_stage1.safetensors --steps 300  # a second cycle
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from data_prep import chat
from data_prep.cli import check_writable
from data_prep.errors import MissingInputError
from data_prep.images import load_image
from data_prep.synthetic.scenes import COLORS, SHAPES, draw_scene, label_map, make_row, render
from vlm_dpo.models.demo import ASSET, PATCH, TILE, assemble, original_vocab_size, stage1_state
from vlm_dpo.models.load import cpu_has_native_bf16

# Stage-1 scenes come from this seed; DPO data (synthetic:N) is drawn with data_seed_split (42 by default).
STAGE1_SEED = 7919
STAGE1_DEFAULTS = dict(vision_steps=1500, steps=200, batch_size=16, lr=1e-3, warmup=10)  # as the shipped asset


# --------------------------------------------------------------------------- stage 0: vision pre-training

LABEL_SAMPLES = 4  # label samples per patch side: a patch is an object's when it covers >= 1/4 of it


def patch_labels(labels, rows: int, cols: int):
    """Per tile, per patch (row-major), the class under the patch: 0 background, else 1 + ``object_class``.

    ``labels`` is ``data_prep.synthetic.scenes.label_map(scene)``; ``rows`` x ``cols`` tiles as the processor split the
    image (0 x 0: not split), the global view last, as in ``pixel_values``. The processor only rescales, so a
    patch's place in the scene is its place in the tile grid.
    """
    side, k = TILE // PATCH, LABEL_SAMPLES

    def grid(n_rows, n_cols):
        a = np.asarray(labels.resize((n_cols * side * k, n_rows * side * k), Image.NEAREST))
        a = a.reshape(n_rows, side, k, n_cols, side, k).transpose(0, 3, 1, 4, 2, 5).reshape(n_rows * n_cols,
                                                                                          side * side, k * k)
        counts = np.stack([(a == c).sum(-1) for c in range(1, int(a.max()) + 2)], -1)
        return np.where(counts.max(-1) >= k * k // 4, counts.argmax(-1) + 1, 0)

    return np.concatenate(([grid(rows, cols)] if rows else []) + [grid(1, 1)])


def vision_batch(processor, rng, n: int):
    """(pixel_values of the real tiles, their per-patch labels) for ``n`` fresh scenes drawn from ``rng``."""
    import torch

    scenes = [draw_scene(rng) for _ in range(n)]
    pixels = processor.image_processor(images=[[render(scene, rng)] for scene in scenes], return_tensors="pt",
                                       return_row_col_info=True)
    labels = np.concatenate([patch_labels(label_map(scene), rows[0], cols[0])
                             for scene, rows, cols in zip(scenes, pixels["rows"], pixels["cols"])])
    tiles = pixels["pixel_values"].flatten(0, 1)
    tiles = tiles[(tiles != 0).flatten(1).any(1)]  # drop the all-zero padding tiles, as the model does
    return tiles, torch.from_numpy(labels).long()


def pretrain_vision(model, processor, steps: int, batch_size: int = 32, lr: float = 2e-3, seed: int = STAGE1_SEED,
                    progress: bool = True) -> list[float]:
    """Stage 0: the vision encoder learns to tell, for every patch, which object (colour and shape) lies under it.

    Why: SmolVLM's SigLIP encoder comes pre-trained on images and text before its stage 1; ours starts from
    random weights, and through the frozen language model alone it learnt colours in a few hundred steps but
    shapes barely (docs/demo.md). Dense labels from the scene generator (``label_map``) are a cheap
    and direct signal, and the language model is not run at all. The linear head is thrown away afterwards.
    """
    import torch
    import torch.nn.functional as F

    classes = 1 + len(COLORS) * len(SHAPES)
    encoder = model.model.vision_model
    head = torch.nn.Linear(encoder.config.hidden_size, classes)  # per patch: background or an object class
    object_head = torch.nn.Linear(encoder.config.hidden_size, classes - 1)  # per object, its patches pooled
    params = list(encoder.parameters())
    for parameter in params:
        parameter.requires_grad_(True)
    heads = list(head.parameters()) + list(object_head.parameters())
    optimizer = torch.optim.AdamW([{"params": params, "weight_decay": 0.01},
                                   {"params": heads, "weight_decay": 0.0}], lr=lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(steps, warmup=min(30, steps)))
    weight = torch.ones(classes)
    weight[0] = 0.3  # most patches are background
    side = TILE // PATCH
    rng = random.Random(f"demo-stage0/{seed}")
    losses = []
    encoder.train()
    bar = tqdm(range(steps), desc="demo-smolvlm stage 0 (vision pre-training)", disable=not progress, unit="step")
    try:
        for _ in bar:
            tiles, labels = vision_batch(processor, rng, batch_size)
            hidden = encoder(pixel_values=tiles, patch_attention_mask=torch.ones(len(tiles), side, side,
                                                                                 dtype=torch.bool)).last_hidden_state
            loss = F.cross_entropy(head(hidden).flatten(0, 1), labels.flatten(), weight=weight)
            # Each object class present in a tile, its patches' features averaged, names its class: the
            # signal that makes a patch on a circle's rim say "circle" and not only "red".
            members = F.one_hot(labels, classes).float()[..., 1:]  # (tiles, patches, classes - 1)
            sizes = members.sum(1)
            pooled = torch.einsum("tpc,tpd->tcd", members, hidden) / sizes.clamp(min=1).unsqueeze(-1)
            present = sizes > 0
            targets = torch.arange(classes - 1).expand_as(sizes)[present]
            loss = loss + F.cross_entropy(object_head(pooled[present]), targets)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            bar.set_postfix(loss=f"{sum(losses[-25:]) / len(losses[-25:]):.3f}")
    finally:
        for parameter in params:
            parameter.requires_grad_(False)
        encoder.eval()
    return losses


def _schedule(steps: int, warmup: int):
    """Linear warm-up, then cosine down to a tenth of the peak."""
    def factor(step):
        return min(1.0, (step + 1) / max(warmup, 1)) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))
    return factor


# --------------------------------------------------------------------------- stage 1


def stage1_examples(seed: int = STAGE1_SEED, start: int = 0):
    """An endless stream of (image, question, answer) from training scenes: every question type, chosen answers."""
    index = start
    while True:
        row = make_row(index, seed)
        text = json.loads(row["text"])
        image = load_image(row["image"]["bytes"])
        yield image, text["question"], text["chosen"]
        index += 1


def collate(processor, examples):
    """Inputs for a batch of (image, question, answer), and for each row the answer's token ids.

    The answer is what follows the rendered prompt (``... Assistant:``), as TRL counts completions.
    """
    prompts = [chat.render(processor, question) for _, question, _ in examples]
    wholes = [chat.render(processor, question, answer) for _, question, answer in examples]
    inputs = processor(text=wholes, images=[[image] for image, _, _ in examples], return_tensors="pt",
                       padding=True, padding_side="right", add_special_tokens=False)
    answers = [processor.tokenizer(chat.completion(prompt, whole), add_special_tokens=False)["input_ids"]
               for prompt, whole in zip(prompts, wholes)]
    return inputs, answers


def answer_loss(model, inputs, answers):
    """Mean cross-entropy of the answer tokens; logits only at those positions (the vocabulary is 49k wide)."""
    import torch
    import torch.nn.functional as F

    hidden = model.model(**inputs, use_cache=False).last_hidden_state
    lengths = inputs["attention_mask"].sum(1).tolist()
    rows, cols, targets = [], [], []
    for row, (length, answer) in enumerate(zip(lengths, answers)):
        ids = inputs["input_ids"][row, length - len(answer):length].tolist()
        if ids != answer:
            raise RuntimeError("answer tokens do not line up with the rendered conversation")
        rows += [row] * len(answer)
        cols += range(length - len(answer) - 1, length - 1)  # position p predicts token p + 1
        targets += answer
    logits = model.lm_head(hidden[rows, cols])
    return F.cross_entropy(logits.float(), torch.tensor(targets))


def train_stage1(model, processor, steps: int = STAGE1_DEFAULTS["steps"],
                 batch_size: int = STAGE1_DEFAULTS["batch_size"],
                 lr: float = STAGE1_DEFAULTS["lr"], warmup: int = STAGE1_DEFAULTS["warmup"], seed: int = STAGE1_SEED,
                 progress: bool = True, log_every: int = 25, on_step=None, train_vision: bool = True,
                 start: int = 0) -> list[float]:
    """Align the vision encoder and connector (and the added tokens' rows), language model frozen.

    ``train_vision=False`` keeps a pre-trained encoder (stage 0) as it is and trains the connector only, as
    LLaVA-style stage 1 does; it also skips the encoder's backward pass. ``start``: the first stage-1 scene, so
    that a resumed run sees new scenes rather than the ones already learnt.

    Returns the loss of every step; ``on_step(step, losses)`` is called after each (e.g. to checkpoint).
    bf16 autocast where the CPU has native bf16 matrix units (AMX),
    float32 otherwise; the weights stay float32.
    """
    import torch

    tokenizer = processor.tokenizer
    first = original_vocab_size(tokenizer)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    inner = model.model
    encoder = list(inner.vision_model.parameters()) if train_vision else []
    visual = encoder + list(inner.connector.parameters())
    for parameter in visual:
        parameter.requires_grad_(True)
    embeddings = inner.text_model.embed_tokens.weight  # tied with lm_head
    embeddings.requires_grad_(True)
    keep = torch.zeros(embeddings.shape[0], 1)
    keep[first:] = 1.0
    hook = embeddings.register_hook(lambda grad: grad * keep)  # only the added tokens' rows learn
    groups = [{"params": visual, "weight_decay": 0.01}, {"params": [embeddings], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups,
                                  lr=lr, betas=(0.9, 0.98))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(steps, warmup))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=cpu_has_native_bf16())
    stream = stage1_examples(seed, start)
    losses = []
    model.train()
    desc = f"demo-smolvlm stage 1 ({'vision + ' * train_vision}connector, LM frozen)"
    bar = tqdm(range(steps), desc=desc, disable=not progress, unit="step")
    try:
        for step in bar:
            inputs, answers = collate(processor, [next(stream) for _ in range(batch_size)])
            with autocast:
                loss = answer_loss(model, inputs, answers)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(visual + [embeddings], 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            recent = losses[-log_every:]
            bar.set_postfix(loss=f"{sum(recent) / len(recent):.3f}")
            if on_step is not None:
                model.eval()
                on_step(step + 1, losses)
                model.train()
    finally:
        hook.remove()
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        model.eval()
    return losses


def save_stage1(model, tokenizer, path: str | Path, meta: dict) -> Path:
    """Write the stage-1 weights as float16 safetensors (a few MB), with how they were made."""
    import torch
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {key: value.to(torch.float16) for key, value in stage1_state(model, tokenizer).items()}
    save_file(state, str(path), metadata={key: json.dumps(value) for key, value in meta.items()})
    return path


def stage1_meta(path: str | Path) -> dict:
    """How a stage-1 weights file was made (its safetensors metadata, JSON-decoded)."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        return {key: json.loads(value) for key, value in (handle.metadata() or {}).items()}


def make_stage1_asset(path: str | Path = ASSET, progress: bool = True, checkpoint_every: int = 0,
                      resume: str | Path | None = None, **train_kwargs) -> tuple[Path, list[float]]:
    """Train stage 1 and write its weights to ``path`` (the script behind the shipped asset).

    From scratch: stage 0 (``vision_steps``), then the connector. ``resume``: load those weights and train the
    connector for ``steps`` more on the stage-1 scenes that follow the ones already seen (a second cosine cycle);
    the written metadata keeps the earlier runs under ``previous``, so the asset says how to remake it.
    ``checkpoint_every`` > 0 also writes ``PATH.stepN.safetensors`` every N steps, to compare schedules.
    """
    import torch

    settings = {**STAGE1_DEFAULTS, **train_kwargs}
    vision_steps = settings.pop("vision_steps")
    if resume is not None:
        vision_steps = 0  # the encoder stays as stage 0 left it
    previous = stage1_meta(resume) if resume is not None else None
    start = scenes_seen(previous) if previous else 0
    model, processor = assemble(stage1=resume, stage2=None)
    began = time.monotonic()
    path = Path(path)
    vision_losses = pretrain_vision(model, processor, vision_steps, progress=progress) if vision_steps else []

    def meta(losses):
        made = {**settings, "vision_steps": vision_steps, "seed": STAGE1_SEED, "start": start,
                "steps_done": len(losses), "scenes_seen": start + len(losses) * settings["batch_size"],
                "seconds": round(time.monotonic() - began, 1),
                "final_loss": round(sum(losses[-25:]) / len(losses[-25:]), 4), "torch": torch.__version__}
        if vision_losses:
            made["vision_final_loss"] = round(sum(vision_losses[-25:]) / len(vision_losses[-25:]), 4)
        if previous:
            made["previous"] = previous
        return made

    def checkpoint(step, losses):
        if checkpoint_every and step % checkpoint_every == 0 and step < settings["steps"]:
            save_stage1(model, processor.tokenizer, path.with_suffix(f".step{step}.safetensors"), meta(losses))

    losses = train_stage1(model, processor, progress=progress, on_step=checkpoint,
                          train_vision=not vision_steps and resume is None, start=start, **settings)
    return save_stage1(model, processor.tokenizer, path, meta(losses)), losses


def scenes_seen(meta: dict) -> int:
    """Stage-1 scenes a weights file has learnt from (files written before ``scenes_seen`` was kept: steps x batch)."""
    return int(meta["scenes_seen"]) if "scenes_seen" in meta else int(meta["steps_done"]) * int(meta["batch_size"])


# --------------------------------------------------------------------------- the command that remakes the asset


@dataclass
class Stage1Arguments:
    """``vlm-dpo build-demo-stage1``: retrain the shipped stage-1 weights (stage 0, then stage 1) or continue them."""

    output: str = field(default=str(ASSET), metadata={"help": "stage-1 weights file to write"})
    steps: int = field(default=STAGE1_DEFAULTS["steps"], metadata={"help": "stage-1 (connector) steps"})
    batch_size: int = field(default=STAGE1_DEFAULTS["batch_size"], metadata={"help": "scenes per stage-1 step"})
    lr: float = field(default=STAGE1_DEFAULTS["lr"], metadata={"help": "peak learning rate of stage 1"})
    vision_steps: int = field(
        default=STAGE1_DEFAULTS["vision_steps"],
        metadata={"help": "stage-0 steps: the vision encoder learns per-patch object classes first (0: skip)"})
    checkpoint_every: int = field(default=0, metadata={"help": "also write OUTPUT.stepN.safetensors every N steps"})
    resume: str | None = field(
        default=None,
        metadata={"help": "continue from these stage-1 weights: STEPS more connector steps on the next scenes (no "
                  "stage 0); how the shipped asset's second cycle was made"})


ARGUMENTS = (Stage1Arguments,)


def run(args: Stage1Arguments) -> int:
    """``vlm-dpo build-demo-stage1``: run ``make_stage1_asset`` with the command's options and say what was written."""
    check_writable(args.output, "--output", folder=False)
    if args.resume and not Path(args.resume).is_file():
        raise MissingInputError(f"--resume {args.resume}: no such stage-1 weights file")
    path, losses = make_stage1_asset(args.output, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                                     vision_steps=args.vision_steps, checkpoint_every=args.checkpoint_every,
                                     resume=args.resume)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB); loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    return 0
