"""data_prep.pairs / chat / budget: skip reasons, both row layouts, SmolVLM's rendering, TRL's token count."""

import io
import json

import pytest
from PIL import Image

from data_prep.budget import TokenBudget
from data_prep.chat import completion, message_text, messages, render
from data_prep.images import SkipRow
from data_prep.pairs import Pair, to_pair


def png(size=(40, 30), color="red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def rlhfv_row(text, image="default") -> dict:
    if not isinstance(text, str):
        text = json.dumps(text)
    image = {"bytes": png(), "path": "x.png"} if image == "default" else image
    return {"ds_name": "RLHF-V", "image": image, "text": text, "idx": 0}


GOOD = {"question": " What is shown? ", "chosen": "A red square.\n", "rejected": "A blue circle."}


def test_rlhfv_row_becomes_a_stripped_pair():
    pair = to_pair({**rlhfv_row(GOOD), "ground_truth": '{"objects": 1}'}, "rlhfv", source_index=7, longest_edge=20)
    assert (pair.question, pair.chosen, pair.rejected) == ("What is shown?", "A red square.", "A blue circle.")
    assert pair.image.mode == "RGB" and pair.image.size == (20, 15)
    assert (pair.source_index, pair.ground_truth, pair.source_format) == (7, '{"objects": 1}', "PNG")


def test_llava_image_placeholder_is_removed_from_the_question():
    pair = to_pair(rlhfv_row({**GOOD, "question": "<image>\nWhat is shown?"}), "rlhfv", 0, 512)
    assert pair.question == "What is shown?"


@pytest.mark.parametrize("row, reason", [
    (rlhfv_row(GOOD, image=None), "missing_image"),
    (rlhfv_row(GOOD, image={"bytes": b"\x89PNG broken", "path": None}), "undecodable_image"),
    (rlhfv_row("not json {"), "text_not_json_object"),
    (rlhfv_row(["question", "chosen", "rejected"]), "text_not_json_object"),
    (rlhfv_row('"a JSON string"'), "text_not_json_object"),
    (rlhfv_row("null"), "text_not_json_object"),
    ({**rlhfv_row(GOOD), "text": None}, "text_not_json_object"),
    (rlhfv_row({"chosen": "a", "rejected": "b"}), "missing_question"),
    (rlhfv_row({**GOOD, "question": "   "}), "missing_question"),
    (rlhfv_row({**GOOD, "question": "<image>"}), "missing_question"),
    (rlhfv_row({**GOOD, "question": 3}), "missing_question"),
    (rlhfv_row({**GOOD, "chosen": ""}), "missing_chosen"),
    (rlhfv_row({**GOOD, "chosen": None}), "missing_chosen"),
    (rlhfv_row({"question": "q", "chosen": "a"}), "missing_rejected"),
    (rlhfv_row({**GOOD, "rejected": ["A blue circle."]}), "missing_rejected"),
    (rlhfv_row({**GOOD, "rejected": " A red square. "}), "chosen_equals_rejected"),
])
def test_every_skip_reason(row, reason):
    with pytest.raises(SkipRow) as caught:
        to_pair(row, "rlhfv", 0, 512)
    assert caught.value.reason == reason


def test_conversational_rows_with_blocks_and_with_strings():
    blocks = {
        "prompt": [{"role": "user", "content": [{"type": "image", "text": None},
                                                {"type": "text", "text": "How many shapes?"}]}],
        "chosen": [{"role": "assistant", "content": [{"type": "text", "text": "Two."}]}],
        "rejected": [{"role": "assistant", "content": [{"type": "text", "text": "Three."}]}],
        "images": [{"bytes": png(), "path": None}],
    }
    strings = {
        "prompt": [{"role": "user", "content": "How many shapes?"}],
        "chosen": "Two.", "rejected": [{"role": "assistant", "content": "Three."}],
        "image": {"bytes": png(), "path": None},
    }
    for row in (blocks, strings):
        pair = to_pair(row, "conversational", 3, 512)
        assert (pair.question, pair.chosen, pair.rejected, pair.ground_truth) == ("How many shapes?", "Two.", "Three.", "")
    with pytest.raises(SkipRow, match="system_or_multi_turn_prompt"):  # kept, it would lose the system message
        to_pair({**strings, "prompt": [{"role": "system", "content": "Be brief."}, *strings["prompt"]]},
                "conversational", 3, 512)
    with pytest.raises(SkipRow, match="missing_image"):
        to_pair({**blocks, "images": []}, "conversational", 0, 512)
    with pytest.raises(SkipRow, match="missing_question"):
        to_pair({**blocks, "prompt": [{"role": "assistant", "content": "hi"}]}, "conversational", 0, 512)


def test_image_path_resolves_against_the_data_folder(tmp_path):
    (tmp_path / "img").mkdir()
    Image.new("RGB", (40, 30), "blue").save(tmp_path / "img" / "a.png")
    row = {"prompt": "What is shown?", "chosen": "Blue.", "rejected": "Red.", "image": "img/a.png"}
    pair = to_pair(row, "conversational", 0, 512, data_root=tmp_path)
    assert pair.image.getpixel((0, 0)) == (0, 0, 255) and pair.source_format == "PNG"
    with pytest.raises(SkipRow, match="image_outside_data"):
        to_pair({**row, "image": "../a.png"}, "conversational", 0, 512, data_root=tmp_path / "img")


def test_message_text_reads_strings_messages_and_blocks():
    blocks = [{"type": "image", "text": None}, {"type": "text", "text": "What is it? "}, {"type": "text", "text": "Be brief."}]
    conversation = [{"role": "user", "content": "Hi."}, {"role": "assistant", "content": " Hello. "},
                    {"role": "user", "content": blocks}]
    assert message_text(" plain ") == "plain" and message_text(None) is None
    assert message_text(conversation) == "What is it?\nBe brief."  # the last message; blocks one per line
    assert message_text(conversation, "assistant") == "Hello."
    assert message_text(conversation, "system") is None
    assert message_text([{"role": "user", "content": 3}], "user") == 3  # not text: the caller decides


def test_completion_is_what_follows_the_common_prefix():
    assert completion("User: hi\nAssistant:", "User: hi\nAssistant: Hello.\n") == " Hello.\n"
    # a template that rewrites the prompt's end once an answer follows (TRL's DeepSeek case)
    assert completion("User: hi<think>\n", "User: hi<answer>Hello.") == "answer>Hello."


def test_messages_are_trl_conversational_with_string_contents():
    assert messages("Q?", "yes", "no") == {
        "prompt": [{"role": "user", "content": "Q?"}],
        "chosen": [{"role": "assistant", "content": "yes"}],
        "rejected": [{"role": "assistant", "content": "no"}],
    }


def test_render_is_smolvlm_layout_character_for_character(tiny_processor):
    question, answer = "What color is the circle?", "It is red."
    assert render(tiny_processor, question, answer) == (
        "<|im_start|>User:<image>What color is the circle?<end_of_utterance>\nAssistant: It is red.<end_of_utterance>\n"
    )
    assert render(tiny_processor, question) == "<|im_start|>User:<image>What color is the circle?<end_of_utterance>\nAssistant:"


@pytest.mark.parametrize("size", [(16, 16), (64, 32), (50, 120), (200, 20), (3, 2)])
def test_token_count_matches_trl_collator(tiny_processor, size):
    from trl.trainer.dpo_trainer import DataCollatorForVisionPreference

    image = Image.new("RGB", size, "green")
    pair = Pair(image, "How many shapes are there?", "There are two red circles on the left.", "One.", 0)
    prompt, chosen, rejected = TokenBudget(tiny_processor, max_length=10_000).count(pair)
    batch = DataCollatorForVisionPreference(tiny_processor)(
        [{"images": [image], **messages(pair.question, pair.chosen, pair.rejected)}]
    )
    assert batch["attention_mask"].sum(dim=1).tolist() == [prompt + chosen, prompt + rejected]
    assert int(batch["completion_mask"][0].sum()) == chosen


def test_fits_is_prompt_plus_longer_answer(tiny_processor):
    pair = Pair(Image.new("RGB", (40, 30)), "Describe the image.", "A red circle and a blue square.", "A dog.", 0)
    prompt, chosen, rejected = TokenBudget(tiny_processor, 1).count(pair)
    total = prompt + max(chosen, rejected)
    assert TokenBudget(tiny_processor, total).fits(pair)
    assert not TokenBudget(tiny_processor, total - 1).fits(pair)
