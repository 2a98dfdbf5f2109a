"""Base vs tuned on a preference split, computed: both models answer every pair (the base is the adapter switched
off), both score the chosen and rejected answers and the external text (``vlm_dpo.eval.logprobs``), and every pair is
scored and the metrics aggregated. Nothing is written: ``vlm_dpo.report.compare`` turns the result into
``metrics.json``, plots and ``report.html``.

    rows, images, metrics, external_logps = score_on_dataset(model, processor, prepared["test"], beta=0.1)
"""

from data_prep.chat import message_text
from vlm_dpo.eval.aggregate import compare
from vlm_dpo.eval.generate import generate_answers
from vlm_dpo.eval.logprobs import (
    EXTERNAL_SOURCE,
    answer_set_logprobs,
    external_sentences,
    first_answer_tokens,
    next_token_logprobs,
)
from vlm_dpo.eval.probes import scene_of, yes_no_answers
from vlm_dpo.eval.scoring import MODELS, score_pairs


def score_on_dataset(model, processor, data, *, beta: float, max_new_tokens: int = 64, batch_size: int = 4,
                     do_sample: bool = False, seed: int = 0, given_logps: dict | None = None,
                     tuned_generation: dict | None = None) -> tuple[list[dict], list | None, dict, dict]:
    """Generate and score on ``data`` (a prepared split: ``prompt``, ``chosen``, ``rejected``, optional ``images``
    and ``ground_truth``); returns ``(rows, images, metrics, external_logps)``: the scored pairs, their images (None
    for text pairs), the aggregated metrics and each model's log-probs of the external text.

    ``given_logps`` (``{"base"|"tuned": {"chosen", "rejected", "chosen_tokens", "rejected_tokens"}}``, lists in
    ``data``'s row order; a model left out or None is computed here) are log-probs of the given answers already
    computed, by the training run's evaluation: they are taken as they are, and only the external text is scored.

    ``tuned_generation``: how the tuned model is asked (``generate_answers``' ``answer_prefix`` / ``stop_at``, from
    ``RunRecord.tuned_generation``): a Chain of Hindsight run answers after its positive phrase. Every answer is
    then scored after that phrase, by both models, as the run's held-out evaluation scores them, and the yes/no
    margin is read at the first token after it.
    """
    images = [imgs[0].convert("RGB") for imgs in data["images"]] if "images" in data.column_names else None
    truths = data["ground_truth"] if "ground_truth" in data.column_names else [None] * len(data)
    rows = [{"question": message_text(p), "chosen": message_text(c), "rejected": message_text(r), "ground_truth": g}
            for p, c, r, g in zip(data["prompt"], data["chosen"], data["rejected"], truths)]
    questions = [row["question"] for row in rows]
    options = {"max_new_tokens": max_new_tokens, "batch_size": batch_size, "do_sample": do_sample, "seed": seed}
    base = generate_answers(model, processor, images, questions, use_adapter=False, **options)
    tuned = generate_answers(model, processor, images, questions, **options, **(tuned_generation or {}))
    prefix = (tuned_generation or {}).get("answer_prefix")
    as_scored = (lambda texts: [f"{prefix} {text}" for text in texts]) if prefix else list  # noqa: E731

    # Log-probs of the given answers (for the rewards), unless given, and of external text as answers to the same
    # prompts.
    n = len(rows)
    external = as_scored(external_sentences(n))
    given = {m: _checked_logps(given_logps, m, n) for m in MODELS}
    pairs_logps, external_logps = {}, {}
    for m in MODELS:
        sets = [external] if given[m] else [as_scored(row["chosen"] for row in rows),
                                            as_scored(row["rejected"] for row in rows), external]
        *scored, external_logps[m] = answer_set_logprobs(model, processor, images, questions, sets,
                                                         batch_size=batch_size, use_adapter=m == "tuned")
        pairs_logps[m] = given[m] or {"chosen": scored[0][0], "rejected": scored[1][0], "chosen_tokens": scored[0][1],
                                      "rejected_tokens": scored[1][1]}
    for i, (row, b, t) in enumerate(zip(rows, base, tuned)):
        row.update(base=b, tuned=t, logp={m: {side: values[i] for side, values in pairs_logps[m].items()}
                                          for m in MODELS})
    yes_no_margins(model, processor, images, rows, batch_size, prefix)

    score_pairs(rows, beta)
    metrics = compare(rows, external_logps)
    metrics.update(beta=beta, max_new_tokens=max_new_tokens, do_sample=do_sample, seed=seed,
                   external_text=EXTERNAL_SOURCE, n_external=len(external))
    return rows, images, metrics, external_logps


_LOGP_SIDES = ("chosen", "rejected", "chosen_tokens", "rejected_tokens")


def _checked_logps(given_logps: dict | None, model: str, n: int) -> dict | None:
    """One model's given log-probs, checked: every side present with one value per pair; None when not given."""
    logps = (given_logps or {}).get(model)
    if logps is None:
        return None
    lengths = {side: len(logps[side]) if side in logps else None for side in _LOGP_SIDES}
    if any(length != n for length in lengths.values()):
        raise ValueError(f"given_logps[{model!r}] needs {', '.join(_LOGP_SIDES)} with one value per pair ({n}); "
                         f"got lengths {lengths}")
    return {side: [(int if side.endswith("tokens") else float)(value) for value in logps[side]] for side in _LOGP_SIDES}


def yes_no_margins(model, processor, images, rows: list[dict], batch_size: int,
                   answer_prefix: str | None = None) -> None:
    """``row["no_minus_yes"] = {"base"|"tuned": log p("No") - log p("Yes")}`` at the first answer token (after
    ``answer_prefix``, if given), for the existence questions about a scene (in place): one forward per such prompt
    and model. Left out where the "Yes, ..." and "No, ..." answers start with the same token (a tokenizer with a
    separate leading space), where the margin says nothing."""
    picked, tokens = [], []
    for i, row in enumerate(rows):
        answers = yes_no_answers(row["question"]) if scene_of(row.get("ground_truth")) else None
        ids = first_answer_tokens(processor, row["question"], list(answers), answer_prefix) if answers else None
        if ids and ids[0] != ids[1]:
            picked.append(i)
            tokens.append(ids)
    if not picked:
        return
    questions = [rows[i]["question"] for i in picked]
    subset = [images[i] for i in picked] if images is not None else None
    for m in MODELS:
        logps = next_token_logprobs(model, processor, subset, questions, tokens, batch_size=batch_size,
                                    use_adapter=m == "tuned", answer_prefix=answer_prefix)
        for i, (yes, no) in zip(picked, logps):
            rows[i].setdefault("no_minus_yes", {})[m] = no - yes


def first_pairs(pair_logps: dict | None, n: int) -> dict | None:
    """The first ``n`` pairs of a trainer's per-pair held-out log-probs (``{"chosen", "rejected", "chosen_tokens",
    "rejected_tokens"}``: lists in eval-set order), copied, since the next evaluation may overwrite them; None stays
    None."""
    return None if pair_logps is None else {side: list(values[:n]) for side, values in pair_logps.items()}
