"""Compare base and tuned generations with the chosen and rejected answers; write metrics.json and report.html.

A row is one preference pair with both generations:
``{"question", "chosen", "rejected", "base", "tuned"}``. The numbers answer "did tuning move the
answers towards chosen and away from rejected?"; the HTML shows every pair so that a person can
check the numbers against the answers. The page is self-contained (images inlined as base64 PNG,
no scripts, no remote resources) so it can be mailed or opened offline.

    metrics = compare(rows)
    write_report(rows, images, metrics, "reports/tiny")
"""

import base64
import html
import io
import json
from pathlib import Path

from .similarity import closer_to_chosen, rouge_l_f1, words

# Per-model metrics, in the order of the summary table, with what each one means.
METRICS = {
    "win_rate": "fraction of pairs where the answer is closer (ROUGE-L) to chosen than to rejected",
    "mean_rouge_l_chosen": "mean ROUGE-L F1 of the answer against the chosen answer",
    "mean_rouge_l_rejected": "mean ROUGE-L F1 of the answer against the rejected answer",
    "mean_answer_words": "mean answer length in words (an empty or runaway answer shows here)",
}
MODELS = ("base", "tuned")


def compare(rows: list[dict]) -> dict:
    """Flat metrics: ``n``, then ``{base,tuned,delta}_{metric}`` for each of ``METRICS``; delta = tuned - base."""
    if not rows:
        raise ValueError("No generations to compare: the data set split is empty (or --limit is 0).")
    metrics = {"n": len(rows)}
    for model in MODELS:
        answers = [(row[model], row["chosen"], row["rejected"]) for row in rows]
        values = {
            "win_rate": [closer_to_chosen(*a) for a in answers],
            "mean_rouge_l_chosen": [rouge_l_f1(gen, chosen) for gen, chosen, _ in answers],
            "mean_rouge_l_rejected": [rouge_l_f1(gen, rejected) for gen, _, rejected in answers],
            "mean_answer_words": [len(words(gen)) for gen, _, _ in answers],
        }
        for name, per_pair in values.items():
            metrics[f"{model}_{name}"] = sum(per_pair) / len(per_pair)
    for name in METRICS:
        metrics[f"delta_{name}"] = metrics[f"tuned_{name}"] - metrics[f"base_{name}"]
    return metrics


def summary_table(metrics: dict) -> str:
    """The metrics as an aligned plain-text table, for the terminal."""
    lines = [f"{'metric':<24}{'base':>10}{'tuned':>10}{'delta':>10}"]
    for name in METRICS:
        lines.append(f"{name:<24}" + "".join(f"{metrics[f'{m}_{name}']:>10.3f}" for m in (*MODELS, "delta")))
    lines.append(f"pairs: {metrics['n']}")
    return "\n".join(lines)


def _image_tag(image) -> str:
    if image is None:  # text-only data set
        return ""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="pair image">'


def _card(index: int, row: dict, image) -> str:
    esc = html.escape
    answers = [("chosen", row["chosen"], ""), ("rejected", row["rejected"], "")]
    for model in MODELS:
        scores = (f"ROUGE-L vs chosen {rouge_l_f1(row[model], row['chosen']):.3f}, "
                  f"vs rejected {rouge_l_f1(row[model], row['rejected']):.3f}")
        verdict = "closer to chosen" if closer_to_chosen(row[model], row["chosen"], row["rejected"]) else "not closer"
        answers.append((model, row[model], f"{scores} ({verdict})"))
    items = "".join(
        f'<dt class="{label}">{label}</dt><dd><p>{esc(text)}</p>'
        + (f'<p class="score">{esc(note)}</p>' if note else "") + "</dd>"
        for label, text, note in answers
    )
    return (f'<section class="card"><h2>#{index}</h2>{_image_tag(image)}'
            f'<p class="question"><b>Question:</b> {esc(row["question"])}</p><dl>{items}</dl></section>')


_STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 70em; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: 0.3em 0.8em; text-align: right; }
td:first-child, th:first-child { text-align: left; }
.card { border: 1px solid #ccc; border-radius: 6px; padding: 1em; margin: 1em 0; overflow: auto; }
.card img { float: left; max-width: 256px; margin: 0 1em 1em 0; image-rendering: pixelated; }
dt { font-weight: bold; } dd { margin: 0 0 0.6em 1em; } dd p { margin: 0.1em 0; white-space: pre-wrap; }
.chosen { color: #17692d; } .rejected { color: #a3201b; } .score { color: #555; font-size: 0.9em; }
"""


def render_html(rows: list[dict], images: list, metrics: dict) -> str:
    """The report page: run details, the summary table, then one card per pair."""
    esc = html.escape
    header = "".join(f"<th>{name}</th>" for name in ("metric", *MODELS, "delta"))
    body = "".join(
        f'<tr><td title="{esc(meaning)}">{name}</td>'
        + "".join(f"<td>{metrics[f'{m}_{name}']:.3f}</td>" for m in (*MODELS, "delta")) + "</tr>"
        for name, meaning in METRICS.items()
    )
    details = "".join(f"<li>{esc(str(key))}: {esc(str(value))}</li>" for key, value in metrics.items()
                      if not key.startswith((*MODELS, "delta")))
    cards = "".join(_card(i, row, image) for i, (row, image) in enumerate(zip(rows, images)))
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>vlm-dpo: base vs tuned</title>'
            f"<style>{_STYLE}</style></head><body><h1>Base vs tuned</h1><ul>{details}</ul>"
            f"<table><tr>{header}</tr>{body}</table>"
            "<p>Win rate: share of pairs whose answer is closer (ROUGE-L F1, Lin 2004) to the chosen than to the "
            f"rejected answer; ties count as losses.</p>{cards}</body></html>")


def write_report(rows: list[dict], images: list, metrics: dict, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``out_dir/metrics.json`` and ``out_dir/report.html``; returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics_path, html_path = out / "metrics.json", out / "report.html"
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")
    html_path.write_text(render_html(rows, images, metrics), encoding="utf-8")
    return metrics_path, html_path
