"""Dense DPO (DDPO) token weights, after RLHF-V (Yu et al. 2024, "RLHF-V: Towards Trustworthy MLLMs via Behavior
Alignment from Fine-grained Correctional Human Feedback", arXiv 2312.00849, section 3.2).

RLHF-V's chosen answer is the rejected one with its hallucinated segments rewritten. DDPO scores an answer with

    log pi(y | x) = (sum_{unchanged t} log p(y_t) + gamma * sum_{changed t} log p(y_t)) / N,
    N = |unchanged| + gamma * |changed|

(beta 0.5 and gamma 5 in the paper), then takes the usual sigmoid DPO loss on these weighted log-ratios. A token
is *changed* when it lies outside the blocks that the chosen and rejected token sequences share, as difflib's
``SequenceMatcher`` aligns them (no junk heuristic); the same weights apply to the policy and the reference.

    from vlm_dpo.training.trainers.ddpo_weights import token_weights, pair_weights
    pair_weights([5, 6, 7], [5, 9, 7], gamma=5.0)          # ([1, 5, 1], [1, 5, 1])
    scale = token_weights(input_ids, completion_mask, gamma=5.0)   # (2B, T): sum(scale * logp) is DDPO's log-prob
"""

from __future__ import annotations

from difflib import SequenceMatcher


def pair_weights(chosen: list[int], rejected: list[int], gamma: float) -> tuple[list[float], list[float]]:
    """Per-token weights of a chosen and a rejected answer: 1 on tokens the two share (aligned), gamma elsewhere."""
    chosen_w, rejected_w = [gamma] * len(chosen), [gamma] * len(rejected)
    for block in SequenceMatcher(None, chosen, rejected, autojunk=False).get_matching_blocks():
        chosen_w[block.a:block.a + block.size] = [1.0] * block.size
        rejected_w[block.b:block.b + block.size] = [1.0] * block.size
    return chosen_w, rejected_w


def token_weights(input_ids, completion_mask, gamma: float, normalize: bool = True):
    """DDPO's per-token scale for a DPO batch laid out as TRL's preference collators lay it out.

    input_ids, completion_mask: (2B, T), rows 0..B-1 the chosen sequences and rows B..2B-1 the rejected ones
    of the same pairs, completion_mask 1 on answer tokens (anywhere in the row: left or right padding).
    Returns a float (2B, T) tensor on the same device: 0 off the answers, ``w_t`` (1 or gamma, see
    ``pair_weights``) on them, divided by the row's ``N = sum_t w_t`` when ``normalize``. So
    ``(scale * token_logps).sum(-1)`` is DDPO's sequence log-prob; with ``gamma = 1`` and ``normalize=False``
    the scale is the completion mask itself, i.e. plain DPO's summed log-prob.
    """
    import torch

    if gamma <= 0:
        raise ValueError(f"gamma must be positive, got {gamma}")
    rows = input_ids.size(0)
    if rows % 2:
        raise ValueError(f"expected chosen rows then rejected rows (an even number), got {rows} rows")
    half = rows // 2
    mask = completion_mask.bool().cpu()
    ids = input_ids.cpu()
    scale = torch.zeros(input_ids.shape, dtype=torch.float32)
    for i in range(half):
        chosen_pos, rejected_pos = mask[i].nonzero().squeeze(-1), mask[half + i].nonzero().squeeze(-1)
        chosen_w, rejected_w = pair_weights(ids[i, chosen_pos].tolist(), ids[half + i, rejected_pos].tolist(), gamma)
        for row, positions, weights in ((i, chosen_pos, chosen_w), (half + i, rejected_pos, rejected_w)):
            weights = torch.tensor(weights, dtype=torch.float32)
            if normalize and len(weights):
                weights = weights / weights.sum()
            scale[row, positions] = weights
    return scale.to(input_ids.device)
