"""AMBER (Wang et al. 2023): generative (describe) and discriminative (yes/no) hallucination questions, scored as
the reference does.

Follows ``inference.py`` of github.com/junyangwang0410/AMBER and reads its published data: a query file
(``data/query/query_all.json``, ``query_generative.json``, ``query_discriminative*.json``: a JSON list of
``{"id", "image", "query"}``), ``data/annotations.json`` (``{"id", "type", "truth"[, "hallu"]}`` per id),
``data/relation.json`` (object -> associated words) and ``data/safe_words.txt`` (one word per line).

    from vlm_dpo.eval.benchmarks import amber
    questions = amber.load_questions("data/query/query_all.json", "AMBER/image/", "data/annotations.json")
    words = amber.load_word_lists("data/relation.json", "data/safe_words.txt")
    answers = {q["id"]: generate(q["image"], q["question"]) for q in questions}
    metrics = amber.score(questions, answers, words)   # {"generative_chair": ..., "existence_f1": ..., ...}

Generative questions (ids 1 to 1004), per response, as the reference: its nouns that are in the vocabulary
(relation.json's keys and values) are the mentions. A mention in safe_words.txt is skipped (counted in CHAIR's
denominator, never a hallucination). A mention among the image's truth objects or their associated words is not a
hallucination and covers the first truth object it stands for (an associated word covers the object it is listed
under, before the object's own entry: the reference's list order). Any other mention is a hallucination; if it is
among the hallu objects or their associated words, it also marks that hallu object. Then:
generative_chair = hallucinated mentions / mentions; generative_cover = covered truth objects / truth objects
(repeats in a truth list count apart, as there); generative_hal = responses with a hallucination / responses;
generative_cog = marked hallu objects / hallu objects.

Discriminative questions (ids from 1005), as the reference: the positive class is "no". accuracy = right answers
/ answers; precision = "no" answers that are right / "no" answers; recall = "no" truths answered "no" / "no"
truths; f1 = 2PR / (P + R); plus yes_ratio (share of "yes" answers; not in the reference), n and n_other, for
``discriminative`` (all), ``existence``, ``attribute`` (and its kinds ``state``, ``number``, ``action``) and
``relation``, as ``{group}_{metric}``. An answer neither "yes" nor "no" is wrong whatever the truth, as there.

Reading a discriminative answer (``parse_answer``): the reference does not parse; its README asks for responses
that are exactly "Yes" or "No" and ``inference.py`` compares strings (``strict=True`` does just that). By default
the first word of the answer, stripped of punctuation and case, decides: "Yes." and "No, there is not." are read,
"There is a dog. No cat.", "I cannot tell" and "" are "other". An exact "Yes" / "No" reads the same either way.

Deviations from the reference:

- noun extraction: the reference tags parts of speech (``nltk.pos_tag``), keeps the nouns and lemmatises them
  (WordNet), and counts a non-truth noun as safe when spaCy's ``en_core_web_lg`` finds it similar (> 0.8) to a
  truth word (or marks a hallu object by similarity). Neither the tagger, WordNet nor the vectors are available
  offline. Here ``extract_nouns``: every token (case kept, as the reference matches case-sensitively) is
  singularised against the vocabulary (``chair.singularize``: "trees" -> "tree", "glasses" -> "glass", "leaves" ->
  "leaf", which is not "leave", as WordNet) and kept when the result is a vocabulary word; the words of
  ``NEEDS_DETERMINER`` ("can", "watch", "drink" ... mostly verbs, modals or adjectives in descriptions) count only
  right after a determiner, possessive or number ("a can", "his watch", "two cans", not "can be seen"). Similarity
  is equality: a word is a synonym only when the association lists say so. So near-synonyms the vectors would
  accept count as hallucinations (CHAIR and Hal higher, Cover and Cog lower than the reference's), and vocabulary
  words used as verbs or adjectives outside that list count as mentions (either way).
- annotations are found by their ``id`` field; the reference takes entry ``id - 1`` of the list, the same entry
  in the published file.
- figures are fractions, unrounded; the reference prints percentages rounded to 0.1, seeds every denominator with
  0.001 (metrics.txt) instead of returning 0.0 over nothing, and computes F1 from the rounded P and R with 0.0001
  (existence: 0.001) added to the denominator.
"""

from __future__ import annotations

import json
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from data_prep.errors import InputError, MissingInputError
from vlm_dpo.eval.benchmarks.chair import singularize, tokenize

GENERATIVE = "generative"
OTHER = "other"  # a discriminative answer that is neither yes nor no
# annotation type -> the groups its discriminative answers count in
GROUPS = {
    "discriminative-hallucination": ("discriminative", "existence"),
    "discriminative-attribute-state": ("discriminative", "attribute", "state"),
    "discriminative-attribute-number": ("discriminative", "attribute", "number"),
    "discriminative-attribute-action": ("discriminative", "attribute", "action"),
    "discriminative-relation": ("discriminative", "relation"),
    "relation": ("discriminative", "relation"),  # the published annotations use both names
}
# Vocabulary words that descriptions mostly use as verbs, modals or adjectives: a noun only after one of _DETERMINERS.
NEEDS_DETERMINER = frozenset({"can", "hot", "watch", "drink", "support", "sound", "sailing", "drawing", "painting",
                              "file", "note", "skate", "switch", "spray"})
_DETERMINERS = frozenset({"a", "an", "the", "this", "that", "these", "those", "my", "your", "his", "her", "its",
                          "our", "their", "some", "several", "many", "few", "each", "every", "another", "one", "two",
                          "three", "four", "five", "six", "seven", "eight", "nine", "ten"})
_QUERIES = 'AMBER\'s query JSON (a list of {"id", "image", "query"}, as data/query/query_all.json)'
_ANNOTATIONS = 'AMBER\'s annotations JSON (a list of {"id", "type", "truth"}, as data/annotations.json)'
_RELATION = "AMBER's relation JSON (an object of word -> list of words, as data/relation.json)"
_SAFE_WORDS = "AMBER's safe_words.txt (one word per line)"


@dataclass(frozen=True)
class WordLists:
    """The word lists of generative scoring."""

    association: dict[str, list[str]]  # relation.json: object -> the words that also stand for it
    vocabulary: frozenset[str]  # its keys and values: the reference's hallucination_words
    safe_words: frozenset[str]  # safe_words.txt: words never counted as hallucinations


def load_word_lists(relation_file: str | Path, safe_words_file: str | Path) -> WordLists:
    """AMBER's association (relation.json) and safe words (safe_words.txt)."""
    association = _read_json(relation_file, _RELATION, dict)
    if not all(isinstance(words, list) and all(isinstance(w, str) for w in words) for words in association.values()):
        raise InputError(f"{relation_file}: a value is not a list of words; expected {_RELATION}")
    path = Path(safe_words_file)
    if not path.is_file():
        raise MissingInputError(f"AMBER safe words file {path}: no such file")
    lines = path.read_text(encoding="utf-8").splitlines()
    if any(line.lstrip().startswith(("{", "[")) for line in lines):
        raise InputError(f"{path}: holds JSON; expected {_SAFE_WORDS}")
    vocabulary = frozenset(association) | {word for words in association.values() for word in words}
    return WordLists(association, vocabulary, frozenset(lines))


def load_questions(query_file: str | Path, image_folder: str | Path, annotation_file: str | Path) -> list[dict]:
    """The questions of an AMBER query file, in its order: ``id`` (AMBER's id as text), ``image`` (absolute),
    ``question``, ``amber_id``, ``type``, ``dimension`` (generative / existence / attribute / relation), ``truth``
    (objects, or "yes" / "no") and, for generative ones, ``hallu``. Image files are not checked here.
    """
    folder = Path(image_folder).resolve()
    if not folder.is_dir():
        raise MissingInputError(f"AMBER image folder {image_folder}: no such folder (AMBER's image/)")
    queries = _read_json(query_file, _QUERIES, list)
    annotations = _annotations(annotation_file)
    questions, seen = [], set()
    for query in queries:
        if not isinstance(query, dict) or not {"id", "image", "query"} <= query.keys():
            raise InputError(f"{query_file}: an entry is not {{id, image, query}}; expected {_QUERIES}")
        if query["id"] in seen:
            raise InputError(f"{query_file}: id {query['id']} appears twice")
        seen.add(query["id"])
        if query["id"] not in annotations:
            raise InputError(f"{annotation_file}: has no annotation for query id {query['id']} of {query_file}")
        annotation = annotations[query["id"]]
        kind = annotation["type"]
        question = {"id": str(query["id"]), "image": str(folder / query["image"]), "question": query["query"],
                    "amber_id": query["id"], "type": kind,
                    "dimension": GENERATIVE if kind == GENERATIVE else GROUPS[kind][1], "truth": annotation["truth"]}
        if kind == GENERATIVE:
            question["hallu"] = annotation["hallu"]
        questions.append(question)
    return questions


def parse_answer(text: str, strict: bool = False) -> str:
    """"yes", "no" or "other" for a discriminative answer (see the module's docstring)."""
    if strict:  # inference.py: response == 'Yes' / response == 'No'
        return {"Yes": "yes", "No": "no"}.get(text, OTHER)
    words = text.split(maxsplit=1)
    first = words[0].strip(string.punctuation).lower() if words else ""
    return first if first in ("yes", "no") else OTHER


def extract_nouns(text: str, vocabulary: frozenset[str]) -> list[str]:
    """The vocabulary nouns a response mentions, in order, repeats included (the reference's nouns after its
    vocabulary filter; see the module's docstring for how this approximates its tagger)."""
    nouns, previous = [], ""
    for token in tokenize(text):
        word = singularize(token, vocabulary)
        if word in vocabulary and (word not in NEEDS_DETERMINER or previous.lower() in _DETERMINERS):
            nouns.append(word)
        previous = token
    return nouns


def score(questions: Sequence[dict], answers: dict[str, str], words: WordLists | None = None,
          strict: bool = False) -> dict[str, float | int]:
    """The reference's generative and discriminative figures over the questions that have an answer.

    ``words`` (``load_word_lists``) is needed when generative questions are answered; ``strict`` is
    ``parse_answer``'s. Groups without answered questions are left out; ``n_missing`` counts unanswered questions.
    """
    known = {q["id"] for q in questions}
    unknown = sorted(set(answers) - known)
    if unknown:
        raise InputError(f"AMBER: {len(unknown)} answers are for no loaded question (first: {unknown[0]!r})")
    answered = [q for q in questions if q["id"] in answers]
    generative = [q for q in answered if q["type"] == GENERATIVE]
    metrics: dict[str, float | int] = {}
    if generative:
        if words is None:
            raise InputError("AMBER: generative answers need relation.json and safe_words.txt (load_word_lists)")
        metrics |= _generative(generative, answers, words)
    groups: dict[str, list[tuple[str, str]]] = {}  # group -> [(truth, parsed answer)]
    for question in answered:
        if question["type"] != GENERATIVE:
            for group in GROUPS[question["type"]]:
                groups.setdefault(group, []).append((question["truth"], parse_answer(answers[question["id"]], strict)))
    for group in ("discriminative", "existence", "attribute", "state", "number", "action", "relation"):
        if group in groups:
            metrics |= {f"{group}_{key}": value for key, value in _discriminative(groups[group]).items()}
    metrics["n_missing"] = len(questions) - len(answered)
    return metrics


def _generative(questions: list[dict], answers: dict[str, str], words: WordLists) -> dict[str, float | int]:
    mentions = hallucinated = hallucinated_responses = covered = truths = marked = hallus = 0
    for question in questions:
        nouns = extract_nouns(answers[question["id"]], words.vocabulary)
        truth_words, truth_of = _expand(question["truth"], words.association, question["id"])
        hallu_words, hallu_of = _expand(question["hallu"], words.association, question["id"])
        is_covered = [False] * len(question["truth"])
        is_marked = [False] * len(question["hallu"])
        false = 0
        for noun in nouns:
            if noun in words.safe_words:
                continue
            if noun in truth_words:  # the first entry it matches decides which truth object it covers
                is_covered[truth_of[truth_words.index(noun)]] = True
                continue
            if noun in hallu_words:
                is_marked[hallu_of[hallu_words.index(noun)]] = True
            false += 1
        mentions += len(nouns)
        hallucinated += false
        hallucinated_responses += bool(false)
        covered += sum(is_covered)
        truths += len(is_covered)
        marked += sum(is_marked)
        hallus += len(is_marked)
    return {"generative_chair": _ratio(hallucinated, mentions), "generative_cover": _ratio(covered, truths),
            "generative_hal": _ratio(hallucinated_responses, len(questions)), "generative_cog": _ratio(marked, hallus),
            "generative_n": len(questions), "generative_n_mentions": mentions,
            "generative_n_hallucinated": hallucinated}


def _expand(objects: list[str], association: dict[str, list[str]], question_id: str) -> tuple[list[str], list[int]]:
    """The reference's word list for an object list: every object's associated words, in object order, then the
    objects themselves; with, for each entry, the index of the object it stands for."""
    words, owners = [], []
    for index, obj in enumerate(objects):
        if obj not in association:
            raise InputError(f"AMBER: object {obj!r} of question {question_id} is not in relation.json")
        words += association[obj]
        owners += [index] * len(association[obj])
    return words + objects, owners + list(range(len(objects)))


def _discriminative(pairs: list[tuple[str, str]]) -> dict[str, float | int]:
    """The reference's figures over (truth, answer) pairs, "no" the positive class."""
    right = sum(truth == answer for truth, answer in pairs)
    said_no = sum(answer == "no" for _, answer in pairs)
    truly_no = sum(truth == "no" for truth, _ in pairs)
    both_no = sum(truth == answer == "no" for truth, answer in pairs)
    precision = _ratio(both_no, said_no)
    recall = _ratio(both_no, truly_no)
    return {"accuracy": _ratio(right, len(pairs)), "precision": precision, "recall": recall,
            "f1": _ratio(2 * precision * recall, precision + recall),
            "yes_ratio": _ratio(sum(answer == "yes" for _, answer in pairs), len(pairs)), "n": len(pairs),
            "n_other": sum(answer == OTHER for _, answer in pairs)}


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


def _annotations(annotation_file: str | Path) -> dict[int, dict]:
    """AMBER's annotations by id, each checked for the fields its type needs."""
    by_id = {}
    for annotation in _read_json(annotation_file, _ANNOTATIONS, list):
        if not isinstance(annotation, dict) or not {"id", "type", "truth"} <= annotation.keys():
            raise InputError(f"{annotation_file}: an entry is not {{id, type, truth}}; expected {_ANNOTATIONS}")
        kind, truth = annotation["type"], annotation["truth"]
        if kind == GENERATIVE:
            if not isinstance(truth, list) or not isinstance(annotation.get("hallu"), list):
                raise InputError(f"{annotation_file}: generative id {annotation['id']} needs truth and hallu lists")
        elif kind not in GROUPS:
            raise InputError(f"{annotation_file}: id {annotation['id']} has unknown type {kind!r}")
        elif truth not in ("yes", "no"):
            raise InputError(f"{annotation_file}: id {annotation['id']} has truth {truth!r}; expected 'yes' or 'no'")
        by_id[annotation["id"]] = annotation
    return by_id


def _read_json(path: str | Path, expected: str, kind: type) -> list | dict:
    """A JSON file whose top level is a ``kind`` (list or dict)."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"AMBER file {path}: no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(f"{path}: is not one JSON document; expected {expected}") from None
    if not isinstance(data, kind):
        raise InputError(f"{path}: is a JSON {type(data).__name__}; expected {expected}")
    return data
