"""CHAIR (Rohrbach et al. 2018): COCO objects that image descriptions name but the image does not hold.

Follows ``utils/chair.py`` and ``data/synonyms.txt`` of github.com/LisaAnne/Hallucination (the scorer Object
HalBench builds on), with Recall from ``chair.py`` of github.com/Maxlinn/CHAIR-metric-standalone.

    from vlm_dpo.eval.benchmarks import chair
    questions = chair.load_questions("annotations/instances_val2014.json", "val2014/",
                                     captions_file="annotations/captions_val2014.json", limit=500)
    answers = {q["id"]: generate(q["image"], q["question"]) for q in questions}
    metrics = chair.score(questions, answers)   # {"chair_s": ..., "chair_i": ..., "recall": ..., ...}

Ground truth per image, as the reference: the COCO classes of its instance annotations, plus (when a captions
file is given; the reference always uses one) the classes its reference captions name, read by the same parser
as the generated text. The reference merges the train and val files; pass the file the images come from.

Parsing a description (``parse_answer``), as the reference: lower-case, tokenise, singularise every token, merge
two-token compounds ("hot dog", "teddy bear", "motor bike" ...; "baby X" / "adult X" -> X for animals,
"passenger jet/train" -> jet/train, "bow tie" -> tie, "toilet seat" -> toilet), drop "seat" when "toilet" is
there, and keep the tokens of the synonym table, each mapped to its COCO class. Every mention counts, repeats
included. The synonym table is the reference's, row for row, quirks included: " motor bike" and " cheesecake"
follow a double space there, so they never match, there as here.

Metrics (fractions, not percentages): chair_s = descriptions with a mention outside the ground truth / all
descriptions; chair_i = such mentions / all mentions; recall = ground-truth classes named / ground-truth classes,
summed over descriptions (Maxlinn's); avg_len = tokens per description after compounds are merged (an addition,
as later copies of the script report "Len"); counts n, n_missing (questions without an answer), n_mentions,
n_hallucinated (mentions), n_hallucinated_answers.
A ratio over nothing is 0.0 (the reference divides by zero).

Deviations from the reference, both because its libraries are not available offline:

- singularisation: the reference runs ``pattern.en.singularize`` on every token (some later copies of it run
  nltk's WordNet lemmatiser on part-of-speech-tagged tokens instead). Here ``singularize``: a word of the synonym
  table or of a compound stays; an irregular plural maps through a small table (men, women, children, geese,
  mice, knives ...); else the first of -ies -> -y, -es -> "", -s -> "", -men -> -man that is a table or compound
  word is taken; else the word is left as is, since such a word never counts. So "dogs", "buses", "puppies",
  "benches", "canoes", "taxis", "policemen" reach their table words and "glass", "bus", "skis", "scissors" stay,
  where pattern turns "glass" into "glas" (hence the reference's "wine glas" rule, kept here).
- tokenisation: ``nltk.word_tokenize`` is replaced by a regular expression: runs of letters and digits (joined by
  hyphens, as nltk keeps "cell-phone" whole), a clitic such as "'s" apart, and every other mark a token. Objects
  are found alike; avg_len can differ from nltk's count on numbers like "3.5" and abbreviations like "Mr.".
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

from data_prep.errors import InputError, MissingInputError

DEFAULT_PROMPT = "Please describe this image in detail."

# data/synonyms.txt of github.com/LisaAnne/Hallucination (BSD 2-Clause), one string per line of it: the COCO class
# first, then its synonyms. Long lines are split into adjacent literals; the text is unchanged.
SYNONYMS = (
    "person, girl, boy, man, woman, kid, child, chef, baker, people, adult, rider, children, baby, worker, "
    "passenger, sister, biker, policeman, cop, officer, lady, cowboy, bride, groom, male, female, guy, "
    "traveler, mother, father, gentleman, pitcher, player, skier, snowboarder, skater, skateboarder, "
    "person, woman, guy, foreigner, child, gentleman, caller, offender, coworker, trespasser, patient, "
    "politician, soldier, grandchild, serviceman, walker, drinker, doctor, bicyclist, thief, buyer, "
    "teenager, student, camper, driver, solider, hunter, shopper, villager",
    "bicycle, bike, bicycle, bike, unicycle, minibike, trike",
    "car, automobile, van, minivan, sedan, suv, hatchback, cab, jeep, coupe, taxicab, limo, taxi",
    "motorcycle, scooter,  motor bike, motor cycle, motorbike, scooter, moped",
    "airplane, jetliner, plane, air plane, monoplane, aircraft, jet, jetliner, airbus, biplane, seaplane",
    "bus, minibus, trolley",
    "train, locomotive, tramway, caboose",
    "truck, pickup, lorry, hauler, firetruck",
    "boat, ship, liner, sailboat, motorboat, dinghy, powerboat, speedboat, canoe, skiff, yacht, kayak, "
    "catamaran, pontoon, houseboat, vessel, rowboat, trawler, ferryboat, watercraft, tugboat, schooner, "
    "barge, ferry, sailboard, paddleboat, lifeboat, freighter, steamboat, riverboat, battleship, "
    "steamship",
    "traffic light, street light, traffic signal, stop light, streetlight, stoplight",
    "fire hydrant, hydrant",
    "stop sign",
    "parking meter",
    "bench, pew",
    "bird, ostrich, owl, seagull, goose, duck, parakeet, falcon, robin, pelican, waterfowl, heron, "
    "hummingbird, mallard, finch, pigeon, sparrow, seabird, osprey, blackbird, fowl, shorebird, "
    "woodpecker, egret, chickadee, quail, bluebird, kingfisher, buzzard, willet, gull, swan, bluejay, "
    "flamingo, cormorant, parrot, loon, gosling, waterbird, pheasant, rooster, sandpiper, crow, raven, "
    "turkey, oriole, cowbird, warbler, magpie, peacock, cockatiel, lorikeet, puffin, vulture, condor, "
    "macaw, peafowl, cockatoo, songbird",
    "cat, kitten, feline, tabby",
    "dog, puppy, beagle, pup, chihuahua, schnauzer, dachshund, rottweiler, canine, pitbull, collie, pug, "
    "terrier, poodle, labrador, doggie, doberman, mutt, doggy, spaniel, bulldog, sheepdog, weimaraner, "
    "corgi, cocker, greyhound, retriever, brindle, hound, whippet, husky",
    "horse, colt, pony, racehorse, stallion, equine, mare, foal, palomino, mustang, clydesdale, bronc, "
    "bronco",
    "sheep, lamb, ram, lamb, goat, ewe",
    "cow, cattle, oxen, ox, calf, cattle, holstein, heifer, buffalo, bull, zebu, bison ",
    "elephant",
    "bear, panda",
    "zebra",
    "giraffe",
    "backpack, knapsack",
    "umbrella",
    "handbag, wallet, purse, briefcase",
    "tie, bow, bow tie",
    "suitcase, suit case, luggage",
    "frisbee",
    "skis, ski",
    "snowboard",
    "sports ball, ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard, longboard, skimboard, shortboard, wakeboard",
    "tennis racket, racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife, pocketknife, knive",
    "spoon",
    "bowl, container",
    "banana",
    "apple",
    "sandwich, burger, sub, cheeseburger, hamburger",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut, doughnut, bagel",
    "cake,  cheesecake, cupcake, shortcake, coffeecake, pancake",
    "chair, seat, stool",
    "couch, sofa, recliner, futon, loveseat, settee, chesterfield ",
    "potted plant, houseplant",
    "bed",
    "dining table, table, desk",
    "toilet, urinal, commode, toilet, lavatory, potty",
    "tv, monitor, televison, television",
    "laptop, computer, notebook, netbook, lenovo, macbook, laptop computer",
    "mouse",
    "remote",
    "keyboard",
    "cell phone, mobile phone, phone, cellphone, telephone, phon, smartphone, iPhone",
    "microwave",
    "oven, stovetop, stove, stove top oven",
    "toaster",
    "sink",
    "refrigerator, fridge, fridge, freezer",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear, teddybear",
    "hair drier, hairdryer",
    "toothbrush",
)

# CHAIR.__init__ of the reference: compounds kept as one word, and qualifiers that would fire a false "person"
# ("baby bird" is a bird, "passenger jet" a jet).
_COMPOUNDS = ("motor bike", "motor cycle", "air plane", "traffic light", "street light", "traffic signal",
              "stop light", "fire hydrant", "stop sign", "parking meter", "suit case", "sports ball", "baseball bat",
              "baseball glove", "tennis racket", "wine glass", "hot dog", "cell phone", "mobile phone", "teddy bear",
              "hair drier", "potted plant", "bow tie", "laptop computer", "stove top oven", "home plate",
              "train track")
_ANIMALS = ("bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "animal", "cub")
_VEHICLES = ("jet", "train")

# Irregular plurals among the words that matter here (pattern and WordNet know them too).
_IRREGULAR = {"men": "man", "women": "woman", "children": "child", "people": "person", "geese": "goose",
              "mice": "mouse", "teeth": "tooth", "feet": "foot", "oxen": "ox", "knives": "knife", "wives": "wife",
              "lives": "life", "leaves": "leaf", "loaves": "loaf", "halves": "half", "calves": "calf",
              "shelves": "shelf", "wolves": "wolf", "scarves": "scarf", "thieves": "thief", "hooves": "hoof"}

_TOKEN = re.compile(r"\w+(?:-\w+)*|'\w+|[^\w\s]")
_INSTANCES = "COCO instances JSON (images, annotations, categories), as annotations/instances_val2014.json"
_CAPTIONS = "COCO captions JSON (images, annotations with image_id and caption), as annotations/captions_val2014.json"


def _synonym_tables() -> tuple[frozenset[str], dict[str, str]]:
    """The reference's ``mscoco_objects`` (every word of the table) and ``inverse_synonym_dict`` (word -> class)."""
    objects: set[str] = set()
    to_class: dict[str, str] = {}
    for line in SYNONYMS:
        words = line.strip().split(", ")  # as the reference splits: a double space leaves a leading blank
        objects.update(words)
        to_class |= dict.fromkeys(words, words[0])
    return frozenset(objects), to_class


def _compound_table() -> dict[str, str]:
    """The reference's ``double_word_dict``: two tokens -> the word they count as."""
    table = {compound: compound for compound in _COMPOUNDS}
    for animal in _ANIMALS:
        table[f"baby {animal}"] = table[f"adult {animal}"] = animal
    for vehicle in _VEHICLES:
        table[f"passenger {vehicle}"] = vehicle
    table["bow tie"] = "tie"
    table["toilet seat"] = "toilet"
    table["wine glas"] = "wine glass"  # pattern's singular of "glass"
    return table


MSCOCO_OBJECTS, TO_CLASS = _synonym_tables()
COMPOUNDS = _compound_table()
# The words singularize may return: every word of the table and of the compounds.
VOCABULARY = frozenset(word for phrase in MSCOCO_OBJECTS | COMPOUNDS.keys() for word in phrase.split())


def singularize(word: str, vocabulary: frozenset[str] = VOCABULARY) -> str:
    """The singular of ``word`` when it is a plural of a ``vocabulary`` word (or an irregular plural), else ``word``.

    Case-sensitive. ``vocabulary`` defaults to CHAIR's words; AMBER passes its own.
    """
    if word in vocabulary:
        return word
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    candidates = []
    if word.endswith("ies") and len(word) > 4:
        candidates.append(word[:-3] + "y")
    if word.endswith("es") and len(word) > 3:
        candidates.append(word[:-2])
    if word.endswith("s") and len(word) > 2:
        candidates.append(word[:-1])
    if word.endswith("men"):
        candidates.append(word[:-3] + "man")
    return next((candidate for candidate in candidates if candidate in vocabulary), word)


def tokenize(text: str) -> list[str]:
    """Words (hyphenated ones whole), clitics and punctuation marks, in order: ``nltk.word_tokenize``'s cut."""
    return _TOKEN.findall(text)


def caption_words(text: str) -> tuple[list[str], list[tuple[str, str]]]:
    """The reference's ``caption_to_words``: (tokens after compounds are merged, [(word, COCO class)] mentions)."""
    tokens = [singularize(token) for token in tokenize(text.lower())]
    merged: list[str] = []
    i = 0
    while i < len(tokens):
        pair = " ".join(tokens[i:i + 2])
        if pair in COMPOUNDS:
            merged.append(COMPOUNDS[pair])
            i += 2
        else:
            merged.append(tokens[i])
            i += 1
    words = merged
    if "toilet" in words and "seat" in words:  # "the seat of the toilet" is no chair
        words = [word for word in words if word != "seat"]
    return merged, [(word, TO_CLASS[word]) for word in words if word in MSCOCO_OBJECTS]


def parse_answer(text: str) -> list[tuple[str, str]]:
    """The COCO objects a description names, in order, repeats included: [(word as singularised, COCO class)]."""
    return caption_words(text)[1]


def load_ground_truth(instances_file: str | Path, captions_file: str | Path | None = None) -> dict[int, set[str]]:
    """COCO image id -> the COCO classes of its instances (and of its reference captions, when given).

    Every image of the instances file has an entry, an empty set when nothing is annotated.
    """
    return _ground_truth(_read_coco(instances_file, _INSTANCES, "categories"), instances_file, captions_file)


def _ground_truth(instances: dict, instances_file: str | Path, captions_file: str | Path | None) -> dict[int, set[str]]:
    """``load_ground_truth`` on an instances file already read (it is large: COCO val2014's is 160 MB)."""
    try:
        names = {category["id"]: category["name"] for category in instances["categories"]}
        truth: dict[int, set[str]] = {image["id"]: set() for image in instances["images"]}
        for annotation in instances["annotations"]:
            name = names.get(annotation["category_id"])
            if name not in TO_CLASS:
                raise InputError(f"{instances_file}: category {name or annotation['category_id']!r} is not one of "
                                 f"the 80 COCO classes of CHAIR's synonym table")
            truth.setdefault(annotation["image_id"], set()).add(TO_CLASS[name])
    except KeyError as missing:
        raise InputError(f"{instances_file}: an entry lacks {missing}; expected {_INSTANCES}") from None
    if captions_file is not None:
        captions = _read_coco(captions_file, _CAPTIONS, "annotations")
        try:
            for annotation in captions["annotations"]:
                objects = {coco_class for _, coco_class in parse_answer(annotation["caption"])}
                truth.setdefault(annotation["image_id"], set()).update(objects)
        except KeyError as missing:
            raise InputError(f"{captions_file}: an annotation lacks {missing}; expected {_CAPTIONS}") from None
    return truth


def load_questions(instances_file: str | Path, image_folder: str | Path, captions_file: str | Path | None = None,
                   prompt: str = DEFAULT_PROMPT, limit: int | None = None) -> list[dict]:
    """One describe question per image of the instances file that is in ``image_folder``, by image id.

    Keys: ``id`` (the image id as text), ``image`` (absolute), ``question`` (``prompt``), ``image_id``,
    ``gt_objects`` (sorted COCO classes). ``limit`` keeps the first ones, so a smaller run is a prefix of a larger.
    """
    folder = Path(image_folder).resolve()
    if not folder.is_dir():
        raise MissingInputError(f"CHAIR image folder {image_folder}: no such folder (COCO images)")
    if limit is not None and limit < 1:
        raise InputError(f"CHAIR: limit must be at least 1, got {limit}")
    instances = _read_coco(instances_file, _INSTANCES, "categories")
    truth = _ground_truth(instances, instances_file, captions_file)
    present = set(os.listdir(folder))  # one listing: COCO val2014 holds 40,504 images
    try:
        images = sorted((image["id"], image["file_name"]) for image in instances["images"]
                        if image["file_name"] in present)
    except KeyError as missing:
        raise InputError(f"{instances_file}: an image lacks {missing}; expected {_INSTANCES}") from None
    return [{"id": str(image_id), "image": str(folder / file_name), "question": prompt, "image_id": image_id,
             "gt_objects": sorted(truth[image_id])} for image_id, file_name in images[:limit]]


def score(questions: Sequence[dict], answers: dict[str, str]) -> dict[str, float | int]:
    """CHAIR_s, CHAIR_i, recall and average length over the questions that have an answer, with the counts."""
    known = {q["id"] for q in questions}
    unknown = sorted(set(answers) - known)
    if unknown:
        raise InputError(f"CHAIR: {len(unknown)} answers are for no loaded question (first: {unknown[0]!r})")
    answered = [q for q in questions if q["id"] in answers]
    mentions = hallucinated = hallucinated_answers = tokens = recalled = ground_truth = 0
    for question in answered:
        merged, found = caption_words(answers[question["id"]])
        truth = set(question["gt_objects"])
        false = [coco_class for _, coco_class in found if coco_class not in truth]
        mentions += len(found)
        hallucinated += len(false)
        hallucinated_answers += bool(false)
        tokens += len(merged)
        recalled += len({coco_class for _, coco_class in found} & truth)
        ground_truth += len(truth)
    n = len(answered)
    return {"chair_s": _ratio(hallucinated_answers, n), "chair_i": _ratio(hallucinated, mentions),
            "recall": _ratio(recalled, ground_truth), "avg_len": _ratio(tokens, n), "n": n,
            "n_missing": len(questions) - n, "n_mentions": mentions, "n_hallucinated": hallucinated,
            "n_hallucinated_answers": hallucinated_answers}


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


def _read_coco(path: str | Path, expected: str, key: str) -> dict:
    """A COCO annotation file, checked to hold ``images``, ``annotations`` and ``key``."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"CHAIR annotation file {path}: no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(f"{path}: is not a JSON file; expected {expected}") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("images", "annotations", key)):
        raise InputError(f"{path}: is not the expected layout; expected {expected}")
    return data
