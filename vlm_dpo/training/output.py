"""The output folder's final files, written all or nothing.

Everything a run leaves (adapter, processor, run_config.yaml, eval_results.json, log_history.json, plots, report)
is first written into a staging folder inside OUTPUT_DIR, then moved over the previous files by renames, which do
not need space. A save that fails (a full disk, most often, after the whole training) removes the staging folder
and leaves OUTPUT_DIR as it was; a full disk is reported in one line with the space that was needed.

    with staged(output_dir, expected_bytes=weights_bytes(model)) as stage:
        model.save_pretrained(stage)
"""

import contextlib
import errno
import logging
import os
import re
import shutil
from pathlib import Path

from data_prep.pids import process_alive
from vlm_dpo.errors import UserError

FULL = (errno.ENOSPC, errno.EDQUOT)
LOCK = ".vlm-dpo.lock"  # the PID of the run writing the folder
LEFTOVER = re.compile(r"^\.(staging-(?P<pid>\d+)|.+\.old-(?P<old>\d+))$")  # what a killed run leaves behind

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def single_writer(output_dir: Path):
    """Hold ``output_dir``'s lock while a run writes it: a second run is refused in one line; the lock of a process
    that no longer exists (killed) is taken over, with a log line, and what it left half-written is removed. A
    folder made for the lock alone (the run failed before writing) is removed again."""
    created = not output_dir.exists()
    output_dir.mkdir(parents=True, exist_ok=True)
    lock = output_dir / LOCK
    for _ in range(2):
        try:
            descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            text = lock.read_text().strip() if lock.is_file() else ""
            owner = int(text) if text.isdigit() else None
            if owner is not None and owner != os.getpid() and process_alive(owner):
                raise UserError(f"{output_dir} is being written by another training run (process {owner}): wait "
                                "for it to finish, or pass another --output_dir.") from None
            logger.warning("%s was locked by process %s, which is gone: taking the folder over.", output_dir, owner)
            lock.unlink(missing_ok=True)
    else:
        raise UserError(f"could not lock {output_dir}: another run took it at the same moment; try again.")
    with os.fdopen(descriptor, "w") as handle:
        handle.write(f"{os.getpid()}\n")
    remove_leftovers(output_dir)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
        if created and not any(output_dir.iterdir()):
            output_dir.rmdir()


def remove_leftovers(output_dir: Path) -> None:
    """Staging and set-aside folders of runs that were killed before they could remove them."""
    for entry in output_dir.iterdir():
        match = LEFTOVER.match(entry.name)
        if match and not process_alive(int(match["pid"] or match["old"])):
            logger.info("Removing %s, left by a run that was killed.", entry)
            remove(entry)


@contextlib.contextmanager
def staged(output_dir: Path, expected_bytes: int = 0, drop: tuple[str, ...] = ()):
    """A fresh staging folder; on success its entries replace those of ``output_dir`` and the entries named in
    ``drop`` go (they would describe the previous run), on any failure it is removed and ``output_dir`` is untouched."""
    output_dir.mkdir(parents=True, exist_ok=True)
    stage = output_dir / f".staging-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    try:
        stage.mkdir()
        yield stage
    except BaseException as error:
        written = folder_bytes(stage)
        shutil.rmtree(stage, ignore_errors=True)
        if disk_full(error, output_dir, max(expected_bytes, written)):
            raise UserError(
                f"No space left on the disk of {output_dir}: the run's final files need about "
                f"{megabytes(max(expected_bytes, written))} and {megabytes(shutil.disk_usage(output_dir).free)} "
                f"are free. Nothing in {output_dir} was replaced; free some space or pass another --output_dir, "
                "then train again."
            ) from error
        raise
    publish(stage, output_dir, drop)


def publish(stage: Path, output_dir: Path, drop: tuple[str, ...] = ()) -> None:
    """Move every entry of ``stage`` into ``output_dir`` by renames: files replace files; a folder is swapped in
    (the old one renamed aside first, then deleted)."""
    for name in drop:
        if not (stage / name).exists():
            remove(output_dir / name)
    for entry in sorted(stage.iterdir()):
        target = output_dir / entry.name
        if entry.is_dir() and target.exists():
            aside = target.with_name(f".{target.name}.old-{os.getpid()}")
            target.rename(aside)
            entry.rename(target)
            remove(aside)
        else:
            os.replace(entry, target)
    stage.rmdir()


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def disk_full(error: BaseException, folder: Path, needed: int) -> bool:
    """True for a write that failed for want of space: an OSError ENOSPC/EDQUOT anywhere in the chain, a library
    error quoting the system's message (safetensors does), or torch's archive writer failing while less than
    ``needed`` is free (its message names no cause)."""
    while error is not None:
        text = str(error)
        if isinstance(error, OSError) and error.errno in FULL or "No space left on device" in text:
            return True
        if isinstance(error, RuntimeError) and "file write failed" in text:
            return shutil.disk_usage(folder).free < needed
        error = error.__cause__ or error.__context__
    return False


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def weights_bytes(model) -> int:
    """Bytes of the weights ``save_pretrained`` writes: the trained ones for a PEFT adapter, else all."""
    from accelerate.utils import is_peft_model

    params = [p for p in model.parameters() if p.requires_grad or not is_peft_model(model)]
    return sum(p.numel() * p.element_size() for p in params)


def megabytes(count: int) -> str:
    return f"{count / 2**20:,.1f} MB"
