"""A POPE-style benchmark on generated scenes, written in POPE's own file format, so that the offline demo is scored
the way the field scores real models (``vlm-dpo eval --benchmark scenes``).

    python -m data_prep.synthetic.scenes_pope --output_dir bench/scenes --n 300

For each scene (a seed that neither the DPO data nor the demo model's stage 1 draws from), every split asks about
one present object (label yes) and one absent object (label no), as POPE does; the splits differ in how the absent
object is picked (POPE, Li et al. 2023, section 4): ``random`` any absent (colour, shape); ``popular`` the most
frequent (colour, shape) of the whole benchmark that is absent here; ``adversarial`` one whose colour and shape
are both in the scene on other objects (one of them when the scene has a single object). A fourth file asks how
many of a shape there are (0 to 3), with the scene as ground truth.

Writes ``images/scene_NNNNN.png``, ``scenes_pope_{random,popular,adversarial}.json`` (JSON lines:
``{"question_id", "image", "text", "label"}``) and ``scenes_counts.json`` (the same, plus ``scene``).
"""

import argparse
import json
import random
from collections import Counter
from pathlib import Path

from tqdm.auto import tqdm

from data_prep.synthetic.scenes import COLORS, SHAPES, adversarial, draw_scene, render

SEED = 31337  # not the DPO data's (data_seed_split, 42 by default) nor the demo's stage 1 (7919)
SPLITS = ("random", "popular", "adversarial")
PAIRS = [(color, shape) for color in COLORS for shape in SHAPES]


def question(color: str, shape: str) -> str:
    return f"Is there a {color} {shape} in the image?"


def absent_pick(split: str, scene: dict, rng: random.Random, popularity: Counter) -> tuple[str, str]:
    """The absent (colour, shape) a split asks about in ``scene``."""
    present = {(o["color"], o["shape"]) for o in scene["objects"]}
    absent = [pair for pair in PAIRS if pair not in present]
    if split == "popular":
        return max(absent, key=lambda pair: (popularity[pair], -PAIRS.index(pair)))
    if split == "adversarial":
        both = [pair for pair in absent if adversarial(scene, *pair)]
        either = [pair for pair in absent if any(pair[0] == c or pair[1] == s for c, s in present)]
        return rng.choice(both or either)
    return rng.choice(absent)


def write_benchmark(output_dir: str | Path, n: int = 300, seed: int = SEED) -> Path:
    """Write ``n`` scenes and their questions into ``output_dir``; returns it."""
    output_dir = Path(output_dir)
    (output_dir / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    scenes = [draw_scene(rng) for _ in range(n)]
    popularity = Counter((o["color"], o["shape"]) for scene in scenes for o in scene["objects"])
    lines = {split: [] for split in (*SPLITS, "counts")}
    for index, scene in enumerate(tqdm(scenes, desc="scenes", unit="scene")):
        image = f"scene_{index:05d}.png"
        render(scene, rng).save(output_dir / "images" / image)
        present = rng.choice(scene["objects"])
        for split in SPLITS:
            asked = [((present["color"], present["shape"]), "yes"), (absent_pick(split, scene, rng, popularity), "no")]
            rng.shuffle(asked)
            for (color, shape), label in asked:
                lines[split].append({"image": image, "text": question(color, shape), "label": label})
        shape = rng.choice(SHAPES)
        count = sum(o["shape"] == shape for o in scene["objects"])
        lines["counts"].append({"image": image, "text": f"How many {shape}s are there?", "label": str(count),
                                "scene": json.dumps(scene)})
    for name, rows in lines.items():
        path = output_dir / f"scenes_{'pope_' if name in SPLITS else ''}{name}.json"
        path.write_text("".join(json.dumps({"question_id": i + 1, **row}) + "\n" for i, row in enumerate(rows)))
    return output_dir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m data_prep.synthetic.scenes_pope", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", required=True, help="folder to write the images and question files to")
    parser.add_argument("--n", type=int, default=300, help="number of scenes")
    parser.add_argument("--seed", type=int, default=SEED, help="seed of the scenes")
    args = parser.parse_args(argv)
    print(write_benchmark(args.output_dir, args.n, args.seed))


if __name__ == "__main__":
    main()
