"""The run's held-out material for the app: its prepared test pairs, its scored report and its plots.

Training prepares its data into OUTPUT_DIR/data (or ``prepared_dir``, or uses ``dataset_name`` when that is a
prepared folder already) and, at its end, writes OUTPUT_DIR/report/answers.jsonl and metrics.json. The report's
row layout belongs to ``vlm_dpo.eval``/``vlm_dpo.report``; ``read_report`` is the one place that reads it, key by
key, so that a missing or renamed score shows as blank instead of breaking the page.
"""

from __future__ import annotations

import json
from pathlib import Path

from data_prep.chat import message_text
from data_prep.prepare import is_prepared, load_prepared
from vlm_dpo.eval.checks.scenes import question_type
from vlm_dpo.eval.scoring import pair_change
from vlm_dpo.models.run_record import RunRecord

MODELS = ("base", "tuned")
CHANGES = ("improved", "regressed", "unchanged")
HALLUCINATION_FILTERS = ("any", "tuned hallucinates", "base hallucinates", "neither hallucinates")


def prepared_dir(record: RunRecord) -> Path | None:
    """Where the run's prepared data is, in the order training decides it (``load_or_prepare``); None if gone."""
    for candidate in (record.dataset_name, record.prepared_dir, record.folder / "data"):
        if candidate and is_prepared(candidate):
            return Path(candidate)
    return None


def load_heldout(record: RunRecord):
    """The run's held-out split (``dataset_test_split``), or None when the prepared data cannot be found."""
    folder = prepared_dir(record)
    if folder is None:
        return None
    splits = load_prepared(folder)
    return splits.get(record.dataset_test_split)


def heldout_choices(heldout) -> list[tuple[str, int]]:
    """``(label, index)`` of every held-out pair, for a picker."""
    if heldout is None:
        return []
    return [(f"{i}: {message_text(prompt)[:80]}", i) for i, prompt in enumerate(heldout["prompt"])]


def heldout_pair(heldout, index: int) -> dict:
    """One held-out pair as the panels take it: ``image`` (None for text runs), ``question``, ``chosen``,
    ``rejected``. The image was cleaned by data_prep when the data was prepared."""
    row = heldout[int(index)]
    images = row.get("images") or [None]
    return {"image": images[0].convert("RGB") if images[0] is not None else None,
            "question": message_text(row["prompt"]), "chosen": message_text(row["chosen"]),
            "rejected": message_text(row["rejected"])}


def read_report(run_dir: str | Path) -> tuple[list[dict], dict]:
    """The run's scored held-out pairs and metrics (OUTPUT_DIR/report/answers.jsonl, metrics.json); ``([], {})``
    when training wrote no report. Each row: ``index``, ``question``, ``chosen``, ``rejected``, ``base``,
    ``tuned``, ``question_type``, ``change`` (improved, regressed, unchanged or unknown), and per model
    ``{model}_hallucinated``, ``{model}_logp_margin``, ``{model}_reward_margin`` (None where not scored)."""
    folder = Path(run_dir) / "report"
    path, metrics_path = folder / "answers.jsonl", folder / "metrics.json"
    rows = []
    lines = path.read_text().splitlines() if path.is_file() else []
    for index, line in enumerate(line for line in lines if line.strip()):
        raw = json.loads(line)
        row = {"index": index, **{key: str(raw.get(key) or "") for key in ("question", "chosen", "rejected", *MODELS)}}
        row["question_type"] = raw.get("question_type") or question_type(row["question"])
        scores = raw.get("scores") or {}
        for model in MODELS:
            score = scores.get(model) or {}
            hallucination = score.get("hallucination")
            flag = hallucination.get("hallucinated") if isinstance(hallucination, dict) else hallucination
            row[f"{model}_hallucinated"] = None if flag is None else bool(flag)
            row[f"{model}_logp_margin"] = score.get("logp_margin")
            row[f"{model}_reward_margin"] = score.get("reward_margin")
        try:
            change = pair_change(raw)
            row["change"] = "improved" if change > 0 else "regressed" if change < 0 else "unchanged"
        except (KeyError, TypeError):  # a report without the scores that ranking needs
            row["change"] = "unknown"
        rows.append(row)
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    return rows, metrics


def filter_rows(rows: list[dict], question_type: str = "all", change: str = "all",
                hallucination: str = "any") -> list[dict]:
    """The rows that match every filter; "all"/"any" keep everything."""
    def keep(row: dict) -> bool:
        tuned, base = bool(row["tuned_hallucinated"]), bool(row["base_hallucinated"])
        return ((question_type == "all" or row["question_type"] == question_type)
                and (change == "all" or row["change"] == change)
                and {"any": True, "tuned hallucinates": tuned, "base hallucinates": base,
                     "neither hallucinates": not (tuned or base)}[hallucination])

    return [row for row in rows if keep(row)]


def report_image(heldout, row: dict):
    """The image of a report row: the report answers the first held-out pairs in order, so row i is held-out pair
    i; None when that pair asks something else (the data was prepared again since) or there is no image."""
    if heldout is None or row["index"] >= len(heldout):
        return None
    pair = heldout_pair(heldout, row["index"])
    return pair["image"] if pair["question"] == row["question"] else None


def plot_files(run_dir: str | Path) -> list[Path]:
    """The run's PNG plots (OUTPUT_DIR, then OUTPUT_DIR/report), one per file name."""
    seen, plots = set(), []
    for folder in (Path(run_dir), Path(run_dir) / "report"):
        for path in sorted(folder.glob("*.png")):
            if path.name not in seen:
                seen.add(path.name)
                plots.append(path)
    return plots
