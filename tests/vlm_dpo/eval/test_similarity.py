"""ROUGE-L F1 against hand-computed values."""

import pytest

from vlm_dpo.eval.similarity import rouge_l_f1, words


def test_words_lowercase_without_punctuation():
    assert words("There is a RED circle, left!") == ["there", "is", "a", "red", "circle", "left"]


def test_identical_and_disjoint():
    assert rouge_l_f1("A red circle.", "a red circle") == 1.0
    assert rouge_l_f1("blue square", "a red circle") == 0.0
    assert rouge_l_f1("", "a red circle") == 0.0


def test_partial_worked_example():
    # candidate: the cat sat on the mat (6 words); reference: the cat is on a mat (6 words)
    # LCS = "the cat on mat" = 4 -> P = R = 4/6 -> F1 = 2/3
    assert rouge_l_f1("The cat sat on the mat.", "the cat is on a mat") == pytest.approx(2 / 3)
    # LCS = "a red" = 2, P = 2/3, R = 2/5 -> F1 = 2 * (4/15) / (16/15) = 0.5
    assert rouge_l_f1("a red circle", "there is a red square") == pytest.approx(0.5)


def test_lcs_is_order_sensitive_and_symmetric_f1():
    # LCS of "circle red" vs "red circle" is 1 word: P = R = 1/2 -> F1 = 0.5
    assert rouge_l_f1("circle red", "red circle") == pytest.approx(0.5)
    assert rouge_l_f1("a b c d", "b d") == pytest.approx(rouge_l_f1("b d", "a b c d"))

