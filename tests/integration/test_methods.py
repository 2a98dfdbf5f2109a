"""Every training method end to end on the tiny recipes, vision and text: two steps into the output folder a DPO run
writes, the same held-out DPO metrics, sft_then_dpo's DPO stage on the fast path against the SFT model, CoH's
phrase applied by infer.py from run_config.yaml; and the method comparison, reduced (slow)."""

import json
import logging
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import train

ROOT = Path(__file__).resolve().parents[2]
RECIPES = {"vision": ROOT / "recipes/tiny.yaml", "text": ROOT / "recipes/tiny_text.yaml"}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, tiny_model_dir, tiny_text_model_dir):
    from data_prep import PrepareOptions, prepare
    from vlm_dpo.models import load_processor

    out = tmp_path_factory.mktemp("methods")
    prepare(PrepareOptions("synthetic:12", image_longest_edge=64, test_size=0.25), out / "vision", model_name="tiny-smolvlm", processor=load_processor("tiny-smolvlm"), max_length=512)
    prepare(PrepareOptions("arithmetic:12", test_size=0.25), out / "text", model_name="tiny-smollm2", processor=load_processor("tiny-smollm2"), max_length=256)
    return out


@pytest.mark.parametrize("kind", ["vision", "text"])
@pytest.mark.parametrize("method", ["sft", "sft_then_dpo", "coh"])
def test_each_method_trains_into_the_same_output_folder(method, kind, prepared, tmp_path, caplog, monkeypatch):
    from safetensors.torch import load_file

    out = tmp_path / method
    with caplog.at_level(logging.INFO, logger="vlm_dpo.training.trainers.fast_dpo"):
        train.main(["--config", str(RECIPES[kind]), "--method", method, "--max_steps", "2", "--output_dir", str(out),
                    "--dataset_name", str(prepared / kind), "--eval_strategy", "no", "--logging_steps", "1",
                    "--report_pairs", "2", "--report_max_new_tokens", "3"])

    for name in ("adapter_config.json", "adapter_model.safetensors", "run_config.yaml", "eval_results.json",
                 "log_history.json", "training_curves.png", "report/metrics.json", "report/report.html"):
        assert (out / name).is_file(), name
    assert not (out / "ref").exists() and not list(out.glob(".staging*"))  # one adapter, no frozen reference copy
    adapter = load_file(out / "adapter_model.safetensors")
    assert adapter and all("lora_" in key for key in adapter)
    assert any("lora_B" in key and value.abs().sum() > 0 for key, value in adapter.items()), "the adapter trained"
    assert yaml.safe_load((out / "run_config.yaml").read_text())["method"] == method

    results = json.loads((out / "eval_results.json").read_text())
    assert results["global_step"] == 2 and results["n_report_pairs"] == 2
    assert results["base_rewards_accuracies"] == 0.0 == results["base_rewards_margins"]  # reference: the base
    for key in ("loss", "rewards_accuracies", "rewards_margins", "logps_chosen", "logps_rejected"):
        assert math.isfinite(results[f"tuned_{key}"]), key
    assert results["tuned_rewards_chosen"] != 0.0  # the tuned adapter is judged against the base

    history = json.loads((out / "log_history.json").read_text())
    trained = [entry for entry in history if "loss" in entry]
    expected = {"sft": ["sft", "sft"], "coh": ["coh", "coh"], "sft_then_dpo": ["sft", "dpo"]}[method]
    assert [entry["stage"] for entry in trained] == expected and [entry["step"] for entry in trained] == [1, 2]
    if method == "sft_then_dpo":
        dpo = trained[1]
        # Its reference is the SFT model, not the base: at its first step the policy is the reference.
        assert dpo["rewards/chosen"] == 0.0 == dpo["rewards/rejected"] and trained[0]["loss"] > 1.0
        if kind == "vision":  # the tiny recipe asks for the fast path: the evaluator and the DPO stage take it
            assert caplog.text.count("fast_dpo: one vision pass per image") == 2

    if method == "coh":
        check_infer_applies_the_positive_phrase(out, kind, tmp_path, monkeypatch)


def check_infer_applies_the_positive_phrase(out: Path, kind: str, tmp_path: Path, monkeypatch):
    """infer.py, told nothing but the folder, prompts the tuned model with the positive phrase, never the base."""
    from PIL import Image

    import infer
    import vlm_dpo.inference

    calls = []
    generate = vlm_dpo.inference.generate_answers

    def recorded(*args, **kwargs):
        calls.append(kwargs)
        return generate(*args, **kwargs)

    monkeypatch.setattr(vlm_dpo.inference, "generate_answers", recorded)
    if kind == "vision":
        Image.new("RGB", (40, 30), "red").save(tmp_path / "red.png")
        asked = ["--image", str(tmp_path / "red.png"), "--question", "Describe the image."]
    else:
        asked = ["--prompt", "What is 2 + 3?"]
    assert infer.main(["--adapter", str(out), *asked, "--json", "--max_new_tokens", "3"]) == 0
    base, tuned = calls
    assert base["use_adapter"] is False and "answer_prefix" not in base
    assert tuned["answer_prefix"] == "A helpful answer:" and tuned["stop_at"] == "An unhelpful answer"


@pytest.mark.slow
def test_method_comparison_reduced_writes_one_table(tmp_path):
    """Both demos, every method, two steps and a few pairs: one markdown table with a row per run."""
    out = tmp_path / "compare"
    result = subprocess.run([sys.executable, "benchmarks/compare_methods.py", "--max_steps", "2", "--eval_limit", "8",
                             "--report_pairs", "4", "--output_dir", str(out)], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = (out / "comparison.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| demo") or line.startswith("| text_demo")]
    methods = [line.split(" | ")[1] for line in rows]
    assert methods == ["base", "dpo", "sft", "sft_then_dpo", "coh"] * 2
    assert "failed" not in table


def test_comparison_table_from_run_folders(tmp_path):
    """The table of benchmarks/compare_methods.py from two hand-written run folders, a scenes run and a text run."""
    from benchmarks.compare_methods import read_run, table

    def folder(name, results, report, vision):
        out = tmp_path / name
        (out / "report").mkdir(parents=True)
        (out / "eval_results.json").write_text(json.dumps(results))
        (out / "report" / "metrics.json").write_text(json.dumps(report))
        if vision:
            (out / "processor_config.json").write_text("{}")
        return out

    scenes = folder("scenes", {"global_step": 60, "train_runtime_s": 301.4, "timings_s": {"total": 420.2},
                               "base_rewards_accuracies": 0.0, "base_yes_ratio": 0.37, "tuned_yes_ratio": 0.91,
                               "tuned_rewards_accuracies": 0.846, "base_hallucination_rate": 0.483,
                               "tuned_hallucination_rate": 0.292, "base_attribute_accuracy": 0.483,
                               "tuned_attribute_accuracy": 0.546, "base_attribute_accuracy_color": 0.691,
                               "tuned_attribute_accuracy_color": 0.745, "tuned_attribute_accuracy_count": 0.617},
                    {"base_logp_accuracy": 0.5, "tuned_logp_accuracy": 0.8}, vision=True)
    text = folder("text", {"global_step": 12, "train_runtime_s": 80.0, "timings_s": {"total": 95.0},
                           "tuned_rewards_accuracies": 0.725,
                           "tuned_attribute_accuracy": 0.475, "tuned_hallucination_rate": 0.525,
                           "tuned_attribute_accuracy_other": 0.475}, {"tuned_logp_accuracy": 0.85}, vision=False)
    rows = [{"recipe": "demo", "method": "dpo", "error": None, **read_run(scenes)},
            {"recipe": "demo", "method": "coh", "error": "error: out of memory"},
            {"recipe": "demo", "method": "sft", **read_run(tmp_path / "never-ran")},
            {"recipe": "text_demo", "method": "sft", "error": None, **read_run(text)}]
    assert table(rows).splitlines() == [
        "| recipe | method | steps | reward acc. | log-prob acc. | hallucination rate | attribute acc. | color acc. | count acc. | yes-ratio | exact-answer acc. | train s | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        "| demo | base | 0 | 0.000 | 0.500 | 0.483 | 0.483 | 0.691 | – | 0.370 | – |  |  |",
        "| demo | dpo | 60 | 0.846 | 0.800 | 0.292 | 0.546 | 0.745 | 0.617 | 0.910 | – | 301.4 | 420 |",
        "| demo | coh | failed: error: out of memory |",
        f"| demo | sft | failed: no eval_results.json in {tmp_path / 'never-ran'} |",
        "| text_demo | base | 0 | – | – | – | – | – | – | – | – |  |  |",
        "| text_demo | sft | 12 | 0.725 | 0.850 | 0.525 | – | – | – | – | 0.475 | 80.0 | 95 |",
    ]


def test_table_only_runs_nothing_and_tables_the_folders_found(tmp_path, monkeypatch):
    from benchmarks import compare_methods

    monkeypatch.setattr(compare_methods, "run", lambda *args: pytest.fail("--table_only ran a training"))
    monkeypatch.setattr(compare_methods, "prepare", lambda *args: pytest.fail("--table_only prepared data"))
    out = tmp_path / "text_demo" / "dpo"
    out.mkdir(parents=True)
    (out / "eval_results.json").write_text(json.dumps({"global_step": 12, "tuned_attribute_accuracy": 0.5,
                                                       "timings_s": {"total": 61.0}}))
    status = compare_methods.main(["--table_only", "--recipes", "recipes/text_demo.yaml", "--methods", "dpo", "sft",
                                   "--output_dir", str(tmp_path)])
    table = (tmp_path / "comparison.md").read_text()
    assert status == 1  # the sft run is missing
    assert "| text_demo | dpo | 12 | – | – | – | – | – | 0.500 | – | 61 |" in table
    assert f"| text_demo | sft | failed: no eval_results.json in {tmp_path / 'text_demo' / 'sft'} |" in table
