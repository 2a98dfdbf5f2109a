"""Dodge probes on hand-made rows: per-answer facts, majority baselines, AUROC, and the metrics they feed."""

import json
import random

import pytest

from vlm_dpo.eval.aggregate import compare
from vlm_dpo.eval.probes import answer_probes, auroc, majority_baseline, scene_of, yes_no_answers
from vlm_dpo.eval.registry import eval_results_metrics
from vlm_dpo.eval.scoring import score_pairs

# A red circle, a green square and a blue circle.
SCENE = json.dumps({"objects": [{"shape": "circle", "color": "red", "bbox": [0, 0, 5, 5]},
                                {"shape": "square", "color": "green", "bbox": [8, 0, 13, 5]},
                                {"shape": "circle", "color": "blue", "bbox": [0, 8, 5, 13]}]})
DODGE = "Yes, there is a red circle."


def no_cosine(texts_a, texts_b):
    return [0.0] * len(texts_a)


def test_auroc_hand_computed():
    # positives score 3 and 1, negatives 2 and 1: 3 > 2, 3 > 1, 1 < 2, 1 = 1 (half) -> 2.5 of 4 pairs
    assert auroc([3, 1, 2, 1], [True, True, False, False]) == 0.625
    assert auroc([1.0, 2.0], [False, True]) == 1.0 and auroc([1.0, 2.0], [True, False]) == 0.0
    assert auroc([5, 5, 5], [True, False, True]) == 0.5  # all tied: no information
    assert auroc([1, 2], [True, True]) is None and auroc([], []) is None  # one class only: undefined


def test_auroc_equals_counting_every_pair():
    rng = random.Random(0)
    for _ in range(20):
        scores = [rng.choice([0.0, 0.5, 1.0, 1.5]) for _ in range(15)]  # many ties
        labels = [rng.random() < 0.4 for _ in range(15)]
        pos = [s for s, y in zip(scores, labels) if y]
        neg = [s for s, y in zip(scores, labels) if not y]
        if pos and neg:
            pairs = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
            assert auroc(scores, labels) == pytest.approx(pairs / (len(pos) * len(neg)))


@pytest.mark.parametrize("question, answer, expected", [
    # the dodge: yes, naming another object; green and circle are both in the scene: adversarial
    ("Is there a green circle?", DODGE, (True, False, True, True)),
    ("Is there a green circle?", "No, there is no green circle.", (False, True, True, True)),
    ("Is there a green circle?", "There is a circle.", (True, True, True, True)),  # affirms without a yes
    ("Is there a green circle?", "I cannot tell.", (False, False, True, True)),  # says neither: not yes
    ("Is there a yellow triangle?", DODGE, (True, False, True, False)),  # absent, neither colour nor shape there
    ("Is there a blue triangle?", "No.", (False, False, True, False)),  # blue is there, no triangle: not adversarial
    ("Is there a red circle?", DODGE, (True, True, False, False)),  # present
    ("How many circles are there?", "There is one.", (None, False, None, None)),  # the count dodge
    ("How many circles are there?", "There are two circles in the image.", (None, True, None, None)),
    ("What color is the square?", "Green.", (None, False, None, None)),
    ("What color is the square?", "The square is red.", (None, True, None, None)),
    ("Describe the image.", DODGE, (None, None, None, None)),
    ("What is going on?", DODGE, (None, None, None, None)),  # type "other"
])
def test_answer_probes(question, answer, expected):
    probes = answer_probes(question, answer, SCENE)
    assert (probes["says_yes"], probes["names_asked_object"], probes["object_absent"], probes["adversarial"]) == expected


@pytest.mark.parametrize("ground_truth", [None, "", '{"answer": "85", "task": "addition"}', "not json"])
def test_no_scene_no_probes(ground_truth):
    assert scene_of(ground_truth) is None
    assert set(answer_probes("Is there a red circle?", DODGE, ground_truth).values()) == {None}


def test_yes_no_answers_word_the_generators_answers():
    assert yes_no_answers("Is there a green circle?") == ("Yes, there is a green circle.",
                                                          "No, there is no green circle.")
    assert yes_no_answers("How many circles are there?") is None


def test_majority_baseline_hand_computed():
    other = json.dumps({"objects": [{"shape": "triangle", "color": "red", "bbox": [0, 0, 5, 5]}]})
    rows = [{"question": q, "ground_truth": g} for q, g in [
        ("Is there a red circle?", SCENE), ("Is there a green circle?", SCENE), ("Is there a red square?", SCENE),
        ("Is there a red triangle?", other),  # exists: truths yes, no, no, yes -> 2 of 4
        ("How many circles are there?", SCENE), ("How many squares are there?", SCENE),
        ("How many triangles are there?", other),  # count: truths 2, 1, 1 -> 2 of 3
        ("Describe the image.", SCENE), ("Describe the image.", SCENE), ("Describe the image.", other),  # 2 of 3
        ("What color is the square?", SCENE),  # 1 of 1
        ("What is this?", SCENE), ("Is there a red circle?", None),  # neither counts
    ]]
    assert majority_baseline(rows[:4]) == 0.5 and majority_baseline(rows[4:7]) == pytest.approx(2 / 3)
    assert majority_baseline(rows[7:10]) == pytest.approx(2 / 3) and majority_baseline(rows[10:11]) == 1.0
    assert majority_baseline(rows) == pytest.approx((2 + 2 + 2 + 1) / 11)  # each type its own majority
    assert majority_baseline(rows[11:]) is None


def dodge_rows():
    """An honest base and a tuned model that dodges: yes to every existence question, "There is one." to counts."""
    exists = [("Is there a green circle?", "No, there is no green circle.", -1.0, 2.0),  # adversarial
              ("Is there a yellow triangle?", "No, there is no yellow triangle.", -2.0, 1.0),
              ("Is there a red circle?", DODGE, -1.0, -3.0),  # the one present object
              ("Is there a red square?", "No, there is no red square.", -3.0, 0.5),  # adversarial
              ("Is there a blue triangle?", "No, there is no blue triangle.", 0.0, 1.0)]
    rows = [{"question": q, "base": honest, "tuned": DODGE, "no_minus_yes": {"base": base, "tuned": tuned}}
            for q, honest, tuned, base in exists]
    rows += [{"question": q, "base": honest, "tuned": dodge} for q, honest, dodge in [
        ("How many circles are there?", "There are two circles in the image.", "There is one."),
        ("How many circles are there?", "There are two circles in the image.", "There is one."),
        ("How many triangles are there?", "There are no triangles in the image.", "There is one."),
        ("What color is the square?", "The square is green.", "Green."),
        ("Describe the image.", "There is a red circle, a green square and a blue circle.", "There is a circle."),
    ]]
    for row in rows:
        row.update(chosen=row["base"], rejected="There is a yellow star.", ground_truth=SCENE)
    # no scene: left out of every probe, whatever it answers
    rows.append({"question": "Is there a red circle?", "chosen": "Yes.", "rejected": "No.", "base": "No.",
                 "tuned": "Yes.", "ground_truth": None})
    return rows


def test_probe_metrics_expose_the_dodge_hand_computed():
    metrics = compare(score_pairs(dodge_rows(), cosine=no_cosine))
    assert metrics["base_yes_ratio"] == pytest.approx(1 / 5) and metrics["tuned_yes_ratio"] == 1.0
    assert metrics["n_adversarial"] == 2
    assert metrics["base_adversarial_accuracy"] == 1.0 and metrics["tuned_adversarial_accuracy"] == 0.0
    # tuned names the asked object once (the red circle) out of 5 existence, 3 count and 1 colour answers
    assert metrics["base_names_asked_object"] == 1.0 and metrics["tuned_names_asked_object"] == pytest.approx(1 / 9)
    assert metrics["tuned_names_asked_object_exists"] == pytest.approx(1 / 5)
    assert metrics["tuned_names_asked_object_count"] == 0.0 and metrics["tuned_names_asked_object_color"] == 0.0
    assert metrics["tuned_names_asked_object_describe"] is None
    # exists: 4 absent of 5; count: 2, 2, 0; colour and describe: one each
    assert metrics["majority_baseline_exists"] == pytest.approx(4 / 5)
    assert metrics["majority_baseline_count"] == pytest.approx(2 / 3)
    assert metrics["majority_baseline_color"] == metrics["majority_baseline_describe"] == 1.0
    assert metrics["majority_baseline"] == pytest.approx((4 + 2 + 1 + 1) / 10)
    # the dodge is right on the one present object: accuracy 1/5, below always-no's 4/5
    assert metrics["tuned_attribute_accuracy_exists"] == pytest.approx(1 / 5)
    # base: every absent (positive) scores above the present one; tuned: -1 ties it (half), -2 and -3 below, 0 above
    assert metrics["base_yes_no_auroc"] == 1.0 and metrics["tuned_yes_no_auroc"] == pytest.approx(1.5 / 4)
    copied = eval_results_metrics(metrics)
    assert copied["tuned_yes_ratio"] == 1.0 and copied["majority_baseline_count"] == pytest.approx(2 / 3)
    assert copied["n_adversarial"] == 2 and copied["delta_yes_no_auroc"] == pytest.approx(1.5 / 4 - 1)


def test_without_scenes_the_probes_are_absent():
    rows = [{"question": "Is there a red circle?", "chosen": "Yes.", "rejected": "No.", "base": "No.",
             "tuned": "Yes.", "ground_truth": None},
            {"question": "What is 2 + 3?", "chosen": "5", "rejected": "6", "base": "5", "tuned": "6",
             "ground_truth": '{"answer": "5"}'}]
    metrics = compare(score_pairs(rows, cosine=no_cosine))
    for key in ("yes_ratio", "adversarial_accuracy", "names_asked_object", "yes_no_auroc"):
        assert metrics[f"base_{key}"] is None and metrics[f"delta_{key}"] is None, key
    assert metrics["n_adversarial"] is None and metrics["majority_baseline"] is None
    assert metrics["majority_baseline_other"] is None and "majority_baseline_exists" not in metrics
    copied = eval_results_metrics(metrics)
    assert not any("yes_ratio" in key or "majority" in key or "adversarial" in key for key in copied)


def test_scenes_without_existence_questions_have_no_existence_probes():
    rows = [row for row in dodge_rows() if row["question"].startswith("How many")]
    metrics = compare(score_pairs(rows, cosine=no_cosine))
    assert metrics["tuned_yes_ratio"] is None and metrics["tuned_yes_no_auroc"] is None
    assert metrics["n_adversarial"] is None and metrics["tuned_adversarial_accuracy"] is None
    assert metrics["tuned_names_asked_object"] == 0.0 and metrics["majority_baseline"] == pytest.approx(2 / 3)
