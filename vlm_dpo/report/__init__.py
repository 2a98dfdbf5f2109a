"""Reports: scored base-vs-tuned pairs as metrics.json, plots, terminal tables and a self-contained report.html.

Scoring and aggregation live in ``vlm_dpo.eval`` (``scoring``, ``aggregate``, with every metric defined once in
``registry``), which computes and writes nothing; this package writes what it computed.

    metrics, metrics_path, html_path = compare_on_dataset(model, processor, split, "reports/tiny", beta=0.1)
"""
