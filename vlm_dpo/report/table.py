"""Plain-text tables for the terminal: a report's base/tuned/delta metrics, and a training run's summary."""

from __future__ import annotations

from pathlib import Path

from vlm_dpo.eval.registry import METRICS
from vlm_dpo.eval.scoring import MODELS


def fmt(value) -> str:
    """A metric as the tables show it: 3 decimals, "-" where it does not apply."""
    return "-" if value is None else f"{value:.3f}"


def summary_table(metrics: dict) -> str:
    """A report's metrics as an aligned table, one line per metric that has a value (keys as in metrics.json)."""
    lines = [f"{'metric':<34}{'base':>10}{'tuned':>10}{'delta':>10}"]
    for metric in METRICS:
        row = [metrics.get(f"{m}_{metric.key}") for m in (*MODELS, "delta")]
        if any(value is not None for value in row):
            lines.append(f"{metric.key:<34}" + "".join(f"{fmt(value):>10}" for value in row))
    lines.append(f"pairs: {metrics['n']} (with ground truth: {metrics['n_ground_truth']}); "
                 f"improved {metrics['n_improved']}, regressed {metrics['n_regressed']}")
    return "\n".join(lines)


def training_summary(output_dir: str | Path, results: dict) -> str:
    """The end-of-training summary from eval_results.json's keys: held-out loss and every registry metric with a
    base and a tuned value, then where the files are and what to run next."""
    output_dir = Path(output_dir)
    lines = [f"\nHeld-out pairs: {results['n_eval_pairs']}   steps: {results['global_step']}",
             f"{'metric':<34}{'base':>12}{'tuned':>12}"]
    for key in ("loss", *(metric.key for metric in METRICS)):
        base, tuned = results.get(f"base_{key}"), results.get(f"tuned_{key}")
        if base is not None and tuned is not None:
            lines.append(f"{key:<34}{base:>12.4f}{tuned:>12.4f}")
    lines.append(f"\nResults in {output_dir}/ (adapter, eval_results.json, training_curves.png, run_config.yaml)")
    if (output_dir / "report" / "report.html").exists():
        lines.append(f"Report: {output_dir}/report/report.html")
    if (output_dir / "processor_config.json").exists():  # a vision-language run
        lines.append(f'Next: python infer.py --adapter {output_dir} --image YOUR_IMAGE.png --question '
                     '"Describe the image."')
    else:
        lines.append(f'Next: python infer.py --adapter {output_dir} --prompt "YOUR QUESTION"')
    return "\n".join(lines)


def print_training_summary(output_dir: str | Path, results: dict) -> None:
    """Print ``training_summary``: what ``train.py`` shows when a run ends."""
    print(training_summary(output_dir, results))
