"""Read -> clean -> split -> save, and the two doors the trainer uses to find the result.

    from data_prep import PrepareOptions, load_prepared, prepare
    report = prepare(PrepareOptions("rlhfv.parquet"), "data/rlhfv", processor=processor, max_length=1024)
    dataset = load_prepared("data/rlhfv")      # DatasetDict: "train", "test"

The saved rows are TRL's conversational vision layout (``images``, ``prompt``, ``chosen``,
``rejected``) plus ``source_index`` and ``ground_truth``; text pairs (layout ``text``) are the same without
``images``, TRL's conversational text layout; ``prep_report.json`` beside them says
what was read, kept and skipped, with ``read == kept + sum(skipped.values())``. Nothing kept is an error, not
an empty data set.
"""

import hashlib
import json
import os
import random
import shutil
import tempfile
from collections import Counter
from pathlib import Path

from tqdm.auto import tqdm

from data_prep.budget import TokenBudget
from data_prep.chat import messages
from data_prep.errors import InputError, MissingInputError
from data_prep.images import SkipRow, encode
from data_prep.options import PrepareOptions, check_limit, fail
from data_prep.pairs import to_pair
from data_prep.pids import process_alive
from data_prep.processors import is_vision_processor
from data_prep.sources import iter_rows, open_source

REPORT_NAME = "prep_report.json"
CHUNK_ROWS = 256  # cleaned rows held as Python objects before they join the arrow table
STAMP_BYTES = 64 * 1024


def prepare(options: PrepareOptions, output_dir: str | Path, *, processor=None, model_name: str | None = None,
            max_length: int | None = None, limit: int | None = None, split: str | None = None) -> dict:
    """Prepare ``options.dataset_name`` (see ``sources``) into ``output_dir``; return the report also written there.

    ``processor`` (a VLM processor, or a text model's tokenizer) counts tokens: the caller loads it, with the
    image size it trains at; None means no token budget, so ``max_length`` and the options' prompt / completion
    limits need one. ``model_name`` is only recorded in the report. A test split in the input is kept as is;
    otherwise ``options.test_size`` of the kept rows are held out, grouped by image content so that no image is in
    both splits (text pairs: by prompt; rows with a ``group`` column: by group). ``limit`` reads only the first
    rows of each split, ``split`` only that split of the input. Image paths in the rows resolve against the input's
    folder and must stay inside it or inside ``options.image_root`` (``images.row_image``).
    Raises ``InputError`` (a ``UserError``) for an option out of range and when no row is kept.
    """
    import datasets

    options.validate()
    check_limit("max_length", max_length)
    check_limit("limit", limit)
    if split is not None and not isinstance(split, str):
        fail("split", split, "a split name (a string), or None")
    given = [name for name, value in (("max_length", max_length), ("max_prompt_length", options.max_prompt_length),
                                      ("max_completion_length", options.max_completion_length)) if value]
    if processor is None and given:
        raise InputError(f"Option {given[0]} counts tokens, which needs the model's processor: pass processor= "
                         "(the prepare command loads it from --model_name_or_path), or leave it None for no token "
                         "budget.")
    budget = TokenBudget(processor, max_length, options.max_prompt_length, options.max_completion_length) if given \
        else None
    output_dir = Path(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)  # output_dir itself only once there is data to save
    (output_dir / REPORT_NAME).unlink(missing_ok=True)  # a half-written folder must not look prepared
    skipped = Counter()
    source_name = options.dataset_name
    remove_leftovers(output_dir)
    temporary = f".{output_dir.name}.tmp-{os.getpid()}-"  # named after its process: a killed run's is removed
    with tempfile.TemporaryDirectory(dir=output_dir.parent, prefix=temporary) as cache_dir:
        source = open_source(source_name, split, limit, options.data_seed_split, cache_dir)
        if budget is not None and source.layout != "text" and not is_vision_processor(processor):
            raise InputError(f"{source_name} holds image pairs, but the processor of {model_name or 'the model'} "
                             "is a text model's tokenizer: count with a vision-language model, or give text pairs.")
        images = {"data_root": source.root,
                  "image_root": Path(options.image_root) if options.image_root is not None else None}
        cleaned, hashes, image_files = {}, {}, {}
        for name, rows in source.splits.items():
            cleaned[name], hashes[name] = _clean(rows, source.layout, options.image_longest_edge, budget, skipped,
                                                 name, images, image_files)
        read = sum(len(rows) for rows in source.splits.values())
        _check_kept(source_name, read, cleaned, skipped)
        if "test" not in cleaned:
            train, test = split_by_image(hashes["train"], options.test_size, options.data_seed_split)
            cleaned = {"train": cleaned["train"].select(train), "test": cleaned["train"].select(test)}
        dataset = datasets.DatasetDict(cleaned)
        # datasets writes no shard for an empty split and then cannot load it back: ask for one.
        empty = {name: 1 for name, rows in dataset.items() if len(rows) == 0}
        dataset.save_to_disk(str(output_dir), num_shards=empty)
    report = {
        "input": source_name,
        "layout": source.layout,
        "read_from": source.read_from,
        "read": read,
        "kept": sum(len(rows) for rows in dataset.values()),
        "skipped": dict(sorted(skipped.items())),
        "splits": {name: len(rows) for name, rows in dataset.items()},
        "model": model_name if budget is not None else None,
        "max_length": max_length,
        "limit": limit,
        "split": split,
        "options": options.record(),
        "image_files": image_files,
    }
    (output_dir / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n")
    return report


def _check_kept(input, read: int, cleaned: dict, skipped: Counter) -> None:
    """An ``InputError`` when the training split kept no row, with every skip reason and its count."""
    if len(cleaned["train"]):
        return
    reasons = ", ".join(f"{reason} {count}" for reason, count in skipped.most_common())
    where = "" if len(cleaned) == 1 else " in its train split"
    raise InputError(f"No pair kept from {input}{where}: read {read} rows, "
                     + (f"skipped {reasons}." if reasons else "nothing to clean."))


def is_prepared(path: str | Path) -> bool:
    """True for a folder written by ``prepare`` (not a raw RLHF-V folder that needs preparing first)."""
    return (Path(path) / REPORT_NAME).is_file() and (Path(path) / "dataset_dict.json").is_file()


def load_prepared(path: str | Path):
    """The prepared ``DatasetDict`` ("train", "test"), images decoded to PIL on access."""
    import datasets

    if not is_prepared(path):
        raise MissingInputError(
            f"{path} is not a prepared data set (no {REPORT_NAME} and dataset_dict.json). "
            f"Make one with: python -m data_prep --input PATH_OR_HUB_ID --output {path}"
        )
    return datasets.load_from_disk(str(path))


def split_by_image(hashes: list[str], test_size: float, seed: int) -> tuple[list[int], list[int]]:
    """Train and test row indices: whole groups of rows sharing an image go to one side.

    RLHF-V asks several questions about one image; were they split, the test set would reward
    memorising the image. At least one group is held out when ``test_size > 0`` and there are two
    groups, so a small set still has something to evaluate on; the train side is never emptied.
    """
    groups: dict[str, list[int]] = {}
    for index, digest in enumerate(hashes):
        groups.setdefault(digest, []).append(index)
    order = list(groups.values())
    random.Random(seed).shuffle(order)
    target = round(test_size * len(hashes))
    if test_size > 0 and len(order) > 1:
        target = max(1, target)
    test: list[int] = []
    for group in order:
        if len(test) >= target:
            break
        if len(test) + len(group) < len(hashes):
            test += group
    held_out = set(test)
    return [index for index in range(len(hashes)) if index not in held_out], sorted(test)


def remove_leftovers(output_dir: Path) -> None:
    """The temporary folders of preparations into ``output_dir`` that were killed before they could remove them."""
    for entry in output_dir.parent.glob(f".{output_dir.name}.tmp-*-*"):
        pid = entry.name.removeprefix(f".{output_dir.name}.tmp-").split("-")[0]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)


def file_stamp(path: str | Path) -> list:
    """[size, modification time (ns), sha256 of the first and last 64 KiB]: a file replaced, edited or touched
    changes it, at the cost of two small reads."""
    path = Path(path)
    stat = path.stat()
    with path.open("rb") as handle:
        head = handle.read(STAMP_BYTES)
        handle.seek(max(0, stat.st_size - STAMP_BYTES))
        tail = handle.read(STAMP_BYTES)
    return [stat.st_size, stat.st_mtime_ns, hashlib.sha256(head + tail).hexdigest()]


def image_hash(image) -> str:
    """Content hash of the cleaned pixels: the same picture under two file names is one image."""
    return hashlib.sha256(repr(image.size).encode() + image.tobytes()).hexdigest()


def _clean(rows, layout: str, longest_edge: int, budget, skipped: Counter, name: str, images: dict,
           image_files: dict):
    """Clean one source split: (a Dataset of the kept rows, their image hashes); counts skips into ``skipped`` and
    stamps the image files the kept rows name into ``image_files``. ``images`` holds ``to_pair``'s ``data_root``
    and ``image_root``."""
    import datasets

    features = _features(text=layout == "text")
    chunks, records, hashes = [], [], []
    for index, row in enumerate(tqdm(iter_rows(rows), total=len(rows), desc=f"cleaning {name}", unit="row")):
        try:
            pair = to_pair(row, layout, index, longest_edge, **images)
            if budget is not None:
                pair = budget.clip(pair)
                if not budget.fits(pair):
                    raise SkipRow("too_long")
        except SkipRow as skip:
            skipped[skip.reason] += 1
            continue
        if pair.image_file:
            image_files[pair.image_file] = file_stamp(pair.image_file)
        record = {**messages(pair.question, pair.chosen, pair.rejected), "source_index": pair.source_index,
                  "ground_truth": pair.ground_truth}
        if pair.image is not None:
            record["images"] = [{"bytes": encode(pair.image, pair.source_format), "path": None}]
        if pair.group:  # the row's own group (a scene and its edited copies) keeps them on one side
            hashes.append("group:" + pair.group)
        elif pair.image is None:  # text pair: grouped by prompt for the split
            hashes.append(hashlib.sha256(pair.question.encode()).hexdigest())
        else:
            hashes.append(image_hash(pair.image))
        records.append(record)
        if len(records) == CHUNK_ROWS:  # bounded Python-side memory: the bytes live once, in arrow
            chunks.append(_to_dataset(records, features))
            records = []
    chunks.append(_to_dataset(records, features))
    return datasets.concatenate_datasets(chunks), hashes


def _to_dataset(records: list[dict], features):
    import datasets

    columns = {name: [record[name] for record in records] for name in features}  # from_list([]) loses features
    return datasets.Dataset.from_dict(columns, features=features)


def _features(text: bool = False):
    from datasets import Features, Image, List, Value

    message = List({"role": Value("string"), "content": Value("string")})
    images = {} if text else {"images": List(Image())}
    return Features({
        **images, "prompt": message, "chosen": message, "rejected": message,
        "source_index": Value("int64"), "ground_truth": Value("string"),
    })
