"""Every training method (``--method``: dpo, sft, sft_then_dpo, coh) on the same base, data, seed and step budget, on
the offline demo (recipes/demo.yaml) and the text demo (recipes/text_demo.yaml); one markdown table.

    python benchmarks/compare_methods.py                       # 8 runs, as the recipes say (about an hour on 2 cores)
    python benchmarks/compare_methods.py --max_steps 4 --eval_limit 16 --report_pairs 16   # reduced
    python benchmarks/compare_methods.py --methods dpo coh --recipes recipes/text_demo.yaml

Each run is ``python train.py --config RECIPE --method METHOD`` in its own process, into OUTPUT_DIR/RECIPE/METHOD;
the data of a recipe is prepared once, before its runs, into OUTPUT_DIR/RECIPE/data, which they all train on. The
table (OUTPUT_DIR/comparison.md, also printed) takes, per run:

- reward accuracy: the held-out pairs' DPO reward accuracy against the base (eval_results.json; for coh, its
  answers scored after the positive phrase); the base row is 0 by definition;
- log-prob accuracy: share of report pairs where the model gives the chosen answer the higher log-prob
  (report/metrics.json);
- hallucination rate and attribute accuracy (overall and per question type) of the greedy answers to the report
  pairs, checked against each scene's ground truth; for the text demo, exact-answer accuracy (the answer's last
  number is the result) instead;
- yes-ratio: the share of existence questions answered "yes" (half are about present objects): a model that
  answers "yes" to everything wins the pairs about present objects without looking;
- train time (the trainers' own runtime) and wall time (the whole run as its timing table measures it: loading,
  both evaluations, the report; the first run of a recipe also fills the on-disk cache of the base's reference
  log-probs that later runs reuse).

Runs that fail are listed with their last error line; the others still make the table. ``--table_only`` makes the
table from the run folders already under OUTPUT_DIR, running nothing (e.g. after adding a method's runs).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECIPES = ("recipes/demo.yaml", "recipes/text_demo.yaml")
METHODS = ("dpo", "sft", "sft_then_dpo", "coh")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), help="recipes to run every method on")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--max_steps", type=int, help="step budget of every run (default: each recipe's)")
    parser.add_argument("--eval_limit", type=int, help="held-out pairs evaluated (default: each recipe's)")
    parser.add_argument("--report_pairs", type=int, help="held-out pairs answered and checked (default: each recipe's)")
    parser.add_argument("--seed", type=int, help="seed of every run (default: each recipe's)")
    parser.add_argument("--output_dir", default="outputs/compare-methods", help="where the runs and the table go")
    parser.add_argument("--table_only", action="store_true",
                        help="run nothing: the table of the run folders already under OUTPUT_DIR")
    return parser.parse_args(argv)


def overrides(args) -> list[str]:
    """The flags every run of the comparison shares."""
    flags = []
    for name in ("max_steps", "eval_limit", "report_pairs", "seed"):
        if getattr(args, name) is not None:
            flags += [f"--{name}", str(getattr(args, name))]
    return flags


def prepare(recipe: str, data_dir: Path, flags: list[str]) -> None:
    """The recipe's data, prepared once into ``data_dir`` as train.py would (its fingerprint lets every run reuse
    it), so that no run's wall time includes the preparation."""
    import train
    from data_prep.processors import at_training_size
    from vlm_dpo.models import load_processor
    from vlm_dpo.training.data import load_or_prepare

    data_args, training_args, model_args = train.parse(["--config", recipe, "--prepared_dir", str(data_dir),
                                                        *flags])[:3]
    processor = at_training_size(load_processor(model_args.model_name_or_path), data_args.processor_longest_edge)
    load_or_prepare(data_args, model_args.model_name_or_path, processor, training_args.max_length, data_dir)


def run(recipe: str, method: str, out: Path, data_dir: Path, flags: list[str]) -> dict:
    """One ``train.py`` run in its own process; its last error line when it failed."""
    command = [sys.executable, "train.py", "--config", recipe, "--method", method, "--output_dir", str(out),
               "--prepared_dir", str(data_dir), *flags]
    print(f"\n$ {' '.join(command[1:])}", flush=True)
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    (out.parent / f"{method}.log").write_text(result.stdout + result.stderr)
    error = None
    if result.returncode:
        lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
        error = lines[-1] if lines else f"exit status {result.returncode}"
        print(f"  failed: {error}", flush=True)
    return {"error": error}


def read_run(out: Path) -> dict:
    """What the table shows of one finished run folder; a folder without results is an error row."""
    if not (out / "eval_results.json").is_file():
        return {"error": f"no eval_results.json in {out}"}
    results = json.loads((out / "eval_results.json").read_text())
    report_path = out / "report" / "metrics.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    return {"results": results, "report": report, "vision": (out / "processor_config.json").is_file(),
            "wall_s": results.get("timings_s", {}).get("total")}


def question_types(rows: list[dict]) -> list[str]:
    """The scene question types with an attribute accuracy in any vision run, in the scenes' order."""
    from vlm_dpo.eval.checks.scenes import QUESTION_TYPES

    found = {key.removeprefix("tuned_attribute_accuracy_") for row in rows if row.get("vision")
             for key in row["results"] if key.startswith("tuned_attribute_accuracy_")}
    return [qtype for qtype in QUESTION_TYPES if qtype in found]


def fmt(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def table(rows: list[dict]) -> str:
    """One markdown table: a base row per recipe (from its first finished run), then a row per run."""
    types = question_types(rows)
    header = ["recipe", "method", "steps", "reward acc.", "log-prob acc.", "hallucination rate", "attribute acc.",
              *(f"{qtype} acc." for qtype in types), "yes-ratio", "exact-answer acc.", "train s", "wall s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    seen = set()
    for row in rows:
        if row.get("error"):
            lines.append(f"| {row['recipe']} | {row['method']} | failed: {row['error']} |")
            continue
        if row["recipe"] not in seen:  # the base is the same model, data and prompts in every run of a recipe
            seen.add(row["recipe"])
            lines.append(line(row, "base", "base", types))
        lines.append(line(row, "tuned", row["method"], types))
    return "\n".join(lines)


def line(row: dict, model: str, label: str, types: list[str]) -> str:
    results, report, vision = row["results"], row["report"], row["vision"]
    tuned = model == "tuned"
    accuracy = results.get(f"{model}_attribute_accuracy")
    cells = [row["recipe"], label, str(results["global_step"]) if tuned else "0",
             fmt(results.get(f"{model}_rewards_accuracies")), fmt(report.get(f"{model}_logp_accuracy")),
             fmt(results.get(f"{model}_hallucination_rate")), fmt(accuracy if vision else None),
             *(fmt(results.get(f"{model}_attribute_accuracy_{qtype}") if vision else None) for qtype in types),
             fmt(results.get(f"{model}_yes_ratio") if vision else None), fmt(None if vision else accuracy),
             fmt(results.get("train_runtime_s"), 1) if tuned else "", fmt(row.get("wall_s"), 0) if tuned else ""]
    return "| " + " | ".join(cells) + " |"


def main(argv=None) -> int:
    args = parse_args(argv)
    out_root = Path(args.output_dir).resolve()
    flags = overrides(args)
    rows = []
    for recipe in args.recipes:
        name = Path(recipe).stem
        data_dir = out_root / name / "data"
        if not args.table_only:
            prepare(recipe, data_dir, flags)
        for method in args.methods:
            out = out_root / name / method
            row = {"recipe": name, "method": method, "error": None}
            if not args.table_only:
                row |= run(recipe, method, out, data_dir, flags)
            if not row["error"]:
                row |= read_run(out)
            rows.append(row)
    text = table(rows)
    settings = " ".join(flags) or "each recipe's own settings"
    if args.table_only:
        settings = f"the runs found in {out_root} (steps as each row says)"
    (out_root / "comparison.md").write_text(f"Settings: {settings}\n\n{text}\n")
    print(f"\n{text}\n\nWritten to {out_root / 'comparison.md'}")
    return 1 if any(row.get("error") for row in rows) else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
