"""Score generated answers on synthetic scenes against their ground truth: hallucination and asked-attribute accuracy.

Why: reward accuracy says the tuned model *prefers* the chosen answers; this says whether what it
*generates* is true of the picture. Each held-out pair carries the scene it was drawn from
(``ground_truth``, see ``data_prep.synthetic.scenes``), so every answer is checked exactly:

- hallucination_rate: share of answers that name a colour, shape or count the scene contradicts
  (``data_prep.synthetic.scenes.hallucinated``);
- attribute_accuracy: share of answers that get the asked attribute right (colour, count,
  existence, or the whole scene for "Describe the image."; ``data_prep.synthetic.scenes.answer_correct``),
  overall and per question type.

    from vlm_dpo.eval.scene_eval import evaluate_scene_answers
    metrics = evaluate_scene_answers(peft_model, processor, prepared["test"])
    # {"base_hallucination_rate": ..., "tuned_hallucination_rate": ..., "base_attribute_accuracy_color": ..., ...}
"""

import json
from collections import defaultdict


def score_answers(questions, answers, ground_truths, prefix: str) -> dict:
    """Flat metrics for one model's answers: ``{prefix}_hallucination_rate``, ``{prefix}_attribute_accuracy``,
    and both per question type (``{prefix}_attribute_accuracy_color``, ...), plus ``{prefix}_n_<type>``."""
    from vlm_dpo.eval.checks.scenes import answer_correct, hallucinated, question_type

    by_type = defaultdict(lambda: [0, 0, 0])  # answers, hallucinated, correct
    for question, answer, truth in zip(questions, answers, ground_truths):
        qtype = question_type(question) or "other"
        counts = by_type[qtype]
        counts[0] += 1
        counts[1] += hallucinated(answer, truth)
        counts[2] += qtype != "other" and answer_correct(question, answer, truth)
    total = [sum(column) for column in zip(*by_type.values())] if by_type else [0, 0, 0]
    metrics = {f"{prefix}_hallucination_rate": total[1] / max(total[0], 1),
               f"{prefix}_attribute_accuracy": total[2] / max(total[0], 1)}
    for qtype, (n, wrong, right) in sorted(by_type.items()):
        metrics[f"{prefix}_hallucination_rate_{qtype}"] = wrong / n
        metrics[f"{prefix}_attribute_accuracy_{qtype}"] = right / n
        metrics[f"{prefix}_n_{qtype}"] = n
    return metrics


def evaluate_scene_answers(model, processor, dataset, *, max_new_tokens: int = 32, batch_size: int = 16,
                           limit: int | None = None) -> dict:
    """Generate greedily with the base (adapter off) and the tuned model on ``dataset`` and score both.

    ``dataset`` is a prepared split (``images``, ``prompt``, ``ground_truth`` columns); rows without a
    ground truth are left out. A model without a PEFT adapter is scored as ``base`` only.
    """
    from vlm_dpo.eval.generate import generate_answers, message_text

    rows = [index for index, truth in enumerate(dataset["ground_truth"]) if truth]
    if limit is not None:
        rows = rows[:limit]
    subset = dataset.select(rows)
    images = [row_images[0] for row_images in subset["images"]]
    questions = [message_text(prompt) for prompt in subset["prompt"]]
    truths = subset["ground_truth"]
    options = {"max_new_tokens": max_new_tokens, "batch_size": batch_size}
    has_adapter = hasattr(model, "disable_adapter") and getattr(model, "peft_config", None)
    metrics = {"scene_eval_n": len(rows)}
    base = generate_answers(model, processor, images, questions, use_adapter=not has_adapter, **options)
    metrics |= score_answers(questions, base, truths, "base")
    if has_adapter:
        tuned = generate_answers(model, processor, images, questions, use_adapter=True, **options)
        metrics |= score_answers(questions, tuned, truths, "tuned")
    return metrics


def main(argv=None) -> None:
    """``python -m vlm_dpo.eval.scene_eval OUTPUT_DIR [--limit N]``: score a finished run on its held-out scenes."""
    import argparse

    from data_prep.prepare import load_prepared
    from vlm_dpo.eval.generate import load_tuned

    parser = argparse.ArgumentParser(prog="python -m vlm_dpo.eval.scene_eval", description=main.__doc__)
    parser.add_argument("adapter", help="output folder of a finished run on synthetic scenes")
    parser.add_argument("--dataset", help="prepared data set (default: ADAPTER/data)")
    parser.add_argument("--limit", type=int, help="score only the first N held-out pairs")
    args = parser.parse_args(argv)
    model, processor, _ = load_tuned(args.adapter)
    dataset = load_prepared(args.dataset or f"{args.adapter}/data")["test"]
    print(json.dumps(evaluate_scene_answers(model, processor, dataset, limit=args.limit), indent=2))


if __name__ == "__main__":
    main()
