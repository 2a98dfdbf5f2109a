"""The offline POPE-style benchmark: POPE's file format, balanced labels, and absent objects picked as each split
says."""

import json
from collections import Counter

from data_prep.synthetic.scenes import adversarial
from data_prep.synthetic.scenes_pope import PAIRS, SPLITS, write_benchmark

QUESTION = "Is there a {} {} in the image?"


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_split_asks_one_present_and_one_absent_object_per_scene(tmp_path):
    folder = write_benchmark(tmp_path, n=30, seed=1)
    counts = lines(folder / "scenes_counts.json")
    scenes = {row["image"]: json.loads(row["scene"]) for row in counts}
    assert len(scenes) == 30 and all((folder / "images" / image).is_file() for image in scenes)
    popularity = Counter((o["color"], o["shape"]) for scene in scenes.values() for o in scene["objects"])
    for split in SPLITS:
        rows = lines(folder / f"scenes_pope_{split}.json")
        assert [row["question_id"] for row in rows] == list(range(1, 61))
        assert Counter(row["label"] for row in rows) == {"yes": 30, "no": 30}
        for row in rows:
            scene = scenes[row["image"]]
            present = {(o["color"], o["shape"]) for o in scene["objects"]}
            pair = next(p for p in PAIRS if QUESTION.format(*p) == row["text"])
            assert (pair in present) == (row["label"] == "yes")
            if row["label"] == "no" and split == "popular":
                assert popularity[pair] == max(popularity[p] for p in PAIRS if p not in present)
            if row["label"] == "no" and split == "adversarial" and len(scene["objects"]) > 1:
                possible = any(adversarial(scene, *p) for p in PAIRS)
                assert adversarial(scene, *pair) or not possible


def test_count_questions_hold_their_scene(tmp_path):
    rows = lines(write_benchmark(tmp_path, n=40, seed=2) / "scenes_counts.json")
    for row in rows:
        shape = row["text"].removeprefix("How many ").removesuffix("s are there?")
        assert int(row["label"]) == sum(o["shape"] == shape for o in json.loads(row["scene"])["objects"])
    assert len({row["label"] for row in rows}) >= 3  # counts spread, not one answer


def test_same_seed_same_benchmark(tmp_path):
    a, b = write_benchmark(tmp_path / "a", n=5, seed=3), write_benchmark(tmp_path / "b", n=5, seed=3)
    for name in ("scenes_pope_random.json", "scenes_counts.json", "images/scene_00004.png"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
