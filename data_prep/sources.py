"""Open the input and recognise its row layout.

    openbmb/RLHF-V-Dataset          a hub data set (checked first: without the hub, a clear error in seconds)
    rlhfv.parquet, 'data/*.parquet'  local parquet file(s), or a folder holding them
    rows.jsonl, rows.json            JSON lines / JSON
    saved/                          a folder written by datasets' save_to_disk (Dataset or DatasetDict)
    synthetic:200                   200 rows from data_prep.synthetic.scenes (RLHF-V schema + ground truth)
    arithmetic:200                  200 text rows from data_prep.synthetic.arithmetic (exact answers; the text demo)

Rows are read in arrow format (``iter_rows``), so datasets never decodes an image: a corrupt one
reaches ``images.decode`` and becomes a counted skip instead of a crash, and, unlike casting to
``Image(decode=False)``, nothing rewrites the data or leaves cache files next to the input.

A local input has a folder (``Source.root``): the one image paths in its rows are relative to, and must stay in.
A JSON file datasets cannot read is an ``InputError`` naming the file and the first line that is not a row.
"""

import glob
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

from data_prep.errors import HubUnavailableError, InputError, MissingInputError
from data_prep.hub import check_dataset_reachable
from data_prep.synthetic.arithmetic import generate_rows as arithmetic_rows
from data_prep.synthetic.scenes import generate_rows

LAYOUTS = {
    "rlhfv": "image, text (JSON with question / chosen / rejected)",
    "conversational": "prompt, chosen, rejected, and images or image",
    "text": "prompt, chosen, rejected without images, as strings or chat messages (text-only models)",
}


@dataclass
class Source:
    splits: dict  # "train" (and "test" when the input has one) -> datasets.Dataset
    layout: str  # a key of LAYOUTS
    read_from: list[str]  # the input's splits that were read; several are concatenated into "train"
    root: Path | None = None  # the local data's folder (absolute); None for generated and hub data


def open_source(input: str, split: str | None = None, limit: int | None = None, seed: int = 42,
                cache_dir: str | None = None) -> Source:
    """Open ``input`` and pick its splits: ``split`` if given, else "train" (plus "test" if present), else
    "train_prefs" (plus "test_prefs", as HuggingFaceH4/ultrafeedback_binarized names them), else all."""
    import datasets

    dataset, root = _load(input, seed, cache_dir)
    if isinstance(dataset, datasets.Dataset):
        dataset = datasets.DatasetDict({"train": dataset})
    if split is not None:
        if split not in dataset:
            raise InputError(f"The input {input} has no split {split!r} (option split); it has {list(dataset)}.")
        splits, read_from = {"train": dataset[split]}, [split]
    elif "train" in dataset:
        splits = {name: dataset[name] for name in ("train", "test") if name in dataset}
        read_from = list(splits)
    elif "train_prefs" in dataset:  # HuggingFaceH4's preference sets (ultrafeedback_binarized): *_prefs, not *_sft
        read_from = [name for name in ("train_prefs", "test_prefs") if name in dataset]
        splits = {name.removesuffix("_prefs"): dataset[name] for name in read_from}
    else:
        splits, read_from = {"train": datasets.concatenate_datasets(list(dataset.values()))}, list(dataset)
    if limit is not None:
        splits = {name: rows.select(range(min(limit, len(rows)))) for name, rows in splits.items()}
    return Source(splits, detect_layout(splits["train"].column_names), read_from, root)


def detect_layout(columns) -> str:
    columns = set(columns)
    if {"image", "text"} <= columns:
        return "rlhfv"
    if {"prompt", "chosen", "rejected"} <= columns and columns & {"images", "image"}:
        return "conversational"
    if {"prompt", "chosen", "rejected"} <= columns:  # HumanLLMs/Human-Like-DPO-Dataset, UltraFeedback binarized
        return "text"
    expected = "; or ".join(f"{name} ({needs})" for name, needs in LAYOUTS.items())
    raise InputError(f"Unknown row layout: the input has columns {sorted(columns)}; expected {expected}.")


def iter_rows(dataset, batch_size: int = 64):
    """Rows as plain dicts, images left as stored (``{"bytes", "path"}``, a path or bytes).

    A JSON column whose values differ in type from row to row (an image given as a path here and as
    ``{"path": ...}`` there) is stored by datasets as JSON text; such values are decoded back.
    """
    features = dataset.features
    for batch in dataset.with_format("arrow").iter(batch_size=batch_size):
        for row in batch.to_pylist():
            yield {name: _from_json(value, features[name]) for name, value in row.items()}


def _from_json(value, feature):
    """``value`` with the parts that ``feature`` marks as ``Json`` (stored as JSON text) parsed."""
    from datasets.features import Json

    if value is None:
        return None
    if isinstance(feature, Json):
        return json.loads(value) if isinstance(value, str) else value
    if isinstance(feature, dict):
        return {key: _from_json(value.get(key), sub) for key, sub in feature.items()}
    if hasattr(feature, "feature"):  # List, LargeList
        return [_from_json(item, feature.feature) for item in value]
    return value


def _load(input: str, seed: int, cache_dir: str | None):
    """The input as a Dataset or DatasetDict, and its folder (``Source.root``)."""
    import datasets

    if input.startswith("synthetic:"):
        count = input.removeprefix("synthetic:")
        if not count.isdigit():
            raise InputError(f"Expected synthetic:N with N a number of rows, got {input!r}.")
        return datasets.Dataset.from_list(generate_rows(int(count), seed)), None
    if input.startswith("arithmetic:"):
        count = input.removeprefix("arithmetic:")
        if not count.isdigit():
            raise InputError(f"Expected arithmetic:N with N a number of rows, got {input!r}.")
        return datasets.Dataset.from_list(arithmetic_rows(int(count), seed)), None
    path = Path(input)
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        try:
            return datasets.load_from_disk(input), path.resolve()
        except Exception as error:  # noqa: BLE001 -- a damaged folder fails inside datasets with any error
            raise InputError(f"Cannot read the saved data set {input}: {type(error).__name__}: {error}") from None
    files = _data_files(input)
    if files:
        builder = "parquet" if files[0].endswith(".parquet") else "json"
        try:
            # A private cache, removed by the caller: the arrow copy of local files is not worth keeping.
            dataset = datasets.load_dataset(builder, data_files=files, cache_dir=cache_dir)
        except Exception as error:  # noqa: BLE001 -- datasets wraps arrow's errors (and raises StopIteration if empty)
            check = _json_problem if builder == "json" else _parquet_problem
            problem = next(filter(None, map(check, files)), None)
            cause = error.__cause__ or error
            raise InputError(problem or f"Cannot read {input}: {type(cause).__name__}: {cause}") from None
        return dataset, _folder(input)
    if not path.exists() and input.count("/") == 1 and not input.startswith((".", "/")):
        try:
            check_dataset_reachable(input)
        except HubUnavailableError as error:
            raise HubUnavailableError(f"{error} Offline, data_prep reads a local parquet file or folder, "
                                      "or synthetic:N.") from None
        return datasets.load_dataset(input), None
    raise MissingInputError(
        f"Input {input!r} is not a parquet/json(l) file, a folder of parquet files, a folder saved by datasets, "
        "synthetic:N, or a hub data set id (owner/name)."
    )


def _data_files(input: str) -> list[str]:
    """The parquet or JSON files named by a file, a folder (parquet, recursively) or a glob pattern."""
    path = Path(input)
    if path.is_dir():
        files = sorted(str(file) for file in path.rglob("*.parquet"))
    elif any(char in input for char in "*?["):
        files = sorted(glob.glob(input))
    else:
        files = [input] if path.is_file() else []
    kinds = {Path(file).suffix for file in files}
    if kinds and not (kinds == {".parquet"} or kinds <= {".json", ".jsonl"}):
        raise InputError(f"Expected .parquet or .json/.jsonl files, got {sorted(kinds)} from {input!r}.")
    return files


def _folder(input: str) -> Path:
    """The folder of a file, a folder, or a glob pattern (its part before the first wildcard)."""
    path = Path(input)
    if path.is_dir():
        return path.resolve()
    if path.is_file():
        return path.parent.resolve()
    fixed = list(itertools.takewhile(lambda part: not set(part) & set("*?["), path.parts))
    return Path(*fixed).resolve() if fixed else Path.cwd()


def _parquet_problem(file: str) -> str | None:
    """Why a parquet file holds no rows; None when it has some (or cannot be read: datasets' error says why)."""
    import pyarrow.parquet

    try:
        rows = pyarrow.parquet.ParquetFile(file).metadata.num_rows
    except Exception:  # noqa: BLE001 -- not parquet at all: the caller reports datasets' own error
        return None
    return f"{file} holds no rows." if rows == 0 else None


def _json_problem(file: str) -> str | None:
    """Why a JSON / JSON Lines file holds no rows, naming the file and line; None when it looks fine."""
    text = Path(file).read_text(encoding="utf-8", errors="replace")
    advice = "a .jsonl file holds one JSON object (a row) per line; a .json file may also hold a list of objects"
    if not text.strip():
        return f"{file} is empty: {advice}."
    if text.lstrip()[0] in "[{":  # one JSON document: a list of rows (or an object datasets reads by columns)
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            if text.lstrip()[0] == "[":  # a list, not JSON Lines
                return f"{file}, line {error.lineno}: {error.msg} (column {error.colno}): {advice}."
            document = None  # JSON Lines, presumably: the line-by-line check names the line
        if document == []:
            return f"{file} holds an empty list: no rows."
        if isinstance(document, list):
            bad = next((index for index, row in enumerate(document) if not isinstance(row, dict)), None)
            return None if bad is None else f"{file}: item {bad} of the list is not a JSON object: {advice}."
        if document is not None:
            return None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            return f"{file}, line {number}: {error.msg} (column {error.colno}): {advice}."
        if not isinstance(row, dict):
            return f"{file}, line {number}: a JSON {type(row).__name__}, not an object: {advice}."
    return None
