"""report.html: summary, dodge probes, plots, best improvements, worst regressions, then one card per pair.

The page is rendered from ``templates/report.html`` (Jinja2, autoescape on: questions and answers come from data
sets and models, so any HTML in them shows as text) with ``templates/report.css`` inlined. It is self-contained:
images and plots inlined as base64, no scripts, no remote resources, so it can be mailed or opened offline. This
module prepares plain values (numbers formatted, tones chosen); the template only lays them out.

    write_report(rows, images, metrics, "reports/tiny", plots={"Training curves": ("out/curves.png", "caption")})
"""

from __future__ import annotations

import base64
import io
import json
from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from vlm_dpo.eval.registry import BY_KEY, HIGHER, LOWER, groups, training_eval_keys
from vlm_dpo.eval.scoring import MODELS, pair_change
from vlm_dpo.report.table import fmt

THUMBNAIL = 256  # longest edge of the pair images in the page, in pixels
RUN_DETAILS = ("adapter", "model", "dataset", "split", "n", "beta", "max_new_tokens", "do_sample", "seed")
# Comparisons fair to both models lead; reward accuracy, 0 for the base by definition (it is its own reference), is
# in the table below.
HEADLINE = ("hallucination_rate", "proxy_hallucination_rate", "logp_accuracy", "attribute_accuracy", "yes_ratio",
            "win_rate", "mean_answer_words")
RANKED = 10  # pairs listed under best improvements and worst regressions
PROBE_TYPES = ("exists", "count", "color", "describe")  # the dodge probes' table, in this order


@lru_cache(maxsize=1)
def template(name: str = "report.html"):
    env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.get_template(name)


def _data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def _image(image) -> dict | None:
    """The pair's image inlined: small images (synthetic scenes) as lossless PNG, photos shrunk to a
    ``THUMBNAIL`` px JPEG, so that a report on thousands of RLHF-V pairs stays a few MB per hundred pairs."""
    if image is None:  # text-only data set
        return None
    buffer = io.BytesIO()
    if max(image.size) <= 160:
        image.save(buffer, format="PNG")
        return {"cls": "pair scene", "uri": _data_uri(buffer.getvalue())}
    thumbnail = image.convert("RGB")
    thumbnail.thumbnail((THUMBNAIL, THUMBNAIL))
    thumbnail.save(buffer, format="JPEG", quality=85)
    return {"cls": "pair", "uri": _data_uri(buffer.getvalue(), "image/jpeg")}


def _tone(change: float | None, direction: str) -> str:
    """"good" or "bad" for a change in the metric's better direction; "" for no change or no direction."""
    if change is None or abs(change) < 1e-9 or direction not in (HIGHER, LOWER):
        return ""
    return "good" if (change > 0) == (direction == HIGHER) else "bad"


def _summary(metrics: dict) -> list[dict]:
    """The summary table by group: one row per metric with any value."""
    out = []
    for group, members in groups().items():
        rows = []
        for metric in members:
            base, tuned, change = (metrics.get(f"{m}_{metric.key}") for m in (*MODELS, "delta"))
            if base is None and tuned is None and change is None:
                continue
            rows.append({"label": metric.label, "base": fmt(base), "tuned": fmt(tuned), "key": metric.key,
                         "delta": "" if change is None else f"{change:+.3f}", "tone": _tone(change, metric.direction),
                         "meaning": metric.meaning})
        if rows:
            out.append({"name": group, "rows": rows})
    return out


def _probes(metrics: dict) -> list[dict]:
    """One row per question type with a majority baseline: pairs, the baseline, then attribute accuracy and the share
    of answers naming the asked object, base and tuned; an accuracy at or below the baseline is marked bad (a dodge
    reaches it without looking)."""
    rows = []
    for qtype in PROBE_TYPES:
        baseline = metrics.get(f"majority_baseline_{qtype}")
        if baseline is None:
            continue
        accuracy = [metrics.get(f"{m}_attribute_accuracy_{qtype}") for m in MODELS]
        rows.append({"type": qtype, "n": metrics[f"n_{qtype}"], "baseline": fmt(baseline),
                     "accuracy": [(fmt(a), "bad" if a is not None and a <= baseline + 1e-9 else "") for a in accuracy],
                     "names": [fmt(metrics.get(f"{m}_names_asked_object_{qtype}")) for m in MODELS]})
    return rows


def _agreement(metrics: dict) -> list[dict]:
    """Our numbers next to those of training's held-out evaluation (``train_eval_*``), under the same keys."""
    rows = []
    for key in training_eval_keys():
        model, name = key.split("_", 1)
        ours, trained = metrics.get(key), metrics.get(f"train_eval_{key}")
        if ours is not None and trained is not None:
            rows.append({"label": f"{BY_KEY[name].label}, {model}", "ours": fmt(ours), "trained": fmt(trained)})
    return rows


def _notes(scores: dict) -> list[tuple[str, str]]:
    """What the scores say about one answer, as ``(tone, text)``; tone "" is plain text."""
    hall = scores["hallucination"]
    notes = [("", f"ROUGE-L chosen {scores['rouge_chosen']:.2f} / rejected {scores['rouge_rejected']:.2f}")]
    if "cosine_chosen" in scores:  # left out without the optional embedding model
        notes.append(("", f"cosine chosen {scores['cosine_chosen']:.2f} / rejected {scores['cosine_rejected']:.2f}"))
    if hall["bad"]:
        what = "false" if hall["kind"] == "ground truth" else "only in rejected"
        notes.append(("bad", f"{what}: {', '.join(hall['bad'])}"))
    elif hall["mentions"]:
        notes.append(("good", f"no hallucination found ({hall['mentions']} mention"
                              f"{'s' if hall['mentions'] > 1 else ''} checked)"))
    if scores["correct"] is not None:
        notes.append(("good", "asked attribute right") if scores["correct"] else ("bad", "asked attribute wrong"))
    notes.append(("", "closer to chosen" if scores["closer_rouge"] else "not closer to chosen"))
    return notes


def _logp_line(row: dict) -> str | None:
    base, tuned = row["scores"]["base"], row["scores"]["tuned"]
    if "reward_margin" not in tuned:
        return None
    won = "chosen wins" if tuned["chosen_wins"] else "rejected wins"
    return (f"log p(chosen) / log p(rejected): base {base['logp_chosen']:.1f} / {base['logp_rejected']:.1f}, tuned "
            f"{tuned['logp_chosen']:.1f} / {tuned['logp_rejected']:.1f} \N{MIDDLE DOT} tuned reward chosen "
            f"{tuned['reward_chosen']:+.3f}, rejected {tuned['reward_rejected']:+.3f}, margin "
            f"{tuned['reward_margin']:+.3f} ({won}; base rewards are 0)")


def _flip(row: dict) -> str:
    """"removed" or "added" when tuning changed whether the answer hallucinates, else ""."""
    base, tuned = (row["scores"][m]["hallucination"]["hallucinated"] for m in MODELS)
    return "" if base == tuned else "removed" if base else "added"


def _card(index: int, row: dict, image) -> dict:
    change = pair_change(row)
    badges = [("good" if change > 0 else "bad" if change < 0 else "", f"change {change:+.2f}")]
    flip = _flip(row)
    if flip:
        badges.append(("good" if flip == "removed" else "bad", f"hallucination {flip}"))
    answers = [{"who": side, "text": row[side], "notes": []} for side in ("chosen", "rejected")]
    answers += [{"who": m, "text": row[m], "notes": _notes(row["scores"][m])} for m in MODELS]
    return {"index": index, "badges": badges, "image": _image(image), "question": row["question"],
            "answers": answers, "logp": _logp_line(row)}


def _ranking(rows: list[dict], order: list[int]) -> list[dict]:
    return [{"index": i, "change": f"{pair_change(rows[i]):+.2f}", "flip": _flip(rows[i]),
             "question": rows[i]["question"][:80], "base": rows[i]["base"][:90], "tuned": rows[i]["tuned"][:90]}
            for i in order]


def render_html(rows: list[dict], images: list, metrics: dict, plots: dict | None = None) -> str:
    """The report page. ``plots`` maps a title to ``(png_bytes, caption)``."""
    changes = [pair_change(row) for row in rows]
    by_change = sorted(range(len(rows)), key=lambda i: changes[i])
    best = [i for i in reversed(by_change) if changes[i] > 0][:RANKED]
    worst = [i for i in by_change if changes[i] < 0][:RANKED]
    headline = [{"label": BY_KEY[key].label, "base": fmt(metrics[f"base_{key}"]), "tuned": fmt(metrics[f"tuned_{key}"])}
                for key in HEADLINE if metrics.get(f"tuned_{key}") is not None]
    return template().render(
        details=[(key, str(metrics[key])) for key in RUN_DETAILS if key in metrics],
        headline=headline, metrics=metrics, summary=_summary(metrics), probes=_probes(metrics),
        agreement=_agreement(metrics),
        plots=[{"title": title, "uri": _data_uri(png), "caption": caption} for title, (png, caption) in
               (plots or {}).items()],
        rankings=[("best", "Best improvements", _ranking(rows, best)),
                  ("worst", "Worst regressions", _ranking(rows, worst))],
        cards=[_card(i, row, image) for i, (row, image) in enumerate(zip(rows, images))],
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

