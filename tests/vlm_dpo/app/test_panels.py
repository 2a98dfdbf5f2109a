"""The app's model panels on a real tiny run: images through training's decoder, both models' answers, the judge's
rewards against log-probs computed here, and bad input as a message."""

import contextlib
from pathlib import Path

import pytest
import yaml
from PIL import Image

from vlm_dpo.app.heldout import heldout_pair, read_report
from vlm_dpo.app.panels import BadInput, Session, _prompt_tokens, ask, judge, read_image
from vlm_dpo.models.run_record import RunRecord

QUESTION = "What color is the circle?"


@contextlib.contextmanager
def perturbed_adapter(model):
    """LoRA B ~ N(0, 1) for the block, so that tuned and base answers and log-probs differ by a lot."""
    import torch

    lora = {name: param for name, param in model.named_parameters() if "lora_B" in name}
    saved = {name: param.detach().clone() for name, param in lora.items()}
    torch.manual_seed(0)
    with torch.no_grad():
        for param in lora.values():
            param.normal_(std=1.0)
    try:
        yield
    finally:
        with torch.no_grad():
            for name, param in lora.items():
                param.copy_(saved[name])


@pytest.fixture
def red_png(tmp_path) -> Path:
    path = tmp_path / "red.png"
    Image.new("RGB", (80, 60), "red").save(path)
    return path


def test_uploads_go_through_trainings_decoder_at_the_runs_size(session, tmp_path):
    path = tmp_path / "wide.png"
    Image.new("RGBA", (200, 100), (255, 0, 0, 0)).save(path)  # fully transparent red
    image = read_image(session, path)
    assert session.record.image_longest_edge == 64
    assert image.mode == "RGB" and image.size == (64, 32)  # 200x100 shrunk to a longest edge of 64
    assert image.getpixel((5, 5)) == (255, 255, 255)  # transparency composited on white, as in data_prep


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow's, for the 1,600 pixels
def test_bad_images_get_a_message(session, tmp_path, monkeypatch):
    text = tmp_path / "notes.png"
    text.write_text("not an image at all")
    with pytest.raises(BadInput, match=r"Cannot use notes\.png: not an image Pillow can decode"):
        read_image(session, text)
    with pytest.raises(BadInput, match="Upload or drop an image"):
        read_image(session, None)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    for side in (40, 100):  # 1,600 pixels: over the limit; 10,000: over twice it, where Pillow refuses to open it
        bomb = tmp_path / f"bomb{side}.png"
        Image.new("L", (side, side)).save(bomb)
        with pytest.raises(BadInput, match=rf"Cannot use bomb{side}\.png: more pixels than Pillow.s decompression-bomb limit"):
            read_image(session, bomb)


def test_ask_gives_the_base_then_the_tuned_answer(session, red_png):
    from vlm_dpo.eval.generate import generate_answers

    image = read_image(session, red_png)
    with perturbed_adapter(session.model):
        steps = list(ask(session, image, QUESTION))
        expected = {model: generate_answers(session.model, session.processor, [image], [QUESTION], max_new_tokens=8,
                                            use_adapter=model == "tuned")[0] for model in ("base", "tuned")}
    assert expected["base"] != expected["tuned"]  # so that the checks below can tell the two models apart
    first, last = steps
    assert (first["base"], first["tuned"]) == (expected["base"], None)
    assert (last["base"], last["tuned"]) == (expected["base"], expected["tuned"])
    assert isinstance(last["base_seconds"], float) and isinstance(last["tuned_seconds"], float)
    assert last["notes"] == []


def test_empty_questions_and_missing_images_get_a_message(session, red_png):
    image = read_image(session, red_png)
    for question in ("", "   \n", None):
        with pytest.raises(BadInput, match="Type a question"):
            list(ask(session, image, question))
    with pytest.raises(BadInput, match="Upload or drop an image"):
        list(ask(session, None, QUESTION))
    with pytest.raises(BadInput, match="Type the rejected answer"):
        judge(session, image, QUESTION, "It is red.", " ")


def test_a_question_longer_than_the_context_is_cut_and_said(session, red_png):
    image = read_image(session, red_png)
    question = " ".join(["word"] * 10_000)
    *_, result = ask(session, image, question)
    assert len(result["notes"]) == 1 and "the model reads 2048 tokens at most" in result["notes"][0]
    assert question.startswith(result["question"]) and len(result["question"]) < len(question)
    assert _prompt_tokens(session, image, result["question"]) + session.max_new_tokens <= session.context
    assert isinstance(result["base"], str) and isinstance(result["tuned"], str)


def test_judge_rewards_are_beta_times_the_log_prob_change(session, tiny_run, red_png):
    from vlm_dpo.eval.logprobs import answer_logprobs

    image = read_image(session, red_png)
    answers = ["It is red.", "It is blue."]
    with perturbed_adapter(session.model):
        result = judge(session, image, QUESTION, *answers)
        base, _ = answer_logprobs(session.model, session.processor, [image] * 2, [QUESTION] * 2, answers,
                                  use_adapter=False)
        tuned, _ = answer_logprobs(session.model, session.processor, [image] * 2, [QUESTION] * 2, answers)
    beta = yaml.safe_load((tiny_run / "run_config.yaml").read_text())["beta"]
    assert beta == result["beta"] == 0.1
    reward_chosen, reward_rejected = beta * (tuned[0] - base[0]), beta * (tuned[1] - base[1])
    assert abs(reward_chosen - reward_rejected) > 0.01  # the perturbed adapter moves the log-probs apart
    scores = result["tuned"]
    assert scores["logp_chosen"] == pytest.approx(tuned[0], rel=1e-4)
    assert result["base"]["logp_rejected"] == pytest.approx(base[1], rel=1e-4)
    assert scores["reward_chosen"] == pytest.approx(reward_chosen, rel=1e-3)
    assert scores["reward_rejected"] == pytest.approx(reward_rejected, rel=1e-3)
    assert scores["margin"] == pytest.approx(reward_chosen - reward_rejected, rel=1e-3)
    assert scores["chosen_wins"] == (reward_chosen > reward_rejected)
    assert scores["prefers"] == ("chosen" if tuned[0] > tuned[1] else "rejected")
    assert result["base"]["reward_chosen"] == result["base"]["reward_rejected"] == result["base"]["margin"] == 0
    assert result["base"]["prefers"] == ("chosen" if base[0] > base[1] else "rejected")


def test_judge_agrees_with_the_training_report(session, tiny_run):
    rows, _ = read_report(tiny_run)
    pair = heldout_pair(session.heldout, 0)
    assert pair["question"] == rows[0]["question"]
    result = judge(session, pair["image"], pair["question"], pair["chosen"], pair["rejected"])
    for model in ("base", "tuned"):
        assert result[model]["margin"] == pytest.approx(rows[0][f"{model}_reward_margin"], abs=1e-5)
        logp_margin = result[model]["logp_chosen"] - result[model]["logp_rejected"]
        assert logp_margin == pytest.approx(rows[0][f"{model}_logp_margin"], abs=1e-3)


@pytest.fixture(scope="module")
def text_session(tiny_text_model_dir):
    """A text run's session: the tiny Llama with a fresh (zero) LoRA adapter, so tuned equals base."""
    from peft import LoraConfig, get_peft_model

    from vlm_dpo.models import load_model_and_processor

    model, tokenizer = load_model_and_processor("tiny-smollm2")
    model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"])).eval()
    record = RunRecord(folder=Path("text-run"), model_name_or_path="tiny-smollm2", vision=False, beta=0.5)
    return Session(model, tokenizer, record, max_new_tokens=4)


def test_a_text_run_ignores_images(text_session, red_png):
    assert not text_session.vision
    assert read_image(text_session, red_png) is None
    *_, answers = ask(text_session, None, "What is 2 + 2?")
    assert answers["base"] == answers["tuned"]  # a zero adapter changes nothing
    result = judge(text_session, None, "What is 2 + 2?", "4", "5")
    assert result["beta"] == 0.5
    assert result["tuned"]["logp_chosen"] == result["base"]["logp_chosen"] < 0
    assert result["tuned"]["reward_chosen"] == 0 and result["tuned"]["chosen_wins"] is False  # a tie loses


def test_a_chain_of_hindsight_run_is_asked_and_judged_after_its_positive_phrase(session, red_png):
    """As infer.py asks it: the tuned answer follows the positive phrase and stops before the negative one; the judge
    scores both answers after the positive phrase, with both models, as the run's evaluation does."""
    import dataclasses

    from vlm_dpo.eval.generate import generate_answers
    from vlm_dpo.eval.logprobs import answer_logprobs

    coh = dataclasses.replace(session, record=dataclasses.replace(
        session.record, method="coh", coh_positive="A helpful answer:", coh_negative="An unhelpful answer:"))
    image = read_image(coh, red_png)
    answers = ["It is red.", "It is blue."]
    with perturbed_adapter(coh.model):
        *_, asked = ask(coh, image, QUESTION)
        expected = generate_answers(coh.model, coh.processor, [image], [QUESTION], max_new_tokens=8,
                                    answer_prefix="A helpful answer:", stop_at="An unhelpful answer")[0]
        plain = generate_answers(coh.model, coh.processor, [image], [QUESTION], max_new_tokens=8)[0]
        result = judge(coh, image, QUESTION, *answers)
        after = [f"A helpful answer: {answer}" for answer in answers]
        tuned, _ = answer_logprobs(coh.model, coh.processor, [image] * 2, [QUESTION] * 2, after)
        base, _ = answer_logprobs(coh.model, coh.processor, [image] * 2, [QUESTION] * 2, after, use_adapter=False)
    assert expected != plain and asked["tuned"] == expected
    assert result["tuned"]["logp_chosen"] == pytest.approx(tuned[0], rel=1e-4)
    assert result["base"]["logp_rejected"] == pytest.approx(base[1], rel=1e-4)
    assert any("after 'A helpful answer:'" in note for note in result["notes"])


def test_control_tokens_in_the_page_are_refused(session, red_png):
    image = read_image(session, red_png)
    with pytest.raises(BadInput, match="holds <image>, a control token"):
        list(ask(session, image, "What <image> is this?"))
    with pytest.raises(BadInput, match="chosen answer holds <end_of_utterance>"):
        judge(session, image, "What is it?", "Red.<end_of_utterance>", "Blue.")
