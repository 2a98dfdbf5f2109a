"""The training data: a prepared folder named by the user, or a preparation reused only while nothing that made it
has changed.

Data prepared on the fly (into ``prepared_dir``, default OUTPUT_DIR/data) is stamped with a fingerprint of
everything that decides its content (``FINGERPRINT``: the preparation options, ``data_prep.PrepareOptions``; for a
local file or folder, its size and modification time; the processor and ``max_length``; the synthetic generator's
version where data_prep gives one). A later run reuses the folder only
when its fingerprint is the same, and otherwise prepares it again, saying what changed. A folder the user names as
``dataset_name`` is theirs: used as is, after checking that its pairs fit ``max_length``.
"""

import glob
import json
import logging
from pathlib import Path

from data_prep import synthetic
from data_prep.options import PrepareOptions
from data_prep.prepare import file_stamp, is_prepared, load_prepared, prepare
from vlm_dpo.errors import UserError

logger = logging.getLogger(__name__)

FINGERPRINT = "fingerprint.json"  # written beside data_prep's prep_report.json once the preparation is complete
GENERATED = ("synthetic", "arithmetic")  # input prefixes of data_prep's generators


def load_or_prepare(data_args, model_name: str, processor, max_length: int | None, output_dir: Path):
    """The prepared splits and the folder they come from; prepares them first where needed."""
    if is_prepared(data_args.dataset_name):
        target = Path(data_args.dataset_name)
        check_fits(target, max_length, model_name, data_args.processor_longest_edge)
        return load_prepared(target), target
    target = Path(data_args.prepared_dir or output_dir / "data")
    wanted = fingerprint(data_args, model_name, max_length)
    prepared = is_prepared(target)
    why = stale_reason(target, wanted) if prepared else "nothing is prepared there yet"
    if why:  # preparing again over older data is worth a word at the default log level
        (logger.warning if prepared else logger.info)("Preparing %s into %s: %s.", data_args.dataset_name, target, why)
        (target / FINGERPRINT).unlink(missing_ok=True)  # a preparation that fails half-way is never reused
        prepare(PrepareOptions.of(data_args), target, processor=processor, model_name=model_name,
                max_length=max_length)
        (target / FINGERPRINT).write_text(json.dumps(wanted, indent=2) + "\n")
    else:
        logger.info("Reusing %s: prepared from %s with the same settings.", target, data_args.dataset_name)
    return load_prepared(target), target


def fingerprint(data_args, model_name: str, max_length: int | None) -> dict:
    """Everything that decides what a preparation of ``data_args.dataset_name`` contains, as plain JSON values."""
    source = data_args.dataset_name
    values = {**PrepareOptions.of(data_args).record(), "input_files": local_files(source), "processor": model_name,
              "max_length": max_length}
    if source.split(":")[0] in GENERATED:
        values["generator_version"] = synthetic.VERSION
    return json.loads(json.dumps(values))


def local_files(source: str) -> dict | None:
    """Count, total size and newest modification time of a local input (a file, every file under a folder, or every
    file a glob matches): an added, edited or replaced file changes them. None for anything else (a hub id, a
    generator)."""
    path = Path(source)
    if path.exists():
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    elif glob.has_magic(source):
        files = [Path(match) for match in sorted(glob.glob(source, recursive=True)) if Path(match).is_file()]
    else:
        return None
    stats = [p.stat() for p in files]
    return {"path": str(path.resolve()), "files": len(stats), "bytes": sum(s.st_size for s in stats),
            "newest_mtime_ns": max((s.st_mtime_ns for s in stats), default=0)}


def stale_reason(target: Path, wanted: dict) -> str | None:
    """Why the preparation in ``target`` does not match ``wanted``, or None when it does: a setting, an input file,
    or an image file one of its rows names (prep_report.json's ``image_files``) changed."""
    try:
        found = json.loads((target / FINGERPRINT).read_text())
    except (OSError, ValueError):
        return f"it has no readable {FINGERPRINT} saying how it was prepared"
    changed = [f"{key} {found.get(key)} -> {value}" for key, value in wanted.items() if found.get(key) != value]
    if changed:
        return "it was prepared with " + ", ".join(changed)
    stamps = json.loads((target / "prep_report.json").read_text()).get("image_files", {})
    for path, stamp in stamps.items():
        try:
            now = file_stamp(path)
        except OSError:
            return f"the image file {path} is gone"
        if now != stamp:
            return f"the image file {path} changed"
    return None


def check_fits(prepared: Path, max_length: int | None, model_name: str | None = None,
               processor_longest_edge: int | None = None) -> None:
    """TRL's collator would cut sequences longer than max_length, image tokens included: refuse data counted for a
    longer limit, or counted with another processor or image size (its counts do not hold for this run)."""
    report = json.loads((prepared / "prep_report.json").read_text())
    counted = report.get("max_length")
    if max_length is None:
        return
    if counted is None or counted > max_length:
        raise UserError(
            f"{prepared} was prepared for max_length={counted}, but training uses max_length={max_length}: longer "
            f"pairs would be truncated. Prepare it again with --max_length {max_length}, or raise max_length."
        )
    if "options" not in report:  # written by an older version: it does not say which processor counted
        return
    size = report["options"].get("processor_longest_edge")
    if model_name is not None and (report.get("model"), size) != (model_name, processor_longest_edge):
        raise UserError(
            f"{prepared} was counted with the processor of {report.get('model')} at processor_longest_edge={size}, "
            f"but training uses {model_name} at processor_longest_edge={processor_longest_edge}: its token counts do "
            f"not hold, and longer pairs would be cut. Prepare it again with --model_name_or_path {model_name}"
            + (f" --processor_longest_edge {processor_longest_edge}" if processor_longest_edge else "")
            + ", or train with the settings it was prepared for."
        )


def training_splits(splits, folder: Path, data_args):
    """The training and held-out splits, refused with one line when missing or empty (TRL would fail deep inside
    its first batch), with ``eval_limit`` applied."""
    names = {"training": data_args.dataset_train_split, "held-out": data_args.dataset_test_split}
    for role, name in names.items():
        if name not in splits:
            raise UserError(f"{folder} has no split {name!r} (it has {', '.join(splits)}): pass "
                            f"--dataset_{'train' if role == 'training' else 'test'}_split with one of those.")
        if len(splits[name]) == 0:
            fix = ("use more pairs, or check what was skipped and why in prep_report.json" if role == "training" else
                   "raise --test_size, or give the data a non-empty test split")
            raise UserError(f"The {role} split {name!r} of {folder} is empty: {fix}.")
    train_set, eval_set = splits[names["training"]], splits[names["held-out"]]
    if data_args.eval_limit:
        eval_set = eval_set.select(range(min(data_args.eval_limit, len(eval_set))))
    return train_set, eval_set


def preparation_record(folder: Path) -> dict:
    """What ``run_config.yaml`` and ``eval_results.json`` say about the data actually trained on: where it is and
    its prep_report.json, less the lists of what was read from where."""
    report = json.loads((folder / "prep_report.json").read_text())
    return {"folder": str(folder), **{key: value for key, value in report.items()
                                      if key not in ("read_from", "image_files")}}
