"""AMBER: data files in the published layout, the reference's bookkeeping, hand-counted metrics."""

import json

import pytest

from data_prep.errors import InputError, MissingInputError
from vlm_dpo.eval.benchmarks import amber

RELATION = {"sky": [], "person": ["man", "woman", "people"], "man": ["person", "people"], "tree": ["forest"],
            "forest": ["tree"], "car": ["light"], "dog": [], "bird": [], "cat": [], "cloud": [], "bin": ["can"],
            "glass": []}
ANNOTATIONS = [
    {"id": 1, "type": "generative", "truth": ["sky", "person", "tree", "tree"], "hallu": ["dog", "bird"]},
    {"id": 2, "type": "generative", "truth": ["car"], "hallu": ["cat", "cloud"]},
    {"id": 3, "type": "generative", "truth": ["cat"], "hallu": ["dog"]},
    {"id": 4, "type": "discriminative-hallucination", "truth": "no"},
    {"id": 5, "type": "discriminative-hallucination", "truth": "yes"},
    {"id": 6, "type": "discriminative-attribute-state", "truth": "no"},
    {"id": 7, "type": "discriminative-attribute-number", "truth": "yes"},
    {"id": 8, "type": "discriminative-attribute-action", "truth": "no"},
    {"id": 9, "type": "relation", "truth": "no"},
    {"id": 10, "type": "discriminative-relation", "truth": "yes"},
]


@pytest.fixture
def data(tmp_path):
    root = tmp_path / "AMBER"
    (root / "data" / "query").mkdir(parents=True)
    (root / "image").mkdir()
    (root / "image" / "AMBER_1.jpg").write_bytes(b"")
    queries = [{"id": i, "image": f"AMBER_{min(i, 3)}.jpg", "query": "Describe this image." if i <= 3 else f"Q{i}?"}
               for i in range(1, 11)]
    (root / "data" / "query" / "query_all.json").write_text(json.dumps(queries, indent=4))
    (root / "data" / "annotations.json").write_text(json.dumps(ANNOTATIONS, indent=4))
    (root / "data" / "relation.json").write_text(json.dumps(RELATION, indent=4))
    (root / "data" / "safe_words.txt").write_text("orange\nlight\nsign")  # no final newline, as published
    return root


def load(root):
    data = root / "data"
    return (amber.load_questions(data / "query" / "query_all.json", root / "image", data / "annotations.json"),
            amber.load_word_lists(data / "relation.json", data / "safe_words.txt"))


def test_parse_answer():
    assert amber.parse_answer("No, there is not.") == "no"
    assert amber.parse_answer("Yes.") == "yes"
    assert amber.parse_answer("yes") == "yes"
    assert amber.parse_answer("There is a dog. No cat.") == "other"
    assert amber.parse_answer("") == "other"
    assert amber.parse_answer("I cannot tell") == "other"
    # strict: inference.py's string comparison, for responses already written as "Yes" / "No"
    assert [amber.parse_answer(t, strict=True) for t in ("Yes", "No", "Yes.", "yes", " No")] == [
        "yes", "no", "other", "other", "other"]


def test_extract_nouns():
    vocabulary = frozenset(["tree", "can", "glass", "leave", "dog", "TV"])
    # "Trees" keeps its capital, as the reference matches case-sensitively; "leaves" is "leaf", not "leave"
    assert amber.extract_nouns("Trees, trees and leaves.", vocabulary) == ["tree"]
    assert amber.extract_nouns("A can, two cans; it can be seen.", vocabulary) == ["can", "can"]
    assert amber.extract_nouns("Two glasses and a dog's TV.", vocabulary) == ["glass", "dog", "TV"]


def test_load(data):
    questions, words = load(data)
    assert len(questions) == 10
    assert questions[0] == {"id": "1", "image": str((data / "image").resolve() / "AMBER_1.jpg"),
                            "question": "Describe this image.", "amber_id": 1, "type": "generative",
                            "dimension": "generative", "truth": ["sky", "person", "tree", "tree"],
                            "hallu": ["dog", "bird"]}
    assert [q["dimension"] for q in questions[3:]] == ["existence", "existence", "attribute", "attribute",
                                                      "attribute", "relation", "relation"]
    assert questions[5]["truth"] == "no" and "hallu" not in questions[5]
    assert words.safe_words == {"orange", "light", "sign"}
    assert words.vocabulary == set(RELATION) | {"woman", "people", "light", "can"}


def test_score_hand_counted(data):
    questions, words = load(data)
    answers = {
        # truth entries: man woman people (for person) forest (tree #1) forest (tree #2) | sky person tree tree
        # nouns: man dog sky forest people ("Trees" is capitalised; "can" follows no determiner)
        # man -> person covered; dog -> hallucinated, marks dog; sky covered; forest -> first tree covered;
        # people -> person. Cover 3/4 (the second "tree" is never reached), Cog 1/2, 1 of 5 mentions hallucinated.
        "1": "A man and two dogs under the sky. Trees, a forest and people can be seen.",
        # nouns: car light cat can. car covered; light is a safe word (counted, never hallucinated);
        # cat hallucinated, marks cat; can hallucinated. Cover 1/1, Cog 1/2, 2 of 4 mentions hallucinated.
        "2": "A car with a light, a cat and a can.",
        # nouns: cat, covered. Cover 1/1, Cog 0/1, no hallucination.
        "3": "A cat.",
        "4": "No, there is not.",        # existence, truth no:  no    right
        "5": "Yes.",                     # existence, truth yes: yes   right
        "6": "Yes",                      # state,     truth no:  yes   wrong
        "7": "No",                       # number,    truth yes: no    wrong
        "8": "I cannot tell",            # action,    truth no:  other wrong
        "9": "no",                       # relation,  truth no:  no    right
        "10": "There is a dog. No cat.",  # relation, truth yes: other wrong
    }
    metrics = amber.score(questions, answers, words)
    # CHAIR (1 + 2 + 0) / (5 + 4 + 1); Cover (3 + 1 + 1) / (4 + 1 + 1); Hal 2/3 responses; Cog (1 + 1 + 0) / (2 + 2 + 1)
    assert {k: v for k, v in metrics.items() if k.startswith("generative_")} == {
        "generative_chair": pytest.approx(3 / 10), "generative_cover": pytest.approx(5 / 6),
        "generative_hal": pytest.approx(2 / 3), "generative_cog": pytest.approx(2 / 5), "generative_n": 3,
        "generative_n_mentions": 10, "generative_n_hallucinated": 3}
    # all 7: right 4, 5, 9; answered no 4, 7, 9; truly no 4, 6, 8, 9; both 4, 9. P 2/3, R 2/4, F1 (2/3) / (7/6) = 4/7
    assert {k: v for k, v in metrics.items() if k.startswith("discriminative_")} == {
        "discriminative_accuracy": pytest.approx(3 / 7), "discriminative_precision": pytest.approx(2 / 3),
        "discriminative_recall": 0.5, "discriminative_f1": pytest.approx(4 / 7),
        "discriminative_yes_ratio": pytest.approx(2 / 7), "discriminative_n": 7, "discriminative_n_other": 2}
    figures = ("accuracy", "precision", "recall", "f1", "yes_ratio", "n", "n_other")
    expected = {
        "existence": (1.0, 1.0, 1.0, 1.0, 0.5, 2, 0),
        "attribute": (0.0, 0.0, 0.0, 0.0, pytest.approx(1 / 3), 3, 1),  # answered no: 7 (truth yes); truly no: 6, 8
        "state": (0.0, 0.0, 0.0, 0.0, 1.0, 1, 0),  # no "no" answer: precision over nothing is 0.0
        "number": (0.0, 0.0, 0.0, 0.0, 0.0, 1, 0),  # no "no" truth: recall over nothing is 0.0
        "action": (0.0, 0.0, 0.0, 0.0, 0.0, 1, 1),
        "relation": (0.5, 1.0, 1.0, 1.0, 0.0, 2, 1),
    }
    for group, values in expected.items():
        assert tuple(metrics[f"{group}_{figure}"] for figure in figures) == values, group
    assert metrics["n_missing"] == 0
    assert len(metrics) == 7 + 7 * 7 + 1


def test_score_subset(data):
    questions, words = load(data)
    # discriminative answers alone need no word lists; groups without answers are left out
    metrics = amber.score(questions, {"4": "No", "5": "No"})
    assert metrics == {"discriminative_accuracy": 0.5, "discriminative_precision": 0.5, "discriminative_recall": 1.0,
                       "discriminative_f1": pytest.approx(2 / 3), "discriminative_yes_ratio": 0.0, "discriminative_n": 2,
                       "discriminative_n_other": 0, "existence_accuracy": 0.5, "existence_precision": 0.5,
                       "existence_recall": 1.0, "existence_f1": pytest.approx(2 / 3), "existence_yes_ratio": 0.0,
                       "existence_n": 2, "existence_n_other": 0, "n_missing": 8}
    assert amber.score(questions, {"5": "Yes."}, strict=True)["existence_accuracy"] == 0.0  # "Yes." is not "Yes"
    with pytest.raises(InputError, match="generative answers need relation.json and safe_words.txt"):
        amber.score(questions, {"1": "A dog."})
    with pytest.raises(InputError, match="for no loaded question"):
        amber.score(questions, {"11": "Yes"}, words)


def test_errors(data, tmp_path):
    d = data / "data"
    query, annotations, images = d / "query" / "query_all.json", d / "annotations.json", data / "image"
    with pytest.raises(MissingInputError, match="query_generative.json: no such file"):
        amber.load_questions(d / "query" / "query_generative.json", images, annotations)
    with pytest.raises(MissingInputError, match="no such folder"):
        amber.load_questions(query, tmp_path / "images", annotations)
    with pytest.raises(InputError, match=r"annotations.json: an entry is not \{id, image, query\}; expected AMBER's query"):
        amber.load_questions(annotations, images, annotations)
    lines = tmp_path / "responses.jsonl"
    lines.write_text('{"id": 1, "image": "AMBER_1.jpg", "query": "Describe this image."}\n{"id": 2}\n')
    with pytest.raises(InputError, match="responses.jsonl: is not one JSON document; expected AMBER's query JSON"):
        amber.load_questions(lines, images, annotations)
    with pytest.raises(InputError, match="relation.json: is a JSON dict; expected AMBER's annotations JSON"):
        amber.load_questions(query, images, d / "relation.json")
    with pytest.raises(InputError, match="has no annotation for query id 1"):
        (tmp_path / "few.json").write_text(json.dumps(ANNOTATIONS[3:]))
        amber.load_questions(query, images, tmp_path / "few.json")
    with pytest.raises(InputError, match="query_all.json: is a JSON list; expected AMBER's relation JSON"):
        amber.load_word_lists(query, d / "safe_words.txt")
    with pytest.raises(InputError, match="relation.json: holds JSON; expected AMBER's safe_words.txt"):
        amber.load_word_lists(d / "relation.json", d / "relation.json")
    with pytest.raises(MissingInputError, match="safe_word.txt: no such file"):
        amber.load_word_lists(d / "relation.json", d / "safe_word.txt")
