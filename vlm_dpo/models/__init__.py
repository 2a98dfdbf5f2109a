"""Models: one door to load a base model and its processor (hub id, local folder or built-in name), LoRA settings,
the built-in offline models (``registry``: ``tiny``, ``smollm2``, ``demo``), a training run's record
(``run_record``) and the checks and loading of a trained adapter folder (``adapter``)."""

from data_prep.processors import PLAIN_CHAT_TEMPLATE, is_vision_processor
from vlm_dpo.models.load import (
    VLM_LORA_TARGETS,
    load_model,
    load_model_and_processor,
    load_processor,
    lora_config,
    quantization_config,
)

__all__ = ["PLAIN_CHAT_TEMPLATE", "VLM_LORA_TARGETS", "is_vision_processor", "load_model", "load_model_and_processor",
           "load_processor", "lora_config", "quantization_config"]
