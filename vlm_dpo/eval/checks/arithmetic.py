"""Check answers to the arithmetic text pairs (``data_prep.synthetic.arithmetic``) against their exact result.

    from vlm_dpo.eval.checks.arithmetic import answer_correct
    answer_correct("37 + 48 = 85.", '{"answer": "85", "task": "addition"}')   # True
"""

import json
import re

_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?")


def exact_answer(ground_truth: str | dict | None) -> str | None:
    """The expected answer of a row made here, else None (e.g. a synthetic scene or no ground truth)."""
    if not ground_truth:
        return None
    try:
        truth = json.loads(ground_truth) if isinstance(ground_truth, str) else ground_truth
    except ValueError:
        return None
    return str(truth["answer"]) if isinstance(truth, dict) and "answer" in truth else None


def answer_correct(answer: str, ground_truth: str | dict) -> bool:
    """True when the last number the answer states is the expected one ("37 + 48 = 85." and "85" both pass)."""
    numbers = _NUMBER.findall(answer)
    return bool(numbers) and numbers[-1].replace(",", "") == exact_answer(ground_truth)
