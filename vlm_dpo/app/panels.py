"""The app's model panels as plain functions: ask both models, and judge a pair of answers.

No Gradio here (``vlm_dpo.app.ui`` wires these to the page and tests call them directly). A ``Session`` holds
what the app loads once: the tuned ``PeftModel`` (the base is the same model with its adapter disabled, never a
second copy), its processor, the run's config and its held-out pairs. Input a person can get wrong raises
``BadInput``, whose message the page shows as it is.

    session = load_session("outputs/tiny")
    image = read_image(session, "photo.png")
    *_, result = ask(session, image, "What color is the circle?")    # result["base"], result["tuned"]
    scores = judge(session, image, "What color is the circle?", "It is red.", "It is blue.")
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from data_prep.chat import control_token, render
from data_prep.errors import UserError
from data_prep.images import REASONS, SkipRow, load_image
from vlm_dpo.app.heldout import load_heldout
from vlm_dpo.eval.functional import dpo_rewards
from vlm_dpo.eval.generate import generate_answers
from vlm_dpo.eval.logprobs import answer_set_logprobs
from vlm_dpo.models.adapter import load_tuned
from vlm_dpo.models.run_record import RunRecord


class BadInput(UserError):
    """Input from the page that cannot be used as it is; the message says what to do instead."""


@dataclass
class Session:
    """Everything the panels need, loaded once."""

    model: object
    processor: object
    record: RunRecord
    heldout: object = None  # the run's held-out split (a datasets.Dataset), when it can be found
    max_new_tokens: int = 64

    @property
    def run_dir(self) -> Path:
        return self.record.folder

    @property
    def vision(self) -> bool:
        return self.record.vision

    @property
    def tokenizer(self):
        return self.processor.tokenizer if self.vision else self.processor

    @property
    def beta(self) -> float:
        return self.record.beta

    @property
    def tuned_generation(self) -> dict:
        """How the tuned model is asked: a Chain of Hindsight run after its positive phrase, as infer.py asks it."""
        return self.record.tuned_generation

    @property
    def context(self) -> int:
        """Tokens the model reads at most: its position table, or the tokenizer's limit where that is smaller."""
        text_config = self.model.config.get_text_config()
        limits = [getattr(text_config, "max_position_embeddings", None), self.tokenizer.model_max_length]
        return min(int(limit) for limit in limits if limit and limit < 10**7)


def load_session(adapter: str | Path, model_name_or_path: str | None = None, max_new_tokens: int = 64) -> Session:
    """Load the tuned model once, and the run's held-out pairs where they can be found. A folder that is no training
    run, or an adapter that does not fit the base, is a ``UserError`` raised before any model loads."""
    if max_new_tokens < 1:
        raise UserError(f"--max_new_tokens must be at least 1, got {max_new_tokens}.")
    model, processor, record = load_tuned(adapter, model_name_or_path)  # checks the folder first
    session = Session(model, processor, record, load_heldout(record), max_new_tokens)
    warm_up(session)
    return session


def warm_up(session: Session) -> None:
    """Answer a throwaway question while loading: a model's first generation pays one-time costs (weights paged in
    from disk, kernels picked for the shapes) that would otherwise slow a person's first question several-fold."""
    edge = session.record.image_longest_edge
    images = [Image.new("RGB", (edge, edge), "white")] if session.vision else None
    generate_answers(session.model, session.processor, images, ["Describe the image."], max_new_tokens=2,
                     batch_size=1)


def read_image(session: Session, path: str | Path | None):
    """An uploaded file -> the image the model sees, through training's decoder (``data_prep.images.load_image``)
    at the run's ``image_longest_edge``; None for a text-only run, which ignores images."""
    if not session.vision:
        return None
    if path is None:
        raise BadInput("Upload or drop an image first, or pick a held-out pair.")
    name = Path(path).name  # not the server's upload folder
    try:
        return load_image(Path(path), session.record.image_longest_edge)
    except SkipRow as skip:
        raise BadInput(f"Cannot use {name}: {REASONS.get(skip.reason, skip.reason)}. Upload a PNG, JPEG, WebP, "
                       "GIF or BMP image.") from None


def _prompt_tokens(session: Session, image, question: str) -> int:
    """Tokens of the rendered prompt (image tokens included), as generation and scoring build it."""
    kwargs = {"images": [[image]]} if session.vision else {}
    return len(session.processor(text=[render(session.processor, question)], add_special_tokens=False,
                                 **kwargs)["input_ids"][0])


def _cut(session: Session, text: str, limit: int) -> tuple[str, int]:
    """``text`` cut to its first ``limit`` tokens, and how many tokens it had."""
    ids = session.tokenizer(text, add_special_tokens=False)["input_ids"]
    return (text if len(ids) <= limit else session.tokenizer.decode(ids[:limit]).strip()), len(ids)


def refuse_control_tokens(text: str, what: str) -> None:
    if token := control_token(text):
        raise BadInput(f"The {what} holds {token}, a control token of the chat template: remove it.")


def fit_question(session: Session, image, question: str, reserve: int) -> tuple[str, list[str]]:
    """The question, cut so that prompt + ``reserve`` tokens (the answer) fit the model's context; the notes say
    when it was cut. An empty question, or no image for a vision run, is a ``BadInput``."""
    if session.vision and image is None:
        raise BadInput("Upload or drop an image first, or pick a held-out pair.")
    question = (question or "").strip()
    if not question:
        raise BadInput("Type a question first.")
    refuse_control_tokens(question, "question")
    budget = session.context - reserve - _prompt_tokens(session, image, "")
    if budget < 1:
        raise BadInput(f"The image and answer alone fill the model's {session.context}-token context; "
                       "use a smaller image or shorter answers.")
    question, tokens = _cut(session, question, budget)
    if tokens <= budget:
        return question, []
    return question, [f"The question has {tokens} tokens; the model reads {session.context} tokens at most, "
                      f"so only its first {budget} were used."]


def ask(session: Session, image, question: str):
    """Base, then tuned, answer ``question`` (about ``image``); yields the result after each, for the page to
    show progress. The result: ``base``, ``tuned`` (None until answered), ``base_seconds``, ``tuned_seconds``
    and ``notes`` (e.g. the question was cut)."""
    question, notes = fit_question(session, image, question, session.max_new_tokens)
    result = {"question": question, "base": None, "tuned": None, "base_seconds": None, "tuned_seconds": None,
              "notes": notes}
    images = [image] if session.vision else None
    for model in ("base", "tuned"):
        start = time.perf_counter()
        tuned = model == "tuned"
        result[model] = generate_answers(session.model, session.processor, images, [question], batch_size=1,
                                         max_new_tokens=session.max_new_tokens, use_adapter=tuned,
                                         **(session.tuned_generation if tuned else {}))[0]
        result[f"{model}_seconds"] = time.perf_counter() - start
        yield dict(result)


def judge(session: Session, image, question: str, chosen: str, rejected: str) -> dict:
    """Each model's summed log-probability of the chosen and the rejected answer, the implicit DPO rewards
    (``vlm_dpo.eval.functional.dpo_rewards``, the base as reference, the run's beta: the training metrics'
    function) and which answer each model prefers. Per model: ``logp_chosen``, ``logp_rejected``,
    ``tokens_chosen``, ``tokens_rejected``, ``reward_chosen``, ``reward_rejected``, ``margin``, ``chosen_wins``
    (margin > 0, as training counts a won pair) and ``prefers`` (the answer with the higher log-probability).
    A Chain of Hindsight run's answers are scored after its positive phrase, by both models, as its training
    evaluation scores them; a note says so."""
    import torch

    notes, answers = [], {}
    for side, text in (("chosen", chosen), ("rejected", rejected)):
        text = (text or "").strip()
        if not text:
            raise BadInput(f"Type the {side} answer first (or pick a held-out pair).")
        refuse_control_tokens(text, f"{side} answer")
        answers[side], tokens = _cut(session, text, session.context // 4)
        if tokens > session.context // 4:
            notes.append(f"The {side} answer has {tokens} tokens; only its first {session.context // 4} were scored.")
    prefix = session.tuned_generation.get("answer_prefix")
    scored = {side: f"{prefix} {text}" if prefix else text for side, text in answers.items()}
    if prefix:
        notes.append(f"A Chain of Hindsight run: both answers are scored after {prefix!r}.")
    # The longer answer, plus a few tokens for the template's end-of-turn markers, must fit after the prompt.
    reserve = max(len(session.tokenizer(a, add_special_tokens=False)["input_ids"]) for a in scored.values()) + 8
    question, question_notes = fit_question(session, image, question, reserve)
    images = [image] if session.vision else None
    logps = {}
    for model in ("base", "tuned"):
        (c_sums, c_counts), (r_sums, r_counts) = answer_set_logprobs(
            session.model, session.processor, images, [question], [[scored["chosen"]], [scored["rejected"]]],
            batch_size=1, use_adapter=model == "tuned")
        logps[model] = {"logp_chosen": c_sums[0], "logp_rejected": r_sums[0], "tokens_chosen": c_counts[0],
                        "tokens_rejected": r_counts[0]}
    as_tensor = lambda model, side: torch.tensor([logps[model][f"logp_{side}"]], dtype=torch.float64)  # noqa: E731
    result = {"question": question, "beta": session.beta, "notes": notes + question_notes, **answers}
    for model in ("base", "tuned"):
        rewards = dpo_rewards(as_tensor(model, "chosen"), as_tensor(model, "rejected"), as_tensor("base", "chosen"),
                              as_tensor("base", "rejected"), session.beta)
        result[model] = logps[model] | {
            "reward_chosen": float(rewards["chosen"][0]), "reward_rejected": float(rewards["rejected"][0]),
            "margin": float(rewards["margin"][0]), "chosen_wins": bool(rewards["chosen_wins"][0]),
            "prefers": "chosen" if logps[model]["logp_chosen"] > logps[model]["logp_rejected"] else "rejected",
        }
    return result
