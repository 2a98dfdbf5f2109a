"""Training methods (vlm_dpo.training.methods): their settings, their data as the model sees it, token by token on the
tiny models' processors, the step split, the merged log history, and the CoH prompt at generation."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import train
from data_prep.chat import completion, messages, render
from vlm_dpo.errors import UserError

ROOT = Path(__file__).resolve().parents[3]
TINY = ["--config", str(ROOT / "recipes/tiny.yaml")]
POSITIVE, NEGATIVE = "A helpful answer:", "An unhelpful answer:"


def pairs(vision: bool):
    """Two hand-made pairs, with a red image each for a vision model."""
    from datasets import Dataset
    from PIL import Image

    rows = [messages("What is 2 + 3?", "2 + 3 = 5.", "2 + 3 = 6."),
            messages("Describe the image.", "There is a red circle.", "There is a blue square.")]
    if vision:
        rows = [{**row, "images": [Image.new("RGB", (32, 32), "red")]} for row in rows]
    return Dataset.from_list(rows)


@pytest.fixture(params=["vision", "text"])
def processor(request, tiny_processor, tiny_text_tokenizer):
    return tiny_processor if request.param == "vision" else tiny_text_tokenizer


def is_vision(processor) -> bool:
    return hasattr(processor, "image_processor")


def prompt_ids(processor, text: str, image=None) -> list[int]:
    """The ids of a rendered prompt, image tokens expanded, as the collators make them."""
    kwargs = {"images": [[image]]} if image is not None else {}
    return processor(text=[text], add_special_tokens=False, return_tensors="pt", **kwargs)["input_ids"][0].tolist()


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize("argv, message", [
    (["--method", "ppo"], "Unknown --method 'ppo': choose among dpo, sft, sft_then_dpo, coh"),
    (["--sft_steps", "2"], "--sft_steps is the SFT stage of --method sft_then_dpo"),
    (["--method", "sft_then_dpo", "--max_steps", "1"], "leaves no SFT stage"),
    (["--method", "sft_then_dpo", "--max_steps", "4", "--sft_steps", "4"], "leaves no DPO stage"),
    (["--method", "sft_then_dpo", "--sft_steps", "0"], "--sft_steps must be at least 1"),
    (["--method", "sft_then_dpo", "--resume_from_checkpoint", "true"], "cannot resume --method sft_then_dpo"),
    (["--method", "coh", "--coh_negative", "A helpful answer:"], "two different, non-empty phrases"),
    (["--method", "coh", "--coh_positive", " "], "two different, non-empty phrases"),
])
def test_impossible_method_settings_fail_at_parse_time(argv, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        train.parse([*TINY, *argv])


def test_method_defaults_and_choices_parse():
    args = train.parse(TINY)[1]
    assert (args.method, args.sft_steps, args.coh_positive, args.coh_negative) == ("dpo", None, POSITIVE, NEGATIVE)
    args = train.parse([*TINY, "--method", "sft_then_dpo", "--max_steps", "10", "--sft_steps", "3"])[1]
    assert (args.method, args.sft_steps) == ("sft_then_dpo", 3)


def test_step_budget_split_hand_computed():
    from vlm_dpo.training.methods.two_stage import budget, split_steps

    assert split_steps(60, None) == (30, 30)
    assert split_steps(5, None) == (2, 3)  # half, rounded down, to SFT
    assert split_steps(10, 3) == (3, 7)
    epochs = SimpleNamespace(max_steps=-1, num_train_epochs=3, per_device_train_batch_size=8, world_size=1,
                             gradient_accumulation_steps=1)
    assert budget(epochs, 192) == 72  # 24 batches a epoch, 3 epochs
    assert budget(SimpleNamespace(**{**vars(epochs), "gradient_accumulation_steps": 4}), 190) == 18  # 24 // 4 * 3
    assert budget(SimpleNamespace(**{**vars(epochs), "max_steps": 12}), 192) == 12


def test_stages_merge_into_one_log_history():
    from vlm_dpo.training.methods import adopt
    from vlm_dpo.training.methods.sft import Stage

    def stage(name, steps, log):
        state = SimpleNamespace(global_step=steps, epoch=1.0, log_history=log)
        return Stage(name, SimpleNamespace(state=state), None)

    evaluator = SimpleNamespace(state=SimpleNamespace(global_step=0, epoch=None, log_history=[{"eval_loss": 0.69,
                                                                                              "step": 0}]))
    stages = [stage("sft", 2, [{"loss": 5.0, "step": 1}, {"loss": 4.0, "step": 2}]),
              stage("dpo", 3, [{"loss": 0.69, "step": 1}, {"train_runtime": 1.0, "step": 3}])]
    assert adopt(evaluator, stages) == 5
    assert evaluator.state.global_step == 5 and evaluator.state.epoch == 1.0
    assert evaluator.state.log_history == [
        {"eval_loss": 0.69, "step": 0}, {"loss": 5.0, "step": 1, "stage": "sft"}, {"loss": 4.0, "step": 2, "stage": "sft"},
        {"loss": 0.69, "step": 3, "stage": "dpo"}, {"train_runtime": 1.0, "step": 5, "stage": "dpo"}]


# --------------------------------------------------------------------------- Chain of Hindsight data


def test_hindsight_templates_in_both_orders():
    from vlm_dpo.training.methods.coh import hindsight_segments

    helpful_first = hindsight_segments("2 + 3 = 5.", "2 + 3 = 6.", True, POSITIVE, NEGATIVE)
    unhelpful_first = hindsight_segments("2 + 3 = 5.", "2 + 3 = 6.", False, POSITIVE, NEGATIVE)
    assert "".join(text for text, _ in helpful_first) == "A helpful answer: 2 + 3 = 5.\nAn unhelpful answer: 2 + 3 = 6."
    assert "".join(text for text, _ in unhelpful_first) == "An unhelpful answer: 2 + 3 = 6.\nA helpful answer: 2 + 3 = 5."
    assert [text for text, scored in helpful_first if scored] == [" 2 + 3 = 5.", " 2 + 3 = 6."]
    assert [text for text, scored in unhelpful_first if not scored] == [NEGATIVE, "\n", POSITIVE]


def test_every_pair_becomes_two_rows_one_per_order():
    from vlm_dpo.training.methods.coh import hindsight_rows

    rows = hindsight_rows(pairs(vision=False).add_column("ground_truth", ["5", None]))
    assert rows.column_names == ["prompt", "chosen", "rejected", "helpful_first"]
    assert rows["helpful_first"] == [True, False, True, False]
    assert [row[0]["content"] for row in rows["chosen"]] == ["2 + 3 = 5."] * 2 + ["There is a red circle."] * 2


def test_coh_labels_are_the_answers_only_token_by_token(processor):
    """The prompt and image tokens, both phrases and the newline between the answers are masked; each answer and
    the end-of-turn tokens are scored; training sees, up to the positive phrase, the tokens generation is given."""
    from vlm_dpo.eval.generate import prompt_with_answer_start
    from vlm_dpo.training.methods.coh import HindsightCollator, hindsight_rows

    vision = is_vision(processor)
    tokenizer = getattr(processor, "tokenizer", processor)
    rows = hindsight_rows(pairs(vision))
    batch = HindsightCollator(processor, POSITIVE, NEGATIVE, max_length=512)([rows[0], rows[1]])
    question = "What is 2 + 3?"
    end = completion(render(processor, question), render(processor, question, "x"))
    end = end[end.index("x") + 1:]  # the template's end-of-turn text: "<end_of_utterance>\n", "<|im_end|>\n"
    image = rows[0]["images"][0] if vision else None
    for row, (first, second) in enumerate([(" 2 + 3 = 5.", " 2 + 3 = 6."), (" 2 + 3 = 6.", " 2 + 3 = 5.")]):
        ids = batch["input_ids"][row][batch["attention_mask"][row].bool()].tolist()
        labels = batch["labels"][row][batch["attention_mask"][row].bool()].tolist()
        phrase, other = (POSITIVE, NEGATIVE) if row == 0 else (NEGATIVE, POSITIVE)
        head = prompt_ids(processor, prompt_with_answer_start(processor, question, phrase), image)
        pieces = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in (first, "\n", other, second + end)]
        assert ids == head + pieces[0] + pieces[1] + pieces[2] + pieces[3]
        masked = len(head), len(pieces[1]) + len(pieces[2])
        assert labels == [-100] * masked[0] + pieces[0] + [-100] * masked[1] + pieces[3]
    assert (batch["labels"][~batch["attention_mask"].bool()] == -100).all()  # padding


def test_coh_scores_both_answers_after_the_positive_phrase():
    from vlm_dpo.training.methods.coh import after_positive

    scored = after_positive(pairs(vision=False), POSITIVE)
    assert scored[0]["chosen"] == [{"role": "assistant", "content": "A helpful answer: 2 + 3 = 5."}]
    assert scored[0]["rejected"] == [{"role": "assistant", "content": "A helpful answer: 2 + 3 = 6."}]
    assert scored[0]["prompt"] == pairs(vision=False)[0]["prompt"]


def test_coh_generation_options_come_from_the_run_config():
    from vlm_dpo.models.run_record import RunRecord

    def generation_options(config):
        return RunRecord.from_config({"model_name_or_path": "m", **config}, "run").tuned_generation

    coh = {"method": "coh", "coh_positive": POSITIVE, "coh_negative": NEGATIVE}
    assert generation_options(coh) == {"answer_prefix": POSITIVE, "stop_at": "An unhelpful answer"}
    assert generation_options({**coh, "method": "dpo"}) == {}
    assert generation_options({"model_name_or_path": "an older run"}) == {}


# --------------------------------------------------------------------------- SFT data


def sft_args(tmp_path):
    return train.parse([*TINY, "--output_dir", str(tmp_path), "--method", "sft", "--eval_strategy", "no"])[1]


def test_sft_labels_mask_the_prompt_token_by_token_vision(tmp_path, tiny_processor):
    """TRL's collator of the SFT trainer as the sft method builds it: image and prompt tokens -100, then exactly the
    chosen answer and the end-of-turn tokens."""
    from vlm_dpo.models import load_model
    from vlm_dpo.training.methods.sft import chosen_rows, sft_trainer

    data = pairs(vision=True)
    rows = chosen_rows(data)
    assert rows.column_names == ["images", "prompt", "completion"]
    trainer = sft_trainer(sft_args(tmp_path), load_model("tiny-smolvlm", "float32"), tiny_processor, rows, None)
    batch = trainer.data_collator([rows[0], rows[1]])
    for row, (question, answer) in enumerate([("What is 2 + 3?", "2 + 3 = 5."),
                                              ("Describe the image.", "There is a red circle.")]):
        real = batch["attention_mask"][row].bool()
        ids, labels = batch["input_ids"][row][real].tolist(), batch["labels"][row][real].tolist()
        prompt = render(tiny_processor, question)
        head = prompt_ids(tiny_processor, prompt, data[row]["images"][0])
        answer_ids = tiny_processor.tokenizer(completion(prompt, render(tiny_processor, question, answer)),
                                              add_special_tokens=False)["input_ids"]
        assert tiny_processor.tokenizer.decode(answer_ids) == f" {answer}<end_of_utterance>\n"
        assert ids == head + answer_ids
        assert labels == [-100] * len(head) + answer_ids


def test_sft_labels_mask_the_prompt_token_by_token_text(tmp_path, tiny_text_tokenizer):
    from vlm_dpo.models import load_model
    from vlm_dpo.training.methods.sft import chosen_rows, sft_trainer

    rows = chosen_rows(pairs(vision=False))
    trainer = sft_trainer(sft_args(tmp_path), load_model("tiny-smollm2", "float32", vision=False), tiny_text_tokenizer,
                          rows, None)
    for row, (question, answer) in enumerate([("What is 2 + 3?", "2 + 3 = 5."),
                                              ("Describe the image.", "There is a red circle.")]):
        tokenized = trainer.train_dataset[row]
        prompt = render(tiny_text_tokenizer, question)
        head = prompt_ids(tiny_text_tokenizer, prompt)
        answer_ids = tiny_text_tokenizer(completion(prompt, render(tiny_text_tokenizer, question, answer)),
                                         add_special_tokens=False)["input_ids"]
        assert tiny_text_tokenizer.decode(answer_ids) == f"{answer}<|im_end|>\n"
        assert tokenized["input_ids"] == head + answer_ids
        assert tokenized["labels"] == [-100] * len(head) + answer_ids


# --------------------------------------------------------------------------- CoH at generation


def test_generation_prompt_ends_with_the_phrase_where_the_template_puts_an_answer(tiny_processor, tiny_text_tokenizer):
    from vlm_dpo.eval.generate import prompt_with_answer_start

    assert prompt_with_answer_start(tiny_processor, "Q?", POSITIVE) == (
        "<|im_start|>User:<image>Q?<end_of_utterance>\nAssistant: A helpful answer:")
    assert prompt_with_answer_start(tiny_text_tokenizer, "Q?", POSITIVE).endswith(
        "<|im_start|>user\nQ?<|im_end|>\n<|im_start|>assistant\nA helpful answer:")
    assert prompt_with_answer_start(tiny_text_tokenizer, "Q?") == render(tiny_text_tokenizer, "Q?")


def test_the_answer_is_cut_before_the_negative_phrase(tiny_text_tokenizer):
    """A stand-in model that always continues with a helpful and an unhelpful answer: the first one comes back."""
    from vlm_dpo.eval.generate import generate_answers

    continuation = tiny_text_tokenizer(" The cat is red.\nAn unhelpful answer: The cat is blue.",
                                       add_special_tokens=False)["input_ids"]

    class Continues:
        device = torch.device("cpu")
        prompts = []

        def generate(self, input_ids, **kwargs):
            self.prompts += tiny_text_tokenizer.batch_decode(input_ids, skip_special_tokens=False)
            return torch.cat([input_ids, torch.tensor([continuation] * len(input_ids))], dim=1)

    model = Continues()
    options = {"answer_prefix": POSITIVE, "stop_at": "An unhelpful answer"}
    assert generate_answers(model, tiny_text_tokenizer, None, ["Q1?", "Q2?"], **options) == ["The cat is red."] * 2
    assert all(prompt.endswith("<|im_start|>assistant\nA helpful answer:") for prompt in model.prompts)
    assert generate_answers(model, tiny_text_tokenizer, None, ["Q1?"]) == [
        "The cat is red.\nAn unhelpful answer: The cat is blue."]
