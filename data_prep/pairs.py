"""Raw rows -> clean preference pairs, or a counted reason to skip them.

Three row layouts (see ``sources.detect_layout``):

- ``rlhfv``: ``image`` + ``text``, a JSON string ``{"question", "chosen", "rejected"}`` (openbmb/RLHF-V-Dataset);
- ``conversational``: ``prompt`` / ``chosen`` / ``rejected`` as messages or plain strings, with
  ``images`` (or ``image``), as HuggingFaceH4/rlaif-v_formatted;
- ``text``: the same without images, for text-only models: plain strings (HumanLLMs/Human-Like-DPO-Dataset) or
  messages, ``chosen`` / ``rejected`` possibly whole conversations (UltraFeedback binarized: the last assistant
  turn is the answer). Such pairs have no image (``Pair.image`` is None).

An image named by a path is looked up next to the data (``images.row_image``).

    from data_prep.pairs import to_pair
    pair = to_pair(row, "rlhfv", source_index=0, longest_edge=512)   # or raises SkipRow(reason)
"""

import json
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from data_prep.chat import control_token, message_text
from data_prep.images import SkipRow, load_image, row_image


@dataclass
class Pair:
    """One preference pair: an RGB image (None for text pairs) and stripped, non-empty, distinct texts."""

    image: Image.Image | None
    question: str
    chosen: str
    rejected: str
    source_index: int  # row position in its source split, to trace a pair back
    ground_truth: str = ""  # JSON string from the synthetic scenes, "" for real data
    source_format: str | None = None  # decides how the image is stored (see images.encode)
    group: str = ""  # rows with the same group stay on one side of the split (a scene and its edited copies)
    image_file: str = ""  # the file the image was read from, when a row names one (its changes make data stale)


def to_pair(row: dict, layout: str, source_index: int, longest_edge: int, data_root: Path | None = None,
            image_root: Path | None = None) -> Pair:
    """Validate and clean one row, or raise ``SkipRow``.

    Text checks come first, so a row that is dropped anyway never pays for image decoding;
    the first failing check names the reason. ``data_root`` / ``image_root``: see ``images.row_image``.
    """
    question, chosen, rejected = _rlhfv_texts(row) if layout == "rlhfv" else _conversational_texts(row)
    if isinstance(question, str):  # LLaVA-style "<image>\n" in the text: TRL adds the image block itself
        question = question.replace("<image>", "")
    question = _required(question, "missing_question")
    chosen = _required(chosen, "missing_chosen")
    rejected = _required(rejected, "missing_rejected")
    if chosen == rejected:
        raise SkipRow("chosen_equals_rejected")
    if any(control_token(text) for text in (question, chosen, rejected)):
        raise SkipRow("special_token_in_text")
    ground_truth = row.get("ground_truth") or ""
    if not isinstance(ground_truth, str):
        ground_truth = json.dumps(ground_truth)
    group = str(row.get("group") or "")
    if layout == "text":
        return Pair(None, question, chosen, rejected, source_index, ground_truth, group=group)
    source = row_image(_image_value(row, layout), data_root, image_root)
    image = load_image(source, longest_edge)
    return Pair(image, question, chosen, rejected, source_index, ground_truth, image.format, group,
                str(source) if isinstance(source, Path) else "")


def _required(value, reason: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SkipRow(reason)
    return value.strip()


def _rlhfv_texts(row: dict) -> tuple:
    try:
        data = json.loads(row["text"])
    except (TypeError, ValueError):
        raise SkipRow("text_not_json_object") from None
    if not isinstance(data, dict):
        raise SkipRow("text_not_json_object")
    return data.get("question"), data.get("chosen"), data.get("rejected")


def _conversational_texts(row: dict) -> tuple:
    prompt = row["prompt"]
    if isinstance(prompt, (list, tuple)) and sum(isinstance(m, dict) and m.get("role") is not None for m in prompt) > 1:
        # a system message or earlier turns: pairs here are single-turn, and keeping only the last user message
        # would drop the rest unseen
        raise SkipRow("system_or_multi_turn_prompt")
    return (
        message_text(row["prompt"], "user"),
        message_text(row["chosen"], "assistant"),
        message_text(row["rejected"], "assistant"),
    )


def _image_value(row: dict, layout: str):
    """The row's one image (RLHF-V and RLAIF-V pairs have exactly one); None when absent."""
    value = row["images"] if layout == "conversational" and "images" in row else row.get("image")
    if isinstance(value, list):
        if len(value) > 1:  # the pipeline asks about one image; keeping the first would drop the others unseen
            raise SkipRow("several_images")
        return value[0] if value else None
    return value
