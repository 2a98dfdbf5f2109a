"""Hallucination scores for generated answers, with and without ground truth.

With ground truth (synthetic scenes, ``data_prep.synthetic.scenes``): every mention an answer makes (an object
with its colour and count, or a loose colour word) is checked against the scene
(``vlm_dpo.eval.checks.scenes.scene_score``). An answer is hallucinated when any mention is false; the
per-mention rate is false mentions / all mentions, pooled over answers, as CHAIR-i (Rohrbach et al. 2018,
"Object Hallucination in Image Captioning") pools objects. With an exact answer (``data_prep.synthetic.arithmetic``)
a wrong number is the hallucination.

Without ground truth (RLHF-V and similar): an offline proxy in the spirit of CHAIR. The object
vocabulary is COCO's 80 classes with synonyms (after CHAIR's list, minus words that are mostly
something else, such as "bow" or "sub") and plurals. An RLHF-V rejected answer is the chosen answer
with hallucinated segments corrected, so an object that the rejected answer names and the chosen
answer does not is likely not in the image. A generation's *suspect* objects are the classes it
mentions that the rejected answer names and the chosen answer does not; the proxy rate per answer is
the share of answers with any suspect object, per mention the suspect classes / all classes named.
It only sees objects that the annotators corrected, so it is a lower bound, and it misses colours,
counts and relations.

    from vlm_dpo.eval.checks.coco import coco_objects, proxy_suspects
    coco_objects("Two dogs chase a frisbee past a hot dog stand.")   # {'dog', 'frisbee', 'hot dog'}
    proxy_suspects("A cat on a sofa.", chosen="A cat on a bed.", rejected="A cat on a couch.")  # ['couch']
"""

from __future__ import annotations

import re

from vlm_dpo.eval.checks.arithmetic import answer_correct, exact_answer
from vlm_dpo.eval.checks.scenes import scene_score

# COCO's 80 detection classes, each with synonyms (mostly from CHAIR's synonyms.txt).
COCO_SYNONYMS = {
    "person": "person, people, man, men, woman, women, boy, girl, kid, child, children, baby, adult, lady, guy, "
              "gentleman, "
              "player, skier, snowboarder, skateboarder, surfer, rider, biker, cyclist, pedestrian, passenger, "
              "worker, chef, officer, policeman, soldier, teenager, student, mother, father, bride, groom",
    "bicycle": "bicycle, bike, unicycle, tricycle",
    "car": "car, automobile, van, minivan, sedan, suv, jeep, taxi, cab, limo, limousine",
    "motorcycle": "motorcycle, motorbike, scooter, moped",
    "airplane": "airplane, aeroplane, plane, jet, jetliner, aircraft, airliner, biplane, seaplane",
    "bus": "bus, minibus",
    "train": "train, locomotive, tram",
    "truck": "truck, pickup, lorry, firetruck",
    "boat": "boat, ship, sailboat, motorboat, speedboat, canoe, kayak, yacht, ferry, dinghy",
    "traffic light": "traffic light, traffic signal, stoplight, stop light",
    "fire hydrant": "fire hydrant, hydrant",
    "stop sign": "stop sign",
    "parking meter": "parking meter",
    "bench": "bench, pew",
    "bird": "bird, duck, goose, seagull, gull, pigeon, parrot, owl, swan, eagle, sparrow, pelican, crow, chicken, "
            "hen, rooster, flamingo, penguin",
    "cat": "cat, kitten, kitty",
    "dog": "dog, puppy, pup, doggy, hound",
    "horse": "horse, pony, foal, stallion, mare, colt",
    "sheep": "sheep, lamb, ewe",
    "cow": "cow, cattle, calf, bull, ox, oxen",
    "elephant": "elephant",
    "bear": "bear",
    "zebra": "zebra",
    "giraffe": "giraffe",
    "backpack": "backpack, knapsack, rucksack",
    "umbrella": "umbrella, parasol",
    "handbag": "handbag, purse",
    "tie": "tie, necktie",
    "suitcase": "suitcase, luggage",
    "frisbee": "frisbee",
    "skis": "ski",
    "snowboard": "snowboard",
    "sports ball": "ball, football, soccer ball, basketball, baseball, tennis ball, volleyball",
    "kite": "kite",
    "baseball bat": "baseball bat, bat",
    "baseball glove": "baseball glove, baseball mitt, mitt",
    "skateboard": "skateboard",
    "surfboard": "surfboard",
    "tennis racket": "tennis racket, racket, racquet",
    "bottle": "bottle",
    "wine glass": "wine glass",
    "cup": "cup, mug",
    "fork": "fork",
    "knife": "knife",
    "spoon": "spoon",
    "bowl": "bowl",
    "banana": "banana",
    "apple": "apple",
    "sandwich": "sandwich, burger, hamburger, cheeseburger",
    "orange": "orange",
    "broccoli": "broccoli",
    "carrot": "carrot",
    "hot dog": "hot dog, hotdog",
    "pizza": "pizza",
    "donut": "donut, doughnut",
    "cake": "cake, cupcake",
    "chair": "chair, stool",
    "couch": "couch, sofa",
    "potted plant": "potted plant, houseplant, plant",
    "bed": "bed",
    "dining table": "dining table, table, desk",
    "toilet": "toilet",
    "tv": "tv, television",
    "laptop": "laptop, computer",
    "mouse": "mouse",
    "remote": "remote, remote control",
    "keyboard": "keyboard",
    "cell phone": "cell phone, cellphone, mobile phone, phone, smartphone",
    "microwave": "microwave",
    "oven": "oven, stove",
    "toaster": "toaster",
    "sink": "sink",
    "refrigerator": "refrigerator, fridge",
    "book": "book",
    "clock": "clock",
    "vase": "vase",
    "scissors": "scissors",
    "teddy bear": "teddy bear, teddy",
    "hair drier": "hair drier, hair dryer, hairdryer, blow dryer",
    "toothbrush": "toothbrush",
}

# Plurals that the suffix rules below get wrong; words already plural or without a plural map to themselves.
_IRREGULAR = {"person": "people", "man": "men", "woman": "women", "child": "children", "mouse": "mice",
              "knife": "knives", "calf": "calves", "goose": "geese", "ox": "oxen", "sheep": "sheep",
              "people": "people", "men": "men", "women": "women", "children": "children", "oxen": "oxen",
              "cattle": "cattle", "luggage": "luggage", "broccoli": "broccoli", "scissors": "scissors",
              "ski": "skis"}


def plural(word: str) -> str:
    """English plural of one noun: irregulars, then -es after s/x/z/ch/sh, consonant + y -> -ies, else -s."""
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def _vocabulary() -> dict[tuple[str, ...], str]:
    """(word, ...) -> COCO class, for every synonym in singular and plural (plural on the last word)."""
    vocab = {}
    for name, synonyms in COCO_SYNONYMS.items():
        for phrase in [name, *synonyms.split(", ")]:
            words = tuple(phrase.split())
            vocab[words] = name
            vocab[(*words[:-1], plural(words[-1]))] = name
    return vocab


VOCABULARY = _vocabulary()
_LONGEST = max(len(key) for key in VOCABULARY)
_WORDS = re.compile(r"[a-z]+")


def coco_objects(text: str) -> set[str]:
    """The COCO classes a text names (each once), matching the longest phrase first, so "hot dog" is not a dog
    and "teddy bears" are not bears. Hyphens count as spaces ("hot-dog")."""
    words = _WORDS.findall(text.lower())
    found, i = set(), 0
    while i < len(words):
        for size in range(min(_LONGEST, len(words) - i), 0, -1):
            name = VOCABULARY.get(tuple(words[i:i + size]))
            if name is not None:
                found.add(name)
                i += size
                break
        else:
            i += 1
    return found


def proxy_suspects(generation: str, chosen: str, rejected: str) -> list[str]:
    """COCO classes the generation names that the rejected answer names and the chosen one does not, sorted."""
    return sorted(coco_objects(generation) & (coco_objects(rejected) - coco_objects(chosen)))


def proxy_score(generation: str, chosen: str, rejected: str) -> dict:
    """``{"kind": "proxy", "mentions": n classes named, "bad": suspect classes, "hallucinated": any suspect}``."""
    bad = proxy_suspects(generation, chosen, rejected)
    return {"kind": "proxy", "mentions": len(coco_objects(generation)), "bad": bad, "hallucinated": bool(bad)}


def score(generation: str, chosen: str, rejected: str, ground_truth: str | None) -> dict:
    """Ground-truth score when the pair has a scene (or an exact answer, ``data_prep.synthetic.arithmetic``: a wrong
    number is the hallucination), else the COCO proxy."""
    if exact_answer(ground_truth) is not None:
        wrong = not answer_correct(generation, ground_truth)
        return {"kind": "exact answer", "mentions": 1, "bad": [generation] if wrong else [], "hallucinated": wrong}
    if ground_truth:
        return scene_score(generation, ground_truth)
    return proxy_score(generation, chosen, rejected)
