"""POPE: question files in the published JSON-lines layout, the reference's answer parsing, hand-counted metrics."""

import json

import pytest

from data_prep.errors import InputError, MissingInputError
from vlm_dpo.eval.benchmarks import pope


def reference_parse(text):
    """evaluate.py of AoiDragon/POPE (and LLaVA's eval_pope.py), verbatim but for the function around it."""
    if text.find('.') != -1:
        text = text.split('.')[0]
    text = text.replace(',', '')
    words = text.split(' ')
    if 'No' in words or 'not' in words or 'no' in words:
        return 'no'
    return 'yes'


def write_questions(path, labels):
    rows = [{"question_id": i, "image": f"COCO_val2014_{i:012d}.jpg", "text": f"Is there a thing {i} in the image?",
             "label": label} for i, label in enumerate(labels, start=1)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture
def files(tmp_path):
    images = tmp_path / "val2014"
    images.mkdir()
    (images / "COCO_val2014_000000000001.jpg").write_bytes(b"")
    random = write_questions(tmp_path / "coco_pope_random.json", ["yes", "no", "yes", "no", "no", "yes"])
    adversarial = write_questions(tmp_path / "coco_pope_adversarial.json", ["yes", "no", "yes"])
    return random, adversarial, images


def test_parse_answer_follows_the_reference():
    assert pope.parse_answer("No, there is not.") == "no"
    assert pope.parse_answer("Yes.") == "yes"
    assert pope.parse_answer("There is a dog. No cat.") == "yes"  # the first sentence only
    assert pope.parse_answer("I cannot tell") == "yes"  # "cannot" is not "not"
    assert pope.parse_answer("Not sure.") == "yes"  # case-sensitive: "Not" is not a no-word
    assert pope.parse_answer("NO") == "yes"
    assert pope.parse_answer("there is no cat") == "no"
    assert pope.parse_answer("no.") == "no"
    assert pope.parse_answer(" No\n") == "no"  # stripped first, as LLaVA writes answers
    assert pope.parse_answer("") == pope.parse_answer("  \n") == "other"
    for text in ["No, there is not.", "Yes.", "There is a dog. No cat.", "I cannot tell", "Not sure.", "NO",
                 "yes, there is a cat", "No there isn't", "It is not. Yes", "a,no,b", "..", "no\nway"]:
        assert pope.parse_answer(text) == reference_parse(text), text
    assert reference_parse("") == "yes"  # the reference's reading of an empty answer, which score keeps


def test_load_questions(files):
    random, adversarial, images = files
    questions = pope.load_questions([random, adversarial], images)
    assert len(questions) == 9
    assert questions[0] == {"id": "random/1", "image": str(images.resolve() / "COCO_val2014_000000000001.jpg"),
                            "question": "Is there a thing 1 in the image?", "label": "yes", "split": "random",
                            "question_id": 1}
    assert questions[6]["id"] == "adversarial/1"
    one = pope.load_questions(random, images, split="popular", suffix=" Answer yes or no.")
    assert one[1]["id"] == "popular/2" and one[1]["question"] == "Is there a thing 2 in the image? Answer yes or no."


def test_score_hand_counted(files):
    random, adversarial, images = files
    questions = pope.load_questions([random, adversarial], images)
    answers = {
        # random: label, parsed -> cell
        "random/1": "Yes.",                     # yes, yes -> TP
        "random/2": "No, there is not.",        # no,  no  -> TN
        "random/3": "There is a dog. No cat.",  # yes, yes -> TP
        "random/4": "",                         # no,  other (scored yes) -> FP
        "random/5": "I cannot tell",            # no,  yes -> FP
        "random/6": "No",                       # yes, no  -> FN
        # adversarial: 3 unanswered
        "adversarial/1": "Not sure.",           # yes, yes -> TP
        "adversarial/2": "no",                  # no,  no  -> TN
    }
    metrics = pope.score(questions, answers)
    # random: TP 2, FP 2, TN 1, FN 1; accuracy 3/6; precision 2/4; recall 2/3; F1 2PR/(P+R) = (2/3)/(7/6) = 4/7;
    # yes ratio (TP + FP) / n = 4/6
    assert {k: v for k, v in metrics.items() if k.startswith("random_")} == {
        "random_accuracy": 0.5, "random_precision": 0.5, "random_recall": pytest.approx(2 / 3),
        "random_f1": pytest.approx(4 / 7), "random_yes_ratio": pytest.approx(4 / 6), "random_tp": 2, "random_fp": 2,
        "random_tn": 1, "random_fn": 1, "random_n": 6, "random_n_other": 1, "random_n_missing": 0}
    # adversarial: TP 1, TN 1 over 2 answered
    assert {k: v for k, v in metrics.items() if k.startswith("adversarial_")} == {
        "adversarial_accuracy": 1.0, "adversarial_precision": 1.0, "adversarial_recall": 1.0, "adversarial_f1": 1.0,
        "adversarial_yes_ratio": 0.5, "adversarial_tp": 1, "adversarial_fp": 0, "adversarial_tn": 1,
        "adversarial_fn": 0, "adversarial_n": 2, "adversarial_n_other": 0, "adversarial_n_missing": 1}


def test_score_without_yes_predictions_is_zero_not_a_crash(files):
    random, _, images = files
    questions = pope.load_questions(random, images)
    metrics = pope.score(questions, {"random/2": "No."})  # TN 1: precision and recall over nothing
    assert (metrics["random_accuracy"], metrics["random_precision"], metrics["random_recall"],
            metrics["random_f1"], metrics["random_yes_ratio"]) == (1.0, 0.0, 0.0, 0.0, 0.0)


def test_errors(files, tmp_path):
    random, _, images = files
    with pytest.raises(MissingInputError, match="coco_pope_popular.json: no such file"):
        pope.load_questions(tmp_path / "coco_pope_popular.json", images)
    with pytest.raises(MissingInputError, match="no such folder"):
        pope.load_questions(random, tmp_path / "nowhere")
    array = tmp_path / "coco_pope_random_list.json"
    array.write_text(json.dumps([{"question_id": 1, "image": "a.jpg", "text": "Is there a cat?", "label": "yes"}]))
    with pytest.raises(InputError, match=r"coco_pope_random_list.json: is one JSON array; expected POPE's JSON lines"):
        pope.load_questions(array, images)
    llava = tmp_path / "llava_pope_test_random.jsonl"  # LLaVA's question file: a category, no label
    llava.write_text(json.dumps({"question_id": 1, "image": "a.jpg", "text": "Is there a cat?", "category": "random"}))
    with pytest.raises(InputError, match="line 1 lacks label"):
        pope.load_questions(llava, images)
    text = tmp_path / "coco_pope_popular.json"
    text.write_text("question_id,image,text,label\n")
    with pytest.raises(InputError, match="coco_pope_popular.json: line 1 is not JSON"):
        pope.load_questions(text, images)
    with pytest.raises(InputError, match="cannot tell the POPE split"):
        pope.load_questions(write_questions(tmp_path / "questions.json", ["yes"]), images)
    with pytest.raises(InputError, match="label 'maybe'"):
        pope.load_questions(write_questions(tmp_path / "x_random.json", ["maybe"]), images)
    with pytest.raises(InputError, match="holds split 'random'"):
        pope.load_questions([random, random], images)
    questions = pope.load_questions(random, images)
    with pytest.raises(InputError, match="for no loaded question"):
        pope.score(questions, {"popular/1": "Yes"})


def test_scenes_counts_are_scored_against_the_scene(tmp_path):
    from data_prep.synthetic.scenes_pope import write_benchmark
    from vlm_dpo.eval.benchmarks import scenes

    questions = scenes.load_questions(write_benchmark(tmp_path, n=4, seed=5))
    counts = [q for q in questions if q["split"] == "counts"]
    shape = counts[0]["question"].removeprefix("How many ").removesuffix("s are there?")
    words = ["no", "one", "two", "three"]
    answers = {q["id"]: f"There are {words[int(q['label'])]} {shape}s." for q in counts[:1]}
    answers[counts[1]["id"]] = "There are four triangles and four squares and four circles."  # never right: 0-3
    metrics = scenes.score(questions, answers)
    assert metrics["counts_accuracy"] == 0.5 and metrics["counts_n"] == 2 and metrics["counts_n_missing"] == 2
    assert metrics["random_n_missing"] == 8  # the existence questions were not answered
