"""infer.py in both modes on the tiny model, with adapters built here (no training needed).

A zero-step LoRA adapter has B = 0, so the tuned model must answer exactly like the base; an
adapter with perturbed B must change at least one answer. That checks both the adapter on/off
switch and that the adapter is really loaded.
"""

import json
import re

import pytest
import yaml
from PIL import Image

import infer


def make_adapter(folder, perturb: bool):
    import torch
    from peft import LoraConfig, get_peft_model

    from vlm_dpo.models import VLM_LORA_TARGETS, load_model_and_processor

    model, processor = load_model_and_processor("tiny-smolvlm")
    model = get_peft_model(model, LoraConfig(r=4, target_modules=VLM_LORA_TARGETS))
    if perturb:
        torch.manual_seed(0)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.normal_(std=1.0)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    (folder / "run_config.yaml").write_text(yaml.safe_dump({"model_name_or_path": "tiny-smolvlm", "beta": 0.1}))
    return folder


@pytest.fixture(scope="module")
def zero_adapter(tmp_path_factory, tiny_model_dir):
    return make_adapter(tmp_path_factory.mktemp("zero_adapter"), perturb=False)


@pytest.fixture(scope="module")
def tuned_adapter(tmp_path_factory, tiny_model_dir):
    return make_adapter(tmp_path_factory.mktemp("tuned_adapter"), perturb=True)


@pytest.fixture(scope="module")
def image_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    paths = []
    for i, (color, size, mode) in enumerate([("red", (40, 30), "RGB"), ("blue", (64, 64), "RGBA"), (128, (20, 50), "L")]):
        path = folder / f"img{i}.png"
        Image.new(mode, size, color).save(path)
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    from datasets import Dataset, DatasetDict

    def pairs(n, offset, blocks):
        colors = ["red", "green", "blue", "yellow", "white"]
        rows = {"images": [], "prompt": [], "chosen": [], "rejected": [], "source_index": [], "ground_truth": []}
        for i in range(n):
            color = colors[(i + offset) % len(colors)]
            rows["images"].append([Image.new("RGB", (48, 32), color)])
            question = "What color is it? <b>&"
            if blocks:  # the layout of data sets from elsewhere (e.g. rlaif-v_formatted)
                question = [{"type": "image", "text": None}, {"type": "text", "text": question}]
            rows["prompt"].append([{"role": "user", "content": question}])
            rows["chosen"].append([{"role": "assistant", "content": f"It is {color}."}])
            rows["rejected"].append([{"role": "assistant", "content": "It is black."}])
            rows["source_index"].append(i + offset)
            # the test split has scenes (ground truth), the train split has none (the COCO proxy applies)
            scene = {"objects": [{"shape": "circle", "color": color, "bbox": [1, 1, 9, 9]}]}
            rows["ground_truth"].append(json.dumps(scene) if offset else "")
        return Dataset.from_dict(rows)

    folder = tmp_path_factory.mktemp("prepared")
    DatasetDict(train=pairs(2, 0, blocks=False), test=pairs(3, 2, blocks=True)).save_to_disk(folder)
    return str(folder)


def test_message_text_layouts():
    from data_prep.chat import message_text

    assert message_text("plain prompt ") == "plain prompt"
    assert message_text([{"role": "user", "content": " Why? "}]) == "Why?"
    blocks = [{"type": "image", "text": None}, {"type": "text", "text": "What is it?"}]
    assert message_text([{"role": "user", "content": blocks}]) == "What is it?"


def run_json(capsys, argv) -> list[dict]:
    capsys.readouterr()
    assert infer.main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_image_mode_zero_adapter_matches_base(capsys, zero_adapter, image_files):
    argv = ["--adapter", str(zero_adapter), "--question", "What is shown?", "--json", "--max_new_tokens", "6"]
    for path in image_files:
        argv += ["--image", path]
    results = run_json(capsys, argv)
    assert [r["image"] for r in results] == image_files
    for result in results:
        assert set(result) == {"image", "question", "base", "tuned"}
        assert result["question"] == "What is shown?"
        assert result["base"] == result["tuned"]


def test_image_mode_trained_adapter_changes_answers(capsys, tuned_adapter, image_files):
    argv = ["--adapter", str(tuned_adapter), "--question", "What is shown?", "--json", "--max_new_tokens", "6"]
    for path in image_files:
        argv += ["--image", path]
    results = run_json(capsys, argv)
    assert any(r["base"] != r["tuned"] for r in results)


def test_image_mode_text_output(capsys, zero_adapter, image_files):
    assert infer.main(["--adapter", str(zero_adapter), "--image", image_files[0], "--question", "Hi?",
                       "--max_new_tokens", "3"]) == 0
    out = capsys.readouterr().out
    assert image_files[0] in out and "base :" in out and "tuned:" in out


@pytest.mark.parametrize("content", [None, b"not an image"])
def test_bad_image_is_a_clear_error(capsys, tmp_path, zero_adapter, content):
    path = tmp_path / "photo.jpg"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SystemExit) as exit_info:
        infer.main(["--adapter", str(zero_adapter), "--image", str(path), "--question", "Hi?"])
    assert exit_info.value.code == 2
    assert str(path) in capsys.readouterr().err


def test_folder_without_adapter_is_a_clear_error(capsys, tmp_path, image_files):
    with pytest.raises(SystemExit) as exit_info:
        infer.main(["--adapter", str(tmp_path), "--image", image_files[0], "--question", "Hi?"])
    assert exit_info.value.code == 2
    assert "adapter_config.json" in capsys.readouterr().err


def test_prompt_on_a_vision_run_is_a_clear_error(capsys, zero_adapter):
    with pytest.raises(SystemExit) as exit_info:
        infer.main(["--adapter", str(zero_adapter), "--prompt", "Hi?"])
    assert exit_info.value.code == 2
    assert "vision-language run: ask with --image" in capsys.readouterr().err


def test_dataset_mode_writes_metrics_and_report(capsys, tmp_path, tuned_adapter, dataset_dir):
    from vlm_dpo.eval.registry import BY_KEY, METRIC_KEYS, PROBES

    out = tmp_path / "report"
    assert infer.main(["--adapter", str(tuned_adapter), "--dataset", dataset_dir, "--report", str(out),
                       "--max_new_tokens", "4", "--batch_size", "2"]) == 0
    printed = capsys.readouterr().out
    assert "win_rate" in printed and "rewards_accuracies" in printed and str(out / "report.html") in printed

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 3 and metrics["split"] == "test" and metrics["beta"] == 0.1
    assert metrics["n_ground_truth"] == 3 and metrics["n_proxy"] == 0 and metrics["n_external"] == 3
    for name in METRIC_KEYS:
        # every row has a scene (no proxy); "What color is it?" is not a scene question (no attribute accuracy);
        # 4 new tokens of a random model may mention nothing (no mention rate); no generator question (no probes)
        if (name.startswith("proxy_") or name in ("attribute_accuracy", "hallucination_mention_rate")
                or BY_KEY[name].group == PROBES):
            continue
        for model in ("base", "tuned"):
            assert isinstance(metrics[f"{model}_{name}"], float), name
        assert metrics[f"delta_{name}"] == pytest.approx(metrics[f"tuned_{name}"] - metrics[f"base_{name}"])
    assert metrics["base_rewards_accuracies"] == 0.0 and metrics["base_rewards_margins"] == 0.0  # base = reference
    assert metrics["tuned_logps_chosen"] != metrics["base_logps_chosen"]  # the perturbed adapter is used
    for png in ("margins.png", "token_logps.png"):
        assert (out / png).stat().st_size > 1000

    page = (out / "report.html").read_text()
    assert page.count('class="card"') == 3
    assert page.count("data:image/png;base64,") == 3 + 2  # pair images + plots
    assert "What color is it? &lt;b&gt;&amp;" in page and "<b>&" not in page  # escaped
    assert not re.search(r"""(src|href)\s*=\s*["']?https?://""", page)
    assert "http://" not in page and "https://" not in page


def test_dataset_mode_zero_step_adapter_gives_equal_metrics(capsys, tmp_path, zero_adapter, dataset_dir):
    """Tuned equals base (LoRA B = 0): every base metric equals its tuned twin, every delta is 0, no reward."""
    from datasets import DatasetDict, load_from_disk

    from vlm_dpo.eval.registry import METRIC_KEYS

    only_train = tmp_path / "only_train"
    DatasetDict(train=load_from_disk(dataset_dir)["train"]).save_to_disk(only_train)  # RLHF-V ships only train
    out = tmp_path / "report"
    assert infer.main(["--adapter", str(zero_adapter), "--dataset", str(only_train), "--report", str(out),
                       "--max_new_tokens", "3"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 2 and metrics["split"] == "train" and metrics["n_proxy"] == 2
    assert metrics["base_hallucination_rate"] is None and metrics["base_proxy_hallucination_rate"] is not None
    for name in METRIC_KEYS:
        assert metrics[f"base_{name}"] == metrics[f"tuned_{name}"], name
        assert metrics[f"delta_{name}"] in (0.0, None), name
    assert metrics["tuned_rewards_accuracies"] == 0.0 and metrics["tuned_rewards_margins"] == 0.0
    assert metrics["n_improved"] == metrics["n_regressed"] == 0
    assert (out / "report.html").read_text().count('class="card"') == 2


def test_dataset_mode_limit(capsys, tmp_path, zero_adapter, dataset_dir):
    out = tmp_path / "report"
    assert infer.main(["--adapter", str(zero_adapter), "--dataset", dataset_dir, "--report", str(out),
                       "--limit", "1", "--max_new_tokens", "2", "--do_sample", "--seed", "3"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 1 and metrics["do_sample"] is True and metrics["seed"] == 3
    assert (out / "report.html").read_text().count('class="card"') == 1


def test_generate_answers_text_only_model():
    """Text-only models pass a tokenizer and no images through the same function."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from vlm_dpo.eval.generate import generate_answers
    from vlm_dpo.models.tiny import build_tokenizer

    tokenizer = build_tokenizer()
    tokenizer.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                               "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    config = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=1, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    model = get_peft_model(LlamaForCausalLM(config), LoraConfig(r=2, target_modules="all-linear")).eval()
    questions = ["What is it?", "a b"]
    base = generate_answers(model, tokenizer, None, questions, max_new_tokens=3, use_adapter=False)
    assert base == generate_answers(model, tokenizer, None, questions, max_new_tokens=3)
    assert len(base) == 2 and all(isinstance(answer, str) for answer in base)
