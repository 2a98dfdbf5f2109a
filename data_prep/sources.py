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
"""

import glob
from dataclasses import dataclass
from pathlib import Path

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


def open_source(input: str, split: str | None = None, limit: int | None = None, seed: int = 42,
                cache_dir: str | None = None) -> Source:
    """Open ``input`` and pick its splits: ``split`` if given, else "train" (plus "test" if present), else
    "train_prefs" (plus "test_prefs", as HuggingFaceH4/ultrafeedback_binarized names them), else all."""
    import datasets

    dataset = _load(input, seed, cache_dir)
    if isinstance(dataset, datasets.Dataset):
        dataset = datasets.DatasetDict({"train": dataset})
    if split is not None:
        if split not in dataset:
            raise ValueError(f"The input has no split {split!r}; it has {list(dataset)}.")
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
    return Source(splits, detect_layout(splits["train"].column_names), read_from)


def detect_layout(columns) -> str:
    columns = set(columns)
    if {"image", "text"} <= columns:
        return "rlhfv"
    if {"prompt", "chosen", "rejected"} <= columns and columns & {"images", "image"}:
        return "conversational"
    if {"prompt", "chosen", "rejected"} <= columns:  # HumanLLMs/Human-Like-DPO-Dataset, UltraFeedback binarized
        return "text"
    expected = "; or ".join(f"{name} ({needs})" for name, needs in LAYOUTS.items())
    raise ValueError(f"Unknown row layout: the input has columns {sorted(columns)}; expected {expected}.")


def iter_rows(dataset, batch_size: int = 64):
    """Rows as plain dicts, images left as stored (``{"bytes", "path"}``, a path or bytes)."""
    for batch in dataset.with_format("arrow").iter(batch_size=batch_size):
        yield from batch.to_pylist()


def _load(input: str, seed: int, cache_dir: str | None):
    import datasets

    if input.startswith("synthetic:"):
        from data_prep.synthetic.scenes import generate_rows

        count = input.removeprefix("synthetic:")
        if not count.isdigit():
            raise ValueError(f"Expected synthetic:N with N a number of rows, got {input!r}.")
        return datasets.Dataset.from_list(generate_rows(int(count), seed))
    if input.startswith("arithmetic:"):
        from data_prep.synthetic.arithmetic import generate_rows as arithmetic_rows

        count = input.removeprefix("arithmetic:")
        if not count.isdigit():
            raise ValueError(f"Expected arithmetic:N with N a number of rows, got {input!r}.")
        return datasets.Dataset.from_list(arithmetic_rows(int(count), seed))
    path = Path(input)
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        return datasets.load_from_disk(input)
    files = _data_files(input)
    if files:
        builder = "parquet" if files[0].endswith(".parquet") else "json"
        # A private cache, removed by the caller: the arrow copy of local files is not worth keeping.
        return datasets.load_dataset(builder, data_files=files, cache_dir=cache_dir)
    if not path.exists() and input.count("/") == 1 and not input.startswith((".", "/")):
        from data_prep.errors import HubUnavailableError
        from data_prep.hub import check_dataset_reachable

        try:
            check_dataset_reachable(input)
        except HubUnavailableError as error:
            raise HubUnavailableError(f"{error} Offline, data_prep reads a local parquet file or folder, "
                                      "or synthetic:N.") from None
        return datasets.load_dataset(input)
    raise FileNotFoundError(
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
        raise ValueError(f"Expected .parquet or .json/.jsonl files, got {sorted(kinds)} from {input!r}.")
    return files
