"""Training output folders as inference and export read them: whole files, and an adapter that fits its base."""

import json

import pytest
import yaml

from vlm_dpo.errors import AdapterError
from vlm_dpo.models.adapter import adapter_fits, check_adapter_folder


def llama(width: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(hidden_size=width, intermediate_size=2 * width, num_hidden_layers=1,
                                        num_attention_heads=2, num_key_value_heads=1, vocab_size=50))


@pytest.fixture
def run_folder(tmp_path):
    from peft import LoraConfig, get_peft_model

    get_peft_model(llama(16), LoraConfig(r=2, target_modules="all-linear")).save_pretrained(tmp_path)
    (tmp_path / "run_config.yaml").write_text(yaml.safe_dump({"model_name_or_path": "narrow", "beta": 0.1}))
    return tmp_path


def test_whole_folder_gives_its_run_config(run_folder):
    record = check_adapter_folder(run_folder)
    assert (record.model_name_or_path, record.beta, record.folder) == ("narrow", 0.1, run_folder)
    assert record.vision is False and record.tuned_generation == {}  # a text run that says nothing of its method


def test_missing_files_are_named(tmp_path):
    (tmp_path / "run_config.yaml").write_text("model_name_or_path: x\n")
    with pytest.raises(AdapterError, match="no adapter_config.json and no adapter_model.safetensors"):
        check_adapter_folder(tmp_path)


def test_run_config_without_base_model(run_folder):
    (run_folder / "run_config.yaml").write_text("beta: 0.1\n")
    with pytest.raises(AdapterError, match="run_config.yaml does not name the base model"):
        check_adapter_folder(run_folder)


def test_adapter_config_that_is_not_peft(run_folder):
    (run_folder / "adapter_config.json").write_text(json.dumps({"r": 2}))
    with pytest.raises(AdapterError, match="adapter_config.json is not a PEFT adapter config"):
        check_adapter_folder(run_folder)


def test_adapter_of_another_width_is_an_adapter_error(run_folder):
    from peft import PeftModel

    PeftModel.from_pretrained(llama(16), str(run_folder))  # its own base: fine
    wide = llama(32)
    with pytest.raises(AdapterError, match=r"does not fit the base model wide, .*size mismatch"), \
            adapter_fits(run_folder, "wide"):
        PeftModel.from_pretrained(wide, str(run_folder))


def test_other_errors_pass_through(run_folder):
    with pytest.raises(RuntimeError, match="out of memory"), adapter_fits(run_folder, "narrow"):
        raise RuntimeError("CUDA out of memory")
