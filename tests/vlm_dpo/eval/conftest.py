"""A tiny SmolVLM with a LoRA adapter that really changes its outputs, shared by the log-prob and report tests."""

import pytest
import torch


@pytest.fixture(scope="module")
def tiny_peft(tiny_model_dir):
    from peft import LoraConfig, get_peft_model

    from vlm_dpo.models import VLM_LORA_TARGETS, load_model_and_processor

    model, processor = load_model_and_processor("tiny-smolvlm")
    model = get_peft_model(model, LoraConfig(r=4, target_modules=VLM_LORA_TARGETS))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.5)
    return model.eval(), processor
