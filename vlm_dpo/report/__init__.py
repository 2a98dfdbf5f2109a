"""Reports: scored base-vs-tuned pairs as metrics.json, plots, terminal tables and a self-contained report.html.

Scoring and aggregation live in ``vlm_dpo.eval`` (``scoring``, ``aggregate``, with every metric defined once in
``registry``); this package renders them. The names below are what callers import.

    rows = score_pairs(rows, beta=0.1)
    metrics = compare(rows)
    write_report(rows, images, metrics, "reports/tiny", make_plots(rows, "reports/tiny", beta=0.1))
"""

from vlm_dpo.eval.aggregate import compare, question_type_metrics
from vlm_dpo.eval.registry import METRIC_KEYS, METRICS, eval_results_metrics
from vlm_dpo.eval.scoring import attribute_correct, pair_change, score_pairs
from vlm_dpo.report.html import render_html, write_report
from vlm_dpo.report.plots import make_plots
from vlm_dpo.report.table import print_training_summary, summary_table, training_summary

__all__ = ["METRIC_KEYS", "METRICS", "attribute_correct", "compare", "eval_results_metrics", "make_plots",
           "pair_change", "print_training_summary", "question_type_metrics", "render_html", "score_pairs",
           "summary_table", "training_summary", "write_report"]
