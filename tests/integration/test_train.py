"""End to end on the tiny recipe: prepare, train 2 steps, reload the adapter, run both infer modes; data reused only
while it is what the settings ask for; bad values, empty data and a full disk refused in one line."""

import errno
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

import train
from vlm_dpo.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))
TINY = str(ROOT / "recipes/tiny.yaml")


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_every_recipe_parses(recipe):
    data_args, training_args, model_args = train.parse(["--config", str(recipe)])[:3]
    assert model_args.model_name_or_path and data_args.dataset_name and training_args.output_dir


def test_no_argument_means_the_demo_recipe():
    data_args, training_args, model_args = train.parse([])[:3]
    assert model_args.model_name_or_path == "demo-smolvlm" and data_args.dataset_name == "synthetic:1200"


def test_real_recipe_fails_fast_without_hub(tmp_path):
    start = time.monotonic()
    from vlm_dpo.errors import HubUnavailableError

    with pytest.raises(HubUnavailableError, match="recipes/tiny.yaml") as error:
        train.main(["--config", str(ROOT / "recipes/smolvlm_rlhfv.yaml"), "--output_dir", str(tmp_path)])
    assert "Hub" in str(error.value)
    assert time.monotonic() - start < 30


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir):
    out = tmp_path_factory.mktemp("run") / "tiny"
    trainer = train.main(["--config", str(ROOT / "recipes/tiny.yaml"), "--max_steps", "2", "--output_dir", str(out),
                          "--eval_steps", "1", "--dataset_name", "synthetic:24", "--test_size", "0.25",
                          "--report_pairs", "2", "--report_max_new_tokens", "3"])
    return out, trainer


def test_run_folder_is_self_describing(trained):
    out, _ = trained
    for name in ("adapter_config.json", "adapter_model.safetensors", "run_config.yaml", "eval_results.json",
                 "training_curves.png", "processor_config.json", "tokenizer.json"):
        assert (out / name).exists(), name
    results = json.loads((out / "eval_results.json").read_text())
    assert results["global_step"] == 2
    for prefix in ("base", "tuned"):
        for key in ("loss", "rewards_accuracies", "rewards_margins", "logps_chosen", "logps_rejected"):
            assert isinstance(results[f"{prefix}_{key}"], float)
    # The base is its own reference: its implicit rewards are zero by definition.
    assert results["base_rewards_margins"] == 0.0
    report = json.loads((out / "data" / "prep_report.json").read_text())
    assert report["read"] == 24 == report["kept"] + sum(report["skipped"].values())
    config = yaml.safe_load((out / "run_config.yaml").read_text())
    assert config["model_name_or_path"] == "tiny-smolvlm"
    # Both files say which prepared data was trained on.
    assert config["data_preparation"] == results["data_preparation"]
    assert results["data_preparation"]["folder"] == str(out / "data")
    assert results["data_preparation"]["splits"] == report["splits"] and report["splits"]["test"] == results["n_eval_pairs"]
    assert not list(out.glob(".staging*"))
    # The end-of-training report agrees with the held-out evaluation on the pairs they share.
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    assert metrics["n"] == 2 and (out / "report" / "report.html").exists()
    assert metrics["base_rewards_accuracies"] == 0.0


def test_adapter_trained_and_base_untouched(trained, tiny_model_dir):
    from peft import PeftModel
    from safetensors.torch import load_file

    from vlm_dpo.models import load_model

    out, trainer = trained
    adapter = load_file(out / "adapter_model.safetensors")
    assert adapter and all("lora_" in key for key in adapter), "only LoRA weights are saved"
    assert any("lora_B" in key and value.abs().sum() > 0 for key, value in adapter.items()), "B left at zero init"
    assert not any("vision" in key or "connector" in key for key in adapter), "the vision side must stay frozen"

    # The trained model in memory: every base weight equals the file it was loaded from.
    original = load_file(Path(tiny_model_dir) / "model.safetensors")
    trained_state = {key.replace(".base_layer", ""): value
                     for key, value in trainer.model.get_base_model().state_dict().items() if "lora_" not in key}
    assert set(original) <= set(trained_state)
    for key, value in original.items():
        assert torch.equal(trained_state[key], value), f"base weight {key} changed"

    # Reloaded through PEFT, the adapter changes the model's output; disabled, it is the base again.
    model = PeftModel.from_pretrained(load_model("tiny-smolvlm", "float32"), out).eval()
    ids = torch.tensor([[1, 20, 30, 40, 50]])
    with torch.no_grad():
        tuned = model(input_ids=ids).logits
        with model.disable_adapter():
            base = model(input_ids=ids).logits
    assert not torch.allclose(tuned, base)


def test_infer_both_modes(trained, tmp_path, capsys):
    import infer

    trained, _ = trained
    from PIL import Image

    image = tmp_path / "red.png"
    Image.new("RGB", (40, 30), "red").save(image)
    infer.main(["--adapter", str(trained), "--image", str(image), "--question", "What color is the circle?",
                "--json", "--max_new_tokens", "4"])
    answers = json.loads(capsys.readouterr().out)
    assert answers[0]["image"] == str(image) and set(answers[0]) == {"image", "question", "base", "tuned"}

    report = tmp_path / "report"
    infer.main(["--adapter", str(trained), "--dataset", str(trained / "data"), "--report", str(report),
                "--max_new_tokens", "4", "--limit", "3"])
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["n"] == 3
    assert (report / "report.html").stat().st_size > 0


def test_prepared_data_must_fit_the_training_max_length(tmp_path):
    from vlm_dpo.training.data import check_fits

    (tmp_path / "prep_report.json").write_text(json.dumps({"max_length": 1024}))
    check_fits(tmp_path, 2048)
    check_fits(tmp_path, None)
    with pytest.raises(UserError, match="--max_length 512"):
        check_fits(tmp_path, 512)
    (tmp_path / "prep_report.json").write_text(json.dumps({"max_length": None}))
    with pytest.raises(UserError, match="truncated"):
        check_fits(tmp_path, 512)


@pytest.mark.parametrize("argv, message", [
    (["--max_length", "-5"], "--max_length must be at least 1, got -5; leave it unset"),
    (["--eval_limit", "0"], "--eval_limit must be at least 1"),
    (["--report_pairs", "-1"], "--report_pairs must be 0 .no report. or more"),
    (["--test_size", "1.5"], "Option test_size=1.5 is invalid"),
    (["--loss_type", "dop"], "Unknown --loss_type"),
    (["--beta", "nan"], "--beta nan is invalid"),
    (["--beta", "inf"], "--beta inf is invalid"),
    (["--beta", "-1"], "--beta -1.0 is invalid: it must be a positive number"),
    (["--learning_rate", "nan"], "--learning_rate nan is invalid"),
    (["--learning_rate", "-0.0001"], "--learning_rate -0.0001 is invalid"),
    (["--num_train_epochs", "0"], "--num_train_epochs 0.0 is invalid: it must be positive, or set --max_steps"),
    (["--loss_type", "sigmoid", "sft", "--loss_weights", "1", "nan"], "--loss_weights .* is invalid"),
    (["--lora_r", "0"], "--lora_r 0 is invalid"),
    (["--lora_alpha", "-2"], "--lora_alpha -2 is invalid"),
    (["--lora_dropout", "1.5"], "--lora_dropout 1.5 is invalid"),
])
def test_impossible_values_fail_at_parse_time(argv, message):
    with pytest.raises(UserError, match=message):
        train.parse(["--config", TINY, *argv])


def test_a_nan_beta_in_a_recipe_fails_before_any_work(tmp_path):
    """YAML's .nan reaches the config as a float: refused at parse time, in one line, nothing written."""
    recipe = tmp_path / "nan.yaml"
    recipe.write_text(Path(TINY).read_text().replace("\nbeta: 0.1", "\nbeta: .nan"))
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "train.py", "--config", str(recipe), "--output_dir", str(out)], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].startswith("error: --beta nan is invalid")
    assert not out.exists()


def test_overrides_without_config_apply_to_the_default_recipe():
    data_args, training_args, model_args = train.parse(["--output_dir", "elsewhere", "--max_steps", "3"])[:3]
    assert model_args.model_name_or_path == "demo-smolvlm"
    assert training_args.output_dir == "elsewhere" and training_args.max_steps == 3


def test_rerun_with_other_data_settings_prepares_again_and_records_what_it_trained_on(tmp_path, tiny_model_dir,
                                                                                       caplog):
    out = tmp_path / "run"
    common = ["--config", TINY, "--max_steps", "1", "--output_dir", str(out), "--report_pairs", "0",
              "--eval_strategy", "no"]

    def prepared():
        return json.loads((out / "data" / "prep_report.json").read_text())

    train.main([*common, "--dataset_name", "synthetic:16"])  # the recipe's 0.25 held out, 64 px, seed 42
    options = prepared()["options"]
    assert (options["test_size"], options["image_longest_edge"], options["data_seed_split"]) == (0.25, 64, 42)

    settings = ["--test_size", "0.5", "--image_longest_edge", "32", "--data_seed_split", "7"]
    changed = [*common, "--dataset_name", "synthetic:16", *settings]
    with caplog.at_level(logging.INFO, logger="vlm_dpo.training.data"):
        train.main(changed)
    report = prepared()
    options = report["options"]
    assert (options["test_size"], options["image_longest_edge"], options["data_seed_split"]) == (0.5, 32, 7)
    for change in ("image_longest_edge 64 -> 32", "test_size 0.25 -> 0.5", "data_seed_split 42 -> 7"):
        assert change in caplog.text
    config = yaml.safe_load((out / "run_config.yaml").read_text())
    results = json.loads((out / "eval_results.json").read_text())
    assert (config["test_size"], config["image_longest_edge"], config["data_seed_split"]) == (0.5, 32, 7)
    used = config["data_preparation"]
    assert used["options"] == options and results["data_preparation"] == used
    splits = used["splits"]
    assert results["n_eval_pairs"] == splits["test"] and results["n_train_pairs"] == splits["train"]

    stamp = (out / "data" / "prep_report.json").stat().st_mtime_ns
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="vlm_dpo.training.data"):
        train.main(changed)  # the same settings: the same data
    assert "Reusing" in caplog.text and (out / "data" / "prep_report.json").stat().st_mtime_ns == stamp

    train.main([*common, "--dataset_name", "synthetic:20", *settings])  # another source
    assert prepared()["input"] == "synthetic:20" and prepared()["read"] == 20


@pytest.mark.parametrize("empty", ["train", "test"])
def test_an_empty_split_is_refused_before_the_model_loads(empty, tmp_path, monkeypatch, tiny_model_dir):
    import datasets

    import vlm_dpo.training.run
    from data_prep.chat import messages

    pairs = datasets.Dataset.from_list([messages("Describe it.", "A red circle.", "A blue square.")])
    data = tmp_path / "data"
    splits = {"train": pairs, "test": pairs, empty: pairs.select([])}
    datasets.DatasetDict(splits).save_to_disk(str(data), num_shards={empty: 1})
    (data / "prep_report.json").write_text(json.dumps({"input": "rows.jsonl", "max_length": 512}))

    def must_not_load(*args, **kwargs):
        raise AssertionError("the model must not load for empty data")

    monkeypatch.setattr(vlm_dpo.training.run, "load_model", must_not_load)
    role, fix = ("training", "use more pairs") if empty == "train" else ("held-out", "raise --test_size")
    with pytest.raises(UserError, match=f"The {role} split '{empty}' of {data} is empty: {fix}"):
        train.main(["--config", TINY, "--dataset_name", str(data), "--output_dir", str(tmp_path / "out")])


def test_a_full_disk_at_the_end_leaves_the_previous_output_intact(tmp_path, tiny_model_dir, monkeypatch):
    import peft.peft_model

    out = tmp_path / "run"
    out.mkdir()
    previous = {"adapter_model.safetensors": b"previous weights", "run_config.yaml": b"model_name_or_path: x\n",
                "eval_results.json": b"{}"}
    for name, data in previous.items():
        (out / name).write_bytes(data)

    def full_disk(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"\0" * 64)  # the first bytes made it
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(peft.peft_model, "safe_save_file", full_disk)
    with pytest.raises(UserError, match=f"No space left on the disk of {out}: the run's final files need about "):
        train.main(["--config", TINY, "--max_steps", "1", "--output_dir", str(out), "--report_pairs", "0",
                    "--eval_strategy", "no", "--dataset_name", "synthetic:16"])
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == previous
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["data"]  # no staging folder left


def test_bf16_on_the_cpu_only_where_it_is_native(monkeypatch, tmp_path):
    from vlm_dpo.training import config

    if torch.cuda.is_available():
        pytest.skip("CPU behaviour")
    assert not config.TrainConfig(output_dir=str(tmp_path)).bf16  # unset: float32 on the CPU
    monkeypatch.setattr(config, "cpu_has_native_bf16", lambda: False)
    assert not config.TrainConfig(output_dir=str(tmp_path), bf16=True).bf16  # asked for, emulated: refused
    monkeypatch.setattr(config, "cpu_has_native_bf16", lambda: True)
    assert config.TrainConfig(output_dir=str(tmp_path), bf16=True).bf16  # AMX: autocast
