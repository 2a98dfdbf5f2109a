"""Hallucination scores on hand-made answers: the COCO proxy (no ground truth), and which check ``score`` picks."""

import json

from vlm_dpo.eval.checks.coco import coco_objects, plural, proxy_score, proxy_suspects, score


def test_plurals():
    assert [plural(w) for w in ("dog", "bus", "bench", "sandwich", "knife", "person", "sheep", "pony", "toy")] == [
        "dogs", "buses", "benches", "sandwiches", "knives", "people", "sheep", "ponies", "toys"]


def test_coco_objects_synonyms_plurals_and_longest_match():
    assert coco_objects("Two puppies and a kitten on the sofa.") == {"dog", "cat", "couch"}
    assert coco_objects("A hot dog next to teddy bears.") == {"hot dog", "teddy bear"}  # not dog, not bear
    assert coco_objects("Several people, a man and cell-phones.") == {"person", "cell phone"}
    assert coco_objects("A blue sky over green hills.") == set()


def test_proxy_generation_equal_to_chosen_or_rejected():
    chosen, rejected = "A man holds a cup next to a laptop.", "A man holds a cup next to a laptop and a dog."
    assert proxy_suspects(chosen, chosen, rejected) == []
    assert proxy_score(rejected, chosen, rejected) == {"kind": "proxy", "mentions": 4, "bad": ["dog"],
                                                        "hallucinated": True}
    # an object in both answers is not suspect; one in neither is not counted (the proxy cannot know)
    assert proxy_suspects("A man with a dog and a giraffe.", chosen + " A dog.", rejected) == []


def test_score_picks_the_check_by_ground_truth():
    scene = json.dumps({"objects": [{"shape": "circle", "color": "red", "bbox": [1, 1, 9, 9]}]})
    assert score("There is a blue circle.", "chosen", "rejected", scene) == {
        "kind": "ground truth", "mentions": 1, "bad": ["blue circle"], "hallucinated": True}
    assert score("a dog", "a cat", "a dog", None) == {"kind": "proxy", "mentions": 1, "bad": ["dog"],
                                                      "hallucinated": True}
    exact = json.dumps({"answer": "85", "task": "addition"})
    assert score("37 + 48 = 84.", "", "", exact) == {"kind": "exact answer", "mentions": 1, "bad": ["37 + 48 = 84."],
                                                     "hallucinated": True}
    assert not score("85", "", "", exact)["hallucinated"]
