"""Base vs tuned on a preference split, end to end: generate, score the given answers, compare, plot, report.

One function behind ``infer.py --dataset`` that a training run can also call at its end (``model`` is then
the trainer's ``PeftModel``): both models answer every pair (the base is the adapter switched off), both
score the chosen and rejected answers and the external text (``vlm_dpo.eval.logprobs``), and
``vlm_dpo.report`` turns that into ``metrics.json``, PNG plots and ``report.html`` in ``out_dir``.

    from vlm_dpo.eval.compare import compare_on_dataset
    model, processor, run_config = load_tuned("outputs/tiny")
    metrics, metrics_path, html_path = compare_on_dataset(model, processor, prepared["test"], "reports/tiny",
                                                          beta=run_config["beta"], run_dir="outputs/tiny")
"""

from __future__ import annotations

import json
from pathlib import Path


def compare_on_dataset(model, processor, data, out_dir: str | Path, *, beta: float, max_new_tokens: int = 64,
                       batch_size: int = 4, do_sample: bool = False, seed: int = 0, run_dir: str | Path | None = None,
                       details: dict | None = None, given_logps: dict | None = None,
                       tuned_generation: dict | None = None) -> tuple[dict, Path, Path]:
    """Generate, score and report on ``data`` (a prepared split: ``prompt``, ``chosen``, ``rejected``, optional
    ``images`` and ``ground_truth``); returns ``(metrics, metrics_path, html_path)``.

    ``run_dir`` is the training output folder: its ``log_history.json`` gives the training curves and its
    ``eval_results.json`` the held-out numbers shown next to ours. ``details`` (adapter, dataset, split, ...)
    are written into metrics.json as they are. ``given_logps`` (``{"base"|"tuned": {"chosen", "rejected",
    "chosen_tokens", "rejected_tokens"}}``, lists in ``data``'s row order; a model left out or None is computed
    here) are log-probs of the given answers already computed, by the training run's evaluation: they are taken
    as they are, and only the external text is scored.

    ``tuned_generation``: how the tuned model is asked (``generate_answers``' ``answer_prefix`` / ``stop_at``): a
    Chain of Hindsight run answers after its positive phrase (``vlm_dpo.training.methods.coh.generation_options``).
    Every answer is then scored after that phrase, by both models, as the run's held-out evaluation scores them,
    and the yes/no margin is read at the first token after it.
    """
    from data_prep.chat import message_text
    from vlm_dpo.eval.generate import generate_answers
    from vlm_dpo.eval.logprobs import EXTERNAL_LABEL, EXTERNAL_SOURCE, answer_set_logprobs, external_sentences
    from vlm_dpo.eval.scoring import MODELS
    from vlm_dpo.report import compare, make_plots, score_pairs, write_report

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
    metrics.update(details or {})
    metrics.update(beta=beta, max_new_tokens=max_new_tokens, do_sample=do_sample, seed=seed,
                   external_text=EXTERNAL_SOURCE, n_external=len(external))
    log_history = None
    if run_dir is not None:
        metrics.update(training_eval_results(run_dir))
        history_path = Path(run_dir) / "log_history.json"
        log_history = json.loads(history_path.read_text()) if history_path.is_file() else None
    plots = make_plots(rows, out_dir, beta, external_logps, external_label=EXTERNAL_LABEL, log_history=log_history)
    metrics_path, html_path = write_report(rows, images or [None] * n, metrics, out_dir, plots)
    return metrics, metrics_path, html_path


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
    from vlm_dpo.eval.logprobs import first_answer_tokens, next_token_logprobs
    from vlm_dpo.eval.probes import scene_of, yes_no_answers
    from vlm_dpo.eval.scoring import MODELS

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


def training_eval_results(run_dir: str | Path) -> dict:
    """The held-out numbers train.py wrote (eval_results.json) for the metrics TRL logs, as ``train_eval_*`` keys:
    the report shows them next to its own, which carry the same names (``vlm_dpo.eval.registry``)."""
    from vlm_dpo.eval.registry import training_eval_keys

    path = Path(run_dir) / "eval_results.json"
    if not path.is_file():
        return {}
    results = json.loads(path.read_text())
    return {f"train_eval_{key}": results[key] for key in [*training_eval_keys(), "n_eval_pairs"] if key in results}
