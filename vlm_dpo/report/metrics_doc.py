"""docs/metrics.md, generated from ``vlm_dpo.eval.registry`` so that the page cannot drift from the code.

    python -m vlm_dpo.report.metrics_doc            # rewrite docs/metrics.md
    python -m vlm_dpo.report.metrics_doc --check    # exit 1 when it is out of date
"""

from __future__ import annotations

import sys
from pathlib import Path

from vlm_dpo.eval.registry import COUNTS, HIGHER, LOWER, METRICS, NEITHER, groups

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
_BETTER = {HIGHER: "higher", LOWER: "lower", NEITHER: "-"}

INTRO = """\
# Metrics

Generated from `vlm_dpo/eval/registry.py` by `python -m vlm_dpo.report.metrics_doc`; edit the registry, not this
page. The same table names the keys of `metrics.json` and `eval_results.json`, the rows of the terminal summary
and of `report.html`.

## How they are computed

A report (`python infer.py --adapter DIR --dataset PREPARED --report OUT`, or the end of a training run) has the
base model (the adapter switched off) and the tuned model answer every pair of a split, and scores each answer
(`vlm_dpo.eval.scoring`):

- **Similarity to the given answers.** ROUGE-L F1 at word level (the longest common subsequence; Lin 2004, section
  3.1) and the cosine similarity of all-MiniLM-L6-v2 sentence embeddings, each against the chosen and the rejected
  answer. An answer *wins* when it is strictly closer to the chosen one; ties lose.
- **Log-probs and implicit rewards.** Both models score the given chosen and rejected answers: log p is summed over
  the answer tokens. The implicit DPO reward of an answer is beta * (log pi_tuned - log pi_base) (Rafailov et al.
  2023, eq. 5), with the base as reference, as in training; so the base's rewards are 0 and its reward accuracy is 0
  by definition. TRL's DPOTrainer logs the same quantities (`rewards/accuracies`, ...); those metrics carry TRL's
  name, flattened (`rewards_accuracies`), and `eval_results.json` holds the trainer's held-out numbers under the
  same keys.
- **Hallucination.** With ground truth (the synthetic scenes), every mention an answer makes (an object with its
  colour and count, or a loose colour word) is checked against the scene: an answer hallucinates when any mention is
  false, and false mentions / all mentions, pooled over answers, is CHAIR-i (Rohrbach et al. 2018). Exact-answer
  pairs (the arithmetic text demo) count a wrong final number as the hallucination. Without ground truth (e.g.
  RLHF-V) a COCO-object proxy in the spirit of CHAIR applies: an object that the answer and the rejected answer name
  and the chosen answer does not is suspect; a lower bound.
- **Attribute accuracy.** Whether a scene answer gets the asked colour, count, existence or whole scene right (an
  exact-answer pair: the final number). Questions the scene generator does not ask have type "other": their answers
  are checked for hallucinations but left out of attribute accuracy.
- **Dodge probes.** A model can win scene pairs without looking: "Yes, there is a <some object in the image>" to
  every existence question, "There is one" to every count. On the pairs with a scene (`vlm_dpo.eval.probes`), for
  base and tuned alike: the share of existence answers that say yes; the accuracy on adversarial absent objects
  (the asked colour and the asked shape are both in the scene, on different objects: POPE's adversarial setting,
  Li et al. 2023); the share of answers that name the asked object; the AUROC (Hanley and McNeil 1982) of
  log p("No") - log p("Yes") at the first answer token against the truth, from one forward per existence prompt
  (the prompt rendered as for generation; the two tokens are the first of a "Yes, ..." and a "No, ..." answer
  tokenised as the given answers are); and, per question type, the majority baseline: the accuracy of always giving
  the most common true answer, which a dodge reaches. Attribute accuracy at or below it is no evidence of looking.

Every metric is written three times: `base_KEY`, `tuned_KEY` and `delta_KEY` (tuned - base); `null` where it
does not apply (no log-probs, no pair with ground truth, nothing mentioned). "Better" says which way an
improvement goes (report.html colours the delta by it).

Sources:

- ROUGE-L: Lin 2004, "ROUGE: A Package for Automatic Evaluation of Summaries", Text Summarization Branches Out.
- CHAIR: Rohrbach et al. 2018, "Object Hallucination in Image Captioning", EMNLP.
- POPE: Li et al. 2023, "Evaluating Object Hallucination in Large Vision-Language Models", EMNLP.
- AUROC: Hanley and McNeil 1982, "The Meaning and Use of the Area under a Receiver Operating Characteristic (ROC)
  Curve", Radiology.
- DPO implicit reward: Rafailov et al. 2023, "Direct Preference Optimization: Your Language Model is Secretly a
  Reward Model", NeurIPS.
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    """The whole page."""
    parts = [INTRO]
    for group, members in groups().items():
        parts.append(f"\n## {group}\n\n| key | label | better | meaning | TRL logs |\n|---|---|---|---|---|\n")
        parts += [f"| `{m.key}` | {_cell(m.label)} | {_BETTER[m.direction]} | {_cell(m.meaning)} | "
                  f"{f'`{m.trl}`' if m.trl else ''} |\n" for m in members]
    per_type = ", ".join(f"`{m.key}`" for m in METRICS if m.per_type)
    per_type_counts = ", ".join(f"`{c.key}`" for c in COUNTS if c.per_type)
    copied = ", ".join(f"`{m.key}`" for m in METRICS if m.in_eval_results)
    parts.append(f"""
## Per question type

Over the pairs with ground truth, grouped by question type (`describe`, `color`, `count`, `exists`, `other`):

- `n_TYPE`: pairs of the type;
- `base_KEY_TYPE`, `tuned_KEY_TYPE` for {per_type};
- `KEY_TYPE` for {per_type_counts}.

## Counts and baselines

| key | meaning |
|---|---|
""")
    parts += [f"| `{count.key}` | {_cell(count.meaning)} |\n" for count in COUNTS]
    parts.append(f"""
Also in `metrics.json`: `beta`, `external_text`, `n_external`, the run options (`adapter`, `dataset`, `split`,
`max_new_tokens`, `do_sample`, `seed`), and `train_eval_*`: the training run's held-out numbers of the metrics TRL
logs (from its `eval_results.json`), shown next to the report's own.

## eval_results.json

A training run writes TRL's held-out metrics before (`base_*`) and after (`tuned_*`) training, and `*_loss`. When
it also writes a report, it copies from it (`vlm_dpo.eval.registry.eval_results_metrics`), nulls left out:

- {copied}: base, tuned and delta, and per question type where there is one;
- {", ".join(f"`{c.key}`" for c in COUNTS if c.in_eval_results)} (and per question type where there is one);
- `n_report_pairs` (the report's `n`).
""")
    return "".join(parts)


def main(argv=None) -> int:
    """Rewrite docs/metrics.md, or with ``--check`` report whether it is up to date."""
    argv = sys.argv[1:] if argv is None else argv
    text = render()
    if "--check" in argv:
        current = DOC_PATH.read_text() if DOC_PATH.is_file() else ""
        if current != text:
            print(f"{DOC_PATH} is out of date: run python -m vlm_dpo.report.metrics_doc", file=sys.stderr)
            return 1
        return 0
    DOC_PATH.write_text(text)
    print(f"Wrote {DOC_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
