"""Load a base model and its processor from a hub id, a local folder or a built-in name.

One door for every caller (data_prep, training, inference), so a name means the same thing
everywhere: a built-in name (``tiny-smolvlm``, ``demo-smolvlm``, ... see ``vlm_dpo.models.registry``) is built
locally once, a folder is read as is, and anything else is a hub id, checked up front so that a machine without
the hub fails in seconds with a message that names the offline recipe.
"""

import os

from data_prep.processors import folder_or_hub_id, is_vision_processor, load_processor_from
from vlm_dpo.errors import GPURequiredError
from vlm_dpo.models.registry import BUILT_IN, ensure_built_in, is_built_in

# The language model's linear layers in SmolVLM (Idefics3): the vision tower and connector stay frozen.
VLM_LORA_TARGETS = r".*text_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


def resolve_model_path(name: str) -> str:
    """Return a local folder or a hub id that ``from_pretrained`` can load, or fail fast.

    Built-in models are built by the main process first: under ``accelerate launch`` transformers'
    ``save_pretrained`` writes weights on global rank 0 only, so another rank's build would be empty.
    """
    from accelerate import PartialState

    with PartialState().main_process_first():
        return _resolve_model_path(name)


def _resolve_model_path(name: str) -> str:
    if is_built_in(name):
        return str(ensure_built_in(name))
    return folder_or_hub_id(name, f", nor a built-in model ({', '.join(BUILT_IN)})")


def load_processor(name: str):
    """The processor (VLM) or tokenizer (text model) of ``name``."""
    return load_processor_from(resolve_model_path(name))


def pick_dtype(requested: str | None = "auto"):
    """bf16 on CUDA, float32 on CPU, unless the recipe names a dtype."""
    import torch

    if requested and requested != "auto":
        return getattr(torch, requested)
    return torch.bfloat16 if torch.cuda.is_available() else torch.float32


def load_model(name: str, dtype: str | None = "auto", attn_implementation: str | None = None, vision: bool = True,
               quantization=None):
    """Load the base model: ``AutoModelForImageTextToText`` for VLMs, ``AutoModelForCausalLM`` otherwise.

    ``quantization``: a ``BitsAndBytesConfig`` (see ``quantization_config``); the quantised base goes to
    this process's GPU, as QLoRA under ``accelerate launch`` needs.
    """
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    path = resolve_model_path(name)
    auto = AutoModelForImageTextToText if vision else AutoModelForCausalLM
    kwargs = {"dtype": pick_dtype(dtype)}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if quantization is not None:
        from accelerate import PartialState

        kwargs.update(quantization_config=quantization, device_map={"": PartialState().local_process_index})
    return auto.from_pretrained(path, **kwargs)


def quantization_config(model_args):
    """QLoRA: ``load_in_4bit: true`` -> 4-bit NF4 (bitsandbytes), bf16 compute, as TRL's ``get_quantization_config``.

    Called before anything loads: bitsandbytes' 4-bit training needs CUDA, so without a GPU this fails
    at once with the option to change, instead of after minutes of loading.
    """
    if not (model_args.load_in_4bit or model_args.load_in_8bit):
        return None
    import torch

    option = "load_in_4bit" if model_args.load_in_4bit else "load_in_8bit"
    if not torch.cuda.is_available():
        raise GPURequiredError(
            f"{option}: true (QLoRA) quantises the base with bitsandbytes, which needs a CUDA GPU, and none is "
            f"visible. Set `{option}: false` in the recipe (or pass --{option} false) to train LoRA on the "
            "unquantised model, or run on a machine with a CUDA GPU."
        )
    from transformers import BitsAndBytesConfig

    if model_args.load_in_8bit:
        return BitsAndBytesConfig(load_in_8bit=True)
    # TRL uses model_args.dtype as compute dtype; its default (float32) would make 4-bit pointless, so bf16
    # unless float16 is asked for (GPUs without bf16).
    compute = torch.float16 if model_args.dtype == "float16" else torch.bfloat16
    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type=model_args.bnb_4bit_quant_type, bnb_4bit_compute_dtype=compute,
        bnb_4bit_use_double_quant=model_args.use_bnb_nested_quant,
        bnb_4bit_quant_storage=model_args.bnb_4bit_quant_storage,
    )


def load_model_and_processor(name: str, dtype: str | None = "auto", attn_implementation: str | None = None):
    processor = load_processor(name)
    model = load_model(name, dtype, attn_implementation, vision=is_vision_processor(processor))
    return model, processor


def lora_config(model_args, vision: bool):
    """PEFT LoRA config from TRL's ``ModelConfig`` fields; default targets are the language model's linears."""
    from peft import LoraConfig

    targets = model_args.lora_target_modules or (VLM_LORA_TARGETS if vision else "all-linear")
    if isinstance(targets, list) and len(targets) == 1:
        targets = targets[0]  # a single YAML entry may be a regex or "all-linear"
    return LoraConfig(
        r=model_args.lora_r, lora_alpha=model_args.lora_alpha, lora_dropout=model_args.lora_dropout,
        target_modules=targets, modules_to_save=model_args.lora_modules_to_save, task_type="CAUSAL_LM",
        use_rslora=model_args.use_rslora, use_dora=model_args.use_dora,
    )


def cpu_has_native_bf16() -> bool:
    """True where bf16 matmuls run on native units (Intel AMX); elsewhere CPU bf16 is emulated and slower.

    ``VLM_DPO_FP32=1`` says no, to compare with float32.
    """
    import torch

    if os.environ.get("VLM_DPO_FP32") == "1":
        return False
    try:
        with open("/proc/cpuinfo") as handle:
            return "amx_bf16" in handle.read() and torch.backends.mkldnn.is_available()
    except OSError:
        return False
