"""Aggregation of scored rows into metrics.json's flat keys, overall and per question type, checked by hand."""

import json

import pytest

from vlm_dpo.eval.aggregate import compare
from vlm_dpo.eval.registry import eval_results_metrics
from vlm_dpo.eval.scoring import score_pairs

SCENE = json.dumps({"objects": [{"shape": "circle", "color": "red", "bbox": [0, 0, 5, 5]},
                                {"shape": "square", "color": "blue", "bbox": [9, 9, 15, 15]}]})


def no_cosine(texts_a, texts_b):
    return [0.0] * len(texts_a)


def scene_rows(questions, answers):
    """Rows whose tuned model gives ``answers`` and whose base repeats the chosen description (no hallucination)."""
    chosen = "There is a red circle and a blue square."
    return [{"question": q, "chosen": chosen, "rejected": "There is a green circle.", "base": chosen, "tuned": a,
             "ground_truth": SCENE} for q, a in zip(questions, answers)]


def test_scene_answers_hand_computed():
    questions = ["What color is the circle?", "What color is the square?", "How many circles are there?",
                 "Is there a green triangle?", "Describe the image."]
    answers = ["The circle is red.",  # right
               "The square is green.",  # wrong colour, and no green square: hallucinated
               "There are two circles in the image.",  # wrong count: hallucinated
               "No, there is no green triangle.",  # right
               "There is a red circle and a blue square."]  # right
    metrics = compare(score_pairs(scene_rows(questions, answers), cosine=no_cosine))
    assert metrics["tuned_hallucination_rate"] == pytest.approx(2 / 5)
    assert metrics["tuned_attribute_accuracy"] == pytest.approx(3 / 5)
    assert metrics["tuned_attribute_accuracy_color"] == pytest.approx(1 / 2) and metrics["n_color"] == 2
    assert metrics["tuned_attribute_accuracy_count"] == 0.0 and metrics["tuned_hallucination_rate_count"] == 1.0
    assert metrics["tuned_attribute_accuracy_exists"] == 1.0 and metrics["tuned_hallucination_rate_describe"] == 0.0
    assert metrics["base_attribute_accuracy_describe"] == 1.0 and metrics["n_describe"] == 1
    # 2 false mentions (green square, two circles) out of 1 + 1 + 1 + 1 + 2 = 6
    assert metrics["tuned_hallucination_mention_rate"] == pytest.approx(2 / 6)
    # the base's description answers 4 of the 5: not the existence question (it says nothing of a triangle)
    assert metrics["base_attribute_accuracy"] == pytest.approx(4 / 5) and metrics["base_attribute_accuracy_exists"] == 0.0
    assert metrics["delta_attribute_accuracy"] == pytest.approx(3 / 5 - 4 / 5)
    assert metrics["tuned_rewards_accuracies"] is None and metrics["tuned_rewards_accuracies_color"] is None


def test_unknown_question_type_is_other_and_left_out_of_attribute_accuracy():
    questions = ["What color is the circle?", "What is going on here?", "Is the circle big?"]
    answers = ["The circle is red.", "A blue circle.", "Yes, the circle is red."]
    metrics = compare(score_pairs(scene_rows(questions, answers), cosine=no_cosine))
    assert metrics["n_other"] == 2 and metrics["n_color"] == 1
    assert metrics["tuned_attribute_accuracy"] == 1.0  # only the colour question has an asked attribute
    assert metrics["tuned_attribute_accuracy_other"] is None
    assert metrics["tuned_hallucination_rate"] == pytest.approx(1 / 3)  # but every answer is checked: blue circle
    assert metrics["tuned_hallucination_rate_other"] == pytest.approx(1 / 2)


def test_eval_results_metrics_copies_the_marked_metrics_without_nulls():
    rows = scene_rows(["What color is the circle?"], ["The circle is blue."])
    rows[0]["logp"] = {m: {"chosen": -2.0, "rejected": -3.0, "chosen_tokens": 2, "rejected_tokens": 2}
                       for m in ("base", "tuned")}
    report = compare(score_pairs(rows, beta=0.1, cosine=no_cosine))
    copied = eval_results_metrics(report)
    assert copied == {
        "n_hallucinations_removed": 0, "n_hallucinations_added": 1,
        "base_hallucination_rate": 0.0, "base_hallucination_mention_rate": 0.0, "base_attribute_accuracy": 1.0,
        "tuned_hallucination_rate": 1.0, "tuned_hallucination_mention_rate": 1.0, "tuned_attribute_accuracy": 0.0,
        "delta_hallucination_rate": 1.0, "delta_hallucination_mention_rate": 1.0, "delta_attribute_accuracy": -1.0,
        "base_hallucination_rate_color": 0.0, "base_attribute_accuracy_color": 1.0,
        "tuned_hallucination_rate_color": 1.0, "tuned_attribute_accuracy_color": 0.0,
        "base_names_asked_object": 1.0, "tuned_names_asked_object": 1.0, "delta_names_asked_object": 0.0,
        "base_names_asked_object_color": 1.0, "tuned_names_asked_object_color": 1.0,
        "majority_baseline": 1.0, "majority_baseline_color": 1.0,
        "n_report_pairs": 1,
    }  # no proxy rates (null: no pair without ground truth), no rewards_* (eval_results.json has TRL's), no
    # existence probes (no existence question)


def test_empty_split_is_a_clear_error():
    with pytest.raises(ValueError, match="split is empty"):
        compare([])
