"""A benchmark run's figures, written: ``benchmark.json`` (everything), ``benchmark.html`` (headline cards and the
table, self-contained) and the terminal table. ``vlm_dpo.benchmark`` computes them.

    table, html_path = write_benchmark_report(summary, "bench/pope")
"""

import json
from pathlib import Path

from vlm_dpo.report.html import template
from vlm_dpo.report.table import fmt as fmt_rate

# The figures a reader compares first, where a benchmark has them: accuracy and yes-ratio (fair to both models),
# then the hallucination rates.
HEADLINE = ("accuracy", "f1", "yes_ratio", "chair_s", "chair_i", "generative_chair", "generative_hal",
            "generative_cover", "discriminative_accuracy", "counts_accuracy")
def fmt(value) -> str:
    """A rate with 3 decimals, a count as it is, "-" where a model has no value."""
    return str(value) if isinstance(value, int) else fmt_rate(value)


DETAILS = ("adapter", "model", "n_questions", "n_asked", "skipped", "limit", "max_new_tokens", "image_longest_edge")


def rows_of(results: dict) -> tuple[list[str], list[dict]]:
    """(the models, one row per metric: its key, each model's value and the tuned-minus-base delta)."""
    roles = list(results)
    keys = list(dict.fromkeys(key for metrics in results.values() for key in metrics))
    rows = []
    for key in keys:
        values = [results[role].get(key) for role in roles]
        delta = None
        if roles == ["base", "tuned"] and all(isinstance(v, float) for v in values):
            delta = values[1] - values[0]
        rows.append({"key": key, "values": values, "delta": delta})
    return roles, rows


def table(summary: dict) -> str:
    roles, rows = rows_of(summary["results"])
    width = max([len(row["key"]) for row in rows] + [10])
    lines = [f"{summary['benchmark']}: " + " vs ".join(roles),
             f"{'':<{width}}" + "".join(f"{role:>10}" for role in roles) + ("     delta" if len(roles) == 2 else "")]
    for row in rows:
        cells = "".join(f"{fmt(value):>10}" for value in row["values"])
        lines.append(f"{row['key']:<{width}}{cells}" + (f"{row['delta']:>+10.3f}" if row["delta"] is not None else ""))
    return "\n".join(lines)


def headline(results: dict) -> list[dict]:
    cards = []
    for key in next(iter(results.values())):
        if key.endswith(HEADLINE) and not key.endswith(("_n", "_tp", "_fp", "_tn", "_fn")):
            cards.append({"label": key, "figures": [fmt(metrics.get(key)) for metrics in results.values()]})
    return cards


def write_benchmark_report(summary: dict, out_dir: str | Path) -> tuple[str, Path]:
    """Write ``benchmark.json`` and ``benchmark.html`` into ``out_dir``; returns (the terminal table, the page)."""
    out_dir = Path(out_dir)
    (out_dir / "benchmark.json").write_text(json.dumps(summary, indent=2) + "\n")
    roles, rows = rows_of(summary["results"])
    page = template("benchmark.html").render(
        benchmark=summary["benchmark"], roles=roles, delta=roles == ["base", "tuned"],
        details=[(key, str(summary[key])) for key in DETAILS if summary.get(key) is not None],
        headline=headline(summary["results"]),
        rows=[{"key": row["key"], "figures": [fmt(v) for v in row["values"]],
               "delta": "" if row["delta"] is None else f"{row['delta']:+.3f}"} for row in rows])
    html_path = out_dir / "benchmark.html"
    html_path.write_text(page)
    return table(summary), html_path
