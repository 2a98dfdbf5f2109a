"""Synthetic scenes in RLHF-V's schema: coloured shapes on grey canvases, with preference pairs.

Why: the offline demo needs preference data whose hallucinations can be checked exactly. Every
row is drawn from a seed, so train and held-out sets are reproducible, and every row carries the
objects it shows (`ground_truth`), so an answer can be scored against what is really there.

Each row has RLHF-V's columns (ds_name, image {bytes, path}, text = JSON of question / chosen /
rejected, origin_dataset, origin_split, idx, image_path) plus `ground_truth` (JSON) and
`question_type`. As in RLHF-V, the rejected answer is the chosen one with one or two details
hallucinated (a wrong colour, an absent shape, a wrong count, a flipped yes/no), so the pair
differs in a few words only.

Run:
    python -m data_prep.synthetic.scenes --n 300 --seed 0 --output scenes.parquet
    python -c "import datasets; print(datasets.Dataset.from_parquet('scenes.parquet')[0])"
"""

from __future__ import annotations

import argparse
import io
import json
import random
from collections import Counter

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle")
COLORS = ("red", "green", "blue", "yellow")
QUESTION_TYPES = ("describe", "color", "count", "exists")
DS_NAME = "synthetic-scenes"

# Saturated, far from any grey, so an object never blends into the background.
RGB = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (235, 210, 40)}
# Grey levels only (R = G = B): a background can never be mistaken for an object colour.
BACKGROUNDS = {"white": (255, 255), "light gray": (185, 240), "dark gray": (35, 100), "black": (0, 0)}
NUMBER_WORDS = ("no", "one", "two", "three", "four")


# --------------------------------------------------------------------------- scenes and images


def draw_scene(rng: random.Random) -> dict:
    """Sample a scene layout (no pixels yet): canvas, background and 1-3 non-overlapping objects.

    Objects are square boxes kept apart by a small gap, so each is fully visible. Returns the
    ground-truth dict stored with the row; objects are sorted left to right, the order in which
    descriptions name them. bbox is [x0, y0, x1, y1] in pixels, x1 and y1 exclusive.
    """
    while True:
        # Near-square canvases: SmolVLM's processor stretches an image to whole 64px tiles and its global
        # view to a square, which turned circles on long canvases into ellipses and squares into bars.
        width = rng.randint(48, 160)
        height = min(160, max(48, round(width * rng.uniform(0.85, 1.15))))
        k = rng.randint(1, 3)
        short = min(width, height)
        boxes: list[list[int]] = []
        for _ in range(200):
            size = rng.randint(max(10, short // 6), max(10, int(short * (0.5 if k == 1 else 0.36))))
            x0, y0 = rng.randint(1, width - size - 1), rng.randint(1, height - size - 1)
            box = [x0, y0, x0 + size, y0 + size]
            if all(_apart(box, other) for other in boxes):
                boxes.append(box)
                if len(boxes) == k:
                    break
        if len(boxes) == k:
            break
    background = rng.choice(list(BACKGROUNDS))
    objects = [{"shape": rng.choice(SHAPES), "color": rng.choice(COLORS), "bbox": box} for box in boxes]
    return {
        "width": width,
        "height": height,
        "background": background,
        "background_level": rng.randint(*BACKGROUNDS[background]),
        "background_style": rng.choice(("plain", "plain", "gradient", "noise")),
        "objects": sorted(objects, key=lambda o: (o["bbox"][0], o["bbox"][1])),
    }


def _apart(a: list[int], b: list[int], gap: int = 2) -> bool:
    return a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1]


def render(scene: dict, rng: random.Random) -> Image.Image:
    """Draw a scene. Colours are jittered a little so the model learns hues, not exact values."""
    w, h, level = scene["width"], scene["height"], scene["background_level"]
    canvas = np.full((h, w), float(level))
    if scene["background_style"] == "gradient":
        ramp = np.linspace(-1.0, 1.0, w if rng.random() < 0.5 else h) * rng.uniform(8, 25)
        canvas = canvas + (ramp[None, :] if ramp.size == w else ramp[:, None])
    elif scene["background_style"] == "noise":
        canvas = canvas + np.random.default_rng(rng.getrandbits(32)).normal(0.0, 6.0, (h, w))
    grey = np.clip(canvas, 0, 255).astype(np.uint8)
    image = Image.fromarray(np.stack([grey] * 3, axis=-1), "RGB")
    draw = ImageDraw.Draw(image)
    for obj in scene["objects"]:
        _draw_object(draw, obj, tuple(min(255, max(0, c + rng.randint(-15, 15))) for c in RGB[obj["color"]]))
    return image


def _draw_object(draw: ImageDraw.ImageDraw, obj: dict, fill) -> None:
    x0, y0, x1, y1 = obj["bbox"]
    if obj["shape"] == "circle":
        draw.ellipse([x0, y0, x1 - 1, y1 - 1], fill=fill)
    elif obj["shape"] == "square":
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], fill=fill)
    else:
        draw.polygon([(x0, y1 - 1), (x1 - 1, y1 - 1), ((x0 + x1 - 1) / 2, y0)], fill=fill)


def label_map(scene: dict) -> Image.Image:
    """The scene's pixels labelled by object class ("L" image): 0 background, else ``1 + object_class(obj)``.

    Drawn with the same geometry as ``render``, for the demo's dense vision pre-training (``vlm_dpo.models.demo``).
    """
    image = Image.new("L", (scene["width"], scene["height"]), 0)
    draw = ImageDraw.Draw(image)
    for obj in scene["objects"]:
        _draw_object(draw, obj, 1 + object_class(obj))
    return image


def object_class(obj: dict) -> int:
    """0..11: colour-major index of an object's (colour, shape)."""
    return COLORS.index(obj["color"]) * len(SHAPES) + SHAPES.index(obj["shape"])


# --------------------------------------------------------------------------- questions and answers


def _phrase(count: int, color: str | None, shape: str, one: str = "a") -> str:
    """'a red circle', 'two red circles', 'no squares'."""
    word = one if count == 1 else NUMBER_WORDS[count]
    return " ".join(x for x in (word, color, shape if count == 1 else shape + "s") if x)


def _there(items: list[tuple[int, str | None, str]], one: str = "a", tail: str = "") -> str:
    """'There is a red circle and two blue squares.' (the verb agrees with the first item)."""
    phrases = [_phrase(*item, one=one) for item in items]
    listed = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    return f"There {'is' if items[0][0] == 1 else 'are'} {listed}{tail}."


def _describe(rng: random.Random, scene: dict) -> tuple[str, str, str]:
    """Chosen names every (colour, shape) group; rejected alters one or two groups or adds one."""
    groups = Counter((o["color"], o["shape"]) for o in scene["objects"])  # keeps left-to-right order
    items = [(n, color, shape) for (color, shape), n in groups.items()]
    chosen = _there(items)
    wrong = list(items)
    taken = set(groups)  # pairs in the scene or already named: a new pair must be neither
    targets = rng.sample(range(len(items)), 2 if len(items) > 1 and rng.random() < 0.35 else 1)
    for t in targets:
        n, color, shape = wrong[t]
        op = rng.choice(("color", "shape", "count", "add"))
        colors = [c for c in COLORS if (c, shape) not in taken]
        shapes = [s for s in SHAPES if (color, s) not in taken]
        if op == "color" and colors:
            wrong[t] = (n, rng.choice(colors), shape)
        elif op == "shape" and shapes:
            wrong[t] = (n, color, rng.choice(shapes))
        elif op == "add":
            new = rng.choice([(c, s) for c in COLORS for s in SHAPES if (c, s) not in taken])
            wrong.insert(rng.randint(1, len(wrong)), (1, *new))  # not first: keeps "There is/are"
        else:  # only upwards: "a red circle" for two red circles is vague, not false
            wrong[t] = (n + 1, color, shape)
        taken |= {(c, s) for _, c, s in wrong}
    return "Describe the image.", chosen, _there(wrong)


def _color(rng: random.Random, scene: dict) -> tuple[str, str, str] | None:
    """Asked only of a shape drawn exactly once, so 'the circle' is unambiguous."""
    counts = Counter(o["shape"] for o in scene["objects"])
    unique = [o for o in scene["objects"] if counts[o["shape"]] == 1]
    if not unique:
        return None
    obj = rng.choice(unique)
    other = rng.choice([c for c in COLORS if c != obj["color"]])
    shape = obj["shape"]
    return f"What color is the {shape}?", f"The {shape} is {obj['color']}.", f"The {shape} is {other}."


def _count(rng: random.Random, scene: dict) -> tuple[str, str, str]:
    """Mostly shapes that are there; a quarter of the time one that is not (answer: none)."""
    counts = Counter(o["shape"] for o in scene["objects"])
    absent = [s for s in SHAPES if s not in counts]
    shape = rng.choice(absent if absent and rng.random() < 0.25 else sorted(counts))
    n = counts[shape]
    wrong = rng.choice([m for m in (n - 1, n + 1) if m >= 0])  # a near miss, the likely mistake
    # "in the image" keeps enough shared words when the verb and number both change.
    chosen, rejected = (_there([(m, None, shape)], one="one", tail=" in the image") for m in (n, wrong))
    return f"How many {shape}s are there?", chosen, rejected


def _exists(rng: random.Random, scene: dict, yes: bool) -> tuple[str, str, str]:
    present = sorted({(o["color"], o["shape"]) for o in scene["objects"]})
    absent = [(c, s) for c in COLORS for s in SHAPES if (c, s) not in present]
    color, shape = rng.choice(present if yes else absent)
    pos, neg = f"Yes, there is a {color} {shape}.", f"No, there is no {color} {shape}."
    return f"Is there a {color} {shape}?", *((pos, neg) if yes else (neg, pos))


# --------------------------------------------------------------------------- rows


def make_row(idx: int, seed: int = 0) -> dict:
    """One row, from its own RNG: rows do not depend on n, so a longer set extends a shorter one.

    Question types rotate with idx and yes/no alternates, so every type is present and
    existence questions are balanced exactly, not just on average.
    """
    rng = random.Random(f"{DS_NAME}/{seed}/{idx}")
    qtype = QUESTION_TYPES[idx % len(QUESTION_TYPES)]
    qa = None
    while qa is None:
        scene = draw_scene(rng)
        if qtype == "describe":
            qa = _describe(rng, scene)
        elif qtype == "color":
            qa = _color(rng, scene)
        elif qtype == "count":
            qa = _count(rng, scene)
        else:
            qa = _exists(rng, scene, yes=(idx // len(QUESTION_TYPES)) % 2 == 0)
    buffer = io.BytesIO()
    render(scene, rng).save(buffer, format="PNG")
    path = f"scene_s{seed}_{idx:06d}.png"
    question, chosen, rejected = qa
    return {
        "ds_name": DS_NAME,
        "image": {"bytes": buffer.getvalue(), "path": path},
        "text": json.dumps({"question": question, "chosen": chosen, "rejected": rejected}),
        "origin_dataset": DS_NAME,
        "origin_split": f"synthetic/{qtype}",
        "idx": idx,
        "image_path": path,
        "ground_truth": json.dumps(scene),
        "question_type": qtype,
    }


def generate_rows(n: int, seed: int = 0) -> list[dict]:
    """n rows in RLHF-V's schema (+ ground_truth, question_type), the same for the same seed."""
    return [make_row(i, seed) for i in range(n)]


def rlhfv_features():
    """The columns of openbmb/RLHF-V-Dataset as the hub serves them (``image`` an Image feature: bytes and path)."""
    import datasets

    return {"ds_name": datasets.Value("string"), "image": datasets.Image(), "text": datasets.Value("string"),
            "origin_dataset": datasets.Value("string"), "origin_split": datasets.Value("string"),
            "idx": datasets.Value("int64"), "image_path": datasets.Value("string")}


def write_parquet(path: str, n: int, seed: int = 0) -> str:
    """Write n rows as parquet through `datasets`, so the image column reads back as an Image
    feature (struct of bytes and path), as the hub serves RLHF-V."""
    import datasets

    features = datasets.Features({**rlhfv_features(), "ground_truth": datasets.Value("string"),
                                  "question_type": datasets.Value("string")})
    datasets.Dataset.from_list(generate_rows(n, seed), features=features).to_parquet(path)
    return path


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m data_prep.synthetic.scenes", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300, help="number of rows (default 300)")
    parser.add_argument("--seed", type=int, default=0, help="seed; the same seed gives the same rows")
    parser.add_argument("--output", default="scenes.parquet", help="parquet file to write")
    args = parser.parse_args(argv)
    write_parquet(args.output, args.n, args.seed)
    first = json.loads(make_row(0, args.seed)["text"])
    print(f"wrote {args.n} rows to {args.output}; example: {first}")


if __name__ == "__main__":
    main()
