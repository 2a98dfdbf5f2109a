"""Merge a trained LoRA adapter into its base and save a plain transformers model + processor.

    python -m vlm_dpo.export --adapter outputs/tiny --output outputs/tiny-merged [--dtype bfloat16]

The result needs neither PEFT nor this package:
``AutoModelForImageTextToText.from_pretrained(MERGED)`` (``AutoModelForCausalLM`` for a text model) and
``AutoProcessor.from_pretrained(MERGED)``. The base is loaded unquantised even when training used
``load_in_4bit`` (QLoRA), because merging into 4-bit weights would round the update away; the merge is
done in float32 and the merged weights are cast to ``--dtype`` afterwards.
"""

import argparse
import sys
from pathlib import Path

DTYPES = ("auto", "float32", "bfloat16", "float16")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m vlm_dpo.export", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--adapter", required=True, help="training output folder (adapter + run_config.yaml)")
    parser.add_argument("--output", required=True, help="folder to write the merged model and processor to")
    parser.add_argument("--dtype", choices=DTYPES, default="auto",
                        help="dtype of the saved weights; auto: the run's dtype when it names one, else float32")
    parser.add_argument("--model", default=None,
                        help="base model to merge into (default: the run's model_name_or_path), e.g. a local copy")
    return parser.parse_args(argv)


def export(adapter: str | Path, output: str | Path, dtype: str = "auto", model: str | None = None) -> Path:
    """Merge ``adapter`` into its base (``merge_and_unload``) and save model + processor into ``output``."""
    import torch
    from peft import PeftModel

    from vlm_dpo.eval.generate import read_run_config
    from vlm_dpo.models import is_vision_processor, load_model, load_processor

    run_config = read_run_config(adapter)
    if dtype == "auto":
        dtype = run_config.get("dtype") if run_config.get("dtype") in DTYPES[1:] else "float32"
    processor = load_processor(str(adapter))  # the processor saved with the run (training may have changed it)
    base = load_model(model or run_config["model_name_or_path"], "float32", vision=is_vision_processor(processor))
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    merged = merged.to(getattr(torch, dtype))
    output = Path(output)
    merged.save_pretrained(output)
    processor.save_pretrained(output)
    return output


def main(argv=None) -> int:
    args = parse_args(argv)
    output = export(args.adapter, args.output, args.dtype, args.model)
    print(f"Merged {args.adapter} into its base: {output}/ (plain transformers: AutoModelForImageTextToText, "
          "or AutoModelForCausalLM for a text model, and AutoProcessor)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except FileNotFoundError as error:
        raise SystemExit(f"error: {error}") from None
