"""FastDPOTrainer (vlm_dpo.training.trainers.fast_dpo): TRL's losses and metrics, with image features, prompts and
reference log-probs computed once. Plain TRL DPOTrainer is the reference for every number."""

import json
import logging
import math
from pathlib import Path

import pytest
import torch

from vlm_dpo.training.trainers import fast_dpo
from vlm_dpo.training.trainers.fast_dpo import FastDPOTrainer
from vlm_dpo.training.trainers.pack import pack_pairs

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def own_reference_cache(tmp_path, monkeypatch):
    """Each test starts with an empty reference cache, so the fast path computes its own reference first."""
    monkeypatch.setattr(fast_dpo, "default_cache_dir", lambda: tmp_path / "cache")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, tiny_model_dir):
    from data_prep import PrepareOptions, prepare
    from vlm_dpo.models import load_processor

    out = tmp_path_factory.mktemp("fast") / "data"
    prepare(PrepareOptions("synthetic:16", image_longest_edge=64, test_size=0.25), out, model_name="tiny-smolvlm", processor=load_processor("tiny-smolvlm"), max_length=512)
    return out


@pytest.fixture(scope="module")
def vision_pairs(prepared):
    from data_prep.prepare import load_prepared

    return load_prepared(prepared)["train"]  # 12 pairs: 3 steps of 4 per epoch


@pytest.fixture(scope="module")
def text_pairs(tiny_text_model_dir):
    from datasets import Dataset

    from data_prep.chat import messages
    from data_prep.synthetic.arithmetic import generate_rows

    return Dataset.from_list([messages(r["prompt"], r["chosen"], r["rejected"]) for r in generate_rows(8, seed=3)])


def make(cls, data, out, model="tiny-smolvlm", peft=None, **settings):
    from trl import ModelConfig

    from vlm_dpo.models import load_model, load_processor, lora_config
    from vlm_dpo.training.config import TrainConfig

    vision = model == "tiny-smolvlm"
    settings = {"per_device_train_batch_size": 4, "learning_rate": 5e-3, "max_steps": 6, **settings}
    args = TrainConfig(output_dir=str(out), logging_steps=1, report_to="none", save_strategy="no", seed=0, **settings)
    return cls(model=load_model(model, "float32", vision=vision), args=args, train_dataset=data, eval_dataset=data,
               processing_class=load_processor(model),
               peft_config=peft or lora_config(ModelConfig(use_peft=True, lora_r=8, lora_alpha=16), vision))


def logged(trainer) -> list[dict]:
    return [entry for entry in trainer.state.log_history if "loss" in entry]


def assert_same_numbers(plain: list[dict], fast: list[dict]) -> None:
    """Loss to 1e-5; every other logged number to 1e-5, or 1e-6 of its size (summed log-probs are ~100)."""
    assert len(plain) == len(fast) > 0
    for step, (a, b) in enumerate(zip(plain, fast)):
        assert a.keys() == b.keys()
        assert abs(a["loss"] - b["loss"]) <= 1e-5, (step, a["loss"], b["loss"])
        for key, value in a.items():
            assert math.isclose(value, b[key], rel_tol=1e-6, abs_tol=1e-5), (step, key, value, b[key])


# --------------------------------------------------------------------------- packing (pure)


def test_pack_pairs_hand_computed():
    """TRL's collator example: pair 0 = prompt [1 2 3], chosen [4 5], rejected [6]; pair 1 = [7 8], [9], [10 11]."""
    ids = torch.tensor([[1, 2, 3, 4, 5], [7, 8, 9, 0, 0], [1, 2, 3, 6, 0], [7, 8, 10, 11, 0]])
    attention = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 0]])
    completion = torch.tensor([[0, 0, 0, 1, 1], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 1, 1, 0]])
    packed = pack_pairs(ids, attention, completion, pad_token_id=0)
    # [prompt[:-1] | prompt[-1] chosen | prompt[-1] rejected], positions restarting for the rejected branch
    assert packed.input_ids.tolist() == [[1, 2, 3, 4, 5, 3, 6], [7, 8, 9, 8, 10, 11, 0]]
    assert packed.position_ids.tolist() == [[0, 1, 2, 3, 4, 2, 3], [0, 1, 2, 1, 2, 3, 0]]
    assert packed.shift_labels.tolist() == [[-100, -100, 4, 5, -100, 6, -100], [-100, 9, -100, 10, 11, -100, -100]]
    seen = (packed.attention_mask()[:, 0] == 0).int()
    assert seen[0, 5].tolist() == [1, 1, 0, 0, 0, 1, 0]  # the rejected branch sees the prompt, not the chosen answer
    assert seen[0, 4].tolist() == [1, 1, 1, 1, 1, 0, 0]
    assert seen[1, 5].tolist() == [1, 0, 0, 1, 1, 1, 0]
    # TRL's per-token layout (row, t predicts token t + 1) read back from the packed rows
    values = torch.arange(14.0).reshape(2, 7)
    assert packed.unpack(values).tolist() == [[0, 0, 2, 3], [0, 8, 0, 0], [0, 0, 5, 0], [0, 10, 11, 0]]


# --------------------------------------------------------------------------- same numbers as TRL


SETTINGS = {
    "sigmoid, gradient checkpointing": dict(loss_type=["sigmoid"], gradient_checkpointing=True),
    "ipo + sft, ld_alpha": dict(loss_type=["ipo", "sft"], loss_weights=[1.0, 0.5], ld_alpha=0.5),
    "robust, WPO weights": dict(loss_type=["robust"], label_smoothing=0.1, use_weighting=True),
}


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_vision_training_matches_plain_trl(setting, vision_pairs, tmp_path):
    """Two epochs (the second on cached features and reference log-probs), then an evaluation: same numbers."""
    from trl import DPOTrainer

    runs = {}
    for cls in (DPOTrainer, FastDPOTrainer):
        trainer = make(cls, vision_pairs, tmp_path / cls.__name__, **SETTINGS[setting])
        trainer.train()
        runs[cls] = logged(trainer), trainer.evaluate()
    assert trainer.feature_cache.items
    assert_same_numbers(runs[DPOTrainer][0], runs[FastDPOTrainer][0])
    evaluated = [[{k.removeprefix("eval_"): v for k, v in runs[cls][1].items() if "runtime" not in k and "per_second"
                   not in k}] for cls in (DPOTrainer, FastDPOTrainer)]
    assert_same_numbers(*evaluated)


def test_batches_hold_prompts_of_different_lengths(vision_pairs, tmp_path):
    """The equality above covers pairs whose prompts (image tokens and question) differ in length within a batch."""
    trainer = make(FastDPOTrainer, vision_pairs, tmp_path)
    batch = trainer.data_collator([vision_pairs[i] for i in range(4)])
    prompt_lengths = (batch["attention_mask"] - batch["completion_mask"]).sum(1)
    assert len(set(prompt_lengths.tolist())) > 1


def test_text_training_matches_plain_trl(text_pairs, tmp_path):
    from trl import DPOTrainer

    runs = {}
    for cls in (DPOTrainer, FastDPOTrainer):
        trainer = make(cls, text_pairs, tmp_path / cls.__name__, model="tiny-smollm2", gradient_checkpointing=True)
        trainer.train()
        runs[cls] = logged(trainer)
    assert_same_numbers(runs[DPOTrainer], runs[FastDPOTrainer])


# --------------------------------------------------------------------------- collation

def test_batches_of_cached_images_are_collated_without_decoding_or_pixels(vision_pairs, tmp_path, monkeypatch):
    """Once each image's features are cached, a batch is collated from the noted tile layouts: the same tokens and
    packing as a full collation, no image decoded, no pixels; the features ride in the batch."""
    from vlm_dpo.training.trainers import fast_collate

    trainer = make(FastDPOTrainer, vision_pairs, tmp_path)
    rows = [trainer.train_dataset[i] for i in range(4)]
    assert isinstance(rows[0]["images"][0], dict)  # the trainer keeps its images encoded
    full = trainer.data_collator(rows)
    assert "pixel_values" in full and "image_features" not in full
    features = trainer._image_features(trainer._prepare_inputs(full), full["image_keys"])
    decoded = []
    monkeypatch.setattr(trainer.data_collator, "decode", lambda image: decoded.append(1))
    cached = trainer.data_collator(rows)
    assert decoded == [] and "pixel_values" not in cached
    for name in ("input_ids", "attention_mask", "completion_mask"):
        assert torch.equal(cached[name], full[name]), name
    assert cached["packed"].pair_keys == full["packed"].pair_keys
    assert all(torch.equal(a, b) for a, b in zip(cached["image_features"].tensors, features, strict=True))
    # the keys of an encoded image and of the same image decoded differ, and each is stable
    assert fast_collate.image_key(rows[0]["images"][0]) == full["image_keys"][0]
    assert fast_collate.image_key(vision_pairs[0]["images"][0]) != full["image_keys"][0]


def test_full_collation_equals_trls_and_processes_each_image_once(vision_pairs, tmp_path, monkeypatch):
    """Before any feature is cached, the batch is TRL's own collation, image for image, though each image goes through
    the image processor once (TRL's collator lists it for the chosen and for the rejected row)."""
    from trl.trainer.dpo_trainer import DataCollatorForVisionPreference

    trainer = make(FastDPOTrainer, vision_pairs, tmp_path)
    rows = [vision_pairs[i] for i in range(4)]
    expected = DataCollatorForVisionPreference(trainer.processing_class)([dict(row) for row in rows])
    seen = []

    class Counting:
        def __init__(self, real):
            self.real = real

        def __getattr__(self, name):
            return getattr(self.real, name)

        def __call__(self, batch, **kwargs):
            seen.append(len(batch))
            return self.real(batch, **kwargs)

    images = trainer.data_collator.images
    monkeypatch.setattr(images, "real", Counting(images.real))
    batch = trainer.data_collator(rows)
    assert seen == [4]
    assert expected.keys() <= batch.keys()
    for name, value in expected.items():
        assert torch.equal(batch[name], value), name


def test_images_stay_encoded_without_a_copy_of_the_data(vision_pairs, tmp_path):
    """A dataset on disk is read under the encoded features as it is, with no second Arrow file beside it; rows
    picked by an index (a split, a shuffle) stay the same rows."""
    from datasets import load_from_disk

    from vlm_dpo.training.trainers.fast_collate import undecoded

    vision_pairs.save_to_disk(tmp_path / "data")
    on_disk = load_from_disk(tmp_path / "data").shuffle(seed=1)  # writes its index file
    files = sorted((tmp_path / "data").iterdir())
    encoded, decode = undecoded(on_disk)
    assert sorted((tmp_path / "data").iterdir()) == files
    assert encoded.num_rows == on_disk.num_rows and encoded.column_names == on_disk.column_names
    for i in (0, 5):
        assert isinstance(encoded[i]["images"][0], dict)
        assert decode(encoded[i]["images"][0]).tobytes() == on_disk[i]["images"][0].tobytes()
        assert encoded[i]["prompt"] == on_disk[i]["prompt"]
    assert undecoded(encoded)[1] is None  # already encoded: left as it is


def test_a_batch_of_decoded_images_trains_as_an_encoded_one(vision_pairs, tmp_path):
    """A caller's own rows (images already decoded) are collated in full, as TRL would."""
    trainer = make(FastDPOTrainer, vision_pairs, tmp_path)
    batch = trainer.data_collator([vision_pairs[i] for i in range(4)])
    encoded = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    assert torch.equal(batch["pixel_values"], encoded["pixel_values"])
    assert torch.equal(batch["input_ids"], encoded["input_ids"])


# --------------------------------------------------------------------------- each pass once


def test_vision_tower_sees_each_distinct_image_once(vision_pairs, tmp_path):
    """Two epochs: the vision tower encodes each distinct image's tiles once in all (TRL: 4 times per step)."""
    trainer = make(FastDPOTrainer, vision_pairs, tmp_path, num_train_epochs=2, max_steps=-1)
    processor = trainer.processing_class
    encoded = []
    vision = trainer.model.get_base_model().model.vision_model
    vision.register_forward_hook(lambda module, args, kwargs, out: encoded.append(kwargs["pixel_values"].size(0)),
                                 with_kwargs=True)
    trainer.train()
    distinct = {image.tobytes(): image for row in vision_pairs for image in row["images"]}
    tiles = [processor.image_processor([[image]], return_tensors="pt")["pixel_values"][0].flatten(1).ne(0).any(1).sum()
             for image in distinct.values()]
    assert sum(encoded) == int(sum(tiles))
    assert len(encoded) == 3  # one call per first-epoch step, none in the second


def test_reference_log_probs_computed_once_reused_across_runs_invalidated_by_settings(vision_pairs, tmp_path,
                                                                                       monkeypatch):
    calls = []
    original = FastDPOTrainer.compute_ref_log_probs
    monkeypatch.setattr(FastDPOTrainer, "compute_ref_log_probs",
                        lambda self, *args: calls.append(1) or original(self, *args))
    make(FastDPOTrainer, vision_pairs, tmp_path / "a").train()  # 6 steps: 2 epochs of 3
    assert len(calls) == 3  # the first epoch only
    files = list((tmp_path / "cache" / "ref_logps").glob("*.jsonl"))
    assert len(files) == 1 and len(files[0].read_text().splitlines()) == len(vision_pairs)

    make(FastDPOTrainer, vision_pairs, tmp_path / "b", max_steps=3).train()  # a new run, same base, data, settings
    assert len(calls) == 4  # only its first batch, recomputed to check the file, which then serves the rest

    make(FastDPOTrainer, vision_pairs, tmp_path / "c", max_steps=1, ld_alpha=0.5).train()  # changes the numbers
    assert len(calls) == 5
    assert len(list((tmp_path / "cache" / "ref_logps").glob("*.jsonl"))) == 2


def test_base_evaluation_runs_one_forward_per_batch_and_matches_plain_trl(vision_pairs, tmp_path):
    """Before training the adapter adds zero, so the policy is the reference: one language-model pass per batch
    gives both, and the numbers are TRL's (rewards exactly 0)."""
    from trl import DPOTrainer

    plain = make(DPOTrainer, vision_pairs, tmp_path / "plain", per_device_eval_batch_size=4).evaluate()
    trainer = make(FastDPOTrainer, vision_pairs, tmp_path / "fast", per_device_eval_batch_size=4)
    passes = []
    trainer.model.get_base_model().model.text_model.register_forward_hook(lambda *args: passes.append(1))
    fast = trainer.evaluate()
    assert len(passes) == math.ceil(len(vision_pairs) / 4)
    assert fast["eval_rewards/accuracies"] == fast["eval_rewards/margins"] == 0.0
    timing = ("runtime", "per_second", "preparation_time")
    assert_same_numbers(*[[{k.removeprefix("eval_"): v for k, v in m.items() if not any(t in k for t in timing)}]
                          for m in (plain, fast)])
    passes.clear()
    trainer.evaluate()  # the reference now comes from the cache: still one pass per batch
    assert len(passes) == math.ceil(len(vision_pairs) / 4)


# --------------------------------------------------------------------------- the LM head on the answers only


def test_lm_head_projects_the_answer_positions_only_with_the_same_numbers(vision_pairs, tmp_path, monkeypatch):
    """TRL's fused head on the CPU projects every position of a row onto the vocabulary; the packed forward hands it
    only the positions that predict an answer token (one per answer token), and loss and metrics stay the same."""
    import trl.trainer.utils

    rows = []
    kernel = trl.trainer.utils._ChunkedLogProbFunction

    class Counting:
        @staticmethod
        def apply(hidden, *args):
            rows.append(hidden.size(0))
            return kernel.apply(hidden, *args)

    monkeypatch.setattr(trl.trainer.utils, "_ChunkedLogProbFunction", Counting)
    trainer = make(FastDPOTrainer, vision_pairs, tmp_path)
    batch = trainer._prepare_inputs(trainer.data_collator([vision_pairs[i] for i in range(4)]))
    packed = pack_pairs(batch["input_ids"], batch["attention_mask"], batch["completion_mask"], 0)
    answer_tokens = sum(c + r for _, c, r in packed.lengths)
    results = {}
    for answers_only in (False, True):
        monkeypatch.setattr(fast_dpo.PackedModel, "answers_only", answers_only)
        trainer._ref_cache, rows[:] = None, []
        loss = trainer.compute_loss(trainer.model, batch)
        loss.backward()
        grads = [p.grad.clone() for p in trainer.model.parameters() if p.grad is not None]
        trainer.model.zero_grad()
        results[answers_only] = loss.item(), grads, dict(trainer._metrics["train"])
        trainer._metrics["train"].clear()
        # the reference forward, then the policy's
        assert rows == [answer_tokens if answers_only else packed.input_ids.numel()] * 2
    assert answer_tokens < packed.input_ids.numel() / 2
    assert results[True][0] == pytest.approx(results[False][0], abs=1e-6)
    for every, only in zip(results[False][1], results[True][1], strict=True):
        torch.testing.assert_close(only, every, rtol=1e-4, atol=1e-6)
    metrics = [{k: v[-1] for k, v in results[key][2].items() if k != "num_tokens"} for key in (False, True)]
    assert_same_numbers([metrics[0] | {"loss": 0}], [metrics[1] | {"loss": 0}])  # num_tokens: a running total


# --------------------------------------------------------------------------- per-pair evaluation log-probs


def test_evaluation_keeps_each_pairs_log_probs_as_the_report_would_compute_them(vision_pairs, tmp_path):
    """After a few steps (the adapter no longer zero), ``eval_pair_logps`` holds every held-out pair's summed chosen
    and rejected log-probs and token counts, in eval-set order, as ``answer_set_logprobs`` gives them; batches of 5
    over 12 pairs leave a short last batch. Each evaluation starts afresh."""
    from data_prep.chat import message_text
    from vlm_dpo.eval.logprobs import answer_set_logprobs

    trainer = make(FastDPOTrainer, vision_pairs, tmp_path, max_steps=2, per_device_eval_batch_size=5)
    assert trainer.eval_pair_logps is None
    trainer.train()
    trainer.evaluate()
    kept = trainer.eval_pair_logps
    assert sorted(kept) == ["chosen", "chosen_tokens", "rejected", "rejected_tokens"]
    assert all(len(values) == len(vision_pairs) for values in kept.values())

    model = trainer.accelerator.unwrap_model(trainer.model).eval()
    images = [row["images"][0].convert("RGB") for row in vision_pairs]
    questions = [message_text(row["prompt"]) for row in vision_pairs]
    answers = [[message_text(row[side]) for row in vision_pairs] for side in ("chosen", "rejected")]
    (chosen, chosen_tokens), (rejected, rejected_tokens) = answer_set_logprobs(
        model, trainer.processing_class, images, questions, answers, batch_size=4)
    assert kept["chosen_tokens"] == chosen_tokens and kept["rejected_tokens"] == rejected_tokens
    assert kept["chosen"] == pytest.approx(chosen, abs=1e-3)
    assert kept["rejected"] == pytest.approx(rejected, abs=1e-3)
    assert min(rejected) < -1  # real sums, not zeros

    trainer.evaluate()  # reset, not appended to
    assert len(trainer.eval_pair_logps["chosen"]) == len(vision_pairs)
    assert trainer.eval_pair_logps["chosen"] == pytest.approx(kept["chosen"], abs=1e-5)


# --------------------------------------------------------------------------- a reference cache that cannot lie


@pytest.fixture(scope="module")
def filled_reference_cache(vision_pairs, tmp_path_factory):
    """The reference cache file a base evaluation of the vision pairs leaves (computed once for the tests below)."""
    folder = tmp_path_factory.mktemp("filled")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fast_dpo, "default_cache_dir", lambda: folder / "cache")
        make(FastDPOTrainer, vision_pairs, folder / "run", per_device_eval_batch_size=4).evaluate()
    [path] = (folder / "cache" / "ref_logps").glob("*.jsonl")
    return path


def halved(entry):  # still valid JSON, but the checksum no longer matches
    return {**entry, "chosen": entry["chosen"] * 0.5}


def halved_and_checksummed(entry):  # a well-formed lie: only the comparison with a fresh forward can catch it
    from vlm_dpo.training.trainers.ref_cache import checksum

    entry = halved(entry)
    return {**entry, "check": checksum(entry["key"], entry["chosen"], entry["rejected"])}


def not_a_number(entry):
    return {**entry, "chosen": "-12.5"}


@pytest.mark.parametrize("tamper, warning", [
    (halved, "fail their checksum"),
    (halved_and_checksummed, "Discarding the reference log-prob cache"),
    (not_a_number, "malformed"),
])
def test_a_wrong_reference_cache_is_recomputed_never_believed(tamper, warning, filled_reference_cache, vision_pairs,
                                                              tmp_path, caplog):
    """The base evaluation's policy is its reference: loss log 2 and margins 0 exactly, whatever the file says."""
    path = tmp_path / "cache" / "ref_logps" / filled_reference_cache.name
    path.parent.mkdir(parents=True)
    entries = [json.loads(line) for line in filled_reference_cache.read_text().splitlines()]
    assert len(entries) == len(vision_pairs)
    path.write_text("".join(json.dumps(tamper(entry)) + "\n" for entry in entries))

    with caplog.at_level(logging.WARNING, logger="vlm_dpo.training.trainers"):
        base = make(FastDPOTrainer, vision_pairs, tmp_path / "run", per_device_eval_batch_size=4).evaluate()
    assert base["eval_loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert base["eval_rewards/margins"] == 0.0
    assert warning in caplog.text
    from vlm_dpo.training.trainers.ref_cache import parse

    rewritten = [parse(line) for line in path.read_text().splitlines()]  # the file now holds the right values only
    assert len(rewritten) == len(entries) and None not in rewritten
    assert sorted(chosen for _, (chosen, _) in rewritten) == pytest.approx(sorted(e["chosen"] for e in entries))


# --------------------------------------------------------------------------- fallbacks


def test_trained_vision_tower_takes_plain_trl_and_the_fast_trainer_refuses_it(vision_pairs, tmp_path, caplog):
    from peft import LoraConfig
    from trl import DPOTrainer

    from vlm_dpo.models import load_model
    from vlm_dpo.training.config import TrainConfig
    from vlm_dpo.training.trainers.choose import choose_trainer

    peft = LoraConfig(r=4, lora_alpha=8, target_modules=r".*(text_model|vision_model).*\.(q_proj|v_proj)",
                      task_type="CAUSAL_LM")
    args = TrainConfig(output_dir=str(tmp_path), fast_dpo=True, report_to="none")
    with caplog.at_level(logging.INFO, logger="vlm_dpo.training.trainers.choose"):
        cls, reason = choose_trainer(args, load_model("tiny-smolvlm", "float32"), peft, vision_pairs)
    assert cls is DPOTrainer and "vision tower or connector is trained" in reason
    assert caplog.text.count("TRL's plain DPOTrainer path") == 1
    with pytest.raises(ValueError, match="vision tower or connector is trained"):
        make(FastDPOTrainer, vision_pairs, tmp_path, peft=peft, max_steps=1)


def test_language_model_lora_takes_the_fast_path(vision_pairs, tmp_path):
    from trl import ModelConfig

    from vlm_dpo.models import load_model, lora_config
    from vlm_dpo.training.config import TrainConfig
    from vlm_dpo.training.trainers.choose import choose_trainer
    from vlm_dpo.training.trainers.ddpo import FastDDPOTrainer

    model, peft = load_model("tiny-smolvlm", "float32"), lora_config(ModelConfig(use_peft=True), vision=True)
    args = TrainConfig(output_dir=str(tmp_path), fast_dpo=True, report_to="none")
    assert choose_trainer(args, model, peft, vision_pairs) == (FastDPOTrainer, None)
    assert choose_trainer(TrainConfig(output_dir=str(tmp_path), fast_dpo=True, loss_type=["ddpo"], report_to="none"),
                          model, peft, vision_pairs) == (FastDDPOTrainer, None)
    assert choose_trainer(args, model, None, vision_pairs)[1].startswith("the reference must be the base model")


def test_ddpo_recipe_takes_the_packed_path(prepared, tmp_path):
    import train

    trainer = train.main(["--config", str(ROOT / "recipes/tiny.yaml"), "--max_steps", "1", "--output_dir",
                          str(tmp_path / "out"), "--eval_strategy", "no", "--report_pairs", "0",
                          "--loss_type", "ddpo", "--dataset_name", str(prepared)])
    assert type(trainer).__name__ == "FastDDPOTrainer"
    assert math.isfinite(logged(trainer)[0]["loss"])
