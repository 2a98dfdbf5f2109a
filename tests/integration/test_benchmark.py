"""``vlm-dpo eval`` end to end on the tiny model: the offline scenes benchmark, POPE from files in its published
format, resume after an interruption, --limit, and the one-line errors for missing files."""

import json

import pytest
from PIL import Image

import infer
from vlm_dpo import benchmark, cli
from vlm_dpo.eval.benchmarks import pope


@pytest.fixture(scope="module")
def adapter(tmp_path_factory, tiny_model_dir):
    from tests.integration.test_infer import make_adapter

    return make_adapter(tmp_path_factory.mktemp("bench_adapter"), perturb=True)


def read(folder):
    return json.loads((folder / "benchmark.json").read_text())


def test_scenes_benchmark_scores_base_and_tuned_on_every_split(adapter, tmp_path, capsys):
    out = tmp_path / "scenes"
    assert infer.main(["--adapter", str(adapter), "--benchmark", "scenes", "--scenes", "6", "--output_dir", str(out),
                       "--batch_size", "4", "--max_new_tokens", "4"]) == 0
    summary = read(out)
    assert summary["n_questions"] == summary["n_asked"] == 6 * 7 and set(summary["results"]) == {"base", "tuned"}
    for role in ("base", "tuned"):
        metrics = summary["results"][role]
        for split in ("random", "popular", "adversarial"):
            assert metrics[f"{split}_n"] == 12 and 0 <= metrics[f"{split}_yes_ratio"] <= 1
        assert metrics["counts_n"] == 6
        answers = [json.loads(line) for line in (out / f"answers_{role}.jsonl").read_text().splitlines()]
        assert len(answers) == 42 and len({a["id"] for a in answers}) == 42
    assert "random_accuracy" in capsys.readouterr().out
    assert "random_accuracy" in (out / "benchmark.html").read_text()


def test_an_interrupted_run_resumes_without_asking_again(adapter, tmp_path, monkeypatch):
    argv = ["eval", "--benchmark", "scenes", "--adapter", str(adapter), "--scenes", "4", "--batch_size", "1",
            "--max_new_tokens", "4"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert cli.main([*argv, "--output_dir", str(whole)]) == 0
    (cut / "scenes_data").mkdir(parents=True)
    for item in (whole / "scenes_data").rglob("*"):  # the same questions, as a second run would build them
        target = cut / "scenes_data" / item.relative_to(whole / "scenes_data")
        target.parent.mkdir(parents=True, exist_ok=True)
        if item.is_file():
            target.write_bytes(item.read_bytes())
    lines = (whole / "answers_base.jsonl").read_text().splitlines()
    (cut / "answers_base.jsonl").write_text("\n".join(lines[:10]) + "\n" + lines[10][:7])  # killed mid-line
    asked = []
    real = benchmark.generate_answers
    monkeypatch.setattr(benchmark, "generate_answers", lambda *a, **k: asked.append(len(a[3])) or real(*a, **k))
    assert cli.main([*argv, "--output_dir", str(cut)]) == 0
    assert sum(asked) == (len(lines) - 10) + len(lines)  # base: the rest only; tuned: all of them
    assert read(cut)["results"] == read(whole)["results"]


def write_pope(folder, n_images=3):
    """A POPE question file and its images, in the published layout."""
    (folder / "val2014").mkdir(parents=True)
    rows = []
    for i in range(n_images):
        name = f"COCO_val2014_{i:012d}.jpg"
        Image.new("RGB", (40, 30), ["red", "green", "blue"][i % 3]).save(folder / "val2014" / name)
        rows += [{"question_id": 2 * i + 1, "image": name, "text": "Is there a dog in the image?", "label": "yes"},
                 {"question_id": 2 * i + 2, "image": name, "text": "Is there a cat in the image?", "label": "no"}]
    path = folder / "coco_pope_adversarial.json"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_pope_from_its_files_scores_as_the_reference(adapter, tmp_path):
    questions_file = write_pope(tmp_path)
    out = tmp_path / "out"
    assert cli.main(["eval", "--benchmark", "pope", "--adapter", str(adapter), "--question_file", str(questions_file),
                     "--image_folder", str(tmp_path / "val2014"), "--output_dir", str(out), "--limit", "4",
                     "--max_new_tokens", "3"]) == 0
    summary = read(out)
    assert summary["n_questions"] == 4  # --limit: the first 4 of the split
    questions = pope.load_questions([questions_file], tmp_path / "val2014")[:4]
    for role in ("base", "tuned"):
        answers = {row["id"]: row["answer"] for row in map(json.loads, (out / f"answers_{role}.jsonl").open())}
        assert summary["results"][role] == pope.score(questions, answers)


def test_missing_images_are_counted_not_asked(adapter, tmp_path):
    questions_file = write_pope(tmp_path)
    (tmp_path / "val2014" / "COCO_val2014_000000000001.jpg").unlink()
    out = tmp_path / "out"
    cli.main(["eval", "--benchmark", "pope", "--model_name_or_path", "tiny-smolvlm", "--question_file",
              str(questions_file), "--image_folder", str(tmp_path / "val2014"), "--output_dir", str(out),
              "--max_new_tokens", "2"])
    summary = read(out)
    assert summary["skipped"] == {"image_missing": 2} and summary["n_asked"] == 4
    assert summary["results"]["model"]["adversarial_n_missing"] == 2


@pytest.mark.parametrize("case, text", [
    (["--benchmark", "pope", "--question_file", "nowhere.json", "--image_folder", "."], "nowhere.json"),
    (["--benchmark", "chair", "--annotation_file", "instances_val2014.json", "--image_folder", "."],
     "instances_val2014.json"),
    (["--benchmark", "amber", "--data_dir", "AMBER/data", "--image_folder", "."], "AMBER/data"),
    (["--benchmark", "pope", "--image_folder", "."], "needs --question_file"),
    (["--benchmark", "mme"], "choose one of pope, chair, amber, scenes"),
])
def test_missing_files_are_one_line_errors(case, text, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["eval", *case, "--model_name_or_path", "tiny-smolvlm", "--output_dir", str(tmp_path / "out")])
    error = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and error.startswith("error:") and text in error and "\n" not in error
