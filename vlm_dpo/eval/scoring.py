"""Per-row scores of base and tuned answers against a pair's chosen and rejected answers.

A row is one preference pair: ``{"question", "chosen", "rejected", "base", "tuned"}``, optionally
``"ground_truth"`` (a synthetic scene or an exact answer, JSON), ``"logp"`` (``{"base"|"tuned": {"chosen",
"rejected", "chosen_tokens", "rejected_tokens"}}``: summed log-probs of the two given answers, from
``vlm_dpo.eval.logprobs``) and ``"no_minus_yes"`` (``{"base"|"tuned": log p("No") - log p("Yes")}`` at the first
answer token of an existence question). ``score_pairs`` adds ``row["scores"][model]``; ``vlm_dpo.eval.aggregate``
turns those into the metrics of ``vlm_dpo.eval.registry``.

    rows = score_pairs(rows, beta=0.1)
    rows[0]["scores"]["tuned"]["rouge_chosen"], rows[0]["scores"]["tuned"]["hallucination"]["bad"]
"""

from __future__ import annotations

import logging

from vlm_dpo.eval import embeddings
from vlm_dpo.eval.checks import arithmetic
from vlm_dpo.eval.checks.coco import score as hallucination_score
from vlm_dpo.eval.checks.scenes import answer_correct, question_type
from vlm_dpo.eval.functional import dpo_rewards
from vlm_dpo.eval.probes import answer_probes
from vlm_dpo.eval.similarity import rouge_l_f1, words

logger = logging.getLogger(__name__)
MODELS = ("base", "tuned")
EMPTY_SPLIT = "No generations to compare: the data set split is empty (or --limit is 0)."


def score_pairs(rows: list[dict], beta: float | None = None, cosine=None) -> list[dict]:
    """Add ``row["scores"][model]`` to every row (in place; returns ``rows``).

    Per model: ROUGE-L and embedding cosine to chosen and rejected, which is closer (ties lose), answer words,
    hallucination (``vlm_dpo.eval.checks.coco.score``: ground truth when the row has one, else the COCO proxy),
    attribute correctness (``attribute_correct``), the dodge probes (``vlm_dpo.eval.probes.answer_probes``, and
    the row's ``no_minus_yes`` where it has one), and, when the row has ``logp``, the log-prob margin and the
    implicit DPO rewards (``vlm_dpo.eval.functional.dpo_rewards``, the base as reference; ``beta`` needed).
    ``cosine`` (texts_a, texts_b) -> similarities defaults to all-MiniLM-L6-v2 (``vlm_dpo.eval.embeddings``).
    """
    import torch

    cosine = cosine or embeddings.cosine
    if not rows:
        raise ValueError(EMPTY_SPLIT)
    has_logp = all("logp" in row for row in rows)
    if has_logp and beta is None:
        raise ValueError("score_pairs needs beta (the run's DPO beta) to turn log-probs into rewards.")
    answers = [row[model] for model in MODELS for row in rows]
    chosen = [row["chosen"] for _ in MODELS for row in rows]
    rejected = [row["rejected"] for _ in MODELS for row in rows]
    try:
        cos_chosen, cos_rejected = cosine(answers, chosen), cosine(answers, rejected)
    except ImportError as error:  # the optional embedding model: its metrics are left out, not the run
        logger.warning("Embedding similarity left out (win rate, embedding; cosine to chosen / rejected): %s", error)
        cos_chosen = cos_rejected = None
    if has_logp:
        logp = {model: {side: torch.tensor([float(row["logp"][model][side]) for row in rows], dtype=torch.float64)
                        for side in ("chosen", "rejected")} for model in MODELS}
        rewards = {model: dpo_rewards(logp[model]["chosen"], logp[model]["rejected"], logp["base"]["chosen"],
                                      logp["base"]["rejected"], beta) for model in MODELS}
    for m, model in enumerate(MODELS):
        for i, row in enumerate(rows):
            answer, k = row[model], m * len(rows) + i
            scores = {
                "rouge_chosen": rouge_l_f1(answer, row["chosen"]),
                "rouge_rejected": rouge_l_f1(answer, row["rejected"]),
                "words": len(words(answer)),
                "hallucination": hallucination_score(answer, row["chosen"], row["rejected"], row.get("ground_truth")),
                "correct": attribute_correct(row["question"], answer, row.get("ground_truth")),
                **answer_probes(row["question"], answer, row.get("ground_truth")),
            }
            if model in row.get("no_minus_yes", {}):
                scores["no_minus_yes"] = row["no_minus_yes"][model]
            scores["closer_rouge"] = scores["rouge_chosen"] > scores["rouge_rejected"]
            if cos_chosen is not None:
                scores |= {"cosine_chosen": cos_chosen[k], "cosine_rejected": cos_rejected[k],
                           "closer_embedding": cos_chosen[k] > cos_rejected[k]}
            if has_logp:
                lp = row["logp"][model]
                scores |= {
                    "logp_chosen": lp["chosen"], "logp_rejected": lp["rejected"],
                    "logp_margin": lp["chosen"] - lp["rejected"],
                    "token_logp_chosen": lp["chosen"] / max(lp["chosen_tokens"], 1),
                    "token_logp_rejected": lp["rejected"] / max(lp["rejected_tokens"], 1),
                    "reward_chosen": float(rewards[model]["chosen"][i]),
                    "reward_rejected": float(rewards[model]["rejected"][i]),
                    "reward_margin": float(rewards[model]["margin"][i]),
                    "chosen_wins": bool(rewards[model]["chosen_wins"][i]),
                }
            row.setdefault("scores", {})[model] = scores
    return rows


def attribute_correct(question: str, answer: str, ground_truth: str | None) -> bool | None:
    """Whether an answer gets the asked attribute of a scene right (an arithmetic answer: the exact result).

    None without ground truth and for scene questions of type "other" (there is no asked attribute), so that
    attribute accuracy leaves them out rather than counting them wrong.
    """
    if not ground_truth:
        return None

    if arithmetic.exact_answer(ground_truth) is not None:  # the text demo's checkable answers
        return arithmetic.answer_correct(answer, ground_truth)
    return None if question_type(question) == "other" else answer_correct(question, answer, ground_truth)


def pair_change(row: dict) -> float:
    """How much better the tuned answer is than the base's, for ranking pairs (positive = improved):
    the change in (ROUGE-L to chosen - ROUGE-L to rejected), plus 1 when tuning removed a hallucination and
    minus 1 when it added one."""
    base, tuned = row["scores"]["base"], row["scores"]["tuned"]
    gap = (tuned["rouge_chosen"] - tuned["rouge_rejected"]) - (base["rouge_chosen"] - base["rouge_rejected"])
    return gap + base["hallucination"]["hallucinated"] - tuned["hallucination"]["hallucinated"]
