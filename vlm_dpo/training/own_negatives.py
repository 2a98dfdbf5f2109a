"""The base model's own mistakes as rejected answers: pairs added to the training split before DPO.

Why: RLHF-V's pairs are human corrections of the model's own outputs, and RLAIF-V and OPA-DPO find that
rejected answers the policy itself would give matter most: a hand-written wrong answer the model would never
say teaches it little. Where the data has a ground truth to check answers against (the synthetic scenes, the
arithmetic), the base model answers every training question greedily; each answer the checker finds wrong
(the asked attribute wrong, or, for scenes, something claimed that the scene contradicts) becomes one more
pair, the chosen answer against it. The given pairs stay as they are.

The answers are cached under ``$VLM_DPO_CACHE/own_answers/``, one file per base model (a hash of its weights),
generator version and generation length, one line per question (a hash of its prompt, image and truth).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import xxhash

from data_prep.chat import message_text
from data_prep.synthetic import VERSION
from vlm_dpo.eval.checks.arithmetic import exact_answer
from vlm_dpo.eval.checks.scenes import hallucinated, question_type
from vlm_dpo.eval.generate import generate_answers, read_saved_answers
from vlm_dpo.eval.scoring import attribute_correct
from vlm_dpo.models.cache import default_cache_dir
from vlm_dpo.training.trainers.pack import tensor_bytes

logger = logging.getLogger(__name__)


def add_own_negatives(model, processor, train_set, *, max_new_tokens: int, batch_size: int):
    """``train_set`` plus a pair (chosen, the base's wrong answer) for each question the base gets wrong.

    Returns ``(dataset, record)``; ``record`` counts the answers generated, cached, found wrong and added, per
    question type, for ``eval_results.json``. Rows without a checkable ground truth are left alone.
    """
    from datasets import concatenate_datasets

    checkable = [i for i, truth in enumerate(train_set["ground_truth"]) if truth]
    if not checkable:
        return train_set, {"checked": 0, "added": 0}
    rows = train_set.select(checkable)
    questions = [message_text(p) for p in rows["prompt"]]
    images = [imgs[0].convert("RGB") for imgs in rows["images"]] if "images" in rows.column_names else None
    answers = cached_answers(model, processor, rows, questions, images, max_new_tokens, batch_size)

    added, by_type = [], Counter()
    for i, (question, answer) in enumerate(zip(questions, answers)):
        truth, chosen = rows[i]["ground_truth"], message_text(rows[i]["chosen"])
        if not answer or answer == chosen or not is_wrong(question, answer, truth, attribute_correct):
            continue
        added.append(i)
        by_type[question_kind(question, truth)] += 1
    record = {"checked": len(rows), "added": len(added), "added_by_type": dict(sorted(by_type.items()))}
    if not added:
        return train_set, record
    extra = rows.select(added)
    wrong = [[{"role": "assistant", "content": answers[i]}] for i in added]
    extra = extra.remove_columns("rejected").add_column("rejected", wrong, feature=train_set.features["rejected"])
    logger.info("Own negatives: the base got %d of %d training questions wrong; each wrong answer is added as a "
                "rejected answer.", len(added), len(rows))
    return concatenate_datasets([train_set, extra.cast(train_set.features)]), record


def is_wrong(question: str, answer: str, truth: str, attribute_correct) -> bool:
    """The asked attribute is wrong, or (scenes) the answer claims something the scene contradicts."""
    if attribute_correct(question, answer, truth) is False:
        return True
    return exact_answer(truth) is None and hallucinated(answer, truth)


def question_kind(question: str, truth: str) -> str:
    return "arithmetic" if exact_answer(truth) is not None else question_type(question)


def cached_answers(model, processor, rows, questions, images, max_new_tokens: int, batch_size: int) -> list[str]:
    """The base's greedy answers, from the cache where it has them; the missing ones generated and appended."""
    path = cache_file(model, max_new_tokens)
    known = read_saved_answers(path, "key")
    keys = [row_key(q, row["ground_truth"], image) for q, row, image in
            zip(questions, rows, images or [None] * len(questions))]
    missing = [i for i, key in enumerate(keys) if key not in known]
    if missing:
        logger.info("Own negatives: the base answers %d training questions (%d cached in %s).",
                    len(missing), len(keys) - len(missing), path)
        fresh = generate_answers(model, processor, None if images is None else [images[i] for i in missing],
                                 [questions[i] for i in missing], max_new_tokens=max_new_tokens,
                                 batch_size=batch_size)
        new = {keys[i]: answer for i, answer in zip(missing, fresh)}
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as handle:
            handle.writelines(json.dumps({"key": key, "answer": answer}) + "\n" for key, answer in new.items())
        known.update(new)
    return [known[key] for key in keys]


def row_key(question: str, truth: str, image) -> str:
    digest = xxhash.xxh3_128(json.dumps([question, truth]).encode())
    if image is not None:
        digest.update(repr(image.size).encode())
        digest.update(image.tobytes())
    return digest.hexdigest()


def cache_file(model, max_new_tokens: int) -> Path:
    """One file per base model (every weight and buffer hashed), generator version and answer length."""
    digest = xxhash.xxh3_128(f"{VERSION}/{max_new_tokens}/{model.dtype}".encode())
    for name, tensor in sorted([*model.named_parameters(), *model.named_buffers()], key=lambda item: item[0]):
        digest.update(f"{name}:{tuple(tensor.shape)}".encode())
        digest.update(tensor_bytes(tensor))
    return default_cache_dir() / "own_answers" / f"{digest.hexdigest()}.jsonl"
