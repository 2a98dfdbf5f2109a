"""Training curves from the Trainer's log history: loss, reward accuracy and reward margin against steps."""

from pathlib import Path

CURVES = (("loss", "DPO loss"), ("rewards/accuracies", "reward accuracy"), ("rewards/margins", "reward margin"))


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
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
