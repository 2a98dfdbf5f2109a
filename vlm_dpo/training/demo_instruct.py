"""Stage 2 of the demo model: instruction tuning, so that the base reads its image tokens for a question.

Why: after stage 1 (vision encoder + connector aligned to a frozen SmolLM2) the image tokens carry what is in
the scene, but the language model never learnt to look them up for a question: existence at chance, every
count the same. Real VLMs get a large instruction-tuning stage before any preference tuning (LLaVA trains the
projector and the whole language model on 665k multi-turn conversations), and DPO then corrects what that base
still gets wrong. This module is that stage for ``demo-smolvlm``, sized for two CPU cores:

- **Data**: scenes from ``INSTRUCT_SEED`` (never the DPO data's seed, nor stage 1's, nor the scenes
  benchmark's); each is one multi-turn conversation of several questions about one image, as in LLaVA's
  instruction data, with the chosen-answer wording of the DPO pairs. The mix follows what real instruction data
  look like: most existence questions are about objects that are there (``absent_share``), which is where
  real bases' yes-bias comes from (POPE, Li et al. 2023).
- **Cost**: the frozen vision encoder runs once per image (``encode_scenes``); a step runs only the connector
  and the language model, with logits only at answer tokens.
- **What trains**: the connector, plus LoRA on the language model's linear layers. The result is a small file
  (LoRA factors + connector, float16) that ``vlm_dpo.models.demo.ensure_demo_model(stage2=FILE)`` merges into the
  model it builds. The default demo does not use one yet: on two CPU cores no configuration measured so far
  (docs/demo.md, "Stage 2") makes the base read existence from its image tokens.

    vlm-dpo build-demo-stage2 --output S2.safetensors   # build the weights (resumable, with progress)
    python benchmarks/demo_learnability.py --help   # how much instruction data each configuration needs
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from data_prep.cli import check_writable
from data_prep.synthetic.scenes import COLORS, SHAPES, count_answer, describe, draw_layout, place, render
from vlm_dpo.models.demo import PATCH, TILE, assemble

INSTRUCT_SEED = 104729  # not the DPO data's (42 by default), stage 1's (7919) nor the scenes benchmark's (31337)
STAGE2_OUTPUT = "outputs/demo_stage2.safetensors"  # where ``vlm-dpo build-demo-stage2`` writes by default
HELDOUT_SEED = 130363  # the held-out scenes of the learnability measurements and of the build's own check
LORA_TARGETS = r"model\.text_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"
ATTENTION_TARGETS = r"model\.text_model\.layers\.\d+\.self_attn\.(q|k|v|o)_proj"
INSTRUCT_DEFAULTS = dict(scenes=4000, epochs=1, batch_size=16, lr=1e-3, lora_r=16, lora_alpha=32,
                         targets="all", train_connector=True, absent_share=0.25, questions=6)


# --------------------------------------------------------------------------- the instruction data


def instruct_scene(rng: random.Random) -> dict:
    """A scene whose counts are spread over 0-3: a shape drawn ``n`` times (n uniform in 0-3) among other shapes."""
    n = rng.randint(0, 3)
    shape = rng.choice(SHAPES)
    others = rng.randint(1 if n == 0 else 0, 4 - n)
    layout = draw_layout(rng, n + others)
    objects = [(rng.choice(COLORS), rng.choice([s for s in SHAPES if s != shape]), i) for i in range(others)]
    objects += [(rng.choice(COLORS), shape, others + i) for i in range(n)]
    return place(layout, objects)


def _pairs(scene: dict) -> list[tuple[str, str]]:
    return sorted({(o["color"], o["shape"]) for o in scene["objects"]})


def exists_qa(scene: dict, rng: random.Random, absent: bool) -> tuple[str, str, str]:
    """One existence question: about an object that is there, or (``absent``) one that is not, adversarial when the
    scene allows it (its colour and shape both on other objects, POPE's hardest negatives)."""
    present = _pairs(scene)
    if not absent:
        color, shape = rng.choice(present)
        return f"Is there a {color} {shape}?", f"Yes, there is a {color} {shape}.", "exists_yes"
    missing = [(c, s) for c in COLORS for s in SHAPES if (c, s) not in present]
    colors, shapes = {c for c, _ in present}, {s for _, s in present}
    hard = [(c, s) for c, s in missing if c in colors and s in shapes]
    color, shape = rng.choice(hard if hard and rng.random() < 0.6 else missing)
    return f"Is there a {color} {shape}?", f"No, there is no {color} {shape}.", "exists_no"


def conversation(scene: dict, rng: random.Random, questions: int = 6, absent_share: float = 0.25) -> list[tuple]:
    """Several (question, answer, kind) about one scene: existence, counts, colours, a description.

    ``absent_share``: the share of existence questions about an absent object (0.5: balanced).
    """
    shapes = [o["shape"] for o in scene["objects"]]
    unique = [s for s in SHAPES if shapes.count(s) == 1]
    pool = []
    for _ in range(questions):
        kind = rng.choices(("exists", "count", "color", "describe"), weights=(3, 2, 1, 1))[0]
        if kind == "color" and not unique:
            kind = "count"
        if kind == "exists":
            pool.append(exists_qa(scene, rng, absent=rng.random() < absent_share))
        elif kind == "count":
            shape = rng.choice(SHAPES)
            pool.append((f"How many {shape}s are there?", count_answer(shapes.count(shape), shape), "count"))
        elif kind == "color":
            shape = rng.choice(unique)
            color = next(o["color"] for o in scene["objects"] if o["shape"] == shape)
            pool.append((f"What color is the {shape}?", f"The {shape} is {color}.", "color"))
        else:
            pool.append(("Describe the image.", describe(scene), "describe"))
    seen, out = set(), []
    for item in pool:  # a question is asked once per conversation
        if item[0] not in seen:
            seen.add(item[0])
            out.append(item)
    return out


# --------------------------------------------------------------------------- the vision side, once per image


@dataclass
class EncodedScene:
    """One image as the language model sees it: the prompt's opening ids with its image tokens, and the frozen
    encoder's output for its tiles (the connector, which may train, runs on it at each step)."""

    scene: dict
    prefix_ids: list[int]
    encoded: object  # torch.Tensor (tiles, patches, encoder width), float16


def encode_scenes(model, processor, scenes: list[dict], seed: int, batch: int = 32, progress: bool = True,
                  desc: str = "encoding scenes") -> list[EncodedScene]:
    """Render each scene (from its own seed), run the processor and the frozen vision encoder once."""
    import torch

    opening = processor.apply_chat_template([{"role": "user", "content": [{"type": "image"}]}], tokenize=False)
    opening = opening[:opening.index("<image>") + len("<image>")]  # "<|im_start|>User:<image>"
    out = []
    side = TILE // PATCH
    encoder = model.model.vision_model
    for start in tqdm(range(0, len(scenes), batch), desc=desc, disable=not progress, unit="batch"):
        chunk = scenes[start:start + batch]
        images = [[render(scene, random.Random(f"instruct-render/{seed}/{start + i}"))] for i, scene in
                  enumerate(chunk)]
        inputs = processor(text=[opening] * len(chunk), images=images, return_tensors="pt", padding=True,
                           padding_side="right", add_special_tokens=False)
        tiles = inputs["pixel_values"]
        real = (tiles != 0).flatten(2).any(2)  # (scenes, max tiles): padding tiles are all zero
        with torch.no_grad():
            hidden = encoder(pixel_values=tiles[real], patch_attention_mask=torch.ones(
                int(real.sum()), side, side, dtype=torch.bool)).last_hidden_state.to(torch.float16)
        per_scene = hidden.split(real.sum(1).tolist())
        for i, scene in enumerate(chunk):
            ids = inputs["input_ids"][i][inputs["attention_mask"][i].bool()].tolist()
            out.append(EncodedScene(scene, ids, per_scene[i].clone()))
    return out


def described_scenes(tokenizer, scenes: list[dict]) -> list[EncodedScene]:
    """The text control: each scene given in words ("There is a red circle and ...") where the image would be.

    Why: it separates the two ways instruction tuning can fail on this model. If the language model learns to
    answer from a description in context but not from the image tokens, the image tokens are the bottleneck;
    if it learns neither, the data or the training budget are."""
    return [EncodedScene(scene, tokenizer(f"<|im_start|>User:{describe(scene)} ", add_special_tokens=False)
                         ["input_ids"], None) for scene in scenes]


# --------------------------------------------------------------------------- batches and the loss


def tokenize_conversation(tokenizer, prefix_ids: list[int], turns: list[tuple]) -> tuple[list[int], list[int]]:
    """(ids, labels) of a multi-turn exchange in SmolVLM's template; labels are -100 except on the answers.

    Each prompt and each answer is tokenised on its own, as TRL tokenises a prompt and its completion, so the
    first turn is token for token what DPO and evaluation feed the model.
    """
    ids, labels = list(prefix_ids), [-100] * len(prefix_ids)
    for turn, (question, answer, *_rest) in enumerate(turns):
        prompt = ("" if turn == 0 else "User:") + f"{question}<end_of_utterance>\nAssistant:"
        reply = f" {answer}<end_of_utterance>\n"
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        reply_ids = tokenizer(reply, add_special_tokens=False)["input_ids"]
        ids += prompt_ids + reply_ids
        labels += [-100] * len(prompt_ids) + reply_ids
    return ids, labels


def plain(model):
    """The Idefics3 model under a PEFT wrapper (LoRA layers are injected in place, so it runs them)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def embed(model, batch_ids, encoded: list):
    """The language model's input embeddings, image-token rows replaced by the connector's output.

    Each item of ``encoded``: the encoder's output for a scene's tiles (tiles, patches, encoder width), run through
    the connector; None for a scene given in words (``described_scenes``); or (tokens, text width), image-token
    embeddings used as they are (a control that bypasses the vision side)."""
    import torch

    model = plain(model)
    inner = model.model
    embeds = inner.text_model.embed_tokens(batch_ids)
    encoded = [item for item in encoded if item is not None]
    if not encoded:
        return embeds
    features = torch.cat(encoded).to(embeds.dtype)
    if features.dim() == 3:
        features = inner.connector(features).flatten(0, 1)  # (tiles x tokens per tile, width)
    mask = batch_ids == model.config.image_token_id
    if int(mask.sum()) != features.shape[0]:
        raise RuntimeError("image tokens and encoded tiles do not line up")
    return embeds.masked_scatter(mask.unsqueeze(-1), features)


def pad(rows: list[list[int]], value: int):
    import torch

    width = max(len(row) for row in rows)
    return torch.tensor([row + [value] * (width - len(row)) for row in rows])


def hidden_states(model, rows: list[list[int]], encoded: list, pad_id: int):
    """Last hidden states of right-padded rows (the connector and the text model only)."""
    ids = pad(rows, pad_id)
    attention = pad([[1] * len(row) for row in rows], 0)
    out = plain(model).model.text_model(inputs_embeds=embed(model, ids, encoded), attention_mask=attention,
                                        use_cache=False)
    return out.last_hidden_state


def answer_loss(model, rows: list[list[int]], labels: list[list[int]], encoded: list, pad_id: int):
    """Mean cross-entropy over answer tokens; logits only where a label is (the vocabulary is 49k wide)."""
    import torch.nn.functional as F

    hidden = hidden_states(model, rows, encoded, pad_id)
    targets = pad(labels, -100)[:, 1:]
    where = targets != -100
    logits = plain(model).lm_head(hidden[:, :-1][where])
    return F.cross_entropy(logits.float(), targets[where])


# --------------------------------------------------------------------------- held-out measurement


def heldout_questions(encoded: list[EncodedScene], seed: int = HELDOUT_SEED) -> list[dict]:
    """Per held-out scene: one present and one absent (adversarial when possible) existence question, one count
    question (the scene's own drawn shape, so counts are even over 0-3) and, where a shape is unique, a colour one."""
    rng = random.Random(f"instruct-heldout/{seed}")
    out = []
    for index, item in enumerate(encoded):
        scene = item.scene
        for absent in (False, True):
            question, answer, kind = exists_qa(scene, rng, absent)
            out.append({"scene": index, "kind": "exists", "question": question, "yes": not absent,
                        "adversarial": absent and _adversarial(scene, question)})
        shapes = [o["shape"] for o in scene["objects"]]
        shape = rng.choice(SHAPES)
        out.append({"scene": index, "kind": "count", "question": f"How many {shape}s are there?", "shape": shape,
                    "truth": shapes.count(shape)})
        unique = [s for s in SHAPES if shapes.count(s) == 1]
        if unique:
            shape = rng.choice(unique)
            out.append({"scene": index, "kind": "color", "question": f"What color is the {shape}?", "shape": shape,
                        "truth": next(o["color"] for o in scene["objects"] if o["shape"] == shape)})
    return out


def _adversarial(scene: dict, question: str) -> bool:
    color, shape = question.removeprefix("Is there a ").removesuffix("?").split()
    return any(o["color"] == color for o in scene["objects"]) and any(o["shape"] == shape for o in scene["objects"])


def _auroc(scores: list[float], positive: list[bool]) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    pos = [s for s, p in zip(scores, positive) if p]
    neg = [s for s, p in zip(scores, positive) if not p]
    if not pos or not neg:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def evaluate(model, tokenizer, encoded: list[EncodedScene], questions: list[dict], batch: int = 48) -> dict:
    """Held-out existence accuracy, yes-ratio and yes/no AUROC (log p(" Yes") - log p(" No") at the first answer
    token), count accuracy (the likeliest of the four count answers, scored whole) and colour accuracy (the
    likeliest colour word after " The SHAPE is"). Teacher-forced: no generation, so it is cheap and exact."""
    import torch

    pad_id = tokenizer.pad_token_id
    yes_id, no_id = (tokenizer(word, add_special_tokens=False)["input_ids"][0] for word in (" Yes", " No"))
    color_ids = [tokenizer(f" {c}", add_special_tokens=False)["input_ids"][0] for c in COLORS]
    rows = []  # (ids, answer length, the question)
    for q in questions:
        prompt = tokenizer(f"{q['question']}<end_of_utterance>\nAssistant:", add_special_tokens=False)["input_ids"]
        base = encoded[q["scene"]].prefix_ids + prompt
        if q["kind"] == "exists":
            rows.append((base, 0, q))
        elif q["kind"] == "color":
            rows.append((base + tokenizer(f" The {q['shape']} is", add_special_tokens=False)["input_ids"], 0, q))
        else:
            for n in range(4):
                answer = tokenizer(f" {count_answer(n, q['shape'])}<end_of_utterance>\n",
                                   add_special_tokens=False)["input_ids"]
                rows.append((base + answer, len(answer), {**q, "candidate": n}))
    scores: dict[int, list] = {}
    model.eval()
    with torch.no_grad():
        for start in range(0, len(rows), batch):
            chunk = rows[start:start + batch]
            hidden = hidden_states(model, [r[0] for r in chunk], [encoded[r[2]["scene"]].encoded for r in chunk],
                                   pad_id)
            for i, (ids, answer_len, q) in enumerate(chunk):
                end = len(ids)
                if answer_len == 0:
                    logp = plain(model).lm_head(hidden[i, end - 1]).float().log_softmax(-1)
                    value = (logp[yes_id] - logp[no_id]).item() if q["kind"] == "exists" else logp[color_ids].tolist()
                    scores[id(q)] = [q, value]
                else:
                    logp = plain(model).lm_head(hidden[i, end - answer_len - 1:end - 1]).float().log_softmax(-1)
                    total = logp.gather(1, torch.tensor(ids[end - answer_len:]).unsqueeze(1)).sum().item()
                    key = (q["scene"], q["question"])
                    scores.setdefault(key, [q, [None] * 4])[1][q["candidate"]] = total
    exists = [(q, s) for q, s in scores.values() if q["kind"] == "exists"]
    counts = [(q, s) for q, s in scores.values() if q["kind"] == "count"]
    colors = [(q, s) for q, s in scores.values() if q["kind"] == "color"]
    said_yes = [s > 0 for _, s in exists]
    adversarial = [(q, s) for q, s in exists if q["adversarial"]]
    return {
        "exists_accuracy": float(np.mean([y == q["yes"] for (q, _), y in zip(exists, said_yes)])),
        "yes_ratio": float(np.mean(said_yes)),
        "exists_auroc": _auroc([s for _, s in exists], [q["yes"] for q, _ in exists]),
        "adversarial_accuracy": float(np.mean([s <= 0 for _, s in adversarial])) if adversarial else float("nan"),
        "count_accuracy": float(np.mean([int(np.argmax(s)) == q["truth"] for q, s in counts])),
        "color_accuracy": float(np.mean([COLORS[int(np.argmax(s))] == q["truth"] for q, s in colors])),
        "questions": {"exists": len(exists), "adversarial": len(adversarial), "count": len(counts),
                      "color": len(colors)},
    }


# --------------------------------------------------------------------------- training


def add_lora(model, r: int, alpha: int, targets: str = "all", train_connector: bool = True):
    """PEFT LoRA on the language model's linear layers (``all``: attention and MLP; ``attention``); the connector
    trains fully when ``train_connector``. Returns the wrapped model and its trainable parameters."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0,
                        target_modules=LORA_TARGETS if targets == "all" else ATTENTION_TARGETS)
    wrapped = get_peft_model(model, config)
    for parameter in plain(wrapped).model.connector.parameters():
        parameter.requires_grad_(train_connector)
    return wrapped, [p for p in wrapped.parameters() if p.requires_grad]


def schedule(steps: int, warmup: int, constant: bool = False):
    """Linear warm-up, then cosine down to a tenth of the peak (``constant``: the peak to the end)."""
    def factor(step):
        decay = 1.0 if constant else 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps))
        return min(1.0, (step + 1) / max(warmup, 1)) * decay
    return factor


def batches(encoded: list[EncodedScene], tokenizer, batch_size: int, epochs: int, seed: int, questions: int,
            absent_share: float):
    """Every step's (ids, labels, encoded) in a fixed order: step k is the same whether or not a run resumed."""
    order_rng = random.Random(f"instruct-order/{seed}")
    step = 0
    for epoch in range(epochs):
        order = list(range(len(encoded)))
        order_rng.shuffle(order)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            rows, labels, feats = [], [], []
            for index in order[start:start + batch_size]:
                rng = random.Random(f"instruct-qa/{seed}/{epoch}/{index}")
                turns = conversation(encoded[index].scene, rng, questions, absent_share)
                ids, lab = tokenize_conversation(tokenizer, encoded[index].prefix_ids, turns)
                rows.append(ids)
                labels.append(lab)
                feats.append(encoded[index].encoded)
            yield step, rows, labels, feats
            step += 1


def train(model, tokenizer, encoded: list[EncodedScene], params: list, steps: int, lr: float, batch_size: int,
          epochs: int, seed: int, questions: int, absent_share: float, progress: bool = True, on_step=None,
          start_step: int = 0, optimizer_state: dict | None = None, constant: bool = False) -> list[float]:
    """Instruction-tune: AdamW, warm-up + cosine; ``on_step(step, losses, optimizer)`` after each step (checkpoints,
    held-out measurements). ``start_step`` with ``optimizer_state`` resumes a run exactly; ``constant`` keeps the
    peak learning rate after the warm-up (for measurements along one run)."""
    import torch

    optimizer = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.98), weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule(steps, min(20, steps // 10 + 1), constant))
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state["optimizer"])
        scheduler.load_state_dict(optimizer_state["scheduler"])
    losses: list[float] = []
    bar = tqdm(total=steps, initial=start_step, desc="demo-smolvlm stage 2 (instruction tuning)",
               disable=not progress, unit="step")
    model.train()
    for step, rows, labels, feats in batches(encoded, tokenizer, batch_size, epochs, seed, questions, absent_share):
        if step >= steps:
            break
        if step < start_step:
            continue
        loss = answer_loss(model, rows, labels, feats, tokenizer.pad_token_id)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        if on_step is not None:
            on_step(step + 1, losses, {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()})
            model.train()
    bar.close()
    model.eval()
    return losses


def steps_for(scenes: int, batch_size: int, epochs: int) -> int:
    return (scenes // batch_size) * epochs


# --------------------------------------------------------------------------- the asset


def stage2_state(wrapped) -> dict:
    """LoRA factors (keys ``MODULE.lora_A`` / ``MODULE.lora_B``, module paths of the plain model) and the connector."""
    import torch

    state = {}
    for name, module in wrapped.named_modules():
        if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
            path = name.removeprefix("base_model.model.")
            state[f"{path}.lora_A"] = module.lora_A["default"].weight
            state[f"{path}.lora_B"] = module.lora_B["default"].weight * module.scaling["default"]  # scale folded in
    connector = plain(wrapped).model.connector
    state |= {f"connector.{k}": v for k, v in connector.state_dict().items()}
    return {k: v.detach().to(torch.float16).contiguous().clone() for k, v in state.items()}


def save_stage2(state: dict, path: str | Path, meta: dict) -> Path:
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp), metadata={k: json.dumps(v) for k, v in meta.items()})
    tmp.replace(path)
    return path


def build_stage2(output: str | Path = STAGE2_OUTPUT, checkpoint: str | Path | None = None, progress: bool = True,
                 heldout_scenes: int = 150, checkpoint_every: int = 25, stop_after: int | None = None,
                 **settings) -> tuple[Path | None, dict]:
    """Train stage 2 on top of the shipped stage-1 model and write its weights.

    Resumable: every ``checkpoint_every`` steps the trainable weights, optimiser state and step go to
    ``checkpoint`` (default OUTPUT.checkpoint.pt), and a later call with the same settings continues from there,
    step for step as an uninterrupted run. ``stop_after`` N: stop after step N with the checkpoint written (to
    split a long build), returning (None, progress so far). Else returns the asset's path and its metadata, with
    the held-out figures of ``evaluate``."""
    import torch

    settings = {**INSTRUCT_DEFAULTS, **settings}
    began = time.monotonic()
    torch.manual_seed(0)
    model, processor = assemble(stage2=None)
    tokenizer = processor.tokenizer
    scene_rng = random.Random(f"instruct-scenes/{INSTRUCT_SEED}")
    scenes = [instruct_scene(scene_rng) for _ in range(settings["scenes"])]
    encoded = encode_scenes(model, processor, scenes, INSTRUCT_SEED, progress=progress)
    wrapped, params = add_lora(model, settings["lora_r"], settings["lora_alpha"], settings["targets"],
                               settings["train_connector"])
    steps = steps_for(settings["scenes"], settings["batch_size"], settings["epochs"])
    checkpoint = Path(checkpoint) if checkpoint else Path(output).with_suffix(".checkpoint.pt")
    start, optimizer_state, previous_losses = 0, None, []
    if checkpoint.is_file():
        saved = torch.load(checkpoint, weights_only=False)
        if saved["settings"] == settings:
            for p, value in zip(params, saved["params"]):
                p.data.copy_(value)
            start, optimizer_state, previous_losses = saved["step"], saved["optimizer"], saved["losses"]
            print(f"resuming stage 2 from step {start} of {steps} ({checkpoint})")

    class Stop(Exception):
        pass

    def on_step(step, losses, optimizer):
        if step < steps and (step % checkpoint_every == 0 or step == stop_after):
            torch.save({"settings": settings, "step": step, "params": [p.detach().clone() for p in params],
                        "optimizer": optimizer, "losses": previous_losses + losses}, checkpoint.with_suffix(".tmp"))
            checkpoint.with_suffix(".tmp").replace(checkpoint)
        if step == stop_after and step < steps:
            raise Stop

    try:
        losses = previous_losses + train(wrapped, tokenizer, encoded, params, steps, settings["lr"],
                                         settings["batch_size"], settings["epochs"], INSTRUCT_SEED,
                                         settings["questions"], settings["absent_share"], progress, on_step, start,
                                         optimizer_state)
    except Stop:
        return None, {"step": stop_after, "steps": steps, "checkpoint": str(checkpoint)}
    held_rng = random.Random(f"instruct-scenes/{HELDOUT_SEED}")
    held = encode_scenes(model, processor, [instruct_scene(held_rng) for _ in range(heldout_scenes)], HELDOUT_SEED,
                         progress=progress, desc="encoding held-out scenes")
    figures = evaluate(wrapped, tokenizer, held, heldout_questions(held))
    meta = {**settings, "seed": INSTRUCT_SEED, "steps": steps, "seconds": round(time.monotonic() - began, 1),
            "final_loss": round(float(np.mean(losses[-20:])), 4), "heldout": figures, "torch": torch.__version__}
    path = save_stage2(stage2_state(wrapped), output, meta)
    checkpoint.unlink(missing_ok=True)
    return path, meta


# --------------------------------------------------------------------------- the command


@dataclass
class Stage2Arguments:
    """``vlm-dpo build-demo-stage2``: build the demo model's stage-2 (instruction-tuning) weights; resumable."""

    output: str = field(default=str(STAGE2_OUTPUT), metadata={"help": "stage-2 weights file to write"})
    scenes: int = field(default=INSTRUCT_DEFAULTS["scenes"], metadata={"help": "instruction scenes (one conversation "
                                                                                 "each)"})
    epochs: int = field(default=INSTRUCT_DEFAULTS["epochs"], metadata={"help": "passes over the scenes"})
    batch_size: int = field(default=INSTRUCT_DEFAULTS["batch_size"], metadata={"help": "conversations per step"})
    lr: float = field(default=INSTRUCT_DEFAULTS["lr"], metadata={"help": "peak learning rate"})
    lora_r: int = field(default=INSTRUCT_DEFAULTS["lora_r"], metadata={"help": "LoRA rank on the language model"})
    absent_share: float = field(default=INSTRUCT_DEFAULTS["absent_share"],
                                metadata={"help": "share of existence questions about absent objects"})
    checkpoint: str | None = field(default=None, metadata={
        "help": "checkpoint file (default OUTPUT.checkpoint.pt): written every 25 steps, resumed from when present"})
    stop_after: int | None = field(default=None, metadata={
        "help": "stop after this step with the checkpoint written; the same command later continues from it"})


ARGUMENTS = (Stage2Arguments,)


def run(args: Stage2Arguments) -> int:
    """``vlm-dpo build-demo-stage2``: train stage 2, write the asset, print the held-out figures."""
    check_writable(args.output, "--output", folder=False)
    path, meta = build_stage2(args.output, args.checkpoint, stop_after=args.stop_after, scenes=args.scenes,
                              epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, lora_r=args.lora_r,
                              lora_alpha=2 * args.lora_r, absent_share=args.absent_share)
    if path is None:
        print(f"stopped after step {meta['step']} of {meta['steps']}; checkpoint {meta['checkpoint']}: run the same "
              "command again to continue")
        return 0
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) in {meta['seconds']:.0f} s; held-out: "
          + json.dumps({k: v for k, v in meta["heldout"].items() if k != "questions"}))
    return 0
