"""all-MiniLM-L6-v2 from the wheel, pooled as sentence-transformers does (loaded once: lru_cache)."""

import pytest

from vlm_dpo.eval.embeddings import cosine, embed


def test_identical_is_one_unrelated_is_lower():
    same, paraphrase, unrelated = cosine(
        ["There is a red circle.", "There is a red circle.", "There is a red circle."],
        ["There is a red circle.", "One circle, and it is red.", "The quarterly tax report is due on Friday."])
    assert same == pytest.approx(1.0, abs=1e-5)
    assert unrelated < 0.3 < paraphrase < same


def test_embeddings_are_unit_length_and_batch_independent():
    texts = ["a dog", "a cat on a mat", "short", "a much longer sentence about a dog chasing a ball in a park"]
    vectors = embed(texts, batch_size=3)
    assert vectors.shape == (4, 384)
    assert vectors.norm(dim=-1).tolist() == pytest.approx([1.0] * 4, abs=1e-5)
    assert (embed(texts[1:2]) @ vectors[1]).item() == pytest.approx(1.0, abs=1e-5)  # padding does not change it


def test_empty_answer_scores_zero():
    assert cosine(["", "..."], ["There is a red circle.", "There is a red circle."]) == [0.0, 0.0]
