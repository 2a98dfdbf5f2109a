"""data_prep.sources: JSON input that is empty or malformed is an error naming the file and line; columns of mixed
types come back decoded; a local input knows its folder."""

import json

import pytest

from data_prep.errors import UserError
from data_prep.sources import iter_rows, open_source

ROW = {"prompt": "What is it?", "chosen": "A cat.", "rejected": "A dog."}


def read(path, tmp_path):
    return open_source(str(path), cache_dir=str(tmp_path / "cache"))


@pytest.mark.parametrize("name, text, where", [
    ("empty.jsonl", "", "is empty"),
    ("blank.jsonl", "\n\n  \n", "is empty"),
    ("broken.jsonl", json.dumps(ROW) + "\n{not json\n", "line 2: Expecting property name"),
    ("list_row.jsonl", json.dumps(ROW) + "\n\n[1, 2]\n", "line 3: a JSON list, not an object"),
    ("string_row.jsonl", '"just text"\n', "line 1: a JSON str, not an object"),
    ("broken.json", '[\n  {"prompt": "a"},\n  {"prompt": }\n]\n', "line 3: Expecting value"),
    ("items.json", '[{"prompt": "a"}, 3]', "item 1 of the list is not a JSON object"),
    ("no_items.json", "[]", "an empty list: no rows"),
])
def test_unreadable_json_names_the_file_and_line(tmp_path, name, text, where):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(UserError, match=where) as caught:
        read(path, tmp_path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_empty_or_broken_parquet_is_named(tmp_path):
    import datasets

    empty = tmp_path / "empty.parquet"
    datasets.Dataset.from_list([ROW]).select([]).to_parquet(str(empty))
    with pytest.raises(UserError, match="empty.parquet holds no rows"):
        read(empty, tmp_path)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet")
    with pytest.raises(UserError, match="Cannot read .*broken.parquet: ArrowInvalid"):
        read(broken, tmp_path)


def test_damaged_saved_folder_is_named(tmp_path):
    import datasets

    datasets.Dataset.from_dict({"prompt": []}).save_to_disk(str(tmp_path / "saved"))  # no shard: unreadable
    with pytest.raises(UserError, match="Cannot read the saved data set .*saved"):
        read(tmp_path / "saved", tmp_path)


def test_columns_of_mixed_types_come_back_decoded(tmp_path):
    rows = [{**ROW, "image": "a.png"}, {**ROW, "image": {"path": "b.png"}},
            {**ROW, "prompt": [{"role": "user", "content": "Why?"}], "image": None}]
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    source = read(path, tmp_path)
    decoded = list(iter_rows(source.splits["train"]))
    assert [row["image"] for row in decoded] == ["a.png", {"path": "b.png"}, None]
    assert [row["prompt"] for row in decoded] == ["What is it?", "What is it?", [{"role": "user", "content": "Why?"}]]
    assert [row["chosen"] for row in decoded] == ["A cat."] * 3


def test_local_inputs_know_their_folder(tmp_path, monkeypatch):
    data = tmp_path / "data"
    (data / "part").mkdir(parents=True)
    path = data / "part" / "rows.jsonl"
    path.write_text(json.dumps({**ROW, "image": "x.png"}) + "\n")
    assert read(path, tmp_path).root == (data / "part").resolve()
    assert read(data / "*" / "rows.jsonl", tmp_path).root == data.resolve()  # a glob: its fixed part
    monkeypatch.chdir(data)
    assert read("part/rows.jsonl", tmp_path).root == (data / "part").resolve()  # absolute, whatever the cwd
    assert open_source("synthetic:2").root is None


def test_unknown_split_and_layout_are_user_errors(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"question": "q", "answer": "a"}) + "\n")
    with pytest.raises(UserError, match=r"Unknown row layout.*\['answer', 'question'\]"):
        read(path, tmp_path)
    with pytest.raises(UserError, match="no split 'dev'"):
        open_source("synthetic:2", split="dev")
