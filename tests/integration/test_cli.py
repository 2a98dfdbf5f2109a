"""Bad input through the real commands (subprocesses): a non-zero exit, one line that names the culprit, no traceback.

The adapters are built here with PEFT (a zero-step LoRA, the files training writes) rather than trained: what the
commands read is the folder, and a subprocess already pays for python + torch. ``VLM_DPO_CACHE`` (set by the
``model_cache`` fixture) is inherited, so the tiny models are built once per session, not once per case.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vlm_dpo import cli

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "recipes" / "tiny.yaml")


def make_run(folder: Path, model: str, vision: bool) -> Path:
    """A training output folder as train.py writes it: LoRA adapter, processor or tokenizer, run_config.yaml."""
    from peft import LoraConfig, get_peft_model

    from vlm_dpo.models import VLM_LORA_TARGETS, load_model_and_processor

    model_, processor = load_model_and_processor(model)
    get_peft_model(model_, LoraConfig(r=2, target_modules=VLM_LORA_TARGETS if vision else "all-linear")
                   ).save_pretrained(folder)
    processor.save_pretrained(folder)
    run_config = {"model_name_or_path": model, "beta": 0.1, "image_longest_edge": 64}
    (folder / "run_config.yaml").write_text(yaml.safe_dump(run_config))
    return folder


@pytest.fixture(scope="module")
def vision_run(tmp_path_factory, tiny_model_dir):
    return make_run(tmp_path_factory.mktemp("vision_run"), "tiny-smolvlm", vision=True)


@pytest.fixture(scope="module")
def text_run(tmp_path_factory, tiny_text_model_dir):
    return make_run(tmp_path_factory.mktemp("text_run"), "tiny-smollm2", vision=False)


def copy_run(run: Path, folder: Path, damage: str | None = None, model: str | None = None) -> Path:
    """A copy of ``run`` with one file garbled (its start kept, then bytes no parser accepts) or another base."""
    folder.mkdir()
    for path in run.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    if damage:
        (folder / damage).write_bytes((run / damage).read_bytes()[:40] + b"\n{[: garbled")
    if model:
        config = yaml.safe_load((folder / "run_config.yaml").read_text())
        (folder / "run_config.yaml").write_text(yaml.safe_dump({**config, "model_name_or_path": model}))
    return folder


def bad_inputs(tmp: Path, vision_run: Path, text_run: Path) -> dict:
    """case -> (command line, text the error line must contain)."""
    from PIL import Image

    (tmp / "empty.jsonl").write_text("")
    (tmp / "bad.jsonl").write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": "a", "chosen"\n')
    (tmp / "a_file").write_text("not a folder")
    (tmp / "bad.yaml").write_text("model_name_or_path: [tiny-smolvlm\n")
    # 1-bit pixels keep the file small; 14000^2 is over twice Pillow's limit, where a warning becomes an error
    Image.new("1", (14000, 14000)).save(tmp / "bomb.png")
    (tmp / "raw").mkdir()
    (tmp / "raw" / "pairs.jsonl").write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n')
    prepare = [sys.executable, "-m", "data_prep", "--model", "tiny-smolvlm", "--max_length", "0"]
    train = [sys.executable, "train.py", "--config", TINY, "--output_dir", str(tmp / "out")]
    infer = [sys.executable, "infer.py"]
    return {
        "empty jsonl": ([*prepare, "--input", str(tmp / "empty.jsonl"), "--output", str(tmp / "p1")], "empty.jsonl"),
        "malformed jsonl": ([*prepare, "--input", str(tmp / "bad.jsonl"), "--output", str(tmp / "p2")],
                            "bad.jsonl, line 2"),
        "output is a file": ([*prepare, "--input", "synthetic:4", "--output", str(tmp / "a_file")],
                             f"{tmp / 'a_file'} is a file"),
        "output not writable": ([*prepare, "--input", "synthetic:4", "--output", str(unwritable(tmp) / "p3")],
                                str(unwritable(tmp) / "p3")),
        "yaml syntax error": ([sys.executable, "train.py", "--config", str(tmp / "bad.yaml")], "bad.yaml"),
        "unknown loss_type": ([*train, "--loss_type", "sigmod"], "loss_type"),
        "unknown flag": ([*train, "--no_such_flag", "3"], "--no_such_flag"),
        "decompression bomb": ([*infer, "--adapter", str(vision_run), "--image", str(tmp / "bomb.png"),
                                "--question", "What is it?"], "bomb.png"),
        "adapter of another model": ([*infer, "--adapter", str(copy_run(text_run, tmp / "other", model="tiny-smolvlm")),
                                      "--prompt", "Hi?"], "does not fit the base model tiny-smolvlm"),
        "garbled adapter weights": ([*infer, "--adapter", str(copy_run(text_run, tmp / "g1", "adapter_model.safetensors")),
                                     "--prompt", "Hi?"], "g1/adapter_model.safetensors is damaged"),
        "garbled adapter config": ([*infer, "--adapter", str(copy_run(text_run, tmp / "g2", "adapter_config.json")),
                                    "--prompt", "Hi?"], "g2/adapter_config.json is not valid JSON"),
        "garbled run config": ([*infer, "--adapter", str(copy_run(text_run, tmp / "g3", "run_config.yaml")),
                                "--prompt", "Hi?"], "g3/run_config.yaml is not valid YAML"),
        # a base that cannot load offline: the data set's error proves that it came before any model loaded
        "unprepared data set": ([*infer, "--adapter", str(copy_run(vision_run, tmp / "g4", model="nobody/no-model")),
                                 "--dataset", str(tmp / "raw"), "--report", str(tmp / "report")],
                                f"--dataset {tmp / 'raw'} is not a prepared data set"),
    }


def unwritable(tmp: Path) -> Path:
    """A folder this user cannot write to: read-only by mode, or (as root, whom modes do not stop) under a file."""
    if os.geteuid() == 0:
        return tmp / "a_file"
    folder = tmp / "read_only"
    folder.mkdir(exist_ok=True)
    folder.chmod(0o555)
    return folder


CASES = ["empty jsonl", "malformed jsonl", "output is a file", "output not writable", "yaml syntax error",
         "unknown loss_type", "unknown flag", "decompression bomb", "adapter of another model",
         "garbled adapter weights", "garbled adapter config", "garbled run config", "unprepared data set"]


@pytest.fixture(scope="module")
def cases(tmp_path_factory, vision_run, text_run):
    return bad_inputs(tmp_path_factory.mktemp("bad"), vision_run, text_run)


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_naming_the_culprit(case, cases):
    argv, culprit = cases[case]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and culprit in errors[0], done.stderr


def test_cases_table_is_complete(cases):
    assert sorted(cases) == sorted(CASES)


def test_top_level_help_lists_every_command():
    done = subprocess.run([sys.executable, "-m", "vlm_dpo.cli", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0 and all(command in done.stdout for command in cli.COMMANDS)


@pytest.mark.parametrize("command, options", [
    ("prepare", ["--dataset_name", "--input", "--output_dir", "--output", "--model_name_or_path", "--model",
                 "--image_longest_edge", "--longest_edge", "--processor_longest_edge", "--image_root"]),
    ("train", ["--config", "--dataset_name", "--model_name_or_path", "--output_dir", "--loss_type"]),
    ("infer", ["--adapter", "--image", "--question", "--prompt", "--json", "--dataset", "--report", "--app",
               "--port", "--host", "--model"]),
    ("export", ["--adapter", "--output_dir", "--output", "--dtype", "--model"]),
    ("build-model", ["tiny-smolvlm", "demo-smolvlm", "--output_dir"]),
    ("build-demo-stage1", ["--steps", "--resume", "--checkpoint_every", "--output", "--vision_steps"]),
    ("eval", ["--benchmark", "--adapter", "--question_file", "--image_folder", "--annotation_file", "--data_dir",
              "--limit", "--output_dir"]),
    ("app", ["--adapter", "--port", "--host", "--max_new_tokens"]),
])
def test_command_help(command, options, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert all(option in text for option in options), [option for option in options if option not in text]


def test_old_spellings_are_aliases():
    from data_prep.cli import make_parser, parse
    from data_prep.command import parse_prepare
    from data_prep.errors import UserError
    from vlm_dpo.inference import InferArguments

    (args,) = parse_prepare(["--input", "in.jsonl", "--output", "out", "--model", "m", "--longest_edge", "99",
                             "--seed", "3"], "prepare")
    assert (args.dataset_name, args.output_dir, args.model_name_or_path) == ("in.jsonl", "out", "m")
    assert args.image_longest_edge == 99 and args.data_seed_split == 3
    with pytest.raises(UserError, match="--dataset_name is required"):  # no quiet default for the data
        parse_prepare(["--output", "out"], "prepare")
    (args,) = parse(make_parser(InferArguments, "infer", ""), [
        "--adapter", "run", "--dataset", "data", "--report", "rep", "--split", "train", "--model", "base"])
    assert (args.dataset_name, args.output_dir, args.dataset_test_split) == ("data", "rep", "train")
    assert args.model_name_or_path == "base"
    (args,) = parse(make_parser(InferArguments, "infer", ""), [
        "--adapter", "run", "--image", "a.png", "--image", "b.png", "--question", "Q?"])
    assert args.image == ["a.png", "b.png"]


def test_debug_shows_the_error_itself(tmp_path):
    from data_prep.errors import UserError

    (tmp_path / "empty.jsonl").write_text("")
    argv = ["prepare", "--input", str(tmp_path / "empty.jsonl"), "--output", str(tmp_path / "out"), "--max_length", "0"]
    with pytest.raises(SystemExit):
        cli.main(argv)
    with pytest.raises(UserError, match="empty"):  # raised, so Python prints its traceback
        cli.main([*argv, "--debug"])


def test_infer_app_passes_the_run_to_the_app(vision_run, monkeypatch):
    from vlm_dpo import app, inference

    calls = []
    monkeypatch.setattr(app, "run", lambda args: calls.append(args) or 0)
    assert inference.app is app
    assert cli.main(["infer", "--adapter", str(vision_run), "--app", "--port", "7999", "--max_new_tokens", "4"]) == 0
    assert calls == [app.AppArguments(adapter=str(vision_run), port=7999, host="127.0.0.1", max_new_tokens=4)]


def test_app_without_gradio_is_a_user_error(vision_run, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)  # as if gradio were not installed
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["app", "--adapter", str(vision_run)])
    assert exit_info.value.code == 2 and "pip install gradio" in capsys.readouterr().err


def test_bitsandbytes_cpu_kernel_notice_is_dropped(caplog):
    import logging

    cli.quiet_libraries()
    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    logger.warning("Failed to load CPU gemm_4bit_forward from kernels-community: %s.", "No module named 'kernels'")
    logger.warning("another bitsandbytes warning")
    assert [record.getMessage() for record in caplog.records] == ["another bitsandbytes warning"]


def test_build_model_prints_the_folder(tmp_path, capsys, tiny_text_model_dir):
    assert cli.main(["build-model", "tiny-smollm2", "--output_dir", str(tmp_path / "m")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["model_type"] == "llama"


def test_package_metadata_names_every_requirement():
    """pyproject.toml lists what requirements.txt pins (core or extra), so `pip install .` misses nothing."""
    import re
    import tomllib

    def name(requirement: str) -> str:
        return re.split(r"[<>=!~;\[ ]", requirement.strip(), maxsplit=1)[0].lower()

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {name(r) for r in project["dependencies"]}
    declared |= {name(r) for extra in project["optional-dependencies"].values() for r in extra}
    pinned = {name(line) for line in (ROOT / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.lstrip().startswith("#")}
    assert pinned <= declared, sorted(pinned - declared)
    assert project["scripts"]["vlm-dpo"] == "vlm_dpo.cli:main"
