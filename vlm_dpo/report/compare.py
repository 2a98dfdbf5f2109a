"""Base vs tuned on a preference split, end to end: ``vlm_dpo.eval.compare`` computes, this writes ``metrics.json``,
the PNG plots and ``report.html`` into ``out_dir``. Behind ``infer.py --dataset`` and the report at the end of a
training run (``model`` is then the trainer's ``PeftModel``).

    model, processor, record = load_tuned("outputs/tiny")
    metrics, metrics_path, html_path = compare_on_dataset(model, processor, prepared["test"], "reports/tiny",
                                                          beta=record.beta, run_dir="outputs/tiny")
"""

import json
from pathlib import Path

from vlm_dpo.eval.compare import score_on_dataset
from vlm_dpo.eval.logprobs import EXTERNAL_LABEL
from vlm_dpo.eval.registry import training_eval_keys
from vlm_dpo.report.html import write_report
from vlm_dpo.report.plots import make_plots


def compare_on_dataset(model, processor, data, out_dir: str | Path, *, beta: float, max_new_tokens: int = 64,
                       batch_size: int = 4, do_sample: bool = False, seed: int = 0, run_dir: str | Path | None = None,
                       details: dict | None = None, given_logps: dict | None = None,
                       tuned_generation: dict | None = None) -> tuple[dict, Path, Path]:
    """Generate, score and report on ``data``; returns ``(metrics, metrics_path, html_path)``.

    ``run_dir`` is the training output folder: its ``log_history.json`` gives the training curves and its
    ``eval_results.json`` the held-out numbers shown next to ours. ``details`` (adapter, dataset, split, ...)
    are written into metrics.json as they are. The other options are ``score_on_dataset``'s.
    """
    rows, images, metrics, external_logps = score_on_dataset(
        model, processor, data, beta=beta, max_new_tokens=max_new_tokens, batch_size=batch_size, do_sample=do_sample,
        seed=seed, given_logps=given_logps, tuned_generation=tuned_generation)
    metrics = {**metrics, **(details or {})}
    log_history = None
    if run_dir is not None:
        metrics.update(training_eval_results(run_dir))
        history_path = Path(run_dir) / "log_history.json"
        log_history = json.loads(history_path.read_text()) if history_path.is_file() else None
    plots = make_plots(rows, out_dir, beta, external_logps, external_label=EXTERNAL_LABEL, log_history=log_history)
    metrics_path, html_path = write_report(rows, images or [None] * len(rows), metrics, out_dir, plots)
    return metrics, metrics_path, html_path


def training_eval_results(run_dir: str | Path) -> dict:
    """The held-out numbers train.py wrote (eval_results.json) for the metrics TRL logs, as ``train_eval_*`` keys:
    the report shows them next to its own, which carry the same names (``vlm_dpo.eval.registry``)."""
    path = Path(run_dir) / "eval_results.json"
    if not path.is_file():
        return {}
    results = json.loads(path.read_text())
    return {f"train_eval_{key}": results[key] for key in [*training_eval_keys(), "n_eval_pairs"] if key in results}
