"""Synthetic scenes in RLHF-V's schema: coloured shapes on grey canvases, with preference pairs.

Why: the offline demo needs preference data whose hallucinations can be checked exactly. Every
row is drawn from a seed, so train and held-out sets are reproducible, and every row carries the
objects it shows (`ground_truth`), so an answer can be scored against what is really there.

Each row has RLHF-V's columns (ds_name, image {bytes, path}, text = JSON of question / chosen /
rejected, origin_dataset, origin_split, idx, image_path) plus `ground_truth` (JSON), `question_type` and
`group`. As in RLHF-V, the rejected answer differs from the chosen one in a detail or two (a colour, a
count, an object, yes/no). The data are built so that no answer wins without looking at the image:
rows come in twos about one scene (twin questions on one image, or one question on the scene and on a
copy with the asked object changed), true counts are spread evenly over 0-3, half the existence answers
are yes, most absent objects asked about are adversarial (their colour and their shape are both in the
scene), and wrong answers include the dodges a model would learn otherwise ("Yes, there is a <another
object>.", "There is one ..."). ``VERSION`` (data_prep.synthetic) changes with the rows.

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

from data_prep.synthetic import VERSION

SHAPES = ("circle", "square", "triangle")
COLORS = ("red", "green", "blue", "yellow")
QUESTION_TYPES = ("describe", "color", "count", "exists")
DS_NAME = "synthetic-scenes"

# Saturated, far from any grey, so an object never blends into the background.
RGB = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (235, 210, 40)}
# Grey levels only (R = G = B): a background can never be mistaken for an object colour.
BACKGROUNDS = {"white": (255, 255), "light gray": (185, 240), "dark gray": (35, 100), "black": (0, 0)}
NUMBER_WORDS = ("no", "one", "two", "three", "four")
ROWS_PER_UNIT = 2  # each scene gives two rows: twin questions on one image, or one question on two images


# --------------------------------------------------------------------------- scenes and images


def draw_layout(rng: random.Random, k: int) -> dict:
    """A canvas, background and ``k`` non-overlapping square boxes (no objects on them yet).

    Boxes are kept apart by a small gap, so each object is fully visible. bbox is [x0, y0, x1, y1] in
    pixels, x1 and y1 exclusive.
    """
    while True:
        # Near-square canvases: SmolVLM's processor stretches an image to whole 64px tiles and its global
        # view to a square, which turned circles on long canvases into ellipses and squares into bars.
        width = rng.randint(48 + 16 * max(0, k - 2), 160)
        height = min(160, max(48, round(width * rng.uniform(0.85, 1.15))))
        short = min(width, height)
        boxes: list[list[int]] = []
        for _ in range(200):
            size = rng.randint(max(10, short // 6), max(10, int(short * (0.5 if k == 1 else 0.36 if k < 4 else 0.3))))
            x0, y0 = rng.randint(1, width - size - 1), rng.randint(1, height - size - 1)
            box = [x0, y0, x0 + size, y0 + size]
            if all(_apart(box, other) for other in boxes):
                boxes.append(box)
                if len(boxes) == k:
                    break
        if len(boxes) == k:
            break
    background = rng.choice(list(BACKGROUNDS))
    return {
        "width": width,
        "height": height,
        "background": background,
        "background_level": rng.randint(*BACKGROUNDS[background]),
        "background_style": rng.choice(("plain", "plain", "gradient", "noise")),
        "boxes": boxes,
    }


def place(layout: dict, objects: list[tuple[str, str, int]]) -> dict:
    """The scene (ground truth) with ``objects`` = (colour, shape, box index) drawn on the layout's boxes;
    objects sorted left to right, the order in which descriptions name them."""
    scene = {key: value for key, value in layout.items() if key != "boxes"}
    placed = [{"shape": shape, "color": color, "bbox": layout["boxes"][box]} for color, shape, box in objects]
    return {**scene, "objects": sorted(placed, key=lambda o: (o["bbox"][0], o["bbox"][1]))}


def draw_scene(rng: random.Random, k: int | None = None) -> dict:
    """A scene of ``k`` (default 1-3) objects of random colour and shape."""
    k = k or rng.randint(1, 3)
    layout = draw_layout(rng, k)
    return place(layout, [(rng.choice(COLORS), rng.choice(SHAPES), i) for i in range(k)])


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


# --------------------------------------------------------------------------- answers


def _phrase(count: int, color: str | None, shape: str, one: str = "a") -> str:
    """'a red circle', 'two red circles', 'no squares'."""
    word = one if count == 1 else NUMBER_WORDS[count]
    return " ".join(x for x in (word, color, shape if count == 1 else shape + "s") if x)


def _there(items: list[tuple[int, str | None, str]], one: str = "a", tail: str = "") -> str:
    """'There is a red circle and two blue squares.' (the verb agrees with the first item)."""
    phrases = [_phrase(*item, one=one) for item in items]
    listed = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    return f"There {'is' if items[0][0] == 1 else 'are'} {listed}{tail}."


def describe(scene: dict) -> str:
    """Every (colour, shape) group with its count, left to right."""
    groups = Counter((o["color"], o["shape"]) for o in scene["objects"])  # keeps left-to-right order
    return _there([(n, color, shape) for (color, shape), n in groups.items()])


def count_answer(n: int, shape: str) -> str:
    # "in the image" keeps enough shared words when the verb and number both change.
    return _there([(n, None, shape)], one="one", tail=" in the image")


def _yes(color: str, shape: str) -> str:
    return f"Yes, there is a {color} {shape}."


def _no(color: str, shape: str) -> str:
    return f"No, there is no {color} {shape}."


def _pairs(scene: dict) -> set[tuple[str, str]]:
    return {(o["color"], o["shape"]) for o in scene["objects"]}


def adversarial(scene: dict, color: str, shape: str) -> bool:
    """True for an absent (colour, shape) whose colour and shape are both in the scene, on other objects (POPE's
    adversarial negatives: only binding the colour to the shape tells it apart)."""
    return ((color, shape) not in _pairs(scene) and any(o["color"] == color for o in scene["objects"])
            and any(o["shape"] == shape for o in scene["objects"]))


# --------------------------------------------------------------------------- scene units: two rows each
#
# Every unit is one scene and two rows about it, so the text of a row never tells its answer:
# - twins: two questions on one image whose answers differ (exists: a present and an absent object);
# - image contrast (mDPO / V-DPO's image-conditioned preference): one question on the scene and on a copy with
#   the asked object recoloured, removed or duplicated; chosen and rejected swap, the text stays the same.
# Both rows carry the unit's ``group``, so the train/held-out split keeps them on one side.


def _exists_unit(rng: random.Random) -> list[tuple]:
    """Twins or a contrast pair: one yes and one no; most no-questions adversarial; half the wrong yeses name
    another object of the scene ("Yes, there is a <present object>.": the dodge that answers without checking)."""
    twins = rng.random() < 0.5
    while True:
        layout = draw_layout(rng, rng.randint(2, 4))  # two objects at least: room for adversarial questions
        objects = [(rng.choice(COLORS), rng.choice(SHAPES), i) for i in range(len(layout["boxes"]))]
        scene = place(layout, objects)
        present = sorted(_pairs(scene))
        if twins:
            asked = rng.choice(present)
            absent = [(c, s) for c in COLORS for s in SHAPES if (c, s) not in present]
            hard = [pair for pair in absent if adversarial(scene, *pair)]
            negative = rng.choice(hard if hard and rng.random() < 0.75 else absent)
            other = scene
        else:  # recolour (or, a quarter of the time, remove) one object: the asked pair disappears
            index = rng.randrange(len(objects))
            color, shape, box = objects[index]
            if sum((c, s) == (color, shape) for c, s, _ in objects) > 1:
                continue
            if rng.random() < 0.75:  # another object of the asked colour makes the recoloured scene adversarial
                mates = [i for i, (c, s, _) in enumerate(objects) if i != index and s != shape]
                if mates:
                    i = rng.choice(mates)
                    objects[i] = (color, objects[i][1], objects[i][2])
            new = [c for c in COLORS if c != color and (c, shape) not in {(x, y) for x, y, _ in objects}]
            if rng.random() < 0.25 or not new:
                changed = objects[:index] + objects[index + 1:]
            else:
                changed = [*objects[:index], (rng.choice(new), shape, box), *objects[index + 1:]]
            scene, other = place(layout, objects), place(layout, changed)
            asked = negative = (color, shape)
        question = "Is there a {} {}?"
        dodge = [pair for pair in sorted(_pairs(other)) if pair != negative]
        wrong_yes = _yes(*rng.choice(dodge)) if dodge and rng.random() < 0.5 else _yes(*negative)
        return [(scene, question.format(*asked), _yes(*asked), _no(*asked)),
                (other, question.format(*negative), _no(*negative), wrong_yes)]


def _partner(n: int) -> int:
    """The count of the contrast scene: 0 <-> 1 and 2 <-> 3, so both rows' true counts stay uniform over 0-3."""
    return n + 1 if n % 2 == 0 else n - 1


def _count_unit(rng: random.Random, n: int) -> list[tuple]:
    """The asked shape ``n`` times (0-3, chosen first), and a contrast copy with one more or one fewer. The wrong
    answer is the other scene's count or, a third of the time when the truth is not one, "There is one" (the
    commonest count: the dodge of a model that does not count)."""
    m = _partner(n)
    shape = rng.choice(SHAPES)
    others = rng.randint(1 if min(n, m) == 0 else 0, 4 - max(n, m))
    layout = draw_layout(rng, max(n, m) + others)
    extra = [(rng.choice(COLORS), rng.choice([s for s in SHAPES if s != shape]), i) for i in range(others)]
    asked = [(rng.choice(COLORS), shape, others + i) for i in range(max(n, m))]
    scenes = {n: place(layout, extra + asked[:n]), m: place(layout, extra + asked[:m])}
    question = f"How many {shape}s are there?"

    def wrong(truth: int, other: int) -> str:
        return count_answer(1 if truth != 1 and other != 1 and rng.random() < 1 / 3 else other, shape)

    return [(scenes[n], question, count_answer(n, shape), wrong(n, m)),
            (scenes[m], question, count_answer(m, shape), wrong(m, n))]


def _color_unit(rng: random.Random) -> list[tuple]:
    """A shape drawn once (so "the circle" is unambiguous), then recoloured: half the time to a colour another object
    has (the dodge of naming a colour seen elsewhere in the image)."""
    while True:
        k = rng.randint(1, 4)
        layout = draw_layout(rng, k)
        objects = [(rng.choice(COLORS), rng.choice(SHAPES), i) for i in range(k)]
        shapes = Counter(s for _, s, _ in objects)
        unique = [i for i, (_, s, _) in enumerate(objects) if shapes[s] == 1]
        if unique:
            break
    index = rng.choice(unique)
    color, shape, box = objects[index]
    seen = [c for c, _, _ in objects if c != color]
    new = rng.choice(seen) if seen and rng.random() < 0.5 else rng.choice([c for c in COLORS if c != color])
    changed = [*objects[:index], (new, shape, box), *objects[index + 1:]]
    question = f"What color is the {shape}?"
    return [(place(layout, objects), question, f"The {shape} is {color}.", f"The {shape} is {new}."),
            (place(layout, changed), question, f"The {shape} is {new}.", f"The {shape} is {color}.")]


def _describe_unit(rng: random.Random) -> list[tuple]:
    """A scene and a copy with one object removed, recoloured or reshaped; each row's rejected answer is the other
    scene's description, so it drops a group exactly as often as it adds one."""
    while True:
        k = rng.randint(1, 4)
        layout = draw_layout(rng, k)
        objects = [(rng.choice(COLORS), rng.choice(SHAPES), i) for i in range(k)]
        index = rng.randrange(k)
        color, shape, box = objects[index]
        op = rng.choice(("remove", "remove", "color", "shape")) if k > 1 else rng.choice(("color", "shape"))
        if op == "color":
            color = rng.choice([c for c in COLORS if c != color])
        elif op == "shape":
            shape = rng.choice([s for s in SHAPES if s != shape])
        changed = objects[:index] + ([] if op == "remove" else [(color, shape, box)]) + objects[index + 1:]
        a, b = place(layout, objects), place(layout, changed)
        if describe(a) != describe(b):
            break
    question = "Describe the image."
    return [(a, question, describe(a), describe(b)), (b, question, describe(b), describe(a))]


def make_unit(unit: int, seed: int = 0) -> list[dict]:
    """The two rows of scene unit ``unit`` (rows ``2 * unit`` and ``2 * unit + 1``), from the unit's own RNG.

    Question types rotate with the unit, and counts cycle through 0-3, so the mix is exact, not just on average.
    """
    rng = random.Random(f"{DS_NAME}/v{VERSION}/{seed}/{unit}")
    qtype = QUESTION_TYPES[unit % len(QUESTION_TYPES)]
    if qtype == "count":
        rows = _count_unit(rng, (unit // len(QUESTION_TYPES)) % 4)
    else:
        rows = {"describe": _describe_unit, "color": _color_unit, "exists": _exists_unit}[qtype](rng)
    render_seed = rng.getrandbits(64)  # one seed for both images: they differ only where the scene does
    out = []
    for offset, (scene, question, chosen, rejected) in enumerate(rows):
        idx = ROWS_PER_UNIT * unit + offset
        buffer = io.BytesIO()
        render(scene, random.Random(render_seed)).save(buffer, format="PNG")
        path = f"scene_s{seed}_{idx:06d}.png"
        out.append({
            "ds_name": DS_NAME,
            "image": {"bytes": buffer.getvalue(), "path": path},
            "text": json.dumps({"question": question, "chosen": chosen, "rejected": rejected}),
            "origin_dataset": DS_NAME,
            "origin_split": f"synthetic/{qtype}",
            "idx": idx,
            "image_path": path,
            "ground_truth": json.dumps(scene),
            "question_type": qtype,
            "group": f"{DS_NAME}/{seed}/{unit}",
        })
    return out


def make_row(idx: int, seed: int = 0) -> dict:
    """Row ``idx``: rows do not depend on n, so a longer set extends a shorter one."""
    return make_unit(idx // ROWS_PER_UNIT, seed)[idx % ROWS_PER_UNIT]


def generate_rows(n: int, seed: int = 0) -> list[dict]:
    """n rows in RLHF-V's schema (+ ground_truth, question_type, group), the same for the same seed."""
    units = (n + ROWS_PER_UNIT - 1) // ROWS_PER_UNIT
    return [row for unit in range(units) for row in make_unit(unit, seed)][:n]


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
                                  "question_type": datasets.Value("string"), "group": datasets.Value("string")})
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
