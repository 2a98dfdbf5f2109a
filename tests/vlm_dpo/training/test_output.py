"""All-or-nothing writes: the run's output folder (vlm_dpo.training.output) and the built-model cache
(vlm_dpo.models.cache). A failed save leaves the previous state; a full disk is one line naming the folder."""

import errno
import shutil
from pathlib import Path

import pytest

from vlm_dpo.errors import UserError
from vlm_dpo.training.output import staged


@pytest.fixture
def previous_run(tmp_path):
    """An output folder as a previous run left it."""
    out = tmp_path / "out"
    (out / "report").mkdir(parents=True)
    (out / "report" / "report.html").write_text("old report")
    (out / "run_config.yaml").write_text("old config")
    (out / "adapter_model.safetensors").write_bytes(b"old weights")
    (out / "checkpoint-3").mkdir()
    return out


def contents(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_successful_save_replaces_the_previous_files_and_drops_what_described_them(previous_run):
    with staged(previous_run, drop=("report",)) as stage:
        (stage / "run_config.yaml").write_text("new config")
        (stage / "eval_results.json").write_text("{}")
    assert contents(previous_run) == {"adapter_model.safetensors": b"old weights", "eval_results.json": b"{}",
                                      "run_config.yaml": b"new config"}
    assert (previous_run / "checkpoint-3").is_dir()  # not the save's business

    with staged(previous_run) as stage:  # a folder is swapped in whole
        (stage / "report").mkdir()
        (stage / "report" / "metrics.json").write_text("new")
    assert contents(previous_run / "report") == {"metrics.json": b"new"}
    assert sorted(p.name for p in previous_run.iterdir() if p.name.startswith(".")) == []


def test_a_full_disk_leaves_the_previous_run_and_says_how_much_was_needed(previous_run, monkeypatch):
    before = contents(previous_run)
    original = Path.write_text

    def full_disk(path, text, *args, **kwargs):
        if path.name == "eval_results.json":
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(path, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(UserError) as error, staged(previous_run, expected_bytes=3 * 2**20, drop=("report",)) as stage:
        (stage / "adapter_model.safetensors").write_bytes(b"new weights")
        (stage / "eval_results.json").write_text("{}")
    message = str(error.value)
    assert f"No space left on the disk of {previous_run}" in message and "about 3.0 MB" in message
    assert "\n" not in message
    assert contents(previous_run) == before
    assert not [p for p in previous_run.iterdir() if p.name.startswith(".staging")]


def test_torchs_silent_write_failure_counts_as_full_only_when_space_is_short(previous_run, monkeypatch):
    failure = RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed")
    usage = shutil.disk_usage(previous_run)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=2**20))
    with pytest.raises(UserError, match="need about 8.0 MB and 1.0 MB are free"), staged(previous_run, 8 * 2**20):
        raise failure
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=2**40))
    # Space enough: some other fault, kept as it is.
    with pytest.raises(RuntimeError, match="inline_container"), staged(previous_run, 8 * 2**20):
        raise failure
    with pytest.raises(KeyError), staged(previous_run) as stage:
        (stage / "run_config.yaml").write_text("half")
        raise KeyError("a bug")
    assert (previous_run / "run_config.yaml").read_text() == "old config"
    assert not [p for p in previous_run.iterdir() if p.name.startswith(".staging")]


class Part:
    def __init__(self, fail: bool = False):
        self.fail = fail

    def save_pretrained(self, folder):
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "weights.bin").write_bytes(b"half")
        if self.fail:
            raise OSError(errno.ENOSPC, "No space left on device")


def test_model_cache_build_leaves_no_temporary_folder_on_any_failure(tmp_path):
    from vlm_dpo.models.cache import save_atomically

    folder = tmp_path / "tiny-model"
    with pytest.raises(OSError):
        save_atomically(folder, Part(), Part(fail=True))
    assert not folder.exists() and not list(tmp_path.glob("tiny-model.tmp*"))

    assert save_atomically(folder, Part()) == folder and (folder / "weights.bin").is_file()
    assert save_atomically(folder, Part()) == folder  # another build won the race: its copy is kept
    assert not list(tmp_path.glob("tiny-model.tmp*"))
