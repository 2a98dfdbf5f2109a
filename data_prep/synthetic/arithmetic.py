"""Text preference pairs whose answers can be checked exactly: small arithmetic and unit conversions.

The offline text demo (recipes/text_demo.yaml) needs a preference set where "better" is a fact, not a
taste: the chosen answer states the right result, the rejected one the same sentence with a typical
mistake (a dropped carry, an off-by-one, a neighbour in the times table, a wrong conversion factor). So
the pair differs in a few tokens, as RLHF-V's corrections do, and held-out accuracy is exact: the last
number of a generated answer must equal the result (``answer_correct``).

    from data_prep.synthetic.arithmetic import generate_rows
    from vlm_dpo.eval.checks.arithmetic import answer_correct
    rows = generate_rows(200, seed=42)   # {"prompt", "chosen", "rejected", "ground_truth"} (text layout)
    answer_correct("37 + 48 = 85.", rows[0]["ground_truth"])

``python -m data_prep --input arithmetic:1200 --output data/arithmetic`` prepares them like any text data.
"""

from __future__ import annotations

import json
import random

# (unit asked for, unit given, factor): "How many centimeters are in 4 meters?" -> 4 * 100.
CONVERSIONS = [("centimeters", "meters", 100), ("meters", "kilometers", 1000), ("grams", "kilograms", 1000),
               ("minutes", "hours", 60), ("seconds", "minutes", 60), ("hours", "days", 24), ("days", "weeks", 7),
               ("millimeters", "centimeters", 10), ("months", "years", 12)]
TASKS = ("addition", "subtraction", "multiplication", "conversion")


def _addition(rng):
    a, b = rng.randint(10, 89), rng.randint(10, 89)
    right = a + b
    carry_dropped = right - 10 if (a % 10 + b % 10) >= 10 else right + 10
    wrong = rng.choice([carry_dropped, right + 1, right - 1])
    return f"What is {a} + {b}?", f"{a} + {b} = {{}}.", right, wrong


def _subtraction(rng):
    a = rng.randint(30, 99)
    b = rng.randint(10, a - 10)
    right = a - b
    borrow_dropped = right + 10 if (a % 10) < (b % 10) else right - 10
    wrong = rng.choice([borrow_dropped, right + 1, right - 1])
    return f"What is {a} - {b}?", f"{a} - {b} = {{}}.", right, wrong


def _multiplication(rng):
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    right = a * b
    wrong = rng.choice([right + a, right - a, right + b, right - b])
    return f"What is {a} x {b}?", f"{a} x {b} = {{}}.", right, wrong


def _conversion(rng):
    small, large, factor = rng.choice(CONVERSIONS)
    n = rng.randint(2, 9)
    right = n * factor
    wrong = rng.choice([n * factor * 10, n * factor // 10 if factor >= 100 else n * factor + factor, n + factor])
    return f"How many {small} are in {n} {large}?", f"{n} {large} = {{}} {small}.", right, wrong


def generate_rows(count: int, seed: int = 42) -> list[dict]:
    """``count`` distinct questions of the four tasks, drawn at random (the times table and the conversions run
    out of new questions first); text layout with an exact ``ground_truth``."""
    rng = random.Random(seed)
    makers = dict(zip(TASKS, [_addition, _subtraction, _multiplication, _conversion]))
    rows, seen = [], set()
    attempts = 0
    while len(rows) < count:
        attempts += 1
        if attempts > 100 * count + 1000:
            raise ValueError(f"Cannot draw {count} distinct questions; ask for fewer.")
        task = rng.choice(TASKS)
        question, template, right, wrong = makers[task](rng)
        if question in seen or wrong == right or wrong < 0:
            continue
        seen.add(question)
        rows.append({"prompt": question, "chosen": template.format(right), "rejected": template.format(wrong),
                     "ground_truth": json.dumps({"answer": str(right), "task": task})})
    return rows
