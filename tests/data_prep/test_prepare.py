"""data_prep.prepare end to end: RLHF-V parquet with bad rows (exact counts), conversational inputs, image paths,
option checks, nothing kept, hub failure, CLI, and no import of vlm_dpo."""

import io
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import datasets
import pytest
from PIL import Image, ImageColor

from data_prep import PrepareOptions, is_prepared, load_prepared, prepare
from data_prep.errors import HubUnavailableError, UserError
from data_prep.prepare import image_hash, split_by_image
from data_prep.synthetic.scenes import rlhfv_features

RLHFV_FEATURES = datasets.Features(rlhfv_features())
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
    report = prepare(PrepareOptions(str(path), image_longest_edge=32, test_size=0.25, data_seed_split=1), out, processor=tiny_processor, max_length=300)
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
    first = prepare(PrepareOptions(str(path), data_seed_split=3), tmp_path / "a")
    again = prepare(PrepareOptions(str(path.parent), data_seed_split=3), tmp_path / "b")  # a folder of parquet files
    indices = [load_prepared(tmp_path / name)["test"]["source_index"] for name in ("a", "b")]
    assert indices[0] == indices[1] and first["splits"] == again["splits"]
    assert first["model"] is None and first["skipped"].get("too_long") is None  # no max_length: no processor
    limited = prepare(PrepareOptions(str(path)), tmp_path / "c", limit=5)
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
    report = prepare(PrepareOptions(str(tmp_path / "raw")), tmp_path / "out")
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
    report = prepare(PrepareOptions(str(tmp_path / "rows.jsonl"), test_size=0.2), tmp_path / "out")
    assert (report["read"], report["kept"], report["skipped"]) == (5, 4, {"missing_image": 1})
    assert load_prepared(tmp_path / "out")["train"][0]["images"][0].mode == "RGB"


def test_nothing_kept_is_an_error_with_every_reason(tmp_path):
    rows = [{"image": None, "text": "{}"}, {"image": None, "text": "[]"}, {"image": None, "text": "[1]"}]
    datasets.Dataset.from_list(rows).to_json(str(tmp_path / "rows.jsonl"))
    with pytest.raises(UserError) as caught:
        prepare(PrepareOptions(str(tmp_path / "rows.jsonl")), tmp_path / "out")
    message = str(caught.value)
    assert "\n" not in message and str(tmp_path / "rows.jsonl") in message and "read 3 rows" in message
    assert "text_not_json_object 2, missing_question 1" in message
    assert not (tmp_path / "out").exists()
    empty = datasets.Dataset.from_dict({"prompt": [], "chosen": [], "rejected": []})
    empty.save_to_disk(str(tmp_path / "none"), num_shards=1)
    with pytest.raises(UserError, match="read 0 rows, nothing to clean"):
        prepare(PrepareOptions(str(tmp_path / "none")), tmp_path / "out")


def write_rows(folder, rows: list[dict], name="rows.jsonl"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder / name


def image_rows(images: list) -> list[dict]:
    return [{"prompt": f"What is in picture {i}?", "chosen": f"Shape {i}.", "rejected": "Nothing.", "image": image}
            for i, image in enumerate(images)]


def test_image_paths_resolve_against_the_data_folder_and_stay_inside(tmp_path, monkeypatch):
    data, other = tmp_path / "data", tmp_path / "other"
    (data / "img").mkdir(parents=True)
    other.mkdir()
    for i, folder in enumerate([data / "img", data / "img", other]):
        Image.new("RGB", (30, 20), COLORS[i]).save(folder / f"{i}.png")
    rows = image_rows(["img/0.png", {"path": "img/1.png"}, "../other/2.png", str(other / "2.png"), "/etc/passwd"])
    path = write_rows(data, rows)
    monkeypatch.chdir(other)  # the working directory plays no part
    report = prepare(PrepareOptions(str(path)), tmp_path / "out")
    assert (report["read"], report["kept"], report["skipped"]) == (5, 2, {"image_outside_data": 3})
    assert report["options"]["image_root"] is None
    allowed = prepare(PrepareOptions(str(path), image_root=other), tmp_path / "out2")
    assert (allowed["kept"], allowed["skipped"]) == (4, {"image_outside_data": 1})  # /etc/passwd still refused
    assert allowed["options"]["image_root"] == str(other.resolve())


def test_image_given_as_path_and_as_struct_in_one_jsonl(tmp_path):
    """datasets stores a column of mixed types as JSON text; the quoted path must still be a path."""
    for i in range(4):
        Image.new("RGB", (30, 20), COLORS[i]).save(tmp_path / f"{i}.png")
    rows = image_rows(["0.png", {"path": "1.png"}, "2.png", {"path": "3.png", "bytes": None}])
    report = prepare(PrepareOptions(str(write_rows(tmp_path, rows)), test_size=0.25), tmp_path / "out")
    assert (report["kept"], report["skipped"]) == (4, {})
    prepared = load_prepared(tmp_path / "out")
    colors = {row["source_index"]: row["images"][0].getpixel((0, 0)) for name in ("train", "test")
              for row in prepared[name]}
    assert colors == {i: ImageColor.getrgb(COLORS[i]) for i in range(4)}


@pytest.mark.parametrize("option, value", [
    ("max_prompt_length", -1), ("max_completion_length", True), ("test_size", 0), ("test_size", 1.0),
    ("test_size", "0.1"), ("test_size", float("nan")), ("image_longest_edge", 15), ("image_longest_edge", 64.0),
    ("data_seed_split", None), ("processor_longest_edge", 0), ("image_root", "/no/such/folder"), ("dataset_name", " "),
])
def test_options_out_of_range_are_errors_naming_the_option(tmp_path, option, value):
    with pytest.raises(UserError, match=f"Option {option}="):
        PrepareOptions(**{"dataset_name": "synthetic:4", option: value})
    options = PrepareOptions("synthetic:4")
    setattr(options, option, value)  # changed after it was made: prepare() checks again
    with pytest.raises(UserError, match=f"Option {option}="):
        prepare(options, tmp_path / "out")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("option, value", [
    ("limit", 0), ("limit", -3), ("limit", 2.5), ("max_length", 0), ("max_length", "1024"), ("split", 3),
])
def test_call_options_out_of_range_are_errors_naming_the_option(tmp_path, tiny_processor, option, value):
    with pytest.raises(UserError, match=f"Option {option}="):
        prepare(PrepareOptions("synthetic:4"), tmp_path / "out", processor=tiny_processor, **{option: value})
    assert not list(tmp_path.iterdir())


def test_token_options_need_a_processor(tmp_path):
    with pytest.raises(UserError, match="max_length counts tokens.*processor="):
        prepare(PrepareOptions("synthetic:4"), tmp_path / "out", max_length=64)
    for option in ("max_prompt_length", "max_completion_length"):
        with pytest.raises(UserError, match=f"{option} counts tokens.*processor="):
            prepare(PrepareOptions("synthetic:4", **{option: 64}), tmp_path / "out")


def test_data_prep_imports_nothing_from_vlm_dpo():
    """data_prep is the lower package; in a fresh interpreter so that other tests' imports do not count."""
    code = (
        "import importlib, pkgutil, sys, data_prep\n"
        "for module in pkgutil.walk_packages(data_prep.__path__, 'data_prep.'):\n"
        "    importlib.import_module(module.name)\n"
        "print(len([m for m in sys.modules if m.startswith('data_prep.')]))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'vlm_dpo'))\n"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    count, loaded = result.stdout.split("\n")[:2]
    assert int(count) >= 10 and loaded == "[]"  # every submodule imported, none of vlm_dpo


def test_synthetic_input_carries_ground_truth(tmp_path):
    report = prepare(PrepareOptions("synthetic:12", test_size=0.25), tmp_path / "out")
    assert report["read"] == 12 and report["kept"] + sum(report["skipped"].values()) == 12
    row = load_prepared(tmp_path / "out")["train"][0]
    assert json.loads(row["ground_truth"])


def test_unknown_layout_names_the_columns(tmp_path):
    datasets.Dataset.from_list([{"question": "q", "answer": "a"}]).to_parquet(str(tmp_path / "x.parquet"))
    with pytest.raises(ValueError, match=r"\['answer', 'question'\].*image, text"):
        prepare(PrepareOptions(str(tmp_path / "x.parquet")), tmp_path / "out")


def test_hub_id_fails_fast_offline(tmp_path):
    start = time.monotonic()
    with pytest.raises(HubUnavailableError, match="Hugging Face Hub"):
        prepare(PrepareOptions("openbmb/RLHF-V-Dataset"), tmp_path / "out")
    assert time.monotonic() - start < 15
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_missing_input_and_unprepared_folder_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="hub data set id"):
        prepare(PrepareOptions(str(tmp_path / "nothing.parquet")), tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="python -m data_prep"):
        load_prepared(tmp_path)


def test_cli_prints_a_summary(rlhfv_parquet, tmp_path, capsys):
    from vlm_dpo.cli import run

    path, _, expected = rlhfv_parquet
    report = run("prepare", ["--input", str(path), "--output", str(tmp_path / "out"), "--model", "tiny-smolvlm",
                             "--max_length", "300", "--longest_edge", "32"])
    printed = capsys.readouterr().out
    assert report["skipped"] == expected
    assert "kept 20" in printed and "skipped 1: too_long" in printed and str(tmp_path / "out") in printed


def test_data_prep_alone_counts_tokens_with_a_model_folder(rlhfv_parquet, tmp_path, tiny_model_dir, capsys):
    """python -m data_prep loads a processor from a folder or the hub itself; the built-in names are vlm-dpo's."""
    from data_prep.__main__ import main

    path, _, expected = rlhfv_parquet
    argv = ["--input", str(path), "--max_length", "300", "--longest_edge", "32"]
    report = main([*argv, "--output", str(tmp_path / "out"), "--model", str(tiny_model_dir)])
    assert report["skipped"] == expected and "kept 20" in capsys.readouterr().out
    with pytest.raises(UserError, match="vlm-dpo prepare"):
        main([*argv, "--output", str(tmp_path / "out2"), "--model", "tiny-smolvlm"])
