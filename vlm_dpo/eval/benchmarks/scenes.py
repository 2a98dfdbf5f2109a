"""The built-in ``scenes`` benchmark: POPE's three splits on generated scenes, scored by POPE's own parser and
metrics (``pope``), plus count questions scored against each scene's ground truth.

    questions = scenes.load_questions("bench/scenes")      # written by data_prep.synthetic.scenes_pope
    metrics = scenes.score(questions, answers)               # random_accuracy, ..., counts_accuracy

A count answer is right when the number it states for the asked shape is the scene's (``vlm_dpo.eval.checks.scenes``,
the checker of the demo's held-out answers: "There are two circles." and "No circles." are read as 2 and 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vlm_dpo.eval.benchmarks import pope
from vlm_dpo.eval.checks.scenes import answer_correct

SPLITS = pope.SPLITS
COUNTS = "counts"


def load_questions(folder: str | Path) -> list[dict]:
    """The POPE-format questions of the three splits, then the count questions (``split`` "counts", ``scene``)."""
    folder = Path(folder)
    files = [folder / f"scenes_pope_{split}.json" for split in SPLITS]
    questions = pope.load_questions(files, folder / "images")
    for number, row in pope.read_json_lines(folder / "scenes_counts.json"):
        counted = pope.question_row({**row, "label": "yes"}, folder, number, COUNTS, (folder / "images").resolve(), "")
        questions.append({**counted, "label": row["label"], "scene": row["scene"]})
    return questions


def score(questions: Sequence[dict], answers: dict[str, str]) -> dict[str, float | int]:
    """POPE's metrics per split, and ``counts_accuracy`` / ``counts_n`` / ``counts_n_missing`` over the counts."""
    existence = [q for q in questions if q["split"] != COUNTS]
    counts = [q for q in questions if q["split"] == COUNTS]
    metrics = pope.score(existence, {key: text for key, text in answers.items() if not key.startswith(COUNTS)})
    answered = [q for q in counts if q["id"] in answers]
    right = sum(answer_correct(q["question"], answers[q["id"]], q["scene"]) for q in answered)
    metrics |= {"counts_accuracy": right / len(answered) if answered else 0.0, "counts_n": len(answered),
                "counts_n_missing": len(counts) - len(answered)}
    return metrics
