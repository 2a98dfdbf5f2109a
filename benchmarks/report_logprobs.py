"""The report's log-probs on the demo model: one forward per answer (the code before) against each prompt once.

A report scores, under the base and the tuned model, three answers to every held-out prompt: the chosen, the
rejected and an external sentence. Until now each answer ran with its own copy of the prompt (image tokens
included) and full-vocabulary logits at every position (``unshared_logprobs`` below, the previous
``vlm_dpo.eval.logprobs.answer_logprobs``); ``answer_set_logprobs`` runs each prompt once and continues every answer
from a copy of its key/value cache. Both arms score the same answers in this process, back to back, and the
script checks that they agree.

    python benchmarks/report_logprobs.py             # demo-smolvlm, 48 held-out scenes x 3 answers, batch 16
    python benchmarks/report_logprobs.py --smoke     # the tiny model, seconds: checks the script end to end

The last line printed is a JSON object: seconds per arm, ``speedup`` (before over after) and ``max_abs_diff``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere


def unshared_logprobs(model, processor, images, questions, answers, batch_size: int):
    """The previous ``answer_logprobs``: prompt + answer per row, flushed left, one forward, full logits."""
    import torch
    from trl.trainer.utils import flush_left

    from data_prep.chat import completion, render
    from vlm_dpo.eval.functional import sequence_logps

    tokenizer = processor.tokenizer
    sums = []
    with torch.inference_mode():
        for start in range(0, len(answers), batch_size):
            batch = range(start, min(start + batch_size, len(answers)))
            prompts = [render(processor, questions[i]) for i in batch]
            completions = [completion(prompt, render(processor, questions[i], answers[i]))
                           for prompt, i in zip(prompts, batch)]
            prompt_inputs = processor(text=prompts, images=[[images[i]] for i in batch], padding=True,
                                      padding_side="left", add_special_tokens=False, return_tensors="pt")
            answer_inputs = tokenizer(completions, padding=True, padding_side="right", add_special_tokens=False,
                                      return_tensors="pt")
            input_ids = torch.cat([prompt_inputs.pop("input_ids"), answer_inputs["input_ids"]], dim=1)
            prompt_mask = prompt_inputs.pop("attention_mask")
            attention_mask = torch.cat([prompt_mask, answer_inputs["attention_mask"]], dim=1)
            completion_mask = torch.cat([torch.zeros_like(prompt_mask), answer_inputs["attention_mask"]], dim=1)
            attention_mask, input_ids, completion_mask = flush_left(attention_mask, input_ids, completion_mask)
            logits = model(input_ids=input_ids, attention_mask=attention_mask, **prompt_inputs).logits
            sums += sequence_logps(logits, input_ids, completion_mask)[0].tolist()
    return sums


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=48, help="held-out scenes (default 48)")
    parser.add_argument("--batch-size", type=int, default=16, help="prompts per batch (the demo's eval batch: 16)")
    parser.add_argument("--smoke", action="store_true", help="the tiny random model and 4 scenes")
    args = parser.parse_args(argv)

    from data_prep.images import load_image
    from data_prep.synthetic.scenes import generate_rows
    from vlm_dpo.eval.logprobs import answer_set_logprobs, external_sentences
    from vlm_dpo.models import load_model_and_processor

    pairs = 4 if args.smoke else args.pairs
    if args.smoke:
        from vlm_dpo.models.tiny import ensure_tiny_model
        folder = ensure_tiny_model()
    else:
        from vlm_dpo.models.demo import ensure_demo_model
        folder = ensure_demo_model()
    model, processor = load_model_and_processor(str(folder))
    model.eval()
    rows = generate_rows(pairs, seed=12345)  # neither the DPO nor the stage-1 seed
    images = [load_image(row["image"]["bytes"]) for row in rows]
    texts = [json.loads(row["text"]) for row in rows]
    questions = [t["question"] for t in texts]
    sets = [[t["chosen"] for t in texts], [t["rejected"] for t in texts], external_sentences(pairs)]

    with contextlib.redirect_stderr(io.StringIO()):  # warm-up of both arms (first-call allocations), not timed
        unshared_logprobs(model, processor, images[:2], questions[:2], sets[0][:2], args.batch_size)
        answer_set_logprobs(model, processor, images[:2], questions[:2], [answers[:2] for answers in sets])
    start = time.perf_counter()
    before = unshared_logprobs(model, processor, images * 3, questions * 3, [a for answers in sets for a in answers],
                               args.batch_size)
    before_s = time.perf_counter() - start
    start = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()):  # no progress bar in the timing
        after = [s for sums, _ in answer_set_logprobs(model, processor, images, questions, sets,
                                                      batch_size=args.batch_size) for s in sums]
    after_s = time.perf_counter() - start
    diff = max(abs(a - b) for a, b in zip(before, after))
    print(f"{len(before)} answers to {pairs} prompts, batch {args.batch_size}: one forward per answer "
          f"{before_s:.1f} s, each prompt once {after_s:.1f} s ({before_s / after_s:.2f}x); "
          f"largest difference {diff:.2e}")
    print(json.dumps({"answers": len(before), "before_s": round(before_s, 2), "after_s": round(after_s, 2),
                      "speedup": round(before_s / after_s, 3), "max_abs_diff": diff}))


if __name__ == "__main__":
    main()
