"""Merge a trained LoRA adapter into its base and save a plain transformers model + processor.

    vlm-dpo export --adapter outputs/tiny --output_dir outputs/tiny-merged [--dtype bfloat16]

The result needs neither PEFT nor this package:
``AutoModelForImageTextToText.from_pretrained(MERGED)`` (``AutoModelForCausalLM`` for a text model) and
``AutoProcessor.from_pretrained(MERGED)``. The base is loaded unquantised even when training used
``load_in_4bit`` (QLoRA), because merging into 4-bit weights would round the update away; the merge is
done in float32 and the merged weights are cast to ``--dtype`` afterwards.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from data_prep.cli import check_writable
from vlm_dpo.models import is_vision_processor, load_model, load_processor
from vlm_dpo.models.adapter import adapter_fits, check_adapter_folder

Dtype = Literal["auto", "float32", "bfloat16", "float16"]
DTYPES = get_args(Dtype)


@dataclass
class ExportArguments:
    adapter: str = field(metadata={"help": "training output folder (adapter + run_config.yaml)"})
    output_dir: str = field(metadata={"aliases": ["--output"], "help": "folder to write the merged model to"})
    dtype: Dtype = field(default="auto", metadata={
        "help": "dtype of the saved weights; auto: the run's dtype when it names one, else float32"})
    model_name_or_path: str | None = field(default=None, metadata={
        "aliases": ["--model"],
        "help": "base model to merge into (default: the run's model_name_or_path), e.g. a local copy"})


def export(adapter: str | Path, output: str | Path, dtype: str = "auto", model: str | None = None) -> Path:
    """Merge ``adapter`` into its base (``merge_and_unload``) and save model + processor into ``output``."""
    import torch
    from peft import PeftModel

    record = check_adapter_folder(adapter)
    if dtype == "auto":
        dtype = record.dtype if record.dtype in DTYPES[1:] else "float32"
    processor = load_processor(str(adapter))  # the processor saved with the run (training may have changed it)
    base_name = model or record.model_name_or_path
    base = load_model(base_name, "float32", vision=is_vision_processor(processor))
    with adapter_fits(adapter, base_name):
        merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    merged = merged.to(getattr(torch, dtype))
    output = Path(output)
    merged.save_pretrained(output)
    processor.save_pretrained(output)
    return output


ARGUMENTS = (ExportArguments,)


def run(args: ExportArguments) -> int:
    check_writable(args.output_dir, "--output_dir")
    output = export(args.adapter, args.output_dir, args.dtype, args.model_name_or_path)
    print(f"Merged {args.adapter} into its base: {output}/ (plain transformers: AutoModelForImageTextToText, "
          "or AutoModelForCausalLM for a text model, and AutoProcessor)")
    return 0
