"""A training output folder as inference, the app and export read it: checked before any model loads, its record
read (``RunRecord``), the tuned model loaded, and an adapter that does not fit its base reported as such.

    model, processor, record = load_tuned("outputs/tiny")    # a PeftModel in eval mode; the base is the adapter off

A folder copied half-way, a file edited by hand or an adapter put on another base would otherwise fail deep in
yaml, json, safetensors or PEFT, minutes later and without naming the file; here each names the file and the fix.
"""

import contextlib
import json
from pathlib import Path

import yaml

from vlm_dpo.errors import AdapterError
from vlm_dpo.models.load import load_model_and_processor, load_processor
from vlm_dpo.models.run_record import RunRecord

REQUIRED = ("adapter_config.json", "adapter_model.safetensors", "run_config.yaml")
RETRAIN = "Train again (it writes this file), or copy the whole output folder again."


def check_adapter_folder(folder: str | Path) -> RunRecord:
    """The run's record (from ``run_config.yaml``) after checking that the folder's three files are whole; else an
    ``AdapterError`` naming the file. Reads the safetensors header only, not the weights."""
    from safetensors import safe_open

    folder = Path(folder)
    if not folder.is_dir():
        raise AdapterError(f"{folder} is not a folder: pass --adapter the output_dir of a finished training run.")
    missing = [name for name in REQUIRED if not (folder / name).is_file()]
    if missing:
        raise AdapterError(f"{folder} is not a training output folder: it has no {' and no '.join(missing)}. "
                           "Pass --adapter the output_dir of a finished training run.")
    path = folder / "run_config.yaml"
    try:
        config = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise AdapterError(f"{path} is not valid YAML ({one_line(error)}). {RETRAIN}") from None
    if not isinstance(config, dict) or not config.get("model_name_or_path"):
        raise AdapterError(f"{path} does not name the base model (model_name_or_path). {RETRAIN}")
    path = folder / "adapter_config.json"
    try:
        adapter_config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise AdapterError(f"{path} is not valid JSON ({error}). {RETRAIN}") from None
    if not isinstance(adapter_config, dict) or "peft_type" not in adapter_config:
        raise AdapterError(f"{path} is not a PEFT adapter config (no peft_type). {RETRAIN}")
    path = folder / "adapter_model.safetensors"
    try:
        with safe_open(str(path), "pt") as handle:
            handle.keys()
    except Exception as error:  # safetensors raises its own SafetensorError, or OSError, for a damaged file
        raise AdapterError(f"{path} is damaged ({one_line(error)}). {RETRAIN}") from None
    return RunRecord.from_config(config, folder)


def load_tuned(adapter_dir: str | Path, model: str | None = None):
    """Load base model + LoRA adapter in eval mode; returns ``(peft_model, processor, record)``.

    The base is ``model`` when given (e.g. a local copy of the hub checkpoint), else the one the run
    was trained on. The processor saved with the adapter wins over the base's, because training may
    have changed it (e.g. a smaller ``longest_edge``).
    """
    import torch
    from peft import PeftModel

    record = check_adapter_folder(adapter_dir)  # a wrong folder fails here, before any model loads
    base_name = model or record.model_name_or_path
    base, processor = load_model_and_processor(base_name)
    folder = Path(adapter_dir)
    if any((folder / name).is_file() for name in ("processor_config.json", "tokenizer_config.json")):
        processor = load_processor(str(folder))
    with adapter_fits(folder, base_name):
        tuned = PeftModel.from_pretrained(base, str(folder))
    if torch.cuda.is_available():
        tuned.to("cuda")
    tuned.eval()
    return tuned, processor, record


@contextlib.contextmanager
def adapter_fits(folder: str | Path, base: str):
    """Turn PEFT's errors for an adapter trained on another base (no target module found, tensors of another size)
    into an ``AdapterError`` naming both, around the code that puts the adapter on ``base``."""
    from peft.utils.error import PeftError

    try:
        yield
    except (PeftError, RuntimeError) as error:
        if isinstance(error, PeftError):  # e.g. NoMatchingPeftModuleError: its target modules are not there
            detail = "none of the layers it adapts exist in that model"
        elif "size mismatch" in str(error):
            detail = next(line.strip() for line in str(error).splitlines() if "size mismatch" in line)
        else:
            raise
        raise AdapterError(
            f"The adapter in {folder} does not fit the base model {base}, so it was trained on another model "
            f"({detail}). Pass --model_name_or_path the base it was trained on, or correct model_name_or_path in "
            f"{Path(folder) / 'run_config.yaml'}."
        ) from None


def one_line(error: Exception) -> str:
    return " ".join(str(error).split())
