"""The report's plots as PNG: training curves from the Trainer's log history (loss, reward accuracy and reward
margin against steps), the log-prob and reward margins of base and tuned, and per-token log-prob histograms.

    plots = make_plots(rows, "reports/tiny", beta=0.1, external=external_logps, log_history=history)
    # {title: (png path, caption)}, for vlm_dpo.report.html.write_report
"""

from __future__ import annotations

from pathlib import Path

from vlm_dpo.eval.registry import BY_KEY
from vlm_dpo.eval.scoring import MODELS

# (TRL's log key, panel title)
CURVES = (("loss", "DPO loss"), *((BY_KEY[key].trl, BY_KEY[key].label) for key in ("rewards_accuracies",
                                                                                     "rewards_margins")))
# The loss a stage of a run logs (``stage`` in its log entries: vlm_dpo.training.methods); untagged entries are DPO's.
STAGE_LOSS = {"dpo": "DPO loss", "sft": "SFT loss (NLL)", "coh": "CoH loss (NLL)"}


def loss_title(log_history: list[dict]) -> str:
    """The loss panel's title: the loss of each stage that logged one, in step order ("SFT loss (NLL), then DPO
    loss" for sft_then_dpo)."""
    stages = []
    for entry in log_history:
        name = STAGE_LOSS.get(entry.get("stage", "dpo"), entry.get("stage"))
        if "loss" in entry and name not in stages:
            stages.append(name)
    return ", then ".join(stages) or "DPO loss"


def series(log_history: list[dict], key: str) -> list[tuple[int, float]]:
    """(step, value) points of one logged metric, in step order."""
    return [(entry["step"], entry[key]) for entry in log_history if key in entry and "step" in entry]


def plot_training_curves(log_history: list[dict], path: str | Path) -> Path:
    """One PNG with a panel per metric; train and held-out (eval_*) series share the panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(CURVES), figsize=(5 * len(CURVES), 3.6))
    for ax, (key, title) in zip(axes, CURVES):
        for prefix, style, label in (("", "-", "train"), ("eval_", "o--", "held-out")):
            points = series(log_history, prefix + key)
            if points:
                ax.plot(*zip(*points), style, label=label)
        ax.set_title(loss_title(log_history) if key == "loss" else title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


COLORS = {"base": "#7f7f7f", "tuned": "#1f77b4", "chosen": "#2ca02c", "rejected": "#d62728", "external": "#9467bd"}


def plot_margins(base_logp_margins, tuned_logp_margins, tuned_reward_margins, beta: float, path: str | Path) -> Path:
    """Two panels over the same pairs: the log-prob margin log p(chosen) - log p(rejected) (summed over answer
    tokens) of base and tuned, and the tuned model's implicit reward margin beta * (that margin - the base's).
    The base's reward margin is 0 for every pair (its reference is itself), so it is drawn as a line at 0."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    values = [*base_logp_margins, *tuned_logp_margins]
    bins = _bins(values)
    for model, margins in (("base", base_logp_margins), ("tuned", tuned_logp_margins)):
        _hist(left, margins, bins, COLORS[model], f"{model} (mean {sum(margins) / len(margins):+.2f})")
    left.axvline(0, color="black", lw=0.8)
    left.set_title("log-prob margin: log p(chosen) - log p(rejected)", fontsize=10)
    left.set_xlabel("nats (summed over answer tokens); right of 0 = prefers chosen")
    left.set_ylabel("pairs")
    right.hist(tuned_reward_margins, bins=_bins(tuned_reward_margins), color=COLORS["tuned"], alpha=0.8,
               label=f"tuned (mean {sum(tuned_reward_margins) / len(tuned_reward_margins):+.3f})")
    right.axvline(0, color=COLORS["base"], lw=2, label="base: 0 for every pair")
    right.set_title(f"tuned implicit reward margin, beta x (tuned - base), beta = {beta:g}", fontsize=10)
    right.set_xlabel("reward(chosen) - reward(rejected)")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_token_logps(per_token: dict, external_label: str, path: str | Path) -> Path:
    """Histogram of per-token mean log-probs (sequence log-prob / answer tokens), one panel per model.

    ``per_token`` is ``{"base": {"chosen": [...], "rejected": [...], "external": [...]}, "tuned": {...}}``:
    in-distribution answers against external text scored as answers to the same prompts. A model that
    has learnt the data puts the in-distribution answers well right of the external text; DPO should
    move chosen right of rejected.
    """
    plt = _pyplot()
    models = list(per_token)
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 3.6), sharex=True, sharey=True)
    axes = [axes] if len(models) == 1 else axes
    bins = _bins([v for groups in per_token.values() for values in groups.values() for v in values])
    labels = {"chosen": "chosen answers", "rejected": "rejected answers", "external": external_label}
    for ax, model in zip(axes, models):
        for group, values in per_token[model].items():
            if values:
                _hist(ax, values, bins, COLORS[group], labels[group])
        ax.set_title(f"{model}: per-token log-prob of answers", fontsize=10)
        ax.set_xlabel("mean log-prob per answer token (nats)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("answers")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def _hist(ax, values, bins, color, label):
    """A light fill with a solid outline, so that overlapping histograms stay readable."""
    ax.hist(values, bins=bins, color=color, alpha=0.25)
    ax.hist(values, bins=bins, color=color, histtype="step", lw=1.6, label=label)


def _bins(values, n: int = 30):
    """Shared bin edges over all values (a flat range when every value is the same)."""
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    return [low + (high - low) * i / n for i in range(n + 1)]


def make_plots(rows: list[dict], out_dir: str | Path, beta: float, external: dict | None = None,
               external_label: str = "external text", log_history: list[dict] | None = None) -> dict:
    """Write the report's PNGs into ``out_dir``; returns ``{title: (path, caption)}`` for ``write_report``.

    Training curves (when the run's ``log_history`` is given), the margin distributions (when the rows have
    log-probs) and the per-token log-prob histogram of chosen, rejected and external text.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots = {}
    if log_history:
        plots["Training curves"] = (plot_training_curves(log_history, out / "training_curves.png"),
                                    "Training loss, reward accuracy and reward margin against optimiser steps, on "
                                    "training batches and (where logged) the held-out split, from the run's "
                                    "log_history.json.")
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
