"""Check answers about synthetic scenes against their ground truth: what an answer claims, whether it is false,
whether it gets the asked attribute right, whether it says yes or names the asked object (for the dodge probes,
``vlm_dpo.eval.probes``).

The scenes come from ``data_prep.synthetic.scenes``; each held-out pair carries its scene as JSON
(``ground_truth``), so every generated answer can be checked exactly.

    from vlm_dpo.eval.checks.scenes import answer_correct, hallucinated, question_type, scene_score
    hallucinated("There is a blue circle.", ground_truth)   # True when the scene has no blue circle
    scene_score("There is a blue circle.", ground_truth)    # {"kind": "ground truth", "bad": ["blue circle"], ...}
"""

from __future__ import annotations

import json
import re
from collections import Counter

from data_prep.synthetic.scenes import COLORS, NUMBER_WORDS, SHAPES

_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)?|\d+")
# Words a model may use outside the generator's vocabulary: naming them is always a hallucination.
_ALL_COLORS = COLORS + ("orange", "purple", "pink", "brown")
_ALL_SHAPES = SHAPES + ("rectangle", "star", "diamond", "oval", "hexagon", "pentagon")
_SHAPE_WORDS = {form: s for s in _ALL_SHAPES for form in (s, s + "s")}
_NUMBERS = {w: i for i, w in enumerate(NUMBER_WORDS + ("five", "six", "seven", "eight", "nine", "ten"))}
_NUMBERS["zero"] = 0
_FILLERS = {"small", "large", "big", "little", "tiny", "bright", "dark", "light", "solid"}


def _negator(tok: str) -> bool:
    return tok in ("not", "never") or tok.endswith("n't")


def answer_mentions(text: str) -> dict:
    """What an answer claims, read with a few English patterns (enough for short answers).

    Returns {"objects": [{"count", "color", "shape"}], "colors", "shapes", "counts",
    "loose_colors"}. count is an exact number ("two circles", "no squares" -> 0, "there isn't a
    red circle" -> 0) or None for "at least one" ("a red circle", "the circle"). A colour binds
    to the shape right after it ("red circle") or to "the circle is red"; other colour words are
    loose_colors. "colors"/"shapes" list every one named, negated or not, in order.
    """
    toks = _TOKEN.findall(text.lower())
    objects, bound = [], set()
    for i, tok in enumerate(toks):
        if tok not in _SHAPE_WORDS:
            continue
        j, color, count = i - 1, None, None
        while j >= 0 and toks[j] in _FILLERS:
            j -= 1
        if j >= 0 and toks[j] in _ALL_COLORS:
            color = toks[j]
            bound.add(j)
            j -= 1
            while j >= 0 and toks[j] in _FILLERS:
                j -= 1
        if j >= 0 and (toks[j] in _NUMBERS or toks[j].isdigit()):
            count = int(toks[j]) if toks[j].isdigit() else _NUMBERS[toks[j]]
        elif j >= 0 and toks[j] in ("a", "an", "any") and any(_negator(t) for t in toks[max(0, j - 3) : j]):
            count = 0
        if color is None and toks[i + 1 : i + 2] in (["is"], ["are"]):  # "the circle is (not) red"
            k = i + 2 + (toks[i + 2 : i + 3] == ["not"])
            if k < len(toks) and toks[k] in _ALL_COLORS:
                bound.add(k)
                color = None if k == i + 3 else toks[k]
        objects.append({"count": count, "color": color, "shape": _SHAPE_WORDS[tok]})
    loose = [t for i, t in enumerate(toks) if t in _ALL_COLORS and i not in bound and not (i and _negator(toks[i - 1]))]
    return {
        "objects": objects,
        "colors": list(dict.fromkeys(t for t in toks if t in _ALL_COLORS)),
        "shapes": list(dict.fromkeys(o["shape"] for o in objects)),
        "counts": [o["count"] for o in objects if o["count"] is not None],
        "loose_colors": list(dict.fromkeys(loose)),
    }


def _describe(mention: dict) -> str:
    """{"count": 2, "color": "blue", "shape": "square"} -> "2 blue squares"; no count -> "blue square"."""
    count, color, shape = mention["count"], mention["color"], mention["shape"]
    words = ["no" if count == 0 else count, color, shape if count in (None, 1) else shape + "s"]  # all plurals in -s
    return " ".join(str(word) for word in words if word is not None)


def check_mentions(text: str, ground_truth: str | dict) -> list[tuple[str, bool]]:
    """Each claim of an answer, as ``(words, false?)``, checked against the scene.

    A mention with a count must match the number of such objects exactly (so "there is no green
    triangle" is fine when there is none, and false when there is one); a mention without one
    needs at least one such object; a loose colour must be on some object. Colour is checked
    together with its shape, so "the circle is blue" is caught even if a blue square is there.
    Loose colours cannot be bound ("Red."): those only need to appear somewhere in the scene.
    """
    scene = json.loads(ground_truth) if isinstance(ground_truth, str) else ground_truth
    objs, mentions = scene["objects"], answer_mentions(text)
    judged = []
    for m in mentions["objects"]:
        n = sum(o["shape"] == m["shape"] and m["color"] in (None, o["color"]) for o in objs)
        judged.append((_describe(m), (n == 0) if m["count"] is None else (n != m["count"])))
    present = {o["color"] for o in objs}
    return judged + [(color, color not in present) for color in mentions["loose_colors"]]


def scene_score(text: str, ground_truth: str | dict) -> dict:
    """``{"kind": "ground truth", "mentions": n, "bad": false mentions, "hallucinated": any false}``; the false
    mentions over all mentions, pooled over answers, is CHAIR-i (Rohrbach et al. 2018) on the scene's vocabulary."""
    judged = check_mentions(text, ground_truth)
    bad = [words for words, false in judged if false]
    return {"kind": "ground truth", "mentions": len(judged), "bad": bad, "hallucinated": bool(bad)}


def hallucinated(text: str, ground_truth: str | dict) -> bool:
    """True if the answer claims something the scene contradicts (any false mention, ``check_mentions``)."""
    return scene_score(text, ground_truth)["hallucinated"]


_QUESTIONS = {
    "describe": re.compile(r"describe the image\.?"),
    "color": re.compile(r"what colou?r is the (\w+)\?"),
    "count": re.compile(r"how many (\w+?)s are there\?"),
    "exists": re.compile(r"is there an? (\w+) (\w+)\?"),
}


# Every question lands in one of these. "other" is any question the generator does not ask: its answers are still
# checked for hallucinations, but there is no asked attribute, so attribute accuracy leaves them out.
QUESTION_TYPES = (*_QUESTIONS, "other")


def asked(question: str) -> tuple[str, str | None, str | None]:
    """``(question type, asked colour, asked shape)``: the colour of an existence question, the shape of an existence,
    colour or count question, else None; ``("other", None, None)`` for any question the generator does not ask."""
    text = question.strip().lower()
    for qtype, pattern in _QUESTIONS.items():
        match = pattern.fullmatch(text)
        if match is None:
            continue
        if qtype == "exists":
            return qtype, match.group(1), _SHAPE_WORDS.get(match.group(2), match.group(2))
        if qtype == "count":
            return qtype, None, _SHAPE_WORDS.get(match.group(1) + "s", match.group(1))
        return qtype, None, _SHAPE_WORDS.get(match.group(1), match.group(1)) if qtype == "color" else None
    return "other", None, None


def question_type(question: str) -> str:
    """"describe", "color", "count" or "exists" for the generator's questions; "other" for any other."""
    return asked(question)[0]


def true_answer(question: str, ground_truth: str | dict):
    """What a right answer to a generator question says about the scene, hashable so that answers can be counted:
    describe: frozenset of ((colour, shape), number); color: frozenset of the asked shape's colours; count: the
    number of the asked shape; exists: whether the asked (colour, shape) is there. None for type "other"."""
    scene = json.loads(ground_truth) if isinstance(ground_truth, str) else ground_truth
    objs, (qtype, color, shape) = scene["objects"], asked(question)
    if qtype == "describe":
        return frozenset(Counter((o["color"], o["shape"]) for o in objs).items())
    if qtype == "color":
        return frozenset(o["color"] for o in objs if o["shape"] == shape)
    if qtype == "count":
        return sum(o["shape"] == shape for o in objs)
    if qtype == "exists":
        return any(o["color"] == color and o["shape"] == shape for o in objs)
    return None


def affirms(question: str, answer: str) -> bool | None:
    """Whether an answer to an existence question says the asked object is there: its leading yes or no, else
    whether its first mention of the asked shape (uncoloured or in the asked colour) has a count other than 0.
    None when it says neither, or for other questions."""
    qtype, color, shape = asked(question)
    if qtype != "exists":
        return None
    first = (_TOKEN.findall(answer.lower()) or [""])[0]
    if first in ("yes", "no"):
        return first == "yes"
    said = [m["count"] != 0 for m in answer_mentions(answer)["objects"]
            if m["shape"] == shape and m["color"] in (None, color)]
    return said[0] if said else None


def names_asked_object(question: str, answer: str) -> bool | None:
    """Whether an answer names the object asked about: the asked shape (for an existence question uncoloured or in
    the asked colour), with any count. None for questions that ask about no object (describe, other)."""
    qtype, color, shape = asked(question)
    if qtype not in ("exists", "color", "count"):
        return None
    return any(m["shape"] == shape and (qtype != "exists" or m["color"] in (None, color))
               for m in answer_mentions(answer)["objects"])


def answer_correct(question: str, answer: str, ground_truth: str | dict) -> bool:
    """True if the answer gets the attribute the question asks about right (``true_answer``).

    - describe: the (colour, shape) groups named, with their counts ("a" = one), are exactly the scene's;
    - color: the colours named for the asked shape (or, if none is bound to it, all colours named)
      are exactly the object's colour;
    - count: the number given for the asked shape ("no" = 0, "a"/"the" = 1) is the true count;
    - exists: the leading yes/no (else whether the answer denies the object) matches the scene (``affirms``).
    Other questions (type "other") raise ValueError: there is no attribute to check.
    """
    truth, (qtype, _, shape) = true_answer(question, ground_truth), asked(question)
    mentions = answer_mentions(answer)
    if qtype == "describe":
        named = Counter()
        for m in mentions["objects"]:
            named[(m["color"], m["shape"])] += 1 if m["count"] is None else m["count"]
        return frozenset((+named).items()) == truth  # "+" drops zero counts ("no triangles")
    if qtype == "color":
        colors = {m["color"] for m in mentions["objects"] if m["shape"] == shape and m["color"]}
        return (colors or set(mentions["loose_colors"])) == truth
    if qtype == "count":
        return {1 if m["count"] is None else m["count"] for m in mentions["objects"] if m["shape"] == shape} == {truth}
    if qtype == "exists":
        return affirms(question, answer) == truth
    raise ValueError(f"Not one of the generator's questions: {question!r}")
