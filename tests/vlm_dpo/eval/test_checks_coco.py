"""Hallucination scores on hand-made answers: the COCO proxy (no ground truth) and the scene checks."""

import json

from data_prep.synthetic.scenes import make_row
from vlm_dpo.eval.checks.coco import (
    coco_objects,
    plural,
    proxy_score,
    proxy_suspects,
    scene_mentions,
    scene_score,
    score,
)
from vlm_dpo.eval.checks.scenes import hallucinated

SCENE = {"objects": [{"shape": "circle", "color": "red", "bbox": [1, 1, 9, 9]},
                     {"shape": "square", "color": "blue", "bbox": [20, 1, 29, 9]},
                     {"shape": "square", "color": "blue", "bbox": [40, 1, 49, 9]}]}


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


def test_scene_known_hallucinated_object():
    truth = json.dumps(SCENE)
    assert scene_score("There is a red circle and two blue squares.", truth) == {
        "kind": "ground truth", "mentions": 2, "bad": [], "hallucinated": False}
    wrong = scene_score("There is a red circle and a green triangle.", truth)
    assert wrong["bad"] == ["green triangle"] and wrong["mentions"] == 2 and wrong["hallucinated"]
    assert scene_score("There are three blue squares.", truth)["bad"] == ["3 blue squares"]  # wrong count
    assert scene_score("There is no triangle. Yellow.", truth)["bad"] == ["yellow"]  # loose colour
    assert score("anything", "chosen", "rejected", truth)["kind"] == "ground truth"
    assert score("a dog", "a cat", "a dog", None)["kind"] == "proxy"


def test_scene_mentions_agree_with_scenes_hallucinated():
    for i in range(120):
        row = make_row(i)
        text = json.loads(row["text"])
        for answer in (text["chosen"], text["rejected"], "There are two red circles.", "Green."):
            flags = [bad for _, bad in scene_mentions(answer, row["ground_truth"])]
            assert any(flags) == hallucinated(answer, row["ground_truth"]), (answer, row["ground_truth"])
        assert not scene_score(text["chosen"], row["ground_truth"])["hallucinated"]
