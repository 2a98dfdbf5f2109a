"""Dodge probes: does a model look at the image, or answer every question of a type the same way?

A model can win scene pairs by dodging: "Yes, there is a <some object in the image>" to every existence question,
"There is one" to every count. Attribute accuracy and win rates do not show it; these do, for base and tuned alike,
on the pairs whose ground truth is a synthetic scene (``vlm_dpo.eval.checks.scenes``):

- per answer (``answer_probes``, added to each model's scores by ``vlm_dpo.eval.scoring``): whether an answer to an
  existence question says yes, whether it names the asked object, and whether the question is an adversarial one
  (POPE, Li et al. 2023: the asked colour and the asked shape are both in the scene, on different objects);
- per set: ``majority_baseline``, the accuracy of always giving each question type's most common true answer (what
  a dodge reaches), and ``auroc`` for the log-prob margin log p("No") - log p("Yes") against the truth.

All pure: no model here (the Yes / No log-probs come from ``vlm_dpo.eval.logprobs``).

    answer_probes("Is there a green circle?", "Yes, there is a red circle.", scene)
    # {"says_yes": True, "names_asked_object": False, "object_absent": True, "adversarial": True}
"""

from __future__ import annotations

import json
from collections import Counter

from data_prep.synthetic.scenes import adversarial
from vlm_dpo.eval.checks.scenes import affirms, asked, names_asked_object, true_answer

PROBE_FIELDS = ("says_yes", "names_asked_object", "object_absent", "adversarial")


def scene_of(ground_truth) -> dict | None:
    """The scene of a row's ground truth (JSON or dict), or None: no ground truth, or another kind (an exact
    answer)."""
    if not ground_truth:
        return None
    try:
        scene = json.loads(ground_truth) if isinstance(ground_truth, str) else ground_truth
    except ValueError:
        return None
    return scene if isinstance(scene, dict) and isinstance(scene.get("objects"), list) else None


def answer_probes(question: str, answer: str, ground_truth) -> dict:
    """``PROBE_FIELDS`` of one answer; each None where it does not apply (no scene, or a question it is not about).

    says_yes, object_absent, adversarial: existence questions only (says_yes is False for an answer that says
    neither yes nor no, so the yes-ratio counts it as not yes). names_asked_object: existence, colour and count
    questions (``vlm_dpo.eval.checks.scenes.names_asked_object``).
    """
    out = dict.fromkeys(PROBE_FIELDS)
    scene = scene_of(ground_truth)
    qtype, color, shape = asked(question)
    if scene is None or qtype not in ("exists", "color", "count"):
        return out
    out["names_asked_object"] = names_asked_object(question, answer)
    if qtype == "exists":
        out.update(says_yes=affirms(question, answer) is True, object_absent=not true_answer(question, scene),
                   adversarial=adversarial(scene, color, shape))
    return out


def yes_no_answers(question: str) -> tuple[str, str] | None:
    """A "Yes, ..." and a "No, ..." answer to an existence question, worded as the scene generator words them (for
    the tokens they start with); None for any other question."""
    qtype, color, shape = asked(question)
    if qtype != "exists":
        return None
    return f"Yes, there is a {color} {shape}.", f"No, there is no {color} {shape}."


def majority_baseline(rows: list[dict]) -> float | None:
    """Accuracy of answering every question of a type with the type's most common true answer on these rows
    (``vlm_dpo.eval.checks.scenes.true_answer``: exists yes / no, the count, the colour, the exact scene content).

    Over rows (``question``, ``ground_truth``) with a scene and a generator question; None when there is none. A
    model that answers without looking can reach it; accuracy at or below it is no evidence of looking.
    """
    truths: dict[str, list] = {}
    for row in rows:
        scene, qtype = scene_of(row.get("ground_truth")), asked(row["question"])[0]
        if scene is not None and qtype != "other":
            truths.setdefault(qtype, []).append(true_answer(row["question"], scene))
    total = sum(len(values) for values in truths.values())
    return sum(Counter(values).most_common(1)[0][1] for values in truths.values()) / total if total else None


def auroc(scores, positives) -> float | None:
    """Area under the ROC curve: the chance that a random positive scores above a random negative, ties counting
    one half (the Mann-Whitney U statistic over n_pos * n_neg). None without a positive or without a negative.

    scores: numbers; positives: booleans, one per score. Ranks with ties averaged give the same sum as comparing
    every pair, in O(n log n).
    """
    ranked = sorted(zip(scores, positives), key=lambda item: item[0])
    n_pos = sum(bool(p) for _, p in ranked)
    n_neg = len(ranked) - n_pos
    if not n_pos or not n_neg:
        return None
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        rank_sum += (i + 1 + j) / 2 * sum(bool(p) for _, p in ranked[i:j])  # ranks i+1 .. j share their mean
        i = j
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
