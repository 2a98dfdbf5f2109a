"""Text-only models through the same commands: text data layouts, the tiny text recipe, infer.py, exact answers."""

import json
import time
from pathlib import Path

import pytest

import train

ROOT = Path(__file__).resolve().parents[2]

HUMAN_LIKE = [  # HumanLLMs/Human-Like-DPO-Dataset: plain strings
    {"prompt": "Oh, I just saw the best meme - have you seen it?", "chosen": "Ha! Which one? Tell me!",
     "rejected": "I am an AI and cannot see memes."},
    {"prompt": "What is your favourite food?", "chosen": "Pizza, no contest. You?", "rejected": "I do not eat."},
    {"prompt": "Any plans for the weekend?", "chosen": "Hiking, if the sun holds up!", "rejected": "I have no plans."},
    {"prompt": "Same answers", "chosen": "Identical.", "rejected": "Identical."},
]


def ultrafeedback_rows():  # HuggingFaceH4/ultrafeedback_binarized: prompt string, whole conversations
    rows = []
    for i in range(4):
        prompt = f"Explain topic {i} in one sentence."
        rows.append({"prompt": prompt, "prompt_id": str(i),
                     "chosen": [{"role": "user", "content": prompt}, {"role": "assistant", "content": f"Good {i}."}],
                     "rejected": [{"role": "user", "content": prompt}, {"role": "assistant", "content": f"Bad {i}."}],
                     "score_chosen": 8.0, "score_rejected": 3.0})
    return rows


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


# --------------------------------------------------------------------------- data_prep


@pytest.mark.parametrize("rows", [HUMAN_LIKE, ultrafeedback_rows()], ids=["strings", "messages"])
def test_text_layouts_prepare_into_conversational_text_rows(rows, tmp_path, tiny_text_tokenizer):
    from data_prep import PrepareOptions, load_prepared, prepare

    report = prepare(PrepareOptions(str(write_jsonl(tmp_path / "rows.jsonl", rows)), test_size=0.25), tmp_path / "out", model_name="tiny-smollm2", processor=tiny_text_tokenizer, max_length=256)
    assert report["layout"] == "text"
    assert report["read"] == report["kept"] + sum(report["skipped"].values())
    data = load_prepared(tmp_path / "out")
    assert "images" not in data["train"].column_names
    row = data["train"][0]
    assert row["prompt"][0]["role"] == "user" and row["chosen"] == [{"role": "assistant", "content": row["chosen"][0]
                                                                      ["content"]}]
    assert not row["chosen"][0]["content"].startswith("Explain")  # the answer, not the whole conversation
    if rows is HUMAN_LIKE:
        assert report["skipped"] == {"chosen_equals_rejected": 1}


def test_text_pairs_are_cut_to_prompt_and_completion_limits(tmp_path, tiny_text_tokenizer):
    """GPT-2-card style limits: the prompt keeps its end, answers their start, and everything fits max_length."""
    from data_prep import PrepareOptions, load_prepared, prepare
    from data_prep.budget import TokenBudget
    from data_prep.chat import render

    words = " ".join(f"w{i}" for i in range(300))
    rows = [{"prompt": f"{words} END?", "chosen": f"START good {words}", "rejected": f"START bad {words}"}] * 1
    rows += [{"prompt": f"short {i}?", "chosen": f"yes {i}", "rejected": f"no {i}"} for i in range(3)]
    prepare(PrepareOptions(str(write_jsonl(tmp_path / "rows.jsonl", rows)), max_prompt_length=96, max_completion_length=64, test_size=0.25), tmp_path / "out", model_name="tiny-smollm2", processor=tiny_text_tokenizer, max_length=160)
    data = load_prepared(tmp_path / "out")
    long = [row for split in data.values() for row in split if "END" in row["prompt"][0]["content"]]
    assert len(long) == 1
    question, chosen = long[0]["prompt"][0]["content"], long[0]["chosen"][0]["content"]
    assert question.endswith("END?") and "w0 " not in question and chosen.startswith("START good")
    budget = TokenBudget(tiny_text_tokenizer, 160)
    assert len(budget._ids(render(tiny_text_tokenizer, question))) <= 96
    assert max(budget._completion_tokens(render(tiny_text_tokenizer, question), question, chosen), 0) <= 64


def test_h4_preference_splits_are_read_as_train_and_test(tmp_path):
    import datasets

    from data_prep.sources import open_source

    rows = datasets.Dataset.from_list(ultrafeedback_rows())
    datasets.DatasetDict({"train_prefs": rows, "test_prefs": rows, "train_sft": rows}).save_to_disk(tmp_path / "h4")
    source = open_source(str(tmp_path / "h4"))
    assert source.layout == "text" and source.read_from == ["train_prefs", "test_prefs"]
    assert set(source.splits) == {"train", "test"}


def test_tokenizer_without_chat_template_gets_the_plain_layout(tmp_path, tiny_text_tokenizer):
    """GPT-2 has no chat template: the card's "User: ...\\nAssistant: ..." layout, prompt a prefix of the exchange."""
    from data_prep.chat import render
    from vlm_dpo.models import PLAIN_CHAT_TEMPLATE, load_processor

    tiny_text_tokenizer.save_pretrained(tmp_path / "gpt2-like")
    (tmp_path / "gpt2-like" / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((tmp_path / "gpt2-like" / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (tmp_path / "gpt2-like" / "tokenizer_config.json").write_text(json.dumps(config))
    tokenizer = load_processor(str(tmp_path / "gpt2-like"))
    assert tokenizer.chat_template == PLAIN_CHAT_TEMPLATE
    prompt, whole = render(tokenizer, "What is 2 + 2?"), render(tokenizer, "What is 2 + 2?", "4.")
    assert prompt == "User: What is 2 + 2?\nAssistant:"
    assert whole == f"User: What is 2 + 2?\nAssistant: 4.{tokenizer.eos_token}\n"


# --------------------------------------------------------------------------- exact answers


def test_arithmetic_rows_are_checkable():
    from data_prep.synthetic.arithmetic import TASKS, generate_rows
    from vlm_dpo.eval.checks.arithmetic import answer_correct

    rows = generate_rows(40, seed=3)
    assert len({row["prompt"] for row in rows}) == 40
    assert {json.loads(row["ground_truth"])["task"] for row in rows} == set(TASKS)
    for row in rows:
        assert answer_correct(row["chosen"], row["ground_truth"])
        assert not answer_correct(row["rejected"], row["ground_truth"])
    truth = json.dumps({"answer": "85"})
    assert answer_correct("85", truth) and answer_correct("So 37 + 48 = 85.", truth)
    assert not answer_correct("85 is close, but it is 84", truth) and not answer_correct("eighty-five", truth)


def test_exact_answers_are_scored_as_accuracy_and_hallucination():
    from vlm_dpo.eval.checks.coco import score
    from vlm_dpo.eval.scoring import attribute_correct

    truth = json.dumps({"answer": "400", "task": "conversion"})
    assert score("4 meters = 40 centimeters.", "", "", truth)["hallucinated"]
    assert not score("4 meters = 400 centimeters.", "", "", truth)["hallucinated"]
    assert attribute_correct("How many centimeters are in 4 meters?", "400", truth) is True


# --------------------------------------------------------------------------- the tiny text recipe end to end


@pytest.fixture(scope="module")
def text_run(tmp_path_factory, tiny_text_model_dir):
    out = tmp_path_factory.mktemp("text") / "run"
    trainer = train.main(["--config", str(ROOT / "recipes/tiny_text.yaml"), "--max_steps", "2", "--output_dir",
                          str(out), "--dataset_name", "arithmetic:24", "--report_pairs", "4",
                          "--report_max_new_tokens", "4"])
    return out, trainer


def test_text_run_trains_through_trls_text_path(text_run):
    from transformers import LlamaForCausalLM
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    out, trainer = text_run
    assert isinstance(trainer.data_collator, DataCollatorForPreference)
    assert isinstance(trainer.model.get_base_model(), LlamaForCausalLM)
    results = json.loads((out / "eval_results.json").read_text())
    assert results["global_step"] == 2 and results["base_rewards_margins"] == 0.0
    assert isinstance(results["tuned_rewards_accuracies"], float)
    for name in ("adapter_model.safetensors", "tokenizer.json", "chat_template.jinja", "run_config.yaml"):
        assert (out / name).exists(), name
    report = json.loads((out / "report" / "metrics.json").read_text())
    assert report["n"] == 4 and report["n_ground_truth"] == 4
    assert report["base_attribute_accuracy"] is not None  # exact-answer accuracy of the generations
    assert (out / "report" / "token_logps.png").exists()  # in-distribution vs external log-prob histogram


def test_infer_on_a_text_run(text_run, tmp_path, capsys):
    import infer

    out, _ = text_run
    infer.main(["--adapter", str(out), "--prompt", "What is 2 + 3?", "--json", "--max_new_tokens", "3"])
    answers = json.loads(capsys.readouterr().out)
    assert set(answers[0]) == {"prompt", "base", "tuned"} and answers[0]["prompt"] == "What is 2 + 3?"

    infer.main(["--adapter", str(out), "--dataset", str(out / "data"), "--report", str(tmp_path / "report"),
                "--max_new_tokens", "3", "--limit", "3"])
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["n"] == 3 and metrics["tuned_rewards_accuracies"] is not None
    assert metrics["base_mean_token_logp_external"] is not None


def test_prompt_and_image_modes_exclude_each_other(text_run):
    import infer

    with pytest.raises(SystemExit):
        infer.main(["--adapter", str(text_run[0]), "--prompt", "x", "--image", "y.png", "--question", "q"])


@pytest.mark.parametrize("recipe", ["smollm2_text.yaml", "gpt2_ultrafeedback.yaml"])
def test_hub_text_recipes_fail_fast_offline(recipe, tmp_path):
    from vlm_dpo.errors import HubUnavailableError

    start = time.monotonic()
    with pytest.raises(HubUnavailableError, match="Hub"):
        train.main(["--config", str(ROOT / "recipes" / recipe), "--output_dir", str(tmp_path)])
    assert time.monotonic() - start < 30


def test_text_token_count_matches_trls_tokenization(tmp_path, tiny_text_tokenizer):
    """data_prep counts a text pair as TRL's DPOTrainer tokenizes it (prompt, chosen, rejected ids)."""
    from datasets import Dataset
    from trl import DPOTrainer

    from data_prep.budget import TokenBudget
    from data_prep.chat import messages
    from data_prep.pairs import Pair
    from vlm_dpo.models import load_model
    from vlm_dpo.training.config import TrainConfig

    pair = Pair(None, "How many grams are in 3 kilograms?", "3 kilograms = 3000 grams.", "3 kilograms = 300 grams.", 0)
    trainer = DPOTrainer(model=load_model("tiny-smollm2", "float32", vision=False),
                         args=TrainConfig(output_dir=str(tmp_path), report_to="none"),
                         train_dataset=Dataset.from_list([messages(pair.question, pair.chosen, pair.rejected)]),
                         processing_class=tiny_text_tokenizer)
    row = trainer.train_dataset[0]
    assert TokenBudget(tiny_text_tokenizer, 256).count(pair) == (len(row["prompt_ids"]), len(row["chosen_ids"]),
                                                                   len(row["rejected_ids"]))


def test_gpt2_like_model_without_chat_template_trains_and_answers(tmp_path, tiny_text_model_dir, capsys):
    """GPT-2's shape: Conv1D layers (LoRA all-linear), no chat template, no pad token; the GPT-2 card's lengths."""
    from transformers import GPT2Config, GPT2LMHeadModel

    import infer
    from vlm_dpo.models.tiny import build_tokenizer

    tokenizer = build_tokenizer()
    tokenizer.chat_template, tokenizer.pad_token = None, None
    tokenizer.eos_token = tokenizer.bos_token = "<|endoftext|>"
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=256, n_embd=32, n_layer=2, n_head=2,
                               bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
                    ).save_pretrained(tmp_path / "gpt2")
    tokenizer.save_pretrained(tmp_path / "gpt2")
    out = tmp_path / "run"
    trainer = train.main(["--config", str(ROOT / "recipes/tiny_text.yaml"), "--model_name_or_path", str(tmp_path / "gpt2"),
                          "--output_dir", str(out), "--max_steps", "1", "--dataset_name", "arithmetic:16",
                          "--max_length", "160", "--max_prompt_length", "96", "--max_completion_length", "64",
                          "--report_pairs", "0"])
    assert any("c_attn" in name and "lora_A" in name for name, _ in trainer.model.named_parameters())
    from vlm_dpo.models import PLAIN_CHAT_TEMPLATE

    assert (out / "chat_template.jinja").read_text() == PLAIN_CHAT_TEMPLATE  # saved with the adapter
    capsys.readouterr()  # the training summary
    infer.main(["--adapter", str(out), "--prompt", "What is 2 + 2?", "--json", "--max_new_tokens", "2"])
    assert json.loads(capsys.readouterr().out)[0]["prompt"] == "What is 2 + 2?"


@pytest.mark.slow
def test_text_demo_raises_exact_answer_accuracy(tmp_path):
    """recipes/text_demo.yaml on the real SmolLM2-135M-Instruct (GGUF wheel): held-out exact-answer accuracy rises."""
    from vlm_dpo.models import smollm2

    if smollm2.find_gguf() is None:
        pytest.skip(f"needs the wheel: {smollm2.INSTALL_HINT}")
    out = tmp_path / "text-demo"
    train.main(["--config", str(ROOT / "recipes/text_demo.yaml"), "--output_dir", str(out)])
    results = json.loads((out / "eval_results.json").read_text())
    report = json.loads((out / "report" / "metrics.json").read_text())
    assert report["n"] == 40 and report["n_ground_truth"] == report["n"]
    assert results["tuned_rewards_accuracies"] >= 0.65
    assert report["tuned_attribute_accuracy"] >= report["base_attribute_accuracy"] + 0.2  # measured 0.05 -> 0.475
