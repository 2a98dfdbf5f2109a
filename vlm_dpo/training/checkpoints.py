"""Which checkpoint to resume from: ``--resume_from_checkpoint PATH`` or ``true`` (the newest complete one).

transformers writes a checkpoint in place (weights, optimizer, scheduler, RNG states, then
``trainer_state.json`` last), so a run killed while saving leaves a folder that looks like the newest
checkpoint but cannot be resumed. ``true`` therefore means the newest *complete* checkpoint in
``output_dir``; skipped folders are logged with the reason. ``transformers.trainer_utils.get_last_checkpoint``
would pick the half-written one.

    python train.py --config recipes/tiny.yaml --save_steps 10 --resume_from_checkpoint true
"""

import json
import logging
import re
import zipfile
from pathlib import Path

from data_prep.options import PrepareOptions
from vlm_dpo.errors import UserError

logger = logging.getLogger(__name__)

CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
IDENTITY = "run_identity.json"  # what makes a run this run: written when it starts, checked when it resumes
IDENTITY_FIELDS = ("model_name_or_path", "method", "loss_type", "loss_weights", "beta", "ddpo_gamma", "use_peft",
                   "lora_r", "lora_alpha", "lora_target_modules", "lora_modules_to_save", "use_rslora", "use_dora",
                   "dataset_train_split", "dataset_test_split", "eval_limit")
TRUE = {"true", "yes", "1", "latest", "last"}


def incomplete_reason(folder: Path) -> str | None:
    """Why ``folder`` cannot be resumed from, or None when it is complete.

    Checks that ``trainer_state.json`` (written last) exists and parses, that the weights exist, and
    that every safetensors file's header matches its size and every ``.pt``/``.pth``/``.bin`` zip
    archive has its central directory (both are lost when a write is cut short).
    """
    from safetensors import safe_open

    state = folder / "trainer_state.json"
    if not state.is_file():
        return "no trainer_state.json (the save was interrupted)"
    try:
        json.loads(state.read_text())
    except (ValueError, OSError) as error:
        return f"trainer_state.json does not parse ({error})"
    weights = [folder / name for name in ("adapter_model.safetensors", "model.safetensors", "pytorch_model.bin")]
    if not any(path.is_file() for path in weights) and not any(folder.glob("*.safetensors.index.json")):
        return "no model or adapter weights"
    for path in sorted(folder.iterdir()):
        try:
            if path.suffix == ".safetensors":
                with safe_open(str(path), framework="pt") as handle:
                    handle.keys()
            elif path.suffix in (".pt", ".pth", ".bin"):
                with zipfile.ZipFile(path) as archive:
                    archive.namelist()
        except Exception as error:  # truncated or corrupt: safetensors and zipfile raise various types
            return f"{path.name} is unreadable ({type(error).__name__}: {str(error)[:120]})"
    return None


def checkpoints_newest_first(output_dir: Path) -> list[Path]:
    if not output_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in output_dir.iterdir() if p.is_dir() and (m := CHECKPOINT.match(p.name))]
    return [path for _, path in sorted(found, reverse=True)]


def resolve_resume(value: str | bool | None, output_dir: str | Path) -> str | None:
    """``None``/``false`` -> None; ``true`` -> the newest complete checkpoint in ``output_dir``; a path -> checked."""
    if value is None or value is False or (isinstance(value, str) and value.lower() in {"", "false", "no", "0"}):
        return None
    output_dir = Path(output_dir)
    if value is True or str(value).lower() in TRUE:
        candidates = checkpoints_newest_first(output_dir)
        for folder in candidates:
            reason = incomplete_reason(folder)
            if reason is None:
                logger.warning("Resuming from %s, the newest complete checkpoint in %s", folder, output_dir)
                return str(folder)
            logger.warning("Skipping %s: %s", folder, reason)
        raise FileNotFoundError(
            f"--resume_from_checkpoint true: no complete checkpoint-N folder in {output_dir} "
            f"({len(candidates)} found, none complete). Train with --save_steps N first, pass a checkpoint folder, "
            "or drop --resume_from_checkpoint to start from scratch."
        )
    folder = Path(value)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"--resume_from_checkpoint {value}: no such folder. Pass a checkpoint-N folder, or true for the newest."
        )
    reason = incomplete_reason(folder)
    if reason is not None:
        raise FileNotFoundError(
            f"--resume_from_checkpoint {value} is not a complete checkpoint: {reason}. Pass an earlier checkpoint, "
            "or true for the newest complete one."
        )
    return str(folder)


def run_identity(data_args, training_args, model_args, preparation: dict | None = None) -> dict:
    """The settings a resumed run must share with the run that saved the checkpoint: the model and its LoRA shape,
    the method and loss, the splits, the data options and, once prepared, the data (its input, options and
    counts). Without ``preparation`` it is what can be checked before any data work."""
    values = {name: getattr(config, name) for config in (data_args, training_args, model_args)
              for name in IDENTITY_FIELDS if hasattr(config, name)}
    values["data_options"] = PrepareOptions.of(data_args).record()
    if preparation is not None:
        values["data"] = preparation
    return json.loads(json.dumps(values, default=str))


def check_same_run(output_dir: Path, identity: dict, resume: str | None, saves_checkpoints: bool) -> None:
    """A fresh run that saves checkpoints records ``identity`` in ``output_dir``; a resumed one must match it, else a
    ``UserError`` names what differs (another beta, data or LoRA rank would silently make a different run, or fail
    deep in PEFT)."""
    path = Path(output_dir) / IDENTITY
    if resume is None:
        if saves_checkpoints:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(identity, indent=2) + "\n")
        return
    if not path.is_file():
        logger.warning("%s has no %s (saved by an older version): cannot check that the resumed run is the same run.",
                       output_dir, IDENTITY)
        return
    found = json.loads(path.read_text())
    changed = [describe_change(key, found.get(key), value) for key, value in identity.items()
               if found.get(key) != value]
    if changed:
        raise UserError(f"--resume_from_checkpoint {resume} belongs to another run: {', '.join(changed)} changed. "
                        "Resume with the settings it was started with, or train into another --output_dir.")


def describe_change(key: str, before, after) -> str:
    if key == "data":
        return "the prepared data (its input, options or counts)"
    if key == "data_options":
        return ", ".join(f"{name} {before.get(name)!r} -> {value!r}" for name, value in after.items()
                         if (before or {}).get(name) != value) or "the data options"
    return f"{key} {before!r} -> {after!r}"
