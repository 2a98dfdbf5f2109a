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
                       details: dict | None = None) -> tuple[dict, Path, Path]:
    """Generate, score and report on ``data`` (a prepared split: ``prompt``, ``chosen``, ``rejected``, optional
    ``images`` and ``ground_truth``); returns ``(metrics, metrics_path, html_path)``.

    ``run_dir`` is the training output folder: its ``log_history.json`` gives the training curves and its
    ``eval_results.json`` the held-out numbers shown next to ours. ``details`` (adapter, dataset, split, ...)
    are written into metrics.json as they are.
    """
    from data_prep.chat import message_text
    from vlm_dpo.eval.generate import generate_answers
    from vlm_dpo.eval.logprobs import EXTERNAL_LABEL, EXTERNAL_SOURCE, answer_set_logprobs, external_sentences
    from vlm_dpo.report import compare, make_plots, score_pairs, write_report

    images = [imgs[0].convert("RGB") for imgs in data["images"]] if "images" in data.column_names else None
    truths = data["ground_truth"] if "ground_truth" in data.column_names else [None] * len(data)
    rows = [{"question": message_text(p), "chosen": message_text(c), "rejected": message_text(r), "ground_truth": g}
            for p, c, r, g in zip(data["prompt"], data["chosen"], data["rejected"], truths)]
    questions = [row["question"] for row in rows]
    options = {"max_new_tokens": max_new_tokens, "batch_size": batch_size, "do_sample": do_sample, "seed": seed}
    base = generate_answers(model, processor, images, questions, use_adapter=False, **options)
    tuned = generate_answers(model, processor, images, questions, **options)

    # Log-probs of the given answers (for the rewards) and of external text as answers to the same prompts.
    n = len(rows)
    external = external_sentences(n)
    answer_sets = [[row["chosen"] for row in rows], [row["rejected"] for row in rows], external]
    logps = {name: answer_set_logprobs(model, processor, images, questions, answer_sets, batch_size=batch_size,
                                       use_adapter=use_adapter)
             for name, use_adapter in (("base", False), ("tuned", True))}
    for i, (row, b, t) in enumerate(zip(rows, base, tuned)):
        row.update(base=b, tuned=t, logp={m: {"chosen": chosen[0][i], "rejected": rejected[0][i],
                                              "chosen_tokens": chosen[1][i], "rejected_tokens": rejected[1][i]}
                                          for m, (chosen, rejected, _) in logps.items()})
    external_logps = {m: sets[2] for m, sets in logps.items()}

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


def training_eval_results(run_dir: str | Path) -> dict:
    """The held-out numbers train.py wrote (eval_results.json) for the metrics TRL logs, as ``train_eval_*`` keys:
    the report shows them next to its own, which carry the same names (``vlm_dpo.eval.registry``)."""
    from vlm_dpo.eval.registry import training_eval_keys

    path = Path(run_dir) / "eval_results.json"
    if not path.is_file():
        return {}
    results = json.loads(path.read_text())
    return {f"train_eval_{key}": results[key] for key in [*training_eval_keys(), "n_eval_pairs"] if key in results}
