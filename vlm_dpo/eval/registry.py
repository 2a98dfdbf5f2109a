"""Every metric of a base-vs-tuned comparison, defined once: key, label, meaning, direction, how it is computed.

metrics.json (``vlm_dpo.eval.aggregate``), the summary tables (``vlm_dpo.report.table``, ``vlm_dpo.report.html``),
the metrics a training run copies into eval_results.json (``eval_results_metrics``) and docs/metrics.md
(``vlm_dpo.report.metrics_doc``) all read ``METRICS`` and ``COUNTS``. Where TRL logs the same quantity, the key is
TRL's name flattened (``rewards/accuracies`` -> ``rewards_accuracies``), as eval_results.json writes TRL's
held-out numbers, so the same key means the same thing in both files.

A metric's ``compute(scores, external)`` takes one model's per-row scores (``vlm_dpo.eval.scoring.score_pairs``)
and that model's external-text log-probs (``(sums, counts)`` or None); it returns a number, or None where the
metric does not apply (no log-probs, no pair with ground truth, nothing mentioned).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from vlm_dpo.eval.checks.scenes import QUESTION_TYPES
from vlm_dpo.eval.functional import mean, pooled_rate
from vlm_dpo.eval.probes import auroc, majority_baseline
from vlm_dpo.eval.scoring import pair_change

HIGHER, LOWER, NEITHER = "higher", "lower", "neither"  # which way is better


@dataclass(frozen=True)
class Metric:
    """One per-model metric, written as ``base_KEY``, ``tuned_KEY`` and ``delta_KEY = tuned - base``."""

    key: str
    label: str
    meaning: str
    direction: str
    compute: Callable[[list[dict], tuple | None], float | None]
    group: str
    trl: str | None = None  # the name TRL's DPOTrainer logs it under; eval_results.json has TRL's own number
    per_type: bool = False  # also per question type of the scenes: ``{model}_KEY_{type}``
    in_eval_results: bool = False  # a training run copies the report's number into eval_results.json


@dataclass(frozen=True)
class Count:
    """One whole-comparison number, the same for both models (a count of pairs, or a baseline of the data), written
    under its key as it is; None where it does not apply."""

    key: str
    meaning: str
    compute: Callable[[list[dict]], float | None]
    in_eval_results: bool = False
    per_type: bool = False  # also per question type of the scenes: ``KEY_{type}``


def _mean(field: str) -> Callable:
    """Mean over pairs of one per-row score; None when the rows lack it (scored without log-probs)."""
    return lambda scores, external=None: mean(x[field] for x in scores) if all(field in x for x in scores) else None


def _logp_accuracy(scores, external=None):
    return mean(x["logp_margin"] > 0 for x in scores) if all("logp_margin" in x for x in scores) else None


def _external_token_logp(scores, external=None):
    return mean(total / max(n, 1) for total, n in zip(*external)) if external else None


def _hallucinations(scores: list[dict], proxy: bool) -> list[dict]:
    """The hallucination scores of rows with ground truth (``proxy=False``) or of rows checked by the COCO proxy."""
    return [x["hallucination"] for x in scores if (x["hallucination"]["kind"] == "proxy") == proxy]


def _answer_rate(proxy: bool) -> Callable:
    return lambda scores, external=None: mean(h["hallucinated"] for h in _hallucinations(scores, proxy))


def _mention_rate(proxy: bool) -> Callable:
    def compute(scores, external=None):
        found = _hallucinations(scores, proxy)
        return pooled_rate([len(h["bad"]) for h in found], [h["mentions"] for h in found])

    return compute


def _attribute_accuracy(scores, external=None):
    return mean(x["correct"] for x in scores if x["correct"] is not None)


def _probe_share(field: str) -> Callable:
    """Share of answers whose dodge probe ``field`` is true, over those it applies to (``vlm_dpo.eval.probes``)."""
    return lambda scores, external=None: mean(x[field] for x in scores if x.get(field) is not None)


def _adversarial_accuracy(scores, external=None):
    return mean(x["correct"] for x in scores if x.get("adversarial"))


def _yes_no_auroc(scores, external=None):
    scored = [x for x in scores if "no_minus_yes" in x]
    return auroc([x["no_minus_yes"] for x in scored], [x["object_absent"] for x in scored])


CLOSER = "Closer to chosen than to rejected?"
PREFERENCE = "Preference (log-probs of the given chosen and rejected answers)"
HALLUCINATION = "Hallucination"
PROBES = "Dodge probes (existence, colour and count questions about a scene)"
LENGTH = "Length"

METRICS = (
    Metric("win_rate", "win rate, ROUGE-L", "share of answers with higher ROUGE-L F1 to the chosen than to the "
           "rejected answer (ties lose)", HIGHER, _mean("closer_rouge"), CLOSER),
    Metric("win_rate_embedding", "win rate, embedding", "the same with MiniLM cosine similarity instead of ROUGE-L",
           HIGHER, _mean("closer_embedding"), CLOSER),
    Metric("mean_rouge_l_chosen", "ROUGE-L to chosen", "mean ROUGE-L F1 (word LCS, Lin 2004) of the answer to the "
           "chosen one", HIGHER, _mean("rouge_chosen"), CLOSER),
    Metric("mean_rouge_l_rejected", "ROUGE-L to rejected", "mean ROUGE-L F1 of the answer to the rejected one",
           LOWER, _mean("rouge_rejected"), CLOSER),
    Metric("mean_cosine_chosen", "cosine to chosen", "mean cosine similarity of all-MiniLM-L6-v2 embeddings, answer "
           "vs chosen", HIGHER, _mean("cosine_chosen"), CLOSER),
    Metric("mean_cosine_rejected", "cosine to rejected", "the same against the rejected answer", LOWER,
           _mean("cosine_rejected"), CLOSER),
    Metric("rewards_accuracies", "reward accuracy", "share of pairs whose implicit DPO reward beta*log(pi/pi_base) "
           "is higher for chosen (ties lose); 0 for the base by definition (its reference is itself)", HIGHER,
           _mean("chosen_wins"), PREFERENCE, trl="rewards/accuracies", per_type=True),
    Metric("rewards_margins", "mean reward margin", "mean of reward(chosen) - reward(rejected); 0 for the base",
           HIGHER, _mean("reward_margin"), PREFERENCE, trl="rewards/margins"),
    Metric("rewards_chosen", "mean reward, chosen", "mean beta*(log pi_tuned - log pi_base) of the chosen answers",
           NEITHER, _mean("reward_chosen"), PREFERENCE, trl="rewards/chosen"),
    Metric("rewards_rejected", "mean reward, rejected", "the same for the rejected answers", NEITHER,
           _mean("reward_rejected"), PREFERENCE, trl="rewards/rejected"),
    Metric("logp_accuracy", "log-prob accuracy", "share of pairs where log p(chosen) > log p(rejected) (summed over "
           "answer tokens): each model's own preference, meaningful for the base too", HIGHER, _logp_accuracy,
           PREFERENCE),
    Metric("mean_logp_margin", "mean log-prob margin", "mean of log p(chosen) - log p(rejected), nats", HIGHER,
           _mean("logp_margin"), PREFERENCE),
    Metric("logps_chosen", "mean log p(chosen)", "mean summed log-prob of the chosen answer", NEITHER,
           _mean("logp_chosen"), PREFERENCE, trl="logps/chosen"),
    Metric("logps_rejected", "mean log p(rejected)", "mean summed log-prob of the rejected answer", NEITHER,
           _mean("logp_rejected"), PREFERENCE, trl="logps/rejected"),
    Metric("mean_token_logp_chosen", "per-token log p, chosen", "mean over pairs of log p(chosen) / its tokens",
           NEITHER, _mean("token_logp_chosen"), PREFERENCE),
    Metric("mean_token_logp_rejected", "per-token log p, rejected", "the same for the rejected answers", NEITHER,
           _mean("token_logp_rejected"), PREFERENCE),
    Metric("mean_token_logp_external", "per-token log p, external", "the same for external text (Python standard "
           "library docstrings) scored as answers to the same prompts (see external_text)", NEITHER,
           _external_token_logp, PREFERENCE),
    Metric("hallucination_rate", "hallucination rate", "pairs with ground truth: share of answers naming an object, "
           "colour or count the scene does not have (exact-answer pairs: whose last number is not the result)", LOWER,
           _answer_rate(proxy=False), HALLUCINATION, per_type=True, in_eval_results=True),
    Metric("hallucination_mention_rate", "false mentions (CHAIR-i)", "pairs with ground truth: false mentions / "
           "all mentions, pooled over answers", LOWER, _mention_rate(proxy=False), HALLUCINATION, in_eval_results=True),
    Metric("attribute_accuracy", "attribute accuracy", "pairs with ground truth: share of answers that get the asked "
           "colour, count, existence or scene right (exact-answer pairs: the result); questions of type \"other\" "
           "are left out", HIGHER, _attribute_accuracy, HALLUCINATION, per_type=True, in_eval_results=True),
    Metric("proxy_hallucination_rate", "proxy hallucination rate", "pairs without ground truth: share of answers "
           "naming a COCO object that only the rejected answer names", LOWER, _answer_rate(proxy=True), HALLUCINATION,
           in_eval_results=True),
    Metric("proxy_hallucination_mention_rate", "proxy, per mention", "pairs without ground truth: such objects / all "
           "COCO objects named, pooled over answers", LOWER, _mention_rate(proxy=True), HALLUCINATION,
           in_eval_results=True),
    Metric("yes_ratio", "yes ratio, existence", "existence questions: share of answers that say yes (or affirm the "
           "object); an answer that says neither counts as not yes. Near 1 with the truth near even: yes to "
           "everything", NEITHER, _probe_share("says_yes"), PROBES, in_eval_results=True),
    Metric("adversarial_accuracy", "accuracy, adversarial absent", "existence questions whose (colour, shape) is "
           "absent while the colour is on some object and the shape on another (POPE's adversarial setting): share "
           "answered right; see n_adversarial", HIGHER, _adversarial_accuracy, PROBES, in_eval_results=True),
    Metric("names_asked_object", "names the asked object", "existence, colour and count questions: share of answers "
           "that name the asked shape (existence: uncoloured or in the asked colour); \"There is one.\" does not",
           HIGHER, _probe_share("names_asked_object"), PROBES, per_type=True, in_eval_results=True),
    Metric("yes_no_auroc", "AUROC, log p(No) - log p(Yes)", "existence questions: AUROC of log p(\"No\") - "
           "log p(\"Yes\") at the first answer token against the truth (object absent = positive; ties count one "
           "half): 0.5 when the model's yes / no does not follow the image; null where the two answers start with "
           "the same token", HIGHER, _yes_no_auroc, PROBES, in_eval_results=True),
    Metric("mean_answer_words", "mean answer words", "mean answer length in words (DPO tends to lengthen answers)",
           NEITHER, _mean("words"), LENGTH),
)
METRIC_KEYS = [metric.key for metric in METRICS]
BY_KEY = {metric.key: metric for metric in METRICS}


def _hallucination_flips(rows: list[dict]) -> list[tuple[bool, bool]]:
    return [(row["scores"]["base"]["hallucination"]["hallucinated"],
             row["scores"]["tuned"]["hallucination"]["hallucinated"]) for row in rows]


def _n_adversarial(rows: list[dict]) -> int | None:
    flags = [row["scores"]["base"].get("adversarial") for row in rows]
    flags = [flag for flag in flags if flag is not None]
    return sum(flags) if flags else None


def _majority_baseline(rows: list[dict]) -> float | None:
    return majority_baseline(rows)


def _changes(rows: list[dict]) -> list[float]:
    return [pair_change(row) for row in rows]


COUNTS = (
    Count("n", "pairs compared", len),
    Count("n_ground_truth", "pairs with ground truth (a scene or an exact answer)",
          lambda rows: sum(bool(row.get("ground_truth")) for row in rows)),
    Count("n_proxy", "pairs without ground truth (checked by the COCO proxy)",
          lambda rows: sum(not row.get("ground_truth") for row in rows)),
    Count("n_improved", "pairs whose change is positive: the change in ROUGE-L to chosen minus ROUGE-L to rejected, "
          "plus 1 when tuning removed a hallucination and minus 1 when it added one",
          lambda rows: sum(c > 0 for c in _changes(rows))),
    Count("n_regressed", "pairs whose change is negative", lambda rows: sum(c < 0 for c in _changes(rows))),
    Count("n_hallucinations_removed", "pairs whose base answer hallucinates and whose tuned answer does not",
          lambda rows: sum(b and not t for b, t in _hallucination_flips(rows)), in_eval_results=True),
    Count("n_hallucinations_added", "pairs whose tuned answer hallucinates and whose base answer does not",
          lambda rows: sum(t and not b for b, t in _hallucination_flips(rows)), in_eval_results=True),
    Count("n_adversarial", "existence questions about a scene that are adversarial (see adversarial_accuracy); null "
          "without existence questions about a scene", _n_adversarial, in_eval_results=True),
    Count("majority_baseline", "pairs with a scene and a generator question: accuracy of always giving the most "
          "common true answer of the question type on this set (exists: yes or no; count: the count; color: the "
          "colour; describe: the exact scene content), what a model reaches without looking at the image; compare "
          "with attribute_accuracy", _majority_baseline, in_eval_results=True, per_type=True),
)


def groups() -> dict[str, list[Metric]]:
    """The metrics by group, in table order."""
    out: dict[str, list[Metric]] = {}
    for metric in METRICS:
        out.setdefault(metric.group, []).append(metric)
    return out


def eval_results_metrics(report: dict) -> dict:
    """What a training run adds to eval_results.json from its report's metrics (``aggregate.compare``).

    The metrics marked ``in_eval_results`` (``base_``, ``tuned_``, ``delta_``, and per question type), the counts so
    marked (and per question type), and ``n_report_pairs``; nulls are left out. TRL's own metrics (``rewards_*``,
    ``logps_*``) are not copied: eval_results.json has the trainer's held-out numbers under the same keys.
    """
    keys = {count.key for count in COUNTS if count.in_eval_results}
    keys |= {f"{count.key}_{qtype}" for count in COUNTS if count.in_eval_results and count.per_type
             for qtype in QUESTION_TYPES}
    for metric in (m for m in METRICS if m.in_eval_results):
        keys |= {f"{prefix}_{metric.key}" for prefix in ("base", "tuned", "delta")}
        if metric.per_type:
            keys |= {f"{model}_{metric.key}_{qtype}" for model in ("base", "tuned") for qtype in QUESTION_TYPES}
    copied = {key: value for key, value in report.items() if key in keys and value is not None}
    return copied | {"n_report_pairs": report["n"]}


def training_eval_keys() -> list[str]:
    """The eval_results.json keys a report shows next to its own numbers: TRL's metrics, base and tuned."""
    return [f"{model}_{metric.key}" for metric in METRICS if metric.trl for model in ("base", "tuned")]
