"""The synthetic scene generator: schema, determinism, pixels, question mix and pair wording.

How answers are checked against the scenes is tested in tests/vlm_dpo/eval/test_checks_scenes.py."""

import io
import json
import re
from collections import Counter

import pytest
from PIL import Image

from data_prep.synthetic.scenes import (
    COLORS,
    QUESTION_TYPES,
    RGB,
    adversarial,
    describe,
    generate_rows,
    main,
    write_parquet,
)

COLUMNS = {
    "ds_name": str,
    "image": dict,
    "text": str,
    "origin_dataset": str,
    "origin_split": str,
    "idx": int,
    "image_path": str,
    "ground_truth": str,
    "question_type": str,
    "group": str,
}


@pytest.fixture(scope="module")
def rows():
    return generate_rows(200, seed=0)


def _texts(rows):
    return [json.loads(r["text"]) for r in rows]


def test_deterministic_per_seed_and_different_across_seeds():
    assert generate_rows(6, seed=7) == generate_rows(6, seed=7)
    assert generate_rows(3, seed=7) == generate_rows(6, seed=7)[:3]  # rows do not depend on n
    other = generate_rows(6, seed=8)
    assert all(a["image"]["bytes"] != b["image"]["bytes"] for a, b in zip(generate_rows(6, seed=7), other))


def test_schema_columns_and_types(rows):
    for i, row in enumerate(rows):
        assert list(row) == list(COLUMNS)
        assert all(isinstance(row[k], t) for k, t in COLUMNS.items())
        assert set(row["image"]) == {"bytes", "path"}
        assert row["image"]["bytes"].startswith(b"\x89PNG")
        assert row["image"]["path"] == row["image_path"]
        assert row["idx"] == i
        assert set(json.loads(row["text"])) == {"question", "chosen", "rejected"}
        assert row["origin_split"] == f"synthetic/{row['question_type']}"
        truth = json.loads(row["ground_truth"])
        assert 1 <= len(truth["objects"]) <= 4
        assert all(set(o) == {"shape", "color", "bbox"} for o in truth["objects"])
    assert len({r["image_path"] for r in rows}) == len(rows)


def _nearest(pixel):
    return min(COLORS, key=lambda c: sum((a - b) ** 2 for a, b in zip(pixel, RGB[c])))


def test_images_match_ground_truth(rows):
    sizes = set()
    for row in rows[:60]:
        truth = json.loads(row["ground_truth"])
        image = Image.open(io.BytesIO(row["image"]["bytes"]))
        assert image.mode == "RGB" and image.size == (truth["width"], truth["height"])
        sizes.add(image.size)
        for obj in truth["objects"]:
            x0, y0, x1, y1 = obj["bbox"]
            assert 0 <= x0 < x1 <= truth["width"] and 0 <= y0 < y1 <= truth["height"]
            assert _nearest(image.getpixel(((x0 + x1) // 2, (y0 + y1) // 2))) == obj["color"]
        r, g, b = image.getpixel((0, 0))  # the border is always background: grey, never a colour
        assert r == g == b
    assert len(sizes) > 20 and any(w != h for w, h in sizes)


def test_every_question_type_appears(rows):
    assert Counter(r["question_type"] for r in rows).keys() == set(QUESTION_TYPES)
    questions = {t["question"] for t in _texts(rows)}
    assert "Describe the image." in questions
    for pattern in (r"What color is the \w+\?", r"How many \w+s are there\?", r"Is there a \w+ \w+\?"):
        assert any(re.fullmatch(pattern, q) for q in questions), pattern


def test_color_questions_ask_about_a_unique_shape(rows):
    for row, text in zip(rows, _texts(rows)):
        if row["question_type"] == "color":
            shape = re.fullmatch(r"What color is the (\w+)\?", text["question"]).group(1)
            assert [o["shape"] for o in json.loads(row["ground_truth"])["objects"]].count(shape) == 1


def _asked_count(row, text):
    shape = re.fullmatch(r"How many (\w+)s are there\?", text["question"]).group(1)
    return [o["shape"] for o in json.loads(row["ground_truth"])["objects"]].count(shape)


@pytest.fixture(scope="module")
def demo_rows():
    """The demo recipe's rows (synthetic:1200 drawn with seed 42)."""
    return generate_rows(1200, seed=42)


def test_true_counts_are_spread_evenly_over_zero_to_three(demo_rows):
    counts = Counter(_asked_count(r, t) for r, t in zip(demo_rows, _texts(demo_rows)) if r["question_type"] == "count")
    assert set(counts) == {0, 1, 2, 3} and max(counts.values()) - min(counts.values()) <= 2, counts
    # so "There is one" is right a quarter of the time, and every count question has a wrong count as rejected
    for row, text in zip(demo_rows, _texts(demo_rows)):
        if row["question_type"] == "count":
            assert text["rejected"] != text["chosen"] and "in the image." in text["rejected"]


def test_half_the_existence_answers_are_yes_and_most_absent_objects_are_adversarial(demo_rows):
    yes, hard, dodges = [], [], 0
    for row, text in zip(demo_rows, _texts(demo_rows)):
        if row["question_type"] != "exists":
            continue
        color, shape = re.fullmatch(r"Is there a (\w+) (\w+)\?", text["question"]).groups()
        yes.append(text["chosen"] == f"Yes, there is a {color} {shape}.")
        if not yes[-1]:
            assert text["chosen"] == f"No, there is no {color} {shape}."
            hard.append(adversarial(json.loads(row["ground_truth"]), color, shape))
            dodges += text["rejected"].startswith("Yes") and f"{color} {shape}" not in text["rejected"]
    assert len(yes) == 300 and sum(yes) == 150
    assert sum(hard) / len(hard) >= 0.5
    assert 0.3 <= dodges / len(hard) <= 0.7  # "Yes, there is a <another object>." is rejected as often as not


def test_describe_rejections_drop_a_group_as_often_as_they_add_one(demo_rows):
    def size(answer):
        return len(re.findall(r"\b(?:a|two|three|four)\b", answer))

    shift = Counter()
    for row, text in zip(demo_rows, _texts(demo_rows)):
        if row["question_type"] == "describe":
            assert text["chosen"] == describe(json.loads(row["ground_truth"]))
            shift[(size(text["rejected"]) > size(text["chosen"])) - (size(text["rejected"]) < size(text["chosen"]))] += 1
    assert shift[1] == shift[-1] > 0


def test_rows_come_in_twos_that_the_text_alone_cannot_rank(demo_rows):
    """Each scene gives two rows: the same question on two images with chosen and rejected swapped, or two questions
    on one image with opposite answers; both rows share a group, which the split keeps together."""
    groups = {}
    for row, text in zip(demo_rows, _texts(demo_rows)):
        groups.setdefault(row["group"], []).append((row, text))
    assert len(groups) == 600 and all(len(pair) == 2 for pair in groups.values())
    kinds = Counter()
    for (row_a, a), (row_b, b) in groups.values():
        assert row_a["question_type"] == row_b["question_type"]
        if a["question"] == b["question"]:
            assert row_a["image"]["bytes"] != row_b["image"]["bytes"]
            kinds["contrast"] += 1
            if row_a["question_type"] in ("color", "describe"):
                assert (a["chosen"], a["rejected"]) == (b["rejected"], b["chosen"])
        else:
            assert row_a["image"]["bytes"] == row_b["image"]["bytes"] and row_a["question_type"] == "exists"
            assert a["chosen"].startswith("Yes") and b["chosen"].startswith("No")
            kinds["twins"] += 1
    assert kinds["contrast"] > 400 and kinds["twins"] > 50


def test_the_split_keeps_each_scene_and_its_copy_on_one_side(tmp_path):
    from data_prep import PrepareOptions, prepare

    prepare(PrepareOptions("synthetic:40", test_size=0.25, data_seed_split=3), tmp_path)
    import datasets

    splits = datasets.load_from_disk(str(tmp_path))
    def layout(truth):  # a scene and its copy share the canvas; other scenes (here) do not
        scene = json.loads(truth)
        return scene["width"], scene["height"], scene["background_level"], scene["background_style"]

    truth = {split: {layout(g) for g in splits[split]["ground_truth"]} for split in ("train", "test")}
    assert splits["test"].num_rows == 10 and len(truth["train"]) + len(truth["test"]) == 20
    assert not truth["train"] & truth["test"]


def test_write_parquet_round_trips(tmp_path):
    import datasets

    path = write_parquet(str(tmp_path / "scenes.parquet"), n=12, seed=3)
    ds = datasets.Dataset.from_parquet(path)
    expected = generate_rows(12, seed=3)
    assert ds.num_rows == 12 and ds.column_names == list(COLUMNS)
    assert isinstance(ds.features["image"], datasets.Image)
    assert ds["text"] == [r["text"] for r in expected]
    truth = json.loads(ds[0]["ground_truth"])
    assert ds[0]["image"].size == (truth["width"], truth["height"])


def test_cli(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0 and "--output" in capsys.readouterr().out
    main(["--n", "4", "--seed", "1", "--output", str(tmp_path / "s.parquet")])
    assert (tmp_path / "s.parquet").exists()
