"""Answers about synthetic scenes checked against their ground truth: what an answer claims, which claims are false,
whether it gets the asked attribute right; on hand-made answers and on the generator's own pairs."""

import json

import pytest

from data_prep.synthetic.scenes import generate_rows
from vlm_dpo.eval.checks.scenes import (
    QUESTION_TYPES,
    affirms,
    answer_correct,
    answer_mentions,
    asked,
    check_mentions,
    hallucinated,
    names_asked_object,
    question_type,
    scene_score,
    true_answer,
)


@pytest.fixture(scope="module")
def rows():
    return generate_rows(200, seed=0)


def _texts(rows):
    return [json.loads(r["text"]) for r in rows]


def test_chosen_is_right_and_faithful_and_rejected_is_wrong(rows):
    """Rejected answers get the asked attribute wrong; most also claim something false. Those that do not are the
    dodges ("Yes, there is a <another object>.") and descriptions that leave a group out."""
    faithful = []
    for row, text in zip(rows, _texts(rows)):
        truth = row["ground_truth"]
        assert answer_correct(text["question"], text["chosen"], truth), text
        assert not answer_correct(text["question"], text["rejected"], truth), text
        assert not hallucinated(text["chosen"], truth), text
        if not hallucinated(text["rejected"], truth):
            faithful.append(text)
    assert all(t["rejected"].startswith("Yes") or t["question"] == "Describe the image." for t in faithful)
    assert 0 < len(faithful) < len(rows) / 4



@pytest.mark.parametrize(
    "text, objects",
    [
        ("There is a red circle and a blue square.", [(None, "red", "circle"), (None, "blue", "square")]),
        ("There are 2 small green triangles.", [(2, "green", "triangle")]),
        ("The circle is red.", [(None, "red", "circle")]),
        ("The circle is not red.", [(None, None, "circle")]),
        ("No, there is no green triangle.", [(0, "green", "triangle")]),
        ("There aren't any squares.", [(0, None, "square")]),
        ("I do not see a yellow star.", [(0, "yellow", "star")]),
        ("There are no squares in the image.", [(0, None, "square")]),
        ("There are three circles.", [(3, None, "circle")]),
        ("Yes.", []),
    ],
)
def test_answer_mentions(text, objects):
    found = answer_mentions(text)
    assert [(o["count"], o["color"], o["shape"]) for o in found["objects"]] == objects
    assert found["shapes"] == list(dict.fromkeys(s for _, _, s in objects))


def test_answer_mentions_lists_colors_and_counts():
    found = answer_mentions("There are two red circles, a blue square and no triangles. It is purple.")
    assert found["colors"] == ["red", "blue", "purple"]
    assert found["counts"] == [2, 0]
    assert found["loose_colors"] == ["purple"]


SCENE = {
    "width": 64,
    "height": 64,
    "objects": [
        {"shape": "circle", "color": "red", "bbox": [2, 2, 20, 20]},
        {"shape": "circle", "color": "red", "bbox": [30, 2, 48, 20]},
        {"shape": "square", "color": "blue", "bbox": [2, 30, 20, 48]},
    ],
}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("There are two red circles and a blue square.", False),
        ("There is a red circle.", False),  # vague but true: at least one
        ("The square is blue.", False),
        ("The square is red.", True),  # red is in the scene, but not on the square
        ("There is a blue circle.", True),
        ("There is a green triangle.", True),
        ("There is no green triangle.", False),  # a negation names nothing false
        ("There are no triangles in the image.", False),
        ("There are no squares.", True),  # a false absence is a wrong count
        ("There are three circles.", True),
        ("There is one circle in the image.", True),
        ("There is a red star.", True),
        ("It is blue.", False),
        ("It is green.", True),
        ("It is not green.", False),
        ("Yes.", False),
    ],
)
def test_hallucinated(text, expected):
    assert hallucinated(text, SCENE) is expected
    assert hallucinated(text, json.dumps(SCENE)) is expected


def test_question_type_and_answer_correct_on_generated_pairs(rows):
    for row, text in zip(rows, _texts(rows)):
        assert question_type(text["question"]) == row["question_type"]
        assert answer_correct(text["question"], text["chosen"], row["ground_truth"]), text
        assert not answer_correct(text["question"], text["rejected"], row["ground_truth"]), text


@pytest.mark.parametrize(
    "question, answer, expected",
    [
        ("What color is the circle?", "The circle is red.", True),
        ("What color is the circle?", "Red.", True),
        ("What color is the circle?", "The circle is blue.", False),
        ("What color is the circle?", "It is red.", True),
        ("What color is the circle?", "There is a red square.", False),  # says nothing of the circle
        ("How many circles are there?", "There are two circles in the image.", True),
        ("How many circles are there?", "There is one circle in the image.", False),
        ("How many triangles are there?", "There are no triangles in the image.", True),
        ("How many squares are there?", "There is a square.", True),
        ("Is there a blue square?", "Yes, there is a blue square.", True),
        ("Is there a blue square?", "No, there is no blue square.", False),
        ("Is there a green triangle?", "No, there is no green triangle.", True),
        ("Is there a green triangle?", "There is a green triangle.", False),
        ("Describe the image.", "There are two red circles and a blue square.", True),
        ("Describe the image.", "There is a red circle and a blue square.", False),  # one circle short
        ("Describe the image.", "There are two red circles, a blue square and a green triangle.", False),
    ],
)
def test_answer_correct(question, answer, expected):
    scene = {"objects": [{"shape": "circle", "color": "red", "bbox": [0, 0, 5, 5]},
                         {"shape": "circle", "color": "red", "bbox": [8, 0, 13, 5]},
                         {"shape": "square", "color": "blue", "bbox": [0, 8, 5, 13]}]}
    assert answer_correct(question, answer, scene) is expected
    assert answer_correct(question, answer, json.dumps(scene)) is expected


def test_unknown_questions_are_other_and_have_no_attribute():
    assert question_type("What is shown?") == "other" and "other" in QUESTION_TYPES
    with pytest.raises(ValueError):
        answer_correct("What is shown?", "A cat.", {"objects": []})


THREE = {"objects": [{"shape": "circle", "color": "red", "bbox": [1, 1, 9, 9]},
                     {"shape": "square", "color": "blue", "bbox": [20, 1, 29, 9]},
                     {"shape": "square", "color": "blue", "bbox": [40, 1, 49, 9]}]}


def test_scene_score_names_each_false_mention():
    truth = json.dumps(THREE)
    assert scene_score("There is a red circle and two blue squares.", truth) == {
        "kind": "ground truth", "mentions": 2, "bad": [], "hallucinated": False}
    wrong = scene_score("There is a red circle and a green triangle.", truth)
    assert wrong["bad"] == ["green triangle"] and wrong["mentions"] == 2 and wrong["hallucinated"]
    assert scene_score("There are three blue squares.", truth)["bad"] == ["3 blue squares"]  # wrong count
    assert scene_score("There are no circles.", truth)["bad"] == ["no circles"]  # a false absence
    assert scene_score("There is no triangle. Yellow.", truth)["bad"] == ["yellow"]  # loose colour


def test_check_mentions_judges_every_claim_in_order():
    assert check_mentions("There is one red circle, a green square and no triangles. Blue.", THREE) == [
        ("1 red circle", False), ("green square", True), ("no triangles", False), ("blue", False)]
    assert check_mentions("Yes.", THREE) == []


def test_asked_and_true_answer():
    assert asked("Is there a green triangle?") == ("exists", "green", "triangle")
    assert asked("How many squares are there?") == ("count", None, "square")
    assert asked("What colour is the circle?") == ("color", None, "circle")
    assert asked("Describe the image.") == ("describe", None, None) and asked("Why?") == ("other", None, None)
    assert true_answer("Is there a blue square?", THREE) is True and true_answer("Is there a red square?", THREE) is False
    assert true_answer("How many squares are there?", THREE) == 2
    assert true_answer("What color is the square?", json.dumps(THREE)) == frozenset({"blue"})
    assert true_answer("Describe the image.", THREE) == frozenset({(("red", "circle"), 1), (("blue", "square"), 2)})
    assert true_answer("Why?", THREE) is None


@pytest.mark.parametrize(
    "question, answer, says_yes, names",
    [
        ("Is there a red square?", "Yes, there is a red circle.", True, False),  # yes, about another object
        ("Is there a red square?", "No, there is no red square.", False, True),
        ("Is there a red square?", "There is a square.", True, True),  # an uncoloured square affirms it
        ("Is there a red square?", "There are no squares.", False, True),
        ("Is there a red square?", "There is a blue square.", None, False),  # another colour: neither
        ("Is there a red square?", "Maybe.", None, False),
        ("How many squares are there?", "There is one.", None, False),
        ("How many squares are there?", "There are two blue squares.", None, True),
        ("What color is the square?", "Blue.", None, False),
        ("Describe the image.", "Yes, there is a square.", None, None),
    ],
)
def test_affirms_and_names_asked_object(question, answer, says_yes, names):
    assert affirms(question, answer) is says_yes
    assert names_asked_object(question, answer) is names
