"""Stage 2 of the demo model (instruction tuning): its data, its batches, its asset, its resumable build."""

import random
from collections import Counter

import pytest

from data_prep.synthetic.scenes import COLORS, SHAPES, count_answer
from vlm_dpo.models import demo, smollm2
from vlm_dpo.training import demo_instruct as di

needs_wheel = pytest.mark.skipif(smollm2.find_gguf() is None, reason=f"needs the wheel: {smollm2.INSTALL_HINT}")


def _truth(scene):
    return {(o["color"], o["shape"]) for o in scene["objects"]}


def test_conversations_answer_from_the_scene():
    rng = random.Random(0)
    kinds, counts = Counter(), Counter()
    for _ in range(300):
        scene = di.instruct_scene(rng)
        assert 1 <= len(scene["objects"]) <= 4
        shapes = [o["shape"] for o in scene["objects"]]
        turns = di.conversation(scene, rng, questions=6, absent_share=0.5)
        assert len({q for q, _, _ in turns}) == len(turns)  # no question twice in one conversation
        for question, answer, kind in turns:
            kinds[kind] += 1
            if kind.startswith("exists"):
                color, shape = question.removeprefix("Is there a ").removesuffix("?").split()
                assert ((color, shape) in _truth(scene)) == (kind == "exists_yes") == answer.startswith("Yes")
            elif kind == "count":
                shape = question.split()[2].removesuffix("s")
                assert answer == count_answer(shapes.count(shape), shape)
                counts[shapes.count(shape)] += 1
            elif kind == "color":
                shape = question.removeprefix("What color is the ").removesuffix("?")
                assert shapes.count(shape) == 1
                assert answer == f"The {shape} is {next(o['color'] for o in scene['objects'] if o['shape'] == shape)}."
    assert abs(kinds["exists_yes"] - kinds["exists_no"]) < 0.2 * kinds["exists_yes"]  # balanced at 0.5
    assert {0, 1, 2, 3} <= set(counts) and kinds["describe"] and kinds["color"]


def test_the_shipped_mix_asks_mostly_about_present_objects():
    rng = random.Random(1)
    kinds = Counter(kind for _ in range(300) for _, _, kind in di.conversation(di.instruct_scene(rng), rng,
                                                                             absent_share=0.25))
    share = kinds["exists_no"] / (kinds["exists_no"] + kinds["exists_yes"])
    assert 0.18 < share < 0.32


def test_absent_objects_are_mostly_adversarial_where_the_scene_allows():
    rng = random.Random(2)
    asked = hard = 0
    for _ in range(400):
        scene = di.instruct_scene(rng)
        colors, shapes = {o["color"] for o in scene["objects"]}, {o["shape"] for o in scene["objects"]}
        possible = [(c, s) for c in colors for s in shapes if (c, s) not in _truth(scene)]
        if possible:
            question, _, _ = di.exists_qa(scene, rng, absent=True)
            asked += 1
            hard += di._adversarial(scene, question)
    assert 0.5 < hard / asked < 0.75


def test_auroc_by_hand():
    assert di._auroc([3, 2, 1, 0], [True, True, False, False]) == 1.0
    assert di._auroc([0, 1, 2, 3], [True, True, False, False]) == 0.0
    assert di._auroc([1, 1], [True, False]) == 0.5
    assert di._auroc([2, 0, 1], [True, False, True]) == 1.0  # (2>0, 1>0)


def test_the_learning_rate_warms_up_then_decays_or_stays():
    cosine, constant = di.schedule(100, 10), di.schedule(100, 10, constant=True)
    assert cosine(0) == pytest.approx(0.1 * 1.0, abs=1e-9) and constant(0) == pytest.approx(0.1)
    assert constant(50) == 1.0 and cosine(50) == pytest.approx(0.55)
    assert cosine(100) == pytest.approx(0.1)


@pytest.fixture(scope="module")
def stage1_model():
    if smollm2.find_gguf() is None:
        pytest.skip(f"needs the wheel: {smollm2.INSTALL_HINT}")
    return demo.assemble(stage2=None)


@needs_wheel
def test_the_first_turn_is_what_dpo_and_evaluation_feed_the_model(stage1_model):
    from data_prep import chat

    model, processor = stage1_model
    rng = random.Random(3)
    scenes = [di.instruct_scene(rng) for _ in range(3)]
    encoded = di.encode_scenes(model, processor, scenes, seed=5, progress=False)
    for item in encoded:
        turns = di.conversation(item.scene, rng, questions=3)
        ids, labels = di.tokenize_conversation(processor.tokenizer, item.prefix_ids, turns)
        question, answer, _ = turns[0]
        prompt = chat.render(processor, question)
        whole = chat.render(processor, question, answer)
        image_text = processor.tokenizer.decode(item.prefix_ids)
        expected_prompt = processor.tokenizer(prompt.replace("<|im_start|>User:<image>", image_text),
                                              add_special_tokens=False)["input_ids"]
        expected_answer = processor.tokenizer(chat.completion(prompt, whole), add_special_tokens=False)["input_ids"]
        assert ids[:len(expected_prompt) + len(expected_answer)] == expected_prompt + expected_answer
        first = [t for t, label in zip(ids, labels) if label != -100][:len(expected_answer)]
        assert first == expected_answer  # the first labelled tokens are the first answer
        assert sum(label != -100 for label in labels) > len(expected_answer)  # later answers are labelled too
        # one image-token row per encoded tile position
        image_tokens = sum(t == model.config.image_token_id for t in item.prefix_ids)
        assert image_tokens == item.encoded.shape[0] * demo.IMAGE_SEQ_LEN


@needs_wheel
def test_cached_encoder_output_gives_the_models_own_forward(stage1_model):
    """The training forward (cached encoder output, connector, text model) equals the model's own forward."""
    import torch

    model, processor = stage1_model
    scene = di.instruct_scene(random.Random(4))
    [item] = di.encode_scenes(model, processor, [scene], seed=6, progress=False)
    ids, _ = di.tokenize_conversation(processor.tokenizer, item.prefix_ids, [("Is there a red circle?", "No.")])
    image = di.render(scene, random.Random("instruct-render/6/0"))
    pixels = processor(text=["<image>"], images=[[image]], return_tensors="pt")
    assert ids.count(model.config.image_token_id) == int((pixels["input_ids"] == model.config.image_token_id).sum())
    with torch.no_grad():
        ours = model.lm_head(di.hidden_states(model, [ids], [item.encoded], processor.tokenizer.pad_token_id))
        theirs = model(input_ids=torch.tensor([ids]), pixel_values=pixels["pixel_values"],
                       pixel_attention_mask=pixels.get("pixel_attention_mask")).logits
    assert torch.allclose(ours, theirs, atol=2e-2)  # the encoder output is cached in float16


@needs_wheel
def test_the_asset_merged_into_a_plain_model_gives_the_trained_models_outputs(stage1_model):
    import copy

    import torch

    model, processor = stage1_model
    trained, params = di.add_lora(copy.deepcopy(model), r=4, alpha=8)
    assert any("connector" in name for name, p in trained.named_parameters() if p.requires_grad)
    with torch.no_grad():
        for p in params:
            p.add_(torch.randn_like(p) * 0.02)
    state = di.stage2_state(trained)
    assert {k.split(".")[-2] for k in state if k.endswith("lora_A")} == {"q_proj", "k_proj", "v_proj", "o_proj",
                                                                         "gate_proj", "up_proj", "down_proj"}
    merged = copy.deepcopy(model)
    demo.apply_stage2(merged, state)
    [item] = di.encode_scenes(model, processor, [di.instruct_scene(random.Random(7))], seed=7, progress=False)
    ids, _ = di.tokenize_conversation(processor.tokenizer, item.prefix_ids, [("Describe the image.", "A.")])
    pad = processor.tokenizer.pad_token_id
    with torch.no_grad():
        before = di.hidden_states(model, [ids], [item.encoded], pad)
        after = di.hidden_states(merged, [ids], [item.encoded], pad)
        lora = di.hidden_states(trained, [ids], [item.encoded], pad)
    assert not torch.allclose(before, lora, atol=1e-2)
    assert torch.allclose(after, lora, atol=5e-2 * lora.abs().max().item() / 10)  # float16 factors


@needs_wheel
def test_a_stopped_build_resumes_to_the_same_weights(tmp_path):
    """Stopped after step 1 and run again, the build writes the weights an uninterrupted build writes."""
    import torch
    from safetensors.torch import load_file

    settings = dict(scenes=16, batch_size=8, questions=2, lora_r=2, lora_alpha=4, heldout_scenes=4, progress=False)
    whole, meta = di.build_stage2(tmp_path / "whole.safetensors", **settings)
    assert meta["steps"] == 2 and 0.0 <= meta["heldout"]["exists_accuracy"] <= 1.0
    assert whole.stat().st_size < 20e6 and not whole.with_suffix(".checkpoint.pt").exists()
    split = tmp_path / "split.safetensors"
    path, progress = di.build_stage2(split, stop_after=1, **settings)
    assert path is None and progress["step"] == 1 and split.with_suffix(".checkpoint.pt").is_file()
    assert not split.exists()
    path, _ = di.build_stage2(split, **settings)
    a, b = load_file(str(whole)), load_file(str(path))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_held_out_questions_cover_every_kind():
    rng = random.Random(8)
    items = [di.EncodedScene(di.instruct_scene(rng), [], None) for _ in range(60)]
    questions = di.heldout_questions(items)
    kinds = Counter(q["kind"] for q in questions)
    assert kinds["exists"] == 120 and kinds["count"] == 60 and kinds["color"] > 20
    assert sum(q["yes"] for q in questions if q["kind"] == "exists") == 60
    assert {q["truth"] for q in questions if q["kind"] == "count"} == {0, 1, 2, 3}
    assert all(q["truth"] in COLORS and q["shape"] in SHAPES for q in questions if q["kind"] == "color")


@needs_wheel
def test_the_text_control_gives_the_scene_in_words_where_the_image_was(stage1_model):
    from data_prep.synthetic.scenes import describe

    model, processor = stage1_model
    tokenizer = processor.tokenizer
    scene = di.instruct_scene(random.Random(9))
    [item] = di.described_scenes(tokenizer, [scene])
    assert item.encoded is None and tokenizer.decode(item.prefix_ids) == f"<|im_start|>User:{describe(scene)} "
    ids, labels = di.tokenize_conversation(tokenizer, item.prefix_ids, [("Is there a red circle?", "No.")])
    assert model.config.image_token_id not in ids
    loss = di.answer_loss(model, [ids], [labels], [None], tokenizer.pad_token_id)
    assert loss.item() > 0
