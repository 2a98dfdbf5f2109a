"""Pure metric functions against hand-computed values: sequence log-probs, DPO rewards, rates."""

import math

import pytest
import torch

from vlm_dpo.eval.functional import delta, dpo_rewards, mean, pooled_rate, sequence_logps


def test_sequence_logps_hand_computed():
    # V = 3. Position 0 is uniform (p = 1/3 each); position 1 has logits [0, ln 3, 0] -> p = [1/5, 3/5, 1/5].
    logits = torch.tensor([[[0.0, 0.0, 0.0], [0.0, math.log(3), 0.0], [5.0, 1.0, 2.0]]])
    input_ids = torch.tensor([[0, 1, 1]])  # token 1 at t=1 (scored by position 0), token 1 at t=2 (by position 1)
    sums, counts = sequence_logps(logits, input_ids, torch.tensor([[0, 1, 1]]))
    assert sums.item() == pytest.approx(math.log(1 / 3) + math.log(3 / 5))  # = ln(1/5)
    assert counts.item() == 2
    sums, counts = sequence_logps(logits, input_ids, torch.tensor([[0, 0, 1]]))  # the answer is the last token only
    assert sums.item() == pytest.approx(math.log(3 / 5)) and counts.item() == 1
    # the first position is never scored, even when the mask marks it
    sums, _ = sequence_logps(logits, input_ids, torch.tensor([[1, 0, 0]]))
    assert sums.item() == 0.0


def test_sequence_logps_batch_matches_log_softmax():
    torch.manual_seed(0)
    logits, ids = torch.randn(2, 5, 7), torch.randint(0, 7, (2, 5))
    mask = torch.tensor([[0, 0, 1, 1, 1], [0, 1, 1, 0, 0]])
    sums, counts = sequence_logps(logits, ids, mask)
    reference = logits.log_softmax(-1)[:, :-1].gather(-1, ids[:, 1:, None]).squeeze(-1) * mask[:, 1:]
    assert torch.allclose(sums, reference.sum(-1)) and counts.tolist() == [3.0, 2.0]


def test_dpo_rewards_hand_computed():
    # pair 0: tuned raises chosen by 1 nat and lowers rejected by 1 nat -> rewards +0.1 / -0.1, margin 0.2, won.
    # pair 1: tuned moves the wrong way -> margin -0.5 * (2 + 3) = -2.5 with beta 0.5, lost.
    out = dpo_rewards(torch.tensor([-4.0, -7.0]), torch.tensor([-9.0, -2.0]), torch.tensor([-5.0, -5.0]),
                      torch.tensor([-8.0, -5.0]), beta=0.1)
    assert out["chosen"].tolist() == pytest.approx([0.1, -0.2])
    assert out["rejected"].tolist() == pytest.approx([-0.1, 0.3])
    assert out["margin"].tolist() == pytest.approx([0.2, -0.5])
    assert out["chosen_wins"].tolist() == [True, False]
    big = dpo_rewards(torch.tensor([-7.0]), torch.tensor([-2.0]), torch.tensor([-5.0]), torch.tensor([-5.0]), beta=0.5)
    assert big["margin"].item() == pytest.approx(-2.5)


def test_dpo_rewards_policy_equal_to_reference_is_zero_and_never_wins():
    logps = torch.tensor([-3.0, -1.0])
    out = dpo_rewards(logps, logps - 1, logps, logps - 1, beta=0.1)
    assert out["margin"].tolist() == [0.0, 0.0] and not out["chosen_wins"].any()


def test_rates_and_deltas():
    assert mean([True, False, True, True]) == 0.75 and mean([]) is None
    assert pooled_rate([1, 0, 2], [2, 3, 5]) == pytest.approx(0.3) and pooled_rate([0], [0]) is None
    assert delta(0.5, 0.25) == 0.25 and delta(None, 1.0) is None
