"""Where locally built models live, and how they get there without ever leaving a half-written folder."""

import os
import shutil
from pathlib import Path


def default_cache_dir() -> Path:
    """Where built offline models live: $VLM_DPO_CACHE, else ~/.cache/vlm_dpo."""
    return Path(os.environ.get("VLM_DPO_CACHE", Path.home() / ".cache" / "vlm_dpo"))


def save_atomically(folder: Path, *parts) -> Path:
    """``save_pretrained`` each part (model, processor, tokenizer) into ``folder``, all or nothing.

    They are written to a sibling folder first and renamed at the end, so an interrupted build is
    never taken for a model; when two processes build at once, the first rename wins. Whatever fails
    (a full disk, a part that cannot save), the sibling folder goes with it.
    """
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    try:
        for part in parts:
            part.save_pretrained(tmp)
        folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            tmp.rename(folder)
        except OSError:  # another process won the race; keep its copy
            if not (folder.is_dir() and any(folder.iterdir())):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
