"""Score base and tuned generations against the chosen and rejected answers; write metrics.json and report.html.

A row is one preference pair: ``{"question", "chosen", "rejected", "base", "tuned"}``, optionally
``"ground_truth"`` (a synthetic scene, JSON) and ``"logp"`` (``{"base"|"tuned": {"chosen", "rejected",
"chosen_tokens", "rejected_tokens"}}``: summed log-probs of the two given answers, from
``vlm_dpo.eval.logprobs``). ``score_pairs`` adds each row's ``"scores"``; ``compare`` turns them into flat
metrics (``base_*``, ``tuned_*``, ``delta_* = tuned - base``); ``write_report`` writes both files and
the plots. The page is self-contained (images and plots inlined as base64 PNG, no scripts, no remote
resources), so it can be mailed or opened offline.

    rows = score_pairs(rows, beta=0.1)
    metrics = compare(rows)
    write_report(rows, images, metrics, "reports/tiny", plots={"training curves": "out/training_curves.png"})
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

from vlm_dpo.eval.functional import delta, mean, pooled_rate
from vlm_dpo.eval.similarity import rouge_l_f1, words

MODELS = ("base", "tuned")

# Per-model metrics in the order of the summary table: (key, label, one-line meaning, +1 higher is better / -1 lower
# is better / 0 neither). Each key is written as base_KEY, tuned_KEY and delta_KEY; null where it does not apply.
METRICS = [
    ("Closer to chosen than to rejected?", None, None, None),
    ("win_rate", "win rate, ROUGE-L", "share of answers with higher ROUGE-L F1 to the chosen than to the rejected "
     "answer (ties lose)", 1),
    ("win_rate_embedding", "win rate, embedding", "the same with MiniLM cosine similarity instead of ROUGE-L", 1),
    ("mean_rouge_l_chosen", "ROUGE-L to chosen", "mean ROUGE-L F1 (word LCS, Lin 2004) of the answer to the chosen "
     "one", 1),
    ("mean_rouge_l_rejected", "ROUGE-L to rejected", "mean ROUGE-L F1 of the answer to the rejected one", -1),
    ("mean_cosine_chosen", "cosine to chosen", "mean cosine similarity of all-MiniLM-L6-v2 embeddings, answer vs "
     "chosen", 1),
    ("mean_cosine_rejected", "cosine to rejected", "the same against the rejected answer", -1),
    ("Preference (log-probs of the given chosen and rejected answers)", None, None, None),
    ("reward_accuracy", "reward accuracy", "share of pairs whose implicit DPO reward beta*log(pi/pi_base) is "
     "higher for chosen; 0 for the base by definition (its reference is itself)", 1),
    ("mean_reward_margin", "mean reward margin", "mean of reward(chosen) - reward(rejected); 0 for the base", 1),
    ("mean_reward_chosen", "mean reward, chosen", "mean beta*(log pi_tuned - log pi_base) of the chosen answers", 0),
    ("mean_reward_rejected", "mean reward, rejected", "the same for the rejected answers", 0),
    ("logp_accuracy", "log-prob accuracy", "share of pairs where log p(chosen) > log p(rejected) (summed over answer "
     "tokens): the base's own preference", 1),
    ("mean_logp_margin", "mean log-prob margin", "mean of log p(chosen) - log p(rejected), nats", 1),
    ("mean_logp_chosen", "mean log p(chosen)", "mean summed log-prob of the chosen answer (TRL's logps/chosen)", 0),
    ("mean_logp_rejected", "mean log p(rejected)", "mean summed log-prob of the rejected answer", 0),
    ("mean_token_logp_chosen", "per-token log p, chosen", "mean over pairs of log p(chosen) / its tokens", 0),
    ("mean_token_logp_rejected", "per-token log p, rejected", "the same for the rejected answers", 0),
    ("mean_token_logp_external", "per-token log p, external", "the same for external text scored as answers to the "
     "same prompts (see external_text)", 0),
    ("Hallucination", None, None, None),
    ("hallucination_rate", "hallucination rate", "pairs with a ground-truth scene: share of answers naming an "
     "object, colour or count the scene does not have", -1),
    ("hallucination_mention_rate", "false mentions (CHAIR-i)", "pairs with a scene: false mentions / all mentions, "
     "pooled over answers", -1),
    ("attribute_accuracy", "attribute accuracy", "pairs with a scene: share of answers that get the asked colour, "
     "count, existence or scene right", 1),
    ("proxy_hallucination_rate", "proxy hallucination rate", "pairs without ground truth: share of answers naming a "
     "COCO object that only the rejected answer names", -1),
    ("proxy_hallucination_mention_rate", "proxy, per mention", "pairs without ground truth: such objects / all COCO "
     "objects named, pooled over answers", -1),
    ("Length", None, None, None),
    ("mean_answer_words", "mean answer words", "mean answer length in words (DPO tends to lengthen answers)", 0),
]
METRIC_KEYS = [key for key, label, _, _ in METRICS if label is not None]


def score_pairs(rows: list[dict], beta: float | None = None, cosine=None) -> list[dict]:
    """Add ``row["scores"][model]`` to every row (in place; returns ``rows``).

    Per model: ROUGE-L and embedding cosine to chosen and rejected, which is closer, answer words,
    hallucination (``vlm_dpo.eval.checks.coco.score``: ground truth when the row has a scene, else the
    COCO proxy), attribute correctness for scenes, and, when the row has ``logp``, the log-prob margin
    and the implicit DPO rewards (``vlm_dpo.eval.functional.dpo_rewards``, the base as reference; ``beta`` needed).
    ``cosine`` (texts_a, texts_b) -> similarities defaults to all-MiniLM-L6-v2 (``vlm_dpo.eval.embeddings``).
    """
    import torch

    from vlm_dpo.eval.checks.coco import score as hallucination_score
    from vlm_dpo.eval.functional import dpo_rewards

    if cosine is None:
        from vlm_dpo.eval.embeddings import cosine
    if not rows:
        raise ValueError("No generations to compare: the data set split is empty (or --limit is 0).")
    has_logp = all("logp" in row for row in rows)
    if has_logp and beta is None:
        raise ValueError("score_pairs needs beta (the run's DPO beta) to turn log-probs into rewards.")
    answers = [row[model] for model in MODELS for row in rows]
    chosen = [row["chosen"] for _ in MODELS for row in rows]
    rejected = [row["rejected"] for _ in MODELS for row in rows]
    cos_chosen, cos_rejected = cosine(answers, chosen), cosine(answers, rejected)
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
                "cosine_chosen": cos_chosen[k], "cosine_rejected": cos_rejected[k], "words": len(words(answer)),
                "hallucination": hallucination_score(answer, row["chosen"], row["rejected"], row.get("ground_truth")),
                "correct": _attribute_correct(row["question"], answer, row.get("ground_truth")),
            }
            scores["closer_rouge"] = scores["rouge_chosen"] > scores["rouge_rejected"]
            scores["closer_embedding"] = scores["cosine_chosen"] > scores["cosine_rejected"]
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


def _attribute_correct(question: str, answer: str, ground_truth: str | None) -> bool | None:
    """Whether a scene answer gets the asked attribute right (an arithmetic answer: the exact result); None
    without ground truth or for other questions."""
    if not ground_truth:
        return None
    from vlm_dpo.eval.checks import arithmetic
    from vlm_dpo.eval.checks.scenes import answer_correct, question_type

    if arithmetic.exact_answer(ground_truth) is not None:  # the text demo's checkable answers
        return arithmetic.answer_correct(answer, ground_truth)
    return answer_correct(question, answer, ground_truth) if question_type(question) else None


def pair_change(row: dict) -> float:
    """How much better the tuned answer is than the base's, for ranking pairs (positive = improved):
    the change in (ROUGE-L to chosen - ROUGE-L to rejected), plus 1 when tuning removed a hallucination and
    minus 1 when it added one."""
    base, tuned = row["scores"]["base"], row["scores"]["tuned"]
    gap = (tuned["rouge_chosen"] - tuned["rouge_rejected"]) - (base["rouge_chosen"] - base["rouge_rejected"])
    return gap + base["hallucination"]["hallucinated"] - tuned["hallucination"]["hallucinated"]


def compare(rows: list[dict], external: dict | None = None) -> dict:
    """Flat metrics of scored rows: counts, then ``{base,tuned,delta}_{key}`` for each key of ``METRICS``.

    ``external`` is ``{"base"|"tuned": (sums, counts)}``: log-probs of the external text (for
    ``mean_token_logp_external``). Rates over no rows (e.g. hallucination without any scene) are null.
    """
    if not rows:
        raise ValueError("No generations to compare: the data set split is empty (or --limit is 0).")
    truth = [row for row in rows if row.get("ground_truth")]
    proxy = [row for row in rows if not row.get("ground_truth")]
    changes = [pair_change(row) for row in rows]
    flips = [(row["scores"]["base"]["hallucination"]["hallucinated"],
              row["scores"]["tuned"]["hallucination"]["hallucinated"]) for row in rows]
    metrics = {"n": len(rows), "n_ground_truth": len(truth), "n_proxy": len(proxy),
               "n_improved": sum(c > 0 for c in changes), "n_regressed": sum(c < 0 for c in changes),
               "n_hallucinations_removed": sum(b and not t for b, t in flips),
               "n_hallucinations_added": sum(t and not b for b, t in flips)}
    for model in MODELS:
        s = [row["scores"][model] for row in rows]
        halluc = lambda subset, model=model: [row["scores"][model]["hallucination"] for row in subset]  # noqa: E731
        values = {
            "win_rate": mean(x["closer_rouge"] for x in s),
            "win_rate_embedding": mean(x["closer_embedding"] for x in s),
            "mean_rouge_l_chosen": mean(x["rouge_chosen"] for x in s),
            "mean_rouge_l_rejected": mean(x["rouge_rejected"] for x in s),
            "mean_cosine_chosen": mean(x["cosine_chosen"] for x in s),
            "mean_cosine_rejected": mean(x["cosine_rejected"] for x in s),
            "hallucination_rate": mean(h["hallucinated"] for h in halluc(truth)),
            "hallucination_mention_rate": pooled_rate([len(h["bad"]) for h in halluc(truth)],
                                                      [h["mentions"] for h in halluc(truth)]),
            "attribute_accuracy": mean(x["correct"] for x in s if x["correct"] is not None),
            "proxy_hallucination_rate": mean(h["hallucinated"] for h in halluc(proxy)),
            "proxy_hallucination_mention_rate": pooled_rate([len(h["bad"]) for h in halluc(proxy)],
                                                            [h["mentions"] for h in halluc(proxy)]),
            "mean_answer_words": mean(x["words"] for x in s),
        }
        if all("reward_margin" in x for x in s):
            values |= {
                "reward_accuracy": mean(x["chosen_wins"] for x in s),
                "mean_reward_margin": mean(x["reward_margin"] for x in s),
                "mean_reward_chosen": mean(x["reward_chosen"] for x in s),
                "mean_reward_rejected": mean(x["reward_rejected"] for x in s),
                "logp_accuracy": mean(x["logp_margin"] > 0 for x in s),
                "mean_logp_margin": mean(x["logp_margin"] for x in s),
                "mean_logp_chosen": mean(x["logp_chosen"] for x in s),
                "mean_logp_rejected": mean(x["logp_rejected"] for x in s),
                "mean_token_logp_chosen": mean(x["token_logp_chosen"] for x in s),
                "mean_token_logp_rejected": mean(x["token_logp_rejected"] for x in s),
            }
        if external:
            sums, counts = external[model]
            values["mean_token_logp_external"] = mean(a / max(b, 1) for a, b in zip(sums, counts))
        for key in METRIC_KEYS:
            metrics[f"{model}_{key}"] = values.get(key)
    for key in METRIC_KEYS:
        metrics[f"delta_{key}"] = delta(metrics[f"tuned_{key}"], metrics[f"base_{key}"])
    return metrics | question_type_metrics(truth)


def question_type_metrics(rows: list[dict]) -> dict:
    """Per question type of the scenes (describe, color, count, exists): attribute accuracy, hallucination
    rate and, with log-probs, reward accuracy of base and tuned (``{model}_attribute_accuracy_{type}``,
    ``{model}_hallucination_rate_{type}``, ``{model}_reward_accuracy_{type}``) and ``n_{type}``.

    Why: an overall gain can hide a question type that got worse; the demo's claim is per type.
    """
    from vlm_dpo.eval.checks.scenes import question_type

    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(question_type(row["question"]) or "other", []).append(row)
    out = {}
    for qtype, subset in sorted(groups.items()):
        out[f"n_{qtype}"] = len(subset)
        for model in MODELS:
            scores = [row["scores"][model] for row in subset]
            out[f"{model}_attribute_accuracy_{qtype}"] = mean(x["correct"] for x in scores if x["correct"] is not None)
            out[f"{model}_hallucination_rate_{qtype}"] = mean(x["hallucination"]["hallucinated"] for x in scores)
            if all("chosen_wins" in x for x in scores):
                out[f"{model}_reward_accuracy_{qtype}"] = mean(x["chosen_wins"] for x in scores)
    return out


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def summary_table(metrics: dict) -> str:
    """The metrics as an aligned plain-text table, for the terminal ("-" where a metric does not apply)."""
    lines = [f"{'metric':<34}{'base':>10}{'tuned':>10}{'delta':>10}"]
    for key in METRIC_KEYS:
        row = [metrics.get(f"{m}_{key}") for m in (*MODELS, "delta")]
        if any(value is not None for value in row):
            lines.append(f"{key:<34}" + "".join(f"{_fmt(value):>10}" for value in row))
    lines.append(f"pairs: {metrics['n']} (with a ground-truth scene: {metrics['n_ground_truth']}); "
                 f"improved {metrics['n_improved']}, regressed {metrics['n_regressed']}")
    return "\n".join(lines)


def make_plots(rows: list[dict], out_dir: str | Path, beta: float, external: dict | None = None,
               external_label: str = "external text", log_history: list[dict] | None = None) -> dict:
    """Write the report's PNGs into ``out_dir``; returns ``{title: (path, caption)}`` for ``write_report``.

    Training curves (when the run's ``log_history`` is given), the margin distributions (when the rows have
    log-probs) and the per-token log-prob histogram of chosen, rejected and external text.
    """
    from vlm_dpo.report.plots import plot_margins, plot_token_logps, plot_training_curves

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots = {}
    if log_history:
        plots["Training curves"] = (plot_training_curves(log_history, out / "training_curves.png"),
                                    "DPO loss, reward accuracy and reward margin against optimiser steps, on training "
                                    "batches and (where logged) the held-out split, from the run's log_history.json.")
    if not all("reward_margin" in row["scores"]["tuned"] for row in rows):
        return plots
    scores = {m: [row["scores"][m] for row in rows] for m in MODELS}
    plots["Margins, base vs tuned"] = (
        plot_margins([s["logp_margin"] for s in scores["base"]], [s["logp_margin"] for s in scores["tuned"]],
                     [s["reward_margin"] for s in scores["tuned"]], beta, out / "margins.png"),
        "Left: each pair's log-prob margin log p(chosen) - log p(rejected), summed over answer tokens, under the base "
        "and the tuned model. Right: the tuned model's implicit DPO reward margin, beta x (tuned margin - base "
        "margin); the base's reward margin is 0 for every pair because the base is its own reference.")
    per_token = {m: {"chosen": [s["token_logp_chosen"] for s in scores[m]],
                     "rejected": [s["token_logp_rejected"] for s in scores[m]],
                     "external": [a / max(b, 1) for a, b in zip(*external[m])] if external else []} for m in MODELS}
    plots["Log-probs: in-distribution vs external text"] = (
        plot_token_logps(per_token, external_label, out / "token_logps.png"),
        f"Per-token mean log-prob of the chosen and rejected answers, and of {external_label} scored as answers to "
        "the same prompts and images. In-distribution answers should sit well right of the external text.")
    return plots


# --------------------------------------------------------------------------- HTML


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


THUMBNAIL = 256  # longest edge of the pair images in the page, in pixels


def _image_tag(image) -> str:
    """The pair's image inlined: small images (synthetic scenes) as lossless PNG, photos shrunk to a
    ``THUMBNAIL`` px JPEG, so that a report on thousands of RLHF-V pairs stays a few MB per hundred pairs."""
    if image is None:  # text-only data set
        return ""
    buffer = io.BytesIO()
    if max(image.size) <= 160:
        image.save(buffer, format="PNG")
        return f'<img class="pair scene" src="{_png_uri(buffer.getvalue())}" alt="pair image">'
    thumbnail = image.convert("RGB")
    thumbnail.thumbnail((THUMBNAIL, THUMBNAIL))
    thumbnail.save(buffer, format="JPEG", quality=85)
    uri = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img class="pair" src="{uri}" alt="pair image">'


def _summary_html(metrics: dict) -> str:
    esc, rows = html.escape, []
    for key, label, meaning, better in METRICS:
        if label is None:
            rows.append(f'<tr class="group"><th colspan="5">{esc(key)}</th></tr>')
            continue
        values = [metrics.get(f"{m}_{key}") for m in (*MODELS, "delta")]
        if all(value is None for value in values):
            continue
        change = values[2]
        tone = "" if not better or change is None or abs(change) < 1e-9 else (
            "good" if change * better > 0 else "bad")
        rows.append(f"<tr><td>{esc(label)}</td><td>{_fmt(values[0])}</td><td>{_fmt(values[1])}</td>"
                    f'<td class="{tone}">{"" if change is None else f"{change:+.3f}"}</td>'
                    f'<td class="meaning">{esc(meaning)} <code>{key}</code></td></tr>')
    return ('<table class="summary"><thead><tr><th>metric</th><th>base</th><th>tuned</th><th>&Delta;</th>'
            '<th class="meaning">what it measures (key in metrics.json)</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def _agreement_html(metrics: dict) -> str:
    """Our log-prob metrics next to the held-out ones train.py wrote (eval_results.json), when present."""
    pairs = [("reward accuracy", "reward_accuracy", "rewards_accuracies"),
             ("mean reward margin", "mean_reward_margin", "rewards_margins"),
             ("mean log p(chosen)", "mean_logp_chosen", "logps_chosen"),
             ("mean log p(rejected)", "mean_logp_rejected", "logps_rejected")]
    rows = []
    for label, ours, theirs in pairs:
        for model in MODELS:
            trained = metrics.get(f"train_eval_{model}_{theirs}")
            if trained is not None and metrics.get(f"{model}_{ours}") is not None:
                rows.append(f"<tr><td>{label}, {model}</td><td>{_fmt(metrics[f'{model}_{ours}'])}</td>"
                            f"<td>{_fmt(trained)}</td></tr>")
    if not rows:
        return ""
    n_eval = metrics.get("train_eval_n_eval_pairs")
    return ("<h3>Agreement with training's held-out evaluation</h3><p>The same quantities computed by "
            f"<code>train.py</code> at the end of training (<code>eval_results.json</code>, {n_eval} held-out "
            f"pairs) and here ({metrics['n']} pairs of split <code>{html.escape(str(metrics.get('split')))}</code>). "
            "On the same pairs they agree up to batching noise.</p><table class=\"summary\"><thead><tr><th>metric</th>"
            "<th>this report</th><th>eval_results.json</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _answer_html(label: str, text: str, scores: dict | None, row: dict) -> str:
    esc = html.escape
    notes = []
    if scores is not None:
        notes.append(f"ROUGE-L chosen {scores['rouge_chosen']:.2f} / rejected {scores['rouge_rejected']:.2f}")
        notes.append(f"cosine chosen {scores['cosine_chosen']:.2f} / rejected {scores['cosine_rejected']:.2f}")
        hall = scores["hallucination"]
        if hall["bad"]:
            what = "false" if hall["kind"] == "ground truth" else "only in rejected"
            notes.append(f'<span class="bad">{what}: {esc(", ".join(hall["bad"]))}</span>')
        elif hall["mentions"]:
            checked = f'{hall["mentions"]} mention{"s" if hall["mentions"] > 1 else ""} checked'
            notes.append(f'<span class="good">no hallucination found ({checked})</span>')
        if scores["correct"] is not None:
            notes.append('<span class="good">asked attribute right</span>' if scores["correct"]
                         else '<span class="bad">asked attribute wrong</span>')
        verdict = "closer to chosen" if scores["closer_rouge"] else "not closer to chosen"
        notes.append(verdict)
    cls = f"answer {label}"
    return (f'<div class="{cls}"><div class="who">{label}</div><p>{esc(text) or "<i>(empty)</i>"}</p>'
            + (f'<div class="scores">{" &middot; ".join(notes)}</div>' if notes else "") + "</div>")


def _logp_html(row: dict) -> str:
    s = row["scores"]
    if "reward_margin" not in s["tuned"]:
        return ""
    base, tuned = s["base"], s["tuned"]
    won = "chosen wins" if tuned["chosen_wins"] else "rejected wins"
    return (f'<div class="logp">log p(chosen) / log p(rejected): base {base["logp_chosen"]:.1f} / '
            f'{base["logp_rejected"]:.1f}, tuned {tuned["logp_chosen"]:.1f} / {tuned["logp_rejected"]:.1f} &middot; '
            f'tuned reward chosen {tuned["reward_chosen"]:+.3f}, rejected {tuned["reward_rejected"]:+.3f}, margin '
            f'{tuned["reward_margin"]:+.3f} ({won}; base rewards are 0)</div>')


def _card(index: int, row: dict, image) -> str:
    esc = html.escape
    change = pair_change(row)
    base_h = row["scores"]["base"]["hallucination"]["hallucinated"]
    tuned_h = row["scores"]["tuned"]["hallucination"]["hallucinated"]
    tone = "good" if change > 0 else "bad" if change < 0 else ""
    badges = [f'<span class="badge {tone}">change {change:+.2f}</span>']
    if base_h and not tuned_h:
        badges.append('<span class="badge good">hallucination removed</span>')
    elif tuned_h and not base_h:
        badges.append('<span class="badge bad">hallucination added</span>')
    answers = (_answer_html("chosen", row["chosen"], None, row) + _answer_html("rejected", row["rejected"], None, row)
               + "".join(_answer_html(m, row[m], row["scores"][m], row) for m in MODELS))
    return (f'<section class="card" id="pair-{index}"><h3><a href="#pair-{index}">#{index}</a> {"".join(badges)}</h3>'
            f'<div class="body">{_image_tag(image)}<div class="text"><p class="question">{esc(row["question"])}</p>'
            f'<div class="answers">{answers}</div>{_logp_html(row)}</div></div></section>')


def _ranking_html(rows: list[dict], order: list[int], title: str, anchor: str) -> str:
    esc = html.escape
    if not order:
        return f'<h2 id="{anchor}">{title}</h2><p>None: no pair changed in this direction.</p>'
    items = []
    for i in order:
        row, s = rows[i], rows[i]["scores"]
        flip = ""
        if s["base"]["hallucination"]["hallucinated"] != s["tuned"]["hallucination"]["hallucinated"]:
            flip = "removed" if s["base"]["hallucination"]["hallucinated"] else "added"
        flip_tone = {"removed": "good", "added": "bad"}.get(flip, "")
        items.append(f'<tr><td><a href="#pair-{i}">#{i}</a></td><td>{pair_change(row):+.2f}</td>'
                     f'<td class="{flip_tone}">{flip}</td>'
                     f'<td class="meaning">{esc(row["question"][:80])}</td>'
                     f'<td class="meaning">{esc(row["base"][:90])}</td>'
                     f'<td class="meaning">{esc(row["tuned"][:90])}</td></tr>')
    return (f'<h2 id="{anchor}">{title}</h2><table class="rank"><thead><tr><th>pair</th><th>change</th>'
            '<th>hallucination</th><th class="meaning">question</th><th class="meaning">base</th>'
            '<th class="meaning">tuned</th></tr></thead><tbody>'
            + "".join(items) + "</tbody></table>")


_STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2430; margin: 0;
       background: #f5f6f8; }
main { max-width: 1180px; margin: 0 auto; padding: 1.2em 2em 3em; }
h1 { margin: 0.2em 0 0.1em; font-size: 1.7em; } h2 { margin-top: 1.6em; border-bottom: 2px solid #dde1e7; }
nav { position: sticky; top: 0; background: #1d2430; padding: 0.55em 2em; z-index: 1; }
nav a { color: #fff; margin-right: 1.4em; text-decoration: none; font-weight: 600; } nav a:hover { color: #9cc8ff; }
.run { color: #5b6472; font-size: 0.9em; } .run code { background: #e8ebf0; padding: 0 0.3em; border-radius: 3px; }
.headline { display: flex; gap: 1em; flex-wrap: wrap; margin: 1em 0; }
.headline div { background: #fff; border-radius: 8px; padding: 0.6em 1em; box-shadow: 0 1px 3px #0002;
                min-width: 10em; }
.headline b { display: block; font-size: 1.45em; } .headline span { color: #5b6472; font-size: 0.85em; }
table { border-collapse: collapse; background: #fff; box-shadow: 0 1px 3px #0002; }
td, th { border-bottom: 1px solid #e3e6eb; padding: 0.3em 0.7em; text-align: right; vertical-align: top; }
td:first-child, th:first-child, .meaning { text-align: left; } th { background: #eef1f5; }
.summary td:first-child { white-space: nowrap; } .summary td:nth-child(-n+4) { font-variant-numeric: tabular-nums; }
.summary tr.group th { text-align: left; background: #dfe6f0; font-size: 0.9em; }
.meaning { color: #5b6472; font-size: 0.85em; } .meaning code { color: #8a93a0; }
th.meaning { color: inherit; font-size: inherit; }
.good { color: #16803c; font-weight: 600; } .bad { color: #b42318; font-weight: 600; }
.plots img { max-width: 100%; background: #fff; border-radius: 6px; box-shadow: 0 1px 3px #0002; margin: 0.4em 0; }
.plots p { color: #5b6472; font-size: 0.9em; margin: 0.2em 0 1.2em; }
.card { background: #fff; border-radius: 8px; box-shadow: 0 1px 3px #0002; margin: 1em 0; padding: 0.6em 1em 0.8em; }
.card h3 { margin: 0.1em 0 0.5em; font-size: 1em; } .card h3 a { color: #1d2430; text-decoration: none; }
.body { display: flex; gap: 1em; align-items: flex-start; } .text { flex: 1; min-width: 0; }
img.pair { width: 160px; max-height: 200px; object-fit: contain; border-radius: 4px; background: #ddd; }
img.scene { image-rendering: pixelated; }
.question { font-weight: 600; margin: 0 0 0.5em; }
.answers { display: grid; grid-template-columns: 1fr 1fr; gap: 0.5em; }
.answer { border-left: 4px solid #bbb; background: #fafbfc; padding: 0.3em 0.6em; border-radius: 3px; }
.answer p { margin: 0.1em 0; white-space: pre-wrap; } .who { font-size: 0.75em; text-transform: uppercase;
       letter-spacing: 0.06em; color: #5b6472; font-weight: 700; }
.answer.chosen { border-color: #2ca02c; } .answer.rejected { border-color: #d62728; }
.answer.base { border-color: #8c8c8c; } .answer.tuned { border-color: #1f77b4; }
.scores, .logp { font-size: 0.8em; color: #5b6472; margin-top: 0.25em; }
.badge { font-size: 0.8em; background: #eef1f5; border-radius: 10px; padding: 0.1em 0.6em; margin-left: 0.4em; }
.rank td { font-size: 0.9em; } .rank a { font-weight: 600; }
"""


def render_html(rows: list[dict], images: list, metrics: dict, plots: dict | None = None) -> str:
    """The report page: summary, plots, best improvements, worst regressions, then one card per pair.

    ``plots`` maps a title to ``(png_bytes, caption)``.
    """
    esc = html.escape
    details = " &middot; ".join(f"{esc(key)} <code>{esc(str(metrics[key]))}</code>" for key in
                                ("adapter", "model", "dataset", "split", "n", "beta", "max_new_tokens", "do_sample",
                                 "seed") if key in metrics)
    headline = []
    for key, label in (("win_rate", "win rate (ROUGE-L)"), ("reward_accuracy", "reward accuracy"),
                       ("hallucination_rate", "hallucination rate"),
                       ("proxy_hallucination_rate", "proxy hallucination rate"), ("mean_answer_words", "answer words")):
        if metrics.get(f"tuned_{key}") is not None:
            headline.append(f"<div><span>{label}</span><b>{_fmt(metrics[f'base_{key}'])} &rarr; "
                            f"{_fmt(metrics[f'tuned_{key}'])}</b><span>base &rarr; tuned</span></div>")
    plot_html = "".join(f'<h3>{esc(title)}</h3><img src="{_png_uri(png)}" alt="{esc(title)}"><p>{esc(caption)}</p>'
                        for title, (png, caption) in (plots or {}).items())
    changes = [pair_change(row) for row in rows]
    by_change = sorted(range(len(rows)), key=lambda i: changes[i])
    best = [i for i in reversed(by_change) if changes[i] > 0][:10]
    worst = [i for i in by_change if changes[i] < 0][:10]
    cards = "".join(_card(i, row, image) for i, (row, image) in enumerate(zip(rows, images)))
    nav = ('<nav><a href="#summary">Summary</a><a href="#plots">Plots</a><a href="#best">Best improvements</a>'
           '<a href="#worst">Worst regressions</a><a href="#pairs">All pairs</a></nav>')
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1"><title>vlm-dpo: base vs tuned</title>'
        f"<style>{_STYLE}</style></head><body>{nav}<main>"
        f'<h1 id="summary">What DPO changed: base vs tuned</h1><p class="run">{details}</p>'
        f'<div class="headline">{"".join(headline)}</div>'
        f"<p>{metrics['n_improved']} pairs improved and {metrics['n_regressed']} regressed "
        "(change = &Delta;(ROUGE-L to "
        f"chosen &minus; to rejected), &plusmn;1 when a hallucination is removed or added); hallucinations removed: "
        f"{metrics['n_hallucinations_removed']}, added: {metrics['n_hallucinations_added']}.</p>"
        f"{_summary_html(metrics)}{_agreement_html(metrics)}"
        f'<h2 id="plots">Plots</h2><div class="plots">{plot_html or "<p>No plots.</p>"}</div>'
        f"{_ranking_html(rows, best, 'Best improvements', 'best')}"
        f"{_ranking_html(rows, worst, 'Worst regressions', 'worst')}"
        f'<h2 id="pairs">All pairs</h2>{cards}</main></body></html>'
    )


def write_report(rows: list[dict], images: list, metrics: dict, out_dir: str | Path,
                 plots: dict | None = None) -> tuple[Path, Path]:
    """Write ``out_dir/metrics.json``, ``out_dir/answers.jsonl`` (one line per pair: question, given answers,
    both models' answers and their scores, for reading or re-scoring without the HTML) and ``out_dir/report.html``;
    ``plots`` (title -> (PNG path, caption)) are embedded in the page."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics_path, html_path = out / "metrics.json", out / "report.html"
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")
    (out / "answers.jsonl").write_text("".join(json.dumps(row, default=str) + "\n" for row in rows))
    embedded = {title: (Path(path).read_bytes(), caption) for title, (path, caption) in (plots or {}).items()}
    html_path.write_text(render_html(rows, images, metrics, embedded), encoding="utf-8")
    return metrics_path, html_path
