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

logger = logging.getLogger(__name__)

CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
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
