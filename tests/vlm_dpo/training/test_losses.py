"""Preference-loss variants (TRL's losses through --loss_type) and RLHF-V's dense DPO
(vlm_dpo.training.trainers.ddpo_weights, vlm_dpo.training.trainers.ddpo)."""

import json
import math
from pathlib import Path

import pytest
import torch
import yaml

import train

ROOT = Path(__file__).resolve().parents[3]
TINY = ["--config", str(ROOT / "recipes/tiny.yaml")]  # the default recipe (the demo) sets loss_weights


# --------------------------------------------------------------------------- config


def test_list_fields_parse_from_the_command_line():
    _, args, _ = train.parse([*TINY, "--loss_type", "sigmoid", "sft", "--loss_weights", "1.0", "0.5"])[:3]
    assert args.loss_type == ["sigmoid", "sft"] and args.loss_weights == [1.0, 0.5]
    _, args, _ = train.parse([*TINY, "--loss_type", "ddpo", "--ddpo_gamma", "3"])[:3]
    assert args.loss_type == ["ddpo"] and args.ddpo_gamma == 3.0


@pytest.mark.parametrize("argv, message", [
    (["--loss_type", "sigmod"], "Unknown --loss_type"),
    (["--loss_type", "ddpo", "sigmoid"], "can only be followed by sft"),
    (["--loss_type", "ddpo", "--ddpo_gamma", "0"], "ddpo_gamma must be positive"),
    (["--loss_type", "ddpo", "--ld_alpha", "0.5"], "ld_alpha"),
])
def test_bad_loss_settings_fail_at_parse_time(argv, message):
    from vlm_dpo.errors import UserError

    with pytest.raises(UserError, match=message):
        train.parse([*TINY, *argv])


def test_loss_weights_of_another_length_fail_at_parse_time():
    from vlm_dpo.errors import UserError

    with pytest.raises(UserError, match="loss_weights"):  # TRL's own check, as the one-line error it becomes
        train.parse([*TINY, "--loss_type", "sigmoid", "sft", "--loss_weights", "1.0"])


# --------------------------------------------------------------------------- DDPO weights (pure)


def test_pair_weights_hand_computed():
    from vlm_dpo.training.trainers.ddpo_weights import pair_weights

    # [5, 6, 7] vs [5, 9, 7, 8]: 5 and 7 are shared, 6 / 9 replaced, 8 inserted.
    assert pair_weights([5, 6, 7], [5, 9, 7, 8], gamma=5.0) == ([1, 5, 1], [1, 5, 1, 5])
    assert pair_weights([1, 2], [1, 2], gamma=5.0) == ([1, 1], [1, 1])


def test_token_weights_and_ddpo_loss_hand_computed():
    """Scale laid out on a collated batch (prompt, answer, padding), and DDPO's loss from it by hand."""
    from vlm_dpo.training.trainers.ddpo_weights import token_weights

    input_ids = torch.tensor([[1, 2, 5, 6, 7, 0], [1, 2, 5, 9, 7, 8]])  # chosen row, then rejected row
    completion = torch.tensor([[0, 0, 1, 1, 1, 0], [0, 0, 1, 1, 1, 1]])
    scale = token_weights(input_ids, completion, gamma=5.0)
    expected = torch.tensor([[0, 0, 1 / 7, 5 / 7, 1 / 7, 0], [0, 0, 1 / 12, 5 / 12, 1 / 12, 5 / 12]])
    torch.testing.assert_close(scale, expected)
    assert torch.equal(token_weights(input_ids, completion, gamma=1.0, normalize=False), completion.float())

    # Per-token log-probs of the answers under the policy and the reference (0 off the answers).
    policy = torch.tensor([[0, 0, -1, -2, -1, 0], [0, 0, -1, -3, -1, -2.0]])
    reference = torch.tensor([[0, 0, -1, -3, -1, 0], [0, 0, -1, -2, -1, -2.0]])
    logp, ref = (scale * policy).sum(-1), (scale * reference).sum(-1)
    torch.testing.assert_close(logp, torch.tensor([-12 / 7, -27 / 12]))  # (-1 + 5*-2 - 1) / 7, (-1 - 15 - 1 - 10) / 12
    delta = (logp[0] - ref[0]) - (logp[1] - ref[1])  # 5/7 + 5/12 = 95/84
    loss = -torch.nn.functional.logsigmoid(0.5 * delta)
    assert math.isclose(loss.item(), math.log1p(math.exp(-0.5 * 95 / 84)), rel_tol=1e-6)


def test_token_weights_mark_the_one_changed_word(tiny_text_tokenizer):
    from vlm_dpo.training.trainers.ddpo_weights import token_weights

    tok = tiny_text_tokenizer
    chosen = tok("There is a red circle.", add_special_tokens=False)["input_ids"]
    rejected = tok("There is a blue circle.", add_special_tokens=False)["input_ids"]
    width = max(len(chosen), len(rejected))
    rows = [ids + [tok.pad_token_id] * (width - len(ids)) for ids in (chosen, rejected)]
    mask = [[1] * len(ids) + [0] * (width - len(ids)) for ids in (chosen, rejected)]
    scale = token_weights(torch.tensor(rows), torch.tensor(mask), gamma=5.0, normalize=False)
    for row, ids, word in ((0, chosen, "red"), (1, rejected, "blue")):
        heavy = [ids[i] for i in range(len(ids)) if scale[row, i] == 5.0]
        assert tok.decode(heavy).strip() == word
        assert all(scale[row, i] == 1.0 for i in range(len(ids)) if ids[i] not in heavy)


# --------------------------------------------------------------------------- DDPO in the trainer


@pytest.fixture(scope="module")
def text_batch_setup(tmp_path_factory, tiny_text_model_dir):
    """The tiny text model's tokenizer, six arithmetic pairs, an output folder."""
    from datasets import Dataset

    from data_prep.synthetic.arithmetic import generate_rows
    from vlm_dpo.models import load_processor

    rows = generate_rows(6, seed=1)
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": r["prompt"]}],
                               "chosen": [{"role": "assistant", "content": r["chosen"]}],
                               "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in rows])
    return load_processor("tiny-smollm2"), data, tmp_path_factory.mktemp("ddpo")


def _loss(setup, loss_type, normalize=True, gamma=1.0, beta=0.5, precompute=False, fast=False, sft=None):
    """The trainer's loss on one batch of all six pairs, with the same perturbed adapter (policy != reference)."""
    from peft import LoraConfig
    from trl import DPOTrainer

    from vlm_dpo.models import load_model
    from vlm_dpo.training.config import TrainConfig
    from vlm_dpo.training.trainers.ddpo import DDPOTrainer, FastDDPOTrainer

    tokenizer, data, out = setup
    losses, weights = ([loss_type], None) if sft is None else ([loss_type, "sft"], [1.0, sft])
    args = TrainConfig(output_dir=str(out), loss_type=losses, loss_weights=weights, ddpo_gamma=gamma, beta=beta,
                       report_to="none", per_device_train_batch_size=6, max_length=128,
                       precompute_ref_log_probs=precompute, fast_dpo=fast)
    cls = (FastDDPOTrainer if fast else DDPOTrainer) if loss_type == "ddpo" else DPOTrainer
    trainer = cls(model=load_model("tiny-smollm2", "float32", vision=False), args=args, train_dataset=data,
                  processing_class=tokenizer,
                  peft_config=LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    trainer.ddpo_normalize = normalize
    model = trainer.model.eval()
    torch.manual_seed(0)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            if "lora_B" in name:
                param.normal_(std=0.5)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(data))])
    with torch.no_grad():
        return trainer.compute_loss(model, batch), batch, trainer


def test_ddpo_with_gamma_1_unnormalised_is_sigmoid_dpo_exactly(text_batch_setup):
    ddpo, _, _ = _loss(text_batch_setup, "ddpo", normalize=False, gamma=1.0)
    sigmoid, _, _ = _loss(text_batch_setup, "sigmoid")
    assert ddpo.item() != pytest.approx(math.log(2))  # the perturbed adapter makes the loss non-trivial
    assert torch.equal(ddpo, sigmoid)


def test_ddpo_with_gamma_1_normalised_is_trl_sigmoid_norm(text_batch_setup):
    ddpo, _, _ = _loss(text_batch_setup, "ddpo", normalize=True, gamma=1.0)
    norm, _, _ = _loss(text_batch_setup, "sigmoid_norm")
    torch.testing.assert_close(ddpo, norm)


def test_ddpo_with_precomputed_reference_log_probs_weights_them_alike(text_batch_setup):
    """precompute_ref_log_probs goes through compute_ref_log_probs: the same weighted reference, the same loss."""
    live, _, _ = _loss(text_batch_setup, "ddpo", gamma=5.0)
    cached, batch, _ = _loss(text_batch_setup, "ddpo", gamma=5.0, precompute=True)
    assert "ref_chosen_logps" in batch
    torch.testing.assert_close(live, cached)


@pytest.mark.parametrize("sft", [None, 0.5])
def test_ddpo_packed_equals_ddpo_plain(text_batch_setup, sft):
    """fast_dpo: the packed forward weights the policy's and the (cached) reference's log-probs as the hook does."""
    plain, _, plain_trainer = _loss(text_batch_setup, "ddpo", gamma=5.0, sft=sft)
    fast, _, fast_trainer = _loss(text_batch_setup, "ddpo", gamma=5.0, sft=sft, fast=True)
    assert type(plain_trainer).__name__ == "DDPOTrainer" and type(fast_trainer).__name__ == "FastDDPOTrainer"
    assert fast_trainer.loss_types == ["sigmoid", "sft"][:1 if sft is None else 2]
    torch.testing.assert_close(fast, plain)


def test_ddpo_reference_cache_is_keyed_by_gamma(text_batch_setup):
    _, _, five = _loss(text_batch_setup, "ddpo", gamma=5.0, fast=True)
    _, _, three = _loss(text_batch_setup, "ddpo", gamma=3.0, fast=True)
    assert five._reference_cache().path != three._reference_cache().path


def test_ddpo_loss_in_the_trainer_matches_the_formula(text_batch_setup):
    """gamma 5: the trainer's loss equals DDPO computed here from plain per-token log-probs and token_weights."""
    from vlm_dpo.training.trainers.ddpo_weights import token_weights

    loss, batch, trainer = _loss(text_batch_setup, "ddpo", gamma=5.0)
    model = trainer.model
    ids, mask = batch["input_ids"], batch["completion_mask"]

    def per_token(adapter: bool):
        with torch.no_grad():
            if adapter:
                logits = model(input_ids=ids, attention_mask=batch["attention_mask"]).logits
            else:
                with model.disable_adapter():
                    logits = model(input_ids=ids, attention_mask=batch["attention_mask"]).logits
        logps = torch.log_softmax(logits[:, :-1].float(), -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
        return logps * mask[:, 1:]

    scale = token_weights(ids, mask, gamma=5.0)[:, 1:]
    assert (scale.sum(-1) - 1).abs().max() < 1e-5  # normalised: weights of each answer sum to 1
    logratio = (scale * per_token(True)).sum(-1) - (scale * per_token(False)).sum(-1)
    chosen, rejected = logratio.chunk(2)
    expected = -torch.nn.functional.logsigmoid(0.5 * (chosen - rejected)).mean()
    torch.testing.assert_close(loss, expected, atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------- one training step per variant


@pytest.fixture(scope="module")
def tiny_prepared(tmp_path_factory, tiny_model_dir):
    from data_prep import PrepareOptions, prepare
    from vlm_dpo.models import load_processor

    out = tmp_path_factory.mktemp("losses") / "data"
    prepare(PrepareOptions("synthetic:12", image_longest_edge=64, test_size=0.25), out, model_name="tiny-smolvlm", processor=load_processor("tiny-smolvlm"), max_length=512)
    return out


VARIANTS = {  # name: (loss_type, other overrides)
    "sigmoid": (["sigmoid"], []),
    "ipo": (["ipo"], []),
    "hinge": (["hinge"], []),
    "robust": (["robust"], ["--label_smoothing", "0.1"]),
    "sigmoid+sft": (["sigmoid", "sft"], ["--loss_weights", "1.0", "0.5"]),
    "ddpo": (["ddpo"], ["--ddpo_gamma", "5", "--beta", "0.5"]),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_each_loss_trains_a_step_of_the_tiny_recipe(variant, tiny_prepared, tmp_path):
    losses, extra = VARIANTS[variant]
    out = tmp_path / variant
    trainer = train.main(["--config", str(ROOT / "recipes/tiny.yaml"), "--max_steps", "1", "--output_dir", str(out),
                          "--dataset_name", str(tiny_prepared), "--eval_strategy", "no", "--report_pairs", "0",
                          "--loss_type", *losses, *extra])
    assert type(trainer).__name__ == ("FastDDPOTrainer" if variant == "ddpo" else "FastDPOTrainer")  # tiny: fast_dpo
    results = json.loads((out / "eval_results.json").read_text())
    assert results["global_step"] == 1 and math.isfinite(results["tuned_loss"])
    logged = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert logged and all(math.isfinite(value) for value in logged)
    assert yaml.safe_load((out / "run_config.yaml").read_text())["loss_type"] == losses
