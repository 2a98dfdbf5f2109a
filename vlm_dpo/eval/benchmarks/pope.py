"""POPE (Li et al. 2023): yes/no object-existence questions on COCO, scored as the reference scripts do.

Follows ``evaluate.py`` of github.com/AoiDragon/POPE and ``llava/eval/eval_pope.py`` of
github.com/haotian-liu/LLaVA (the two parse and count identically; most papers report LLaVA's).

    from vlm_dpo.eval.benchmarks import pope
    questions = pope.load_questions(["coco_pope_random.json", "coco_pope_adversarial.json"], "val2014/")
    answers = {q["id"]: generate(q["image"], q["question"]) for q in questions}
    metrics = pope.score(questions, answers)   # {"random_accuracy": ..., "adversarial_f1": ..., ...}

Question files are the published JSON lines, one ``{"question_id", "image", "text", "label"}`` per line. The
split (random / popular / adversarial) comes from the file name (``coco_pope_random.json``,
``gqa_pope_seem_adversarial.json``) unless given. Question ids restart at 1 in every file, so a question's ``id``
is ``"{split}/{question_id}"``.

Parsing (``parse_answer``), as the reference: keep the text before the first '.', remove commas, split on single
spaces; "no" if one of the words is exactly ``No``, ``not`` or ``no``, else "yes" ("Not sure" and "NO" are "yes",
"I cannot tell" is "yes"). Two additions, neither of which changes a metric:

- surrounding whitespace is stripped first, as LLaVA's answer writer (``llava/eval/model_vqa_loader.py``) does
  before ``eval_pope.py`` reads the answer; the POPE script receives already-written answers;
- an empty (or whitespace-only) answer is "other". The reference calls it "yes" and so does ``score``: "other"
  counts as a yes prediction in every metric, and ``{split}_n_other`` reports how many there were.

Metrics per split, positive class "yes" as in the reference: accuracy, precision, recall, f1, yes_ratio (share
of yes predictions, "other" included), tp / fp / tn / fn, n (answered questions), n_other, n_missing
(questions without an answer; the reference has none, it zips answers with labels). A ratio whose denominator
is 0 (no yes prediction, no yes label) is 0.0 here; the reference divides by zero.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from data_prep.errors import InputError, MissingInputError

SPLITS = ("random", "popular", "adversarial")
OTHER = "other"  # an empty answer: scored as "yes", counted apart
_FORMAT = 'POPE\'s JSON lines (one {"question_id", "image", "text", "label"} object per line, as coco_pope_random.json)'
_FIELDS = ("question_id", "image", "text", "label")
_NO_WORDS = {"No", "not", "no"}  # case-sensitive, as the reference


def split_of(path: str | Path) -> str:
    """The POPE split a question file holds, from its name (the last of random / popular / adversarial in it)."""
    found = re.findall("|".join(SPLITS), Path(path).stem)
    if not found:
        raise InputError(f"{path}: cannot tell the POPE split from the file name; name it like coco_pope_random.json "
                         f"or pass split= (one of {', '.join(SPLITS)})")
    return found[-1]


def load_questions(question_files: str | Path | Sequence[str | Path], image_folder: str | Path,
                   split: str | None = None, suffix: str = "") -> list[dict]:
    """The questions of POPE question files, in file order: ``id``, ``image`` (absolute), ``question``, ``label``
    ("yes" / "no"), ``split``, ``question_id``.

    ``split`` names the split of every file given (else each file's name tells it). ``suffix`` is appended to each
    question, e.g. LLaVA's " Answer the question using a single word or phrase."; POPE's own files have none.
    Image files are not checked here: the runner counts the absent ones.
    """
    files = [question_files] if isinstance(question_files, str | Path) else list(question_files)
    if not files:
        raise InputError("POPE: no question file given")
    folder = _folder(image_folder)
    questions: list[dict] = []
    seen: dict[str, Path] = {}
    for file in map(Path, files):
        name = split or split_of(file)
        if name in seen:
            raise InputError(f"{file}: holds split {name!r} as {seen[name]} does; give each split once")
        seen[name] = file
        ids = set()
        for line, row in read_json_lines(file):
            question = question_row(row, file, line, name, folder, suffix)
            if question["id"] in ids:
                raise InputError(f"{file}: line {line} repeats question_id {row['question_id']!r}")
            ids.add(question["id"])
            questions.append(question)
    return questions


def parse_answer(text: str) -> str:
    """"yes", "no" or "other" (empty), as the reference reads a generated answer (see the module's docstring)."""
    text = text.strip()
    if not text:
        return OTHER
    if "." in text:  # the reference keeps the first sentence only
        text = text.split(".")[0]
    words = text.replace(",", "").split(" ")
    return "no" if _NO_WORDS.intersection(words) else "yes"


def score(questions: Sequence[dict], answers: dict[str, str]) -> dict[str, float | int]:
    """The reference's metrics per split, as ``{split}_{metric}``, over the questions that have an answer."""
    known = {q["id"] for q in questions}
    unknown = sorted(set(answers) - known)
    if unknown:
        raise InputError(f"POPE: {len(unknown)} answers are for no loaded question (first: {unknown[0]!r})")
    metrics: dict[str, float | int] = {}
    for split in dict.fromkeys(q["split"] for q in questions):
        rows = [q for q in questions if q["split"] == split]
        answered = [q for q in rows if q["id"] in answers]
        parsed = [parse_answer(answers[q["id"]]) for q in answered]
        counts = _confusion([p != "no" for p in parsed], [q["label"] == "yes" for q in answered])
        metrics |= {f"{split}_{key}": value for key, value in counts.items()}
        metrics[f"{split}_n_other"] = parsed.count(OTHER)
        metrics[f"{split}_n_missing"] = len(rows) - len(answered)
    return metrics


def _confusion(predicted_yes: list[bool], label_yes: list[bool]) -> dict[str, float | int]:
    """Accuracy, precision, recall, F1, yes ratio and the four counts, "yes" the positive class."""
    tp = sum(p and t for p, t in zip(predicted_yes, label_yes))
    fp = sum(p and not t for p, t in zip(predicted_yes, label_yes))
    tn = sum(not p and not t for p, t in zip(predicted_yes, label_yes))
    fn = sum(not p and t for p, t in zip(predicted_yes, label_yes))
    n = len(predicted_yes)
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    return {"accuracy": _ratio(tp + tn, n), "precision": precision, "recall": recall,
            "f1": _ratio(2 * precision * recall, precision + recall), "yes_ratio": _ratio(tp + fp, n),
            "tp": tp, "fp": fp, "tn": tn, "fn": fn, "n": n}


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


def _folder(image_folder: str | Path) -> Path:
    folder = Path(image_folder).resolve()
    if not folder.is_dir():
        raise MissingInputError(f"POPE image folder {image_folder}: no such folder (COCO val2014 images)")
    return folder


def read_json_lines(file: Path) -> Iterable[tuple[int, dict]]:
    """(line number, object) for every non-blank line of a JSON-lines file."""
    if not file.is_file():
        raise MissingInputError(f"POPE question file {file}: no such file")
    text = file.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        raise InputError(f"{file}: is one JSON array; expected {_FORMAT}")
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise InputError(f"{file}: line {number} is not JSON; expected {_FORMAT}") from None
        if not isinstance(row, dict):
            raise InputError(f"{file}: line {number} is not a JSON object; expected {_FORMAT}")
        yield number, row


def question_row(row: dict, file: Path, line: int, split: str, folder: Path, suffix: str) -> dict:
    missing = [field for field in _FIELDS if field not in row]
    if missing:
        raise InputError(f"{file}: line {line} lacks {', '.join(missing)}; expected {_FORMAT}")
    if row["label"] not in ("yes", "no"):
        raise InputError(f"{file}: line {line} has label {row['label']!r}; POPE labels are 'yes' or 'no'")
    return {"id": f"{split}/{row['question_id']}", "image": str(folder / row["image"]),
            "question": row["text"] + suffix, "label": row["label"], "split": split,
            "question_id": row["question_id"]}
