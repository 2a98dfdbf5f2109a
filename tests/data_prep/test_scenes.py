"""The synthetic scene generator: schema, determinism, pixels, question mix and pair wording.

How answers are checked against the scenes is tested in tests/vlm_dpo/eval/test_checks_scenes.py."""

import io
import json
import re
from collections import Counter

import pytest
from PIL import Image

from data_prep.synthetic.scenes import COLORS, QUESTION_TYPES, RGB, generate_rows, main, write_parquet

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
}


@pytest.fixture(scope="module")
def rows():
    return generate_rows(200, seed=0)


def _texts(rows):
    return [json.loads(r["text"]) for r in rows]


def _words(sentence):
    """Lower-case words, plural s dropped, so 'circle' and 'circles' count as shared."""
    return {w.rstrip("s") for w in re.findall(r"[a-z]+", sentence.lower())}


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
        assert 1 <= len(truth["objects"]) <= 3
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
    assert len(sizes) > 30 and any(w != h for w, h in sizes)


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


def test_pairs_differ_but_share_most_words(rows):
    for text in _texts(rows):
        assert text["chosen"] != text["rejected"]
        chosen, rejected = _words(text["chosen"]), _words(text["rejected"])
        assert len(chosen & rejected) / max(len(chosen), len(rejected)) > 0.5, text


def test_yes_no_balanced_and_counts_include_zero(rows):
    texts = _texts(rows)
    yes = [t["chosen"].startswith("Yes") for r, t in zip(rows, texts) if r["question_type"] == "exists"]
    assert len(yes) >= 40 and 0.4 <= sum(yes) / len(yes) <= 0.6
    counts = [t["chosen"] for r, t in zip(rows, texts) if r["question_type"] == "count"]
    assert any(" no " in c for c in counts) and any(" two " in c for c in counts)


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
