"""Models: one door to load a base model and its processor (hub id, local folder or built-in name), LoRA settings,
the built-in offline models (``registry``: ``tiny``, ``smollm2``, ``demo``, and ``demo_stages``, which trains the
demo's shipped vision weights) and the checks of a trained adapter folder (``adapter``)."""

from data_prep.errors import HubUnavailableError
from data_prep.hub import check_dataset_reachable
from vlm_dpo.models.load import (
    PLAIN_CHAT_TEMPLATE,
    VLM_LORA_TARGETS,
    GPURequiredError,
    is_vision_processor,
    load_model,
    load_model_and_processor,
    load_processor,
    lora_config,
    pick_dtype,
    quantization_config,
    resolve_model_path,
)

__all__ = ["PLAIN_CHAT_TEMPLATE", "VLM_LORA_TARGETS", "GPURequiredError", "HubUnavailableError",
           "check_dataset_reachable", "is_vision_processor", "load_model", "load_model_and_processor", "load_processor",
           "lora_config", "pick_dtype", "quantization_config", "resolve_model_path"]
