"""CHAIR: COCO annotation files in the published layout, the reference's parsing rules, hand-counted metrics."""

import json

import pytest

from data_prep.errors import InputError, MissingInputError
from vlm_dpo.eval.benchmarks import chair

CATEGORIES = [{"supercategory": "person", "id": 1, "name": "person"}, {"supercategory": "animal", "id": 17, "name": "cat"},
              {"supercategory": "animal", "id": 18, "name": "dog"}, {"supercategory": "kitchen", "id": 44, "name": "bottle"},
              {"supercategory": "indoor", "id": 70, "name": "toilet"}]


def image(image_id):
    return {"license": 1, "file_name": f"COCO_val2014_{image_id:012d}.jpg", "coco_url": "", "height": 480,
            "width": 640, "date_captured": "2013-11-14 16:28:13", "flickr_url": "", "id": image_id}


def instance(annotation_id, image_id, category_id):
    return {"segmentation": [[0, 0, 1, 0, 1, 1]], "area": 1.0, "iscrowd": 0, "image_id": image_id,
            "bbox": [0, 0, 1, 1], "category_id": category_id, "id": annotation_id}


@pytest.fixture
def coco(tmp_path):
    """Images 3, 1, 2 on disk (listed out of order), image 4 annotated but absent; image 1 also captioned."""
    images = tmp_path / "val2014"
    images.mkdir()
    for image_id in (1, 2, 3):
        (images / f"COCO_val2014_{image_id:012d}.jpg").write_bytes(b"")
    instances = tmp_path / "instances_val2014.json"
    instances.write_text(json.dumps({
        "info": {}, "licenses": [], "images": [image(3), image(1), image(4), image(2)], "categories": CATEGORIES,
        "annotations": [instance(10, 1, 18), instance(11, 1, 1), instance(12, 1, 18), instance(13, 2, 70),
                        instance(14, 3, 17), instance(15, 3, 44), instance(16, 4, 18)]}))
    captions = tmp_path / "captions_val2014.json"
    captions.write_text(json.dumps({
        "info": {}, "licenses": [], "images": [image(1)],
        "annotations": [{"image_id": 1, "id": 20, "caption": "A man riding a bike past his dog."}]}))
    return instances, captions, images


def test_singularize():
    words = ["dogs", "buses", "puppies", "benches", "canoes", "taxis", "policemen", "women", "knives", "glasses",
             "bus", "skis", "scissors", "people", "houses", "the", "is"]
    assert [chair.singularize(word) for word in words] == [
        "dog", "bus", "puppy", "bench", "canoe", "taxi", "policeman", "woman", "knife", "glass",
        "bus", "skis", "scissors", "people", "houses", "the", "is"]
    assert chair.singularize("Dogs") == "Dogs"  # case-sensitive; CHAIR lower-cases the text first
    assert chair.singularize("trees", frozenset({"tree"})) == "tree"


def test_parse_answer_compounds_and_synonyms():
    assert chair.parse_answer("Two puppies and a kitten on the sofa.") == [
        ("puppy", "dog"), ("kitten", "cat"), ("sofa", "couch")]
    assert chair.parse_answer("Hot dogs, teddy bears and wine glasses.") == [
        ("hot dog", "hot dog"), ("teddy bear", "teddy bear"), ("wine glass", "wine glass")]
    assert chair.parse_answer("A baby elephant beside a passenger train.") == [("elephant", "elephant"), ("train", "train")]
    assert chair.parse_answer("A baby.") == [("baby", "person")]
    # "home plate" and "train track" are compounds that name no COCO object: no plate, no train
    assert chair.parse_answer("He wears a bow tie at home plate near the train tracks.") == [("tie", "tie")]
    assert chair.parse_answer("A toilet seat.") == [("toilet", "toilet")]
    assert chair.parse_answer("The seat of the toilet.") == [("toilet", "toilet")]  # no chair when a toilet is named
    assert chair.parse_answer("A seat.") == [("seat", "chair")]
    # the reference's table has "scooter,  motor bike": the double space keeps "motor bike" from ever matching
    assert chair.parse_answer("A motor bike and a motorbike.") == [("motorbike", "motorcycle")]
    assert chair.parse_answer("A dog, a dog and two dogs.") == [("dog", "dog")] * 3
    assert chair.parse_answer("") == []


def test_load_questions(coco):
    instances, captions, images = coco
    questions = chair.load_questions(instances, images, captions_file=captions)
    assert [q["id"] for q in questions] == ["1", "2", "3"]  # by image id; image 4 is not in the folder
    assert questions[0] == {"id": "1", "image": str(images.resolve() / "COCO_val2014_000000000001.jpg"),
                            "question": "Please describe this image in detail.", "image_id": 1,
                            "gt_objects": ["bicycle", "dog", "person"]}  # bicycle from the caption
    assert [q["gt_objects"] for q in questions[1:]] == [["toilet"], ["bottle", "cat"]]
    short = chair.load_questions(instances, images, prompt="Describe the image.", limit=2)
    assert [q["id"] for q in short] == ["1", "2"] and short[0]["question"] == "Describe the image."
    assert short[0]["gt_objects"] == ["dog", "person"]  # no captions file: instances only
    assert chair.load_ground_truth(instances)[4] == {"dog"}


def test_score_hand_counted(coco):
    instances, captions, images = coco
    questions = chair.load_questions(instances, images, captions_file=captions)
    answers = {
        # ground truth {bicycle, dog, person}. Mentions: dog, man, bench, dog, bicycle = 5, bench hallucinated.
        # 16 tokens: Two dogs and a man sit on a bench . The dog barks at bicycles .
        "1": "Two dogs and a man sit on a bench. The dog barks at bicycles.",
        # ground truth {toilet}. Mentions: toilet (from "toilet seat"), hot dog = 2, hot dog hallucinated.
        # 7 tokens: A toilet-seat next to a hot-dog .
        "2": "A toilet seat next to a hot dog.",
        # ground truth {bottle, cat}. Mention: kitten = cat. 3 tokens: A kitten .
        "3": "A kitten.",
    }
    # chair_s 2/3 captions; chair_i 2/8 mentions; recall (3 + 1 + 1) / (3 + 1 + 2); avg_len (16 + 7 + 3) / 3
    assert chair.score(questions, answers) == {
        "chair_s": pytest.approx(2 / 3), "chair_i": 0.25, "recall": pytest.approx(5 / 6),
        "avg_len": pytest.approx(26 / 3), "n": 3, "n_missing": 0, "n_mentions": 8, "n_hallucinated": 2,
        "n_hallucinated_answers": 2}
    # without the captions the bicycle of image 1 is a hallucination too: 3/8 mentions, recall (2 + 1 + 1) / (2 + 1 + 2)
    metrics = chair.score(chair.load_questions(instances, images), answers)
    assert (metrics["chair_s"], metrics["chair_i"], metrics["recall"]) == (pytest.approx(2 / 3), 0.375, 0.8)
    # unanswered questions are left out and counted; no mention at all is 0.0, not a division by zero
    assert chair.score(questions, {"3": "Nothing here."}) == {
        "chair_s": 0.0, "chair_i": 0.0, "recall": 0.0, "avg_len": 3.0, "n": 1, "n_missing": 2, "n_mentions": 0,
        "n_hallucinated": 0, "n_hallucinated_answers": 0}


def test_errors(coco, tmp_path):
    instances, captions, images = coco
    with pytest.raises(MissingInputError, match="instances_train2014.json: no such file"):
        chair.load_questions(tmp_path / "instances_train2014.json", images)
    with pytest.raises(MissingInputError, match="no such folder"):
        chair.load_questions(instances, tmp_path / "train2014")
    with pytest.raises(InputError, match="captions_val2014.json: is not the expected layout; expected COCO instances"):
        chair.load_questions(captions, images)  # no categories
    with pytest.raises(InputError, match="an annotation lacks 'caption'; expected COCO captions"):
        chair.load_questions(instances, images, captions_file=instances)
    lines = tmp_path / "instances.jsonl"
    lines.write_text('{"images": []}\n{"annotations": []}\n')
    with pytest.raises(InputError, match="instances.jsonl: is not a JSON file; expected COCO instances"):
        chair.load_questions(lines, images)
    other = tmp_path / "instances_lvis.json"
    other.write_text(json.dumps({"images": [], "categories": [{"id": 1, "name": "aardvark"}],
                                 "annotations": [instance(1, 1, 1)]}))
    with pytest.raises(InputError, match="category 'aardvark' is not one of the 80 COCO classes"):
        chair.load_questions(other, images)
    with pytest.raises(InputError, match="limit must be at least 1"):
        chair.load_questions(instances, images, limit=0)
    with pytest.raises(InputError, match="for no loaded question"):
        chair.score(chair.load_questions(instances, images), {"4": "A dog."})
