"""data_prep.prepare end to end: RLHF-V parquet with bad rows (exact counts), conversational inputs, hub failure, CLI."""

import io
import json
import time
from collections import Counter

import datasets
import pytest
from PIL import Image

from data_prep import is_prepared, load_prepared, prepare
from data_prep.prepare import image_hash, split_by_image

RLHFV_FEATURES = datasets.Features({
    "ds_name": datasets.Value("string"),
    "image": datasets.Image(),
    "text": datasets.Value("string"),
    "origin_dataset": datasets.Value("string"),
    "origin_split": datasets.Value("string"),
    "idx": datasets.Value("int64"),
    "image_path": datasets.Value("string"),
})
COLORS = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black"]


def png(color: str, size=(48, 36)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def rlhfv_rows() -> tuple[list[dict], dict]:
    """20 good rows on 8 images (several questions per image, as in RLHF-V) and one bad row per kind."""
    def row(image, text):
        text = text if isinstance(text, str) else json.dumps(text)
        return {"ds_name": "RLHF-V", "image": image, "text": text, "origin_dataset": "test",
                "origin_split": "model;detail", "idx": 0, "image_path": "x.png"}

    rows = []
    for i in range(20):
        color = COLORS[i % 8]
        text = {"question": f"What color is picture {i}?", "chosen": f"It is {color}.", "rejected": "It is gray."}
        rows.append(row({"bytes": png(color), "path": f"{color}.png"}, text))
    good = {"question": "What is it?", "chosen": "A square.", "rejected": "A circle."}
    image = {"bytes": png("red"), "path": "red.png"}
    bad = [
        (row({"bytes": b"\xff\xd8\xff corrupt jpeg", "path": "bad.jpg"}, good), "undecodable_image"),
        (row(None, good), "missing_image"),
        (row(image, "{not json"), "text_not_json_object"),
        (row(image, ["What is it?", "A square.", "A circle."]), "text_not_json_object"),
        (row(image, {**good, "question": " "}), "missing_question"),
        (row(image, {**good, "chosen": ""}), "missing_chosen"),
        (row(image, {"question": "What is it?", "chosen": "A square."}), "missing_rejected"),
        (row(image, {**good, "rejected": "A square. "}), "chosen_equals_rejected"),
        (row(image, {**good, "chosen": "red " * 400}), "too_long"),
    ]
    for position, (bad_row, _) in enumerate(bad):  # mixed in, not at the end
        rows.insert(2 * position + 1, bad_row)
    return rows, dict(Counter(reason for _, reason in bad))


@pytest.fixture(scope="module")
def rlhfv_parquet(tmp_path_factory):
    rows, expected = rlhfv_rows()
    path = tmp_path_factory.mktemp("rlhfv") / "train-00000-of-00001.parquet"
    datasets.Dataset.from_list(rows, features=RLHFV_FEATURES).to_parquet(str(path))
    return path, rows, expected


def decoded_hashes(split) -> set[str]:
    return {image_hash(row["images"][0].convert("RGB")) for row in split}


def test_rlhfv_parquet_with_bad_rows_exact_counts(rlhfv_parquet, tmp_path, tiny_processor):
    path, rows, expected = rlhfv_parquet
    out = tmp_path / "prepared"
    report = prepare(str(path), out, processor=tiny_processor, max_length=300, longest_edge=32, test_size=0.25, seed=1)
    saved = json.loads((out / "prep_report.json").read_text())
    assert saved == report
    assert (report["read"], report["kept"], report["skipped"]) == (29, 20, expected)
    assert report["read"] == report["kept"] + sum(report["skipped"].values())
    assert report["layout"] == "rlhfv" and report["read_from"] == ["train"]
    assert report["splits"]["train"] + report["splits"]["test"] == 20 and report["splits"]["test"] >= 5

    assert is_prepared(out) and not is_prepared(path.parent)
    reloaded = datasets.load_from_disk(str(out))
    assert set(reloaded) == {"train", "test"}
    assert {name: len(split) for name, split in reloaded.items()} == report["splits"]
    assert set(reloaded["train"].column_names) == {"images", "prompt", "chosen", "rejected", "source_index",
                                                    "ground_truth"}
    assert not decoded_hashes(reloaded["train"]) & decoded_hashes(reloaded["test"])
    assert not list(tmp_path.glob(".*tmp*"))  # the private cache is gone

    row = load_prepared(out)["train"][0]
    source = json.loads(rows[row["source_index"]]["text"])
    assert row["prompt"] == [{"role": "user", "content": source["question"]}]
    assert row["chosen"] == [{"role": "assistant", "content": source["chosen"]}]
    assert row["rejected"] == [{"role": "assistant", "content": source["rejected"]}]
    assert row["ground_truth"] == "" and row["images"][0].mode == "RGB" and row["images"][0].size == (32, 24)


def test_same_seed_same_split_and_limit(rlhfv_parquet, tmp_path):
    path, _, _ = rlhfv_parquet
    first = prepare(str(path), tmp_path / "a", seed=3)
    again = prepare(str(path.parent), tmp_path / "b", seed=3)  # a folder of parquet files
    indices = [load_prepared(tmp_path / name)["test"]["source_index"] for name in ("a", "b")]
    assert indices[0] == indices[1] and first["splits"] == again["splits"]
    assert first["model"] is None and first["skipped"].get("too_long") is None  # no max_length: no processor
    limited = prepare(str(path), tmp_path / "c", limit=5)
    assert limited["read"] == 5 and limited["kept"] + sum(limited["skipped"].values()) == 5


def test_split_by_image_groups_rows_sharing_an_image():
    hashes = ["a", "b", "a", "c", "b", "d", "a", "e", "f", "g"]
    train, test = split_by_image(hashes, 0.3, seed=0)
    assert sorted(train + test) == list(range(10)) and len(test) >= 3
    assert not {hashes[i] for i in train} & {hashes[i] for i in test}
    assert split_by_image(hashes, 0.3, seed=0) == (train, test)
    assert split_by_image(["a", "b"], 0.1, seed=0)[1] != []  # a small set still gets a test row
    assert split_by_image(["a", "a"], 0.5, seed=0) == ([0, 1], [])  # never empties train
    assert split_by_image(hashes, 0.0, seed=0) == (list(range(10)), [])


def conversational_rows(n: int, strings: bool) -> list[dict]:
    rows = []
    for i in range(n):
        question, chosen, rejected = f"How many shapes in {i}?", f"{i % 3 + 1} shapes.", "No shapes."
        if strings:
            rows.append({"prompt": [{"role": "user", "content": question}],
                         "chosen": [{"role": "assistant", "content": chosen}],
                         "rejected": [{"role": "assistant", "content": rejected}]})
        else:
            rows.append({"prompt": [{"role": "user", "content": [{"type": "image", "text": None},
                                                                 {"type": "text", "text": question}]}],
                         "chosen": [{"role": "assistant", "content": [{"type": "text", "text": chosen}]}],
                         "rejected": [{"role": "assistant", "content": [{"type": "text", "text": rejected}]}]})
    return rows


def test_conversational_saved_folder_keeps_its_test_split(tmp_path):
    """As HuggingFaceH4/rlaif-v_formatted: block contents, an ``images`` list, train and test splits."""
    def split(n, offset):
        rows = conversational_rows(n, strings=False)
        for i, row in enumerate(rows):
            row["images"] = [Image.new("RGB", (30, 20), COLORS[(i + offset) % 8])]
        rows[0]["chosen"] = rows[0]["rejected"]  # one bad row per split
        return datasets.Dataset.from_list(rows)

    datasets.DatasetDict({"train": split(6, 0), "test": split(3, 4)}).save_to_disk(str(tmp_path / "raw"))
    report = prepare(str(tmp_path / "raw"), tmp_path / "out")
    assert report["layout"] == "conversational" and report["read_from"] == ["train", "test"]
    assert report["splits"] == {"train": 5, "test": 2} and report["skipped"] == {"chosen_equals_rejected": 2}
    row = load_prepared(tmp_path / "out")["test"][0]
    assert row["prompt"] == [{"role": "user", "content": "How many shapes in 1?"}]


def test_conversational_jsonl_with_string_contents_and_image_paths(tmp_path):
    lines = []
    for i, row in enumerate(conversational_rows(5, strings=True)):
        image_path = tmp_path / f"{i}.png"
        Image.new("RGBA", (30, 20), (0, 40 * i, 255, 128)).save(image_path)
        lines.append(json.dumps({**row, "image": str(image_path) if i else str(tmp_path / "gone.png")}))
    (tmp_path / "rows.jsonl").write_text("\n".join(lines) + "\n")
    report = prepare(str(tmp_path / "rows.jsonl"), tmp_path / "out", test_size=0.2)
    assert (report["read"], report["kept"], report["skipped"]) == (5, 4, {"missing_image": 1})
    assert load_prepared(tmp_path / "out")["train"][0]["images"][0].mode == "RGB"


def test_every_row_skipped_still_saves_empty_splits(tmp_path):
    rows = [{"image": None, "text": "{}"}, {"image": None, "text": "[]"}]
    datasets.Dataset.from_list(rows).to_json(str(tmp_path / "rows.jsonl"))
    report = prepare(str(tmp_path / "rows.jsonl"), tmp_path / "out")
    assert report["kept"] == 0 and report["skipped"] == {"missing_question": 1, "text_not_json_object": 1}
    assert {name: len(split) for name, split in load_prepared(tmp_path / "out").items()} == {"train": 0, "test": 0}


def test_synthetic_input_carries_ground_truth(tmp_path):
    report = prepare("synthetic:12", tmp_path / "out", test_size=0.25)
    assert report["read"] == 12 and report["kept"] + sum(report["skipped"].values()) == 12
    row = load_prepared(tmp_path / "out")["train"][0]
    assert json.loads(row["ground_truth"])


def test_unknown_layout_names_the_columns(tmp_path):
    datasets.Dataset.from_list([{"question": "q", "answer": "a"}]).to_parquet(str(tmp_path / "x.parquet"))
    with pytest.raises(ValueError, match=r"\['answer', 'question'\].*image, text"):
        prepare(str(tmp_path / "x.parquet"), tmp_path / "out")


def test_hub_id_fails_fast_offline(tmp_path):
    from vlm_dpo.models import HubUnavailableError

    start = time.monotonic()
    with pytest.raises(HubUnavailableError, match="Hugging Face Hub"):
        prepare("openbmb/RLHF-V-Dataset", tmp_path / "out")
    assert time.monotonic() - start < 15
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_missing_input_and_unprepared_folder_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="hub data set id"):
        prepare(str(tmp_path / "nothing.parquet"), tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="python -m data_prep"):
        load_prepared(tmp_path)


def test_cli_prints_a_summary(rlhfv_parquet, tmp_path, capsys):
    from data_prep.__main__ import main

    path, _, expected = rlhfv_parquet
    report = main(["--input", str(path), "--output", str(tmp_path / "out"), "--model", "tiny-smolvlm",
                   "--max_length", "300", "--longest_edge", "32"])
    printed = capsys.readouterr().out
    assert report["skipped"] == expected
    assert "kept 20" in printed and "skipped 1: too_long" in printed and str(tmp_path / "out") in printed
