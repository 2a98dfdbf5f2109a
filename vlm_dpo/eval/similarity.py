"""Word-overlap similarity between a generated answer and the chosen / rejected answers.

RLHF-V's chosen answer is a segment-level correction of the rejected one, so the two share most
words; ROUGE-L (longest common subsequence) rewards keeping the corrected words in order, which is
what moving "towards chosen" means here. Pure functions, no model needed.

    >>> rouge_l_f1("a red circle", "there is a red square")
    0.5
"""

import re

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """Lowercased words with punctuation dropped: "Red, circle!" -> ["red", "circle"]."""
    return _WORD.findall(text.lower())


def _lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence, by dynamic programming over one row (O(len a * len b))."""
    row = [0] * (len(b) + 1)
    for x in a:
        diagonal = 0  # row[j - 1] of the previous row
        for j, y in enumerate(b, start=1):
            diagonal, row[j] = row[j], (diagonal + 1 if x == y else max(row[j], row[j - 1]))
    return row[-1]


def rouge_l_f1(candidate: str, reference: str) -> float:
    """ROUGE-L F1 of ``candidate`` against ``reference`` at word level, in [0, 1].

    Lin (2004), "ROUGE: A Package for Automatic Evaluation of Summaries", section 3.1:
    precision P = LCS / len(candidate), recall R = LCS / len(reference), F1 = 2PR / (P + R)
    (the paper's F with beta = 1). Text without any word scores 0.
    """
    cand, ref = words(candidate), words(reference)
    lcs = _lcs_length(cand, ref)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(cand), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)

