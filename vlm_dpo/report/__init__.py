"""Reports: scored base-vs-tuned pairs as metrics.json, plots and a self-contained report.html."""

from vlm_dpo.report.core import (
    METRIC_KEYS,
    METRICS,
    compare,
    make_plots,
    pair_change,
    question_type_metrics,
    render_html,
    score_pairs,
    summary_table,
    write_report,
)

__all__ = ["METRIC_KEYS", "METRICS", "compare", "make_plots", "pair_change", "question_type_metrics", "render_html",
           "score_pairs", "summary_table", "write_report"]
