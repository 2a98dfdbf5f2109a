"""Scored rows -> the flat metrics of metrics.json: counts, then ``base_*``, ``tuned_*``, ``delta_*`` for every
metric of ``vlm_dpo.eval.registry``, then the per-question-type metrics.

    metrics = compare(score_pairs(rows, beta=0.1), external)
    metrics["tuned_rewards_accuracies"], metrics["delta_hallucination_rate"], metrics["tuned_attribute_accuracy_color"]
"""

from __future__ import annotations

from vlm_dpo.eval.checks.scenes import question_type
from vlm_dpo.eval.functional import delta
from vlm_dpo.eval.registry import COUNTS, METRICS
from vlm_dpo.eval.scoring import EMPTY_SPLIT, MODELS


def compare(rows: list[dict], external: dict | None = None) -> dict:
    """Flat metrics of scored rows (``vlm_dpo.eval.scoring.score_pairs``).

    ``external`` is ``{"base"|"tuned": (sums, counts)}``: log-probs of the external text (for
    ``mean_token_logp_external``). A metric that does not apply (rates over no rows, log-prob metrics without
    log-probs) is null, and so is its delta.
    """
    if not rows:
        raise ValueError(EMPTY_SPLIT)
    metrics = {count.key: count.compute(rows) for count in COUNTS}
    for model in MODELS:
        scores = [row["scores"][model] for row in rows]
        for metric in METRICS:
            metrics[f"{model}_{metric.key}"] = metric.compute(scores, (external or {}).get(model))
    for metric in METRICS:
        metrics[f"delta_{metric.key}"] = delta(metrics[f"tuned_{metric.key}"], metrics[f"base_{metric.key}"])
    return metrics | question_type_metrics([row for row in rows if row.get("ground_truth")])


def question_type_metrics(rows: list[dict]) -> dict:
    """``n_{type}``, ``{model}_{key}_{type}`` for the metrics marked ``per_type`` and ``{key}_{type}`` for the counts
    so marked (the majority baseline), over rows with ground truth
    grouped by ``vlm_dpo.eval.checks.scenes.question_type`` ("other" for any question the generator does not ask).

    Why: an overall gain can hide a question type that got worse; the demo's claim is per type.
    """
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(question_type(row["question"]), []).append(row)
    out = {}
    for qtype, subset in sorted(groups.items()):
        out[f"n_{qtype}"] = len(subset)
        out |= {f"{count.key}_{qtype}": count.compute(subset) for count in COUNTS if count.per_type}
        for model in MODELS:
            scores = [row["scores"][model] for row in subset]
            for metric in (m for m in METRICS if m.per_type):
                out[f"{model}_{metric.key}_{qtype}"] = metric.compute(scores, None)
    return out
